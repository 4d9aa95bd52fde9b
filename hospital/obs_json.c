/*
 * obs_json: NDJSON and CSV records <-> struct observation (contract in
 * obs_json.h).
 *
 * DESIGN
 *
 * Both text forms go through one table of the thirteen Avro fields and one
 * function that sets a field from its text (set_text), so a CSV cell and a
 * JSON string are held to the same rules and give the same messages. JSON
 * adds only its types: numbers stay numbers (a JSON string "4.2" for value is
 * refused, since a feed that quotes numbers usually quotes other things
 * wrongly too), times may be integers.
 *
 * CSV is split by hand rather than with a library: RFC 4180 is small, and
 * doing it here keeps every byte bounded by the caller's record buffer. The
 * split is in place (a field never grows when its quotes come off), so it
 * allocates nothing.
 */
#include "obs_json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum field {
    F_OBSERVATION_ID,
    F_STUDY_ID,
    F_SITE_ID,
    F_SUBJECT_ID,
    F_LOINC,
    F_VALUE,
    F_UNIT,
    F_REF_LOW,
    F_REF_HIGH,
    F_EFFECTIVE_TIME,
    F_ISSUED_TIME,
    F_STATUS,
    F_VISIT,
    F_COUNT,
};

enum kind { K_STRING, K_NUMBER, K_TIME, K_STATUS };

static const struct {
    const char *name;
    enum kind kind;
    bool required;
} fields[F_COUNT] = {
    {"observation_id", K_STRING, true}, {"study_id", K_STRING, true},
    {"site_id", K_STRING, true},        {"subject_id", K_STRING, true},
    {"loinc", K_STRING, true},          {"value", K_NUMBER, false},
    {"unit", K_STRING, false},          {"ref_low", K_NUMBER, false},
    {"ref_high", K_NUMBER, false},      {"effective_time", K_TIME, true},
    {"issued_time", K_TIME, false},     {"status", K_STATUS, true},
    {"visit", K_STRING, false},
};

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- times --------------------------------------------------------------- */

/* Days from 1970-01-01 to Y-M-D in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* Reads exactly N digits at *P into *OUT and advances *P. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

int obs_time_parse(const char *s, bool allow_date, int64_t *ms, char *errstr,
                   size_t errstr_size)
{
    size_t n = strlen(s);
    if (n == 0)
        return fail(errstr, errstr_size, "time is empty");
    if (strspn(s, "0123456789") == n) {
        /* Epoch milliseconds: at most 15 digits keeps it inside year 9999
         * and far from int64 overflow. */
        if (n > 15)
            return fail(errstr, errstr_size, "time '%.32s' is out of range", s);
        *ms = (int64_t)strtoll(s, NULL, 10);
        return 0;
    }
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    int64_t offset_min = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        goto bad;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return fail(errstr, errstr_size, "time '%.40s' has no such date", s);
    if (*p == '\0') {
        if (!allow_date)
            return fail(errstr, errstr_size,
                        "time '%.40s' has no time of day (RFC 3339 date-time wanted)", s);
    } else {
        if (*p != 'T' && *p != 't' && *p != ' ')
            goto bad;
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
            !digits(&p, 2, &sec))
            goto bad;
        if (h > 23 || mi > 59 || sec > 60)
            return fail(errstr, errstr_size, "time '%.40s' has no such time of day", s);
        if (*p == '.') {
            p++;
            int nd = 0;
            while (*p >= '0' && *p <= '9') {
                if (nd < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
                nd++;
                p++;
            }
            if (nd == 0 || nd > 9)
                goto bad;
            for (; nd < 3; nd++)
                frac_ms *= 10;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                goto bad;
            offset_min = sign * (oh * 60 + om);
        } else {
            return fail(errstr, errstr_size, "time '%.40s' has no time zone (Z or +hh:mm)", s);
        }
        if (*p != '\0')
            goto bad;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    *ms = secs * 1000 + frac_ms;
    return 0;
bad:
    return fail(errstr, errstr_size,
                "time '%.40s' is not RFC 3339 (e.g. 2025-01-06T08:30:00Z) or epoch milliseconds",
                s);
}

char *obs_time_format(int64_t ms, char *buf, size_t cap)
{
    const int64_t max_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
    if (ms < 0)
        ms = 0;
    if (ms > max_ms)
        ms = max_ms;
    int64_t secs = ms / 1000, days = secs / 86400, rem = secs % 86400;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, (int)(rem / 3600),
             (int)(rem / 60 % 60), (int)(rem % 60), (int)(ms % 1000));
    return buf;
}

/* ---- fields -------------------------------------------------------------- */

/* Well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF): Avro strings must be, and a CSV export in Latin-1 is better
 * refused with its line number here than by the encoder later. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2;
            min = 0x80;
            c &= 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3;
            min = 0x800;
            c &= 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4;
            min = 0x10000;
            c &= 0x07;
        } else {
            return false;
        }
        if (i + len > n)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            c = (c << 6) | (s[i + k] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

int obs_field_copy(char *dst, size_t cap, const char *name, const char *value, bool required,
                   char *errstr, size_t errstr_size)
{
    size_t n = strlen(value);
    dst[0] = '\0';
    if (n >= cap)
        return fail(errstr, errstr_size, "%s is %zu bytes, longer than %zu", name, n, cap - 1);
    if (required && n == 0)
        return fail(errstr, errstr_size, "%s is empty", name);
    if (!utf8_valid((const unsigned char *)value, n))
        return fail(errstr, errstr_size, "%s is not valid UTF-8", name);
    memcpy(dst, value, n + 1);
    return 0;
}

static int parse_number(const char *name, const char *v, double *out, char *e, size_t es)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end != '\0')
        return fail(e, es, "%s '%.40s' is not a number", name, v);
    if (!isfinite(d) || errno == ERANGE)
        return fail(e, es, "%s '%.40s' is not a finite number", name, v);
    *out = d;
    return 0;
}

static char *string_field(struct observation *o, enum field f, size_t *cap)
{
    switch (f) {
    case F_OBSERVATION_ID: *cap = sizeof o->observation_id; return o->observation_id;
    case F_STUDY_ID: *cap = sizeof o->study_id; return o->study_id;
    case F_SITE_ID: *cap = sizeof o->site_id; return o->site_id;
    case F_SUBJECT_ID: *cap = sizeof o->subject_id; return o->subject_id;
    case F_LOINC: *cap = sizeof o->loinc; return o->loinc;
    case F_UNIT: *cap = sizeof o->unit; return o->unit;
    case F_VISIT: *cap = sizeof o->visit; return o->visit;
    default: *cap = 0; return NULL;
    }
}

static void set_number(struct observation *o, enum field f, bool has, double v)
{
    if (f == F_VALUE) {
        o->has_value = has;
        o->value = has ? v : 0.0;
    } else if (f == F_REF_LOW) {
        o->has_ref_low = has;
        o->ref_low = has ? v : 0.0;
    } else {
        o->has_ref_high = has;
        o->ref_high = has ? v : 0.0;
    }
}

/* Sets field F of O from its text V; "" means absent. */
static int set_text(struct observation *o, enum field f, const char *v, char *e, size_t es)
{
    const char *name = fields[f].name;
    if (*v == '\0' && fields[f].required && fields[f].kind != K_STRING)
        return fail(e, es, "%s is empty", name);
    switch (fields[f].kind) {
    case K_STRING: {
        size_t cap;
        char *dst = string_field(o, f, &cap);
        return obs_field_copy(dst, cap, name, v, fields[f].required, e, es);
    }
    case K_NUMBER: {
        double d = 0.0;
        if (*v != '\0' && parse_number(name, v, &d, e, es) != 0)
            return -1;
        set_number(o, f, *v != '\0', d);
        return 0;
    }
    case K_TIME: {
        int64_t ms = 0;
        char why[160];
        if (*v != '\0' && obs_time_parse(v, false, &ms, why, sizeof why) != 0)
            return fail(e, es, "%s: %s", name, why);
        if (f == F_EFFECTIVE_TIME)
            o->effective_ms = ms;
        else
            o->issued_ms = ms;
        return 0;
    }
    case K_STATUS: {
        int st = obs_status_parse(v);
        if (st < 0)
            return fail(e, es,
                        "status '%.40s' is not final, amended, corrected, cancelled or "
                        "entered-in-error",
                        v);
        o->status = (enum obs_status)st;
        return 0;
    }
    }
    return fail(e, es, "internal error: field kind");
}

static void obs_clear(struct observation *o)
{
    memset(o, 0, sizeof *o);
}

/* ---- NDJSON -------------------------------------------------------------- */

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "unknown";
}

static int set_json(struct observation *o, enum field f, const json_t *j, char *e, size_t es)
{
    const char *name = fields[f].name;
    if (j == NULL || json_is_null(j)) {
        if (fields[f].required)
            return fail(e, es, "missing field %s", name);
        return 0;
    }
    switch (fields[f].kind) {
    case K_NUMBER:
        if (!json_is_number(j))
            return fail(e, es, "%s must be a number or null, not %s", name, json_type_name(j));
        set_number(o, f, true, json_number_value(j));
        return 0;
    case K_TIME:
        if (json_is_integer(j)) {
            json_int_t v = json_integer_value(j);
            if (v < 0 || v > 253402300799999LL)
                return fail(e, es, "%s %" JSON_INTEGER_FORMAT " is out of range", name, v);
            if (f == F_EFFECTIVE_TIME)
                o->effective_ms = v;
            else
                o->issued_ms = v;
            return 0;
        }
        if (!json_is_string(j))
            return fail(e, es, "%s must be an RFC 3339 string or epoch milliseconds, not %s",
                        name, json_type_name(j));
        break;
    default:
        if (!json_is_string(j))
            return fail(e, es, "%s must be a string, not %s", name, json_type_name(j));
        break;
    }
    /* A string with an embedded NUL would be cut short silently. */
    if (strlen(json_string_value(j)) != json_string_length(j))
        return fail(e, es, "%s contains a NUL character", name);
    return set_text(o, f, json_string_value(j), e, es);
}

int obs_json_parse(const char *text, size_t len, struct observation *out, char *errstr,
                   size_t errstr_size)
{
    json_error_t jerr;
    obs_clear(out);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL)
        return fail(errstr, errstr_size, "not JSON: %s (column %d)", jerr.text, jerr.column);
    int rc = -1;
    if (!json_is_object(root)) {
        fail(errstr, errstr_size, "a record must be a JSON object, not %s", json_type_name(root));
        goto out;
    }
    for (int f = 0; f < F_COUNT; f++)
        if (set_json(out, (enum field)f, json_object_get(root, fields[f].name), errstr,
                     errstr_size) != 0)
            goto out;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* A bounded appender: once full, stays full. */
struct out {
    char *p;
    size_t len, cap;
    bool full;
};

static void put(struct out *w, const char *s, size_t n)
{
    if (w->full || w->len + n >= w->cap) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void puts_(struct out *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_json_string(struct out *w, const char *s)
{
    put(w, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*c;
            put(w, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            put(w, esc, 6);
        } else {
            put(w, (const char *)c, 1);
        }
    }
    put(w, "\"", 1);
}

static void put_key(struct out *w, enum field f)
{
    put(w, f == F_OBSERVATION_ID ? "{" : ",", 1);
    put_json_string(w, fields[f].name);
    put(w, ":", 1);
}

static void put_number(struct out *w, bool has, double v)
{
    char num[40];
    if (!has) {
        puts_(w, "null");
        return;
    }
    snprintf(num, sizeof num, "%.15g", v);
    /* %.15g may not round-trip every double; try 17 digits when it does not. */
    if (strtod(num, NULL) != v)
        snprintf(num, sizeof num, "%.17g", v);
    puts_(w, num);
}

size_t obs_json_format(const struct observation *o, char *buf, size_t cap)
{
    struct out w = {buf, 0, cap, cap == 0};
    char t[32];
    if (cap > 0)
        buf[0] = '\0';
    put_key(&w, F_OBSERVATION_ID);
    put_json_string(&w, o->observation_id);
    put_key(&w, F_STUDY_ID);
    put_json_string(&w, o->study_id);
    put_key(&w, F_SITE_ID);
    put_json_string(&w, o->site_id);
    put_key(&w, F_SUBJECT_ID);
    put_json_string(&w, o->subject_id);
    put_key(&w, F_LOINC);
    put_json_string(&w, o->loinc);
    put_key(&w, F_VALUE);
    put_number(&w, o->has_value, o->value);
    put_key(&w, F_UNIT);
    put_json_string(&w, o->unit);
    put_key(&w, F_REF_LOW);
    put_number(&w, o->has_ref_low, o->ref_low);
    put_key(&w, F_REF_HIGH);
    put_number(&w, o->has_ref_high, o->ref_high);
    put_key(&w, F_EFFECTIVE_TIME);
    put_json_string(&w, obs_time_format(o->effective_ms, t, sizeof t));
    put_key(&w, F_ISSUED_TIME);
    if (o->issued_ms == 0)
        puts_(&w, "0");
    else
        put_json_string(&w, obs_time_format(o->issued_ms, t, sizeof t));
    put_key(&w, F_STATUS);
    put_json_string(&w, obs_status_name(o->status));
    put_key(&w, F_VISIT);
    if (o->visit[0] == '\0')
        puts_(&w, "null");
    else
        put_json_string(&w, o->visit);
    put(&w, "}", 1);
    return w.full ? 0 : w.len;
}

/* ---- CSV ----------------------------------------------------------------- */

bool obs_csv_open_quote(const char *rec, size_t len)
{
    /* Only a quote that opens a field starts a quoted field; inside one,
     * "" is an escaped quote and a lone quote closes it. A quote in the
     * middle of an unquoted field is malformed and left to obs_csv_split
     * to report: counting it here would swallow the following lines. */
    bool in = false, field_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = rec[i];
        if (in) {
            if (c == '"') {
                if (i + 1 < len && rec[i + 1] == '"')
                    i++;
                else
                    in = false;
            }
        } else if (c == ',') {
            field_start = true;
            continue;
        } else if (c == '"' && field_start) {
            in = true;
        }
        field_start = false;
    }
    return in;
}

int obs_csv_split(char *rec, size_t len, char **out, char *errstr, size_t errstr_size)
{
    int n = 0;
    size_t r = 0, w = 0;
    rec[len] = '\0';
    for (;;) {
        if (n >= OBS_CSV_MAX_FIELDS)
            return fail(errstr, errstr_size, "more than %d fields", OBS_CSV_MAX_FIELDS);
        out[n++] = rec + w;
        if (r < len && rec[r] == '"') {
            r++;
            for (;;) {
                if (r >= len)
                    return fail(errstr, errstr_size, "field %d: unterminated quoted field", n);
                if (rec[r] == '"') {
                    if (r + 1 < len && rec[r + 1] == '"') {
                        rec[w++] = '"';
                        r += 2;
                        continue;
                    }
                    r++;
                    break;
                }
                rec[w++] = rec[r++];
            }
            if (r < len && rec[r] != ',')
                return fail(errstr, errstr_size, "field %d: text after the closing quote", n);
        } else {
            while (r < len && rec[r] != ',') {
                if (rec[r] == '"')
                    return fail(errstr, errstr_size,
                                "field %d: quote inside an unquoted field (quote the whole "
                                "field and double the quote)",
                                n);
                rec[w++] = rec[r++];
            }
        }
        /* Here r is at a comma or the end; the write position never passes
         * the read position, so terminating the field in place is safe. */
        if (r >= len) {
            rec[w] = '\0';
            return n;
        }
        rec[w++] = '\0';
        r++;
    }
}

int obs_csv_columns_init(struct obs_csv_columns *cols, char **names, int n, char *errstr,
                         size_t errstr_size)
{
    for (int f = 0; f < F_COUNT; f++)
        cols->col[f] = -1;
    cols->ncols = n;
    for (int i = 0; i < n; i++) {
        /* A UTF-8 byte-order mark, as spreadsheet exports write, is not
         * part of the first name. */
        const char *name = names[i];
        if (i == 0 && strncmp(name, "\xEF\xBB\xBF", 3) == 0)
            name += 3;
        for (int f = 0; f < F_COUNT; f++) {
            if (strcmp(name, fields[f].name) != 0)
                continue;
            if (cols->col[f] >= 0)
                return fail(errstr, errstr_size, "CSV header names column %s twice", name);
            cols->col[f] = i;
        }
    }
    for (int f = 0; f < F_COUNT; f++)
        if (fields[f].required && cols->col[f] < 0)
            return fail(errstr, errstr_size, "CSV header has no column %s", fields[f].name);
    return 0;
}

int obs_csv_map(const struct obs_csv_columns *cols, char **vals, int n, struct observation *out,
                char *errstr, size_t errstr_size)
{
    obs_clear(out);
    if (n != cols->ncols)
        return fail(errstr, errstr_size, "%d fields, the header has %d", n, cols->ncols);
    for (int f = 0; f < F_COUNT; f++) {
        const char *v = cols->col[f] >= 0 ? vals[cols->col[f]] : "";
        if (fields[f].required && *v == '\0')
            return fail(errstr, errstr_size, "missing field %s", fields[f].name);
        if (set_text(out, (enum field)f, v, errstr, errstr_size) != 0)
            return -1;
    }
    return 0;
}
