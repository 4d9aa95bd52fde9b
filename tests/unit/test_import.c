/*
 * hospital/import against librdkafka's mock cluster (in this process, no
 * services): what import_run reports -- status, counts, the resume point,
 * the invalid lines and progress it hands the caller -- matches what is on
 * the topic, for a complete run, --skip, --strict, a cancel, a deadline
 * and deliveries that fail.
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "import.h"
#include "obs_json.h"
#include "testlib.h"
#include "trialgen.h"

#define N_RECORDS 30
#define N_PARTS 3
#define BAD_LINE 3 /* 1-based: record 2 is invalid */

static rd_kafka_mock_cluster_t *mc;
static const char *bootstraps;
static rd_kafka_t *counter; /* a plain client for watermarks */
static char path[64];

struct seen {
    int progress_calls;
    int invalid_lines;
    char last_invalid[1100];
};

static void on_progress(void *arg, const struct import_stats *st)
{
    struct seen *s = arg;
    s->progress_calls++;
    (void)st;
}

static void on_invalid(void *arg, const char *line)
{
    struct seen *s = arg;
    s->invalid_lines++;
    snprintf(s->last_invalid, sizeof s->last_invalid, "%s", line);
}

/* Writes N_RECORDS generated records as NDJSON, line BAD_LINE invalid. */
static int write_input(void)
{
    snprintf(path, sizeof path, "/tmp/vigil-test-import-%d.ndjson", (int)getpid());
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    struct trialgen g;
    trialgen_init(&g);
    for (int i = 0; i < N_RECORDS; i++) {
        struct observation o;
        char line[OBS_JSON_MAX + 1];
        trialgen_get(&g, (uint64_t)i, &o);
        size_t n = obs_json_format(&o, line, sizeof line - 1);
        line[n] = '\0';
        fprintf(f, "%s\n", i + 1 == BAD_LINE ? "{\"bad\": 1}" : line);
    }
    return fclose(f);
}

/* Messages on TOPIC: the sum of its partitions' high watermarks. */
static int64_t on_topic(const char *topic)
{
    int64_t total = 0;
    for (int32_t p = 0; p < N_PARTS; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(counter, topic, p, &lo, &hi, 5000) != 0)
            return -1;
        total += hi;
    }
    return total;
}

/* Runs an import of the test file to a new TOPIC with OPT's knobs. */
static int run(const char *topic, struct import_options opt, struct ctx *cancel,
               const struct config *cfg, struct seen *s, struct import_result *res)
{
    rd_kafka_mock_topic_create(mc, topic, N_PARTS, 1);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    opt.input = f;
    opt.path = path;
    opt.cfg = cfg;
    opt.bootstrap = bootstraps;
    opt.topic = topic;
    opt.max_in_flight = 8; /* a window of 32: smaller than the input */
    if (opt.flush_timeout_s == 0)
        opt.flush_timeout_s = 30;
    opt.observer = (struct import_observer){on_progress, on_invalid, s};
    memset(s, 0, sizeof *s);
    char err[512];
    int rc = import_run(&opt, cancel, res, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "import_run: %s\n", err);
    fclose(f);
    return rc;
}

static void test_complete(void)
{
    struct seen s;
    struct import_result r;
    CHECK_EQ_INT(run("imp.complete", (struct import_options){0}, NULL, NULL, &s, &r), 0);
    CHECK_EQ_INT(r.status, IMPORT_COMPLETE);
    CHECK_EQ_INT(r.stats.imported, N_RECORDS - 1);
    CHECK_EQ_INT(r.stats.invalid, 1);
    CHECK_EQ_INT(r.resume, N_RECORDS);
    CHECK_EQ_INT(r.failed, 0);
    CHECK(r.flushed);
    CHECK_EQ_INT(on_topic("imp.complete"), N_RECORDS - 1);
    CHECK_EQ_INT(s.invalid_lines, 1);
    char want[200];
    snprintf(want, sizeof want, "%s:%d: missing field observation_id", path, BAD_LINE);
    CHECK_EQ_STR(s.last_invalid, want);
    CHECK(s.progress_calls >= 1);
    CHECK(r.stats.bytes > 0);
}

static void test_skip(void)
{
    struct seen s;
    struct import_result r;
    CHECK_EQ_INT(run("imp.skip", (struct import_options){.skip = 10}, NULL, NULL, &s, &r), 0);
    CHECK_EQ_INT(r.status, IMPORT_COMPLETE);
    CHECK_EQ_INT(r.skipped, 10);
    CHECK_EQ_INT(r.stats.imported, N_RECORDS - 10);
    CHECK_EQ_INT(r.stats.invalid, 0);
    CHECK_EQ_INT(r.resume, N_RECORDS);
    CHECK_EQ_INT(on_topic("imp.skip"), N_RECORDS - 10);
}

static void test_strict(void)
{
    struct seen s;
    struct import_result r;
    CHECK_EQ_INT(run("imp.strict", (struct import_options){.strict = true}, NULL, NULL, &s, &r),
                 0);
    CHECK_EQ_INT(r.status, IMPORT_FAILED);
    CHECK(r.strict_stop);
    /* Stopped at the bad record: the two before it are on the topic and
     * the resume point is the bad record itself. */
    CHECK_EQ_INT(r.resume, BAD_LINE - 1);
    CHECK_EQ_INT(r.stats.imported, BAD_LINE - 1);
    CHECK_EQ_INT(on_topic("imp.strict"), BAD_LINE - 1);
    CHECK_EQ_STR(r.producer_error, "");
}

static void test_stopped(void)
{
    struct seen s;
    struct import_result r;
    struct ctx *cancelled = ctx_new(NULL);
    ctx_cancel(cancelled);
    CHECK_EQ_INT(run("imp.cancel", (struct import_options){.skip = 4}, cancelled, NULL, &s, &r),
                 0);
    CHECK_EQ_INT(r.status, IMPORT_PARTIAL);
    CHECK_EQ_INT(r.stopped, CTX_ERR_CANCELED);
    CHECK_EQ_INT(r.stats.imported, 0);
    CHECK_EQ_INT(r.resume, 4);
    CHECK_EQ_INT(on_topic("imp.cancel"), 0);
    ctx_destroy(cancelled);

    struct ctx *late = ctx_new_deadline(NULL, deadline_now());
    CHECK_EQ_INT(run("imp.deadline", (struct import_options){0}, late, NULL, &s, &r), 0);
    CHECK_EQ_INT(r.status, IMPORT_PARTIAL);
    CHECK_EQ_INT(r.stopped, CTX_ERR_DEADLINE_EXCEEDED);
    CHECK_EQ_INT(r.resume, 0);
    ctx_destroy(late);
}

/* With the broker down, every delivery times out: the import fails,
 * says which record failed first, and resumes from the start. */
static void test_delivery_failure(void)
{
    static const struct config_item none[] = {{NULL, NULL, NULL, NULL, false}};
    struct config *cfg = config_new(none);
    char err[256];
    CHECK(cfg != NULL);
    if (cfg == NULL)
        return;
    CHECK_EQ_INT(config_set(cfg, "kafka.message.timeout.ms", "300", err, sizeof err), 0);
    rd_kafka_mock_broker_set_down(mc, 1);
    struct seen s;
    struct import_result r;
    CHECK_EQ_INT(run("imp.down", (struct import_options){0}, NULL, cfg, &s, &r), 0);
    rd_kafka_mock_broker_set_up(mc, 1);
    CHECK_EQ_INT(r.status, IMPORT_FAILED);
    CHECK(r.delivery_failures > 0);
    CHECK_EQ_INT(r.failed, r.delivery_failures);
    CHECK(strncmp(r.first_failure, "record ", 7) == 0);
    CHECK_EQ_INT(r.stats.imported, 0);
    CHECK_EQ_INT(r.resume, 0);
    config_destroy(cfg);
}

int main(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    rd_kafka_t *owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    mc = owner ? rd_kafka_mock_cluster_new(owner, 1) : NULL;
    CHECK(mc != NULL);
    CHECK_EQ_INT(write_input(), 0);
    if (mc == NULL)
        return testlib_done();
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    rd_kafka_conf_set(cc, "bootstrap.servers", bootstraps, err, sizeof err);
    rd_kafka_conf_set(cc, "log_level", "3", err, sizeof err);
    counter = rd_kafka_new(RD_KAFKA_PRODUCER, cc, err, sizeof err);
    CHECK(counter != NULL);

    test_complete();
    test_skip();
    test_strict();
    test_stopped();
    test_delivery_failure();

    rd_kafka_destroy(counter);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(owner);
    unlink(path);
    return testlib_done();
}
