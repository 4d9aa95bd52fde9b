/*
 * The consumer-group engine (common/group.c) with a role of the test's own,
 * on librdkafka's mock cluster (no services):
 *
 *   1. a role that refuses partition 0's messages: they wait in the stash,
 *      the partition is paused, partition 1 is consumed to its end and
 *      committed; nothing of partition 0 is dropped or committed past;
 *   2. a second member joins the group and leaves again, so partition 0 is
 *      revoked while paused and assigned here again;
 *   3. the role now takes partition 0: all of it is delivered, once per
 *      offset, and the committed offsets reach both ends;
 *   4. an older position committed behind the engine's back (what a
 *      commit librdkafka retried by itself can do) is put right by the
 *      periodic refresh;
 *   5. at a stop, messages stashed for want of room are flushed to the
 *      role (group_flush_stashes) instead of being abandoned.
 *
 * Step 3 is the regression: librdkafka keeps an application's pause across
 * an unassign, so a partition revoked while paused came back paused and was
 * never read again (the engine had forgotten it paused it).
 */
#include "testlib.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "group.h"
#include "metrics.h"
#include "testkafka.h"

#define N_PER_PART 100

struct role_state {
    struct group *g;
    bool accept_p0;
    int offered_p0;        /* refused or taken */
    int seen[2][N_PER_PART]; /* deliveries taken, per offset */
    int late_taken;          /* offsets N_PER_PART and later (step 5) */
    int assigned, revoked;
};

static void *role_wrap(void *arg, rd_kafka_message_t *m)
{
    (void)arg;
    return m;
}

static bool role_offer(void *arg, void *item, const struct group_ticket *t, int wait_ms)
{
    (void)wait_ms;
    struct role_state *s = arg;
    rd_kafka_message_t *m = item;
    if (t->partition == 0) {
        s->offered_p0++;
        if (!s->accept_p0)
            return false;
    }
    if (t->partition >= 0 && t->partition < 2 && t->offset >= 0 && t->offset < N_PER_PART)
        s->seen[t->partition][t->offset]++;
    else if (t->offset >= N_PER_PART)
        s->late_taken++;
    rd_kafka_message_destroy(m);
    group_done(s->g, t);
    return true;
}

static void role_discard(void *arg, void *item)
{
    (void)arg;
    rd_kafka_message_destroy(item);
}

static void role_rebalanced(void *arg, bool assigned)
{
    struct role_state *s = arg;
    if (assigned)
        s->assigned++;
    else
        s->revoked++;
}

/* The group's committed offset of partition P (-1001: none yet); READER
 * is a client of the group that never joins it. */
static int64_t committed(rd_kafka_t *reader, const char *topic, int32_t p)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p);
    int64_t off = -2;
    if (rd_kafka_committed(reader, l, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        l->elems[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
        off = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return off;
}

static int taken(const struct role_state *s, int p)
{
    int n = 0;
    for (int i = 0; i < N_PER_PART; i++)
        n += s->seen[p][i] > 0;
    return n;
}

static int duplicates(const struct role_state *s, int p)
{
    int n = 0;
    for (int i = 0; i < N_PER_PART; i++)
        n += s->seen[p][i] > 1;
    return n;
}

/* A second member of GROUP whose session is as short as the engine's
 * (6 s): should its LeaveGroup be lost on close (it was, once, under
 * AddressSanitizer), the mock coordinator forgets it in 6 s instead of the
 * default 45, and the rejoin of step 2 does not outlast the test. */
static rd_kafka_t *short_session_member(const char *bootstraps, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "session.timeout.ms", "6000", errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "heartbeat.interval.ms", "500", errstr, sizeof errstr) != 0) {
        fprintf(stderr, "could not configure the second member: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "could not make the second member: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int main(void)
{
    char err[512];
    rd_kafka_conf_t *oc = rd_kafka_conf_new();
    rd_kafka_conf_set(oc, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, oc, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = owner ? rd_kafka_mock_cluster_new(owner, 1) : NULL;
    CHECK(mc != NULL);
    if (mc == NULL)
        return testlib_done();
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    char topic[] = "group.test";
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, topic, 2, 1), 0);

    rd_kafka_t *prod = testkafka_client(RD_KAFKA_PRODUCER, bootstraps, NULL);
    char value[] = "x";
    for (int32_t p = 0; p < 2; p++)
        for (int i = 0; i < N_PER_PART; i++)
            CHECK_EQ_INT(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(p),
                                           RD_KAFKA_V_VALUE(value, 1),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_EQ_INT(rd_kafka_flush(prod, 10000), 0);

    static const struct config_item none[] = {{NULL, NULL, NULL, NULL, false}};
    struct config *kc = config_new(none);
    CHECK(config_set(kc, "kafka.session.timeout.ms", "6000", err, sizeof err) == 0 &&
          config_set(kc, "kafka.heartbeat.interval.ms", "500", err, sizeof err) == 0 &&
          config_set(kc, "kafka.log_level", "3", err, sizeof err) == 0);
    struct metrics *metrics = metrics_new();
    struct role_state st = {0};
    struct group_config gc = {
        .cfg = kc,
        .bootstrap = bootstraps,
        .group = "group-test",
        .topic = topic,
        .assignor = "range",
        .component = "test",
        .revoke_drain_ms = 2000,
        .commit_refresh_ms = 1000,
    };
    struct group_role role = {&st, role_wrap, role_offer, role_discard, role_rebalanced};
    st.g = group_new(&gc, &role, metrics, err, sizeof err);
    CHECK(st.g != NULL);
    if (st.g == NULL)
        goto out;
    CHECK_EQ_INT(group_subscribe(st.g, err, sizeof err), 0);

    /* 1: partition 0 refused, partition 1 consumed. */
    double until = testlib_now() + 30;
    while ((taken(&st, 1) < N_PER_PART || st.offered_p0 < 3) && testlib_now() < until)
        group_poll(st.g, 20);
    CHECK_EQ_INT(taken(&st, 1), N_PER_PART);
    CHECK(st.offered_p0 >= 3);
    CHECK_EQ_INT(taken(&st, 0), 0);
    rd_kafka_t *reader = testkafka_client(RD_KAFKA_CONSUMER, bootstraps, "group-test");
    until = testlib_now() + 20;
    while (committed(reader, topic, 1) != N_PER_PART && testlib_now() < until)
        group_poll(st.g, 20);
    printf("after step 1: committed [0] %lld, [1] %lld\n", (long long)committed(reader, topic, 0),
           (long long)committed(reader, topic, 1));
    CHECK_EQ_INT(committed(reader, topic, 1), N_PER_PART);
    CHECK(committed(reader, topic, 0) < 0); /* nothing of partition 0 committed past */

    /* 2: a second member joins and leaves: partition 0 is revoked while
     * paused, then comes back. */
    int revoked_before = st.revoked;
    rd_kafka_t *other = short_session_member(bootstraps, "group-test");
    CHECK(other != NULL);
    if (other == NULL)
        goto out;
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    CHECK_EQ_INT(rd_kafka_subscribe(other, sub), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(sub);
    until = testlib_now() + 30;
    int assigned_before = st.assigned;
    while ((st.revoked == revoked_before || st.assigned == assigned_before) &&
           testlib_now() < until) {
        group_poll(st.g, 20);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(other, 20);
        if (m != NULL)
            rd_kafka_message_destroy(m);
    }
    CHECK(st.revoked > revoked_before);
    printf("second member joined: %d revokes, %d assignments here\n", st.revoked, st.assigned);
    revoked_before = st.revoked;
    assigned_before = st.assigned;
    double t_close = testlib_now();
    rd_kafka_consumer_close(other);
    rd_kafka_destroy(other);
    printf("second member closed in %.1f s\n", testlib_now() - t_close);
    until = testlib_now() + 60;
    while ((st.revoked == revoked_before || st.assigned == assigned_before) &&
           testlib_now() < until)
        group_poll(st.g, 20);
    printf("second member left: %d revokes, %d assignments here, %.1f s\n", st.revoked,
           st.assigned, testlib_now() - t_close);
    CHECK(st.assigned > assigned_before);

    /* 3: partition 0 taken now: every message once, commits at both ends. */
    st.accept_p0 = true;
    until = testlib_now() + 30;
    while (taken(&st, 0) < N_PER_PART && testlib_now() < until)
        group_poll(st.g, 20);
    printf("partition 0: %d of %d taken, %d offered\n", taken(&st, 0), N_PER_PART,
           st.offered_p0);
    CHECK_EQ_INT(taken(&st, 0), N_PER_PART);
    CHECK_EQ_INT(duplicates(&st, 0), 0);
    until = testlib_now() + 20;
    while ((committed(reader, topic, 0) != N_PER_PART ||
            committed(reader, topic, 1) != N_PER_PART) &&
           testlib_now() < until)
        group_poll(st.g, 20);
    printf("committed: [0] %lld, [1] %lld\n", (long long)committed(reader, topic, 0),
           (long long)committed(reader, topic, 1));
    CHECK_EQ_INT(committed(reader, topic, 0), N_PER_PART);
    CHECK_EQ_INT(committed(reader, topic, 1), N_PER_PART);

    /* 4: an older position lands after the newest (as a commit librdkafka
     * retried by itself can, every callback reporting success): the
     * refresh commits the current position again. */
    rd_kafka_topic_partition_list_t *old = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(old, topic, 0)->offset = N_PER_PART / 2;
    CHECK_EQ_INT(rd_kafka_commit(group_kafka(st.g), old, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(old);
    CHECK_EQ_INT(committed(reader, topic, 0), N_PER_PART / 2);
    double t_stale = testlib_now();
    until = t_stale + 20;
    while (committed(reader, topic, 0) != N_PER_PART && testlib_now() < until)
        group_poll(st.g, 20);
    printf("stale commit of partition 0 put right in %.1f s\n", testlib_now() - t_stale);
    CHECK_EQ_INT(committed(reader, topic, 0), N_PER_PART);
    CHECK_EQ_INT(duplicates(&st, 0), 0);
    rd_kafka_destroy(reader);

    /* 5: partition 0 refused again: new messages are stashed, the
     * partition paused; at the stop the flush hands them over. */
    st.accept_p0 = false;
    int offered_before = st.offered_p0;
    for (int i = 0; i < 10; i++)
        CHECK_EQ_INT(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_VALUE(value, 1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    CHECK_EQ_INT(rd_kafka_flush(prod, 10000), 0);
    until = testlib_now() + 20;
    while (st.offered_p0 == offered_before && testlib_now() < until)
        group_poll(st.g, 20);
    CHECK(st.offered_p0 > offered_before);
    CHECK_EQ_INT(st.late_taken, 0);
    size_t stashed = group_flush_stashes(st.g, deadline_after_ms(200)); /* still refused */
    CHECK(stashed >= 1);
    st.accept_p0 = true;
    CHECK_EQ_INT(group_flush_stashes(st.g, deadline_after_ms(5000)), 0);
    printf("at the stop: %d stashed message(s) flushed to the role\n", st.late_taken);
    CHECK_EQ_INT(st.late_taken, (int)stashed);
    group_stop(st.g);
    group_close(st.g);
out:
    group_destroy(st.g);
    metrics_destroy(metrics);
    config_destroy(kc);
    if (prod != NULL)
        rd_kafka_destroy(prod);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
    return testlib_done();
}
