#include "worker.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analyse.h"
#include "codec.h"
#include "dlq.h"
#include "group.h"
#include "hash.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"
#include "rules.h"
#include "snapshot.h"
#include "store.h"
#include "work.h"

/* Items; see consumer/README.md "Memory" for what they cost. */
#define ANALYSE_QUEUE 1024
#define STORE_QUEUE   4096
#define OFFER_WAIT_MS 250
/* What a whole dead letter adds to its record: vigil's headers. */

struct worker {
    const struct worker_options *opt;
    struct group *group;
    struct metrics *metrics;
    struct httpd *httpd;
    struct codec *codec;
    struct snapshot *rules;
    struct publisher *pub;
    struct deadletter *dlq;
    struct store *store;
    struct ctx *hard_stop; /* stages stop waiting on PostgreSQL/registry */
    atomic_int assign_gen;
    struct analyse_env env;
    struct analyser **analysers;
    int nthreads;
    struct stat rules_stat;

    struct metric *m_e2e;
    struct metric *m_rules_gen;
    struct metric *m_reload_fail;
    struct metric *m_depth;
};

/* ---- completion ------------------------------------------------------- */

/* The sink: the last stage to finish with a message lands here. */
static void on_work_done(void *arg, struct work *w)
{
    struct worker *wk = arg;
    struct group_ticket t = {w->partition, w->offset, w->epoch};
    if (!atomic_load(&w->abandoned)) {
        group_done(wk->group, &t);
        if (w->nalerts > 0 && w->obs.issued_ms > 0) {
            double s = (double)(kafka_now_ms() - w->obs.issued_ms) / 1000.0;
            metric_observe(wk->m_e2e, s < 0 ? 0 : s);
        }
    } else {
        group_abandon(wk->group, &t);
    }
    work_free(w);
}

static void store_reject(void *arg, struct work *w, const char *reason)
{
    struct worker *wk = arg;
    char msg[600];
    snprintf(msg, sizeof msg, "PostgreSQL refused the row: %s", reason);
    log_msg(LOG_ERROR, "worker", "partition %d offset %lld dead-lettered: %s", (int)w->partition,
            (long long)w->offset, msg);
    w->nalerts = 0; /* its alerts were published; the rows could not be stored */
    if (dlq_send(wk->dlq, w, "store_rejected", msg) != 0)
        work_abandon(w);
    work_release(w);
}

/* ---- readiness -------------------------------------------------------- */

static bool ready(void *arg, char *why, size_t whysz)
{
    struct worker *wk = arg;
    const struct httpd_check checks[] = {
        {store_healthy(wk->store), "PostgreSQL unreachable"},
        {publisher_healthy(wk->pub), "Kafka unreachable: alerts cannot be published"},
    };
    return group_ready(wk->group, why, whysz) &&
           httpd_checks(checks, sizeof checks / sizeof checks[0], why, whysz);
}

/* ---- rules ------------------------------------------------------------ */

static void rules_destroy_cb(void *r)
{
    rules_destroy(r);
}

static void reload_rules(struct worker *wk, const char *why)
{
    char err[2048];
    struct rules *r = rules_load_file(wk->opt->rules_path, err, sizeof err);
    if (r == NULL) {
        metric_add(wk->m_reload_fail, 1);
        log_msg(LOG_ERROR, "worker", "rules reload (%s) refused, keeping the old rules: %s", why,
                err);
        return;
    }
    int n = rules_count(r);
    uint64_t gen = snapshot_publish(wk->rules, r);
    if (gen == 0) {
        rules_destroy(r);
        return;
    }
    metric_set(wk->m_rules_gen, (double)gen);
    log_msg(LOG_INFO, "worker", "rules reloaded (%s): %d rules, generation %llu", why, n,
            (unsigned long long)gen);
}

static bool rules_file_changed(struct worker *wk)
{
    struct stat st;
    if (stat(wk->opt->rules_path, &st) != 0)
        return false; /* mid-swap or gone: keep what we have */
    bool changed = st.st_ino != wk->rules_stat.st_ino || st.st_dev != wk->rules_stat.st_dev ||
                   st.st_size != wk->rules_stat.st_size ||
                   st.st_mtim.tv_sec != wk->rules_stat.st_mtim.tv_sec ||
                   st.st_mtim.tv_nsec != wk->rules_stat.st_mtim.tv_nsec;
    wk->rules_stat = st;
    return changed;
}

/* ---- the engine's role: hand a message to its analysis thread -------- */

static void *role_wrap(void *arg, rd_kafka_message_t *m)
{
    return work_new(m, on_work_done, arg);
}

/* Offers W to the analysis thread of its key (one subject's messages go
 * to one thread, in order), waiting at most WAIT_MS for room. */
static bool role_offer(void *arg, void *item, const struct group_ticket *t, int wait_ms)
{
    struct worker *wk = arg;
    struct work *w = item;
    w->epoch = t->epoch;
    const rd_kafka_message_t *m = w->rkm;
    uint64_t h = hash_bytes(m->key, m->key ? m->key_len : 0, HASH_SEED);
    struct analyser *a = wk->analysers[h % (uint64_t)wk->nthreads];
    if (wait_ms <= 0)
        return analyser_try_put(a, w) == CHAN_OK;
    return analyser_put(a, w, deadline_after_ms(wait_ms)) == CHAN_OK;
}

static void role_discard(void *arg, void *item)
{
    (void)arg;
    work_free(item);
}

/* Subjects may have moved to or from another worker: every state is
 * reloaded from PostgreSQL on next sight. */
static void role_rebalanced(void *arg, bool assigned)
{
    (void)assigned;
    struct worker *wk = arg;
    atomic_fetch_add(&wk->assign_gen, 1);
}

static void update_depth(struct worker *wk)
{
    size_t depth = store_depth(wk->store);
    for (int i = 0; i < wk->nthreads; i++)
        depth += analyser_depth(wk->analysers[i]);
    metric_set(wk->m_depth, (double)depth);
}

struct watchdog {
    struct ctx *ctx;
    deadline_t deadline;
    pthread_mutex_t lock;  /* guards pub */
    struct publisher *pub; /* cancelled at the deadline while still open */
};

/* At the deadline (or as soon as the context is cancelled otherwise)
 * cancels the stages' context and the publisher, so a stage waiting on an
 * absent PostgreSQL or registry, or on room in the producer's queue,
 * gives up in time. */
static void *watchdog_run(void *arg)
{
    struct watchdog *d = arg;
    ctx_wait(d->ctx, d->deadline);
    pthread_mutex_lock(&d->lock);
    if (d->pub != NULL)
        publisher_cancel(d->pub);
    pthread_mutex_unlock(&d->lock);
    ctx_cancel(d->ctx);
    return NULL;
}

static void shutdown_stages(struct worker *wk, deadline_t deadline)
{
    /* Stop waiting on PostgreSQL, the registry or the producer once the
     * grace is nearly gone; whatever is unfinished is simply not
     * committed. */
    struct watchdog wd = {.ctx = wk->hard_stop, .deadline = deadline, .pub = wk->pub};
    pthread_mutex_init(&wd.lock, NULL);
    pthread_t wd_thread;
    bool wd_started = pthread_create(&wd_thread, NULL, watchdog_run, &wd) == 0;
    for (int i = 0; i < wk->nthreads; i++) {
        analyser_close(wk->analysers[i]);
        wk->analysers[i] = NULL;
    }
    store_close(wk->store, deadline);
    wk->store = NULL;
    pthread_mutex_lock(&wd.lock);
    wd.pub = NULL; /* closed below: the watchdog must not touch it */
    pthread_mutex_unlock(&wd.lock);
    /* Alerts and dead letters not acknowledged by the deadline are
     * abandoned (their messages are read again); then the dead letters
     * still waiting for a dead_letters row. */
    size_t lost = publisher_close(wk->pub, deadline);
    wk->pub = NULL;
    if (lost > 0)
        log_msg(LOG_WARN, "worker",
                "%zu alerts or dead letters unacknowledged at exit: their "
                "messages will be processed again",
                lost);
    deadletter_close(wk->dlq, deadline);
    wk->dlq = NULL;
    ctx_cancel(wk->hard_stop);
    if (wd_started)
        pthread_join(wd_thread, NULL);
    pthread_mutex_destroy(&wd.lock);
}

int worker_run(const struct worker_options *opt, struct ctx *stop, atomic_bool *reload,
               char *errstr, size_t errstr_size)
{
    int rc = -1;
    struct worker *wk = calloc(1, sizeof *wk);
    if (wk == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    wk->opt = opt;
    wk->nthreads = opt->threads;
    wk->metrics = metrics_new();
    wk->hard_stop = ctx_new(NULL);
    if (wk->metrics == NULL || wk->hard_stop == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    struct metrics *m = wk->metrics;
    static const double lat[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
    wk->m_e2e = metrics_histogram(m, "vigil_alert_latency_seconds",
                                  "From the observation's issue time to its alerts' "
                                  "acknowledgement by Kafka",
                                  NULL, lat, sizeof lat / sizeof lat[0]);
    wk->m_rules_gen = metrics_gauge(m, "vigil_rules_generation", "Rules snapshot generation",
                                    NULL);
    wk->m_reload_fail = metrics_counter(m, "vigil_rules_reload_failures_total",
                                        "Rules reloads refused (old rules kept)", NULL);
    wk->m_depth = metrics_gauge(m, "vigil_queue_depth", "Messages queued between stages", NULL);
    metrics_counter(m, "vigil_invalid_total", "Messages dead-lettered, by reason",
                    "reason=\"truncated\"");

    char err[2048];
    struct rules *r = rules_load_file(opt->rules_path, err, sizeof err);
    if (r == NULL) {
        snprintf(errstr, errstr_size, "%s", err);
        goto out;
    }
    stat(opt->rules_path, &wk->rules_stat);
    wk->rules = snapshot_new(r, rules_destroy_cb);
    if (wk->rules == NULL) {
        rules_destroy(r);
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    metric_set(wk->m_rules_gen, 1);
    log_msg(LOG_INFO, "worker", "loaded %d rules from %s", rules_count(r), opt->rules_path);

    struct codec_config cc;
    codec_config_init(&cc);
    cc.registry_url = opt->registry_url;
    if (opt->max_message_bytes > 0)
        cc.max_message_bytes = opt->max_message_bytes;
    wk->codec = codec_new(&cc, errstr, errstr_size);
    if (wk->codec == NULL)
        goto out;
    const char *pub_topics[] = {opt->alerts_topic, opt->dead_letters.topic, NULL};
    /* A dead letter of any record the topic may hold is tried whole: the
     * dead-letter topic's own max.message.bytes decides (else truncated). */
    wk->pub = publisher_new(opt->consumer.cfg, opt->consumer.bootstrap, "vigil-worker-producer",
                            pub_topics, deadletter_message_max(opt->consumer.max_record_bytes),
                            m, errstr, errstr_size);
    if (wk->pub == NULL)
        goto out;
    wk->dlq = deadletter_new(&opt->dead_letters, wk->pub, m, errstr, errstr_size);
    if (wk->dlq == NULL)
        goto out;
    struct store_config sc = {
        .conninfo = opt->conninfo,
        .queue_cap = STORE_QUEUE,
        .batch_rows = opt->batch_rows,
        .batch_ms = opt->batch_ms,
        .writers = opt->store_writers,
        .source_topic = opt->consumer.topic,
        .reject = store_reject,
        .reject_arg = wk,
    };
    wk->store = store_new(&sc, m, errstr, errstr_size);
    if (wk->store == NULL)
        goto out;
    wk->env = (struct analyse_env){
        .codec = wk->codec,
        .rules = wk->rules,
        .pub = wk->pub,
        .store = wk->store,
        .metrics = m,
        .source_topic = opt->consumer.topic,
        .alerts_topic = opt->alerts_topic,
        .dlq = wk->dlq,
        .conninfo = opt->conninfo,
        .assign_gen = &wk->assign_gen,
        .ctx = wk->hard_stop,
        .max_subjects = opt->max_subjects,
        .max_subject_bytes = opt->max_subject_bytes / (size_t)(opt->threads > 0 ? opt->threads : 1),
        .time_limits = opt->time_limits,
    };
    wk->analysers = calloc((size_t)wk->nthreads, sizeof *wk->analysers);
    if (wk->analysers == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int i = 0; i < wk->nthreads; i++) {
        wk->analysers[i] = analyser_new(&wk->env, i, ANALYSE_QUEUE, errstr, errstr_size);
        if (wk->analysers[i] == NULL)
            goto out;
    }
    struct group_config gc = opt->consumer;
    gc.client_id = "vigil-worker";
    gc.component = "worker";
    gc.revoke_drain_ms = 30000; /* a revoke waits for PostgreSQL this long */
    /* Pausing a partition throws its prefetched messages away (librdkafka
     * fetches them again on resume), so a pause for an analysis thread
     * that is briefly behind costs more than it saves. A short wait for
     * room absorbs ordinary bursts (with none, throughput fell to a third,
     * measured); with PostgreSQL as the limit, a wait of OFFER_WAIT_MS also
     * rides out a slow commit (300,000 observations: 50 ms paused 20-28
     * times and took 12.5 s, 250 ms never paused and took 8.8 s). A stage
     * that stays full (PostgreSQL away) still pauses. */
    gc.offer_wait_ms = OFFER_WAIT_MS;
    /* Prefetch per partition: 2 MiB is still 8,000 observations a
     * partition, seconds of work, and half the memory of the default. */
    gc.prefetch_kbytes = 2048;
    struct group_role role = {wk, role_wrap, role_offer, role_discard, role_rebalanced};
    wk->group = group_new(&gc, &role, m, errstr, errstr_size);
    if (wk->group == NULL)
        goto out;
    if (opt->http_addr != NULL && *opt->http_addr != '\0') {
        wk->httpd = httpd_start(opt->http_addr, m, ready, wk, errstr, errstr_size);
        if (wk->httpd == NULL)
            goto out;
        log_msg(LOG_INFO, "worker", "serving /metrics, /healthz, /readyz on port %d",
                httpd_port(wk->httpd));
    }
    if (group_subscribe(wk->group, errstr, errstr_size) != 0)
        goto out;
    log_msg(LOG_INFO, "worker", "%d analysis threads", wk->nthreads);

    deadline_t next_tick = deadline_after_ms(1000);
    while (!ctx_done(stop)) {
        group_poll(wk->group, 50);
        if (atomic_exchange(reload, false))
            reload_rules(wk, "SIGHUP");
        if (deadline_expired(next_tick)) {
            if (rules_file_changed(wk))
                reload_rules(wk, "file changed");
            update_depth(wk);
            next_tick = deadline_after_ms(1000);
        }
    }

    /* Drain, flush, commit, leave: within the grace period, keeping a
     * little of it for the group leave. */
    log_msg(LOG_INFO, "worker", "stopping: draining in-flight messages");
    int grace_ms = opt->grace_s * 1000;
    /* Whatever hangs, the process ends within the grace (exit 4). */
    group_arm_exit(wk->group, deadline_after_ms(grace_ms >= 2000 ? grace_ms - 1000
                                                                 : grace_ms * 3 / 4));
    httpd_stop(wk->httpd); /* its readiness callback reads the stages */
    wk->httpd = NULL;
    int drain_ms = grace_ms > 4000 ? grace_ms - 3000 : grace_ms / 2;
    deadline_t deadline = deadline_after_ms(drain_ms);
    /* what was fetched but set aside for want of room: into the stages
     * (at most half the drain time), finished with the rest */
    group_flush_stashes(wk->group, deadline_after_ms(drain_ms / 2));
    group_stop(wk->group);
    shutdown_stages(wk, deadline);
    ctx_cancel(wk->hard_stop);
    group_close(wk->group);
    rc = group_exit_status(wk->group);
    log_msg(LOG_INFO, "worker", "stopped: offsets committed, group left (exit status %d)", rc);
out:
    if (wk->hard_stop != NULL)
        ctx_cancel(wk->hard_stop);
    if (wk->analysers != NULL) {
        for (int i = 0; i < wk->nthreads; i++)
            analyser_close(wk->analysers[i]);
        free(wk->analysers);
    }
    store_close(wk->store, deadline_now());
    publisher_close(wk->pub, deadline_now());
    deadletter_close(wk->dlq, deadline_now());
    httpd_stop(wk->httpd);
    group_destroy(wk->group); /* after the stages: their completions reach it */
    codec_destroy(wk->codec);
    snapshot_destroy(wk->rules);
    ctx_destroy(wk->hard_stop);
    metrics_destroy(wk->metrics);
    free(wk);
    return rc;
}
