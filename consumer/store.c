#include "store.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

/* Session-local staging tables: COPY lands here, then one upsert moves the
 * batch. ON COMMIT DELETE ROWS empties them for the next batch. */
static const char stage_sql[] =
    "CREATE TEMP TABLE IF NOT EXISTS vigil_obs_stage ("
    " observation_id text, study_id text, site_id text, subject_id text, loinc text,"
    " value double precision, unit text, ref_low double precision, ref_high double precision,"
    " value_norm double precision, unit_norm text, ref_low_norm double precision,"
    " ref_high_norm double precision, effective_ms bigint, issued_ms bigint, status text,"
    " visit text, dq_finding text, source_topic text, source_partition integer,"
    " source_offset bigint, revision bigint) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE IF NOT EXISTS vigil_alert_stage ("
    " alert_id text, kind text, rule_id text, rule_version integer, severity text,"
    " ctcae_grade smallint, study_id text, site_id text, subject_id text,"
    " observation_id text, evidence jsonb, message text, observed_ms bigint,"
    " detected_ms bigint, retracts_alert_id text) ON COMMIT DELETE ROWS";

static const char copy_obs_sql[] = "COPY vigil_obs_stage FROM STDIN";
static const char copy_alert_sql[] = "COPY vigil_alert_stage FROM STDIN";

/* Newest revision of each observation in the batch wins, and only moves a
 * stored row forward: a replay of an older revision changes nothing. */
static const char upsert_obs_sql[] =
    "INSERT INTO observations (observation_id, study_id, site_id, subject_id, loinc, value,"
    " unit, ref_low, ref_high, value_norm, unit_norm, ref_low_norm, ref_high_norm,"
    " effective_at, issued_at, status, visit, dq_finding, source_topic, source_partition,"
    " source_offset, revision)"
    " SELECT DISTINCT ON (observation_id) observation_id, study_id, site_id, subject_id, loinc,"
    " value, unit, ref_low, ref_high, value_norm, unit_norm, ref_low_norm, ref_high_norm,"
    " to_timestamp(effective_ms / 1000.0),"
    " CASE WHEN issued_ms > 0 THEN to_timestamp(issued_ms / 1000.0) END,"
    " status, visit, dq_finding, source_topic, source_partition, source_offset, revision"
    " FROM vigil_obs_stage ORDER BY observation_id, revision DESC, source_offset DESC"
    " ON CONFLICT (observation_id) DO UPDATE SET study_id = EXCLUDED.study_id,"
    " site_id = EXCLUDED.site_id, subject_id = EXCLUDED.subject_id, loinc = EXCLUDED.loinc,"
    " value = EXCLUDED.value, unit = EXCLUDED.unit, ref_low = EXCLUDED.ref_low,"
    " ref_high = EXCLUDED.ref_high, value_norm = EXCLUDED.value_norm,"
    " unit_norm = EXCLUDED.unit_norm, ref_low_norm = EXCLUDED.ref_low_norm,"
    " ref_high_norm = EXCLUDED.ref_high_norm, effective_at = EXCLUDED.effective_at,"
    " issued_at = EXCLUDED.issued_at, status = EXCLUDED.status, visit = EXCLUDED.visit,"
    " dq_finding = EXCLUDED.dq_finding, source_topic = EXCLUDED.source_topic,"
    " source_partition = EXCLUDED.source_partition, source_offset = EXCLUDED.source_offset,"
    " revision = EXCLUDED.revision, updated_at = now()"
    " WHERE observations.revision < EXCLUDED.revision";

static const char insert_alert_sql[] =
    "INSERT INTO alerts (alert_id, kind, rule_id, rule_version, severity, ctcae_grade,"
    " study_id, site_id, subject_id, observation_id, evidence, message, observed_at,"
    " detected_at, retracts_alert_id)"
    " SELECT DISTINCT ON (alert_id) alert_id, kind, rule_id, rule_version, severity,"
    " ctcae_grade, study_id, site_id, subject_id, observation_id, evidence, message,"
    " to_timestamp(observed_ms / 1000.0), to_timestamp(detected_ms / 1000.0),"
    " retracts_alert_id FROM vigil_alert_stage ORDER BY alert_id"
    " ON CONFLICT (alert_id) DO NOTHING";

static const char retract_sql[] =
    "UPDATE alerts a SET retracted = true, retracted_by = s.alert_id"
    " FROM vigil_alert_stage s"
    " WHERE s.kind = 'retraction' AND a.alert_id = s.retracts_alert_id AND NOT a.retracted";

struct store {
    char *conninfo;
    struct store_config cfg;
    struct chan *in;
    pthread_t thread;
    PGconn *conn;
    atomic_bool healthy;
    deadline_t give_up; /* DEADLINE_FOREVER until store_close sets it */
    atomic_bool closing;
    pthread_mutex_t close_lock;

    struct metric *m_batch_seconds;
    struct metric *m_rows;
    struct metric *m_alerts;
    struct metric *m_failures;
    struct metric *m_rejected;
};

/* COPY text format buffer: grows as needed (bounded by the batch size). */
struct cbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static void cb_reserve(struct cbuf *b, size_t n)
{
    if (b->oom || b->len + n <= b->cap)
        return;
    size_t ncap = b->cap ? b->cap : 65536;
    while (ncap < b->len + n)
        ncap *= 2;
    char *np = realloc(b->p, ncap);
    if (np == NULL) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = ncap;
}

static void cb_raw(struct cbuf *b, const char *s, size_t n)
{
    cb_reserve(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* A text field, escaped as COPY's text format requires. */
static void cb_str(struct cbuf *b, const char *s)
{
    if (s == NULL) {
        cb_raw(b, "\\N", 2);
        return;
    }
    size_t n = strlen(s);
    cb_reserve(b, 2 * n);
    if (b->oom)
        return;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        char esc = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 0;
        if (esc) {
            b->p[b->len++] = '\\';
            b->p[b->len++] = esc;
        } else {
            b->p[b->len++] = c;
        }
    }
}

static void cb_opt_str(struct cbuf *b, const char *s)
{
    cb_str(b, s != NULL && *s != '\0' ? s : NULL);
}

static void cb_fmt(struct cbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cb_fmt(struct cbuf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        cb_raw(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void cb_double(struct cbuf *b, bool has, double v)
{
    if (has)
        cb_fmt(b, "%.17g", v);
    else
        cb_raw(b, "\\N", 2);
}

#define TAB(b) cb_raw((b), "\t", 1)
#define EOL(b) cb_raw((b), "\n", 1)

static void row_observation(struct store *s, struct cbuf *b, const struct work *w)
{
    const struct observation *o = &w->obs;
    const struct clean_result *c = &w->clean;
    bool norm = c->status == CLEAN_OK;
    cb_str(b, o->observation_id), TAB(b);
    cb_str(b, o->study_id), TAB(b);
    cb_str(b, o->site_id), TAB(b);
    cb_str(b, o->subject_id), TAB(b);
    cb_str(b, o->loinc), TAB(b);
    cb_double(b, o->has_value, o->value), TAB(b);
    cb_opt_str(b, o->unit), TAB(b);
    cb_double(b, o->has_ref_low, o->ref_low), TAB(b);
    cb_double(b, o->has_ref_high, o->ref_high), TAB(b);
    cb_double(b, norm, c->value), TAB(b);
    cb_str(b, norm ? c->unit : NULL), TAB(b);
    cb_double(b, norm && c->has_ref_low, c->ref_low), TAB(b);
    cb_double(b, norm && c->has_ref_high, c->ref_high), TAB(b);
    cb_fmt(b, "%lld", (long long)o->effective_ms), TAB(b);
    cb_fmt(b, "%lld", (long long)o->issued_ms), TAB(b);
    cb_str(b, obs_status_name(o->status)), TAB(b);
    cb_opt_str(b, o->visit), TAB(b);
    cb_str(b, c->finding), TAB(b);
    cb_str(b, s->cfg.source_topic), TAB(b);
    cb_fmt(b, "%d", (int)w->partition), TAB(b);
    cb_fmt(b, "%lld", (long long)w->offset), TAB(b);
    cb_fmt(b, "%lld", (long long)w->revision), EOL(b);
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

static void row_alert(struct cbuf *b, const struct work *w, const struct alert *a)
{
    char *ev = evidence_json(a);
    cb_str(b, a->alert_id), TAB(b);
    cb_str(b, a->kind == ALERT_RETRACTION ? "retraction" : "signal"), TAB(b);
    cb_str(b, a->rule_id), TAB(b);
    cb_fmt(b, "%d", (int)a->rule_version), TAB(b);
    cb_str(b, alert_severity_name(a->severity)), TAB(b);
    if (a->ctcae_grade > 0)
        cb_fmt(b, "%d", (int)a->ctcae_grade);
    else
        cb_raw(b, "\\N", 2);
    TAB(b);
    cb_str(b, a->study_id), TAB(b);
    cb_str(b, a->site_id), TAB(b);
    cb_str(b, a->subject_id), TAB(b);
    cb_str(b, w->obs.observation_id), TAB(b);
    cb_str(b, ev ? ev : "[]"), TAB(b);
    cb_str(b, a->message), TAB(b);
    cb_fmt(b, "%lld", (long long)a->observed_ms), TAB(b);
    cb_fmt(b, "%lld", (long long)a->detected_ms), TAB(b);
    cb_opt_str(b, a->kind == ALERT_RETRACTION ? a->retracts_alert_id : NULL), EOL(b);
    free(ev);
}

enum write_result { WRITE_OK, WRITE_TRANSIENT, WRITE_DATA };

/* SQLSTATE classes 22 (data exception) and 23 (integrity) are the row's
 * fault; anything else (connection, shutdown, resources, locks,
 * serialization) is worth retrying as is. */
static enum write_result classify(PGconn *conn, PGresult *res)
{
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
        return WRITE_TRANSIENT;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0))
        return WRITE_DATA;
    return WRITE_TRANSIENT;
}

static enum write_result exec(struct store *s, const char *sql, char *err, size_t errsz)
{
    PGresult *res = PQexec(s->conn, sql);
    if (pg_result_error(s->conn, res, err, errsz)) {
        PQclear(res);
        return WRITE_OK;
    }
    enum write_result r = classify(s->conn, res);
    PQclear(res);
    return r;
}

static enum write_result copy_in(struct store *s, const char *sql, const struct cbuf *b,
                                 char *err, size_t errsz)
{
    PGresult *res = PQexec(s->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        pg_result_error(s->conn, res, err, errsz);
        enum write_result r = classify(s->conn, res);
        PQclear(res);
        return r;
    }
    PQclear(res);
    if (PQputCopyData(s->conn, b->p ? b->p : "", (int)b->len) != 1 ||
        PQputCopyEnd(s->conn, NULL) != 1) {
        snprintf(err, errsz, "COPY failed: %s", PQerrorMessage(s->conn));
        return WRITE_TRANSIENT;
    }
    enum write_result r = WRITE_OK;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (!pg_result_error(s->conn, res, err, errsz))
            r = classify(s->conn, res);
        PQclear(res);
    }
    return r;
}

static enum write_result write_batch(struct store *s, struct work **items, size_t n, char *err,
                                     size_t errsz)
{
    if (s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = pg_connect(s->conninfo, err, errsz);
        if (s->conn == NULL)
            return WRITE_TRANSIENT;
        if (exec(s, stage_sql, err, errsz) != WRITE_OK)
            return WRITE_TRANSIENT;
    }
    struct cbuf obs = {0}, alerts = {0};
    size_t nalerts = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i]->store_row)
            row_observation(s, &obs, items[i]);
        for (int j = 0; j < items[i]->nalerts; j++, nalerts++)
            row_alert(&alerts, items[i], &items[i]->alerts[j]);
    }
    enum write_result r = WRITE_OK;
    if (obs.oom || alerts.oom) {
        snprintf(err, errsz, "out of memory building a batch of %zu rows", n);
        r = WRITE_TRANSIENT;
        goto out;
    }
    if ((r = exec(s, "BEGIN", err, errsz)) != WRITE_OK)
        goto out;
    if (obs.len > 0 && ((r = copy_in(s, copy_obs_sql, &obs, err, errsz)) != WRITE_OK ||
                        (r = exec(s, upsert_obs_sql, err, errsz)) != WRITE_OK))
        goto rollback;
    if (nalerts > 0 && ((r = copy_in(s, copy_alert_sql, &alerts, err, errsz)) != WRITE_OK ||
                        (r = exec(s, insert_alert_sql, err, errsz)) != WRITE_OK ||
                        (r = exec(s, retract_sql, err, errsz)) != WRITE_OK))
        goto rollback;
    if ((r = exec(s, "COMMIT", err, errsz)) != WRITE_OK)
        goto out; /* the server rolled back; a lost connection is transient */
    metric_add(s->m_rows, n);
    metric_add(s->m_alerts, nalerts);
    goto out;
rollback:
    if (PQstatus(s->conn) == CONNECTION_OK) {
        char ignore[64];
        exec(s, "ROLLBACK", ignore, sizeof ignore);
    }
out:
    free(obs.p);
    free(alerts.p);
    return r;
}

static void finish_all(struct work **items, size_t n, bool abandon)
{
    for (size_t i = 0; i < n; i++) {
        if (abandon)
            work_abandon(items[i]);
        work_release(items[i]);
    }
}

/* Writes ITEMS until committed, retrying transient failures with backoff;
 * returns false if the store is closing past its deadline (items then
 * abandoned by the caller). */
static bool write_until_done(struct store *s, struct work **items, size_t n)
{
    char err[512];
    int backoff = BACKOFF_MIN_MS;
    for (;;) {
        deadline_t t0 = deadline_now();
        enum write_result r = write_batch(s, items, n, err, sizeof err);
        if (r == WRITE_OK) {
            metric_observe(s->m_batch_seconds, (double)(deadline_now() - t0) / 1e9);
            if (!atomic_load(&s->healthy))
                log_msg(LOG_INFO, "store", "PostgreSQL writes succeed again");
            atomic_store(&s->healthy, true);
            finish_all(items, n, false);
            return true;
        }
        if (r == WRITE_DATA) {
            if (n == 1) {
                metric_add(s->m_rejected, 1);
                s->cfg.reject(s->cfg.reject_arg, items[0], err);
                return true;
            }
            log_msg(LOG_WARN, "store", "batch of %zu refused (%s): writing row by row", n, err);
            for (size_t i = 0; i < n; i++)
                if (!write_until_done(s, &items[i], 1)) {
                    finish_all(items + i + 1, n - i - 1, true);
                    return false;
                }
            return true;
        }
        metric_add(s->m_failures, 1);
        if (atomic_load(&s->healthy))
            log_msg(LOG_ERROR, "store", "could not write to PostgreSQL, retrying: %s", err);
        atomic_store(&s->healthy, false);
        PQfinish(s->conn);
        s->conn = NULL;
        pthread_mutex_lock(&s->close_lock);
        deadline_t give_up = s->give_up;
        pthread_mutex_unlock(&s->close_lock);
        deadline_t wake = deadline_after_ms(backoff);
        if (give_up < wake) {
            finish_all(items, n, true);
            return false;
        }
        struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static void *run(void *arg)
{
    struct store *s = arg;
    size_t cap = (size_t)s->cfg.batch_rows;
    struct work **batch = calloc(cap, sizeof *batch);
    bool give_up = false;
    for (;;) {
        void *item;
        enum chan_status st = chan_recv(s->in, &item, DEADLINE_FOREVER);
        if (st == CHAN_END)
            break;
        size_t n = 0;
        batch[n++] = item;
        deadline_t flush_at = deadline_after_ms(s->cfg.batch_ms);
        while (n < cap && chan_recv(s->in, &item, flush_at) == CHAN_OK)
            batch[n++] = item;
        if (give_up) {
            finish_all(batch, n, true);
            continue;
        }
        if (!write_until_done(s, batch, n))
            give_up = true; /* closing past the deadline: abandon the rest */
    }
    free(batch);
    return NULL;
}

struct store *store_new(const struct store_config *cfg, struct metrics *m, char *errstr,
                        size_t errstr_size)
{
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    s->cfg = *cfg;
    s->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    s->in = chan_new(cfg->queue_cap);
    if (s->conninfo == NULL || s->in == NULL)
        goto oom;
    s->cfg.conninfo = NULL;
    if (s->cfg.batch_rows < 1)
        s->cfg.batch_rows = 1;
    s->give_up = DEADLINE_FOREVER;
    pthread_mutex_init(&s->close_lock, NULL);
    atomic_init(&s->healthy, true);
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
    s->m_batch_seconds = metrics_histogram(m, "vigil_store_batch_seconds",
                                           "Time to write one batch to PostgreSQL", NULL, bounds,
                                           sizeof bounds / sizeof bounds[0]);
    s->m_rows = metrics_counter(m, "vigil_stored_observations_total",
                                "Observations committed to PostgreSQL (replays included)", NULL);
    s->m_alerts = metrics_counter(m, "vigil_stored_alerts_total",
                                  "Alert rows committed to PostgreSQL (replays included)", NULL);
    s->m_failures = metrics_counter(m, "vigil_store_failures_total",
                                    "Batch writes that failed and were retried", NULL);
    s->m_rejected = metrics_counter(m, "vigil_store_rejected_total",
                                    "Rows PostgreSQL refused on their own merits (dead-lettered)",
                                    NULL);
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        snprintf(errstr, errstr_size, "could not start the store thread");
        chan_destroy(s->in);
        free(s->conninfo);
        free(s);
        return NULL;
    }
    return s;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    if (s != NULL) {
        chan_destroy(s->in);
        free(s->conninfo);
        free(s);
    }
    return NULL;
}

int store_put(struct store *s, struct work *w, struct ctx *ctx)
{
    for (;;) {
        enum chan_status st = chan_send(s->in, w, deadline_after_ms(100));
        if (st == CHAN_OK)
            return 0;
        if (st == CHAN_CLOSED || (ctx != NULL && ctx_done(ctx)))
            return -1;
    }
}

static int status_rank(enum obs_status s)
{
    switch (s) {
    case OBS_FINAL:
        return 0;
    case OBS_AMENDED:
    case OBS_CORRECTED:
        return 1;
    default:
        return 2;
    }
}

int64_t store_revision(const struct observation *obs)
{
    return (obs->issued_ms > 0 ? obs->issued_ms : 0) * 4 + status_rank(obs->status);
}

bool store_healthy(struct store *s)
{
    return atomic_load(&s->healthy);
}

size_t store_depth(struct store *s)
{
    return chan_len(s->in);
}

void store_close(struct store *s, deadline_t deadline)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->close_lock);
    s->give_up = deadline;
    pthread_mutex_unlock(&s->close_lock);
    chan_close(s->in);
    pthread_join(s->thread, NULL);
    PQfinish(s->conn);
    chan_destroy(s->in);
    free(s->conninfo);
    pthread_mutex_destroy(&s->close_lock);
    free(s);
}
