#include "publish.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"

/* A message refused for good and retried anyway (publisher_send) waits
 * this long before its first retry, doubling up to the maximum. */
#define REFUSED_BACKOFF_MS     500
#define REFUSED_BACKOFF_MAX_MS 10000

struct pub_msg {
    struct pub_msg *next;
    const char *topic;
    void *key;
    size_t klen;
    void *value;
    size_t vlen;
    rd_kafka_headers_t *headers; /* our copy; each produce gets a copy of it */
    publish_done_fn done;
    void *arg;
    bool or_fail;             /* publisher_send_or_fail: report permanent errors */
    int fatal_purges;         /* rebuilds in a row that purged it */
    int refusals;             /* permanent errors so far (publisher_send's backoff) */
    rd_kafka_resp_err_t last; /* the last permanent error */
    deadline_t not_before;    /* no retry before (0: at once) */
};

struct publisher {
    rd_kafka_conf_t *conf_template; /* duplicated for each (re)build */
    pthread_rwlock_t rk_lock;       /* write-held only while swapping rk */
    rd_kafka_t *rk;
    const char *topics[PUBLISH_TOPICS_MAX]; /* learned ahead by every rk */
    int ntopics;
    rd_kafka_topic_t *rkt[PUBLISH_TOPICS_MAX]; /* rk's handles on them */

    pthread_mutex_t lock; /* guards retry, closing, cancelled; signals room */
    pthread_cond_t room;
    struct pub_msg *retry;
    bool closing;
    bool cancelled;

    atomic_size_t pending;
    atomic_bool inject_fatal;
    atomic_int all_brokers_down;
    bool rebuilding;         /* publisher thread only: purges now come from a rebuild */
    deadline_t next_relearn; /* publisher thread only: relearn() at most once a second */
    pthread_t thread;

    struct metric *m_acked;
    struct metric *m_retried;
    struct metric *m_refused;
    struct metric *m_rebuilds;
};

bool publish_error_permanent(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: /* producer or topic limit */
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION: /* invalid topic name */
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC: /* absent after the propagation wait */
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return true;
    default:
        /* Timeouts, transport, leadership, replicas, a full queue, purges
         * and fatal errors (a rebuild clears them) all pass. Unknown codes
         * are treated as passing: retrying is the safe side for alerts,
         * and a dead letter that never passes is still visible (stall). */
        return false;
    }
}

static void pub_msg_free(struct pub_msg *pm)
{
    if (pm == NULL)
        return;
    free(pm->key);
    free(pm->value);
    if (pm->headers != NULL)
        rd_kafka_headers_destroy(pm->headers);
    free(pm);
}

static void push_retry(struct publisher *p, struct pub_msg *pm)
{
    pthread_mutex_lock(&p->lock);
    pm->next = p->retry;
    p->retry = pm;
    pthread_mutex_unlock(&p->lock);
}

/* PM is over (acknowledged, refused for good, or abandoned): tell its
 * owner, free it, make room. No lock is held while DONE runs. */
static void finish(struct publisher *p, struct pub_msg *pm, rd_kafka_resp_err_t err)
{
    pm->done(pm->arg, err);
    pub_msg_free(pm);
    atomic_fetch_sub(&p->pending, 1);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->lock);
}

/* PM met ERR, which will not pass: refused for the caller of
 * publisher_send_or_fail; otherwise retried after a growing backoff, the
 * error logged each time (it needs an operator). */
static void refused(struct publisher *p, struct pub_msg *pm, rd_kafka_resp_err_t err)
{
    metric_add(p->m_refused, 1);
    if (pm->or_fail) {
        log_msg(LOG_WARN, "publish", "%s refused a message of %zu bytes: %s", pm->topic, pm->vlen,
                rd_kafka_err2str(err));
        finish(p, pm, err);
        return;
    }
    int64_t backoff = REFUSED_BACKOFF_MS;
    for (int i = 0; i < pm->refusals && backoff < REFUSED_BACKOFF_MAX_MS; i++)
        backoff *= 2;
    if (backoff > REFUSED_BACKOFF_MAX_MS)
        backoff = REFUSED_BACKOFF_MAX_MS;
    pm->refusals++;
    pm->last = err;
    pm->not_before = deadline_after_ms(backoff);
    log_msg(LOG_ERROR, "publish",
            "%s refused a message of %zu bytes (%s); it must not be dropped: retrying in "
            "%lld ms (attempt %d)",
            pm->topic, pm->vlen, rd_kafka_err2str(err), (long long)backoff, pm->refusals);
    push_retry(p, pm);
}

/* Delivery reports run on the publisher thread, inside rd_kafka_poll. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct publisher *p = opaque;
    struct pub_msg *pm = m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        metric_add(p->m_acked, 1);
        atomic_store(&p->all_brokers_down, 0);
        finish(p, pm, RD_KAFKA_RESP_ERR_NO_ERROR);
        return;
    }
    if (publish_error_permanent(m->err)) {
        refused(p, pm, m->err);
        return;
    }
    bool purged =
        m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
    if (purged && p->rebuilding && pm->or_fail && ++pm->fatal_purges >= PUBLISH_FATAL_REBUILDS) {
        /* The same fatal error on every producer it met: not a passing
         * desync. */
        metric_add(p->m_refused, 1);
        log_msg(LOG_WARN, "publish", "%s: a message was caught by %d fatal producer errors",
                pm->topic, pm->fatal_purges);
        finish(p, pm, RD_KAFKA_RESP_ERR__FATAL);
        return;
    }
    /* Purged by a rebuild or at close, timed out, or refused for now: not
     * acknowledged, so it goes round again. Nothing is dropped. */
    if (!purged)
        log_msg(LOG_WARN, "publish", "delivery to %s failed, will retry: %s", pm->topic,
                rd_kafka_err2str(m->err));
    metric_add(p->m_retried, 1);
    push_retry(p, pm);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)rk;
    struct publisher *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&p->all_brokers_down, 1);
    log_msg(LOG_WARN, "publish", "producer error: %s: %s", rd_kafka_err2name(err), reason);
}

/* Asks RK for TOPIC's partitions and leaders through the handle RKT (the
 * answer is stored on it), waiting at most TIMEOUT_MS. */
static void learn_topic(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const char *topic, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_msg(LOG_WARN, "publish", "could not learn the partitions of %s yet: %s", topic,
                rd_kafka_err2str(err));
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
}

/* Learns the partitions and leaders of P's topics on RK, keeping a handle
 * on each in RKT. */
static void learn_topics(struct publisher *p, rd_kafka_t *rk, rd_kafka_topic_t **rkt)
{
    for (int i = 0; i < p->ntopics; i++) {
        rkt[i] = rd_kafka_topic_new(rk, p->topics[i], NULL);
        if (rkt[i] != NULL)
            learn_topic(rk, rkt[i], p->topics[i], 5000);
    }
}

static void forget_topics(struct publisher *p, rd_kafka_topic_t **rkt)
{
    for (int i = 0; i < p->ntopics; i++) {
        if (rkt[i] != NULL)
            rd_kafka_topic_destroy(rkt[i]);
        rkt[i] = NULL;
    }
}

static rd_kafka_t *build(struct publisher *p, rd_kafka_topic_t **rkt, char *errstr, size_t errsz)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf_template);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errsz);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    learn_topics(p, rk, rkt);
    return rk;
}

/* Produces PM on the current producer. Returns 0 if queued, else the
 * librdkafka error (PM still ours). */
static rd_kafka_resp_err_t produce(struct publisher *p, struct pub_msg *pm)
{
    rd_kafka_headers_t *h = pm->headers ? rd_kafka_headers_copy(pm->headers) : NULL;
    pthread_rwlock_rdlock(&p->rk_lock);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(pm->topic), RD_KAFKA_V_KEY(pm->key, pm->klen),
                          RD_KAFKA_V_VALUE(pm->value, pm->vlen), RD_KAFKA_V_OPAQUE(pm),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    pthread_rwlock_unlock(&p->rk_lock);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && h != NULL)
        rd_kafka_headers_destroy(h);
    return err;
}

/* Replaces the producer after a fatal error. Everything the old one held is
 * purged and comes back through on_delivery onto the retry list. */
static void rebuild(struct publisher *p)
{
    char errstr[512];
    char reason[512] = "injected";
    rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(p->rk, reason, sizeof reason);
    log_msg(LOG_ERROR, "publish", "fatal producer error (%s: %s): rebuilding the producer",
            rd_kafka_err2name(ferr), reason);
    rd_kafka_topic_t *fresh_rkt[PUBLISH_TOPICS_MAX] = {NULL};
    rd_kafka_t *fresh = build(p, fresh_rkt, errstr, sizeof errstr);
    if (fresh == NULL) {
        log_msg(LOG_ERROR, "publish", "could not rebuild the producer: %s", errstr);
        return; /* try again on the next turn */
    }
    rd_kafka_topic_t *old_rkt[PUBLISH_TOPICS_MAX];
    pthread_rwlock_wrlock(&p->rk_lock);
    rd_kafka_t *old = p->rk;
    p->rk = fresh;
    memcpy(old_rkt, p->rkt, sizeof old_rkt);
    memcpy(p->rkt, fresh_rkt, sizeof p->rkt);
    pthread_rwlock_unlock(&p->rk_lock);

    p->rebuilding = true;
    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    deadline_t until = deadline_after_ms(10000);
    while (rd_kafka_outq_len(old) > 0 && !deadline_expired(until))
        rd_kafka_poll(old, 50);
    p->rebuilding = false;
    forget_topics(p, old_rkt);
    rd_kafka_destroy(old);
    metric_add(p->m_rebuilds, 1);
}

/* A message refused because its topic did not exist (or was not
 * authorised) waits for an operator to create it (or grant it): librdkafka
 * believes the old answer until its next metadata refresh (minutes), so
 * ask for TOPIC now (on the publisher thread, briefly, once per turn). */
static void relearn(struct publisher *p, const char *topic)
{
    pthread_rwlock_rdlock(&p->rk_lock);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (rkt != NULL) {
        learn_topic(p->rk, rkt, topic, 2000);
        rd_kafka_topic_destroy(rkt);
    }
    pthread_rwlock_unlock(&p->rk_lock);
}

/* Pushes LIST (in send order) back for the next turn. */
static void push_rest(struct publisher *p, struct pub_msg *list)
{
    while (list != NULL) {
        struct pub_msg *n = list->next;
        push_retry(p, list);
        list = n;
    }
}

static void *run(void *arg)
{
    struct publisher *p = arg;
    for (;;) {
        rd_kafka_poll(p->rk, 50); /* only this thread swaps rk */
        if (atomic_exchange(&p->inject_fatal, false) ||
            rd_kafka_fatal_error(p->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
            rebuild(p);

        pthread_mutex_lock(&p->lock);
        struct pub_msg *list = p->retry;
        p->retry = NULL;
        if (p->closing) {
            p->retry = list; /* publisher_close abandons them */
            pthread_mutex_unlock(&p->lock);
            break;
        }
        pthread_mutex_unlock(&p->lock);
        /* The list is newest-first; reverse so retries keep their order. */
        struct pub_msg *fwd = NULL;
        while (list != NULL) {
            struct pub_msg *n = list->next;
            list->next = fwd;
            fwd = list;
            list = n;
        }
        bool relearned = false;
        while (fwd != NULL) {
            struct pub_msg *n = fwd->next;
            if (fwd->not_before != 0 && !deadline_expired(fwd->not_before)) {
                push_retry(p, fwd); /* backing off */
                fwd = n;
                continue;
            }
            if ((fwd->last == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                 fwd->last == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) &&
                !relearned && deadline_expired(p->next_relearn)) {
                relearn(p, fwd->topic);
                relearned = true;
                p->next_relearn = deadline_after_ms(1000);
            }
            rd_kafka_resp_err_t err = produce(p, fwd);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                fwd = n;
                continue;
            }
            if (publish_error_permanent(err)) {
                fwd->next = NULL;
                refused(p, fwd, err);
                fwd = n;
                continue;
            }
            /* Queue full or producer failing: keep the rest for later. */
            push_rest(p, fwd);
            break;
        }
    }
    return NULL;
}

struct publisher *publisher_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, const char *const *topics,
                                size_t message_max, struct metrics *m, char *errstr,
                                size_t errstr_size)
{
    struct publisher *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    for (int i = 0; topics != NULL && topics[i] != NULL && i < PUBLISH_TOPICS_MAX; i++)
        if (topics[i][0] != '\0')
            p->topics[p->ntopics++] = topics[i];
    pthread_rwlock_init(&p->rk_lock, NULL);
    pthread_mutex_init(&p->lock, NULL);
    deadline_cond_init(&p->room);
    p->conf_template = kafka_conf_new(NULL, bootstrap, client_id, errstr, errstr_size);
    if (p->conf_template == NULL)
        goto err;
    /* Defaults first so operators' kafka.* properties override them. Retrying
     * forever (message.timeout.ms=0) is right here: an alert must not be
     * dropped because the broker was away for a while. */
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"}, {"acks", "all"},
        {"message.timeout.ms", "0"},    {"linger.ms", "5"},
        {"compression.type", "lz4"},    {"queue.buffering.max.messages", "100000"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (kafka_conf_set(p->conf_template, defaults[i][0], defaults[i][1], errstr, errstr_size) !=
            0)
            goto err;
    if (message_max > 0) {
        char v[32];
        snprintf(v, sizeof v, "%zu", message_max);
        if (kafka_conf_set(p->conf_template, "message.max.bytes", v, errstr, errstr_size) != 0)
            goto err;
    }
    if (kafka_conf_apply(p->conf_template, cfg, errstr, errstr_size) != 0)
        goto err;
    rd_kafka_conf_set_dr_msg_cb(p->conf_template, on_delivery);
    rd_kafka_conf_set_error_cb(p->conf_template, on_error);
    p->rk = build(p, p->rkt, errstr, errstr_size);
    if (p->rk == NULL)
        goto err;
    p->m_acked = metrics_counter(m, "vigil_publish_acked_total",
                                 "Messages acknowledged by Kafka (alerts and dead letters)", NULL);
    p->m_retried = metrics_counter(m, "vigil_publish_retried_total",
                                   "Produce attempts that failed and were retried", NULL);
    p->m_refused = metrics_counter(m, "vigil_publish_refused_total",
                                   "Produce attempts refused for good (too large, topic "
                                   "missing, not authorised)",
                                   NULL);
    p->m_rebuilds = metrics_counter(m, "vigil_producer_rebuilds_total",
                                    "Producers rebuilt after a fatal idempotence error", NULL);
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        snprintf(errstr, errstr_size, "could not start the producer thread");
        goto err;
    }
    return p;
err:
    forget_topics(p, p->rkt);
    if (p->rk != NULL)
        rd_kafka_destroy(p->rk);
    if (p->conf_template != NULL)
        rd_kafka_conf_destroy(p->conf_template);
    pthread_rwlock_destroy(&p->rk_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->room);
    free(p);
    return NULL;
}

static int send_msg(struct publisher *p, const char *topic, const void *key, size_t klen,
                    const void *value, size_t vlen, rd_kafka_headers_t *headers, bool or_fail,
                    publish_done_fn done, void *arg)
{
    struct pub_msg *pm = calloc(1, sizeof *pm);
    if (pm == NULL)
        goto fail;
    pm->topic = topic;
    pm->klen = klen;
    pm->vlen = vlen;
    pm->key = malloc(klen ? klen : 1);
    pm->value = malloc(vlen ? vlen : 1);
    if (pm->key == NULL || pm->value == NULL)
        goto fail;
    if (klen > 0)
        memcpy(pm->key, key, klen);
    if (vlen > 0)
        memcpy(pm->value, value, vlen);
    pm->headers = headers;
    headers = NULL;
    pm->done = done;
    pm->arg = arg;
    pm->or_fail = or_fail;

    /* On the publisher's own thread (a DONE callback sending a follow-up)
     * nothing may wait for room: only this thread makes it. The retry list
     * takes the message on the next turn. */
    bool own_thread = pthread_equal(pthread_self(), p->thread);
    atomic_fetch_add(&p->pending, 1);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool refuse = p->closing || p->cancelled;
        pthread_mutex_unlock(&p->lock);
        if (refuse) {
            atomic_fetch_sub(&p->pending, 1);
            goto fail;
        }
        if (own_thread) {
            push_retry(p, pm);
            return 0;
        }
        rd_kafka_resp_err_t err = produce(p, pm);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Fatal or refused: the publisher thread retries (and rebuilds),
             * or reports it; either way on its own thread. */
            push_retry(p, pm);
            return 0;
        }
        /* Backpressure: wait until a delivery makes room. */
        pthread_mutex_lock(&p->lock);
        deadline_cond_wait(&p->room, &p->lock, deadline_after_ms(100));
        pthread_mutex_unlock(&p->lock);
    }
fail:
    if (headers != NULL)
        rd_kafka_headers_destroy(headers);
    pub_msg_free(pm);
    return -1;
}

int publisher_send(struct publisher *p, const char *topic, const void *key, size_t klen,
                   const void *value, size_t vlen, rd_kafka_headers_t *headers,
                   publish_done_fn done, void *arg)
{
    return send_msg(p, topic, key, klen, value, vlen, headers, false, done, arg);
}

int publisher_send_or_fail(struct publisher *p, const char *topic, const void *key, size_t klen,
                           const void *value, size_t vlen, rd_kafka_headers_t *headers,
                           publish_done_fn done, void *arg)
{
    return send_msg(p, topic, key, klen, value, vlen, headers, true, done, arg);
}

size_t publisher_pending(struct publisher *p)
{
    return atomic_load(&p->pending);
}

int publisher_healthy(struct publisher *p)
{
    return atomic_load(&p->all_brokers_down) ? 0 : 1;
}

void publisher_inject_fatal(struct publisher *p)
{
    atomic_store(&p->inject_fatal, true);
}

void publisher_cancel(struct publisher *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->cancelled = true;
    pthread_cond_broadcast(&p->room);
    pthread_mutex_unlock(&p->lock);
}

size_t publisher_close(struct publisher *p, deadline_t deadline)
{
    if (p == NULL)
        return 0;
    /* Let the thread deliver what it can until the deadline. */
    while (atomic_load(&p->pending) > 0 && !deadline_expired(deadline)) {
        pthread_mutex_lock(&p->lock);
        deadline_cond_wait(&p->room, &p->lock, deadline_min(deadline, deadline_after_ms(100)));
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&p->lock);
    p->closing = true;
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);

    /* Out of time for whatever is left: purge it. Purged messages come back
     * through on_delivery onto the retry list; each is then abandoned
     * (DONE with __DESTROY): its offset is never committed, so a later run
     * redoes it. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    deadline_t until = deadline_after_ms(2000);
    while (rd_kafka_outq_len(p->rk) > 0 && !deadline_expired(until))
        rd_kafka_poll(p->rk, 20);
    rd_kafka_poll(p->rk, 0);
    size_t abandoned = 0;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct pub_msg *pm = p->retry;
        p->retry = NULL;
        pthread_mutex_unlock(&p->lock);
        if (pm == NULL)
            break;
        while (pm != NULL) {
            struct pub_msg *n = pm->next;
            finish(p, pm, RD_KAFKA_RESP_ERR__DESTROY);
            abandoned++;
            pm = n;
        }
    }
    size_t lost = atomic_load(&p->pending);
    if (lost > 0)
        log_msg(LOG_ERROR, "publish",
                "%zu messages still inside the producer after the purge: their owners are "
                "never told",
                lost);
    forget_topics(p, p->rkt);
    rd_kafka_destroy(p->rk);
    rd_kafka_conf_destroy(p->conf_template);
    pthread_rwlock_destroy(&p->rk_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->room);
    free(p);
    return abandoned + lost;
}
