/* email (MIME, RFC 2047), notice texts and the SMS answer parser. */
#include <stdlib.h>
#include <string.h>

#include "email.h"
#include "notice.h"
#include "sms.h"
#include "testlib.h"

/* Decodes one RFC 2047 B word "=?UTF-8?B?...?=" at P into out; returns
 * the bytes decoded or -1. A test-side decoder, independent of the
 * encoder's base64. */
static int b64val(char c)
{
    const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = strchr(t, c);
    return c && p ? (int)(p - t) : -1;
}

static int decode_words(const char *enc, char *out, size_t outsz)
{
    size_t o = 0;
    const char *p = enc;
    while (*p) {
        if (strncmp(p, "\r\n ", 3) == 0) {
            p += 3;
            continue;
        }
        if (strncmp(p, "=?UTF-8?B?", 10) != 0)
            return -1;
        const char *start = p + 10;
        const char *end = strstr(start, "?=");
        if (end == NULL)
            return -1;
        if (end + 2 - p > 75) /* RFC 2047: an encoded word is at most 75 chars */
            return -2;
        unsigned acc = 0;
        int bits = 0;
        for (const char *q = start; q < end; q++) {
            if (*q == '=')
                break;
            int v = b64val(*q);
            if (v < 0)
                return -1;
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                if (o + 1 >= outsz)
                    return -1;
                out[o++] = (char)((acc >> bits) & 0xff);
            }
        }
        p = end + 2;
    }
    out[o] = '\0';
    return (int)o;
}

static bool valid_utf8(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
        if (len == 0 || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if (((unsigned char)s[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static void test_subject_encoding(void)
{
    char enc[2048], dec[1024];
    /* ASCII round trip */
    CHECK(email_encode_subject("[vigil] CRITICAL: S1/SITE/P-001", enc, sizeof enc) > 0);
    CHECK(strncmp(enc, "=?UTF-8?B?", 10) == 0);
    CHECK(decode_words(enc, dec, sizeof dec) > 0);
    CHECK_EQ_STR(dec, "[vigil] CRITICAL: S1/SITE/P-001");

    /* Long UTF-8: every word is <= 75, folds with CRLF SP, no character
     * is split across words, and the whole decodes back. */
    char subj[600] = "";
    const char *piece = "Blutzucker hoch – Ärztin prüfen 🩸 ";
    while (strlen(subj) + strlen(piece) < sizeof subj)
        strcat(subj, piece);
    size_t len = email_encode_subject(subj, enc, sizeof enc);
    CHECK(len > 0);
    CHECK(strstr(enc, "\r\n ") != NULL);
    CHECK(decode_words(enc, dec, sizeof dec) == (int)strlen(subj));
    CHECK_EQ_STR(dec, subj);
    /* each word decodes on its own to whole characters */
    const char *p = enc;
    int words = 0;
    while (p && *p) {
        const char *e = strstr(p, "\r\n ");
        char one[128];
        size_t wl = e ? (size_t)(e - p) : strlen(p);
        CHECK(wl <= 75);
        memcpy(one, p, wl);
        one[wl] = '\0';
        char d[128];
        int dl = decode_words(one, d, sizeof d);
        CHECK(dl > 0 && valid_utf8(d, (size_t)dl));
        words++;
        p = e ? e + 3 : NULL;
    }
    CHECK(words > 3);
    /* the first line fits in 78 columns after "Subject: " */
    const char *first_end = strstr(enc, "\r\n");
    CHECK(first_end != NULL && (first_end - enc) + 9 <= 78);
    /* does not fit: 0, not a truncated header */
    CHECK_EQ_INT(email_encode_subject(subj, enc, 40), 0);
}

static void test_date_and_id(void)
{
    char d[64];
    CHECK(email_date(1738663323000LL, d, sizeof d) > 0); /* 2025-02-04 10:02:03 UTC */
    CHECK_EQ_STR(d, "Tue, 04 Feb 2025 10:02:03 +0000");
    char a[300], b[300], c[300];
    email_message_id("A1|R1|email", "vigil@hospital.example", a, sizeof a);
    email_message_id("A1|R1|email", "vigil@hospital.example", b, sizeof b);
    email_message_id("A2|R1|email", "vigil@hospital.example", c, sizeof c);
    CHECK_EQ_STR(a, b); /* stable across retries */
    CHECK(strcmp(a, c) != 0);
    CHECK(a[0] == '<' && a[strlen(a) - 1] == '>');
    CHECK(strstr(a, "@hospital.example>") != NULL);
}

static void test_format(void)
{
    struct email_headers h = {"vigil@hospital.example", "dr.a@hospital.example",
                              "[vigil] WARNING: S1/X/P1 ALT", "<vigil.1.2@hospital.example>",
                              1738663323000LL, "alert-1 alert-2"};
    const char *body = "line one\n.dot line stays\nbare\rcr\r\nwin\n..two dots\n";
    char out[EMAIL_MAX];
    size_t len = email_format(&h, body, out, sizeof out);
    CHECK(len > 0);
    CHECK_EQ_INT(strlen(out), len);
    /* every line ends in CRLF, no bare LF or CR */
    for (size_t i = 0; i < len; i++) {
        if (out[i] == '\n')
            CHECK(i > 0 && out[i - 1] == '\r');
        if (out[i] == '\r')
            CHECK(i + 1 < len && out[i + 1] == '\n');
    }
    CHECK(len >= 2 && memcmp(out + len - 2, "\r\n", 2) == 0);
    const char *hdr_end = strstr(out, "\r\n\r\n");
    CHECK(hdr_end != NULL);
    CHECK(strncmp(out, "Date: Tue, 04 Feb 2025 10:02:03 +0000\r\n", 39) == 0);
    CHECK(strstr(out, "\r\nFrom: vigil@hospital.example\r\n") != NULL);
    CHECK(strstr(out, "\r\nTo: dr.a@hospital.example\r\n") != NULL);
    CHECK(strstr(out, "\r\nMessage-ID: <vigil.1.2@hospital.example>\r\n") != NULL);
    CHECK(strstr(out, "\r\nSubject: =?UTF-8?B?") != NULL);
    CHECK(strstr(out, "\r\nMIME-Version: 1.0\r\n") != NULL);
    CHECK(strstr(out, "\r\nContent-Type: text/plain; charset=UTF-8\r\n") != NULL);
    CHECK(strstr(out, "\r\nX-Vigil-Alert-Ids: alert-1\r\n alert-2\r\n") != NULL);
    /* body: dot lines untouched (libcurl stuffs them on the wire), line
     * ends normalised */
    CHECK(strstr(hdr_end, "\r\n\r\nline one\r\n.dot line stays\r\nbare\r\ncr\r\nwin\r\n..two "
                          "dots\r\n") == hdr_end);
    /* too small: 0 */
    CHECK_EQ_INT(email_format(&h, body, out, 100), 0);
}

static struct alert sample(const char *id, enum alert_severity sev)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.alert_id, sizeof a.alert_id, "%s", id);
    a.kind = ALERT_SIGNAL;
    snprintf(a.rule_id, sizeof a.rule_id, "alt-3xuln");
    a.rule_version = 2;
    a.severity = sev;
    a.ctcae_grade = 3;
    snprintf(a.study_id, sizeof a.study_id, "S1");
    snprintf(a.site_id, sizeof a.site_id, "BERLIN");
    snprintf(a.subject_id, sizeof a.subject_id, "P-0042");
    a.n_evidence = 1;
    snprintf(a.evidence[0].observation_id, sizeof a.evidence[0].observation_id, "obs-1");
    snprintf(a.evidence[0].loinc, sizeof a.evidence[0].loinc, "1742-6");
    a.evidence[0].value = 250;
    snprintf(a.evidence[0].unit, sizeof a.evidence[0].unit, "U/L");
    a.evidence[0].effective_ms = 1738663323000LL;
    snprintf(a.message, sizeof a.message, "ALT 250 U/L > 3x ULN\nInjected: header");
    a.observed_ms = 1738663323000LL;
    a.detected_ms = 1738663383000LL;
    return a;
}

static void test_notice(void)
{
    struct alert a1 = sample("alert-1", SEV_CRITICAL);
    struct alert a2 = sample("alert-2", SEV_WARNING);
    const struct alert *one[] = {&a1};
    const struct alert *two[] = {&a2, &a1};
    char s[512], b[EMAIL_MAX], sms[NOTICE_SMS_MAX + 1], small_pre[16];
    notice_subject(one, 1, s, sizeof s);
    CHECK_EQ_STR(s, "[vigil] CRITICAL: S1/BERLIN/P-0042 alt-3xuln (CTCAE grade 3)");
    notice_subject(two, 2, s, sizeof s);
    CHECK_EQ_STR(s, "[vigil] 2 CRITICAL alerts: S1/BERLIN/P-0042");
    notice_body(two, 2, b, sizeof b);
    CHECK(strstr(b, "Study: S1\nSite: BERLIN\nSubject (pseudonym): P-0042\n") == b);
    CHECK(strstr(b, "Alert id: alert-1") && strstr(b, "Alert id: alert-2"));
    CHECK(strstr(b, "LOINC 1742-6: 250 U/L at 2025-02-04T10:02Z") != NULL);
    CHECK(strstr(b, "Observed 2025-02-04T10:02Z, detected 2025-02-04T10:03Z") != NULL);
    /* a newline inside the rule's message cannot start a line of its own */
    CHECK(strstr(b, "\nInjected: header") == NULL);
    notice_sms(one, 1, sms, sizeof sms);
    CHECK(strncmp(sms, "vigil CRITICAL S1/BERLIN/P-0042 2025-02-04T10:02Z: ALT 250", 58) == 0);
    CHECK(strstr(sms, " refs alert-1") != NULL);
    CHECK(strchr(sms, '\n') == NULL);
    /* a long group: the text is cut, every reference kept */
    struct alert many[NOTICE_MAX_ALERTS];
    const struct alert *pm[NOTICE_MAX_ALERTS];
    for (int i = 0; i < NOTICE_MAX_ALERTS; i++) {
        char id[ALERT_ID_MAX + 1];
        snprintf(id, sizeof id, "%02d-%0*d", i, ALERT_ID_MAX - 3, 7);
        many[i] = sample(id, SEV_INFO);
        memset(many[i].message, 'x', ALERT_MESSAGE_MAX);
        many[i].message[ALERT_MESSAGE_MAX] = '\0';
        pm[i] = &many[i];
    }
    size_t n = notice_sms(pm, NOTICE_MAX_ALERTS, sms, sizeof sms);
    CHECK(n <= NOTICE_SMS_MAX);
    CHECK_EQ_INT(strlen(sms), n);
    for (int i = 0; i < NOTICE_MAX_ALERTS; i++)
        CHECK(strstr(sms, many[i].alert_id) != NULL);
    /* retraction */
    struct alert r = sample("retr-1", SEV_CRITICAL);
    r.kind = ALERT_RETRACTION;
    snprintf(r.retracts_alert_id, sizeof r.retracts_alert_id, "alert-1");
    const struct alert *pr[] = {&r};
    notice_subject(pr, 1, s, sizeof s);
    CHECK(strstr(s, "WITHDRAWN") != NULL);
    notice_body(pr, 1, b, sizeof b);
    CHECK(strstr(b, "The alert alert-1 sent earlier") != NULL);
    notice_sms(pr, 1, sms, sizeof sms);
    CHECK(strstr(sms, "alert alert-1 withdrawn") != NULL);
    /* an escalation page's preface; none for the first page or a retraction */
    CHECK_EQ_INT(notice_escalation(&a1, 0, 0, b, sizeof b), 0);
    CHECK_EQ_STR(b, "");
    CHECK_EQ_INT(notice_escalation(&r, 2, 0, b, sizeof b), 0);
    notice_escalation(&a1, 2, 0, b, sizeof b);
    CHECK_EQ_STR(b, "ESCALATED (step 2): not acknowledged since detected at 2025-02-04T10:03Z.\n\n");
    notice_escalation(&a1, 1, 1, s, sizeof s);
    CHECK_EQ_STR(s, "ESCALATED: ");
    CHECK_EQ_INT(notice_escalation(&a1, 1, 0, small_pre, sizeof small_pre), 0);
    /* cutting never splits a UTF-8 character */
    struct alert u = sample("u-1", SEV_INFO);
    u.message[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(u.message, "ü");
    const struct alert *pu[] = {&u};
    char small[40];
    size_t sl = notice_body(pu, 1, small, sizeof small);
    CHECK(sl < sizeof small && valid_utf8(small, sl));
}

static void test_sms_sid(void)
{
    char sid[SMS_SID_MAX + 1];
    const char *ok = "{\"sid\": \"SM0123456789abcdef\", \"status\": \"queued\"}";
    CHECK(sms_parse_sid(ok, strlen(ok), sid, sizeof sid));
    CHECK_EQ_STR(sid, "SM0123456789abcdef");
    const char *none = "{\"status\": \"queued\"}";
    CHECK(!sms_parse_sid(none, strlen(none), sid, sizeof sid));
    const char *bad = "{\"sid\": \"SM 1\\n\"}";
    CHECK(!sms_parse_sid(bad, strlen(bad), sid, sizeof sid));
    CHECK(!sms_parse_sid("not json", 8, sid, sizeof sid));
}

int main(void)
{
    test_subject_encoding();
    test_date_and_id();
    test_format();
    test_notice();
    test_sms_sid();
    return testlib_done();
}
