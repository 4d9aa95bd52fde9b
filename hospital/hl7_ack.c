/*
 * hl7_ack: writing ACK messages (contract in hl7_ack.h). A bounded
 * string builder: every append is cut at the buffer's end, so a long
 * application name or error text shortens the ACK instead of overflowing.
 */
#include "hl7_ack.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct out {
    char *p;
    size_t n, cap;
};

static void add(struct out *o, const char *s, size_t len)
{
    if (o->cap == 0)
        return;
    size_t room = o->cap - 1 - o->n;
    if (len > room)
        len = room;
    memcpy(o->p + o->n, s, len);
    o->n += len;
    o->p[o->n] = '\0';
}

static void adds(struct out *o, const char *s)
{
    add(o, s, strlen(s));
}

static void addc(struct out *o, char c)
{
    add(o, &c, 1);
}

static void addf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct out *o, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        add(o, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* Appends field FIELD of MSH as sent (already escaped). */
static void raw(struct out *o, const struct hl7_msg *m, int field)
{
    size_t len;
    const char *p = m ? hl7_raw(m, 0, field, &len) : NULL;
    if (p != NULL)
        add(o, p, len);
}

/* Appends TEXT escaped for D, cut to fit. */
static void text(struct out *o, const char *s, const struct hl7_delims *d)
{
    char buf[1024];
    if (hl7_escape(s, d, buf, sizeof buf) >= 0)
        adds(o, buf);
}

const char *hl7_error_name(int code)
{
    switch (code) {
    case 0: return "Message accepted";
    case 100: return "Segment sequence error";
    case 101: return "Required field missing";
    case 102: return "Data type error";
    case 103: return "Table value not found";
    case 200: return "Unsupported message type";
    case 201: return "Unsupported event code";
    case 202: return "Unsupported processing id";
    case 203: return "Unsupported version id";
    case 204: return "Unknown key identifier";
    case 205: return "Duplicate key identifier";
    case 206: return "Application record locked";
    default: return "Application internal error";
    }
}

static bool v25_or_later(const char *v)
{
    return strcmp(v, "2.5") == 0 || strncmp(v, "2.5.", 4) == 0 || strncmp(v, "2.6", 3) == 0 ||
           strncmp(v, "2.7", 3) == 0 || strncmp(v, "2.8", 3) == 0;
}

size_t hl7_ack_write(const struct hl7_msg *m, enum hl7_ack_code code, const struct hl7_error *err,
                     int n, const char *control_id, int64_t now_ms, char *out, size_t outsz)
{
    struct out o = {out, 0, outsz};
    if (outsz > 0)
        out[0] = '\0';
    const struct hl7_delims *d = m ? hl7_delims(m) : &hl7_default_delims;
    char version[16] = "2.5.1", proc[16] = "P", trigger[16] = "R01";
    if (m != NULL) {
        char v[16];
        if (hl7_get(m, 0, 12, 1, 1, 1, v, sizeof v) > 0)
            snprintf(version, sizeof version, "%s", v);
        if (hl7_get(m, 0, 11, 1, 1, 1, v, sizeof v) > 0)
            snprintf(proc, sizeof proc, "%s", v);
        if (hl7_get(m, 0, 9, 1, 2, 1, v, sizeof v) > 0)
            snprintf(trigger, sizeof trigger, "%s", v);
    }
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char now[32];
    strftime(now, sizeof now, "%Y%m%d%H%M%S+0000", &tm);

    char f = d->field;
    addf(&o, "MSH%c%c%c%c%c", f, d->comp, d->rep, d->esc, d->sub);
    addc(&o, f);
    raw(&o, m, 5);
    addc(&o, f);
    raw(&o, m, 6);
    addc(&o, f);
    raw(&o, m, 3);
    addc(&o, f);
    raw(&o, m, 4);
    addc(&o, f);
    adds(&o, now);
    addc(&o, f);
    addc(&o, f);
    adds(&o, "ACK");
    addc(&o, d->comp);
    text(&o, trigger, d);
    if (strcmp(version, "2.3") != 0) {
        addc(&o, d->comp);
        adds(&o, "ACK");
    }
    addc(&o, f);
    text(&o, control_id, d);
    addc(&o, f);
    text(&o, proc, d);
    addc(&o, f);
    text(&o, version, d);
    addc(&o, '\r');

    addf(&o, "MSA%c%s%c", f, hl7_ack_code_name(code), f);
    raw(&o, m, 10);
    if (n > 0) {
        addc(&o, f);
        text(&o, err[0].text, d);
    }
    addc(&o, '\r');

    bool v25 = v25_or_later(version);
    for (int i = 0; i < n; i++) {
        const struct hl7_error *e = &err[i];
        /* ERR-1 (ELD): segment ^ sequence ^ field ^ code & text & HL70357 */
        addf(&o, "ERR%c%s%c", f, e->segment, d->comp);
        if (e->seq > 0)
            addf(&o, "%d", e->seq);
        addc(&o, d->comp);
        if (e->field > 0)
            addf(&o, "%d", e->field);
        addf(&o, "%c%d%c", d->comp, e->code, d->sub);
        text(&o, hl7_error_name(e->code), d);
        addf(&o, "%cHL70357", d->sub);
        if (v25) {
            /* ERR-2 (ERL) segment^sequence^field^repetition^component */
            addf(&o, "%c%s%c", f, e->segment, d->comp);
            if (e->seq > 0)
                addf(&o, "%d", e->seq);
            addc(&o, d->comp);
            if (e->field > 0)
                addf(&o, "%d%c1", e->field, d->comp);
            else
                addc(&o, d->comp);
            addc(&o, d->comp);
            if (e->comp > 0)
                addf(&o, "%d", e->comp);
            /* ERR-3 code, ERR-4 severity, ERR-5..7 empty, ERR-8 text */
            addf(&o, "%c%d%c", f, e->code, d->comp);
            text(&o, hl7_error_name(e->code), d);
            addf(&o, "%cHL70357%cE%c%c%c%c", d->comp, f, f, f, f, f);
            text(&o, e->text, d);
        }
        addc(&o, '\r');
    }
    return o.n;
}
