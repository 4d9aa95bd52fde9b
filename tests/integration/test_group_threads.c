/*
 * The consumer-group engine with the worker's real stages, under
 * ThreadSanitizer (label kit; also a plain integration test): two
 * `worker_run`s in this process share one group on librdkafka's mock
 * cluster and store into the real PostgreSQL. The second joins while the
 * first is mid-backlog and leaves again, so partitions are revoked with
 * messages in flight on analysis, store and publisher threads; a tracker of
 * 16 offsets per partition keeps the stash, pause and resume paths busy.
 *
 * Afterwards: every observation stored exactly once, exactly the expected
 * alerts, the group's committed offsets at the end of every partition, and
 * both workers returned 0. Under TSan any data race between the poll thread,
 * the analysis threads, the store and the publisher fails the run.
 */
#include "testlib.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "ctx.h"
#include "testkafka.h"
#include "worker.h"

#define N_OBS       3000
#define N_PARTS     4
#define ALERT_EVERY 50

struct member {
    struct worker_options opt;
    struct ctx *stop;
    atomic_bool reload;
    pthread_t thread;
    int rc;
    char err[2048];
};

struct run {
    PGconn *pg;
    struct config *kafka; /* the members' librdkafka properties */
    char study[32];
    char topic[96];
    char dlq[112];
    char alerts[112];
    char group[64];
    char rules[512];
    const char *bootstraps;
    long target;
};

static long pg_count(struct run *r, const char *sql)
{
    const char *params[] = {r->study};
    PGresult *res = PQexecParams(r->pg, sql, 1, NULL, params, NULL, NULL, 0);
    long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    else
        fprintf(stderr, "query failed: %s", PQerrorMessage(r->pg));
    PQclear(res);
    return n;
}

static long stored(struct run *r)
{
    return pg_count(r, "SELECT count(*) FROM observations WHERE study_id = $1");
}

static bool stored_at_least(void *arg)
{
    struct run *r = arg;
    return stored(r) >= r->target;
}

static bool at_end(void *arg)
{
    struct run *r = arg;
    return testkafka_committed_at_end(r->bootstraps, r->group, r->topic, N_PARTS, NULL, 0);
}

static void *member_run(void *arg)
{
    struct member *m = arg;
    m->rc = worker_run(&m->opt, m->stop, &m->reload, m->err, sizeof m->err);
    if (m->rc != 0)
        fprintf(stderr, "worker: %s\n", m->err);
    return NULL;
}

static int member_start(struct member *m, struct run *r)
{
    m->opt = (struct worker_options){
        .consumer = {.cfg = r->kafka,
                     .bootstrap = r->bootstraps,
                     .group = r->group,
                     .topic = r->topic,
                     .assignor = "range",
                     .inflight_per_partition = 16},
        .dead_letters = {.topic = r->dlq,
                         .source_topic = r->topic,
                         .group = r->group,
                         .conninfo = testlib_env("VIGIL_PG_CONNINFO"),
                         .component = "worker"},
        .alerts_topic = r->alerts,
        .rules_path = r->rules,
        .conninfo = testlib_env("VIGIL_PG_CONNINFO"),
        .http_addr = NULL,
        .threads = 2,
        .grace_s = 20,
        .batch_rows = 100,
        .batch_ms = 10,
        .max_subjects = 1000,
        .max_message_bytes = 1 << 20,
    };
    m->stop = ctx_new(NULL);
    atomic_init(&m->reload, false);
    m->rc = -2;
    return m->stop != NULL && pthread_create(&m->thread, NULL, member_run, m) == 0 ? 0 : -1;
}

static int member_stop(struct member *m)
{
    ctx_cancel(m->stop);
    pthread_join(m->thread, NULL);
    ctx_destroy(m->stop);
    return m->rc;
}

int main(void)
{
    struct run r = {0};
    char err[512];
    snprintf(r.study, sizeof r.study, "GT-%d-%ld", (int)getpid(), (long)time(NULL) % 100000);
    snprintf(r.topic, sizeof r.topic, "gt.%s.obs", r.study);
    snprintf(r.dlq, sizeof r.dlq, "%s.dlq", r.topic);
    snprintf(r.alerts, sizeof r.alerts, "%s.alerts", r.topic);
    snprintf(r.group, sizeof r.group, "gt-%s", r.study);
    snprintf(r.rules, sizeof r.rules, "%s/tests/integration/rules/pipeline.yaml",
             VIGIL_SOURCE_DIR);

    r.pg = PQconnectdb(testlib_env("VIGIL_PG_CONNINFO"));
    CHECK(PQstatus(r.pg) == CONNECTION_OK);
    if (PQstatus(r.pg) != CONNECTION_OK) {
        fprintf(stderr, "could not connect to PostgreSQL: %s", PQerrorMessage(r.pg));
        PQfinish(r.pg);
        return testlib_done();
    }
    /* A short session: the mock coordinator waits that long for members. */
    static const struct config_item none[] = {{NULL, NULL, NULL, NULL, false}};
    r.kafka = config_new(none);
    CHECK(r.kafka != NULL &&
          config_set(r.kafka, "kafka.session.timeout.ms", "6000", err, sizeof err) == 0 &&
          config_set(r.kafka, "kafka.heartbeat.interval.ms", "1000", err, sizeof err) == 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s migrate >/dev/null 2>&1", VIGIL_BINARY);
    CHECK_EQ_INT(testlib_run(cmd, NULL, 0), 0);

    struct codec *codec = codec_new(NULL, err, sizeof err);
    rd_kafka_conf_t *oc = rd_kafka_conf_new();
    rd_kafka_conf_set(oc, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, oc, err, sizeof err);
    rd_kafka_mock_cluster_t *mc = owner ? rd_kafka_mock_cluster_new(owner, 1) : NULL;
    rd_kafka_t *prod = NULL;
    CHECK(codec != NULL && mc != NULL);
    if (codec == NULL || mc == NULL)
        goto out;
    r.bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, r.topic, N_PARTS, 1), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, r.dlq, 1, 1), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(mc, r.alerts, N_PARTS, 1), 0);
    prod = testkafka_client(RD_KAFKA_PRODUCER, r.bootstraps, NULL);
    CHECK(prod != NULL);
    if (prod == NULL)
        goto out;
    CHECK_EQ_INT(testkafka_produce(prod, codec, r.topic, r.study, 0, N_OBS, ALERT_EVERY), N_OBS);
    CHECK_EQ_INT(rd_kafka_flush(prod, (int)(30000 * VIGIL_TIMEOUT_SCALE)), 0);

    struct member a, b;
    CHECK_EQ_INT(member_start(&a, &r), 0);
    r.target = N_OBS / 4;
    CHECK(testlib_wait(stored_at_least, &r, 60));
    printf("second worker joins with %ld of %d stored\n", stored(&r), N_OBS);
    CHECK_EQ_INT(member_start(&b, &r), 0);
    r.target = N_OBS / 2;
    CHECK(testlib_wait(stored_at_least, &r, 90));
    printf("second worker leaves with %ld of %d stored\n", stored(&r), N_OBS);
    CHECK_EQ_INT(member_stop(&b), 0);

    r.target = N_OBS;
    CHECK(testlib_wait(stored_at_least, &r, 120));
    CHECK(testlib_wait(at_end, &r, 60));
    CHECK_EQ_INT(member_stop(&a), 0);

    long rows = stored(&r);
    long distinct = pg_count(&r, "SELECT count(DISTINCT observation_id) FROM observations "
                                 "WHERE study_id = $1");
    long alerts = pg_count(&r, "SELECT count(*) FROM alerts WHERE study_id = $1");
    printf("stored %ld rows (%ld distinct) of %d; %ld alerts of %d\n", rows, distinct, N_OBS,
           alerts, N_OBS / ALERT_EVERY);
    CHECK_EQ_INT(rows, N_OBS);
    CHECK_EQ_INT(distinct, N_OBS);
    CHECK_EQ_INT(alerts, N_OBS / ALERT_EVERY);
out:
    if (prod != NULL)
        rd_kafka_destroy(prod);
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    if (owner != NULL)
        rd_kafka_destroy(owner);
    codec_destroy(codec);
    config_destroy(r.kafka);
    PQfinish(r.pg);
    return testlib_done();
}
