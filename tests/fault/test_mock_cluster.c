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
 * The notifier, on the same consumer-group engine, then reads those alerts
 * from the mock with Fetch and OffsetCommit errors and its coordinator
 * moved twice, and emails them through the real
 * SMTP server: every alert is sent exactly once to its one subscriber (the
 * notification log and the SMTP spool agree), its group's offsets reach the
 * end, and it exits 0.
 *
 * The error stacks are per broker so the test can count how many injected
 * errors were actually hit (rd_kafka_mock_broker_error_stack_cnt); it
 * prints what it injected and what it counted.
 */
#include "testlib.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "testkafka.h"

/* librdkafka 2.0.2's mock broker, brought back up, binds its old port again
 * without SO_REUSEADDR: if connections it closed when it went down are in
 * TIME_WAIT on that port, the bind fails and the mock aborts the process
 * ("Failed to create mock broker listener", seen in CI). This definition,
 * exported from the test program, wins over libc's for librdkafka too: it
 * sets SO_REUSEADDR (harmless on any socket about to bind) and binds. */
int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real_bind)(int, const struct sockaddr *, socklen_t);
    if (real_bind == NULL)
        real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return real_bind(fd, addr, len);
}

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
    char nlog_path[256];
    char ngroup[64];
    char researcher[64];
    char email[96];
    pid_t worker;
    pid_t notifier;
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

/* Reads every message of TOPIC (all partitions, up to their current ends)
 * and counts the alerts whose evidence names an expected observation
 * (i % ALERT_EVERY == 0 of this run), distinct and in total. */
static void read_alerts(struct run *r, struct codec *codec, int *total, int *distinct,
                        int *unexpected, int *undecodable)
{
    *total = *distinct = *unexpected = *undecodable = 0;
    rd_kafka_t *c = testkafka_client(RD_KAFKA_CONSUMER, r->bootstraps, NULL);
    if (c == NULL)
        return;
    unsigned char *seen = calloc(N_OBS, 1);
    for (int32_t p = 0; p < N_PARTS; p++) {
        int64_t end = testkafka_end(c, r->alerts, p);
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
    return testkafka_committed_at_end(r->bootstraps, r->group, r->topic, N_PARTS, r->offsets_seen,
                                      sizeof r->offsets_seen);
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

/* Starts ARGS (NULL-terminated) with stdout and stderr to LOG and this
 * process's environment, where each "NAME=value" of SET replaces NAME. */
static pid_t spawn(const char *const *args, const char *log, const char *const *set)
{
    size_t nargs = 0;
    while (args[nargs] != NULL)
        nargs++;
    /* posix_spawn wants mutable strings. */
    char **argv = calloc(nargs + 1, sizeof *argv);
    for (size_t i = 0; i < nargs; i++)
        argv[i] = strdup(args[i]);
    size_t n = 0, nset = 0;
    while (environ[n] != NULL)
        n++;
    while (set[nset] != NULL)
        nset++;
    char **envp = calloc(n + nset + 1, sizeof *envp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nset; j++) {
            size_t len = (size_t)(strchr(set[j], '=') - set[j]) + 1;
            replaced = replaced || strncmp(environ[i], set[j], len) == 0;
        }
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < nset; j++)
        envp[k++] = (char *)set[j];
    envp[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    if (posix_spawn(&pid, VIGIL_BINARY, &fa, NULL, argv, envp) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    for (size_t i = 0; i < nargs; i++)
        free(argv[i]);
    free(argv);
    return pid;
}

static pid_t worker_start(struct run *r)
{
    char rules[512];
    snprintf(rules, sizeof rules, "%s/tests/integration/rules/pipeline.yaml", VIGIL_SOURCE_DIR);
    const char *args[] = {
        VIGIL_BINARY, "worker", "--rules", rules, "--topic", r->topic, "--group", r->group,
        "--http", "127.0.0.1:0", "--threads", "2", "--grace", "20", "-b", r->bootstraps,
        "--pg", testlib_env("VIGIL_PG_CONNINFO"), "-X", "session.timeout.ms=6000",
        "-X", "heartbeat.interval.ms=1000", NULL,
    };
    char dlq_env[160], alerts_env[160];
    snprintf(dlq_env, sizeof dlq_env, "VIGIL_DLQ_TOPIC=%s", r->dlq);
    snprintf(alerts_env, sizeof alerts_env, "VIGIL_ALERTS_TOPIC=%s", r->alerts);
    const char *set[] = {dlq_env, alerts_env, NULL};
    return spawn(args, r->log_path, set);
}

static pid_t notifier_start(struct run *r)
{
    const char *args[] = {
        VIGIL_BINARY, "notifier", "--topic", r->alerts, "--group", r->ngroup,
        "--http", "127.0.0.1:0", "--grace", "20", "-b", r->bootstraps,
        "--pg", testlib_env("VIGIL_PG_CONNINFO"), "--smtp-url", testlib_env("VIGIL_SMTP_URL"),
        "-s", "rate_per_min=0", "-s", "retry_base_ms=200", "-s", "retry_max_ms=1000",
        "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=1000", NULL,
    };
    const char *set[] = {"VIGIL_ALERTS_DLQ_TOPIC=", NULL};
    return spawn(args, r->nlog_path, set);
}

static bool alive(pid_t pid)
{
    int st;
    return waitpid(pid, &st, WNOHANG) == 0;
}

/* SIGTERM, then wait (bounded, then SIGKILL). Returns the exit status, or
 * -1 if it had to be killed or died of a signal. */
static int proc_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    double until = testlib_now() + 40.0 * VIGIL_TIMEOUT_SCALE;
    int st = 0;
    while (testlib_now() < until) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
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

/* ------------------------------------------------------- the notifier */

static bool pg_exec(struct run *r, const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(r->pg, sql, n, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "could not run %s: %s", sql, PQerrorMessage(r->pg));
    PQclear(res);
    return ok;
}

static long sent_to_subscriber(struct run *r)
{
    return pg_count(r, "SELECT count(*) FROM notifications WHERE researcher_id = $1 || '-rn' "
                       "AND channel = 'email' AND state = 'sent'");
}

static bool all_sent(void *arg)
{
    struct run *r = arg;
    return sent_to_subscriber(r) >= r->target;
}

static bool notifier_at_end(void *arg)
{
    struct run *r = arg;
    return testkafka_committed_at_end(r->bootstraps, r->ngroup, r->alerts, N_PARTS,
                                      r->offsets_seen, sizeof r->offsets_seen);
}

/* Counts the alert ids the SMTP spool holds for the subscriber: every
 * copy (TOTAL) and distinct ids (DISTINCT). */
static void spool_count(struct run *r, int *total, int *distinct)
{
    *total = *distinct = 0;
    const char *spool = testlib_env("VIGIL_SMTP_SPOOL");
    char path[512], line[4096];
    snprintf(path, sizeof path, "%s/index.jsonl", spool);
    FILE *idx = fopen(path, "r");
    if (idx == NULL)
        return;
    size_t cap = 256, n = 0;
    char **seen = calloc(cap, sizeof *seen);
    while (fgets(line, sizeof line, idx) != NULL) {
        if (strstr(line, r->email) == NULL)
            continue;
        json_error_t je;
        json_t *e = json_loads(line, 0, &je);
        const char *file = e ? json_string_value(json_object_get(e, "file")) : NULL;
        if (file != NULL) {
            snprintf(path, sizeof path, "%s/%s", spool, file);
            FILE *m = fopen(path, "r");
            char hdr[4096];
            while (m != NULL && fgets(hdr, sizeof hdr, m) != NULL) {
                if (strncasecmp(hdr, "X-Vigil-Alert-Ids:", 18) != 0)
                    continue;
                char *save = NULL;
                for (char *id = strtok_r(hdr + 18, " \t\r\n", &save); id != NULL;
                     id = strtok_r(NULL, " \t\r\n", &save)) {
                    (*total)++;
                    bool dup = false;
                    for (size_t i = 0; i < n && !dup; i++)
                        dup = strcmp(seen[i], id) == 0;
                    if (!dup && n < cap)
                        seen[n++] = strdup(id);
                }
                break;
            }
            if (m != NULL)
                fclose(m);
        }
        json_decref(e);
    }
    fclose(idx);
    *distinct = (int)n;
    for (size_t i = 0; i < n; i++)
        free(seen[i]);
    free(seen);
}

/* The notifier on the engine, against the alerts the worker left on the
 * mock, with Fetch and OffsetCommit errors, its coordinator moved and a
 * broker down for 3 s. */
static void notifier_phase(struct run *r)
{
    long expected = pg_count(r, "SELECT count(*) FROM alerts WHERE study_id = $1");
    const char *p_res[] = {r->researcher, r->email};
    const char *p_study[] = {r->study};
    const char *p_sub[] = {r->researcher, r->study};
    CHECK(pg_exec(r, "INSERT INTO researchers (researcher_id, name, email) VALUES ($1, 'mock', "
                     "$2)",
                  2, p_res));
    CHECK(pg_exec(r, "INSERT INTO studies (study_id, name) VALUES ($1, $1)", 1, p_study));
    CHECK(pg_exec(r, "INSERT INTO subscriptions (researcher_id, study_id, min_severity, "
                     "channels) VALUES ($1, $2, 'info', ARRAY['email'])",
                  2, p_sub));

    size_t pushed_fetch = push_errors(r, API_FETCH, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                                      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                      RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    size_t pushed_commit =
        push_errors(r, API_OFFSET_COMMIT, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
    rd_kafka_mock_coordinator_set(r->mc, "group", r->ngroup, 2);
    r->notifier = notifier_start(r);
    CHECK(r->notifier > 0);
    if (r->notifier <= 0)
        return;
    printf("notifier: %ld alerts to send; injected %zu Fetch, %zu OffsetCommit errors, "
           "coordinator on broker 2\n",
           expected, pushed_fetch, pushed_commit);
    /* No broker down here: librdkafka 2.0.2's mock re-binds a broker that
     * comes back to its old port, and on a busy machine another process
     * may hold it by then (an abort seen in CI); the worker's phase above
     * has the broker outage. */
    hold_for(1.5);
    rd_kafka_mock_coordinator_set(r->mc, "group", r->ngroup, 3);
    printf("notifier: coordinator moved 2 -> 3\n");

    r->target = expected;
    CHECK(testlib_wait(all_sent, r, 90));
    bool committed = testlib_wait(notifier_at_end, r, 60);
    printf("notifier: committed/end offsets: %s (%s)\n", r->offsets_seen,
           committed ? "all at the end" : "NOT all at the end");
    CHECK(committed);
    long rows = pg_count(r, "SELECT count(*) FROM notifications WHERE researcher_id = $1 || "
                            "'-rn'");
    long sent = sent_to_subscriber(r);
    int total = 0, distinct = 0;
    spool_count(r, &total, &distinct);
    printf("notifier: %ld notification rows, %ld sent; SMTP spool: %d alert ids, %d distinct, "
           "of %ld alerts\n",
           rows, sent, total, distinct, expected);
    CHECK(expected > 0);
    CHECK_EQ_INT(rows, expected);
    CHECK_EQ_INT(sent, expected);
    CHECK_EQ_INT(distinct, expected);
    CHECK_EQ_INT(total, expected);
    CHECK(alive(r->notifier));
    CHECK_EQ_INT(proc_stop(r->notifier), 0);
    r->notifier = 0;
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
    snprintf(r.nlog_path, sizeof r.nlog_path, "/tmp/vigil-mock-notifier-%d.log", (int)getpid());
    snprintf(r.ngroup, sizeof r.ngroup, "mock-notify-%s", r.study);
    snprintf(r.researcher, sizeof r.researcher, "%s-rn", r.study);
    snprintf(r.email, sizeof r.email, "rn.%s@test.example", r.study);

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

    prod = testkafka_client(RD_KAFKA_PRODUCER, r.bootstraps, NULL);
    CHECK(prod != NULL);
    if (prod == NULL)
        goto out;
    int half = N_OBS / 2;
    int queued = testkafka_produce(prod, codec, r.topic, r.study, 0, half, ALERT_EVERY);
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
    queued += testkafka_produce(prod, codec, r.topic, r.study, half, N_OBS, ALERT_EVERY);
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
    int64_t dlq_end = testkafka_end(prod, r.dlq, 0);
    printf("counted: dead letters %lld\n", (long long)dlq_end);
    CHECK_EQ_INT(dlq_end, 0);
    CHECK(alive(r.worker));
    rc_worker = proc_stop(r.worker);
    r.worker = 0;
    CHECK_EQ_INT(rc_worker, 0);

    notifier_phase(&r);

out:
    if (r.worker > 0)
        proc_stop(r.worker);
    if (r.notifier > 0)
        proc_stop(r.notifier);
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
        snprintf(cmd, sizeof cmd, "tail -n 30 %s | cut -c1-400", r.nlog_path);
        if (testlib_run(cmd, tail, sizeof tail) == 0)
            printf("notifier log (%s), last lines:\n%s", r.nlog_path, tail);
    }
    return rc;
}
