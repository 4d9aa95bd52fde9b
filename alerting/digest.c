#include "digest.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kafka.h"
#include "log.h"

#define CLAIM_BATCH "50"
/* The body stops listing alerts here (the count stays right): a message
 * must fit EMAIL_MAX with its headers. */
#define BODY_MAX 12000

static void record(PGconn *c, const struct digest_config *cfg, const char *day, const char *who,
                   const char *ids, int n, const char *error)
{
    char nn[16], e[512];
    snprintf(nn, sizeof nn, "%d", n);
    const char *p[] = {day, who, error, cfg->actor, ids, nn};
    if (pg_command(c,
                   "WITH u AS (UPDATE warning_digests SET state = CASE WHEN $3::text IS NULL "
                   "THEN 'sent' ELSE 'failed' END, sent_at = CASE WHEN $3::text IS NULL THEN "
                   "now() END, last_error = $3 WHERE day = $1::date AND researcher_id = $2 "
                   "RETURNING 1) "
                   "SELECT vigil_audit_append(NULL, CASE WHEN $3::text IS NULL THEN "
                   "'digest_sent' ELSE 'digest_failed' END, $4, jsonb_strip_nulls("
                   "jsonb_build_object('researcher_id', $2::text, 'day', $1::text, 'alerts', "
                   "$6::int, 'alert_ids', string_to_array($5, ' '), 'error', $3::text))) "
                   "FROM u",
                   6, p, e, sizeof e) != 0)
        log_msg(LOG_WARN, "digest", "could not record the digest to %s: %s", who, e);
}

/* Writes the body for alert ids IDS, to researcher WHO, into OUT: each
 * alert with its own acknowledgement link when links are on. Returns 0 or
 * -1 (database). */
static int body(PGconn *c, const struct digest_config *cfg, const char *who, const char *day,
                const char *ids, int n, char *out, size_t outsz, char *errstr,
                size_t errstr_size)
{
    const char *p[] = {ids};
    PGresult *r = pg_query(c,
                           "SELECT a.alert_id, a.study_id, a.site_id, a.subject_id, a.message, "
                           "to_char(l.opened_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') "
                           "FROM alerts a JOIN alert_lifecycle l USING (alert_id) "
                           "WHERE a.alert_id = ANY (string_to_array($1, ' ')) "
                           "ORDER BY l.opened_at, a.alert_id",
                           1, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    size_t o = (size_t)snprintf(out, outsz,
                                "%d warning alert%s still unacknowledged, as of %s (UTC):\n\n", n,
                                n == 1 ? " is" : "s are", day);
    int listed = 0;
    int64_t now_s = kafka_now_ms() / 1000;
    for (int i = 0; i < PQntuples(r) && o + 600 + ACKLINK_TOKEN_MAX < outsz && o < BODY_MAX;
         i++, listed++) {
        o += (size_t)snprintf(out + o, outsz - o, "- %s UTC  %s/%s/%s: %s [alert %s]\n",
                              PQgetvalue(r, i, 5), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                              PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 0));
        char url[1024 + ACKLINK_TOKEN_MAX];
        if (cfg->ack != NULL && o < outsz &&
            ackmsg_link(cfg->ack, PQgetvalue(r, i, 0), who, now_s, url, sizeof url) > 0)
            o += (size_t)snprintf(out + o, outsz - o, "  Acknowledge: %s\n", url);
    }
    if (listed < n && o + 100 < outsz)
        o += (size_t)snprintf(out + o, outsz - o, "... and %d more\n", n - listed);
    if (o + 200 < outsz)
        snprintf(out + o, outsz - o,
                 "\nAcknowledge each by its link, in the console, or: vigil alerts ack ALERT "
                 "--as YOU\n"
                 "Warnings do not escalate; this digest comes once a day.\n");
    PQclear(r);
    return 0;
}

static int send_one(const struct digest_config *cfg, const char *to, const char *subject,
                    const char *key, const char *text, char *error, size_t errsz)
{
    static char msg[EMAIL_MAX];
    char msgid[300];
    email_message_id(key, cfg->email->from, msgid, sizeof msgid);
    /* no X-Vigil-Alert-Ids: a digest is not a delivery of those alerts */
    struct email_headers h = {cfg->email->from, to, subject, msgid, kafka_now_ms(), NULL};
    size_t len = email_format(&h, text, msg, sizeof msg);
    if (len == 0) {
        snprintf(error, errsz, "digest too large to format");
        return -1;
    }
    CURL *easy = curl_easy_init();
    struct email_upload up;
    memset(&up, 0, sizeof up);
    char cerr[CURL_ERROR_SIZE] = "";
    int rc = -1;
    if (easy == NULL) {
        snprintf(error, errsz, "out of memory");
        return -1;
    }
    if (email_easy_setup(easy, cfg->email, to, msg, len, &up, error, errsz) == 0) {
        curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
        CURLcode res = curl_easy_perform(easy);
        if (res == CURLE_OK) {
            rc = 0;
        } else {
            snprintf(error, errsz, "SMTP: %s", cerr[0] ? cerr : curl_easy_strerror(res));
        }
    }
    email_upload_free(&up);
    curl_easy_cleanup(easy);
    return rc;
}

int digest_run(PGconn *c, const struct digest_config *cfg, char *errstr, size_t errstr_size)
{
    if (cfg->email == NULL || cfg->email->url == NULL || cfg->email->url[0] == '\0' ||
        cfg->hour_utc < 0)
        return 0;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    if (tm.tm_hour < cfg->hour_utc)
        return 0;
    char day[16], age[16], lease[16];
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    snprintf(age, sizeof age, "%d", cfg->min_age_s);
    snprintf(lease, sizeof lease, "%d", cfg->lease_s);
    const char *p[] = {day, age, lease};
    PGresult *r = pg_query(c,
                           "SELECT researcher_id, email, array_to_string(alert_ids, ' '), "
                           "cardinality(alert_ids) FROM vigil_digest_claim($1::date, $2::int, "
                           "$3::int, " CLAIM_BATCH ")",
                           3, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    int sent = 0;
    static char text[BODY_MAX + 1024];
    for (int i = 0; i < PQntuples(r); i++) {
        const char *who = PQgetvalue(r, i, 0), *to = PQgetvalue(r, i, 1);
        const char *ids = PQgetvalue(r, i, 2);
        int n = atoi(PQgetvalue(r, i, 3));
        char error[512] = "", subject[128], key[256];
        if (body(c, cfg, who, day, ids, n, text, sizeof text, error, sizeof error) == 0) {
            snprintf(subject, sizeof subject, "vigil digest: %d unacknowledged warning alert%s",
                     n, n == 1 ? "" : "s");
            snprintf(key, sizeof key, "digest|%s|%s", day, who);
            if (send_one(cfg, to, subject, key, text, error, sizeof error) == 0)
                error[0] = '\0';
        }
        record(c, cfg, day, who, ids, n, error[0] ? error : NULL);
        if (error[0])
            log_msg(LOG_WARN, "digest", "digest to researcher %s failed: %s", who, error);
        else
            sent++;
    }
    PQclear(r);
    return sent;
}
