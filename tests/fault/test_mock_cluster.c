/*
 * test_mock_cluster: the real `vigil worker` binary against librdkafka's mock
 * cluster (3 brokers, replication factor 3, in this process) and the real
 * PostgreSQL (VIGIL_PG_CONNINFO), with broker faults injected mid-run:
 *
 *   1. request errors pushed on every broker: Produce (NOT_LEADER_FOR_
 *      PARTITION, REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS), Fetch
 *      (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT, UNKNOWN_TOPIC_OR_PART)
 *      and OffsetCommit (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
 *      REQUEST_TIMED_OUT), all retriable;
 *   2. the group coordinator moved to broker 2;
 *   3. broker 1 down for 3 s while the second half of the input arrives,
 *      and the coordinator moved again (to broker 3) meanwhile.
 *
 * Then the same end state as an undisturbed run: every observation once in
 * PostgreSQL (a study id unique to this run), exactly the expected alerts
 * in PostgreSQL and on the mock's alerts topic (consumed back and decoded
 * with vigil's codec), nothing dead-lettered, the group's committed offsets
 * at the end of every partition, and the worker exits 0 on SIGTERM.
 *
 * The error stacks are per broker so the test can count how many injected
 * errors were actually hit (rd_kafka_mock_broker_error_stack_cnt); it
 * prints what it injected and what it counted.
 */
#include "testlib.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"

#define N_OBS 6000
#define N_PARTS 4
#define N_BROKERS 3
#define ALERT_EVERY 50 /* every 50th observation is 6.9 mmol/L: k-high fires */
#define API_PRODUCE 0
#define API_FETCH 1
#define API_OFFSET_COMMIT 8

extern char **environ;

struct run {
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
    PGconn *pg;
    char study[32];
    char topic[96];
    char dlq[112];
    char alerts[112];
    char group[64];
    char log_path[256];
    pid_t worker;
    long target; /* what stored_at_least waits for */
    char offsets_seen[256]; /* last committed/end comparison, for the report */
};

/* ------------------------------------------------------------ PostgreSQL */

static long pg_count(struct run *r, const char *sql)
{
    const char *params[1] = {r->study};
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

/* --------------------------------------------------------------- Kafka */

static rd_kafka_t *client_new(rd_kafka_type_t type, const char *bootstraps, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != 0)
        goto err;
    if (type == RD_KAFKA_PRODUCER &&
        (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr) != 0 ||
         /* A request caught by a broker going down waits this long for its
          * answer before it is retried (default 60 s). */
         rd_kafka_conf_set(conf, "socket.timeout.ms", "10000", errstr, sizeof errstr) != 0))
        goto err;
    if (group != NULL &&
        (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof errstr) != 0))
        goto err;
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == NULL)
        goto err;
    return rk;
err:
    fprintf(stderr, "could not make a Kafka client: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static void make_observation(struct run *r, int i, struct observation *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->observation_id, sizeof o->observation_id, "%s-o%06d", r->study, i % 1000000);
    snprintf(o->study_id, sizeof o->study_id, "%s", r->study);
    snprintf(o->site_id, sizeof o->site_id, "SITE-1");
    snprintf(o->subject_id, sizeof o->subject_id, "S-%03d", i % 200);
    snprintf(o->loinc, sizeof o->loinc, "2823-3");
    o->has_value = true;
    o->value = i % ALERT_EVERY == 0 ? 6.9 : 4.0 + (i % 10) / 10.0;
    snprintf(o->unit, sizeof o->unit, "mmol/L");
    o->has_ref_low = o->has_ref_high = true;
    o->ref_low = 3.5;
    o->ref_high = 5.1;
    o->effective_ms = 1767225600000LL + (int64_t)i * 1000;
    o->issued_ms = o->effective_ms + 500;
    o->status = OBS_FINAL;
    snprintf(o->visit, sizeof o->visit, "W1");
}

/* Queues observations [from, to) on P; returns how many were queued. */
static int produce_range(struct run *r, struct codec *codec, rd_kafka_t *p, int from, int to)
{
    int queued = 0;
    for (int i = from; i < to; i++) {
        struct observation o;
        make_observation(r, i, &o);
        unsigned char buf[CODEC_OBSERVATION_MAX_ENCODED];
        size_t len = 0;
        char err[256];
        if (codec_encode_observation(codec, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                     sizeof err) != CODEC_OK) {
            fprintf(stderr, "encode %d: %s\n", i, err);
            continue;
        }
        char key[160];
        int klen = snprintf(key, sizeof key, "%s/%s", o.study_id, o.subject_id);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                queued++;
                break;
            }
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce %d: %s\n", i, rd_kafka_err2str(e));
                break;
            }
            rd_kafka_poll(p, 50);
        }
        rd_kafka_poll(p, 0);
    }
    return queued;
}

/* The partition's end offset, or -1. Retried: right after a mock broker
 * comes back, a leader may not answer the first query, and a reader that
 * skipped the partition would under-count what is on the topic. */
static int64_t high_watermark(rd_kafka_t *rk, const char *topic, int32_t part)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, 5000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return hi;
        fprintf(stderr, "watermarks of %s [%d]: %s (attempt %d)\n", topic, (int)part,
                rd_kafka_err2str(err), attempt + 1);
    }
    return -1;
}

/* Reads every message of TOPIC (all partitions, up to their current ends)
 * and counts the alerts whose evidence names an expected observation
 * (i % ALERT_EVERY == 0 of this run), distinct and in total. */
static void read_alerts(struct run *r, struct codec *codec, int *total, int *distinct,
                        int *unexpected, int *undecodable)
{
    *total = *distinct = *unexpected = *undecodable = 0;
    rd_kafka_t *c = client_new(RD_KAFKA_CONSUMER, r->bootstraps, NULL);
    if (c == NULL)
        return;
    unsigned char *seen = calloc(N_OBS, 1);
    for (int32_t p = 0; p < N_PARTS; p++) {
        int64_t end = high_watermark(c, r->alerts, p);
        if (end < 0)
            fprintf(stderr, "FAIL: could not learn the end of %s [%d]\n", r->alerts, (int)p);
        if (end <= 0)
            continue;
        rd_kafka_topic_t *t = rd_kafka_topic_new(c, r->alerts, NULL);
        rd_kafka_consume_start(t, p, RD_KAFKA_OFFSET_BEGINNING);
        int64_t next = 0;
        double until = testlib_now() + 30.0 * VIGIL_TIMEOUT_SCALE;
        while (next < end && testlib_now() < until) {
            rd_kafka_message_t *m = rd_kafka_consume(t, p, 200);
            if (m == NULL)
                continue;
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                next = m->offset + 1;
                (*total)++;
                struct alert a;
                char err[256];
                int idx = -1;
                const char *oid = NULL;
                if (codec_decode_alert(codec, m->payload, m->len, &a, err, sizeof err) !=
                    CODEC_OK) {
                    (*undecodable)++;
                } else if (a.n_evidence > 0) {
                    oid = a.evidence[0].observation_id;
                    size_t sl = strlen(r->study);
                    if (strncmp(oid, r->study, sl) == 0 && strncmp(oid + sl, "-o", 2) == 0)
                        idx = (int)strtol(oid + sl + 2, NULL, 10);
                }
                if (idx >= 0 && idx < N_OBS && idx % ALERT_EVERY == 0) {
                    if (!seen[idx])
                        (*distinct)++;
                    seen[idx] = 1;
                } else if (oid != NULL) {
                    (*unexpected)++;
                }
            }
            rd_kafka_message_destroy(m);
        }
        if (next < end)
            fprintf(stderr, "FAIL: read %s [%d] only up to offset %lld of %lld\n", r->alerts,
                    (int)p, (long long)next, (long long)end);
        rd_kafka_consume_stop(t, p);
        rd_kafka_topic_destroy(t);
    }
    free(seen);
    rd_kafka_destroy(c);
}

/* Compares the group's committed offsets with the partition ends. */
static bool offsets_at_end(void *arg)
{
    struct run *r = arg;
    rd_kafka_t *c = client_new(RD_KAFKA_CONSUMER, r->bootstraps, r->group);
    if (c == NULL)
        return false;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(N_PARTS);
    for (int32_t p = 0; p < N_PARTS; p++)
        rd_kafka_topic_partition_list_add(l, r->topic, p);
    bool ok = rd_kafka_committed(c, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t used = 0;
    r->offsets_seen[0] = '\0';
    for (int i = 0; i < l->cnt; i++) {
        int64_t end = high_watermark(c, r->topic, l->elems[i].partition);
        ok = ok && l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[i].offset == end;
        if (used < sizeof r->offsets_seen)
            used += (size_t)snprintf(r->offsets_seen + used, sizeof r->offsets_seen - used,
                                     "%s[%d] %lld/%lld", i ? ", " : "",
                                     (int)l->elems[i].partition,
                                     (long long)l->elems[i].offset, (long long)end);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return ok;
}

/* ------------------------------------------------------- faults, worker */

static size_t stack_left(struct run *r, int16_t api)
{
    size_t total = 0;
    for (int32_t b = 1; b <= N_BROKERS; b++) {
        size_t n = 0;
        if (rd_kafka_mock_broker_error_stack_cnt(r->mc, b, api, &n) == RD_KAFKA_RESP_ERR_NO_ERROR)
            total += n;
    }
    return total;
}

static bool fetch_and_commit_errors_hit(void *arg)
{
    struct run *r = arg;
    return stack_left(r, API_FETCH) == 0 && stack_left(r, API_OFFSET_COMMIT) == 0;
}

/* Pushes three retriable errors for API on each broker; returns the count. */
static size_t push_errors(struct run *r, int16_t api, rd_kafka_resp_err_t e1,
                          rd_kafka_resp_err_t e2, rd_kafka_resp_err_t e3)
{
    for (int32_t b = 1; b <= N_BROKERS; b++)
        rd_kafka_mock_broker_push_request_error_rtts(r->mc, b, api, 3, e1, 0, e2, 0, e3, 0);
    return 3 * N_BROKERS;
}

static pid_t worker_start(struct run *r)
{
    char rules[512];
    snprintf(rules, sizeof rules, "%s/tests/integration/rules/pipeline.yaml", VIGIL_SOURCE_DIR);
    const char *conninfo = testlib_env("VIGIL_PG_CONNINFO");
    const char *args[] = {
        VIGIL_BINARY, "worker", "--rules", rules, "--topic", r->topic, "--group", r->group,
        "--http", "127.0.0.1:0", "--threads", "2", "--grace", "20", "-b", r->bootstraps,
        "--pg", conninfo, "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000",
    };
    enum { NARGS = sizeof args / sizeof args[0] };
    /* posix_spawn wants mutable strings. */
    char *argv[NARGS + 1];
    for (size_t i = 0; i < NARGS; i++)
        argv[i] = strdup(args[i]);
    argv[NARGS] = NULL;
    /* The worker's own environment plus the per-run DLQ and alerts topics. */
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = calloc(n + 3, sizeof *envp);
    char dlq_env[160], alerts_env[160];
    snprintf(dlq_env, sizeof dlq_env, "VIGIL_DLQ_TOPIC=%s", r->dlq);
    snprintf(alerts_env, sizeof alerts_env, "VIGIL_ALERTS_TOPIC=%s", r->alerts);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "VIGIL_DLQ_TOPIC=", 16) != 0 &&
            strncmp(environ[i], "VIGIL_ALERTS_TOPIC=", 19) != 0)
            envp[k++] = environ[i];
    envp[k++] = dlq_env;
    envp[k++] = alerts_env;
    envp[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, r->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    if (posix_spawn(&pid, VIGIL_BINARY, &fa, NULL, argv, envp) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    for (size_t i = 0; i < NARGS; i++)
        free(argv[i]);
    return pid;
}

static bool worker_alive(struct run *r)
{
    int st;
    return waitpid(r->worker, &st, WNOHANG) == 0;
}

/* SIGTERM, then wait (bounded, then SIGKILL). Returns the exit status, or
 * -1 if it had to be killed or died of a signal. */
static int worker_stop(struct run *r)
{
    kill(r->worker, SIGTERM);
    double until = testlib_now() + 40.0 * VIGIL_TIMEOUT_SCALE;
    int st = 0;
    while (testlib_now() < until) {
        pid_t w = waitpid(r->worker, &st, WNOHANG);
        if (w == r->worker)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(r->worker, SIGKILL);
    waitpid(r->worker, &st, 0);
    return -1;
}

/* The fault's duration, not a synchronisation. */
static void hold_for(double seconds)
{
    double until = testlib_now() + seconds;
    while (testlib_now() < until) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(void)
{
    struct run r = {0};
    rd_kafka_t *prod = NULL;
    char err[512];
    int rc_worker = -2;
    snprintf(r.study, sizeof r.study, "SM-%d-%ld", (int)getpid(), (long)time(NULL) % 100000);
    snprintf(r.topic, sizeof r.topic, "mock.%s.obs", r.study);
    snprintf(r.dlq, sizeof r.dlq, "%s.dlq", r.topic);
    snprintf(r.alerts, sizeof r.alerts, "%s.alerts", r.topic);
    snprintf(r.group, sizeof r.group, "mock-%s", r.study);
    snprintf(r.log_path, sizeof r.log_path, "/tmp/vigil-mock-worker-%d.log", (int)getpid());

    r.pg = PQconnectdb(testlib_env("VIGIL_PG_CONNINFO"));
    CHECK(PQstatus(r.pg) == CONNECTION_OK);
    if (PQstatus(r.pg) != CONNECTION_OK) {
        fprintf(stderr, "could not connect to PostgreSQL: %s", PQerrorMessage(r.pg));
        PQfinish(r.pg);
        return testlib_done();
    }
    /* The schema must exist before the worker warms subject state. */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s migrate >/dev/null 2>&1", VIGIL_BINARY);
    CHECK_EQ_INT(testlib_run(cmd, NULL, 0), 0);

    struct codec *codec = codec_new(NULL, err, sizeof err);
    CHECK(codec != NULL);

    /* The mock cluster lives in this process; the handle is only its owner. */
    rd_kafka_conf_t *oc = rd_kafka_conf_new();
    rd_kafka_conf_set(oc, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, oc, err, sizeof err);
    r.mc = owner ? rd_kafka_mock_cluster_new(owner, N_BROKERS) : NULL;
    CHECK(r.mc != NULL);
    if (codec == NULL || r.mc == NULL)
        goto out;
    r.bootstraps = rd_kafka_mock_cluster_bootstraps(r.mc);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(r.mc, r.topic, N_PARTS, N_BROKERS), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(r.mc, r.dlq, 1, N_BROKERS), 0);
    CHECK_EQ_INT(rd_kafka_mock_topic_create(r.mc, r.alerts, N_PARTS, N_BROKERS), 0);
    /* Spread the leaders so that taking broker 1 down hits some of each. */
    for (int32_t p = 0; p < N_PARTS; p++) {
        rd_kafka_mock_partition_set_leader(r.mc, r.topic, p, 1 + p % N_BROKERS);
        rd_kafka_mock_partition_set_leader(r.mc, r.alerts, p, 1 + (p + 1) % N_BROKERS);
    }
    rd_kafka_mock_coordinator_set(r.mc, "group", r.group, 1);
    printf("mock cluster %s, study %s, worker log %s\n", r.bootstraps, r.study, r.log_path);

    prod = client_new(RD_KAFKA_PRODUCER, r.bootstraps, NULL);
    CHECK(prod != NULL);
    if (prod == NULL)
        goto out;
    int half = N_OBS / 2;
    int queued = produce_range(&r, codec, prod, 0, half);
    CHECK_EQ_INT(rd_kafka_flush(prod, (int)(30000 * VIGIL_TIMEOUT_SCALE)), 0);

    r.worker = worker_start(&r);
    CHECK(r.worker > 0);
    if (r.worker <= 0)
        goto out;
    r.target = N_OBS / 8;
    CHECK(testlib_wait(stored_at_least, &r, 60));
    printf("injected: faults start with %ld of %d observations stored\n", stored(&r), N_OBS);

    /* 1 and 2: request errors everywhere, coordinator to broker 2. */
    size_t pushed_fetch = push_errors(&r, API_FETCH, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    size_t pushed_commit =
        push_errors(&r, API_OFFSET_COMMIT, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    size_t pushed_produce = push_errors(&r, API_PRODUCE,
                                        RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    rd_kafka_mock_coordinator_set(r.mc, "group", r.group, 2);
    printf("injected: %zu Produce, %zu Fetch, %zu OffsetCommit errors over %d brokers; "
           "group coordinator moved 1 -> 2\n",
           pushed_produce, pushed_fetch, pushed_commit, N_BROKERS);
    /* Fetch errors are hit only on brokers that lead a partition of ours,
     * so not every stack drains; wait a bounded time, then count. */
    testlib_wait(fetch_and_commit_errors_hit, &r, 10);

    /* 3: broker 1 down while the second half arrives; coordinator to 3. */
    rd_kafka_mock_broker_set_down(r.mc, 1);
    printf("injected: broker 1 down\n");
    queued += produce_range(&r, codec, prod, half, N_OBS);
    hold_for(1.5);
    rd_kafka_mock_coordinator_set(r.mc, "group", r.group, 3);
    printf("injected: group coordinator moved 2 -> 3\n");
    hold_for(1.5);
    rd_kafka_mock_broker_set_up(r.mc, 1);
    printf("injected: broker 1 up after 3 s\n");
    CHECK_EQ_INT(rd_kafka_flush(prod, (int)(60000 * VIGIL_TIMEOUT_SCALE)), 0);
    CHECK_EQ_INT(queued, N_OBS);
    printf("counted: errors left unhit: Produce %zu of %zu, Fetch %zu of %zu, "
           "OffsetCommit %zu of %zu\n",
           stack_left(&r, API_PRODUCE), pushed_produce, stack_left(&r, API_FETCH), pushed_fetch,
           stack_left(&r, API_OFFSET_COMMIT), pushed_commit);
    CHECK(stack_left(&r, API_PRODUCE) < pushed_produce);
    CHECK(stack_left(&r, API_FETCH) < pushed_fetch);
    CHECK(stack_left(&r, API_OFFSET_COMMIT) < pushed_commit);

    /* The end state. */
    r.target = N_OBS;
    CHECK(testlib_wait(stored_at_least, &r, 90));
    long rows = stored(&r);
    long distinct = pg_count(&r, "SELECT count(DISTINCT observation_id) FROM observations "
                                 "WHERE study_id = $1");
    long alerts = pg_count(&r, "SELECT count(*) FROM alerts WHERE study_id = $1");
    long alerts_ok = pg_count(&r, "SELECT count(DISTINCT a.observation_id) FROM alerts a "
                                  "JOIN observations o USING (observation_id) "
                                  "WHERE a.study_id = $1 AND o.value >= 6.5");
    int expected = N_OBS / ALERT_EVERY;
    printf("counted: PostgreSQL: %ld observations (%ld distinct) of %d; %ld alerts, %ld on "
           "expected observations, of %d expected\n",
           rows, distinct, N_OBS, alerts, alerts_ok, expected);
    CHECK_EQ_INT(rows, N_OBS);
    CHECK_EQ_INT(distinct, N_OBS);
    CHECK_EQ_INT(alerts, expected);
    CHECK_EQ_INT(alerts_ok, expected);

    /* Rows reach PostgreSQL before their alerts are acknowledged (store,
     * then publish), so all 6000 rows say nothing about the alerts topic:
     * a batch for a partition led by the broker that was down can still
     * be waiting for its reconnect. An offset is committed only once its
     * alerts are acknowledged, so offsets at the end are the condition to
     * wait for before reading the topic. (Reading first is what made this
     * test see 105 of 120 alerts now and then: the 15 of one partition
     * were delivered seconds later.) */
    bool committed = testlib_wait(offsets_at_end, &r, 60);
    printf("counted: committed/end offsets: %s (%s)\n", r.offsets_seen,
           committed ? "all at the end" : "NOT all at the end");
    CHECK(committed);

    int total = 0, topic_distinct = 0, unexpected = 0, undecodable = 0;
    read_alerts(&r, codec, &total, &topic_distinct, &unexpected, &undecodable);
    printf("counted: alerts topic: %d messages, %d distinct expected, %d unexpected, "
           "%d undecodable, %d replayed copies\n",
           total, topic_distinct, unexpected, undecodable, total - topic_distinct - unexpected);
    CHECK_EQ_INT(topic_distinct, expected);
    CHECK_EQ_INT(unexpected, 0);
    CHECK_EQ_INT(undecodable, 0);
    int64_t dlq_end = high_watermark(prod, r.dlq, 0);
    printf("counted: dead letters %lld\n", (long long)dlq_end);
    CHECK_EQ_INT(dlq_end, 0);
    CHECK(worker_alive(&r));
    rc_worker = worker_stop(&r);
    r.worker = 0;
    CHECK_EQ_INT(rc_worker, 0);

out:
    if (r.worker > 0)
        worker_stop(&r);
    if (prod != NULL)
        rd_kafka_destroy(prod);
    if (r.mc != NULL)
        rd_kafka_mock_cluster_destroy(r.mc);
    if (owner != NULL)
        rd_kafka_destroy(owner);
    codec_destroy(codec);
    PQfinish(r.pg);
    int rc = testlib_done();
    if (rc != 0) {
        static char tail[16384];
        snprintf(cmd, sizeof cmd, "tail -n 30 %s | cut -c1-400", r.log_path);
        if (testlib_run(cmd, tail, sizeof tail) == 0)
            printf("worker log (%s), last lines:\n%s", r.log_path, tail);
    }
    return rc;
}
