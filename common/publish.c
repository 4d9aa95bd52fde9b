#include "publish.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"

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
};

struct publisher {
    rd_kafka_conf_t *conf_template; /* duplicated for each (re)build */
    pthread_rwlock_t rk_lock;       /* write-held only while swapping rk */
    rd_kafka_t *rk;
    const char *topics[PUBLISH_TOPICS_MAX]; /* learned ahead by every rk */
    int ntopics;
    rd_kafka_topic_t *rkt[PUBLISH_TOPICS_MAX]; /* rk's handles on them */

    pthread_mutex_t lock; /* guards retry, closing; signals room */
    pthread_cond_t room;
    struct pub_msg *retry;
    bool closing;

    atomic_size_t pending;
    atomic_bool inject_fatal;
    atomic_int all_brokers_down;
    pthread_t thread;

    struct metric *m_acked;
    struct metric *m_retried;
    struct metric *m_rebuilds;
};

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

/* Delivery reports run on the publisher thread, inside rd_kafka_poll. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct publisher *p = opaque;
    struct pub_msg *pm = m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        pm->done(pm->arg);
        pub_msg_free(pm);
        metric_add(p->m_acked, 1);
        atomic_store(&p->all_brokers_down, 0);
        atomic_fetch_sub(&p->pending, 1);
        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->room);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    /* Purged by a rebuild, timed out, or refused: not acknowledged, so it
     * goes round again. Nothing is dropped. */
    if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        log_msg(LOG_WARN, "publish", "delivery to %s failed, will retry: %s", pm->topic,
                rd_kafka_err2str(m->err));
    metric_add(p->m_retried, 1);
    push_retry(p, pm);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct publisher *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)
        atomic_store(&p->all_brokers_down, 1);
    log_msg(LOG_WARN, "publish", "producer error: %s: %s", rd_kafka_err2name(err), reason);
}

/* Learns the partitions and leaders of P's topics on RK, keeping a handle
 * on each in RKT (the handle is what the answer is stored on). */
static void learn_topics(struct publisher *p, rd_kafka_t *rk, rd_kafka_topic_t **rkt)
{
    for (int i = 0; i < p->ntopics; i++) {
        rkt[i] = rd_kafka_topic_new(rk, p->topics[i], NULL);
        if (rkt[i] == NULL)
            continue;
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt[i], &md, 5000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_msg(LOG_WARN, "publish", "could not learn the partitions of %s yet: %s",
                    p->topics[i], rd_kafka_err2str(err));
        if (md != NULL)
            rd_kafka_metadata_destroy(md);
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

static rd_kafka_t *build(struct publisher *p, rd_kafka_topic_t **rkt, char *errstr,
                         size_t errsz)
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
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p->rk, RD_KAFKA_V_TOPIC(pm->topic), RD_KAFKA_V_KEY(pm->key, pm->klen),
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

    rd_kafka_purge(old, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    deadline_t until = deadline_after_ms(10000);
    while (rd_kafka_outq_len(old) > 0 && !deadline_expired(until))
        rd_kafka_poll(old, 50);
    forget_topics(p, old_rkt);
    rd_kafka_destroy(old);
    metric_add(p->m_rebuilds, 1);
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
            p->retry = list; /* publisher_close frees them */
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
        while (fwd != NULL) {
            struct pub_msg *n = fwd->next;
            if (produce(p, fwd) != RD_KAFKA_RESP_ERR_NO_ERROR) {
                /* Queue full or producer failing: keep the rest for later. */
                while (fwd != NULL) {
                    n = fwd->next;
                    push_retry(p, fwd);
                    fwd = n;
                }
                break;
            }
            fwd = n;
        }
    }
    return NULL;
}

struct publisher *publisher_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, const char *const *topics,
                                struct metrics *m, char *errstr, size_t errstr_size)
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
        if (kafka_conf_set(p->conf_template, defaults[i][0], defaults[i][1], errstr,
                           errstr_size) != 0)
            goto err;
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

int publisher_send(struct publisher *p, const char *topic, const void *key, size_t klen,
                   const void *value, size_t vlen, rd_kafka_headers_t *headers,
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
    memcpy(pm->key, key, klen);
    memcpy(pm->value, value, vlen);
    pm->headers = headers;
    headers = NULL;
    pm->done = done;
    pm->arg = arg;

    atomic_fetch_add(&p->pending, 1);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        bool closing = p->closing;
        pthread_mutex_unlock(&p->lock);
        if (closing) {
            atomic_fetch_sub(&p->pending, 1);
            goto fail;
        }
        rd_kafka_resp_err_t err = produce(p, pm);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Fatal or refused: the publisher thread retries (and rebuilds). */
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
     * through on_delivery onto the retry list and are freed below; their
     * done callbacks never run, so their offsets are never committed and a
     * later run redoes them. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    deadline_t until = deadline_after_ms(2000);
    while (rd_kafka_outq_len(p->rk) > 0 && !deadline_expired(until))
        rd_kafka_poll(p->rk, 20);
    rd_kafka_poll(p->rk, 0);
    size_t abandoned = atomic_load(&p->pending);
    struct pub_msg *pm = p->retry;
    while (pm != NULL) {
        struct pub_msg *n = pm->next;
        pub_msg_free(pm);
        pm = n;
    }
    forget_topics(p, p->rkt);
    rd_kafka_destroy(p->rk);
    rd_kafka_conf_destroy(p->conf_template);
    pthread_rwlock_destroy(&p->rk_lock);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->room);
    free(p);
    return abandoned;
}
