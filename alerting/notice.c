#include "notice.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A bounded string builder: appends never overflow; once something did
 * not fit, the text is cut at a character boundary and marked. */
struct sb {
    char *buf;
    size_t cap, len;
    bool cut;
};

static void sb_init(struct sb *b, char *buf, size_t cap)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->cut = false;
    if (cap > 0)
        buf[0] = '\0';
}

/* Length of the longest prefix of S (LEN bytes) that fits in ROOM bytes
 * and does not end inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t len, size_t room)
{
    if (len <= room)
        return len;
    size_t n = room;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void sb_putn(struct sb *b, const char *s, size_t len)
{
    if (b->cut || b->cap == 0)
        return;
    /* keep room for the NUL and a 3-byte ellipsis */
    size_t room = b->cap - 1 - b->len;
    if (len + 3 > room && len > room) {
        size_t n = utf8_prefix(s, len, room >= 3 ? room - 3 : 0);
        memcpy(b->buf + b->len, s, n);
        b->len += n;
        if (b->cap - 1 - b->len >= 3) {
            memcpy(b->buf + b->len, "…", 3);
            b->len += 3;
        }
        b->cut = true;
    } else {
        memcpy(b->buf + b->len, s, len);
        b->len += len;
    }
    b->buf[b->len] = '\0';
}

static void sb_puts(struct sb *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sb *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_putn(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Copies S without control characters (a rule's message is ours, but a
 * newline in it must not start a fake header or line). */
static void sb_put_clean(struct sb *b, const char *s)
{
    char tmp[ALERT_MESSAGE_MAX + 1];
    size_t n = 0;
    for (; *s && n < sizeof tmp - 1; s++)
        tmp[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    sb_putn(b, tmp, n);
}

size_t notice_escalation(const struct alert *a, int step, int short_form, char *out,
                         size_t outsz)
{
    if (outsz > 0)
        out[0] = '\0';
    if (step <= 0 || a->kind != ALERT_SIGNAL || outsz == 0)
        return 0;
    if (short_form) {
        int n = snprintf(out, outsz, "ESCALATED: ");
        return n < 0 || (size_t)n >= outsz ? (out[0] = '\0', 0) : (size_t)n;
    }
    char when[32];
    notice_time(a->detected_ms, when, sizeof when);
    int n = snprintf(out, outsz,
                     "ESCALATED (step %d): not acknowledged since detected at %s.\n\n", step,
                     when);
    return n < 0 || (size_t)n >= outsz ? (out[0] = '\0', 0) : (size_t)n;
}

size_t notice_time(int64_t ms, char *out, size_t outsz)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        int n = snprintf(out, outsz, "(unknown time)");
        return n < 0 ? 0 : (size_t)n;
    }
    /* strftime, not snprintf of the int fields: GCC at -O3 cannot bound
     * them and stops a Release build on -Wformat-truncation. strftime
     * returns 0 when the text does not fit, and then OUT is unspecified. */
    size_t n = strftime(out, outsz, "%Y-%m-%dT%H:%MZ", &tm);
    if (n == 0 && outsz > 0)
        out[0] = '\0';
    return n;
}

static const char *sev_upper(enum alert_severity s)
{
    return s == SEV_CRITICAL ? "CRITICAL" : s == SEV_WARNING ? "WARNING" : "INFO";
}

static enum alert_severity max_severity(const struct alert *const *a, int n)
{
    enum alert_severity s = SEV_INFO;
    for (int i = 0; i < n; i++)
        if (a[i]->severity > s)
            s = a[i]->severity;
    return s;
}

size_t notice_subject(const struct alert *const *a, int n, char *out, size_t outsz)
{
    struct sb b;
    sb_init(&b, out, outsz);
    const struct alert *f = a[0];
    if (f->kind == ALERT_RETRACTION) {
        sb_printf(&b, "[vigil] WITHDRAWN: alert for %s/%s/%s", f->study_id, f->site_id,
                  f->subject_id);
    } else if (n == 1) {
        sb_printf(&b, "[vigil] %s: %s/%s/%s %s", sev_upper(f->severity), f->study_id, f->site_id,
                  f->subject_id, f->rule_id);
        if (f->ctcae_grade > 0)
            sb_printf(&b, " (CTCAE grade %d)", (int)f->ctcae_grade);
    } else {
        sb_printf(&b, "[vigil] %d %s alerts: %s/%s/%s", n, sev_upper(max_severity(a, n)),
                  f->study_id, f->site_id, f->subject_id);
    }
    return b.len;
}

static void body_alert(struct sb *b, const struct alert *x)
{
    char t1[32], t2[32];
    notice_time(x->observed_ms, t1, sizeof t1);
    notice_time(x->detected_ms, t2, sizeof t2);
    sb_printf(b, "%s, rule %s v%d", sev_upper(x->severity), x->rule_id, (int)x->rule_version);
    if (x->ctcae_grade > 0)
        sb_printf(b, ", CTCAE grade %d", (int)x->ctcae_grade);
    sb_puts(b, "\n");
    sb_put_clean(b, x->message);
    sb_puts(b, "\n");
    for (int i = 0; i < x->n_evidence && i < ALERT_EVIDENCE_MAX; i++) {
        char te[32];
        notice_time(x->evidence[i].effective_ms, te, sizeof te);
        sb_printf(b, "  LOINC %s: %g %s at %s\n", x->evidence[i].loinc, x->evidence[i].value,
                  x->evidence[i].unit, te);
    }
    sb_printf(b, "Observed %s, detected %s\nAlert id: %s\n", t1, t2, x->alert_id);
}

size_t notice_body(const struct alert *const *a, int n, char *out, size_t outsz)
{
    struct sb b;
    sb_init(&b, out, outsz);
    const struct alert *f = a[0];
    sb_printf(&b, "Study: %s\nSite: %s\nSubject (pseudonym): %s\n\n", f->study_id, f->site_id,
              f->subject_id);
    if (f->kind == ALERT_RETRACTION) {
        sb_printf(&b,
                  "The alert %s sent earlier for this subject has been WITHDRAWN: the "
                  "observation behind it was cancelled or entered in error.\n\n",
                  f->retracts_alert_id);
        body_alert(&b, f);
    } else {
        if (n > 1)
            sb_printf(&b, "%d alerts for this subject:\n\n", n);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                sb_puts(&b, "\n");
            body_alert(&b, a[i]);
        }
    }
    sb_puts(&b, "\n-- \nvigil safety monitoring. Do not reply; follow your study's safety "
                "procedure.\n");
    return b.len;
}

size_t notice_sms(const struct alert *const *a, int n, char *out, size_t outsz)
{
    if (outsz > NOTICE_SMS_MAX + 1)
        outsz = NOTICE_SMS_MAX + 1;
    /* The references go first into their own buffer so that cutting the
     * message text never loses one. */
    char refs[NOTICE_MAX_ALERTS * (ALERT_ID_MAX + 1) + 16];
    struct sb r;
    sb_init(&r, refs, sizeof refs);
    sb_puts(&r, " refs ");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            sb_puts(&r, ",");
        sb_puts(&r, a[i]->alert_id);
    }
    const struct alert *f = a[0];
    char t[32];
    notice_time(f->observed_ms, t, sizeof t);
    size_t room = outsz > r.len + 1 ? outsz - r.len : 1;
    struct sb b;
    sb_init(&b, out, room);
    if (f->kind == ALERT_RETRACTION) {
        sb_printf(&b, "vigil WITHDRAWN %s/%s/%s: alert %s withdrawn", f->study_id, f->site_id,
                  f->subject_id, f->retracts_alert_id);
    } else if (n == 1) {
        sb_printf(&b, "vigil %s %s/%s/%s %s: ", sev_upper(f->severity), f->study_id, f->site_id,
                  f->subject_id, t);
        sb_put_clean(&b, f->message);
    } else {
        sb_printf(&b, "vigil %d %s alerts %s/%s/%s: ", n, sev_upper(max_severity(a, n)),
                  f->study_id, f->site_id, f->subject_id);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                sb_puts(&b, "; ");
            sb_put_clean(&b, a[i]->message);
        }
    }
    size_t len = b.len;
    if (len + r.len < outsz) {
        memcpy(out + len, refs, r.len + 1);
        len += r.len;
    }
    return len;
}
