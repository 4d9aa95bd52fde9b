/*
 * test_deadletter: the publisher's failure classes and the dead-letter
 * steps (common/publish.c, common/deadletter.c, common/kafka.c's headers)
 * on librdkafka's mock cluster, whose Produce answers can be made to fail
 * on demand (no services needed):
 *
 *   - SHA-256 test vectors; which errors are permanent;
 *   - a truncated dead letter's headers keep the small original headers (a
 *     trace id) and drop, counted, those beyond its budget;
 *   - a message larger than the producer's message.max.bytes is refused
 *     (publisher_send_or_fail) instead of retried for ever;
 *   - an alert refused for good (publisher_send) is retried until taken;
 *   - a dead letter the topic refuses whole (MESSAGE_TOO_LARGE) arrives
 *     truncated to its first K bytes with size, SHA-256 and the refusal;
 *   - one refused whole and truncated (not authorised) under stall is
 *     retried until the topic takes it, then reported TRUNCATED;
 *   - publisher_close reports what it abandons (DONE with __DESTROY).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadletter.h"
#include "kafka.h"
#include "metrics.h"
#include "publish.h"
#include "testlib.h"

#define K 1024

static const char *bootstraps;
static rd_kafka_t *reader; /* outlives every message it read */

struct outcome {
    atomic_int n;
    atomic_int last; /* rd_kafka_resp_err_t or deadletter_outcome */
};

static void on_publish(void *arg, rd_kafka_resp_err_t err)
{
    struct outcome *o = arg;
    atomic_store(&o->last, (int)err);
    atomic_fetch_add(&o->n, 1);
}

static void on_letter(void *arg, enum deadletter_outcome out)
{
    struct outcome *o = arg;
    atomic_store(&o->last, (int)out);
    atomic_fetch_add(&o->n, 1);
}

static bool reported(void *arg)
{
    return atomic_load(&((struct outcome *)arg)->n) > 0;
}

static rd_kafka_t *client(rd_kafka_type_t type)
{
    char err[512];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    rd_kafka_conf_set(c, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(c, "log_level", "3", err, sizeof err);
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(c, "message.max.bytes", "2000000", err, sizeof err);
    }
    rd_kafka_t *rk = rd_kafka_new(type, c, err, sizeof err);
    if (rk == NULL)
        fprintf(stderr, "could not create a client: %s\n", err);
    return rk;
}

/* Reads message OFFSET of TOPIC [0] (the caller destroys it), or NULL.
 * The simple consumer: no group to join or leave on the mock cluster. */
static rd_kafka_message_t *read_at(const char *topic, int64_t offset)
{
    if (reader == NULL)
        reader = client(RD_KAFKA_CONSUMER);
    if (reader == NULL)
        return NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(reader, topic, NULL);
    rd_kafka_message_t *m = NULL;
    if (rd_kafka_consume_start(rkt, 0, offset) == 0) {
        double end = testlib_now() + 10 * VIGIL_TIMEOUT_SCALE;
        while (m == NULL && testlib_now() < end) {
            m = rd_kafka_consume(rkt, 0, 100);
            if (m != NULL && m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_message_destroy(m);
                m = NULL;
            }
        }
        rd_kafka_consume_stop(rkt, 0);
    }
    rd_kafka_topic_destroy(rkt);
    return m;
}

static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t bufsz)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers((rd_kafka_message_t *)m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    snprintf(buf, bufsz, "%.*s", (int)n, (const char *)v);
    return buf;
}

static void test_pure(void)
{
    char hex[65];
    kafka_sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    kafka_sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(publish_error_permanent(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
    CHECK(publish_error_permanent(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
    CHECK(publish_error_permanent(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
    CHECK(publish_error_permanent(RD_KAFKA_RESP_ERR_POLICY_VIOLATION));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR__TRANSPORT));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR__QUEUE_FULL));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR__FATAL));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR__PURGE_QUEUE));
    CHECK(!publish_error_permanent(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    enum deadletter_policy p;
    CHECK(deadletter_policy_parse("skip", &p) == 0 && p == DEADLETTER_SKIP);
    CHECK(deadletter_policy_parse("stall", &p) == 0 && p == DEADLETTER_STALL);
    CHECK(deadletter_policy_parse("drop", &p) != 0);
}

static void test_headers(const rd_kafka_message_t *m, const char *sha)
{
    struct kafka_dead_letter facts = {"src", "corrupt", "not avro", sha, false, NULL, K};
    rd_kafka_headers_t *whole = kafka_dead_letter_headers(m, &facts);
    facts.truncated = true;
    facts.publish_error = "Broker: Message size too large";
    rd_kafka_headers_t *cut = kafka_dead_letter_headers(m, &facts);
    const void *v;
    size_t n;
    CHECK(rd_kafka_header_get_last(whole, "bulk", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          n == 4 * K);
    CHECK(rd_kafka_header_get_last(whole, "vigil.truncated", &v, &n) == RD_KAFKA_RESP_ERR__NOENT);
    CHECK(rd_kafka_header_get_last(cut, "trace-id", &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          n == 3 && memcmp(v, "t-1", 3) == 0);
    CHECK(rd_kafka_header_get_last(cut, "bulk", &v, &n) == RD_KAFKA_RESP_ERR__NOENT);
    CHECK(rd_kafka_header_get_last(cut, "vigil.headers.dropped", &v, &n) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          n == 1 && memcmp(v, "1", 1) == 0);
    CHECK(rd_kafka_header_get_last(cut, "vigil.original.sha256", &v, &n) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          n == 64 && memcmp(v, sha, 64) == 0);
    rd_kafka_headers_destroy(whole);
    rd_kafka_headers_destroy(cut);
}

int main(void)
{
    char err[512];
    test_pure();

    rd_kafka_conf_t *oc = rd_kafka_conf_new();
    rd_kafka_conf_set(oc, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, oc, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = owner ? rd_kafka_mock_cluster_new(owner, 1) : NULL;
    CHECK(mc != NULL);
    if (mc == NULL)
        return testlib_done();
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, "src", 1, 1), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, "dlq", 1, 1), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, "alerts", 1, 1), 0);

    /* The poison record: 3 K + 300 bytes, a trace id and a 4 K header. */
    static char value[3 * K + 300], bulk[4 * K];
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (char)(i * 7 + 3);
    memset(bulk, 'b', sizeof bulk);
    rd_kafka_t *prod = client(RD_KAFKA_PRODUCER);
    rd_kafka_headers_t *hs = rd_kafka_headers_new(2);
    rd_kafka_header_add(hs, "trace-id", -1, "t-1", 3);
    rd_kafka_header_add(hs, "bulk", -1, bulk, sizeof bulk);
    CHECK_EQ_INT(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC("src"), RD_KAFKA_V_KEY("k1", 2),
                                   RD_KAFKA_V_VALUE(value, sizeof value), RD_KAFKA_V_HEADERS(hs),
                                   RD_KAFKA_V_END),
                 0);
    CHECK_EQ_INT(rd_kafka_flush(prod, 10000), 0);
    rd_kafka_message_t *poison = read_at("src", 0);
    CHECK(poison != NULL && poison->len == sizeof value);
    if (poison == NULL)
        goto out;
    char sha[65], buf[256];
    kafka_sha256_hex(value, sizeof value, sha);
    test_headers(poison, sha);

    static const struct config_item none[] = {{NULL, NULL, NULL, NULL, false}};
    struct config *cfg = config_new(none);
    CHECK(cfg != NULL && config_set(cfg, "kafka.log_level", "3", err, sizeof err) == 0);
    struct metrics *m = metrics_new();
    const char *topics[] = {"dlq", "alerts", NULL};

    /* Larger than the producer's message.max.bytes: reported, not retried. */
    struct publisher *small =
        publisher_new(cfg, bootstraps, "t-small", topics, 2000, m, err, sizeof err);
    CHECK(small != NULL);
    struct outcome o1 = {0};
    CHECK_EQ_INT(
        publisher_send_or_fail(small, "dlq", "k", 1, value, sizeof value, NULL, on_publish, &o1),
        0);
    CHECK(testlib_wait(reported, &o1, 10));
    CHECK_EQ_INT(atomic_load(&o1.last), RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    CHECK_EQ_INT(publisher_close(small, deadline_after_ms(5000)), 0);

    struct publisher *pub = publisher_new(cfg, bootstraps, "t-pub", topics, 0, m, err, sizeof err);
    CHECK(pub != NULL);
    if (pub == NULL)
        goto out;

    /* An alert refused for good once is retried, not dropped. */
    struct outcome o2 = {0};
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_POLICY_VIOLATION);
    CHECK_EQ_INT(publisher_send(pub, "alerts", "k", 1, "alert", 5, NULL, on_publish, &o2), 0);
    CHECK(testlib_wait(reported, &o2, 20));
    CHECK_EQ_INT(atomic_load(&o2.last), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_message_t *alert = read_at("alerts", 0);
    CHECK(alert != NULL && alert->len == 5 && memcmp(alert->payload, "alert", 5) == 0);
    if (alert != NULL)
        rd_kafka_message_destroy(alert);

    /* Refused whole (the topic's size limit): truncated to K bytes. */
    struct deadletter_config dc = {.topic = "dlq",
                                   .source_topic = "src",
                                   .group = "g",
                                   .component = "test",
                                   .truncate_bytes = K,
                                   .policy = DEADLETTER_STALL};
    struct deadletter *dl = deadletter_new(&dc, pub, m, err, sizeof err);
    CHECK(dl != NULL);
    struct outcome o3 = {0};
    rd_kafka_mock_push_request_errors(mc, 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    CHECK_EQ_INT(deadletter_send(dl, poison, "corrupt", "not avro", on_letter, &o3), 0);
    CHECK(testlib_wait(reported, &o3, 20));
    CHECK_EQ_INT(atomic_load(&o3.last), DEADLETTER_TRUNCATED);
    rd_kafka_message_t *got = read_at("dlq", 0);
    CHECK(got != NULL && got->len == K && memcmp(got->payload, value, K) == 0);
    if (got != NULL) {
        CHECK_EQ_STR(header(got, "vigil.truncated", buf, sizeof buf), "true");
        CHECK_EQ_STR(header(got, "vigil.original.sha256", buf, sizeof buf), sha);
        CHECK_EQ_STR(header(got, "vigil.original.size", buf, sizeof buf), "3372");
        CHECK_EQ_STR(header(got, "vigil.source.offset", buf, sizeof buf), "0");
        CHECK_EQ_STR(header(got, "trace-id", buf, sizeof buf), "t-1");
        CHECK(header(got, "vigil.publish.error", buf, sizeof buf) != NULL &&
              strstr(buf, "too large") != NULL);
        rd_kafka_message_destroy(got);
    }

    /* Refused whole and truncated, then twice more (not authorised):
     * under stall it is retried until the topic takes it. */
    struct outcome o4 = {0};
    rd_kafka_mock_push_request_errors(
        mc, 0 /* Produce */, 4, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    CHECK_EQ_INT(deadletter_send(dl, poison, "corrupt", "not avro", on_letter, &o4), 0);
    CHECK(testlib_wait(reported, &o4, 30));
    CHECK_EQ_INT(atomic_load(&o4.last), DEADLETTER_TRUNCATED);
    CHECK(metric_value(metrics_gauge(m, "vigil_dead_letters_stalled", "", NULL)) == 0);
    CHECK(metric_value(metrics_counter(m, "vigil_dead_letters_truncated_total", "", NULL)) == 2);

    /* Still refused at close: reported abandoned, not leaked. */
    struct outcome o5 = {0};
    rd_kafka_resp_err_t refusals[20];
    for (int i = 0; i < 20; i++)
        refusals[i] = RD_KAFKA_RESP_ERR_POLICY_VIOLATION;
    rd_kafka_mock_push_request_errors_array(mc, 0 /* Produce */, 20, refusals);
    CHECK_EQ_INT(publisher_send(pub, "alerts", "k", 1, "late", 4, NULL, on_publish, &o5), 0);
    CHECK_EQ_INT(publisher_close(pub, deadline_after_ms(1500)), 1);
    CHECK_EQ_INT(atomic_load(&o5.n), 1);
    CHECK_EQ_INT(atomic_load(&o5.last), RD_KAFKA_RESP_ERR__DESTROY);
    deadletter_close(dl, deadline_now());
    metrics_destroy(m);
    config_destroy(cfg);
    rd_kafka_message_destroy(poison);
out:
    if (reader != NULL)
        rd_kafka_destroy(reader);
    if (prod != NULL)
        rd_kafka_destroy(prod);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
    return testlib_done();
}
