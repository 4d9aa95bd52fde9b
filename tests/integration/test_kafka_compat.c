/*
 * test_kafka_compat: Debian's librdkafka 2.0.2 against the Kafka 4.1 broker
 * that scripts/services starts (VIGIL_KAFKA_BOOTSTRAP).
 *
 * Kafka 4.0 dropped many old protocol versions (KIP-896), and librdkafka
 * 2.0.2 predates it, so every feature vigil leans on is exercised once here:
 *
 *   1. admin API: create a private topic vigil.test.compat.<pid>, 4 partitions
 *   2. two idempotent producers, one lz4 and one zstd, 1,000 messages each;
 *      every delivery report must succeed
 *   3. two consumers in one group (range assignor, eager), one thread each,
 *      rd_kafka_consumer_poll (not the batch API, see DESIGN.md), manual
 *      commits: both get partitions and messages, each message arrives
 *      exactly once with its value intact
 *   4. a third consumer in the same group, after the two closed, reaches the
 *      end of every partition without a message: the commits held
 *   5. the group and the topic are deleted
 *
 * To be sure both consumers really share the work, the first assignment is
 * paused until the group has settled with both members (otherwise the first
 * to join could drain all 2,000 before the second arrives).
 */
#include "testlib.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define N_MSGS 2000
#define N_PARTITIONS 4
#define VALUE_MAX 512

static double scaled(double seconds)
{
    return seconds * VIGIL_TIMEOUT_SCALE;
}

/* Message i's value: a readable prefix, then a deterministic run of letters
 * whose length varies with i, so truncation or mix-ups show. */
static size_t make_value(int i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "vigil-compat %04d ", i);
    size_t len = (size_t)n;
    size_t extra = (size_t)(20 + (i * 7) % 300);
    for (size_t j = 0; j < extra && len + 1 < cap; j++)
        buf[len++] = (char)('a' + (size_t)(i + (int)j) % 26);
    buf[len] = '\0';
    return len;
}

/* ---------------------------------------------------------------- admin */

static rd_kafka_t *admin_new(const char *bootstrap)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
        fprintf(stderr, "could not configure the admin client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "could not create the admin client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Waits for the admin result event of type `type` on q; NULL on timeout. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type, double secs)
{
    double end = testlib_now() + scaled(secs);
    while (testlib_now() < end) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 200);
        if (ev == NULL)
            continue;
        if (rd_kafka_event_type(ev) == type)
            return ev;
        rd_kafka_event_destroy(ev);
    }
    return NULL;
}

static bool topic_create(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    bool ok = false;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, N_PARTITIONS, 1, errstr, sizeof errstr);
    if (nt == NULL) {
        fprintf(stderr, "could not describe new topic %s: %s\n", topic, errstr);
        goto err;
    }
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT, 30);
    if (ev == NULL) {
        fprintf(stderr, "could not create topic %s: no answer within 30 s\n", topic);
        goto err;
    }
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "could not create topic %s: %s\n", topic, rd_kafka_event_error_string(ev));
    } else {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        ok = n == 1 && rd_kafka_topic_result_error(res[0]) == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (!ok && n == 1)
            fprintf(stderr, "could not create topic %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(res[0]));
    }
    rd_kafka_event_destroy(ev);
err:
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    return ok;
}

static bool topic_delete(rd_kafka_t *rk, const char *topic)
{
    bool ok = false;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT, 30);
    if (ev != NULL) {
        size_t n;
        const rd_kafka_topic_result_t **res =
            rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
        ok = !rd_kafka_event_error(ev) && n == 1 &&
             rd_kafka_topic_result_error(res[0]) == RD_KAFKA_RESP_ERR_NO_ERROR;
        rd_kafka_event_destroy(ev);
    }
    if (!ok)
        fprintf(stderr, "could not delete topic %s\n", topic);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    return ok;
}

static bool group_delete(rd_kafka_t *rk, const char *group)
{
    bool ok = false;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(group);
    rd_kafka_DeleteGroups(rk, &dg, 1, NULL, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DELETEGROUPS_RESULT, 30);
    if (ev != NULL) {
        size_t n;
        const rd_kafka_group_result_t **res =
            rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
        ok = !rd_kafka_event_error(ev) && n == 1 && rd_kafka_group_result_error(res[0]) == NULL;
        rd_kafka_event_destroy(ev);
    }
    if (!ok)
        fprintf(stderr, "could not delete consumer group %s\n", group);
    rd_kafka_DeleteGroup_destroy(dg);
    rd_kafka_queue_destroy(q);
    return ok;
}

/* ------------------------------------------------------------- producing */

struct delivery {
    int ok;
    int failed;
};

/* Runs in the thread that calls rd_kafka_poll/flush: the main thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct delivery *d = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        d->ok++;
    } else {
        if (d->failed++ < 5)
            fprintf(stderr, "delivery failed: %s\n", rd_kafka_err2str(m->err));
    }
}

static rd_kafka_t *producer_new(const char *bootstrap, const char *codec, struct delivery *d)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", bootstrap},
        {"enable.idempotence", "true"},
        {"compression.type", codec},
        {"linger.ms", "5"},
        {"message.timeout.ms", "30000"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "could not set %s=%s: %s\n", kv[i][0], kv[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "could not create the %s producer: %s\n", codec, errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Produces messages [from, to) with rk; waits for room when the local queue
 * is full. Returns the number handed to librdkafka. */
static int produce_range(rd_kafka_t *rk, const char *topic, int from, int to)
{
    double end = testlib_now() + scaled(30);
    int sent = 0;
    for (int i = from; i < to;) {
        char key[16];
        char value[VALUE_MAX];
        snprintf(key, sizeof key, "%d", i);
        size_t vlen = make_value(i, value, sizeof value);
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
            RD_KAFKA_V_VALUE(value, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && testlib_now() < end) {
            rd_kafka_poll(rk, 50);
            continue;
        }
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "could not produce message %d: %s\n", i, rd_kafka_err2str(err));
            break;
        }
        sent++;
        i++;
        rd_kafka_poll(rk, 0);
    }
    return sent;
}

/* ------------------------------------------------------------- consuming */

struct shared {
    atomic_int seen[N_MSGS]; /* how often each message arrived */
    atomic_int total;
    atomic_bool go;   /* both members hold partitions: start fetching */
    atomic_bool stop; /* all seen: commit and close */
};

struct consumer {
    struct shared *sh;
    rd_kafka_t *rk;
    atomic_int assigned;     /* partitions held now, set by the rebalance cb */
    atomic_int max_assigned; /* most partitions ever held */
    bool paused;             /* fetching paused until sh->go */
    /* Written by the consumer's thread, read by main after join. */
    int received;
    int bad;       /* unparseable key, or a value that differs */
    int errors;    /* error events other than end-of-partition */
    int commit_failed;
    int eofs;      /* end-of-partition events (third consumer) */
};

/* Runs in the consumer's own thread (inside rd_kafka_consumer_poll or
 * rd_kafka_consumer_close). Eager protocol: on revoke, commit what was
 * consumed so the next owner starts after it, then drop the assignment. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        rd_kafka_assign(rk, parts);
        if (c->sh != NULL && !atomic_load(&c->sh->go)) {
            rd_kafka_pause_partitions(rk, parts);
            c->paused = true;
        }
        atomic_store(&c->assigned, parts->cnt);
        if (parts->cnt > atomic_load(&c->max_assigned))
            atomic_store(&c->max_assigned, parts->cnt);
    } else {
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr != RD_KAFKA_RESP_ERR_NO_ERROR && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            c->commit_failed++;
        rd_kafka_assign(rk, NULL);
        atomic_store(&c->assigned, 0);
    }
}

static rd_kafka_t *consumer_new(const char *bootstrap, const char *group, struct consumer *c)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *kv[][2] = {
        {"bootstrap.servers", bootstrap},
        {"group.id", group},
        {"partition.assignment.strategy", "range"},
        {"auto.offset.reset", "earliest"},
        {"enable.auto.commit", "false"},
        {"enable.partition.eof", "true"},
        {"session.timeout.ms", "10000"},
        {"heartbeat.interval.ms", "500"},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        if (rd_kafka_conf_set(conf, kv[i][0], kv[i][1], errstr, sizeof errstr) !=
            RD_KAFKA_CONF_OK) {
            fprintf(stderr, "could not set %s=%s: %s\n", kv[i][0], kv[i][1], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "could not create a consumer: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static bool subscribe(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "could not subscribe to %s: %s\n", topic, rd_kafka_err2str(err));
    return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Checks one message against what was produced; returns its index or -1. */
static int check_message(const rd_kafka_message_t *m)
{
    char key[16];
    char want[VALUE_MAX];
    if (m->key == NULL || m->key_len == 0 || m->key_len >= sizeof key)
        return -1;
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    char *endp;
    long i = strtol(key, &endp, 10);
    if (*endp != '\0' || i < 0 || i >= N_MSGS)
        return -1;
    size_t wlen = make_value((int)i, want, sizeof want);
    if (m->len != wlen || memcmp(m->payload, want, wlen) != 0)
        return -1;
    return (int)i;
}

static void consume_one(struct consumer *c, rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        c->eofs++;
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (c->errors++ < 5)
            fprintf(stderr, "consumer error: %s\n", rd_kafka_message_errstr(m));
        return;
    }
    c->received++;
    int i = check_message(m);
    if (i < 0) {
        c->bad++;
        return;
    }
    if (c->sh != NULL) {
        atomic_fetch_add(&c->sh->seen[i], 1);
        atomic_fetch_add(&c->sh->total, 1);
    }
}

static void *consumer_thread(void *arg)
{
    struct consumer *c = arg;
    while (!atomic_load(&c->sh->stop)) {
        if (c->paused && atomic_load(&c->sh->go)) {
            rd_kafka_topic_partition_list_t *mine = NULL;
            if (rd_kafka_assignment(c->rk, &mine) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                rd_kafka_resume_partitions(c->rk, mine);
                rd_kafka_topic_partition_list_destroy(mine);
                c->paused = false;
            }
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m != NULL) {
            consume_one(c, m);
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        c->commit_failed++;
    rd_kafka_consumer_close(c->rk);
    return NULL;
}

static bool both_assigned(void *arg)
{
    struct consumer *c = arg;
    int a = atomic_load(&c[0].assigned);
    int b = atomic_load(&c[1].assigned);
    return a > 0 && b > 0 && a + b == N_PARTITIONS;
}

static bool all_seen(void *arg)
{
    struct shared *sh = arg;
    return atomic_load(&sh->total) >= N_MSGS;
}

/* The third consumer: polls until end-of-partition on all partitions (it
 * must start at the committed offsets, which are the ends). */
static void check_nothing_left(const char *bootstrap, const char *group, const char *topic)
{
    struct consumer c = {0};
    c.rk = consumer_new(bootstrap, group, &c);
    CHECK(c.rk != NULL);
    if (c.rk == NULL)
        return;
    CHECK(subscribe(c.rk, topic));
    double end = testlib_now() + scaled(30);
    while (c.eofs < N_PARTITIONS && testlib_now() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c.rk, 100);
        if (m != NULL) {
            consume_one(&c, m);
            rd_kafka_message_destroy(m);
        }
    }
    CHECK_EQ_INT(atomic_load(&c.assigned), N_PARTITIONS);
    CHECK_EQ_INT(c.eofs, N_PARTITIONS);
    CHECK_EQ_INT(c.received, 0);

    /* The committed offsets account for every message. */
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(N_PARTITIONS);
    for (int p = 0; p < N_PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, topic, p);
    int64_t sum = 0;
    CHECK(rd_kafka_committed(c.rk, parts, (int)scaled(10) * 1000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int p = 0; p < parts->cnt; p++)
        if (parts->elems[p].offset > 0)
            sum += parts->elems[p].offset;
    CHECK_EQ_INT(sum, N_MSGS);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_consumer_close(c.rk);
    rd_kafka_destroy(c.rk);
}

int main(void)
{
    const char *bootstrap = testlib_env("VIGIL_KAFKA_BOOTSTRAP");
    char topic[64];
    snprintf(topic, sizeof topic, "vigil.test.compat.%ld", (long)getpid());
    printf("librdkafka %s, broker %s, topic %s\n", rd_kafka_version_str(), bootstrap, topic);

    struct shared *sh = calloc(1, sizeof *sh);
    struct consumer c[2] = {{0}, {0}};
    struct delivery d_lz4 = {0}, d_zstd = {0};
    rd_kafka_t *lz4 = NULL, *zstd = NULL;
    bool created = false;

    rd_kafka_t *admin = admin_new(bootstrap);
    CHECK(admin != NULL);
    if (admin == NULL || sh == NULL)
        goto done;
    created = topic_create(admin, topic);
    CHECK(created);
    if (!created)
        goto done;

    /* 1,000 messages per codec, from two producers at once. */
    lz4 = producer_new(bootstrap, "lz4", &d_lz4);
    zstd = producer_new(bootstrap, "zstd", &d_zstd);
    CHECK(lz4 != NULL && zstd != NULL);
    if (lz4 == NULL || zstd == NULL)
        goto done;
    CHECK_EQ_INT(produce_range(lz4, topic, 0, N_MSGS / 2), N_MSGS / 2);
    CHECK_EQ_INT(produce_range(zstd, topic, N_MSGS / 2, N_MSGS), N_MSGS / 2);
    CHECK(rd_kafka_flush(lz4, (int)scaled(30) * 1000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(rd_kafka_flush(zstd, (int)scaled(30) * 1000) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_EQ_INT(d_lz4.ok, N_MSGS / 2);
    CHECK_EQ_INT(d_zstd.ok, N_MSGS / 2);
    CHECK_EQ_INT(d_lz4.failed + d_zstd.failed, 0);
    char errstr[256];
    CHECK(rd_kafka_fatal_error(lz4, errstr, sizeof errstr) == RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK(rd_kafka_fatal_error(zstd, errstr, sizeof errstr) == RD_KAFKA_RESP_ERR_NO_ERROR);

    /* Two consumers in one group, one thread each. */
    char group[80];
    snprintf(group, sizeof group, "vigil.test.compat.%ld", (long)getpid());
    pthread_t th[2];
    int started = 0;
    for (int k = 0; k < 2; k++) {
        c[k].sh = sh;
        c[k].rk = consumer_new(bootstrap, group, &c[k]);
        CHECK(c[k].rk != NULL);
        if (c[k].rk == NULL || !subscribe(c[k].rk, topic))
            break;
        if (pthread_create(&th[k], NULL, consumer_thread, &c[k]) != 0)
            break;
        started++;
    }
    CHECK_EQ_INT(started, 2);
    if (started == 2) {
        bool settled = testlib_wait(both_assigned, c, 30);
        CHECK(settled);
        atomic_store(&sh->go, true);
        CHECK(testlib_wait(all_seen, sh, 60));
    }
    atomic_store(&sh->stop, true);
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    for (int k = 0; k < 2; k++) {
        if (c[k].rk != NULL)
            rd_kafka_destroy(c[k].rk);
        c[k].rk = NULL;
    }

    int once = 0, dup = 0, missing = 0;
    for (int i = 0; i < N_MSGS; i++) {
        int n = atomic_load(&sh->seen[i]);
        once += n == 1;
        dup += n > 1;
        missing += n == 0;
    }
    printf("consumer 0: %d partitions, %d messages; consumer 1: %d partitions, %d messages\n",
           atomic_load(&c[0].max_assigned), c[0].received, atomic_load(&c[1].max_assigned),
           c[1].received);
    CHECK_EQ_INT(once, N_MSGS);
    CHECK_EQ_INT(dup, 0);
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(c[0].received + c[1].received, N_MSGS);
    CHECK(c[0].received > 0);
    CHECK(c[1].received > 0);
    CHECK(atomic_load(&c[0].max_assigned) > 0);
    CHECK(atomic_load(&c[1].max_assigned) > 0);
    CHECK_EQ_INT(c[0].bad + c[1].bad, 0);
    CHECK_EQ_INT(c[0].errors + c[1].errors, 0);
    CHECK_EQ_INT(c[0].commit_failed + c[1].commit_failed, 0);

    check_nothing_left(bootstrap, group, topic);

    CHECK(group_delete(admin, group));
done:
    if (created)
        CHECK(topic_delete(admin, topic));
    /* rd_kafka_destroy(NULL) is not a no-op. */
    if (lz4 != NULL)
        rd_kafka_destroy(lz4);
    if (zstd != NULL)
        rd_kafka_destroy(zstd);
    if (admin != NULL)
        rd_kafka_destroy(admin);
    free(sh);
    return testlib_done();
}
