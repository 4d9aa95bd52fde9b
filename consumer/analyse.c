/*
 * analyse: the worker's analysis threads (see analyse.h for the contract).
 *
 * This file is the pipeline of one work item (process()) and the thread
 * around it; each step's policy lives in its own module:
 *
 *   decode                common/avro/codec.h  (poison → dlq.h)
 *   check the key         here: the key is what keeps a subject on one thread
 *   clean                 clean.h
 *   subject state         subject_cache.h (this thread's subjects, LRU),
 *                         loaded by store_load.h on first sight
 *   rules, reconciliation reconcile.h (rules.h on the current rules snapshot,
 *                         retractions retract.h): a late result re-judges
 *                         what it reaches
 *   publish + store       common/publish.h, store.h
 *
 * Before a run of queued items is processed, the subjects among them that
 * are not in memory are loaded together (prewarm()).
 */
#include "analyse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clean.h"
#include "dlq.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "proctcae.h"
#include "reconcile.h"
#include "rules.h"
#include "store_load.h"
#include "subject_cache.h"
#include "subject_state.h"

#define BACKOFF_MAX_MS 5000
/* Queued items taken at once, their new subjects loaded in one batch */
#define WARM_BATCH 128
/* Sites a thread labels its unanalysed-code counts with; sites come from
 * the messages, so past this many the rest count as site="other" and a
 * flood of made-up site ids cannot grow /metrics without bound. */
#define SITE_LABELS_MAX 256

struct analyser {
    const struct analyse_env *env;
    int index;
    struct chan *in;
    pthread_t thread;

    struct subject_cache *subjects;
    struct store_load *load;

    struct rules *rules;
    uint64_t rules_gen;
    struct reconcile *rc;

    struct metric *m_retractions;
    struct metric *m_rejudged;
    struct metric *m_stale;
    struct metric *m_epro_submissions;
    struct metric *m_state_bytes; /* this thread's subject states */
    uint64_t site_labels[SITE_LABELS_MAX]; /* hashes of the (study, site) labelled */
    int nsite_labels;

    /* prewarm's scratch (WARM_BATCH each) */
    struct observation *prewarm_obs;
    struct store_load_req *prewarm_req;
};

static void backoff_sleep(int *ms)
{
    struct timespec ts = {*ms / 1000, (long)(*ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

static int subject_key(const struct observation *obs, char key[SUBJECT_CACHE_KEY_MAX])
{
    return snprintf(key, SUBJECT_CACHE_KEY_MAX, "%s/%s", obs->study_id, obs->subject_id);
}

static int assign_gen(const struct analyser *a)
{
    return atomic_load(a->env->assign_gen);
}

static void count_invalid(struct analyser *a, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    metric_add(metrics_counter(a->env->metrics, "vigil_invalid_total",
                               "Messages dead-lettered, by reason", labels),
               1);
}

/* Dead-letters W; if even that is impossible (closing), abandons it. */
static void poison(struct analyser *a, struct work *w, const char *cls, const char *msg)
{
    count_invalid(a, cls);
    if (dlq_send(a->env->dlq, w, cls, msg) != 0)
        work_abandon(w);
}

/* ---- the steps of process() ------------------------------------------- */

/* Decodes W's message into w->obs, waiting out a schema registry that is
 * away. False if W was dead-lettered or abandoned. */
static bool decode(struct analyser *a, struct work *w)
{
    char err[512];
    const rd_kafka_message_t *m = w->rkm;
    enum codec_status cs;
    int backoff = 100;
    for (;;) {
        cs = codec_decode_observation(a->env->codec, m->payload, m->len, &w->obs, err, sizeof err);
        if (cs != CODEC_ETRANSIENT)
            break;
        log_msg(LOG_WARN, "analyse", "schema registry unavailable, retrying: %s", err);
        if (ctx_done(a->env->ctx)) {
            work_abandon(w);
            return false;
        }
        backoff_sleep(&backoff);
    }
    if (cs != CODEC_OK) {
        poison(a, w, codec_error_class_name(cs), err);
        return false;
    }
    return true;
}

/* The message key is the contract that keeps a subject on one thread: it
 * must be the record's "study_id/subject_id" (written to KEY). False if W
 * was dead-lettered for that or for a reference range that is not one. */
static bool check_record(struct analyser *a, struct work *w, char key[SUBJECT_CACHE_KEY_MAX])
{
    const rd_kafka_message_t *m = w->rkm;
    const struct observation *obs = &w->obs;
    int klen = subject_key(obs, key);
    if (m->key == NULL || m->key_len != (size_t)klen || memcmp(m->key, key, (size_t)klen) != 0) {
        poison(a, w, "invalid", "message key does not match the record's study_id/subject_id");
        return false;
    }
    if (obs->has_ref_low && obs->has_ref_high && obs->ref_low > obs->ref_high) {
        poison(a, w, "invalid", "ref_low is greater than ref_high");
        return false;
    }
    return true;
}

/* When W reached vigil: its Kafka timestamp (the producer's clock, or the
 * broker's with LogAppendTime), so a replay judges its times as the first
 * pass did; never later than when it was polled (a producer clock ahead of
 * ours must not make the future look present). */
static int64_t arrival_ms(const struct work *w)
{
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(w->rkm, &type);
    if (type == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE || ts <= 0 || ts > w->received_ms)
        return w->received_ms;
    return ts;
}

static void count_finding(struct analyser *a, const struct observation *obs, const char *finding)
{
    char labels[96];
    snprintf(labels, sizeof labels, "finding=\"%s\"", finding);
    metric_add(metrics_counter(a->env->metrics, "vigil_data_quality_findings_total",
                               "Observations stored with a data-quality finding", labels),
               1);
    if (strcmp(finding, "unknown_code") != 0 && strcmp(finding, "malformed_code") != 0)
        return;
    /* codes a site sends that vigil does not analyse, per site (bounded:
     * SITE_LABELS_MAX) */
    uint64_t h = hash_str(obs->site_id, hash_str(obs->study_id, HASH_SEED));
    bool labelled = false;
    for (int i = 0; i < a->nsite_labels && !labelled; i++)
        labelled = a->site_labels[i] == h;
    if (!labelled && a->nsite_labels < SITE_LABELS_MAX) {
        a->site_labels[a->nsite_labels++] = h;
        labelled = true;
    }
    char esc1[2 * OBS_ID_MAX + 1], esc2[2 * OBS_ID_MAX + 1], site[2 * 2 * OBS_ID_MAX + 64];
    snprintf(site, sizeof site, "study=\"%s\",site=\"%s\",finding=\"%s\"",
             labelled ? metrics_label_escape(obs->study_id, esc1, sizeof esc1) : "other",
             labelled ? metrics_label_escape(obs->site_id, esc2, sizeof esc2) : "other", finding);
    metric_add(metrics_counter(a->env->metrics, "vigil_unanalysed_codes_total",
                               "Results with an unknown or malformed code, by site", site),
               1);
}

/* Normalises units, checks plausibility and times (a data-quality finding
 * is counted, stored, and raises no alert); W's row is to be stored. */
static void clean(struct analyser *a, struct work *w)
{
    clean_observation(&w->obs, &w->clean);
    clean_times(&w->obs, arrival_ms(w), &a->env->time_limits, &w->clean);
    if (w->clean.finding != NULL)
        count_finding(a, &w->obs, w->clean.finding);
    w->revision = store_revision(&w->obs);
    w->store_row = true;
}

/* The state of subject KEY, loaded from PostgreSQL when it is not in
 * memory for this assignment generation, retrying until it loads. NULL if
 * out of memory or the worker stops meanwhile (the item is then abandoned
 * and consumed again later). */
static struct subject_state *subject_for(struct analyser *a, const char *key,
                                         const struct observation *obs)
{
    char err[512];
    bool fresh = false;
    struct subject_state *st = subject_cache_get(a->subjects, key, assign_gen(a), &fresh);
    int backoff = 100;
    while (st != NULL && fresh && store_load_subject(a->load, st, obs, err, sizeof err) != 0) {
        log_msg(LOG_WARN, "analyse", "could not load subject state, retrying: %s", err);
        if (ctx_done(a->env->ctx)) {
            subject_cache_drop(a->subjects, key);
            return NULL;
        }
        backoff_sleep(&backoff);
    }
    return st;
}

/* Takes the current rules snapshot if it changed. */
static void rules_refresh(struct analyser *a)
{
    if (a->rules != NULL && snapshot_generation(a->env->rules) == a->rules_gen)
        return;
    if (a->rules != NULL)
        snapshot_release(a->env->rules, a->rules);
    a->rules = snapshot_acquire(a->env->rules, &a->rules_gen);
}

/* Counts what the reconciliation published and did: signals by rule and
 * severity, retractions, results judged again, stale versions ignored. */
static void count_outcome(struct analyser *a, const struct alert *out, int n,
                          const struct reconcile_outcome *res)
{
    for (int j = 0; j < n; j++) {
        const struct alert *al = &out[j];
        if (al->kind != ALERT_SIGNAL)
            continue;
        char labels[160], esc[2 * ALERT_RULE_MAX + 1];
        snprintf(labels, sizeof labels, "rule=\"%s\",severity=\"%s\"",
                 metrics_label_escape(al->rule_id, esc, sizeof esc),
                 alert_severity_name(al->severity));
        metric_add(metrics_counter(a->env->metrics, "vigil_alerts_total",
                                   "Alerts raised, by rule and severity", labels),
                   1);
    }
    if (res->retracted > 0)
        metric_add(a->m_retractions, (uint64_t)res->retracted);
    if (res->rejudged > 0)
        metric_add(a->m_rejudged, (uint64_t)res->rejudged);
    if (res->stale)
        metric_add(a->m_stale, 1);
}

/* A patient-reported symptom item: counted by attribute, and its report
 * (the items of one subject answered at one time) counted once, by its
 * first item to arrive. Replays and stale versions count nothing. */
static void count_epro(struct analyser *a, const struct subject_state *st,
                       const struct observation *obs, const struct clean_result *c,
                       const struct reconcile_outcome *res)
{
    const struct proctcae_item *item = proctcae_find(obs->loinc);
    if (item == NULL || c->status != CLEAN_OK || res->stale || res->replay ||
        obs->status != OBS_FINAL)
        return;
    char labels[64];
    snprintf(labels, sizeof labels, "attribute=\"%s\"", proctcae_attribute_name(item->attribute));
    metric_add(metrics_counter(a->env->metrics, "vigil_epro_items_total",
                               "Patient-reported symptom items analysed, by attribute", labels),
               1);
    if (subject_state_count_at(st, PROCTCAE_PREFIX, obs->effective_ms, obs->observation_id) == 0)
        metric_add(a->m_epro_submissions, 1);
}

/* Copies ALERTS[0..N-1] into W's own alerts. False if out of memory. */
static bool take_alerts(struct work *w, const struct alert *alerts, int n)
{
    if (n == 0)
        return true;
    w->alerts = malloc(sizeof *w->alerts * (size_t)n);
    if (w->alerts == NULL)
        return false;
    memcpy(w->alerts, alerts, sizeof *w->alerts * (size_t)n);
    w->nalerts = n;
    return true;
}

/* Publishes W's alerts, keyed by KEY; each holds W until acknowledged. */
static void publish(struct analyser *a, struct work *w, const char *key)
{
    char err[512];
    for (int j = 0; j < w->nalerts; j++) {
        unsigned char buf[CODEC_ALERT_MAX_ENCODED];
        size_t len = 0;
        if (codec_encode_alert(a->env->codec, &w->alerts[j], CODEC_SINGLE_OBJECT, 0, buf,
                               sizeof buf, &len, err, sizeof err) != CODEC_OK) {
            log_msg(LOG_ERROR, "analyse", "could not encode alert %s: %s", w->alerts[j].alert_id,
                    err);
            work_abandon(w);
            continue;
        }
        work_hold(w);
        if (publisher_send(a->env->pub, a->env->alerts_topic, key, strlen(key), buf, len, NULL,
                           work_release_cb, w) != 0) {
            work_abandon(w);
            work_release(w);
        }
    }
}

/* Hands W's row (and alert rows) to the store, which holds W until they
 * are committed. */
static void store(struct analyser *a, struct work *w)
{
    work_hold(w);
    if (store_put(a->env->store, w, a->env->ctx) != 0) {
        work_abandon(w);
        work_release(w);
    }
}

/* ---- one work item ---------------------------------------------------- */

static void process(struct analyser *a, struct work *w)
{
    char key[SUBJECT_CACHE_KEY_MAX];
    if (!decode(a, w) || !check_record(a, w, key))
        return;
    const struct observation *obs = &w->obs;
    clean(a, w);

    /* Every result goes through its subject, the unusable ones too: a new
     * version that cannot be analysed, or a withdrawal, takes back what the
     * earlier version raised. */
    struct subject_state *st = subject_for(a, key, obs);
    if (st == NULL) {
        work_abandon(w); /* out of memory or stopping: consumed again later */
        return;
    }
    rules_refresh(a);
    const struct alert *out;
    struct reconcile_outcome res;
    int n = reconcile_apply(a->rc, a->rules, st, obs, &w->clean, w->revision, kafka_now_ms(), &out,
                            &res);
    if (n < 0 || !take_alerts(w, out, n)) {
        work_abandon(w);
        return;
    }
    count_outcome(a, out, n, &res);
    count_epro(a, st, obs, &w->clean, &res);
    publish(a, w, key);
    store(a, w);
    subject_cache_settle(a->subjects); /* st may have grown: keep to the budget */
    metric_set(a->m_state_bytes, (double)subject_cache_bytes(a->subjects));
}

/* ---- the thread ------------------------------------------------------- */

/* Before a run of queued items is processed: loads, together, the state
 * of every subject among them that is not in memory yet. Best effort --
 * what it cannot load (a decode error, PostgreSQL failing) is loaded by
 * process() one subject at a time, with its retries. */
static void prewarm(struct analyser *a, struct work **items, int n)
{
    struct observation *obs = a->prewarm_obs;
    struct store_load_req *req = a->prewarm_req;
    /* Fewer fresh subjects than the table holds: creating them must not
     * evict one created a moment before (the newest are evicted last). */
    int cap = (int)(a->env->max_subjects / 2);
    int nreq = 0;
    char err[512];
    for (int i = 0; i < n && nreq < cap && nreq < WARM_BATCH; i++) {
        const rd_kafka_message_t *m = items[i]->rkm;
        /* The message key names the subject: decode only the new ones (in
         * the steady state, almost none), and only when the record agrees
         * with its key -- process() dead-letters the others. */
        char key[SUBJECT_CACHE_KEY_MAX];
        if (m->key == NULL || m->key_len >= sizeof key)
            continue;
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        if (subject_cache_known(a->subjects, key, assign_gen(a)))
            continue;
        if (codec_decode_observation(a->env->codec, m->payload, m->len, &obs[nreq], err,
                                     sizeof err) != CODEC_OK)
            continue;
        char rec[SUBJECT_CACHE_KEY_MAX];
        subject_key(&obs[nreq], rec);
        if (strcmp(rec, key) != 0)
            continue;
        bool fresh = false;
        struct subject_state *st = subject_cache_get(a->subjects, key, assign_gen(a), &fresh);
        if (st == NULL || !fresh)
            continue;
        req[nreq].st = st;
        req[nreq].obs = &obs[nreq];
        nreq++;
    }
    if (nreq == 0)
        return;
    if (store_load_subjects(a->load, req, nreq, err, sizeof err) != 0) {
        /* half-loaded states must not be used: process() starts them again */
        for (int i = 0; i < nreq; i++) {
            char key[SUBJECT_CACHE_KEY_MAX];
            subject_key(req[i].obs, key);
            subject_cache_drop(a->subjects, key);
        }
        log_msg(LOG_WARN, "analyse", "could not load %d subject states together: %s", nreq, err);
    }
}

static void *run(void *arg)
{
    struct analyser *a = arg;
    struct work *items[WARM_BATCH];
    for (;;) {
        void *item;
        if (chan_recv(a->in, &item, DEADLINE_FOREVER) != CHAN_OK)
            break;
        /* what is queued already, in order: its subjects load together */
        int n = 0;
        items[n++] = item;
        while (n < WARM_BATCH && chan_try_recv(a->in, &item) == CHAN_OK)
            items[n++] = item;
        if (!ctx_done(a->env->ctx))
            prewarm(a, items, n);
        for (int i = 0; i < n; i++) {
            struct work *w = items[i];
            if (ctx_done(a->env->ctx))
                work_abandon(w);
            else
                process(a, w);
            work_release(w);
        }
    }
    return NULL;
}

static void free_parts(struct analyser *a)
{
    chan_destroy(a->in);
    subject_cache_destroy(a->subjects);
    store_load_destroy(a->load);
    reconcile_destroy(a->rc);
    free(a->prewarm_obs);
    free(a->prewarm_req);
}

struct analyser *analyser_new(const struct analyse_env *env, int index, size_t queue_cap,
                              char *errstr, size_t errstr_size)
{
    struct analyser *a = calloc(1, sizeof *a);
    if (a == NULL)
        goto oom;
    a->env = env;
    a->index = index;
    a->subjects = subject_cache_new(env->max_subjects, env->max_subject_bytes);
    a->in = chan_new(queue_cap);
    if (a->subjects == NULL || a->in == NULL)
        goto oom;
    a->load = store_load_new(env->conninfo, env->metrics);
    a->rc = reconcile_new();
    a->prewarm_obs = calloc(WARM_BATCH, sizeof *a->prewarm_obs);
    a->prewarm_req = calloc(WARM_BATCH, sizeof *a->prewarm_req);
    if (a->load == NULL || a->rc == NULL || a->prewarm_obs == NULL || a->prewarm_req == NULL)
        goto oom;
    a->m_retractions = metrics_counter(env->metrics, "vigil_retractions_total",
                                       "Alerts withdrawn by a later result", NULL);
    a->m_rejudged =
        metrics_counter(env->metrics, "vigil_rejudged_results_total",
                        "Kept results judged again because a late result reached them", NULL);
    a->m_stale =
        metrics_counter(env->metrics, "vigil_stale_versions_total",
                        "Results older than a version already analysed (not analysed)", NULL);
    a->m_epro_submissions = metrics_counter(env->metrics, "vigil_epro_submissions_total",
                                            "Patient-reported symptom reports received", NULL);
    char labels[32];
    snprintf(labels, sizeof labels, "thread=\"%d\"", index);
    a->m_state_bytes = metrics_gauge(env->metrics, "vigil_subject_state_bytes",
                                     "Memory held by the subject states of an analysis thread "
                                     "(bounded by subject_memory_mb)",
                                     labels);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        snprintf(errstr, errstr_size, "could not start analysis thread %d", index);
        goto fail;
    }
    return a;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    if (a != NULL) {
        free_parts(a);
        free(a);
    }
    return NULL;
}

enum chan_status analyser_try_put(struct analyser *a, struct work *w)
{
    return chan_try_send(a->in, w);
}

enum chan_status analyser_put(struct analyser *a, struct work *w, deadline_t deadline)
{
    return chan_send(a->in, w, deadline);
}

size_t analyser_depth(struct analyser *a)
{
    return chan_len(a->in);
}

void analyser_close(struct analyser *a)
{
    if (a == NULL)
        return;
    chan_close(a->in);
    pthread_join(a->thread, NULL);
    if (a->rules != NULL)
        snapshot_release(a->env->rules, a->rules);
    free_parts(a);
    free(a);
}
