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
#include "hash.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "publish.h"
#include "rules.h"
#include "snapshot.h"
#include "store.h"
#include "work.h"

#define MAX_PARTITIONS 1024
#define INFLIGHT_PER_PARTITION 20000
#define ANALYSE_QUEUE 1024
#define STORE_QUEUE 4096
#define COMMIT_INTERVAL_MS 500
#define REVOKE_DRAIN_MS 30000
#define DISPATCH_WAIT_MS 50

/* Poll-thread view of one partition. inflight is also touched by the sink
 * on other threads, hence atomic. */
struct partition {
    bool assigned;
    bool paused;
    struct work *stash_head, *stash_tail; /* waiting for room, in offset order */
    size_t stash_len;
    atomic_size_t inflight; /* tracked, not yet finished or abandoned */
    struct metric *m_lag;
};

struct worker {
    const struct worker_options *opt;
    rd_kafka_t *rk;
    bool cooperative;
    struct metrics *metrics;
    struct httpd *httpd;
    struct codec *codec;
    struct snapshot *rules;
    struct publisher *pub;
    struct store *store;
    struct offsets *offsets;
    struct ctx *hard_stop; /* stages stop waiting on PostgreSQL/registry */
    atomic_int assign_gen;
    struct analyse_env env;
    struct analyser **analysers;
    int nthreads;
    struct partition parts[MAX_PARTITIONS];
    size_t stashed; /* poll thread: messages in all stashes */
    int npaused;    /* poll thread: partitions paused */
    atomic_bool running;
    struct stat rules_stat;

    struct metric *m_consumed;
    struct metric *m_done;
    struct metric *m_e2e;
    struct metric *m_rules_gen;
    struct metric *m_reload_fail;
    struct metric *m_depth;
    struct metric *m_paused;
    struct metric *m_assigned;
    struct metric *m_abandoned;
};

/* ---- completion ------------------------------------------------------- */

/* The sink: the last stage to finish with a message lands here. */
static void on_work_done(void *arg, struct work *w)
{
    struct worker *wk = arg;
    if (!atomic_load(&w->abandoned)) {
        offsets_done(wk->offsets, w->partition, w->offset, w->epoch);
        metric_add(wk->m_done, 1);
        if (w->nalerts > 0 && w->obs.issued_ms > 0) {
            double s = (double)(kafka_now_ms() - w->obs.issued_ms) / 1000.0;
            metric_observe(wk->m_e2e, s < 0 ? 0 : s);
        }
    } else {
        metric_add(wk->m_abandoned, 1);
    }
    atomic_fetch_sub(&wk->parts[w->partition].inflight, 1);
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
    if (dlq_send(wk->pub, wk->opt->dlq_topic, wk->opt->topic, w, "store_rejected", msg) != 0)
        work_abandon(w);
    work_release(w);
}

/* ---- readiness -------------------------------------------------------- */

static bool ready(void *arg, char *why, size_t whysz)
{
    struct worker *wk = arg;
    if (!atomic_load(&wk->running)) {
        snprintf(why, whysz, "stopping");
        return false;
    }
    if (!store_healthy(wk->store)) {
        snprintf(why, whysz, "PostgreSQL unreachable");
        return false;
    }
    return true;
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

/* ---- partitions ------------------------------------------------------- */

static void pause_partition(struct worker *wk, int32_t p, bool pause)
{
    if (wk->parts[p].paused == pause || !kafka_pause(wk->rk, wk->opt->topic, p, pause, "worker"))
        return;
    wk->parts[p].paused = pause;
    wk->npaused += pause ? 1 : -1;
    metric_gauge_add(wk->m_paused, pause ? 1 : -1);
}

/* Offers W to its analysis thread, waiting at most WAIT_MS for room.
 * Returns false if the queue stayed full. */
static bool dispatch(struct worker *wk, struct work *w, int wait_ms)
{
    const rd_kafka_message_t *m = w->rkm;
    uint64_t h = hash_bytes(m->key, m->key ? m->key_len : 0, HASH_SEED);
    size_t i = (size_t)(h % (uint64_t)wk->nthreads);
    if (wait_ms <= 0)
        return analyser_try_put(wk->analysers[i], w) == CHAN_OK;
    return analyser_put(wk->analysers[i], w, deadline_after_ms(wait_ms)) == CHAN_OK;
}

enum admit { ADMIT_OK, ADMIT_FULL, ADMIT_DROP };

/* Tracks W's offset (once). FULL: the partition has its maximum in flight,
 * keep W stashed and try later; never drop it, or a later commit would
 * pass over it. DROP: W is a second delivery of an offset already tracked
 * (a replay after a seek); W was freed. */
static enum admit admit(struct worker *wk, struct work *w)
{
    if (w->tracked)
        return ADMIT_OK;
    enum offsets_status st = offsets_track(wk->offsets, w->partition, w->offset, &w->epoch);
    if (st == OFFSETS_FULL)
        return ADMIT_FULL;
    if (st != OFFSETS_OK) {
        log_msg(LOG_WARN, "worker", "partition %d offset %lld delivered again, skipped",
                (int)w->partition, (long long)w->offset);
        work_free(w);
        return ADMIT_DROP;
    }
    w->tracked = true;
    atomic_fetch_add(&wk->parts[w->partition].inflight, 1);
    return ADMIT_OK;
}

static void stash(struct worker *wk, struct work *w)
{
    struct partition *pt = &wk->parts[w->partition];
    w->next = NULL;
    if (pt->stash_tail)
        pt->stash_tail->next = w;
    else
        pt->stash_head = w;
    pt->stash_tail = w;
    pt->stash_len++;
    wk->stashed++;
    pause_partition(wk, w->partition, true);
}

/* Moves stashed messages on while their queues have room; resumes a
 * partition whose stash is empty. */
static void drain_stashes(struct worker *wk)
{
    if (wk->stashed == 0 && wk->npaused == 0)
        return;
    for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
        struct partition *pt = &wk->parts[p];
        while (pt->stash_head != NULL) {
            struct work *w = pt->stash_head;
            struct work *next = w->next;
            enum admit a = admit(wk, w);
            if (a == ADMIT_FULL || (a == ADMIT_OK && !dispatch(wk, w, 0)))
                break;
            pt->stash_head = next;
            if (pt->stash_head == NULL)
                pt->stash_tail = NULL;
            pt->stash_len--;
            wk->stashed--;
        }
        if (pt->paused && pt->stash_head == NULL && pt->assigned)
            pause_partition(wk, p, false);
    }
}

static void discard_stash(struct worker *wk, int32_t p)
{
    struct partition *pt = &wk->parts[p];
    while (pt->stash_head != NULL) {
        struct work *w = pt->stash_head;
        pt->stash_head = w->next;
        wk->stashed--;
        if (!w->tracked) {
            work_free(w); /* never tracked: nothing to finish */
            continue;
        }
        work_abandon(w);
        work_release(w);
    }
    pt->stash_tail = NULL;
    pt->stash_len = 0;
}

static void commit(struct worker *wk, bool sync)
{
    kafka_commit_offsets(wk->rk, wk->opt->topic, wk->offsets, MAX_PARTITIONS, sync, "worker");
}

/* Commit results, served on the poll thread by rd_kafka_consumer_poll: a
 * failed position goes back to the tracker to be committed again (without
 * this the group stays behind until the partition gets new messages). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct worker *wk = opaque;
    kafka_commit_result(err, l, wk->opt->topic, wk->offsets, "worker");
}

static size_t inflight_of(void *arg, int32_t p)
{
    struct worker *wk = arg;
    return atomic_load(&wk->parts[p].inflight);
}

/* Waits (bounded) until every dispatched message of the revoked partitions
 * finished, commits them and forgets them. Runs inside the rebalance
 * callback, so the group waits for us, within max.poll.interval.ms. */
static void revoke(struct worker *wk, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p >= 0 && p < MAX_PARTITIONS)
            discard_stash(wk, p);
    }
    kafka_revoke_wait(l, MAX_PARTITIONS, inflight_of, wk, REVOKE_DRAIN_MS, "worker");
    commit(wk, true);
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p < 0 || p >= MAX_PARTITIONS)
            continue;
        offsets_forget(wk->offsets, p);
        /* Resumed in librdkafka too, not only forgotten here: librdkafka
         * keeps a partition's pause across unassign and assign, so a
         * partition paused for backpressure and given back to this worker
         * by a later rebalance would never be fetched again while this
         * worker thinks it runs (found by tests/fault/test_churn.py storm). */
        if (wk->parts[p].paused) {
            kafka_pause(wk->rk, wk->opt->topic, p, false, "worker");
            wk->parts[p].paused = false;
            wk->npaused--;
            metric_gauge_add(wk->m_paused, -1);
        }
        if (wk->parts[p].assigned)
            metric_gauge_add(wk->m_assigned, -1);
        wk->parts[p].assigned = false;
    }
    /* Subjects may move to another worker: reload state on next sight. */
    atomic_fetch_add(&wk->assign_gen, 1);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct worker *wk = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        atomic_fetch_add(&wk->assign_gen, 1);
        for (int i = 0; i < l->cnt; i++) {
            int32_t p = l->elems[i].partition;
            if (p >= 0 && p < MAX_PARTITIONS && !wk->parts[p].assigned) {
                wk->parts[p].assigned = true;
                metric_gauge_add(wk->m_assigned, 1);
            }
        }
        log_msg(LOG_INFO, "worker", "assigned %d partitions", l->cnt);
        kafka_assign(rk, l, wk->cooperative, "worker");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_msg(LOG_INFO, "worker", "revoking %d partitions: draining", l->cnt);
        if (rd_kafka_assignment_lost(rk))
            log_msg(LOG_WARN, "worker", "assignment lost: uncommitted work will be redone");
        revoke(wk, l);
        kafka_unassign(rk, l, wk->cooperative);
        return;
    }
    log_msg(LOG_ERROR, "worker", "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
}

/* ---- the poll loop ---------------------------------------------------- */

static void on_message(struct worker *wk, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_msg(LOG_WARN, "worker", "consumer error: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    int32_t p = m->partition;
    if (p < 0 || p >= MAX_PARTITIONS) {
        log_msg(LOG_ERROR, "worker", "partition %d is beyond the %d this worker tracks", (int)p,
                MAX_PARTITIONS);
        rd_kafka_message_destroy(m);
        return;
    }
    metric_add(wk->m_consumed, 1);
    struct work *w = work_new(m, on_work_done, wk);
    if (w == NULL) {
        /* Not tracked, so never committed past: it comes back after a
         * restart. Say so loudly. */
        log_msg(LOG_ERROR, "worker", "out of memory: partition %d offset %lld skipped for now",
                (int)p, (long long)m->offset);
        rd_kafka_message_destroy(m);
        return;
    }
    /* Messages of a partition with a stash queue behind it, in order:
     * they are tracked only when they leave the stash, so tracking order
     * stays offset order. */
    if (wk->parts[p].stash_head != NULL) {
        stash(wk, w);
        return;
    }
    enum admit a = admit(wk, w);
    if (a == ADMIT_DROP)
        return;
    /* A short wait for room absorbs ordinary bursts; pausing is kept for a
     * stage that stays full, such as PostgreSQL away. */
    if (a == ADMIT_FULL || !dispatch(wk, w, DISPATCH_WAIT_MS))
        stash(wk, w);
}

static void update_gauges(struct worker *wk)
{
    size_t depth = store_depth(wk->store);
    for (int i = 0; i < wk->nthreads; i++)
        depth += analyser_depth(wk->analysers[i]);
    metric_set(wk->m_depth, (double)depth);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        if (wk->parts[p].assigned)
            rd_kafka_topic_partition_list_add(l, wk->opt->topic, p);
    if (l->cnt > 0 && rd_kafka_position(wk->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo, hi;
            int32_t p = l->elems[i].partition;
            if (rd_kafka_get_watermark_offsets(wk->rk, wk->opt->topic, p, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            int64_t pos = l->elems[i].offset;
            if (pos < 0)
                continue;
            if (wk->parts[p].m_lag == NULL) {
                char labels[64];
                snprintf(labels, sizeof labels, "partition=\"%d\"", (int)p);
                wk->parts[p].m_lag = metrics_gauge(wk->metrics, "vigil_consumer_lag",
                                                   "Messages behind the end of the partition",
                                                   labels);
            }
            metric_set(wk->parts[p].m_lag, (double)(hi > pos ? hi - pos : 0));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static rd_kafka_t *consumer_new(struct worker *wk, char *errstr, size_t errsz)
{
    const struct worker_options *o = wk->opt;
    rd_kafka_conf_t *conf = kafka_conf_new(NULL, o->bootstrap, "vigil-worker", errstr, errsz);
    if (conf == NULL)
        return NULL;
    /* Offsets are committed by hand, only past finished messages. */
    if (kafka_conf_set(conf, "group.id", o->group, errstr, errsz) != 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "partition.assignment.strategy", o->assignor, errstr, errsz) != 0 ||
        /* Prefetch bound: messages of a paused partition already fetched
         * are still delivered and wait in its stash; this caps them. */
        kafka_conf_set(conf, "queued.max.messages.kbytes", "4096", errstr, errsz) != 0 ||
        kafka_conf_apply(conf, o->cfg, errstr, errsz) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_opaque(conf, wk);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsz);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

struct watchdog {
    struct ctx *ctx;
    deadline_t deadline;
};

/* Cancels the stages' context at the deadline (or returns as soon as it is
 * cancelled otherwise), so a stage waiting on an absent PostgreSQL or
 * registry gives up in time. */
static void *watchdog_run(void *arg)
{
    struct watchdog *d = arg;
    ctx_wait(d->ctx, d->deadline);
    ctx_cancel(d->ctx);
    return NULL;
}

static void shutdown_stages(struct worker *wk, deadline_t deadline)
{
    /* Stop waiting on PostgreSQL or the registry once the grace is nearly
     * gone; whatever is unfinished is simply not committed. */
    struct watchdog wd = {wk->hard_stop, deadline};
    pthread_t wd_thread;
    bool wd_started = pthread_create(&wd_thread, NULL, watchdog_run, &wd) == 0;
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        discard_stash(wk, p);
    for (int i = 0; i < wk->nthreads; i++) {
        analyser_close(wk->analysers[i]);
        wk->analysers[i] = NULL;
    }
    store_close(wk->store, deadline);
    wk->store = NULL;
    size_t lost = publisher_close(wk->pub, deadline);
    wk->pub = NULL;
    if (lost > 0)
        log_msg(LOG_WARN, "worker", "%zu alerts or dead letters unacknowledged at exit: their "
                                    "messages will be processed again",
                lost);
    ctx_cancel(wk->hard_stop);
    if (wd_started)
        pthread_join(wd_thread, NULL);
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
    wk->cooperative = strstr(opt->assignor, "cooperative") != NULL;
    wk->metrics = metrics_new();
    wk->offsets = offsets_new(MAX_PARTITIONS, INFLIGHT_PER_PARTITION);
    wk->hard_stop = ctx_new(NULL);
    if (wk->metrics == NULL || wk->offsets == NULL || wk->hard_stop == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        atomic_init(&wk->parts[p].inflight, 0);
    struct metrics *m = wk->metrics;
    wk->m_consumed = metrics_counter(m, "vigil_consumed_total", "Messages consumed", NULL);
    wk->m_done = metrics_counter(m, "vigil_processed_total",
                                 "Messages whose every effect is durable", NULL);
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
    wk->m_paused = metrics_gauge(m, "vigil_paused_partitions", "Partitions paused (backpressure)",
                                 NULL);
    wk->m_assigned = metrics_gauge(m, "vigil_assigned_partitions", "Partitions assigned", NULL);
    wk->m_abandoned = metrics_counter(m, "vigil_abandoned_total",
                                      "Messages left unfinished (processed again later)", NULL);
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
    const char *pub_topics[] = {opt->alerts_topic, opt->dlq_topic, NULL};
    wk->pub = publisher_new(opt->cfg, opt->bootstrap, "vigil-worker-producer", pub_topics, m,
                            errstr, errstr_size);
    if (wk->pub == NULL)
        goto out;
    struct store_config sc = {
        .conninfo = opt->conninfo,
        .queue_cap = STORE_QUEUE,
        .batch_rows = opt->batch_rows,
        .batch_ms = opt->batch_ms,
        .source_topic = opt->topic,
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
        .source_topic = opt->topic,
        .alerts_topic = opt->alerts_topic,
        .dlq_topic = opt->dlq_topic,
        .conninfo = opt->conninfo,
        .assign_gen = &wk->assign_gen,
        .ctx = wk->hard_stop,
        .max_subjects = opt->max_subjects,
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
    wk->rk = consumer_new(wk, errstr, errstr_size);
    if (wk->rk == NULL)
        goto out;
    atomic_store(&wk->running, true);
    if (opt->http_addr != NULL && *opt->http_addr != '\0') {
        wk->httpd = httpd_start(opt->http_addr, m, ready, wk, errstr, errstr_size);
        if (wk->httpd == NULL)
            goto out;
        log_msg(LOG_INFO, "worker", "serving /metrics, /healthz, /readyz on port %d",
                httpd_port(wk->httpd));
    }
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, opt->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(wk->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (serr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "could not subscribe to %s: %s", opt->topic,
                 rd_kafka_err2str(serr));
        goto out;
    }
    log_msg(LOG_INFO, "worker", "joined group %s on %s with %d analysis threads (%s assignor)",
            opt->group, opt->topic, wk->nthreads, opt->assignor);

    deadline_t next_commit = deadline_after_ms(COMMIT_INTERVAL_MS);
    deadline_t next_tick = deadline_after_ms(1000);
    while (!ctx_done(stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(wk->rk, 50);
        if (msg != NULL)
            on_message(wk, msg);
        drain_stashes(wk);
        if (deadline_expired(next_commit)) {
            commit(wk, false);
            next_commit = deadline_after_ms(COMMIT_INTERVAL_MS);
        }
        if (atomic_exchange(reload, false))
            reload_rules(wk, "SIGHUP");
        if (deadline_expired(next_tick)) {
            if (rules_file_changed(wk))
                reload_rules(wk, "file changed");
            update_gauges(wk);
            next_tick = deadline_after_ms(1000);
        }
    }

    /* Drain, flush, commit, leave: within the grace period, keeping a
     * little of it for the group leave. */
    log_msg(LOG_INFO, "worker", "stopping: draining in-flight messages");
    atomic_store(&wk->running, false);
    httpd_stop(wk->httpd); /* its readiness callback reads the stages */
    wk->httpd = NULL;
    int grace_ms = opt->grace_s * 1000;
    deadline_t deadline = deadline_after_ms(grace_ms > 4000 ? grace_ms - 3000 : grace_ms / 2);
    shutdown_stages(wk, deadline);
    ctx_cancel(wk->hard_stop);
    commit(wk, true);
    rd_kafka_consumer_close(wk->rk);
    log_msg(LOG_INFO, "worker", "stopped: offsets committed, group left");
    rc = 0;
out:
    atomic_store(&wk->running, false);
    if (wk->hard_stop != NULL)
        ctx_cancel(wk->hard_stop);
    if (wk->analysers != NULL) {
        for (int i = 0; i < wk->nthreads; i++)
            analyser_close(wk->analysers[i]);
        free(wk->analysers);
    }
    store_close(wk->store, deadline_now());
    publisher_close(wk->pub, deadline_now());
    if (wk->rk != NULL) {
        if (rc != 0)
            rd_kafka_consumer_close(wk->rk);
        rd_kafka_destroy(wk->rk);
    }
    httpd_stop(wk->httpd);
    codec_destroy(wk->codec);
    snapshot_destroy(wk->rules);
    offsets_destroy(wk->offsets);
    ctx_destroy(wk->hard_stop);
    metrics_destroy(wk->metrics);
    free(wk);
    return rc;
}
