/*
 * consumer/store against the real PostgreSQL of scripts/services: what the
 * worker's write path promises whatever the number of writers and however
 * items fall into batches.
 *
 *   - per subject, a retraction lands after the alert it withdraws and an
 *     amendment after what it amends, with several writers committing
 *     concurrently and tiny batches (many commits, every interleaving);
 *   - an alert whose id comes twice (an amended result raising the same
 *     verdict) keeps the first evidence, in one batch as across batches;
 *   - a replay changes nothing;
 *   - a row PostgreSQL refuses goes alone to the reject callback, the rest
 *     of its batch is stored;
 *   - every item is released exactly once, never abandoned.
 *
 * Rows carry a study id unique to the run, so runs never see each other.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics.h"
#include "pg.h"
#include "store.h"
#include "testlib.h"
#include "work.h"

#define SUBJECTS 40

static char study[40];
static atomic_int done_ok;
static atomic_int done_abandoned;
static atomic_int rejected;
static char rejected_id[128];

static void sink(void *arg, struct work *w)
{
    (void)arg;
    if (atomic_load(&w->abandoned))
        atomic_fetch_add(&done_abandoned, 1);
    else
        atomic_fetch_add(&done_ok, 1);
    work_free(w);
}

static void on_reject(void *arg, struct work *w, const char *reason)
{
    (void)arg;
    (void)reason;
    snprintf(rejected_id, sizeof rejected_id, "%s", w->obs.observation_id);
    atomic_fetch_add(&rejected, 1);
    work_release(w);
}

static int64_t offset_seq;

/* Copies the id SRC into DST of CAP bytes, cut if longer (memcpy: -O3's
 * -Wformat-truncation refuses a snprintf of a longer buffer). */
static void set_id(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static struct work *item(const char *subject, const char *obs_id, enum obs_status status,
                         int64_t issued_ms, double value)
{
    struct work *w = calloc(1, sizeof *w);
    atomic_init(&w->holds, 1);
    atomic_init(&w->abandoned, false);
    w->sink = sink;
    w->partition = 0;
    w->offset = offset_seq++;
    struct observation *o = &w->obs;
    set_id(o->observation_id, sizeof o->observation_id, obs_id);
    set_id(o->study_id, sizeof o->study_id, study);
    snprintf(o->site_id, sizeof o->site_id, "SITE-1");
    set_id(o->subject_id, sizeof o->subject_id, subject);
    snprintf(o->loinc, sizeof o->loinc, "2823-3");
    o->has_value = true;
    o->value = value;
    snprintf(o->unit, sizeof o->unit, "mmol/L");
    o->effective_ms = 1767225600000;
    o->issued_ms = issued_ms;
    o->status = status;
    w->clean.status = CLEAN_OK;
    w->clean.value = value;
    w->clean.unit = "mmol/L";
    w->store_row = true;
    w->revision = store_revision(o);
    return w;
}

static struct alert *add_alert(struct work *w, const char *alert_id, enum alert_kind kind,
                               const char *retracts, double evidence_value)
{
    w->alerts = realloc(w->alerts, (size_t)(w->nalerts + 1) * sizeof *w->alerts);
    struct alert *a = &w->alerts[w->nalerts++];
    memset(a, 0, sizeof *a);
    set_id(a->alert_id, sizeof a->alert_id, alert_id);
    a->kind = kind;
    snprintf(a->rule_id, sizeof a->rule_id, "potassium-critical-high");
    a->rule_version = 1;
    a->severity = SEV_CRITICAL;
    snprintf(a->study_id, sizeof a->study_id, "%s", w->obs.study_id);
    snprintf(a->site_id, sizeof a->site_id, "%s", w->obs.site_id);
    snprintf(a->subject_id, sizeof a->subject_id, "%s", w->obs.subject_id);
    a->n_evidence = 1;
    snprintf(a->evidence[0].observation_id, sizeof a->evidence[0].observation_id, "%s",
             w->obs.observation_id);
    snprintf(a->evidence[0].loinc, sizeof a->evidence[0].loinc, "2823-3");
    a->evidence[0].value = evidence_value;
    snprintf(a->evidence[0].unit, sizeof a->evidence[0].unit, "mmol/L");
    a->evidence[0].effective_ms = w->obs.effective_ms;
    snprintf(a->message, sizeof a->message, "potassium %.1f", evidence_value);
    a->observed_ms = w->obs.effective_ms;
    a->detected_ms = w->obs.issued_ms;
    if (retracts != NULL)
        set_id(a->retracts_alert_id, sizeof a->retracts_alert_id, retracts);
    return a;
}

static int expected_done;

static bool all_done(void *arg)
{
    (void)arg;
    /* a rejected item is released by on_reject, so the sink counts it */
    return atomic_load(&done_ok) + atomic_load(&done_abandoned) >= expected_done;
}

static void put(struct store *s, struct work *w)
{
    expected_done++;
    CHECK_EQ_INT(store_put(s, w, NULL), 0);
}

static void wait_all(void)
{
    CHECK(testlib_wait(all_done, NULL, 60));
}

/* Returns the first column of the first row of SQL (one text parameter:
 * the study id), or "" (owned by a static buffer). */
static const char *one(PGconn *c, const char *sql, const char *arg)
{
    static char out[512];
    char err[512];
    const char *params[] = {study, arg};
    PGresult *r = pg_query(c, sql, arg ? 2 : 1, params, err, sizeof err);
    out[0] = '\0';
    if (r == NULL)
        fprintf(stderr, "query failed: %s\n", err);
    else if (PQntuples(r) > 0)
        snprintf(out, sizeof out, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

static struct store *store_open(struct metrics *m, int writers, int batch_rows, int batch_ms)
{
    char err[256];
    struct store_config sc = {
        .conninfo = testlib_env("VIGIL_PG_CONNINFO"),
        .queue_cap = 64,
        .writers = writers,
        .batch_rows = batch_rows,
        .batch_ms = batch_ms,
        .source_topic = "test.store",
        .reject = on_reject,
    };
    struct store *s = store_new(&sc, m, err, sizeof err);
    CHECK(s != NULL);
    if (s == NULL)
        fprintf(stderr, "%s\n", err);
    return s;
}

/* Per subject: final result with a signal, its amendment (same verdict:
 * the same alert id again, new evidence), a withdrawal that retracts the
 * alert, each a separate item, tiny batches over 4 writers. Everything that refers to something must land after it. */
static void test_order(PGconn *c, struct metrics *m)
{
    struct store *s = store_open(m, 4, 3, 1);
    if (s == NULL)
        return;
    char subj[32], oid[96], aid[96], rid[96];
    /* a subject's three items one after the other: on different writers
     * they would race */
    for (int i = 0; i < SUBJECTS; i++) {
        for (int step = 0; step < 3; step++) {
            snprintf(subj, sizeof subj, "S-%03d", i);
            snprintf(oid, sizeof oid, "%s-O-%03d", study, i);
            snprintf(aid, sizeof aid, "%s-A-%03d", study, i);
            snprintf(rid, sizeof rid, "%s-R-%03d", study, i);
            struct work *w;
            if (step == 0) {
                w = item(subj, oid, OBS_FINAL, 1767229200000, 6.9);
                add_alert(w, aid, ALERT_SIGNAL, NULL, 6.9);
            } else if (step == 1) {
                w = item(subj, oid, OBS_AMENDED, 1767232800000, 7.1);
                add_alert(w, aid, ALERT_SIGNAL, NULL, 7.1);
            } else {
                w = item(subj, oid, OBS_ENTERED_IN_ERROR, 1767236400000, 7.1);
                w->obs.has_value = false;
                add_alert(w, rid, ALERT_RETRACTION, aid, 7.1);
            }
            put(s, w);
        }
    }
    wait_all();
    store_close(s, DEADLINE_FOREVER);
    CHECK_EQ_INT(atomic_load(&done_abandoned), 0);
    CHECK_EQ_STR(one(c, "SELECT count(*) FROM observations WHERE study_id = $1", NULL), "40");
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM observations WHERE study_id = $1"
                     " AND status = 'entered-in-error'",
                     NULL),
                 "40");
    /* every signal retracted by its retraction: none landed first */
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM alerts WHERE study_id = $1 AND kind = 'signal'"
                     " AND retracted AND retracted_by = replace(alert_id, '-A-', '-R-')",
                     NULL),
                 "40");
    /* the first evidence stayed although a later batch brought the id again */
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM alerts WHERE study_id = $1 AND kind = 'signal'"
                     " AND (evidence->0->>'value')::float8 = 6.9",
                     NULL),
                 "40");
}

/* The same alert id several times in one batch, among many others: the
 * first evidence is kept, as DO NOTHING keeps it across batches. (SQL
 * leaves the order of rows that tie under DISTINCT ON's sort unspecified,
 * so the batch's own order has to be part of the key.) */
static void test_first_evidence_in_batch(PGconn *c, struct metrics *m)
{
    enum { IDS = 150, COPIES = 3 };
    struct store *s = store_open(m, 1, IDS * COPIES, 2000);
    if (s == NULL)
        return;
    char oid[96], aid[96];
    /* the copies of one id far apart, ids in descending order: the sort
     * has to move every row */
    for (int k = 0; k < COPIES; k++) {
        for (int i = IDS - 1; i >= 0; i--) {
            snprintf(oid, sizeof oid, "%s-EO-%03d", study, i);
            snprintf(aid, sizeof aid, "%s-EA-%03d", study, i);
            struct work *w = item("S-EV", oid, k == 0 ? OBS_FINAL : OBS_AMENDED,
                                  1767229200000 + k * 1000, 6.0 + k);
            add_alert(w, aid, ALERT_SIGNAL, NULL, 6.0 + k);
            put(s, w);
        }
    }
    wait_all();
    store_close(s, DEADLINE_FOREVER);
    /* one batch: every row was written in the same transaction */
    CHECK_EQ_STR(one(c,
                     "SELECT count(DISTINCT created_at) FROM alerts WHERE study_id = $1"
                     " AND alert_id LIKE '%-EA-%'",
                     NULL),
                 "1");
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM alerts WHERE study_id = $1 AND alert_id LIKE '%-EA-%'"
                     " AND (evidence->0->>'value')::float8 = 6 AND message = 'potassium 6.0'",
                     NULL),
                 "150");
    /* and each observation is its newest revision */
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM observations WHERE study_id = $1"
                     " AND observation_id LIKE '%-EO-%' AND value = 8",
                     NULL),
                 "150");
}

/* A replay of stored rows changes nothing, and an older revision arriving
 * late does not move a row back. */
static void test_replay(PGconn *c, struct metrics *m)
{
    const char *before = one(c,
                             "SELECT count(*) || '/' || max(updated_at)::text FROM observations"
                             " WHERE study_id = $1",
                             NULL);
    char snap[512];
    snprintf(snap, sizeof snap, "%s", before);
    struct store *s = store_open(m, 2, 7, 1);
    if (s == NULL)
        return;
    char subj[32], oid[96], aid[96];
    for (int i = 0; i < SUBJECTS; i++) {
        snprintf(subj, sizeof subj, "S-%03d", i);
        snprintf(oid, sizeof oid, "%s-O-%03d", study, i);
        snprintf(aid, sizeof aid, "%s-A-%03d", study, i);
        struct work *w = item(subj, oid, OBS_FINAL, 1767229200000, 6.9);
        add_alert(w, aid, ALERT_SIGNAL, NULL, 6.9);
        put(s, w);
    }
    wait_all();
    store_close(s, DEADLINE_FOREVER);
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) || '/' || max(updated_at)::text FROM observations"
                     " WHERE study_id = $1",
                     NULL),
                 snap);
    CHECK_EQ_STR(one(c,
                     "SELECT count(*) FROM alerts WHERE study_id = $1 AND kind = 'signal'"
                     " AND retracted",
                     NULL),
                 "40");
}

/* A row that breaks a constraint is rejected alone; its batch mates are
 * stored. */
static void test_reject(PGconn *c, struct metrics *m)
{
    struct store *s = store_open(m, 1, 1000, 200);
    if (s == NULL)
        return;
    char oid[96], bad[96];
    for (int i = 0; i < 5; i++) {
        snprintf(oid, sizeof oid, "%s-J-%d", study, i);
        struct work *w = item("S-REJ", oid, OBS_FINAL, 1767229200000, 4.2);
        if (i == 2) {
            w->clean.finding = "Not A Finding"; /* breaks observations_dq_finding_check */
            snprintf(bad, sizeof bad, "%s", oid);
        }
        put(s, w);
    }
    wait_all();
    store_close(s, DEADLINE_FOREVER);
    CHECK_EQ_INT(atomic_load(&rejected), 1);
    CHECK_EQ_STR(rejected_id, bad);
    CHECK_EQ_STR(one(c, "SELECT count(*) FROM observations WHERE study_id = $1"
                        " AND observation_id LIKE '%-J-%'",
                     NULL),
                 "4");
}

int main(void)
{
    char err[512];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' migrate >/dev/null 2>&1", VIGIL_BINARY);
    CHECK_EQ_INT(testlib_run(cmd, NULL, 0), 0);
    snprintf(study, sizeof study, "TSTORE-%d-%ld", (int)getpid(), (long)testlib_now());
    PGconn *c = pg_connect(testlib_env("VIGIL_PG_CONNINFO"), err, sizeof err);
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return testlib_done();
    }
    struct metrics *m = metrics_new();
    test_order(c, m);
    test_first_evidence_in_batch(c, m);
    test_replay(c, m);
    test_reject(c, m);
    CHECK_EQ_INT(atomic_load(&done_abandoned), 0);
    metrics_destroy(m);
    PQfinish(c);
    return testlib_done();
}
