#include "webhook.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "log.h"
#include "pg.h"
#include "retry.h"

#define CLAIM_BATCH 16
#define RESPONSE_MAX 1024

struct webhook_sender {
    struct webhook_config cfg;
    struct ctx *stop;
    pthread_t thread;
    unsigned seed;
    PGconn *pg;
    char watermark[64]; /* created_at of the newest alert considered, as text */
    struct metric *sent, *failed, *retried;
};

size_t webhook_sign(const char *secret, const char *id, int64_t ts, const char *body,
                    size_t len, char *out, size_t outsz)
{
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    size_t sl = strlen(secret);
    if (sl == 0 || sl % 4 != 0 || sl > 512)
        return 0;
    unsigned char key[400];
    int kl = EVP_DecodeBlock(key, (const unsigned char *)secret, (int)sl);
    if (kl <= 0)
        return 0;
    /* EVP_DecodeBlock counts the padding as zero bytes: take them off */
    if (secret[sl - 1] == '=')
        kl--;
    if (secret[sl - 2] == '=')
        kl--;
    char head[128];
    int hl = snprintf(head, sizeof head, "%s.%lld.", id, (long long)ts);
    if (hl < 0 || (size_t)hl >= sizeof head)
        return 0;
    /* one buffer, one-shot HMAC() (the HMAC_CTX calls are deprecated) */
    char *msg = malloc((size_t)hl + len + 1);
    unsigned char md[32];
    unsigned int mdlen = 0;
    bool ok = msg != NULL;
    if (ok) {
        memcpy(msg, head, (size_t)hl);
        memcpy(msg + hl, body, len);
        ok = HMAC(EVP_sha256(), key, kl, (const unsigned char *)msg, (size_t)hl + len, md,
                  &mdlen) != NULL &&
             mdlen == 32;
    }
    free(msg);
    memset(key, 0, sizeof key);
    if (!ok || outsz < 3 + 45)
        return 0;
    memcpy(out, "v1,", 3);
    int bl = EVP_EncodeBlock((unsigned char *)out + 3, md, 32);
    return bl > 0 ? 3 + (size_t)bl : 0;
}

static PGconn *pg(struct webhook_sender *w)
{
    if (w->pg != NULL && PQstatus(w->pg) == CONNECTION_OK)
        return w->pg;
    if (w->pg != NULL)
        PQfinish(w->pg);
    char err[512];
    w->pg = pg_connect(w->cfg.conninfo, err, sizeof err);
    if (w->pg == NULL)
        log_msg(LOG_WARN, "webhook", "%s", err);
    return w->pg;
}

/* (1) a row per new alert and subscriber. The watermark trails the newest
 * alert by a minute: created_at is a transaction's start, so a worker's
 * batch may commit after a later-started one; ON CONFLICT makes the
 * overlap free. */
static int enqueue(struct webhook_sender *w, PGconn *c, char *err, size_t errsz)
{
    char lookback[16];
    snprintf(lookback, sizeof lookback, "%d", w->cfg.lookback_s);
    const char *p[] = {w->watermark[0] ? w->watermark : NULL, lookback};
    PGresult *r = pg_query(
        c,
        "WITH s AS (SELECT coalesce($1::timestamptz - interval '60 seconds', "
        "                          now() - make_interval(secs => $2::int)) AS since), "
        "new AS (SELECT a.alert_id, a.created_at, a.study_id, a.site_id, a.severity "
        "        FROM alerts a, s WHERE a.created_at >= s.since), "
        "ins AS (INSERT INTO notifications (alert_id, researcher_id, channel, state, "
        "                                   next_attempt_at) "
        "        SELECT n.alert_id, w.subscriber_id, 'webhook', 'pending', now() "
        "        FROM new n JOIN webhook_subscribers w ON w.study_id = n.study_id "
        "          AND (w.site_id IS NULL OR w.site_id = n.site_id) "
        "        WHERE w.active AND n.created_at >= w.created_at "
        "          AND array_position(ARRAY['info','warning','critical'], n.severity) >= "
        "              array_position(ARRAY['info','warning','critical'], w.min_severity) "
        "        ON CONFLICT DO NOTHING RETURNING 1) "
        "SELECT (SELECT count(*) FROM ins), "
        "       (SELECT max(created_at) FROM new)::text",
        2, p, err, errsz);
    if (r == NULL)
        return -1;
    int n = atoi(PQgetvalue(r, 0, 0));
    if (!PQgetisnull(r, 0, 1))
        snprintf(w->watermark, sizeof w->watermark, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return n;
}

struct claimed {
    char alert_id[80], subscriber[80], msg_id[40], url[1024], secret[600];
    char *body;
    int attempts;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * nmemb; /* the answer's status is all we use */
}

/* (3) one POST. Returns the HTTP status, or 0 with WHY on a transport error. */
static long post(struct webhook_sender *w, const struct claimed *k, char *why, size_t whysz)
{
    CURL *e = curl_easy_init();
    if (e == NULL) {
        snprintf(why, whysz, "out of memory");
        return 0;
    }
    int64_t ts = (int64_t)time(NULL);
    char sig[128], h_id[80], h_ts[48], h_sig[160], cerr[CURL_ERROR_SIZE] = "";
    size_t blen = strlen(k->body);
    if (webhook_sign(k->secret, k->msg_id, ts, k->body, blen, sig, sizeof sig) == 0) {
        snprintf(why, whysz, "the subscriber's secret is not whsec_<base64>");
        curl_easy_cleanup(e);
        return -1;
    }
    snprintf(h_id, sizeof h_id, "webhook-id: %s", k->msg_id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %lld", (long long)ts);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    struct curl_slist *hl = NULL, *t;
    const char *hs[] = {"Content-Type: application/json", h_id, h_ts, h_sig,
                        "User-Agent: vigil-webhook/1"};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        t = curl_slist_append(hl, hs[i]);
        if (t == NULL) {
            curl_slist_free_all(hl);
            curl_easy_cleanup(e);
            snprintf(why, whysz, "out of memory");
            return 0;
        }
        hl = t;
    }
    curl_easy_setopt(e, CURLOPT_URL, k->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, k->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, w->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is not an acceptance */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    if (w->cfg.ca_file != NULL && w->cfg.ca_file[0] != '\0')
        curl_easy_setopt(e, CURLOPT_CAINFO, w->cfg.ca_file);
    CURLcode rc = curl_easy_perform(e);
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) {
        snprintf(why, whysz, "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
        return 0;
    }
    snprintf(why, whysz, "subscriber answered HTTP %ld", code);
    return code;
}

/* (2) claims up to CLAIM_BATCH due rows with their alert as JSON. */
static int claim(struct webhook_sender *w, PGconn *c, struct claimed *out, char *err,
                 size_t errsz)
{
    char lease[16];
    snprintf(lease, sizeof lease, "%d", w->cfg.lease_s);
    const char *p[] = {lease};
    PGresult *r = pg_query(
        c,
        "WITH due AS (SELECT alert_id, researcher_id FROM notifications "
        "   WHERE channel = 'webhook' AND state IN ('pending', 'sending') "
        "     AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT 16 "
        "   FOR UPDATE SKIP LOCKED), "
        "upd AS (UPDATE notifications n SET state = 'sending', attempts = n.attempts + 1, "
        "          updated_at = now(), next_attempt_at = now() + make_interval(secs => $1::int) "
        "        FROM due WHERE n.alert_id = due.alert_id "
        "          AND n.researcher_id = due.researcher_id AND n.channel = 'webhook' "
        "        RETURNING n.alert_id, n.researcher_id, n.attempts) "
        "SELECT u.alert_id, u.researcher_id, u.attempts, w.url, w.secret, "
        "  'msg_' || substr(encode(sha256(convert_to(u.alert_id || '|' || u.researcher_id, "
        "                  'UTF8')), 'hex'), 1, 32), "
        "  jsonb_build_object("
        "    'type', CASE a.kind WHEN 'retraction' THEN 'alert.retracted' ELSE 'alert.raised' END,"
        "    'timestamp', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        "    'data', jsonb_strip_nulls(jsonb_build_object("
        "      'alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity, "
        "      'ctcae_grade', a.ctcae_grade, 'rule_id', a.rule_id, 'rule_version', a.rule_version, "
        "      'study_id', a.study_id, 'site_id', a.site_id, 'subject_id', a.subject_id, "
        "      'message', a.message, 'evidence', a.evidence, "
        "      'observed_at', to_char(a.observed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "      'detected_at', to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "      'retracts_alert_id', a.retracts_alert_id)))::text "
        "FROM upd u JOIN alerts a ON a.alert_id = u.alert_id "
        "LEFT JOIN webhook_subscribers w ON w.subscriber_id = u.researcher_id",
        1, p, err, errsz);
    if (r == NULL)
        return -1;
    int n = PQntuples(r);
    if (n > CLAIM_BATCH)
        n = CLAIM_BATCH;
    for (int i = 0; i < n; i++) {
        struct claimed *k = &out[i];
        memset(k, 0, sizeof *k);
        snprintf(k->alert_id, sizeof k->alert_id, "%s", PQgetvalue(r, i, 0));
        snprintf(k->subscriber, sizeof k->subscriber, "%s", PQgetvalue(r, i, 1));
        k->attempts = atoi(PQgetvalue(r, i, 2));
        snprintf(k->url, sizeof k->url, "%s", PQgetvalue(r, i, 3));
        snprintf(k->secret, sizeof k->secret, "%s", PQgetvalue(r, i, 4));
        snprintf(k->msg_id, sizeof k->msg_id, "%s", PQgetvalue(r, i, 5));
        k->body = strdup(PQgetvalue(r, i, 6));
    }
    PQclear(r);
    return n;
}

/* (4) the outcome. CODE: HTTP status, 0 transport error, -1 no retry. */
static void record(struct webhook_sender *w, PGconn *c, const struct claimed *k, long code,
                   const char *why)
{
    char err[512], delay[24];
    const char *state;
    bool ok = code >= 200 && code < 300;
    /* 410 Gone: the subscriber asks us to stop, as Standard Webhooks
     * receivers may. Anything else non-2xx is worth another try. */
    bool give_up = code == -1 || code == 410 || k->attempts >= w->cfg.max_attempts ||
                   k->url[0] == '\0';
    int64_t d = 0;
    if (ok) {
        state = "sent";
        metric_add(w->sent, 1);
    } else if (give_up) {
        state = "failed";
        metric_add(w->failed, 1);
        log_msg(LOG_ERROR, "webhook", "alert %s to subscriber %s failed for good after %d "
                "attempts: %s", k->alert_id, k->subscriber, k->attempts, why);
    } else {
        state = "pending";
        d = retry_backoff_ms(k->attempts - 1, w->cfg.backoff_base_ms, w->cfg.backoff_max_ms,
                             (double)rand_r(&w->seed) / ((double)RAND_MAX + 1.0));
        metric_add(w->retried, 1);
        log_msg(LOG_WARN, "webhook", "alert %s to subscriber %s: %s; retry in %lld ms",
                k->alert_id, k->subscriber, why, (long long)d);
    }
    snprintf(delay, sizeof delay, "%lld", (long long)d);
    const char *p[] = {k->alert_id, k->subscriber, state, ok ? NULL : why,
                       ok ? k->msg_id : NULL, delay};
    if (pg_command(c,
                   "UPDATE notifications SET state = $3, updated_at = now(), last_error = $4, "
                   "provider_message_id = coalesce($5, provider_message_id), "
                   "sent_at = CASE WHEN $3 = 'sent' THEN now() END, "
                   "next_attempt_at = CASE WHEN $3 = 'pending' "
                   "  THEN now() + make_interval(secs => $6::bigint / 1000.0) END "
                   "WHERE alert_id = $1 AND researcher_id = $2 AND channel = 'webhook' "
                   "  AND state = 'sending'",
                   6, p, err, sizeof err) != 0)
        log_msg(LOG_ERROR, "webhook", "could not record the outcome for alert %s: %s "
                "(the lease hands it to the next try)", k->alert_id, err);
}

static void *run(void *arg)
{
    struct webhook_sender *w = arg;
    struct claimed batch[CLAIM_BATCH];
    while (!ctx_done(w->stop)) {
        char err[512];
        PGconn *c = pg(w);
        int n = 0;
        if (c != NULL) {
            if (enqueue(w, c, err, sizeof err) < 0)
                log_msg(LOG_WARN, "webhook", "enqueue: %s", err);
            n = claim(w, c, batch, err, sizeof err);
            if (n < 0)
                log_msg(LOG_WARN, "webhook", "claim: %s", err);
        }
        for (int i = 0; i < n; i++) {
            char why[512];
            long code = batch[i].body != NULL ? post(w, &batch[i], why, sizeof why) : -1;
            if (batch[i].body == NULL)
                snprintf(why, sizeof why, "out of memory");
            record(w, c, &batch[i], code, why);
            free(batch[i].body);
        }
        if (n < CLAIM_BATCH)
            ctx_wait(w->stop, deadline_after_ms(w->cfg.poll_ms));
    }
    if (w->pg != NULL)
        PQfinish(w->pg);
    w->pg = NULL;
    return NULL;
}

struct webhook_sender *webhook_sender_start(const struct webhook_config *cfg, struct metrics *m,
                                            char *errstr, size_t errstr_size)
{
    struct webhook_sender *w = calloc(1, sizeof *w);
    if (w == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    w->cfg = *cfg;
    w->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)w;
    w->stop = ctx_new(NULL);
    const char *help = "webhook notifications by outcome";
    w->sent = metrics_counter(m, "vigil_webhook_notifications_total", help, "outcome=\"sent\"");
    w->failed =
        metrics_counter(m, "vigil_webhook_notifications_total", help, "outcome=\"failed\"");
    w->retried =
        metrics_counter(m, "vigil_webhook_notifications_total", help, "outcome=\"retried\"");
    if (w->stop == NULL || pthread_create(&w->thread, NULL, run, w) != 0) {
        ctx_destroy(w->stop);
        free(w);
        snprintf(errstr, errstr_size, "could not start the webhook thread");
        return NULL;
    }
    return w;
}

void webhook_sender_stop(struct webhook_sender *w)
{
    if (w == NULL)
        return;
    ctx_cancel(w->stop);
    pthread_join(w->thread, NULL);
    ctx_destroy(w->stop);
    free(w);
}
