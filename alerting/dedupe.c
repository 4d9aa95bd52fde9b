#include "dedupe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notice.h"

/* Room for NOTICE_MAX_ALERTS ids, each fully escaped and quoted. */
#define ARRAY_MAX (NOTICE_MAX_ALERTS * (2 * ALERT_ID_MAX + 3) + 8)

size_t dedupe_array_literal(const char *const *ids, int n, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz < 3)
        return 0;
    out[o++] = '{';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            out[o++] = ',';
        out[o++] = '"';
        for (const char *p = ids[i]; *p; p++) {
            if (o + 5 >= outsz)
                return 0;
            if (*p == '"' || *p == '\\')
                out[o++] = '\\';
            out[o++] = *p;
        }
        if (o + 4 >= outsz)
            return 0;
        out[o++] = '"';
    }
    out[o++] = '}';
    out[o] = '\0';
    return o;
}

int dedupe_claim(PGconn *conn, const char *alert_id, const char *researcher, enum channel ch,
                 int lease_s, enum dedupe_claim *out, bool *taken_over, char *errstr,
                 size_t errstr_size)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%d", lease_s);
    const char *p[] = {alert_id, researcher, channel_name(ch), lease};
    /* xmax is 0 for a row this statement inserted and non-zero for one it
     * updated: the cheap way to tell a new claim from a take-over. */
    PGresult *r = pg_query(conn,
                           "INSERT INTO notifications AS n (alert_id, researcher_id, channel, "
                           "state, next_attempt_at) VALUES ($1, $2, $3, 'pending', now()) "
                           "ON CONFLICT (alert_id, researcher_id, channel) DO UPDATE "
                           "SET state = 'pending', updated_at = now(), next_attempt_at = now() "
                           "WHERE n.state IN ('pending', 'sending') "
                           "AND n.updated_at < now() - make_interval(secs => $4::int) "
                           "RETURNING (n.xmax <> 0)::int",
                           4, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 1) {
        if (taken_over != NULL)
            *taken_over = strcmp(PQgetvalue(r, 0, 0), "1") == 0;
        PQclear(r);
        *out = DEDUPE_OWNED;
        return 0;
    }
    PQclear(r);
    r = pg_query(conn,
                 "SELECT state FROM notifications WHERE alert_id = $1 AND researcher_id = $2 "
                 "AND channel = $3",
                 3, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    if (PQntuples(r) == 0) {
        /* deleted between the two statements: claim again next time */
        *out = DEDUPE_BUSY;
    } else {
        const char *st = PQgetvalue(r, 0, 0);
        *out = (strcmp(st, "pending") == 0 || strcmp(st, "sending") == 0) ? DEDUPE_BUSY
                                                                          : DEDUPE_DONE;
    }
    if (taken_over != NULL)
        *taken_over = false;
    PQclear(r);
    return 0;
}

/* Runs SQL whose $1 is the alert-id array, $2 the researcher, $3 the
 * channel and $4 (if EXTRA) one more value. */
static int update_many(PGconn *conn, const char *sql, const char *const *alert_ids, int n,
                       const char *researcher, enum channel ch, const char *extra,
                       const char *extra2, char *errstr, size_t errstr_size)
{
    char arr[ARRAY_MAX];
    if (n < 1 || n > NOTICE_MAX_ALERTS || dedupe_array_literal(alert_ids, n, arr, sizeof arr) == 0) {
        snprintf(errstr, errstr_size, "too many alert ids in one notification (%d)", n);
        return -1;
    }
    const char *p[] = {arr, researcher, channel_name(ch), extra, extra2};
    int np = extra2 != NULL ? 5 : extra != NULL ? 4 : 3;
    return pg_command(conn, sql, np, p, errstr, errstr_size);
}

#define WHERE_KEYS " WHERE alert_id = ANY ($1::text[]) AND researcher_id = $2 AND channel = $3"

int dedupe_mark_sending(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                        enum channel ch, char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'sending', attempts = attempts + 1, "
                       "updated_at = now()" WHERE_KEYS,
                       alert_ids, n, researcher, ch, NULL, NULL, errstr, errstr_size);
}

int dedupe_mark_sent(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                     enum channel ch, const char *provider_id, char *errstr, size_t errstr_size)
{
    /* provider_id NULL becomes SQL NULL through the $4 parameter */
    char arr[ARRAY_MAX];
    if (n < 1 || n > NOTICE_MAX_ALERTS || dedupe_array_literal(alert_ids, n, arr, sizeof arr) == 0) {
        snprintf(errstr, errstr_size, "too many alert ids in one notification (%d)", n);
        return -1;
    }
    const char *p[] = {arr, researcher, channel_name(ch), provider_id};
    return pg_command(conn,
                      "UPDATE notifications SET state = 'sent', sent_at = now(), updated_at = "
                      "now(), provider_message_id = $4, last_error = NULL, next_attempt_at = "
                      "NULL" WHERE_KEYS,
                      4, p, errstr, errstr_size);
}

int dedupe_durable_begin(PGconn *conn, char *errstr, size_t errstr_size)
{
    if (pg_command(conn, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    if (pg_command(conn, "SET LOCAL synchronous_commit = on", 0, NULL, errstr, errstr_size) !=
        0) {
        dedupe_rollback(conn);
        return -1;
    }
    return 0;
}

int dedupe_commit(PGconn *conn, char *errstr, size_t errstr_size)
{
    if (pg_command(conn, "COMMIT", 0, NULL, errstr, errstr_size) != 0) {
        dedupe_rollback(conn);
        return -1;
    }
    return 0;
}

void dedupe_rollback(PGconn *conn)
{
    char ignore[256];
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        pg_command(conn, "ROLLBACK", 0, NULL, ignore, sizeof ignore);
}

int dedupe_mark_failed(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                       enum channel ch, const char *reason, char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'failed', updated_at = now(), "
                       "last_error = $4, next_attempt_at = NULL" WHERE_KEYS,
                       alert_ids, n, researcher, ch, reason, NULL, errstr, errstr_size);
}

int dedupe_mark_suppressed(PGconn *conn, const char *const *alert_ids, int n,
                           const char *researcher, enum channel ch, const char *reason,
                           char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'suppressed', updated_at = now(), "
                       "last_error = $4, next_attempt_at = NULL" WHERE_KEYS,
                       alert_ids, n, researcher, ch, reason, NULL, errstr, errstr_size);
}

int dedupe_mark_retry(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                      enum channel ch, long delay_ms, const char *reason, char *errstr,
                      size_t errstr_size)
{
    char delay[32];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    return update_many(conn,
                       "UPDATE notifications SET state = 'pending', updated_at = now(), "
                       "last_error = $4, next_attempt_at = now() + make_interval(secs => "
                       "$5::double precision / 1000)" WHERE_KEYS,
                       alert_ids, n, researcher, ch, reason, delay, errstr, errstr_size);
}

int dedupe_release(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                   enum channel ch, char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'pending', updated_at = '-infinity', "
                       "next_attempt_at = now()" WHERE_KEYS
                       " AND state IN ('pending', 'sending')",
                       alert_ids, n, researcher, ch, NULL, NULL, errstr, errstr_size);
}

int dedupe_recipients(PGconn *conn, const char *alert_id, struct route_result *out,
                      char *errstr, size_t errstr_size)
{
    const char *p[] = {alert_id};
    PGresult *r = pg_query(conn,
                           "SELECT researcher_id, channel FROM notifications WHERE alert_id = $1 "
                           "AND state IN ('sent', 'sending') ORDER BY researcher_id, channel",
                           1, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    int found = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        int ch = channel_parse(PQgetvalue(r, i, 1));
        const char *id = PQgetvalue(r, i, 0);
        if (ch < 0 || strlen(id) > RESEARCHER_ID_MAX)
            continue;
        if (out->n >= ROUTE_MAX_RECIPIENTS) {
            out->dropped++;
            continue;
        }
        struct recipient *rc = &out->r[out->n++];
        snprintf(rc->researcher_id, sizeof rc->researcher_id, "%s", id);
        rc->channel = (enum channel)ch;
        rc->address[0] = '\0';
        found++;
    }
    PQclear(r);
    return found;
}

int dedupe_record_unroutable(PGconn *conn, const struct alert *a, const char *reason,
                             char *errstr, size_t errstr_size)
{
    const char *p[] = {a->alert_id, a->study_id, a->site_id, alert_severity_name(a->severity),
                       reason};
    PGresult *r = pg_query(conn,
                           "INSERT INTO unroutable_alerts (alert_id, study_id, site_id, "
                           "severity, reason) VALUES ($1, $2, $3, $4, $5) "
                           "ON CONFLICT (alert_id) DO NOTHING RETURNING 1",
                           5, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    int inserted = PQntuples(r);
    PQclear(r);
    return inserted;
}
