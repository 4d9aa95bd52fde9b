#include "sms_inbound.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "log.h"
#include "page.h"
#include "pg.h"

struct sms_inbound {
    const char *secret;
    struct pgpool *pool;
    struct metric *acked, *refused;
};

bool sms_inbound_signature_ok(const char *secret, const char *body, size_t len,
                              const char *header)
{
    if (secret == NULL || header == NULL || strncmp(header, "sha256=", 7) != 0 ||
        strlen(header + 7) != 64)
        return false;
    unsigned char md[32], got[32];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, md,
             &mdlen) == NULL ||
        mdlen != 32)
        return false;
    const char *h = header + 7;
    for (int i = 0; i < 32; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = h[2 * i + k];
            int x = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (x < 0)
                return false;
            v = v * 16 + (unsigned)x;
        }
        got[i] = (unsigned char)v;
    }
    return CRYPTO_memcmp(md, got, 32) == 0;
}

static void answer(struct httpd_response *resp, unsigned status, const char *text)
{
    char b[512];
    snprintf(b, sizeof b, "%s\n", text);
    httpd_response_set(resp, status, "text/plain; charset=utf-8", b);
}

static void refuse(struct sms_inbound *s, PGconn *c, const struct httpd_request *req,
                   const char *reason, const char *from, const char *code, unsigned status,
                   const char *text, struct httpd_response *resp)
{
    metric_add(s->refused, 1);
    log_msg(LOG_WARN, "console", "SMS reply refused (%s) from %s", reason, req->client);
    if (c != NULL) {
        json_t *d = json_pack("{s:s, s:s, s:s}", "reason", reason, "client", req->client,
                              "channel", "sms_reply");
        /* From is only trusted once the signature is: before, it is words */
        if (d != NULL && from != NULL && from[0])
            json_object_set_new(d, "from", json_string(from));
        if (d != NULL && code != NULL && code[0])
            json_object_set_new(d, "code", json_string(code));
        char err[512];
        if (page_audit(c, NULL, "sms_reply_refused", "console", d, err, sizeof err) != 0)
            log_msg(LOG_ERROR, "console", "could not audit a refused SMS reply: %s", err);
    }
    answer(resp, status, text);
}

static void inbound(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    struct sms_inbound *s = arg;
    char err[512];
    PGconn *c = pgpool_get(s->pool, 5000, err, sizeof err);
    if (c == NULL) {
        answer(resp, 503, "vigil: try again later");
        return;
    }
    char from[32] = "", text[200] = "", code[16] = "";
    if (!sms_inbound_signature_ok(s->secret, req->body, req->body_len,
                                  httpd_request_header(req, "X-Vigil-Signature"))) {
        refuse(s, c, req, "bad_signature", NULL, NULL, 401, "vigil: signature refused", resp);
        goto out;
    }
    if (form_field(req->body, req->body_len, "From", from, sizeof from) < 0 || !form_e164(from) ||
        form_field(req->body, req->body_len, "Body", text, sizeof text) < 0) {
        if (!form_e164(from))
            from[0] = '\0';
        refuse(s, c, req, "malformed_body", from, NULL, 400,
               "vigil: unreadable message (want From and Body)", resp);
        goto out;
    }
    if (!form_sms_ack(text, code, sizeof code)) {
        refuse(s, c, req, "malformed_text", from, NULL, 400,
               "vigil: reply ACK and the code from the alert, e.g. ACK 4821", resp);
        goto out;
    }
    const char *p2[] = {from, code};
    PGresult *r = pg_query(c,
                           "SELECT researcher_id, alert_ids, expires_at < now() "
                           "FROM sms_ack_codes WHERE phone = $1 AND code = $2",
                           2, p2, err, sizeof err);
    if (r == NULL) {
        pgpool_put(s->pool, c, true);
        answer(resp, 503, "vigil: try again later");
        return;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        const char *p1[] = {code};
        r = pg_query(c, "SELECT 1 FROM sms_ack_codes WHERE code = $1 AND expires_at > now()", 1,
                     p1, err, sizeof err);
        bool elsewhere = r != NULL && PQntuples(r) > 0;
        PQclear(r);
        if (elsewhere)
            refuse(s, c, req, "wrong_number", from, code, 403,
                   "vigil: this code was not sent to your number; nothing acknowledged", resp);
        else
            refuse(s, c, req, "unknown_code", from, code, 404,
                   "vigil: unknown code; nothing acknowledged", resp);
        goto out;
    }
    char researcher[80];
    snprintf(researcher, sizeof researcher, "%s", PQgetvalue(r, 0, 0));
    bool expired = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    PQclear(r);
    if (expired) {
        refuse(s, c, req, "expired_code", from, code, 410,
               "vigil: this code has expired; acknowledge in the console", resp);
        goto out;
    }
    /* every alert of that SMS, one statement: each call is its own event */
    r = pg_query(c,
                 "WITH x AS (UPDATE sms_ack_codes SET used_at = coalesce(used_at, now()) "
                 "WHERE phone = $1 AND code = $2 RETURNING researcher_id, alert_ids) "
                 "SELECT a, vigil_alert_ack(a, x.researcher_id, 'sms_reply', $1, NULL) "
                 "FROM x, unnest(x.alert_ids) WITH ORDINALITY AS u(a, i) ORDER BY i",
                 2, p2, err, sizeof err);
    if (r == NULL) {
        log_msg(LOG_ERROR, "console", "acknowledging by SMS: %s", err);
        pgpool_put(s->pool, c, true);
        answer(resp, 503, "vigil: try again later");
        return;
    }
    int acked = 0, already = 0, gone = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *a = PQgetvalue(r, i, 1);
        if (strcmp(a, "acknowledged") == 0)
            acked++;
        else if (strcmp(a, "retracted") == 0 || strcmp(a, "unknown_alert") == 0)
            gone++;
        else
            already++;
    }
    PQclear(r);
    metric_add(s->acked, (uint64_t)acked);
    log_msg(LOG_INFO, "console", "SMS reply from researcher %s: %d acknowledged, %d already, "
            "%d withdrawn", researcher, acked, already, gone);
    char msg[256];
    if (acked > 0)
        snprintf(msg, sizeof msg, "vigil: acknowledged %d alert%s. Thank you.", acked,
                 acked == 1 ? "" : "s");
    else if (already > 0)
        snprintf(msg, sizeof msg, "vigil: already acknowledged or resolved; nothing changed.");
    else
        snprintf(msg, sizeof msg, "vigil: that alert was withdrawn; nothing to acknowledge.");
    answer(resp, 200, msg);
out:
    pgpool_put(s->pool, c, false);
}

static void cleanup_inbound(void *arg)
{
    free(arg);
}

int sms_inbound_register(struct console_app *app, void (**cleanup)(void *),
                         void **cleanup_arg, char *errstr, size_t errstr_size)
{
    const char *secret = app->opt->sms_inbound_secret;
    if (secret == NULL || secret[0] == '\0') {
        log_msg(LOG_INFO, "console", "sms_inbound_secret unset: inbound SMS off");
        return 0;
    }
    if (strlen(secret) < 16) {
        snprintf(errstr, errstr_size, "sms_inbound_secret must be at least 16 bytes");
        return -1;
    }
    struct sms_inbound *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    s->secret = secret;
    s->pool = app->pool;
    s->acked = metrics_counter(app->metrics, "vigil_console_sms_replies_total",
                               "alerts acknowledged or replies refused by SMS",
                               "outcome=\"acknowledged\"");
    s->refused = metrics_counter(app->metrics, "vigil_console_sms_replies_total",
                                 "alerts acknowledged or replies refused by SMS",
                                 "outcome=\"refused\"");
    *cleanup = cleanup_inbound;
    *cleanup_arg = s;
    return route_add(app->routes, "POST", "/sms/inbound", inbound, s, errstr, errstr_size);
}
