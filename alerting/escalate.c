#include "escalate.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "digest.h"
#include "log.h"
#include "pg.h"

#define PG_RETRY_MS 1000
#define GAUGES_EVERY_MS 2000
#define DIGEST_EVERY_MS 60000 /* times escalation_scale */
#define PAGES_MAX ROUTE_MAX_RECIPIENTS
#define SUBMIT_WAIT_MS 5

struct escalator {
    struct escalate_config cfg;
    struct sender *sender;
    struct ctx *stop;
    pthread_t thread;
    bool started;
    /* the thread's alone */
    PGconn *pg;
    char ack_mark[64]; /* acknowledged_at of the last ack observed (text) */
    struct metric *m_steps, *m_breaches, *m_lag, *m_open_critical, *m_past_last,
        *m_recovered, *m_handoff_failed, *m_digests, *m_deferred_fired;
    struct metric *m_tta[3]; /* time to acknowledge, by severity */
};

static PGconn *conn(struct escalator *e)
{
    if (e->pg != NULL && PQstatus(e->pg) == CONNECTION_OK)
        return e->pg;
    if (e->pg != NULL)
        PQfinish(e->pg);
    char err[512];
    e->pg = pg_connect(e->cfg.conninfo, err, sizeof err);
    if (e->pg == NULL)
        log_msg(LOG_WARN, "escalate", "no PostgreSQL connection: %s", err);
    return e->pg;
}

/* ---- loading the alerts a batch pages for ------------------------------ */

static void copy_text(char *dst, size_t dstsz, const char *src)
{
    snprintf(dst, dstsz, "%s", src != NULL ? src : "");
}

static void evidence_parse(struct alert *a, const char *text)
{
    json_error_t jerr;
    json_t *arr = json_loads(text, 0, &jerr);
    a->n_evidence = 0;
    if (!json_is_array(arr)) {
        json_decref(arr);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(arr, i, it) {
        if (a->n_evidence >= ALERT_EVIDENCE_MAX)
            break;
        struct alert_evidence *ev = &a->evidence[a->n_evidence++];
        copy_text(ev->observation_id, sizeof ev->observation_id,
                  json_string_value(json_object_get(it, "observation_id")));
        copy_text(ev->loinc, sizeof ev->loinc, json_string_value(json_object_get(it, "loinc")));
        copy_text(ev->unit, sizeof ev->unit, json_string_value(json_object_get(it, "unit")));
        ev->value = json_number_value(json_object_get(it, "value"));
        ev->effective_ms = (int64_t)json_integer_value(json_object_get(it, "effective_ms"));
    }
    json_decref(arr);
}

/* Reads alert ID into *A. 1 found, 0 not found, -1 error. */
static int alert_load(PGconn *c, const char *id, struct alert *a, char *err, size_t errsz)
{
    const char *p[] = {id};
    PGresult *r = pg_query(
        c,
        "SELECT alert_id, rule_id, rule_version, severity, coalesce(ctcae_grade, 0), study_id, "
        "site_id, subject_id, message, (extract(epoch FROM observed_at) * 1000)::bigint, "
        "(extract(epoch FROM detected_at) * 1000)::bigint, evidence::text "
        "FROM alerts WHERE alert_id = $1",
        1, p, err, errsz);
    if (r == NULL)
        return -1;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return 0;
    }
    memset(a, 0, sizeof *a);
    a->kind = ALERT_SIGNAL;
    copy_text(a->alert_id, sizeof a->alert_id, PQgetvalue(r, 0, 0));
    copy_text(a->rule_id, sizeof a->rule_id, PQgetvalue(r, 0, 1));
    a->rule_version = atoi(PQgetvalue(r, 0, 2));
    int sev = alert_severity_parse(PQgetvalue(r, 0, 3));
    a->severity = sev < 0 ? SEV_CRITICAL : (enum alert_severity)sev;
    a->ctcae_grade = atoi(PQgetvalue(r, 0, 4));
    copy_text(a->study_id, sizeof a->study_id, PQgetvalue(r, 0, 5));
    copy_text(a->site_id, sizeof a->site_id, PQgetvalue(r, 0, 6));
    copy_text(a->subject_id, sizeof a->subject_id, PQgetvalue(r, 0, 7));
    copy_text(a->message, sizeof a->message, PQgetvalue(r, 0, 8));
    a->observed_ms = strtoll(PQgetvalue(r, 0, 9), NULL, 10);
    a->detected_ms = strtoll(PQgetvalue(r, 0, 10), NULL, 10);
    evidence_parse(a, PQgetvalue(r, 0, 11));
    PQclear(r);
    return 1;
}

/* ---- handing pages to the sender ---------------------------------------- */

/* Submits the pages of one (alert, step): TO[0..N-1]; step -1: deferred
 * pages fired at the end of quiet hours. A page that cannot be handed
 * over now (queue full, alert row unreadable) stays unsettled in
 * escalation_pages (or pending under our lease) and
 * vigil_escalation_recover (vigil_deferred_fire) hands it out again. */
static void hand(struct escalator *e, PGconn *c, const char *alert_id, int step,
                 const struct recipient *to, int n)
{
    if (n == 0)
        return;
    struct alert a;
    char err[512];
    int found = alert_load(c, alert_id, &a, err, sizeof err);
    if (found <= 0) {
        if (found < 0)
            log_msg(LOG_WARN, "escalate", "could not read alert %s: %s", alert_id, err);
        metric_add(e->m_handoff_failed, (uint64_t)n);
        return;
    }
    /* step -1: a deferred page fired at the end of quiet hours */
    struct job *j = step < 0 ? sender_job_new_fired(&a, to, n)
                             : sender_job_new_page(&a, step, to, n);
    /* A full queue is backpressure: wait for the sender rather than fire
     * more steps than it can send (their pages would only wait for the
     * recovery lease). Closed (shutting down): the recovery hands it on. */
    enum chan_status st = j != NULL ? sender_submit(e->sender, j) : CHAN_CLOSED;
    while (st == CHAN_FULL && !ctx_done(e->stop)) {
        ctx_wait(e->stop, deadline_after_ms(SUBMIT_WAIT_MS));
        st = sender_submit(e->sender, j);
    }
    if (st != CHAN_OK) {
        sender_job_free(j);
        metric_add(e->m_handoff_failed, (uint64_t)n);
        log_msg(LOG_WARN, "escalate",
                "escalation step %d of alert %s not handed to the sender now (queue full or "
                "closing): it is handed again after %d s",
                step, alert_id, e->cfg.lease_s);
    }
}

/* Appends (RESEARCHER, CHANNEL) to TO[*N] unless TO is full (PAGES_MAX)
 * or the channel is unknown. */
static void page_add(struct recipient *to, int *n, const char *researcher, const char *channel)
{
    int ch = channel_parse(channel);
    if (ch < 0 || *n >= PAGES_MAX)
        return;
    memset(&to[*n], 0, sizeof to[*n]);
    copy_text(to[*n].researcher_id, sizeof to[*n].researcher_id, researcher);
    to[*n].channel = (enum channel)ch;
    (*n)++;
}

/* Fires one batch of deferred pages whose quiet window has ended
 * (vigil_deferred_fire, migration 0064: FOR UPDATE SKIP LOCKED, so two
 * notifiers never take one row) and hands them to the sender, one job per
 * alert. A page the sender cannot take now stays pending under our lease
 * and the function takes it back after lease_s. Returns the rows, -1 on
 * error. */
static int fire_deferred(struct escalator *e, PGconn *c)
{
    char batch[16], lease[16];
    snprintf(batch, sizeof batch, "%d", e->cfg.batch);
    snprintf(lease, sizeof lease, "%d", e->cfg.lease_s);
    const char *p[] = {batch, lease};
    char err[512];
    PGresult *r = pg_query(c,
                           "SELECT alert_id, researcher_id, channel, recovered FROM "
                           "vigil_deferred_fire($1::int, $2::int) ORDER BY 1, 2, 3",
                           2, p, err, sizeof err);
    if (r == NULL) {
        log_msg(LOG_WARN, "escalate", "firing deferred notifications failed: %s", err);
        return -1;
    }
    struct recipient to[PAGES_MAX];
    int n = 0, rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        const char *id = PQgetvalue(r, i, 0);
        page_add(to, &n, PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        if (strcmp(PQgetvalue(r, i, 3), "t") == 0)
            log_msg(LOG_WARN, "escalate",
                    "deferred notification of alert %s to researcher %s was never finished: "
                    "sending it again",
                    id, PQgetvalue(r, i, 1));
        if (i + 1 < rows && strcmp(PQgetvalue(r, i + 1, 0), id) == 0)
            continue;
        metric_add(e->m_deferred_fired, (uint64_t)n);
        hand(e, c, id, -1, to, n);
        n = 0;
    }
    PQclear(r);
    return rows;
}

/* Walks rows (alert_id, step, researcher_id, channel, ...) grouped by
 * (alert_id, step) -- both functions return them so -- and hands each
 * group. FIRED: the rows come from vigil_escalation_fire (columns 5, 6:
 * lag in seconds, tier) and count as steps. */
static void hand_rows(struct escalator *e, PGconn *c, PGresult *r, bool fired)
{
    struct recipient to[PAGES_MAX];
    int n = 0;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        const char *id = PQgetvalue(r, i, 0);
        int step = atoi(PQgetvalue(r, i, 1));
        if (!PQgetisnull(r, i, 2))
            page_add(to, &n, PQgetvalue(r, i, 2), PQgetvalue(r, i, 3));
        bool last = i + 1 == rows || strcmp(PQgetvalue(r, i + 1, 0), id) != 0 ||
                    atoi(PQgetvalue(r, i + 1, 1)) != step;
        if (!last)
            continue;
        if (fired) {
            metric_add(e->m_steps, 1);
            if (step > 0)
                metric_add(e->m_breaches, 1);
            double lag = strtod(PQgetvalue(r, i, 4), NULL);
            metric_observe(e->m_lag, lag < 0 ? 0 : lag);
            log_msg(LOG_INFO, "escalate", "alert %s: escalation step %d, tier %s, %d pages%s",
                    id, step, PQgetvalue(r, i, 5), n,
                    n == 0 ? " (nobody reachable in this tier)" : "");
        } else {
            metric_add(e->m_recovered, (uint64_t)n);
        }
        hand(e, c, id, step, to, n);
        n = 0;
    }
}

/* Fires one batch of due steps; returns the number of rows, -1 on error. */
static int fire(struct escalator *e, PGconn *c)
{
    char batch[16], scale[32];
    snprintf(batch, sizeof batch, "%d", e->cfg.batch);
    snprintf(scale, sizeof scale, "%.9g", e->cfg.scale);
    const char *p[] = {batch, scale, e->cfg.actor};
    char err[512];
    PGresult *r = pg_query(c,
                           "SELECT alert_id, step, researcher_id, channel, "
                           "extract(epoch FROM fired_at - due_at), tier "
                           "FROM vigil_escalation_fire($1::int, $2::float8, $3)",
                           3, p, err, sizeof err);
    if (r == NULL) {
        log_msg(LOG_WARN, "escalate", "firing escalation timers failed: %s", err);
        return -1;
    }
    int rows = PQntuples(r);
    hand_rows(e, c, r, true);
    PQclear(r);
    return rows;
}

static void recover(struct escalator *e, PGconn *c)
{
    char lease[16], batch[16];
    snprintf(lease, sizeof lease, "%d", e->cfg.lease_s);
    snprintf(batch, sizeof batch, "%d", e->cfg.batch);
    const char *p[] = {lease, batch};
    char err[512];
    PGresult *r = pg_query(c,
                           "SELECT alert_id, step, researcher_id, channel FROM "
                           "vigil_escalation_recover($1::int, $2::int) ORDER BY 1, 2",
                           2, p, err, sizeof err);
    if (r == NULL) {
        log_msg(LOG_WARN, "escalate", "recovering escalation pages failed: %s", err);
        return;
    }
    if (PQntuples(r) > 0)
        log_msg(LOG_WARN, "escalate", "%d escalation pages were never finished: handing again",
                PQntuples(r));
    hand_rows(e, c, r, false);
    PQclear(r);
}

/* Gauges and the time-to-acknowledge histogram, read from the tables. */
static void observe(struct escalator *e, PGconn *c)
{
    char err[512];
    PGresult *r = pg_query(
        c,
        "SELECT (SELECT count(*) FROM alert_lifecycle WHERE state = 'open' "
        "AND severity = 'critical'), "
        "(SELECT count(*) FROM escalations WHERE state = 'active' AND past_last_tier)",
        0, NULL, err, sizeof err);
    if (r == NULL)
        return;
    metric_set(e->m_open_critical, strtod(PQgetvalue(r, 0, 0), NULL));
    metric_set(e->m_past_last, strtod(PQgetvalue(r, 0, 1), NULL));
    PQclear(r);
    const char *p[] = {e->ack_mark[0] ? e->ack_mark : NULL};
    r = pg_query(c,
                 "SELECT severity, extract(epoch FROM acknowledged_at - opened_at), "
                 "acknowledged_at::text FROM alert_lifecycle "
                 "WHERE acknowledged_at > coalesce($1::timestamptz, now()) "
                 "ORDER BY acknowledged_at LIMIT 10000",
                 1, p, err, sizeof err);
    if (r == NULL)
        return;
    for (int i = 0; i < PQntuples(r); i++) {
        int sev = alert_severity_parse(PQgetvalue(r, i, 0));
        double s = strtod(PQgetvalue(r, i, 1), NULL);
        if (sev >= 0)
            metric_observe(e->m_tta[sev], s < 0 ? 0 : s);
        copy_text(e->ack_mark, sizeof e->ack_mark, PQgetvalue(r, i, 2));
    }
    PQclear(r);
    if (e->ack_mark[0] == '\0') {
        /* start from now: acks before this process started are history */
        r = pg_query(c, "SELECT now()::text", 0, NULL, err, sizeof err);
        if (r != NULL) {
            copy_text(e->ack_mark, sizeof e->ack_mark, PQgetvalue(r, 0, 0));
            PQclear(r);
        }
    }
}

static void *escalate_main(void *arg)
{
    struct escalator *e = arg;
    deadline_t next_recover = deadline_after_ms(0);
    deadline_t next_gauges = deadline_after_ms(0);
    deadline_t next_digest = deadline_after_ms(0);
    struct digest_config dc = {.email = e->cfg.email,
                               .ack = e->cfg.ack,
                               .actor = e->cfg.actor,
                               .hour_utc = e->cfg.digest_hour,
                               .min_age_s = e->cfg.digest_min_age_s,
                               .lease_s = e->cfg.lease_s};
    while (!ctx_done(e->stop)) {
        PGconn *c = conn(e);
        if (c == NULL) {
            ctx_wait(e->stop, deadline_after_ms(PG_RETRY_MS));
            continue;
        }
        int rows = fire(e, c);
        int deferred = fire_deferred(e, c);
        if (deferred > rows)
            rows = deferred;
        if (deadline_expired(next_recover)) {
            recover(e, c);
            next_recover = deadline_after_ms((int64_t)e->cfg.lease_s * 500);
        }
        if (deadline_expired(next_gauges)) {
            observe(e, c);
            next_gauges = deadline_after_ms(GAUGES_EVERY_MS);
        }
        if (deadline_expired(next_digest)) {
            char err[512];
            int sent = digest_run(c, &dc, err, sizeof err);
            if (sent < 0)
                log_msg(LOG_WARN, "digest", "warning digests: %s", err);
            else
                metric_add(e->m_digests, (uint64_t)sent);
            int64_t every = (int64_t)(DIGEST_EVERY_MS * e->cfg.scale);
            next_digest = deadline_after_ms(every < 100 ? 100 : every);
        }
        if (rows >= e->cfg.batch)
            continue; /* more are due: no sleeping on them */
        ctx_wait(e->stop, deadline_after_ms(rows < 0 ? PG_RETRY_MS : e->cfg.tick_ms));
    }
    return NULL;
}

struct escalator *escalate_new(const struct escalate_config *cfg, struct sender *sender,
                               struct metrics *m, char *errstr, size_t errstr_size)
{
    if (cfg->tick_ms < 1 || cfg->batch < 1 || cfg->lease_s < 1 || !(cfg->scale > 0)) {
        snprintf(errstr, errstr_size,
                 "escalation: tick, batch and lease must be at least 1 and scale above 0");
        return NULL;
    }
    struct escalator *e = calloc(1, sizeof *e);
    if (e == NULL || (e->stop = ctx_new(NULL)) == NULL) {
        free(e);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    e->cfg = *cfg;
    e->sender = sender;
    static const double lag_b[] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60};
    static const double tta_b[] = {10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400};
    e->m_steps = metrics_counter(m, "vigil_escalation_steps_total",
                                 "Escalation steps fired (step 0 pages tier 1)", NULL);
    e->m_breaches = metrics_counter(
        m, "vigil_escalation_deadline_breaches_total",
        "Acknowledgement deadlines missed: escalation steps after the first", NULL);
    e->m_lag = metrics_histogram(m, "vigil_escalation_lag_seconds",
                                 "From an escalation step's due time to its firing", NULL, lag_b,
                                 sizeof lag_b / sizeof lag_b[0]);
    e->m_open_critical = metrics_gauge(m, "vigil_alerts_open_critical",
                                       "Critical alerts open and not acknowledged", NULL);
    e->m_past_last = metrics_gauge(
        m, "vigil_escalations_past_last_tier",
        "Critical alerts whose last escalation tier did not acknowledge in time", NULL);
    e->m_recovered = metrics_counter(m, "vigil_escalation_pages_recovered_total",
                                     "Escalation pages handed out again after a lease", NULL);
    e->m_handoff_failed = metrics_counter(
        m, "vigil_escalation_handoff_failed_total",
        "Escalation pages not handed to the sender at once (recovered later)", NULL);
    e->m_digests = metrics_counter(m, "vigil_warning_digests_sent_total",
                                   "Daily digests of unacknowledged warnings sent", NULL);
    e->m_deferred_fired = metrics_counter(
        m, "vigil_notifications_deferred_fired_total",
        "Notifications deferred by quiet hours handed to the sender when the window ended",
        NULL);
    for (int s = 0; s < 3; s++) {
        char labels[64];
        snprintf(labels, sizeof labels, "severity=\"%s\"",
                 alert_severity_name((enum alert_severity)s));
        e->m_tta[s] = metrics_histogram(m, "vigil_alert_time_to_ack_seconds",
                                        "From an alert's opening to its acknowledgement", labels,
                                        tta_b, sizeof tta_b / sizeof tta_b[0]);
    }
    if (pthread_create(&e->thread, NULL, escalate_main, e) != 0) {
        snprintf(errstr, errstr_size, "could not start the escalation thread");
        escalate_close(e);
        return NULL;
    }
    e->started = true;
    return e;
}

void escalate_close(struct escalator *e)
{
    if (e == NULL)
        return;
    ctx_cancel(e->stop);
    if (e->started)
        pthread_join(e->thread, NULL);
    if (e->pg != NULL)
        PQfinish(e->pg);
    ctx_destroy(e->stop);
    free(e);
}
