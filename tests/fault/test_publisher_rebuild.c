/*
 * test_publisher_rebuild: the producer that loses nothing (common/publish.c) against
 * the real broker, with its fatal-error rebuild forced mid-stream by
 * publisher_inject_fatal() (librdkafka 2.0.2's idempotent producer can hit
 * a fatal sequence error; the rebuild purges the old producer and produces
 * everything unacknowledged again on a new one).
 *
 * N messages are sent in two halves, each from its own thread; after each
 * half the rebuild is injected while its messages are still unacknowledged
 * (linger.ms=1000 keeps them queued in librdkafka, so the purge certainly
 * catches some). Asserted: every done callback ran exactly once (not
 * zero: an alert lost; not twice: an offset marked done twice), nothing was
 * abandoned at close, the rebuild really ran (vigil_producer_rebuilds_total),
 * and every message is on the topic (read back from the start). Copies
 * produced by both the old and the new producer are allowed by design
 * (alert ids are deterministic) and are counted and printed.
 */
#include "testlib.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "publish.h"

#define N_MSGS 20000
#define N_PARTS 3

struct slot {
    atomic_int done;
};

struct sender {
    struct publisher *pub;
    const char *topic;
    struct slot *slots;
    int from, to;
    atomic_int *sent;
    int failed;
};

static void on_done(void *arg, rd_kafka_resp_err_t err)
{
    struct slot *s = arg;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_add(&s->done, 1);
}

static void *send_range(void *arg)
{
    struct sender *s = arg;
    for (int i = s->from; i < s->to; i++) {
        char key[16], value[64];
        int kl = snprintf(key, sizeof key, "k%06d", i);
        int vl = snprintf(value, sizeof value, "alert %06d of the rebuild test", i);
        if (publisher_send(s->pub, s->topic, key, (size_t)kl, value, (size_t)vl, NULL, on_done,
                           &s->slots[i]) != 0)
            s->failed++;
        atomic_fetch_add(s->sent, 1);
    }
    return NULL;
}

static bool create_topic(const char *bootstrap, const char *topic)
{
    char errstr[512];
    bool ok = false;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, N_PARTS, 1, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(30000 * VIGIL_TIMEOUT_SCALE));
    if (ev != NULL && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        ok = n == 1 && rd_kafka_topic_result_error(res[0]) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!ok && n == 1)
            fprintf(stderr, "could not create %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(res[0]));
    }
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return ok;
}

static void delete_topic(const char *bootstrap, const char *topic)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return;
    }
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

/* Reads TOPIC from the start of every partition up to its current end and
 * counts copies per message index into COPIES. Returns messages read. */
static int read_back(const char *bootstrap, const char *topic, int *copies)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (c == NULL) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    int total = 0;
    rd_kafka_topic_t *t = rd_kafka_topic_new(c, topic, NULL);
    for (int32_t p = 0; p < N_PARTS; p++) {
        int64_t lo = 0, hi = 0;
        if (rd_kafka_query_watermark_offsets(c, topic, p, &lo, &hi, 10000) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi <= lo)
            continue;
        rd_kafka_consume_start(t, p, RD_KAFKA_OFFSET_BEGINNING);
        int64_t next = lo;
        double until = testlib_now() + 60.0 * VIGIL_TIMEOUT_SCALE;
        while (next < hi && testlib_now() < until) {
            rd_kafka_message_t *m = rd_kafka_consume(t, p, 200);
            if (m == NULL)
                continue;
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                next = m->offset + 1;
                total++;
                if (m->key_len == 7 && ((const char *)m->key)[0] == 'k') {
                    char k[8];
                    memcpy(k, m->key, 7);
                    k[7] = '\0';
                    long i = strtol(k + 1, NULL, 10);
                    if (i >= 0 && i < N_MSGS)
                        copies[i]++;
                }
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_consume_stop(t, p);
    }
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(c);
    return total;
}

struct want {
    struct metric *metric;
    double value;
};

static bool metric_reached(void *arg)
{
    struct want *w = arg;
    return metric_value(w->metric) >= w->value;
}

/* Sends one half on its own thread, then injects a fatal error while that
 * half is unacknowledged and waits for the rebuild. Returns the number of
 * messages unacknowledged at the injection. */
static size_t half_then_fatal(struct sender *s, struct metric *rebuilds, double nth)
{
    pthread_t th;
    pthread_create(&th, NULL, send_range, s);
    pthread_join(th, NULL);
    size_t pending = publisher_pending(s->pub);
    publisher_inject_fatal(s->pub);
    struct want w = {rebuilds, nth};
    CHECK(testlib_wait(metric_reached, &w, 30));
    return pending;
}

int main(void)
{
    const char *bootstrap = testlib_env("VIGIL_KAFKA_BOOTSTRAP");
    char topic[96], errstr[512];
    snprintf(topic, sizeof topic, "vigil.test.rebuild.%d.%ld", (int)getpid(),
             (long)time(NULL) % 100000);
    CHECK(create_topic(bootstrap, topic));

    static const struct config_item items[] = {{NULL, NULL, NULL, NULL, false}};
    struct config *cfg = config_new(items);
    CHECK(cfg != NULL && config_set(cfg, "kafka.linger.ms", "1000", errstr, sizeof errstr) == 0);
    struct metrics *m = metrics_new();
    /* the topic learned ahead, so each rebuilt producer learns it again */
    const char *topics[] = {topic, NULL};
    struct publisher *pub = publisher_new(cfg, bootstrap, "vigil-test-producer", topics, 0, m,
                                          errstr, sizeof errstr);
    CHECK(pub != NULL);
    struct slot *slots = calloc(N_MSGS, sizeof *slots);
    int *copies = calloc(N_MSGS, sizeof *copies);
    if (pub == NULL || slots == NULL || copies == NULL) {
        fprintf(stderr, "setup failed: %s\n", errstr);
        goto out;
    }
    struct metric *rebuilds = metrics_counter(m, "vigil_producer_rebuilds_total", "", NULL);
    struct metric *retried = metrics_counter(m, "vigil_publish_retried_total", "", NULL);
    atomic_int sent = 0;
    struct sender s[2] = {
        {pub, topic, slots, 0, N_MSGS / 2, &sent, 0},
        {pub, topic, slots, N_MSGS / 2, N_MSGS, &sent, 0},
    };
    size_t pending1 = half_then_fatal(&s[0], rebuilds, 1);
    size_t pending2 = half_then_fatal(&s[1], rebuilds, 2);
    printf("injected: 2 fatal producer errors, with %zu and %zu messages unacknowledged\n",
           pending1, pending2);
    CHECK_EQ_INT(s[0].failed + s[1].failed, 0);
    CHECK(pending1 > 0 && pending2 > 0);

    size_t abandoned =
        publisher_close(pub, deadline_after_ms((int64_t)(60000 * VIGIL_TIMEOUT_SCALE)));
    pub = NULL;
    int zero = 0, once = 0, more = 0;
    for (int i = 0; i < N_MSGS; i++) {
        int d = atomic_load(&slots[i].done);
        if (d == 0)
            zero++;
        else if (d == 1)
            once++;
        else
            more++;
    }
    printf("counted: %d done callbacks once, %d never, %d more than once; %zu abandoned; "
           "%.0f rebuilds, %.0f produce retries\n",
           once, zero, more, abandoned, metric_value(rebuilds), metric_value(retried));
    CHECK_EQ_INT(once, N_MSGS);
    CHECK_EQ_INT(abandoned, 0);
    CHECK(metric_value(rebuilds) >= 2);
    CHECK(metric_value(retried) > 0); /* the purge really hit unacknowledged messages */

    int total = read_back(bootstrap, topic, copies);
    int missing = 0, distinct = 0;
    for (int i = 0; i < N_MSGS; i++) {
        if (copies[i] == 0)
            missing++;
        else
            distinct++;
    }
    printf("counted: topic holds %d messages: %d distinct of %d sent, %d missing, "
           "%d extra copies\n",
           total, distinct, N_MSGS, missing, total - distinct);
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(distinct, N_MSGS);

out:
    publisher_close(pub, deadline_now());
    metrics_destroy(m);
    config_destroy(cfg);
    free(slots);
    free(copies);
    delete_topic(bootstrap, topic);
    return testlib_done();
}
