/*
 * store_batch: the batch statement (see store_batch.h).
 *
 * Binary COPY is written by hand here: libpq sends COPY data as bytes and
 * leaves the format to the caller, and the format (PostgreSQL's "Binary
 * Format" of COPY) is a header, then per row a field count and per field a
 * length and the type's send representation, then a trailer.
 *
 * Why one simple-query message and not libpq's pipeline mode: COPY is not
 * allowed in a pipeline, and without COPY a batch travels as parameters
 * (arrays or one statement per row), which costs PostgreSQL more CPU than
 * the COPY it replaces. A multi-statement query keeps COPY and still sends
 * BEGIN, the statements and COMMIT without waiting between them.
 */
#include "store_batch.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

/* Session-local staging tables: COPY lands here, the statements move the
 * batch. ON COMMIT DELETE ROWS empties them for the next batch. Column
 * types match the binary COPY below field by field. */
static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS vigil_obs_stage ("
    " observation_id text, study_id text, site_id text, subject_id text, loinc text,"
    " value double precision, unit text, ref_low double precision, ref_high double precision,"
    " value_norm double precision, unit_norm text, ref_low_norm double precision,"
    " ref_high_norm double precision, effective_at timestamptz, issued_at timestamptz,"
    " status text, visit text, dq_finding text, source_topic text, source_partition integer,"
    " source_offset bigint, revision bigint) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS vigil_alert_stage ("
    " seq integer, alert_id text, kind text, rule_id text, rule_version integer, severity text,"
    " ctcae_grade smallint, study_id text, site_id text, subject_id text,"
    " observation_id text, evidence jsonb, message text, observed_at timestamptz,"
    " detected_at timestamptz, retracts_alert_id text) ON COMMIT DELETE ROWS";
#define OBS_FIELDS   22
#define ALERT_FIELDS 16

#define COPY_OBS_SQL   "COPY vigil_obs_stage FROM STDIN (FORMAT binary)"
#define COPY_ALERT_SQL "COPY vigil_alert_stage FROM STDIN (FORMAT binary)"

/* Newest revision of each observation in the batch wins, and only moves a
 * stored row forward: a replay of an older revision changes nothing. */
#define UPSERT_OBS_SQL \
    "INSERT INTO observations (observation_id, study_id, site_id, subject_id, loinc, value," \
    " unit, ref_low, ref_high, value_norm, unit_norm, ref_low_norm, ref_high_norm," \
    " effective_at, issued_at, status, visit, dq_finding, source_topic, source_partition," \
    " source_offset, revision)" \
    " SELECT DISTINCT ON (observation_id) observation_id, study_id, site_id, subject_id, loinc," \
    " value, unit, ref_low, ref_high, value_norm, unit_norm, ref_low_norm, ref_high_norm," \
    " effective_at, issued_at, status, visit, dq_finding, source_topic, source_partition," \
    " source_offset, revision" \
    " FROM vigil_obs_stage ORDER BY observation_id, revision DESC, source_offset DESC" \
    " ON CONFLICT (observation_id) DO UPDATE SET study_id = EXCLUDED.study_id," \
    " site_id = EXCLUDED.site_id, subject_id = EXCLUDED.subject_id, loinc = EXCLUDED.loinc," \
    " value = EXCLUDED.value, unit = EXCLUDED.unit, ref_low = EXCLUDED.ref_low," \
    " ref_high = EXCLUDED.ref_high, value_norm = EXCLUDED.value_norm," \
    " unit_norm = EXCLUDED.unit_norm, ref_low_norm = EXCLUDED.ref_low_norm," \
    " ref_high_norm = EXCLUDED.ref_high_norm, effective_at = EXCLUDED.effective_at," \
    " issued_at = EXCLUDED.issued_at, status = EXCLUDED.status, visit = EXCLUDED.visit," \
    " dq_finding = EXCLUDED.dq_finding, source_topic = EXCLUDED.source_topic," \
    " source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset," \
    " revision = EXCLUDED.revision, updated_at = now()" \
    " WHERE observations.revision < EXCLUDED.revision"

/* The first alert with an id wins, in the batch (seq) as across batches
 * (DO NOTHING): which evidence is stored never depends on batching. A
 * later copy carries the same verdict on the same observation (the id says
 * so); the first one is also the one the notifier paged for. */
#define INSERT_ALERT_SQL \
    "INSERT INTO alerts (alert_id, kind, rule_id, rule_version, severity, ctcae_grade," \
    " study_id, site_id, subject_id, observation_id, evidence, message, observed_at," \
    " detected_at, retracts_alert_id)" \
    " SELECT DISTINCT ON (alert_id) alert_id, kind, rule_id, rule_version, severity," \
    " ctcae_grade, study_id, site_id, subject_id, observation_id, evidence, message," \
    " observed_at, detected_at, retracts_alert_id FROM vigil_alert_stage ORDER BY alert_id, seq" \
    " ON CONFLICT (alert_id) DO NOTHING"

#define RETRACT_SQL \
    "UPDATE alerts a SET retracted = true, retracted_by = s.alert_id" \
    " FROM vigil_alert_stage s" \
    " WHERE s.kind = 'retraction' AND a.alert_id = s.retracts_alert_id AND NOT a.retracted"

/* The batch, one simple-query message each way: observations only,
 * observations and alerts, alerts only (no row to store). The client
 * waits only for each COPY to start and for the end. */
static const char batch_obs_sql[] = "BEGIN;" COPY_OBS_SQL ";" UPSERT_OBS_SQL ";COMMIT";
static const char batch_both_sql[] = "BEGIN;" COPY_OBS_SQL ";" COPY_ALERT_SQL ";" UPSERT_OBS_SQL
                                     ";" INSERT_ALERT_SQL ";" RETRACT_SQL ";COMMIT";
static const char batch_alerts_sql[] =
    "BEGIN;" COPY_ALERT_SQL ";" INSERT_ALERT_SQL ";" RETRACT_SQL ";COMMIT";

/* A binary COPY stream under construction. */
struct bbuf {
    unsigned char *p;
    size_t len;
    size_t cap;
    bool oom;
};

struct store_batch {
    const char *source_topic;
    struct bbuf obs;
    struct bbuf alerts;
};

/* ---- the binary COPY stream ------------------------------------------ */

static void bb_reserve(struct bbuf *b, size_t n)
{
    if (b->oom || b->len + n <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 65536;
    while (ncap < b->len + n)
        ncap *= 2;
    unsigned char *np = realloc(b->p, ncap);
    if (np == NULL) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void bb_be(struct bbuf *b, uint64_t v, int bytes)
{
    bb_reserve(b, (size_t)bytes);
    if (b->oom)
        return;
    for (int i = bytes - 1; i >= 0; i--)
        b->p[b->len++] = (unsigned char)(v >> (8 * i));
}

static void bb_null(struct bbuf *b)
{
    bb_be(b, UINT32_MAX, 4); /* length -1 */
}

static void bb_bytes(struct bbuf *b, const void *s, size_t n)
{
    bb_be(b, (uint32_t)n, 4);
    bb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* text: the characters as they are (the server checks the encoding). */
static void bb_text(struct bbuf *b, const char *s)
{
    if (s == NULL)
        bb_null(b);
    else
        bb_bytes(b, s, strlen(s));
}

static void bb_opt_text(struct bbuf *b, const char *s)
{
    bb_text(b, s != NULL && *s != '\0' ? s : NULL);
}

static void bb_f8(struct bbuf *b, bool has, double v)
{
    if (!has) {
        bb_null(b);
        return;
    }
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bb_be(b, 8, 4);
    bb_be(b, bits, 8);
}

static void bb_i8(struct bbuf *b, int64_t v)
{
    bb_be(b, 8, 4);
    bb_be(b, (uint64_t)v, 8);
}

static void bb_i4(struct bbuf *b, int32_t v)
{
    bb_be(b, 4, 4);
    bb_be(b, (uint32_t)v, 4);
}

/* timestamptz: microseconds since 2000-01-01 00:00:00 UTC. */
static void bb_ts(struct bbuf *b, int64_t ms)
{
    bb_i8(b, (ms - INT64_C(946684800000)) * 1000);
}

static void bb_start(struct bbuf *b)
{
    static const unsigned char sig[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    b->len = 0;
    b->oom = false;
    bb_reserve(b, sizeof sig);
    if (!b->oom) {
        memcpy(b->p, sig, sizeof sig);
        b->len = sizeof sig;
    }
    bb_be(b, 0, 4); /* flags */
    bb_be(b, 0, 4); /* header extension length */
}

static void bb_finish(struct bbuf *b)
{
    bb_be(b, UINT16_MAX, 2); /* trailer: field count -1 */
}

/* ---- rows ------------------------------------------------------------ */

static void row_observation(struct bbuf *b, const char *source_topic, const struct work *w)
{
    const struct observation *o = &w->obs;
    const struct clean_result *c = &w->clean;
    bool norm = c->status == CLEAN_OK;
    bb_be(b, OBS_FIELDS, 2);
    bb_text(b, o->observation_id);
    bb_text(b, o->study_id);
    bb_text(b, o->site_id);
    bb_text(b, o->subject_id);
    bb_text(b, o->loinc);
    bb_f8(b, o->has_value, o->value);
    bb_opt_text(b, o->unit);
    bb_f8(b, o->has_ref_low, o->ref_low);
    bb_f8(b, o->has_ref_high, o->ref_high);
    bb_f8(b, norm, c->value);
    bb_text(b, norm ? c->unit : NULL);
    bb_f8(b, norm && c->has_ref_low, c->ref_low);
    bb_f8(b, norm && c->has_ref_high, c->ref_high);
    bb_ts(b, o->effective_ms);
    if (o->issued_ms > 0)
        bb_ts(b, o->issued_ms);
    else
        bb_null(b);
    bb_text(b, obs_status_name(o->status));
    bb_opt_text(b, o->visit);
    bb_text(b, c->finding);
    bb_text(b, source_topic);
    bb_i4(b, w->partition);
    bb_i8(b, w->offset);
    bb_i8(b, w->revision);
}

static char *evidence_json(const struct alert *a)
{
    json_t *arr = json_array();
    for (int i = 0; i < a->n_evidence; i++) {
        const struct alert_evidence *e = &a->evidence[i];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:f, s:s, s:I}", "observation_id",
                                             e->observation_id, "loinc", e->loinc, "value",
                                             e->value, "unit", e->unit, "effective_ms",
                                             (json_int_t)e->effective_ms));
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    return text;
}

static void row_alert(struct bbuf *b, int32_t seq, const struct work *w, const struct alert *a)
{
    char *ev = evidence_json(a);
    bb_be(b, ALERT_FIELDS, 2);
    bb_i4(b, seq);
    bb_text(b, a->alert_id);
    bb_text(b, a->kind == ALERT_RETRACTION ? "retraction" : "signal");
    bb_text(b, a->rule_id);
    bb_i4(b, a->rule_version);
    bb_text(b, alert_severity_name(a->severity));
    if (a->ctcae_grade > 0) {
        bb_be(b, 2, 4);
        bb_be(b, (uint16_t)a->ctcae_grade, 2);
    } else {
        bb_null(b);
    }
    bb_text(b, a->study_id);
    bb_text(b, a->site_id);
    bb_text(b, a->subject_id);
    bb_text(b, w->obs.observation_id);
    /* jsonb's send form: a version byte (1), then the JSON text */
    const char *text = ev ? ev : "[]";
    size_t n = strlen(text);
    bb_be(b, (uint32_t)(n + 1), 4);
    bb_be(b, 1, 1);
    bb_reserve(b, n);
    if (!b->oom) {
        memcpy(b->p + b->len, text, n);
        b->len += n;
    }
    bb_text(b, a->message);
    bb_ts(b, a->observed_ms);
    bb_ts(b, a->detected_ms);
    bb_opt_text(b, a->kind == ALERT_RETRACTION ? a->retracts_alert_id : NULL);
    free(ev);
}

/* ---- the batch --------------------------------------------------------- */

struct store_batch *store_batch_new(const char *source_topic)
{
    struct store_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->source_topic = source_topic;
    return b;
}

void store_batch_destroy(struct store_batch *b)
{
    if (b == NULL)
        return;
    free(b->obs.p);
    free(b->alerts.p);
    free(b);
}

/* SQLSTATE classes 22 (data exception) and 23 (integrity) are the row's
 * fault; anything else (connection, shutdown, resources, locks,
 * serialization) is worth retrying as is. */
static enum store_write classify(PGconn *conn, const PGresult *res)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return STORE_WRITE_TRANSIENT;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return STORE_WRITE_DATA;
    return STORE_WRITE_TRANSIENT;
}

enum store_write store_batch_prepare(PGconn *conn, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, stage_sql);
    enum store_write r = STORE_WRITE_OK;
    if (!pg_result_error(conn, res, errstr, errstr_size))
        r = classify(conn, res);
    PQclear(res);
    return r;
}

/* Sends one COPY stream; false if the connection failed. */
static bool send_copy(PGconn *conn, const struct bbuf *b, char *errstr, size_t errstr_size)
{
    if (PQputCopyData(conn, (const char *)b->p, (int)b->len) != 1 ||
        PQputCopyEnd(conn, NULL) != 1) {
        snprintf(errstr, errstr_size, "could not send COPY data: %s", PQerrorMessage(conn));
        return false;
    }
    return true;
}

enum store_write store_batch_write(struct store_batch *b, PGconn *conn, struct work *const *items,
                                   size_t n, size_t *nalerts, char *errstr, size_t errstr_size)
{
    size_t nobs = 0, na = 0;
    bb_start(&b->obs);
    bb_start(&b->alerts);
    for (size_t i = 0; i < n; i++) {
        if (items[i]->store_row) {
            row_observation(&b->obs, b->source_topic, items[i]);
            nobs++;
        }
        for (int j = 0; j < items[i]->nalerts; j++, na++)
            row_alert(&b->alerts, (int32_t)na, items[i], &items[i]->alerts[j]);
    }
    bb_finish(&b->obs);
    bb_finish(&b->alerts);
    *nalerts = 0;
    if (b->obs.oom || b->alerts.oom) {
        snprintf(errstr, errstr_size, "out of memory building a batch of %zu rows", n);
        return STORE_WRITE_TRANSIENT;
    }
    if (nobs == 0 && na == 0)
        return STORE_WRITE_OK;

    /* The COPY streams, in the order the statement's COPYs ask for them. */
    const struct bbuf *streams[2];
    int nstreams = 0;
    if (nobs > 0)
        streams[nstreams++] = &b->obs;
    if (na > 0)
        streams[nstreams++] = &b->alerts;

    enum store_write r = STORE_WRITE_OK;
    if (!PQsendQuery(conn, nobs == 0 ? batch_alerts_sql
                                     : na == 0 ? batch_obs_sql
                                               : batch_both_sql)) {
        snprintf(errstr, errstr_size, "could not send the batch: %s", PQerrorMessage(conn));
        return STORE_WRITE_TRANSIENT;
    }
    int next = 0;
    bool failed = false;
    PGresult *res;
    while ((res = PQgetResult(conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_COPY_IN) {
            /* After a failure, or asked for a stream we do not have, end
             * the COPY with an error so the server aborts the batch. */
            if (failed || next >= nstreams) {
                PQputCopyEnd(conn, "vigil: batch aborted");
            } else if (!send_copy(conn, streams[next++], errstr, errstr_size)) {
                failed = true;
                r = STORE_WRITE_TRANSIENT;
            }
        } else if (st != PGRES_COMMAND_OK && !failed) {
            pg_result_error(conn, res, errstr, errstr_size);
            r = classify(conn, res);
            failed = true;
        }
        PQclear(res);
        if (PQstatus(conn) != CONNECTION_OK)
            break;
    }
    if (!failed && PQstatus(conn) != CONNECTION_OK) {
        snprintf(errstr, errstr_size, "connection lost: %s", PQerrorMessage(conn));
        failed = true;
        r = STORE_WRITE_TRANSIENT;
    }
    if (failed) {
        if (PQstatus(conn) == CONNECTION_OK) {
            /* an error before COMMIT leaves the transaction open, aborted */
            res = PQexec(conn, "ROLLBACK");
            PQclear(res);
        }
        if (r == STORE_WRITE_OK)
            r = STORE_WRITE_TRANSIENT;
        return r;
    }
    *nalerts = na;
    return STORE_WRITE_OK;
}
