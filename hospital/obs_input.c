/*
 * obs_input: record-at-a-time reading of NDJSON, CSV and FHIR input
 * (contract in obs_input.h).
 *
 * DESIGN
 *
 * Lines are read byte by byte (getc_unlocked) into one buffer of
 * OBS_INPUT_LINE_MAX bytes allocated with the reader, rather than with
 * getline(), whose buffer grows with the longest line: a file with a 2 GB
 * line must cost one error message, not 2 GB of memory. A CSV record that
 * spans lines (a quoted line break) is assembled in the same buffer.
 *
 * A FHIR Bundle yields many records from one parse; the mapped entries wait
 * in `pending` and are handed out one per call, so callers see one record
 * at a time whatever the format.
 */
#include "obs_input.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "obs_json.h"

struct pending {
    long entry; /* Bundle entry index, -1 for a lone resource */
    bool ok;
    struct observation obs;
    char err[384];
};

struct obs_input {
    FILE *f;
    char name[256];
    enum obs_format fmt;
    struct fhir_options fopt;
    uint64_t bytes;
    uint64_t records;
    long line;     /* physical lines consumed */
    bool eof;      /* the stream has ended */
    bool done;     /* EOF or ERROR already returned */
    enum obs_input_status final_status;
    char final_err[512];

    char *buf; /* OBS_INPUT_LINE_MAX + 1 bytes */
    size_t len;
    bool have_line; /* buf holds a line read ahead by format guessing */
    long have_line_no;

    bool csv_header_done;
    struct obs_csv_columns cols;

    bool fhir_doc_mode; /* one pretty-printed document, not NDJSON */
    bool fhir_seen_line;
    struct pending *pending;
    size_t npending, pending_pos, pending_cap;
    long pending_line; /* line of the NDJSON resource the entries came from, 0: doc */
};

static const char *const format_names[] = {"auto", "ndjson", "csv", "fhir"};

int obs_format_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, format_names[i]) == 0)
            return i;
    return -1;
}

const char *obs_format_name(enum obs_format fmt)
{
    return format_names[fmt];
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

struct obs_input *obs_input_new(FILE *f, const char *name, enum obs_format fmt,
                                const struct fhir_options *fopt)
{
    struct obs_input *in = calloc(1, sizeof *in);
    if (in == NULL)
        return NULL;
    in->buf = malloc(OBS_INPUT_LINE_MAX + 1);
    if (in->buf == NULL) {
        free(in);
        return NULL;
    }
    in->f = f;
    snprintf(in->name, sizeof in->name, "%s", name);
    if (fopt != NULL)
        in->fopt = *fopt;
    if (fmt == OBS_FORMAT_AUTO) {
        if (ends_with(name, ".ndjson") || ends_with(name, ".jsonl"))
            fmt = OBS_FORMAT_NDJSON;
        else if (ends_with(name, ".csv"))
            fmt = OBS_FORMAT_CSV;
        else if (ends_with(name, ".json"))
            fmt = OBS_FORMAT_FHIR;
    }
    in->fmt = fmt;
    return in;
}

void obs_input_destroy(struct obs_input *in)
{
    if (in == NULL)
        return;
    free(in->pending);
    free(in->buf);
    free(in);
}

uint64_t obs_input_bytes(const struct obs_input *in)
{
    return in->bytes;
}

uint64_t obs_input_records(const struct obs_input *in)
{
    return in->records;
}

enum obs_format obs_input_format(const struct obs_input *in)
{
    return in->fmt;
}

/* Reads one physical line into DST (CAP bytes of room, NUL added after),
 * without its '\n' and a '\r' before it. Returns 1 with *LEN set, 0 at the
 * end of the stream (nothing read), or -1 if the line did not fit (the rest
 * of it is consumed and dropped) or the stream failed (in->eof set). */
static int read_line(struct obs_input *in, char *dst, size_t cap, size_t *len)
{
    size_t n = 0;
    bool overlong = false, any = false;
    int c;
    while ((c = getc_unlocked(in->f)) != EOF) {
        any = true;
        in->bytes++;
        if (c == '\n')
            break;
        if (n + 1 < cap)
            dst[n++] = (char)c;
        else
            overlong = true;
    }
    if (c == EOF) {
        in->eof = true;
        if (!any)
            return 0;
    }
    in->line++;
    if (n > 0 && dst[n - 1] == '\r')
        n--;
    dst[n] = '\0';
    *len = n;
    return overlong ? -1 : 1;
}

static enum obs_input_status invalid(struct obs_input *in, long line, char *e, size_t es,
                                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static enum obs_input_status invalid(struct obs_input *in, long line, char *e, size_t es,
                                     const char *fmt, ...)
{
    char why[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(e, es, "%s:%ld: %s", in->name, line, why);
    else
        snprintf(e, es, "%s: %s", in->name, why);
    in->records++;
    return OBS_INPUT_INVALID;
}

static enum obs_input_status finish(struct obs_input *in, enum obs_input_status st, char *e,
                                    size_t es)
{
    in->done = true;
    in->final_status = st;
    if (st == OBS_INPUT_ERROR)
        snprintf(in->final_err, sizeof in->final_err, "%s", e);
    return st;
}

/* The next non-blank line into in->buf (or the one read ahead). Returns 1,
 * 0 at the end, -1 for an overlong line (in->len is then 0). */
static int next_line(struct obs_input *in, long *line_no)
{
    if (in->have_line) {
        in->have_line = false;
        *line_no = in->have_line_no;
        return 1;
    }
    for (;;) {
        int r = read_line(in, in->buf, OBS_INPUT_LINE_MAX + 1, &in->len);
        if (r == 0)
            return 0;
        *line_no = in->line;
        if (r < 0) {
            in->len = 0;
            return -1;
        }
        if (in->len > strspn(in->buf, " \t"))
            return 1;
    }
}

static bool is_fhir_line(const char *s)
{
    return strstr(s, "\"resourceType\"") != NULL;
}

/* Reads the first non-blank line and decides the format from it. */
static int guess_format(struct obs_input *in)
{
    long line_no = 0;
    int r = next_line(in, &line_no);
    if (r <= 0) {
        in->fmt = OBS_FORMAT_NDJSON; /* empty input: no records in any format */
        if (r < 0) {
            /* An overlong first line: report it as an NDJSON line. */
            in->have_line = false;
            return -1;
        }
        return 0;
    }
    const char *p = in->buf + strspn(in->buf, " \t\xEF\xBB\xBF");
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (*p == '{' && (n == 1 || is_fhir_line(p)))
        in->fmt = OBS_FORMAT_FHIR;
    else if (*p == '{')
        in->fmt = OBS_FORMAT_NDJSON;
    else
        in->fmt = OBS_FORMAT_CSV;
    in->have_line = true;
    in->have_line_no = line_no;
    return 0;
}

/* ---- FHIR ---------------------------------------------------------------- */

static int collect(void *arg, long entry, const struct observation *obs, const char *err)
{
    struct obs_input *in = arg;
    if (in->npending == in->pending_cap) {
        size_t cap = in->pending_cap ? in->pending_cap * 2 : 16;
        if (cap > OBS_INPUT_ENTRIES_MAX)
            cap = OBS_INPUT_ENTRIES_MAX;
        if (in->npending >= cap)
            return 1;
        struct pending *p = realloc(in->pending, cap * sizeof *p);
        if (p == NULL)
            return 1;
        in->pending = p;
        in->pending_cap = cap;
    }
    struct pending *p = &in->pending[in->npending++];
    p->entry = entry;
    p->ok = obs != NULL;
    if (obs != NULL)
        p->obs = *obs;
    else
        snprintf(p->err, sizeof p->err, "%s", err);
    return 0;
}

static enum obs_input_status take_pending(struct obs_input *in, struct observation *out, char *e,
                                          size_t es)
{
    struct pending *p = &in->pending[in->pending_pos++];
    if (p->ok) {
        *out = p->obs;
        in->records++;
        return OBS_INPUT_RECORD;
    }
    if (p->entry >= 0)
        return invalid(in, in->pending_line, e, es, "Bundle.entry[%ld]: %s", p->entry, p->err);
    return invalid(in, in->pending_line, e, es, "%s", p->err);
}

/* Reads the rest of the stream after the line in in->buf into one
 * document, bounded by OBS_INPUT_DOC_MAX. Returns it (malloc'd) or NULL. */
static char *slurp(struct obs_input *in, size_t *len, char *e, size_t es)
{
    size_t cap = 1 << 16, n = 0;
    char *doc = malloc(cap);
    if (doc == NULL)
        goto oom;
    if (in->have_line) {
        in->have_line = false;
        if (in->len + 2 > cap) {
            cap = in->len + 2;
            char *d = realloc(doc, cap);
            if (d == NULL)
                goto oom;
            doc = d;
        }
        memcpy(doc, in->buf, in->len);
        doc[in->len] = '\n';
        n = in->len + 1;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= OBS_INPUT_DOC_MAX) {
                snprintf(e, es, "%s: FHIR document larger than %d bytes", in->name,
                         OBS_INPUT_DOC_MAX);
                free(doc);
                return NULL;
            }
            cap *= 2;
            char *d = realloc(doc, cap);
            if (d == NULL)
                goto oom;
            doc = d;
        }
        size_t got = fread(doc + n, 1, cap - n, in->f);
        n += got;
        in->bytes += got;
        if (got == 0)
            break;
    }
    if (ferror(in->f)) {
        snprintf(e, es, "%s: could not read: read error", in->name);
        free(doc);
        return NULL;
    }
    in->eof = true;
    *len = n;
    return doc;
oom:
    free(doc);
    snprintf(e, es, "%s: out of memory reading the FHIR document", in->name);
    return NULL;
}

static enum obs_input_status next_fhir(struct obs_input *in, struct observation *out, char *e,
                                       size_t es)
{
    char why[1024];
    for (;;) {
        if (in->pending_pos < in->npending)
            return take_pending(in, out, e, es);
        in->npending = in->pending_pos = 0;
        if (in->fhir_doc_mode)
            return finish(in, OBS_INPUT_EOF, e, es);

        long line_no = 0;
        int r = next_line(in, &line_no);
        if (r == 0)
            return finish(in, OBS_INPUT_EOF, e, es);
        if (r < 0)
            return invalid(in, line_no, e, es, "line longer than %d bytes", OBS_INPUT_LINE_MAX);
        const char *p = in->buf + strspn(in->buf, " \t");
        size_t n = strlen(p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (!in->fhir_seen_line) {
            in->fhir_seen_line = true;
            /* Pretty-printed JSON does not close its object on line one. */
            if (*p == '{' && !(n > 1 && p[n - 1] == '}')) {
                in->have_line = true;
                in->fhir_doc_mode = true;
                size_t len;
                char *doc = slurp(in, &len, e, es);
                if (doc == NULL)
                    return finish(in, OBS_INPUT_ERROR, e, es);
                in->pending_line = 0;
                long calls = fhir_parse(doc, len, &in->fopt, collect, in, why, sizeof why);
                free(doc);
                if (calls < 0)
                    return invalid(in, 0, e, es, "%s", why);
                if ((size_t)calls > in->npending) {
                    snprintf(e, es, "%s: more than %d Bundle entries", in->name,
                             OBS_INPUT_ENTRIES_MAX);
                    return finish(in, OBS_INPUT_ERROR, e, es);
                }
                continue;
            }
        }
        in->pending_line = line_no;
        long calls = fhir_parse(p, n, &in->fopt, collect, in, why, sizeof why);
        if (calls < 0)
            return invalid(in, line_no, e, es, "%s", why);
        if ((size_t)calls > in->npending) {
            snprintf(e, es, "%s:%ld: more than %d Bundle entries", in->name, line_no,
                     OBS_INPUT_ENTRIES_MAX);
            return finish(in, OBS_INPUT_ERROR, e, es);
        }
    }
}

/* ---- NDJSON and CSV ------------------------------------------------------ */

static enum obs_input_status next_ndjson(struct obs_input *in, struct observation *out, char *e,
                                         size_t es)
{
    char why[1024];
    long line_no = 0;
    int r = next_line(in, &line_no);
    if (r == 0)
        return finish(in, OBS_INPUT_EOF, e, es);
    if (r < 0)
        return invalid(in, line_no, e, es, "line longer than %d bytes", OBS_INPUT_LINE_MAX);
    if (obs_json_parse(in->buf, in->len, out, why, sizeof why) != 0)
        return invalid(in, line_no, e, es, "%s", why);
    in->records++;
    return OBS_INPUT_RECORD;
}

/* Reads one CSV record (possibly several lines) into in->buf. Returns 1,
 * 0 at the end, -1 with the reason in WHY. */
static int read_csv_record(struct obs_input *in, long *line_no, char *why, size_t whysz)
{
    int r = next_line(in, line_no);
    if (r == 0)
        return 0;
    if (r < 0) {
        snprintf(why, whysz, "line longer than %d bytes", OBS_INPUT_LINE_MAX);
        return -1;
    }
    while (obs_csv_open_quote(in->buf, in->len)) {
        if (in->len + 2 > OBS_INPUT_LINE_MAX) {
            snprintf(why, whysz, "record longer than %d bytes", OBS_INPUT_LINE_MAX);
            return -1;
        }
        size_t more;
        in->buf[in->len] = '\n';
        r = read_line(in, in->buf + in->len + 1, OBS_INPUT_LINE_MAX + 1 - (in->len + 1), &more);
        if (r == 0) {
            snprintf(why, whysz, "unterminated quoted field (the file ends inside it)");
            return -1;
        }
        if (r < 0) {
            snprintf(why, whysz, "record longer than %d bytes", OBS_INPUT_LINE_MAX);
            return -1;
        }
        in->len += 1 + more;
    }
    return 1;
}

static enum obs_input_status next_csv(struct obs_input *in, struct observation *out, char *e,
                                      size_t es)
{
    char why[1024];
    char *fields[OBS_CSV_MAX_FIELDS];
    long line_no = 0;
    if (!in->csv_header_done) {
        int r = read_csv_record(in, &line_no, why, sizeof why);
        if (r == 0)
            return finish(in, OBS_INPUT_EOF, e, es);
        int n = r < 0 ? -1 : obs_csv_split(in->buf, in->len, fields, why, sizeof why);
        if (n < 0 || obs_csv_columns_init(&in->cols, fields, n, why, sizeof why) != 0) {
            snprintf(e, es, "%s:%ld: %s", in->name, line_no, why);
            return finish(in, OBS_INPUT_ERROR, e, es);
        }
        in->csv_header_done = true;
    }
    int r = read_csv_record(in, &line_no, why, sizeof why);
    if (r == 0)
        return finish(in, OBS_INPUT_EOF, e, es);
    if (r < 0)
        return invalid(in, line_no, e, es, "%s", why);
    int n = obs_csv_split(in->buf, in->len, fields, why, sizeof why);
    if (n < 0 || obs_csv_map(&in->cols, fields, n, out, why, sizeof why) != 0)
        return invalid(in, line_no, e, es, "%s", why);
    in->records++;
    return OBS_INPUT_RECORD;
}

enum obs_input_status obs_input_next(struct obs_input *in, struct observation *out,
                                     char *errstr, size_t errstr_size)
{
    if (in->done) {
        if (in->final_status == OBS_INPUT_ERROR)
            snprintf(errstr, errstr_size, "%s", in->final_err);
        return in->final_status;
    }
    if (in->fmt == OBS_FORMAT_AUTO && guess_format(in) < 0)
        return invalid(in, in->line, errstr, errstr_size, "line longer than %d bytes",
                       OBS_INPUT_LINE_MAX);
    enum obs_input_status st;
    switch (in->fmt) {
    case OBS_FORMAT_CSV: st = next_csv(in, out, errstr, errstr_size); break;
    case OBS_FORMAT_FHIR: st = next_fhir(in, out, errstr, errstr_size); break;
    default: st = next_ndjson(in, out, errstr, errstr_size); break;
    }
    if (st == OBS_INPUT_EOF && ferror(in->f)) {
        snprintf(errstr, errstr_size, "%s: could not read: read error", in->name);
        in->final_status = OBS_INPUT_ERROR;
        snprintf(in->final_err, sizeof in->final_err, "%s", errstr);
        return OBS_INPUT_ERROR;
    }
    return st;
}
