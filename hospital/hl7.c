/*
 * hl7: the ER7 parser (contract in hl7.h).
 *
 * DESIGN
 *
 * Written by hand: Debian packages no C library for HL7 v2 (the ones that
 * exist are Java, Python or C++ with their own message models), and ER7 is
 * small -- five delimiter bytes and an escape syntax.
 *
 * One pass over the message records where each segment and each field
 * starts (two growable arrays, kept between messages, so a connection
 * parses its stream without allocating once warm). Repetitions, components
 * and subcomponents are split on access by scanning the field: fields are
 * short and the mapper reads a few dozen values per message, so an index of
 * every component would cost more than it saves.
 *
 * Splitting needs no escape awareness: an ER7 writer must escape every
 * delimiter inside data, and an escape sequence holds only letters, digits
 * and '.', so a delimiter byte in the raw text is always a delimiter.
 *
 * MSH is numbered differently from every other segment (MSH-1 is the field
 * separator itself), so its field array gets a synthetic entry for MSH-1
 * pointing at the separator byte: field N is then entry N for every segment.
 */
#include "hl7.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct hl7_delims hl7_default_delims = {'|', '^', '~', '\\', '&'};

struct span {
    const char *p;
    size_t len;
};

struct seg {
    char name[4];
    size_t first; /* index in fields[] of field 0 (the segment id) */
    int n;        /* fields[first .. first + n] hold fields 0..n */
};

struct hl7_msg {
    struct hl7_delims d;
    struct seg *segs;
    size_t n_segs, cap_segs;
    struct span *fields;
    size_t n_fields, cap_fields;
};

struct hl7_msg *hl7_msg_new(void)
{
    return calloc(1, sizeof(struct hl7_msg));
}

void hl7_msg_destroy(struct hl7_msg *m)
{
    if (m == NULL)
        return;
    free(m->segs);
    free(m->fields);
    free(m);
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem, size_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return -1;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    if (n > max)
        n = max;
    void *p = realloc(*arr, n * elem);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

static int add_field(struct hl7_msg *m, const char *p, size_t len)
{
    if (grow((void **)&m->fields, &m->cap_fields, m->n_fields + 1, sizeof *m->fields,
             HL7_MAX_FIELDS) != 0)
        return -1;
    m->fields[m->n_fields].p = p;
    m->fields[m->n_fields].len = len;
    m->n_fields++;
    return 0;
}

static bool delim_ok(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !isalnum(c);
}

/* Reads the delimiters from the start of an MSH segment (S, LEN bytes). */
static int read_delims(struct hl7_msg *m, const char *s, size_t len, char *errstr,
                       size_t errstr_size)
{
    if (len < 8) {
        snprintf(errstr, errstr_size, "MSH is too short to declare its delimiters");
        return -1;
    }
    struct hl7_delims d = {s[3], s[4], s[5], s[6], s[7]};
    const char all[5] = {d.field, d.comp, d.rep, d.esc, d.sub};
    for (int i = 0; i < 5; i++) {
        if (!delim_ok((unsigned char)all[i])) {
            snprintf(errstr, errstr_size,
                     "MSH-1/MSH-2 delimiter %d (0x%02x) is not a printable non-alphanumeric "
                     "character",
                     i + 1, (unsigned char)all[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (all[i] == all[j]) {
                snprintf(errstr, errstr_size, "MSH-1/MSH-2 declare '%c' twice as a delimiter",
                         all[i]);
                return -1;
            }
    }
    m->d = d;
    return 0;
}

/* Splits one segment (S, LEN bytes, no terminator) into fields. */
static int add_segment(struct hl7_msg *m, const char *s, size_t len, char *errstr,
                       size_t errstr_size)
{
    size_t no = m->n_segs + 1;
    if (len < 3 || !(isupper((unsigned char)s[0]) || isdigit((unsigned char)s[0])) ||
        !(isupper((unsigned char)s[1]) || isdigit((unsigned char)s[1])) ||
        !(isupper((unsigned char)s[2]) || isdigit((unsigned char)s[2])) ||
        (len > 3 && s[3] != m->d.field)) {
        snprintf(errstr, errstr_size,
                 "segment %zu: does not start with a segment id of three upper-case letters or "
                 "digits followed by '%c'",
                 no, m->d.field);
        return -1;
    }
    if (grow((void **)&m->segs, &m->cap_segs, m->n_segs + 1, sizeof *m->segs, HL7_MAX_SEGMENTS) !=
        0) {
        snprintf(errstr, errstr_size, "more than %d segments", HL7_MAX_SEGMENTS);
        return -1;
    }
    struct seg *g = &m->segs[m->n_segs];
    memcpy(g->name, s, 3);
    g->name[3] = '\0';
    g->first = m->n_fields;
    bool msh = memcmp(s, "MSH", 3) == 0;
    if (add_field(m, s, 3) != 0)
        goto too_many;
    if (msh) {
        /* MSH-1: the separator itself; MSH-2 runs to the next separator. A
         * later MSH of three bytes alone has no MSH-1 (its s + 3 may be past
         * the buffer). */
        if (add_field(m, s + 3, len > 3 ? 1 : 0) != 0)
            goto too_many;
    }
    if (len > 3) {
        const char *p = s + 4, *end = s + len;
        for (;;) {
            const char *q = memchr(p, m->d.field, (size_t)(end - p));
            if (q == NULL)
                q = end;
            if (add_field(m, p, (size_t)(q - p)) != 0)
                goto too_many;
            if (q == end)
                break;
            p = q + 1;
        }
    }
    g->n = (int)(m->n_fields - g->first - 1);
    m->n_segs++;
    return 0;
too_many:
    snprintf(errstr, errstr_size, "more than %d fields", HL7_MAX_FIELDS);
    return -1;
}

int hl7_parse(struct hl7_msg *m, const char *buf, size_t len, char *errstr, size_t errstr_size)
{
    m->n_segs = 0;
    m->n_fields = 0;
    m->d = hl7_default_delims;
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n' || buf[i] == ' ' || buf[i] == '\t'))
        i++;
    if (len - i < 3 || memcmp(buf + i, "MSH", 3) != 0) {
        snprintf(errstr, errstr_size, "the message does not start with an MSH segment");
        return -1;
    }
    size_t first_end = i;
    while (first_end < len && buf[first_end] != '\r' && buf[first_end] != '\n')
        first_end++;
    if (read_delims(m, buf + i, first_end - i, errstr, errstr_size) != 0)
        return -1;
    while (i < len) {
        size_t j = i;
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        if (j > i && add_segment(m, buf + i, j - i, errstr, errstr_size) != 0) {
            m->n_segs = 0;
            m->n_fields = 0;
            return -1;
        }
        i = j + 1;
    }
    return 0;
}

const struct hl7_delims *hl7_delims(const struct hl7_msg *m)
{
    return &m->d;
}

size_t hl7_segment_count(const struct hl7_msg *m)
{
    return m->n_segs;
}

const char *hl7_segment_name(const struct hl7_msg *m, size_t seg)
{
    return m->segs[seg].name;
}

long hl7_segment_find(const struct hl7_msg *m, const char *name, size_t from)
{
    for (size_t i = from; i < m->n_segs; i++)
        if (strcmp(m->segs[i].name, name) == 0)
            return (long)i;
    return -1;
}

int hl7_field_count(const struct hl7_msg *m, size_t seg)
{
    return seg < m->n_segs ? m->segs[seg].n : 0;
}

static bool is_msh_literal(const struct hl7_msg *m, size_t seg, int field)
{
    return (field == 1 || field == 2) && strcmp(m->segs[seg].name, "MSH") == 0;
}

const char *hl7_raw(const struct hl7_msg *m, size_t seg, int field, size_t *len)
{
    *len = 0;
    if (seg >= m->n_segs || field < 0 || field > m->segs[seg].n)
        return NULL;
    const struct span *f = &m->fields[m->segs[seg].first + (size_t)field];
    *len = f->len;
    return f->p;
}

/* The N-th (from 1) piece of SPAN split at SEP, or an empty span. */
static struct span piece(struct span s, char sep, int n)
{
    struct span out = {s.p, 0};
    if (n < 1 || s.p == NULL)
        return out;
    const char *p = s.p, *end = s.p + s.len;
    for (int i = 1; i < n; i++) {
        const char *q = memchr(p, sep, (size_t)(end - p));
        if (q == NULL)
            return out;
        p = q + 1;
    }
    const char *q = memchr(p, sep, (size_t)(end - p));
    out.p = p;
    out.len = (size_t)((q ? q : end) - p);
    return out;
}

int hl7_repetitions(const struct hl7_msg *m, size_t seg, int field)
{
    size_t len;
    const char *p = hl7_raw(m, seg, field, &len);
    if (p == NULL || len == 0)
        return 0;
    if (is_msh_literal(m, seg, field))
        return 1;
    int n = 1;
    for (size_t i = 0; i < len; i++)
        if (p[i] == m->d.rep)
            n++;
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Appends C to OUT at *N; false when full. */
static bool put(char *out, size_t outsz, size_t *n, char c)
{
    if (*n + 1 >= outsz)
        return false;
    out[(*n)++] = c;
    return true;
}

/* Decodes the escape sequence body B (LEN bytes, between the escape
 * characters) into OUT. Returns false when OUT is full or it spells NUL. */
static bool unescape_one(const struct hl7_delims *d, const char *b, size_t blen, char *out,
                         size_t outsz, size_t *n)
{
    if (blen == 1) {
        switch (b[0]) {
        case 'F': return put(out, outsz, n, d->field);
        case 'S': return put(out, outsz, n, d->comp);
        case 'T': return put(out, outsz, n, d->sub);
        case 'R': return put(out, outsz, n, d->rep);
        case 'E': return put(out, outsz, n, d->esc);
        default: return true; /* \H\ \N\ and other formatting: dropped */
        }
    }
    if (b[0] == 'X' && blen % 2 == 1) {
        for (size_t i = 1; i < blen; i += 2) {
            int hi = hexval(b[i]), lo = hexval(b[i + 1]);
            if (hi < 0 || lo < 0)
                return true; /* not hex after all: dropped as an unknown sequence */
        }
        for (size_t i = 1; i < blen; i += 2) {
            char c = (char)(hexval(b[i]) * 16 + hexval(b[i + 1]));
            if (c == '\0' || !put(out, outsz, n, c))
                return false;
        }
        return true;
    }
    if (blen == 3 && memcmp(b, ".br", 3) == 0)
        return put(out, outsz, n, '\n');
    return true; /* \.sp\ \Cxxyy\ \Mxxyyzz\ \Zxx\ ...: dropped */
}

/* Copies SPAN unescaped into OUT. Returns the length or -1. */
static long unescape(const struct hl7_delims *d, struct span s, char *out, size_t outsz)
{
    size_t n = 0;
    if (outsz == 0)
        return -1;
    out[0] = '\0';
    if (s.len == 2 && s.p[0] == '"' && s.p[1] == '"')
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == d->esc) {
            const char *close = memchr(s.p + i + 1, d->esc, s.len - i - 1);
            size_t blen = close ? (size_t)(close - (s.p + i + 1)) : 0;
            bool plain = close != NULL && blen > 0;
            for (size_t k = 0; plain && k < blen; k++) {
                unsigned char b = (unsigned char)s.p[i + 1 + k];
                plain = isalnum(b) || b == '.';
            }
            if (plain) {
                if (!unescape_one(d, s.p + i + 1, blen, out, outsz, &n))
                    goto fail;
                i += blen + 1;
                continue;
            }
            /* a lone escape character: kept as sent */
        }
        if (c == '\0' || !put(out, outsz, &n, c))
            goto fail;
    }
    out[n] = '\0';
    return (long)n;
fail:
    out[0] = '\0';
    return -1;
}

long hl7_get(const struct hl7_msg *m, size_t seg, int field, int rep, int comp, int sub,
             char *out, size_t outsz)
{
    if (outsz == 0)
        return -1;
    out[0] = '\0';
    size_t len;
    const char *p = hl7_raw(m, seg, field, &len);
    if (p == NULL)
        return 0;
    struct span s = {p, len};
    if (is_msh_literal(m, seg, field)) {
        if (len + 1 > outsz || memchr(p, '\0', len) != NULL)
            return -1;
        memcpy(out, p, len);
        out[len] = '\0';
        return (long)len;
    }
    s = piece(s, m->d.rep, rep);
    s = piece(s, m->d.comp, comp);
    s = piece(s, m->d.sub, sub);
    return unescape(&m->d, s, out, outsz);
}

long hl7_escape(const char *in, const struct hl7_delims *d, char *out, size_t outsz)
{
    size_t n = 0;
    if (outsz == 0)
        return -1;
    for (const char *p = in; *p; p++) {
        const char *rep = NULL;
        if (*p == d->field)
            rep = "F";
        else if (*p == d->comp)
            rep = "S";
        else if (*p == d->sub)
            rep = "T";
        else if (*p == d->rep)
            rep = "R";
        else if (*p == d->esc)
            rep = "E";
        else if (*p == '\r')
            rep = "X0D";
        else if (*p == '\n')
            rep = "X0A";
        if (rep == NULL) {
            if (!put(out, outsz, &n, *p))
                goto fail;
            continue;
        }
        if (!put(out, outsz, &n, d->esc))
            goto fail;
        for (const char *r = rep; *r; r++)
            if (!put(out, outsz, &n, *r))
                goto fail;
        if (!put(out, outsz, &n, d->esc))
            goto fail;
    }
    out[n] = '\0';
    return (long)n;
fail:
    out[0] = '\0';
    return -1;
}
