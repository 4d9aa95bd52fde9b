#include "dedupe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define NCOLS 8
struct dedupe_batch {
    struct pg_textarray *col[NCOLS]; /* 6: the step; 7: may_defer */
};

struct dedupe_batch *dedupe_batch_new(void)
{
    struct dedupe_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    for (int i = 0; i < NCOLS; i++)
        if ((b->col[i] = pg_textarray_new()) == NULL) {
            dedupe_batch_destroy(b);
            return NULL;
        }
    return b;
}

void dedupe_batch_destroy(struct dedupe_batch *b)
{
    if (b == NULL)
        return;
    for (int i = 0; i < NCOLS; i++)
        pg_textarray_destroy(b->col[i]);
    free(b);
}

static void batch_reset(struct dedupe_batch *b)
{
    for (int i = 0; i < NCOLS; i++)
        pg_textarray_reset(b->col[i]);
}

/* Text of a step number, for an int[] parameter. */
static const char *step_text(int step, char *buf, size_t bufsz)
{
    snprintf(buf, bufsz, "%d", step);
    return buf;
}

/* Fills columns 0..2, 6 and 7 (MAY_DEFER, false when NULL) with the keys. Returns 0 or -1 (out of memory). */
static int batch_keys(struct dedupe_batch *b, const struct dedupe_key *keys,
                      const bool *may_defer, int n,
                      char *errstr, size_t errstr_size)
{
    char st[16];
    batch_reset(b);
    for (int i = 0; i < n; i++)
        if (pg_textarray_add(b->col[0], keys[i].alert_id) != 0 ||
            pg_textarray_add(b->col[1], keys[i].researcher) != 0 ||
            pg_textarray_add(b->col[2], channel_name(keys[i].ch)) != 0 ||
            pg_textarray_add(b->col[6], step_text(keys[i].step, st, sizeof st)) != 0 ||
            pg_textarray_add(b->col[7], may_defer != NULL && may_defer[i] ? "t" : "f") != 0) {
            snprintf(errstr, errstr_size, "out of memory building a batch of %d rows", n);
            return -1;
        }
    return 0;
}

int dedupe_claim_many(PGconn *conn, struct dedupe_batch *b, const struct dedupe_key *keys,
                      const bool *may_defer, int n, int lease_s, enum dedupe_claim *out, bool *taken_over, char *errstr,
                      size_t errstr_size)
{
    if (n <= 0)
        return 0;
    if (batch_keys(b, keys, may_defer, n, errstr, errstr_size) != 0)
        return -1;
    char lease[32];
    snprintf(lease, sizeof lease, "%d", lease_s);
    const char *p[] = {pg_textarray_str(b->col[0]), pg_textarray_str(b->col[1]),
                       pg_textarray_str(b->col[2]), lease, pg_textarray_str(b->col[6]),
                       pg_textarray_str(b->col[7])};
    /* One round trip for the whole batch. The INSERT claims what is new or
     * abandoned (xmax is 0 for a row it inserted, non-zero for one it took
     * over); the outer SELECT reads, in the statement's snapshot, the state
     * that made a key not claimable. Rows are inserted in key order so two
     * notifiers claiming overlapping batches lock them in the same order
     * and cannot deadlock. A deferrable key (k.d) looks up the researcher's
     * quiet window (0064): inside it the new row is 'deferred' until its
     * end; a row that already exists keeps its state. */
    PGresult *r = pg_query(
        conn,
        "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $5::int[], "
        "$6::bool[]) WITH ORDINALITY AS k(a, r, c, st, d, i)), "
        "kq AS (SELECT k.*, vigil_quiet_end(w.start_local, w.end_local, w.time_zone, now()) AS q "
        "FROM k LEFT JOIN researcher_quiet_hours w ON k.d AND w.researcher_id = k.r), "
        "ins AS (INSERT INTO notifications AS n (alert_id, researcher_id, channel, step, state, "
        "next_attempt_at, deferred_until) SELECT a, r, c, st, "
        "CASE WHEN q IS NULL THEN 'pending' ELSE 'deferred' END, coalesce(q, now()), q "
        "FROM kq ORDER BY a, r, c, st "
        "ON CONFLICT (alert_id, researcher_id, channel, step) DO UPDATE "
        "SET state = 'pending', updated_at = now(), next_attempt_at = now() "
        "WHERE n.state IN ('pending', 'sending') "
        "AND n.updated_at < now() - make_interval(secs => $4::int) "
        "RETURNING n.alert_id, n.researcher_id, n.channel, n.step, (n.xmax <> 0)::int AS took, "
        "n.state) "
        "SELECT k.i, ins.took, cur.state, ins.state FROM k "
        "LEFT JOIN ins ON ins.alert_id = k.a AND ins.researcher_id = k.r AND ins.channel = k.c "
        "AND ins.step = k.st "
        "LEFT JOIN notifications cur ON cur.alert_id = k.a AND cur.researcher_id = k.r "
        "AND cur.channel = k.c AND cur.step = k.st ORDER BY k.i",
        6, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != n) {
        snprintf(errstr, errstr_size,
                 "claiming %d notifications returned %d rows (duplicate keys?)", n,
                 PQntuples(r));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        bool taken = false;
        if (!PQgetisnull(r, i, 1)) {
            out[i] = strcmp(PQgetvalue(r, i, 3), "deferred") == 0 ? DEDUPE_DEFERRED
                                                                 : DEDUPE_OWNED;
            taken = strcmp(PQgetvalue(r, i, 1), "1") == 0;
        } else if (PQgetisnull(r, i, 2)) {
            /* inserted by someone else after our snapshot, or deleted:
             * look again later */
            out[i] = DEDUPE_BUSY;
        } else {
            const char *st = PQgetvalue(r, i, 2);
            out[i] = (strcmp(st, "pending") == 0 || strcmp(st, "sending") == 0) ? DEDUPE_BUSY
                                                                               : DEDUPE_DONE;
        }
        if (taken_over != NULL)
            taken_over[i] = taken;
    }
    PQclear(r);
    return 0;
}

int dedupe_mark_sending_many(PGconn *conn, struct dedupe_batch *b, const struct dedupe_key *keys,
                             int n, bool *mine, char *errstr, size_t errstr_size)
{
    if (n <= 0)
        return 0;
    if (batch_keys(b, keys, NULL, n, errstr, errstr_size) != 0)
        return -1;
    const char *p[] = {pg_textarray_str(b->col[0]), pg_textarray_str(b->col[1]),
                       pg_textarray_str(b->col[2]), pg_textarray_str(b->col[6])};
    /* Only a row still in flight is started: one another notifier settled
     * after taking it over (our lease ran out while we were stalled) stays
     * as it is, and the caller does not send it a second time. */
    PGresult *r = pg_query(
        conn,
        "WITH k AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) "
        "WITH ORDINALITY AS k(a, r, c, st, i)), "
        "u AS (UPDATE notifications n SET state = 'sending', attempts = n.attempts + 1, "
        "updated_at = now() FROM k WHERE n.alert_id = k.a AND n.researcher_id = k.r "
        "AND n.channel = k.c AND n.step = k.st AND n.state IN ('pending', 'sending') "
        "RETURNING k.i) "
        "SELECT k.i, u.i IS NOT NULL FROM k LEFT JOIN u ON u.i = k.i ORDER BY k.i",
        4, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != n) {
        snprintf(errstr, errstr_size, "starting %d notifications returned %d rows", n,
                 PQntuples(r));
        PQclear(r);
        return -1;
    }
    for (int i = 0; i < n; i++)
        mine[i] = strcmp(PQgetvalue(r, i, 1), "t") == 0;
    PQclear(r);
    return 0;
}

/* Rolls back an open transaction on CONN; cannot fail visibly. */
static void rollback(PGconn *conn)
{
    char ignore[256];
    if (PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        pg_command(conn, "ROLLBACK", 0, NULL, ignore, sizeof ignore);
}

int dedupe_record_outcomes(PGconn *conn, struct dedupe_batch *b,
                           const struct dedupe_outcome *o, int n, char *errstr,
                           size_t errstr_size)
{
    if (n <= 0)
        return 0;
    char st[16];
    batch_reset(b);
    for (int i = 0; i < n; i++)
        if (pg_textarray_add(b->col[6], step_text(o[i].key.step, st, sizeof st)) != 0 ||
            pg_textarray_add(b->col[0], o[i].key.alert_id) != 0 ||
            pg_textarray_add(b->col[1], o[i].key.researcher) != 0 ||
            pg_textarray_add(b->col[2], channel_name(o[i].key.ch)) != 0 ||
            pg_textarray_add(b->col[3], o[i].sent ? "sent" : "failed") != 0 ||
            pg_textarray_add(b->col[4], o[i].sent ? o[i].provider_id : NULL) != 0 ||
            pg_textarray_add(b->col[5], o[i].sent ? NULL : o[i].error) != 0) {
            snprintf(errstr, errstr_size, "out of memory building a batch of %d outcomes", n);
            return -1;
        }
    const char *p[7];
    for (int i = 0; i < 7; i++)
        p[i] = pg_textarray_str(b->col[i]);
    /* The sent row is what stops a replay paging twice, so this commit
     * waits for the WAL flush whatever the session's synchronous_commit:
     * one flush for the whole batch rather than one per message. */
    if (pg_command(conn, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    if (pg_command(conn, "SET LOCAL synchronous_commit = on", 0, NULL, errstr, errstr_size) !=
            0 ||
        pg_command(conn,
                   "UPDATE notifications n SET state = k.s, updated_at = now(), "
                   "sent_at = CASE WHEN k.s = 'sent' THEN now() END, "
                   "provider_message_id = k.p, last_error = k.e, next_attempt_at = NULL "
                   "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], "
                   "$6::text[], $7::int[]) AS k(a, r, c, s, p, e, st) WHERE n.alert_id = k.a "
                   "AND n.researcher_id = k.r AND n.channel = k.c AND n.step = k.st "
                   "AND n.state IN ('pending', 'sending')",
                   7, p, errstr, errstr_size) != 0 ||
        pg_command(conn, "COMMIT", 0, NULL, errstr, errstr_size) != 0) {
        rollback(conn);
        return -1;
    }
    return 0;
}

/* Runs SQL whose $1 is the alert-id array, $2 the researcher, $3 the
 * channel, $4 the step and $5, $6 (if not NULL) two more values. */
static int update_many(PGconn *conn, const char *sql, const char *const *alert_ids, int n,
                       const char *researcher, enum channel ch, int step, const char *extra,
                       const char *extra2, char *errstr, size_t errstr_size)
{
    char st[16];
    struct pg_textarray *arr = pg_textarray_new();
    int rc = -1;
    if (arr == NULL)
        goto oom;
    for (int i = 0; i < n; i++)
        if (pg_textarray_add(arr, alert_ids[i]) != 0)
            goto oom;
    const char *p[] = {pg_textarray_str(arr), researcher, channel_name(ch),
                       step_text(step, st, sizeof st), extra, extra2};
    int np = extra2 != NULL ? 6 : extra != NULL ? 5 : 4;
    rc = pg_command(conn, sql, np, p, errstr, errstr_size);
    pg_textarray_destroy(arr);
    return rc;
oom:
    snprintf(errstr, errstr_size, "out of memory building a list of %d alert ids", n);
    pg_textarray_destroy(arr);
    return -1;
}

#define WHERE_KEYS " WHERE alert_id = ANY ($1::text[]) AND researcher_id = $2 AND channel = $3" \
    " AND step = $4::int"

int dedupe_mark_suppressed(PGconn *conn, const char *const *alert_ids, int n,
                           const char *researcher, enum channel ch, int step, const char *reason,
                           char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'suppressed', updated_at = now(), "
                       "last_error = $5, next_attempt_at = NULL" WHERE_KEYS,
                       alert_ids, n, researcher, ch, step, reason, NULL, errstr, errstr_size);
}

int dedupe_mark_retry(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                      enum channel ch, int step, long delay_ms, const char *reason, char *errstr,
                      size_t errstr_size)
{
    char delay[32];
    snprintf(delay, sizeof delay, "%ld", delay_ms);
    return update_many(conn,
                       "UPDATE notifications SET state = 'pending', updated_at = now(), "
                       "last_error = $5, next_attempt_at = now() + make_interval(secs => "
                       "$6::double precision / 1000)" WHERE_KEYS
                       " AND state IN ('pending', 'sending')",
                       alert_ids, n, researcher, ch, step, reason, delay, errstr, errstr_size);
}

int dedupe_release(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                   enum channel ch, int step, char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET state = 'pending', updated_at = '-infinity', "
                       "next_attempt_at = now()" WHERE_KEYS
                       " AND state IN ('pending', 'sending')",
                       alert_ids, n, researcher, ch, step, NULL, NULL, errstr, errstr_size);
}

int dedupe_renew(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                 enum channel ch, int step, char *errstr, size_t errstr_size)
{
    return update_many(conn,
                       "UPDATE notifications SET updated_at = now()" WHERE_KEYS
                       " AND state IN ('pending', 'sending')",
                       alert_ids, n, researcher, ch, step, NULL, NULL, errstr, errstr_size);
}

int dedupe_recipients(PGconn *conn, const char *alert_id, struct route_result *out,
                      char *errstr, size_t errstr_size)
{
    const char *p[] = {alert_id};
    PGresult *r = pg_query(conn,
                           "SELECT DISTINCT researcher_id, channel FROM notifications "
                           "WHERE alert_id = $1 AND state IN ('sent', 'sending') "
                           "ORDER BY researcher_id, channel",
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

int dedupe_deferred_count(PGconn *conn, const char *alert_id, char *errstr, size_t errstr_size)
{
    const char *p[] = {alert_id};
    PGresult *r = pg_query(conn,
                           "SELECT count(*) FROM notifications WHERE alert_id = $1 "
                           "AND state = 'deferred'",
                           1, p, errstr, errstr_size);
    if (r == NULL)
        return -1;
    int n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}
