/*
 * hl7_batch: splitting a batch file into messages (contract in
 * hl7_batch.h). Works segment by segment on the borrowed buffer; nothing
 * is copied.
 */
#include "hl7_batch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool is_end(char c)
{
    return c == '\r' || c == '\n' || c == 0x0B || c == 0x1C;
}

static bool starts(const char *p, size_t n, const char *name)
{
    return n >= 3 && memcmp(p, name, 3) == 0 && (n == 3 || !((p[3] >= 'A' && p[3] <= 'Z') ||
                                                               (p[3] >= '0' && p[3] <= '9')));
}

static bool envelope(const char *p, size_t n)
{
    return starts(p, n, "FHS") || starts(p, n, "BHS") || starts(p, n, "BTS") ||
           starts(p, n, "FTS");
}

void hl7_batch_init(struct hl7_batch *b, const char *buf, size_t len)
{
    memset(b, 0, sizeof *b);
    b->buf = buf;
    b->len = len;
    b->line = 1;
}

/* Reads the segment at b->pos: its start and length; advances past its
 * terminator(s), counting lines. Returns false at the end. */
static bool segment(struct hl7_batch *b, const char **seg, size_t *n, long *line)
{
    while (b->pos < b->len && is_end(b->buf[b->pos])) {
        if (b->buf[b->pos] == '\n' || (b->buf[b->pos] == '\r' &&
                                        (b->pos + 1 >= b->len || b->buf[b->pos + 1] != '\n')))
            b->line++;
        b->pos++;
    }
    if (b->pos >= b->len)
        return false;
    size_t s = b->pos;
    while (b->pos < b->len && !is_end(b->buf[b->pos]))
        b->pos++;
    *seg = b->buf + s;
    *n = b->pos - s;
    *line = b->line;
    return true;
}

/* BTS-1 against the count since the last BHS. */
static void check_bts(struct hl7_batch *b, const char *p, size_t n)
{
    if (n < 5)
        return;
    char sep = p[3];
    const char *f = p + 4, *end = p + n;
    const char *e = memchr(f, sep, (size_t)(end - f));
    if (e == NULL)
        e = end;
    if (e == f)
        return;
    char num[24];
    size_t k = (size_t)(e - f) < sizeof num - 1 ? (size_t)(e - f) : sizeof num - 1;
    memcpy(num, f, k);
    num[k] = '\0';
    char *stop;
    long v = strtol(num, &stop, 10);
    if (*stop != '\0' || v != b->batch_msgs)
        b->bts_mismatches++;
}

int hl7_batch_next(struct hl7_batch *b, const char **msg, size_t *mlen, long *line)
{
    const char *seg;
    size_t n;
    long l;
    /* Find the next MSH. */
    for (;;) {
        size_t before = b->pos;
        long before_line = b->line;
        if (!segment(b, &seg, &n, &l))
            return 0;
        if (starts(seg, n, "MSH")) {
            b->pos = (size_t)(seg - b->buf);
            b->line = l;
            (void)before;
            (void)before_line;
            break;
        }
        if (starts(seg, n, "BHS"))
            b->batch_msgs = 0;
        else if (starts(seg, n, "BTS"))
            check_bts(b, seg, n);
    }
    /* Take segments until the next MSH or envelope segment. */
    const char *start = b->buf + b->pos;
    *line = b->line;
    const char *last_end = start;
    bool first = true;
    for (;;) {
        size_t save = b->pos;
        long save_line = b->line;
        if (!segment(b, &seg, &n, &l))
            break;
        if (!first && (starts(seg, n, "MSH") || envelope(seg, n))) {
            b->pos = save;
            b->line = save_line;
            break;
        }
        first = false;
        last_end = seg + n;
    }
    *msg = start;
    *mlen = (size_t)(last_end - start);
    b->batch_msgs++;
    return 1;
}
