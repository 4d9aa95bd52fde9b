#include "ackmsg.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "notice.h"
#include "pg.h"

static bool links_on(const struct ackmsg_config *cfg)
{
    return cfg != NULL && cfg->keys != NULL && cfg->keys->n > 0 && cfg->public_url != NULL &&
           cfg->public_url[0] != '\0';
}

static size_t link(const struct ackmsg_config *cfg, const char *alert_id, const char *researcher,
                   int64_t now_s, char *out, size_t outsz);

static bool signal_alerts(const struct alert *const *a, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i]->kind != ALERT_SIGNAL)
            return false;
    return n > 0;
}

size_t ackmsg_link(const struct ackmsg_config *cfg, const char *alert_id, const char *researcher,
                   int64_t now_s, char *out, size_t outsz)
{
    if (!links_on(cfg))
        return 0;
    return link(cfg, alert_id, researcher, now_s, out, outsz);
}

/* PUBLIC_URL/ack/TOKEN into OUT. Returns its length or 0. */
static size_t link(const struct ackmsg_config *cfg, const char *alert_id, const char *researcher,
                   int64_t now_s, char *out, size_t outsz)
{
    char tok[ACKLINK_TOKEN_MAX + 1];
    if (acklink_sign(cfg->keys, alert_id, researcher, now_s + cfg->link_ttl_s, tok,
                     sizeof tok) == 0)
        return 0;
    int n = snprintf(out, outsz, "%s/ack/%s", cfg->public_url, tok);
    return n > 0 && (size_t)n < outsz ? (size_t)n : 0;
}

size_t ackmsg_email(const struct ackmsg_config *cfg, const struct alert *const *a, int n,
                    const char *researcher, int64_t now_s, char *body, size_t bodysz)
{
    if (!links_on(cfg) || !signal_alerts(a, n))
        return 0;
    char sec[4096];
    size_t o = (size_t)snprintf(sec, sizeof sec,
                                "\nAcknowledge (each link opens a confirmation page; it works "
                                "once):\n");
    for (int i = 0; i < n; i++) {
        char url[1024];
        if (link(cfg, a[i]->alert_id, researcher, now_s, url, sizeof url) == 0)
            return 0;
        int w = snprintf(sec + o, sizeof sec - o, "  %s: %s\n", a[i]->alert_id, url);
        if (w < 0 || (size_t)w >= sizeof sec - o)
            return 0;
        o += (size_t)w;
    }
    size_t len = strlen(body);
    if (len + o + 1 > bodysz)
        return 0;
    char *sig = strstr(body, "\n-- \n");
    size_t at = sig ? (size_t)(sig - body) : len;
    memmove(body + at + o, body + at, len - at + 1);
    memcpy(body + at, sec, o);
    return o;
}

size_t ackmsg_sms(const struct ackmsg_config *cfg, PGconn *c, const struct alert *const *a,
                  int n, const char *researcher, const char *phone, int64_t now_s, char *out,
                  size_t outsz)
{
    if (outsz == 0)
        return 0;
    out[0] = '\0';
    if (cfg == NULL || !signal_alerts(a, n))
        return 0;
    size_t o = 0;
    struct pg_textarray *arr = NULL;
    if (c != NULL && cfg->code_ttl_s > 0 && (arr = pg_textarray_new()) != NULL) {
        char key[NOTICE_MAX_ALERTS * (ALERT_ID_MAX + 1) + 80];
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            pg_textarray_add(arr, a[i]->alert_id);
            k += (size_t)snprintf(key + k, sizeof key - k, "%s ", a[i]->alert_id);
        }
        snprintf(key + k, sizeof key - k, "| %s | sms", researcher);
        char ttl[16], err[512] = "unexpected answer";
        snprintf(ttl, sizeof ttl, "%d", cfg->code_ttl_s);
        const char *params[] = {phone, researcher, pg_textarray_str(arr), key, ttl};
        /* The sender's connection commits without waiting for the WAL
         * flush; a code is different: once it is in an SMS it must survive
         * a PostgreSQL crash, or the researcher's reply finds no code.
         * set_config(..., true) holds for this statement's transaction,
         * whose commit then waits for the flush. */
        PGresult *r = pg_query(c,
                               "SELECT vigil_sms_code_issue($1, $2, $3::text[], $4, $5::int), "
                               "set_config('synchronous_commit', 'on', true)",
                               5, params, err, sizeof err);
        if (r != NULL && PQntuples(r) == 1) {
            int w = snprintf(out, outsz, " Reply ACK %s", PQgetvalue(r, 0, 0));
            if (w > 0 && (size_t)w < outsz)
                o = (size_t)w;
        } else {
            log_msg(LOG_WARN, "notifier", "no SMS reply code for this page (sent without): %s",
                    err);
        }
        PQclear(r);
    }
    pg_textarray_destroy(arr);
    if (links_on(cfg) && n == 1) {
        char url[1024];
        if (link(cfg, a[0]->alert_id, researcher, now_s, url, sizeof url) > 0) {
            int w = snprintf(out + o, outsz - o, " Ack: %s", url);
            if (w > 0 && (size_t)w < outsz - o)
                o += (size_t)w;
            else
                out[o] = '\0';
        }
    }
    return o;
}

void ackmsg_sms_insert(char *text, size_t textsz, const char *ack)
{
    size_t al = strlen(ack), tl = strlen(text);
    if (al == 0 || tl + al + 1 > textsz)
        return;
    char *refs = NULL;
    for (char *p = strstr(text, " refs "); p != NULL; p = strstr(p + 1, " refs "))
        refs = p;
    size_t at = refs ? (size_t)(refs - text) : tl;
    memmove(text + at + al, text + at, tl - at + 1);
    memcpy(text + at, ack, al);
}
