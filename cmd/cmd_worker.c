/* vigil worker: flags and settings, then consumer/worker.c does the work. */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "log.h"
#include "settings.h"
#include "sigwatch.h"
#include "worker.h"

static const struct config_item items[] = {
    {"bootstrap", "VIGIL_KAFKA_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"group", "VIGIL_GROUP", "vigil-workers", "consumer group", false},
    {"topic", "VIGIL_TOPIC", "vigil.observations", "observations topic", false},
    {"dlq_topic", "VIGIL_DLQ_TOPIC", "vigil.observations.dlq", "dead-letter topic", false},
    {"alerts_topic", "VIGIL_ALERTS_TOPIC", "vigil.alerts", "alerts topic", false},
    {"rules", "VIGIL_RULES", "/etc/vigil/rules.yaml",
     "rules file (reloaded on SIGHUP and when it changes)", false},
    {"pg_conninfo", "VIGIL_PG_CONNINFO", "",
     "libpq conninfo; empty: libpq's PG* variables (PGPASSFILE for the password)", true},
    {"http", "VIGIL_HTTP_ADDR", "127.0.0.1:9100", "/metrics, /healthz, /readyz address; empty: off",
     false},
    {"registry_url", "VIGIL_REGISTRY_URL", NULL,
     "Confluent Schema Registry URL (for magic-byte framed messages)", false},
    {"assignor", "VIGIL_ASSIGNOR", "range",
     "partition.assignment.strategy: range, roundrobin or cooperative-sticky", false},
    {"threads", "VIGIL_THREADS", NULL, "analysis threads (default: number of cores)", false},
    {"grace", "VIGIL_GRACE", "25", "seconds to drain, commit and leave on SIGTERM", false},
    {"batch_rows", "VIGIL_BATCH_ROWS", "1000", "rows per PostgreSQL batch", false},
    {"batch_ms", "VIGIL_BATCH_MS", "20", "longest wait before writing a batch (ms)", false},
    {"store_writers", "VIGIL_STORE_WRITERS", "4",
     "PostgreSQL connections writing batches concurrently (subjects spread over them)", false},
    {"subject_memory_mb", "VIGIL_SUBJECT_MEMORY_MB", "256",
     "memory for subject states, all analysis threads together (least recently used "
     "evicted, reloaded from PostgreSQL on next sight); 0: limited by max_subjects only",
     false},
    {"max_subjects", "VIGIL_MAX_SUBJECTS", "100000",
     "subject states kept per analysis thread (least recently used evicted)", false},
    {"max_message_bytes", "VIGIL_MAX_MESSAGE_BYTES", "1048576",
     "larger messages are dead-lettered as oversize", false},
    {"max_record_bytes", "VIGIL_MAX_RECORD_BYTES", "67108864",
     "the largest record the topics may hold (set their max.message.bytes no higher): fetched "
     "whole, and dead-lettered whole when the dead-letter topic takes it",
     false},
    {"dlq_truncate_bytes", "VIGIL_DLQ_TRUNCATE_BYTES", "65536",
     "a dead letter refused whole carries the record's first this many bytes, its size and "
     "SHA-256",
     false},
    {"dlq_policy", "VIGIL_DLQ_POLICY", "skip",
     "when not even the truncated dead letter can be written: skip (record it in PostgreSQL's "
     "dead_letters, log, count, move on) or stall (retry; the partition waits)",
     false},
    {"stall_seconds", "VIGIL_STALL_SECONDS", "300",
     "/readyz fails while a partition's oldest unfinished message is older; 0: never", false},
    {"max_inflight_per_partition", "VIGIL_MAX_INFLIGHT_PER_PARTITION", "20000",
     "messages of one partition in progress at once; beyond, the partition pauses", false},
    {"future_tolerance", "VIGIL_FUTURE_TOLERANCE", "300",
     "seconds a result's effective or issue time may be ahead of its arrival (clock skew); "
     "beyond, a data-quality finding, not analysed",
     false},
    {"horizon_days", "VIGIL_RESULT_HORIZON_DAYS", "3650",
     "days before its arrival a result's effective time may be; older: a data-quality "
     "finding, not analysed",
     false},
    {"log_level", "VIGIL_LOG_LEVEL", "info", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil worker [OPTIONS]\n\n"
            "Consumes vigil.observations in consumer group vigil-workers, decodes,\n"
            "cleans and analyses each observation, stores it in PostgreSQL and\n"
            "publishes an alert to vigil.alerts for every safety signal.\n\n"
            "options (each overrides the setting of the same name):\n"
            "  -b, --bootstrap HOSTS  Kafka bootstrap servers\n"
            "  -g, --group NAME       consumer group\n"
            "  -t, --topic NAME       observations topic\n"
            "  -r, --rules FILE       rules file\n"
            "  -j, --threads N        analysis threads\n"
            "      --grace SECONDS    shutdown grace\n"
            "      --http ADDR        HTTP endpoint address (HOST:PORT)\n"
            "      --pg CONNINFO      PostgreSQL conninfo\n"
            "      --assignor NAME    partition assignment strategy\n");
    cli_usage_common(out);
    fprintf(out, "signals: SIGTERM/SIGINT drain, commit and leave within --grace seconds;\n"
                 "SIGHUP reloads the rules.\n");
    cli_usage_role_exit(out, "messages");
    config_print_help(items, out);
}

CLI_ROLE(run, worker_run)

int cmd_worker(int argc, char **argv)
{
    static const struct cli_flag flags[] = {
        CLI_CONSUMER_FLAGS,
        {"rules", 'r', "rules", 0, true},
        {"threads", 'j', "threads", 0, true},
        {0},
    };
    struct cli_settings set;
    int status;
    if (cli_settings_parse(&set, "worker", usage, flags, argc, argv, &status) != 0)
        return status;

#ifdef __GLIBC__
    /* Before any thread starts. glibc gives threads that allocate arenas of
     * their own (up to 8 per core) and memory freed stays in its arena:
     * with the analysis threads, the store writers and librdkafka's
     * threads, 2 arenas against the default peaked 8-10 MiB lower
     * (bench/worker, 500,000 observations) at the same throughput.
     * MALLOC_ARENA_MAX in the environment still decides. */
    if (getenv("MALLOC_ARENA_MAX") == NULL)
        mallopt(M_ARENA_MAX, 2);
#endif
    char err[2048];
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        return cli_fail("worker", err);
    int rc = 1;
    long threads, grace, batch_rows, batch_ms, store_writers, max_subjects, subject_mb,
        max_message, tolerance, horizon;
    if (config_get(cfg, "threads") == NULL) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? n : 2;
    } else if (config_get_long(cfg, "threads", 1, 256, &threads, err, sizeof err) != 0) {
        goto fail;
    }
    if (config_get_long(cfg, "grace", 1, 3600, &grace, err, sizeof err) != 0 ||
        config_get_long(cfg, "batch_rows", 1, 100000, &batch_rows, err, sizeof err) != 0 ||
        config_get_long(cfg, "batch_ms", 1, 60000, &batch_ms, err, sizeof err) != 0 ||
        config_get_long(cfg, "store_writers", 1, 64, &store_writers, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_subjects", 16, 100000000, &max_subjects, err, sizeof err) != 0 ||
        config_get_long(cfg, "subject_memory_mb", 0, 1024 * 1024, &subject_mb, err, sizeof err) !=
            0 ||
        config_get_long(cfg, "max_message_bytes", 64, 64 * 1024 * 1024, &max_message, err,
                        sizeof err) != 0 ||
        config_get_long(cfg, "future_tolerance", 0, 7 * 86400, &tolerance, err, sizeof err) != 0 ||
        config_get_long(cfg, "horizon_days", 1, 36500, &horizon, err, sizeof err) != 0)
        goto fail;

    struct worker_options opt = {
        .alerts_topic = config_get(cfg, "alerts_topic"),
        .rules_path = config_get(cfg, "rules"),
        .conninfo = config_get(cfg, "pg_conninfo"),
        .http_addr = config_get(cfg, "http"),
        .registry_url = config_get(cfg, "registry_url"),
        .threads = (int)threads,
        .grace_s = (int)grace,
        .batch_rows = (int)batch_rows,
        .batch_ms = (int)batch_ms,
        .store_writers = (int)store_writers,
        .max_subjects = (size_t)max_subjects,
        .max_subject_bytes = (size_t)subject_mb * 1024 * 1024,
        .max_message_bytes = (size_t)max_message,
        .time_limits = {.future_tolerance_ms = (int64_t)tolerance * 1000,
                        .horizon_ms = (int64_t)horizon * 86400000},
    };
    if (cli_group_config(cfg, &opt.consumer, err, sizeof err) != 0 ||
        cli_deadletter_config(cfg, &opt.consumer, "worker", &opt.dead_letters, err, sizeof err) !=
            0)
        goto fail;
    if (opt.consumer.max_record_bytes < opt.max_message_bytes) {
        snprintf(err, sizeof err,
                 "max_record_bytes (%zu) must not be below max_message_bytes (%zu): a record "
                 "the worker would process could not be fetched",
                 opt.consumer.max_record_bytes, opt.max_message_bytes);
        goto fail;
    }
    rc = cli_serve("worker", run, &opt);
    config_destroy(cfg);
    return rc;
fail:
    config_destroy(cfg);
    return cli_fail("worker", err);
}
