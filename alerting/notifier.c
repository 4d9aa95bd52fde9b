#include "notifier.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "publish.h"
#include "route.h"

#define MAX_PARTITIONS 1024
#define INFLIGHT_PER_PARTITION 20000
#define COMMIT_INTERVAL_MS 500
#define REVOKE_DRAIN_MS 10000
#define DECODE_TRIES 3

struct stashed {
    struct job *job;
    struct stashed *next;
};

struct partition {
    bool assigned;
    bool paused;
    struct stashed *head, *tail; /* waiting for room in the sender, in order */
    atomic_int inflight;         /* tracked and not yet reported done */
};

struct notifier {
    const struct notifier_options *opt;
    rd_kafka_t *rk;
    bool cooperative;
    struct metrics *metrics;
    struct httpd *httpd;
    struct codec *codec;
    struct route_cache *routes;
    struct sender *sender;
    struct offsets *offsets;
    atomic_bool running;
    struct publisher *dlq; /* NULL when dlq_topic is empty */
    struct partition parts[MAX_PARTITIONS];
    struct metric *m_consumed, *m_invalid, *m_dead, *m_paused;
};

/* A dead letter on its way: whose offset its acknowledgement finishes. */
struct dead_letter {
    struct notifier *n;
    int32_t partition;
    int64_t offset;
    uint32_t epoch;
};

/* Sender thread: every notification of the alert is final. */
static void on_done(void *arg, int32_t partition, int64_t offset, uint32_t epoch)
{
    struct notifier *n = arg;
    /* A stale completion (partition revoked meanwhile) changes nothing,
     * and must not touch the count of a new assignment either. */
    if (offsets_done(n->offsets, partition, offset, epoch))
        atomic_fetch_sub(&n->parts[partition].inflight, 1);
}

/* The dead letter is acknowledged (publisher thread; the publisher retries
 * until it is, so this is the only outcome it reports): the undecodable
 * alert's offset finishes only now that its bytes are safe. */
static void dead_letter_done(void *arg)
{
    struct dead_letter *dl = arg;
    metric_add(dl->n->m_dead, 1);
    log_msg(LOG_WARN, "notifier", "partition %d offset %lld: dead-lettered to %s",
            (int)dl->partition, (long long)dl->offset, dl->n->opt->dlq_topic);
    on_done(dl->n, dl->partition, dl->offset, dl->epoch);
    free(dl);
}

/* Sends M (an alert that does not decode) to the dead-letter topic; its
 * offset finishes when the broker acknowledges it (dead_letter_done).
 * Without a dead-letter topic the alert is skipped, logged and counted. */
static void dead_letter(struct notifier *n, const rd_kafka_message_t *m, uint32_t epoch,
                        const char *error_class, const char *error_message)
{
    metric_add(n->m_invalid, 1);
    if (n->dlq == NULL) {
        log_msg(LOG_ERROR, "notifier",
                "partition %d offset %lld: could not decode the alert (%s): %s; skipped (no "
                "dead-letter topic)",
                (int)m->partition, (long long)m->offset, error_class, error_message);
        on_done(n, m->partition, m->offset, epoch);
        return;
    }
    log_msg(LOG_ERROR, "notifier", "partition %d offset %lld: could not decode the alert (%s): %s",
            (int)m->partition, (long long)m->offset, error_class, error_message);
    struct dead_letter *dl = malloc(sizeof *dl);
    if (dl == NULL) {
        log_msg(LOG_ERROR, "notifier", "out of memory: partition %d offset %lld left unfinished",
                (int)m->partition, (long long)m->offset);
        return;
    }
    *dl = (struct dead_letter){n, m->partition, m->offset, epoch};
    rd_kafka_headers_t *h =
        kafka_dead_letter_headers(m, n->opt->topic, error_class, error_message);
    if (publisher_send(n->dlq, n->opt->dlq_topic, m->key, m->key_len, m->payload, m->len, h,
                       dead_letter_done, dl) != 0) {
        /* closing: not finished, read again after a restart */
        log_msg(LOG_WARN, "notifier", "partition %d offset %lld: left unfinished at shutdown",
                (int)m->partition, (long long)m->offset);
        free(dl);
    }
}

static bool ready(void *arg, char *why, size_t whysz)
{
    struct notifier *n = arg;
    if (!atomic_load(&n->running)) {
        snprintf(why, whysz, "stopping");
        return false;
    }
    if (!route_cache_ready(n->routes)) {
        snprintf(why, whysz, "directory not loaded yet");
        return false;
    }
    if (!sender_healthy(n->sender)) {
        snprintf(why, whysz, "PostgreSQL unreachable");
        return false;
    }
    return true;
}

static void pause_partition(struct notifier *n, int32_t p, bool pause)
{
    if (n->parts[p].paused == pause || !kafka_pause(n->rk, n->opt->topic, p, pause, "notifier"))
        return;
    n->parts[p].paused = pause;
    metric_gauge_add(n->m_paused, pause ? 1 : -1);
}

static void stash(struct notifier *n, int32_t p, struct job *j)
{
    struct stashed *s = malloc(sizeof *s);
    if (s == NULL) {
        /* not submitted, never done: its offset is not committed past and
         * it comes back after a restart */
        log_msg(LOG_ERROR, "notifier", "out of memory: an alert of partition %d left for later",
                (int)p);
        sender_job_free(j);
        return;
    }
    s->job = j;
    s->next = NULL;
    struct partition *pt = &n->parts[p];
    if (pt->tail)
        pt->tail->next = s;
    else
        pt->head = s;
    pt->tail = s;
    pause_partition(n, p, true);
}

static void drain_stashes(struct notifier *n)
{
    for (int32_t p = 0; p < MAX_PARTITIONS; p++) {
        struct partition *pt = &n->parts[p];
        while (pt->head != NULL) {
            if (sender_submit(n->sender, pt->head->job) != CHAN_OK)
                break;
            struct stashed *s = pt->head;
            pt->head = s->next;
            if (pt->head == NULL)
                pt->tail = NULL;
            free(s);
        }
        if (pt->paused && pt->head == NULL && pt->assigned)
            pause_partition(n, p, false);
    }
}

static void discard_stash(struct notifier *n, int32_t p)
{
    struct partition *pt = &n->parts[p];
    while (pt->head != NULL) {
        struct stashed *s = pt->head;
        pt->head = s->next;
        sender_job_free(s->job);
        free(s);
    }
    pt->tail = NULL;
}

static void commit(struct notifier *n, bool sync)
{
    kafka_commit_offsets(n->rk, n->opt->topic, n->offsets, MAX_PARTITIONS, sync, "notifier");
}

static size_t inflight_of(void *arg, int32_t p)
{
    struct notifier *n = arg;
    int v = atomic_load(&n->parts[p].inflight);
    return v > 0 ? (size_t)v : 0;
}

/* Inside the rebalance callback: give the revoked partitions' alerts a
 * bounded time to finish, commit them and forget the partitions. What is
 * still in flight continues; the new owner sees those alerts again and the
 * notification log keeps them from paging twice. */
static void revoke(struct notifier *n, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p >= 0 && p < MAX_PARTITIONS)
            discard_stash(n, p);
    }
    kafka_revoke_wait(l, MAX_PARTITIONS, inflight_of, n, REVOKE_DRAIN_MS, "notifier");
    commit(n, true);
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p < 0 || p >= MAX_PARTITIONS)
            continue;
        offsets_forget(n->offsets, p);
        atomic_store(&n->parts[p].inflight, 0);
        /* Resumed in librdkafka too: it keeps a partition's pause across
         * unassign and assign (see the worker's revoke()). */
        if (n->parts[p].paused) {
            kafka_pause(n->rk, n->opt->topic, p, false, "notifier");
            n->parts[p].paused = false;
            metric_gauge_add(n->m_paused, -1);
        }
        n->parts[p].assigned = false;
    }
}

/* Commit results, served on the poll thread: a failed position goes back
 * to the tracker to be committed again. */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
                      void *opaque)
{
    struct notifier *n = opaque;
    kafka_commit_result(err, l, n->opt->topic, n->offsets, "notifier");
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct notifier *n = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < l->cnt; i++) {
            int32_t p = l->elems[i].partition;
            if (p >= 0 && p < MAX_PARTITIONS)
                n->parts[p].assigned = true;
        }
        log_msg(LOG_INFO, "notifier", "assigned %d partitions", l->cnt);
        kafka_assign(rk, l, n->cooperative, "notifier");
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_msg(LOG_INFO, "notifier", "revoking %d partitions: draining", l->cnt);
        revoke(n, l);
        kafka_unassign(rk, l, n->cooperative);
        return;
    }
    log_msg(LOG_ERROR, "notifier", "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
}

static void on_message(struct notifier *n, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_msg(LOG_WARN, "notifier", "consumer error: %s", rd_kafka_message_errstr(m));
        return;
    }
    int32_t p = m->partition;
    if (p < 0 || p >= MAX_PARTITIONS) {
        log_msg(LOG_ERROR, "notifier", "partition %d is beyond the %d this notifier tracks",
                (int)p, MAX_PARTITIONS);
        return;
    }
    metric_add(n->m_consumed, 1);
    uint32_t epoch;
    enum offsets_status ost = offsets_track(n->offsets, p, m->offset, &epoch);
    if (ost != OFFSETS_OK) {
        log_msg(LOG_WARN, "notifier", "partition %d offset %lld not tracked (%d)", (int)p,
                (long long)m->offset, (int)ost);
        return;
    }
    atomic_fetch_add(&n->parts[p].inflight, 1);
    struct alert a;
    char err[512];
    enum codec_status st = CODEC_ETRANSIENT;
    for (int i = 0; i < DECODE_TRIES && st == CODEC_ETRANSIENT; i++) {
        if (i > 0) {
            struct timespec ts = {1, 0};
            nanosleep(&ts, NULL);
        }
        st = m->payload ? codec_decode_alert(n->codec, m->payload, m->len, &a, err, sizeof err)
                        : CODEC_ETRUNCATED;
        if (m->payload == NULL)
            snprintf(err, sizeof err, "empty message");
    }
    if (st != CODEC_OK) {
        /* Nothing can be sent from bytes that do not decode; the worker
         * produced them, so this is a bug or a foreign producer. They are
         * kept on the dead-letter topic, and the partition moves on. */
        dead_letter(n, m, epoch, codec_error_class_name(st), err);
        return;
    }
    struct job *j = sender_job_new(&a, p, m->offset, epoch);
    if (j == NULL) {
        log_msg(LOG_ERROR, "notifier", "out of memory: partition %d offset %lld left for later",
                (int)p, (long long)m->offset);
        return;
    }
    if (n->parts[p].head != NULL || sender_submit(n->sender, j) != CHAN_OK)
        stash(n, p, j);
}

static rd_kafka_t *consumer_new(struct notifier *n, char *errstr, size_t errsz)
{
    const struct notifier_options *o = n->opt;
    rd_kafka_conf_t *conf = kafka_conf_new(NULL, o->bootstrap, "vigil-notifier", errstr, errsz);
    if (conf == NULL)
        return NULL;
    if (kafka_conf_set(conf, "group.id", o->group, errstr, errsz) != 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "partition.assignment.strategy", o->assignor, errstr, errsz) != 0 ||
        kafka_conf_apply(conf, o->cfg, errstr, errsz) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_opaque(conf, n);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsz);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

int notifier_run(const struct notifier_options *opt, struct ctx *stop, atomic_bool *reload,
                 char *errstr, size_t errstr_size)
{
    int rc = -1;
    struct notifier *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    n->opt = opt;
    n->cooperative = strstr(opt->assignor, "cooperative") != NULL;
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        atomic_init(&n->parts[p].inflight, 0);
    n->metrics = metrics_new();
    n->offsets = offsets_new(MAX_PARTITIONS, INFLIGHT_PER_PARTITION);
    if (n->metrics == NULL || n->offsets == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    n->m_consumed = metrics_counter(n->metrics, "vigil_consumed_total", "Messages consumed", NULL);
    n->m_invalid = metrics_counter(n->metrics, "vigil_notifier_invalid_total",
                                   "Alert messages that could not be decoded", NULL);
    n->m_dead = metrics_counter(n->metrics, "vigil_dead_letters_total",
                                "Undecodable alerts acknowledged on the dead-letter topic", NULL);
    n->m_paused = metrics_gauge(n->metrics, "vigil_paused_partitions",
                                "Partitions paused (backpressure)", NULL);

    struct codec_config cc;
    codec_config_init(&cc);
    cc.registry_url = opt->registry_url;
    n->codec = codec_new(&cc, errstr, errstr_size);
    if (n->codec == NULL)
        goto out;
    n->routes = route_cache_new(opt->conninfo, opt->directory_refresh_s, n->metrics, errstr,
                                errstr_size);
    if (n->routes == NULL)
        goto out;
    struct sender_config sc = opt->send;
    sc.conninfo = opt->conninfo;
    n->sender = sender_new(&sc, n->routes, n->metrics, on_done, n, errstr, errstr_size);
    if (n->sender == NULL)
        goto out;
    atomic_store(&n->running, true);
    if (opt->http_addr != NULL && opt->http_addr[0] != '\0') {
        n->httpd = httpd_start(opt->http_addr, n->metrics, ready, n, errstr, errstr_size);
        if (n->httpd == NULL)
            goto out;
        log_msg(LOG_INFO, "notifier", "serving /metrics, /healthz, /readyz on port %d",
                httpd_port(n->httpd));
    }

    /* Routing needs the directory: read no alert before it is loaded. */
    deadline_t next_note = deadline_after_ms(5000);
    while (!route_cache_ready(n->routes) && !ctx_done(stop)) {
        ctx_wait(stop, deadline_after_ms(50));
        if (deadline_expired(next_note)) {
            log_msg(LOG_WARN, "notifier", "waiting for the directory (PostgreSQL)");
            next_note = deadline_after_ms(5000);
        }
    }

    if (opt->dlq_topic != NULL && opt->dlq_topic[0] != '\0') {
        const char *dlq_topics[] = {opt->dlq_topic, NULL};
        n->dlq = publisher_new(opt->cfg, opt->bootstrap, "vigil-notifier-dlq", dlq_topics,
                               n->metrics, errstr, errstr_size);
        if (n->dlq == NULL)
            goto out;
    }
    n->rk = consumer_new(n, errstr, errstr_size);
    if (n->rk == NULL)
        goto out;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, opt->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(n->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (serr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "could not subscribe to %s: %s", opt->topic,
                 rd_kafka_err2str(serr));
        goto out;
    }
    log_msg(LOG_INFO, "notifier", "joined group %s on %s (%s assignor)", opt->group, opt->topic,
            opt->assignor);

    deadline_t next_commit = deadline_after_ms(COMMIT_INTERVAL_MS);
    while (!ctx_done(stop)) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(n->rk, 50);
        if (msg != NULL) {
            on_message(n, msg);
            rd_kafka_message_destroy(msg);
        }
        drain_stashes(n);
        if (deadline_expired(next_commit)) {
            commit(n, false);
            next_commit = deadline_after_ms(COMMIT_INTERVAL_MS);
        }
        if (atomic_exchange(reload, false)) {
            log_msg(LOG_INFO, "notifier", "SIGHUP: reloading the directory");
            route_cache_poke(n->routes);
        }
    }

    log_msg(LOG_INFO, "notifier", "stopping: finishing in-flight notifications");
    atomic_store(&n->running, false);
    httpd_stop(n->httpd); /* its readiness callback reads the sender */
    n->httpd = NULL;
    for (int32_t p = 0; p < MAX_PARTITIONS; p++)
        discard_stash(n, p);
    int grace_ms = opt->grace_s * 1000;
    deadline_t deadline = deadline_after_ms(grace_ms > 4000 ? grace_ms - 3000 : grace_ms / 2);
    size_t left = sender_close(n->sender, deadline);
    n->sender = NULL;
    if (left > 0)
        log_msg(LOG_WARN, "notifier", "%zu alerts unfinished at exit: handed back, they will be "
                                      "read again",
                left);
    size_t undelivered = publisher_close(n->dlq, deadline_after_ms(3000));
    n->dlq = NULL;
    if (undelivered > 0)
        log_msg(LOG_WARN, "notifier", "%zu dead letters unacknowledged at exit: their alerts "
                                      "will be read again",
                undelivered);
    commit(n, true);
    rd_kafka_consumer_close(n->rk);
    log_msg(LOG_INFO, "notifier", "stopped: offsets committed, group left");
    rc = 0;
out:
    atomic_store(&n->running, false);
    httpd_stop(n->httpd); /* its readiness callback reads the sender */
    if (n->sender != NULL) {
        for (int32_t p = 0; p < MAX_PARTITIONS; p++)
            discard_stash(n, p);
        sender_close(n->sender, deadline_now());
    }
    if (n->rk != NULL) {
        if (rc != 0)
            rd_kafka_consumer_close(n->rk);
        rd_kafka_destroy(n->rk);
    }
    /* unacknowledged dead letters: their offsets were not finished */
    publisher_close(n->dlq, deadline_now());
    route_cache_destroy(n->routes);
    codec_destroy(n->codec);
    offsets_destroy(n->offsets);
    metrics_destroy(n->metrics);
    free(n);
    return rc;
}
