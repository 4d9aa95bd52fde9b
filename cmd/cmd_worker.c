/* vigil worker: flags and settings, then consumer/worker.c does the work. */
#include <getopt.h>
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
    {"max_subjects", "VIGIL_MAX_SUBJECTS", "100000",
     "subject states kept per analysis thread (least recently used evicted)", false},
    {"max_message_bytes", "VIGIL_MAX_MESSAGE_BYTES", "1048576",
     "larger messages are dead-lettered as oversize", false},
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
            "  -c, --config FILE      YAML settings file (also VIGIL_CONFIG)\n"
            "  -b, --bootstrap HOSTS  Kafka bootstrap servers\n"
            "  -g, --group NAME       consumer group\n"
            "  -t, --topic NAME       observations topic\n"
            "  -r, --rules FILE       rules file\n"
            "  -j, --threads N        analysis threads\n"
            "      --grace SECONDS    shutdown grace\n"
            "      --http ADDR        HTTP endpoint address (HOST:PORT)\n"
            "      --pg CONNINFO      PostgreSQL conninfo\n"
            "      --assignor NAME    partition assignment strategy\n"
            "  -X PROP=VALUE          any librdkafka property\n"
            "      --log-level LEVEL  debug, info, warn, error\n"
            "  -h, --help             this help\n\n"
            "signals: SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the rules.\n\n");
    config_print_help(items, out);
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"bootstrap", required_argument, NULL, 'b'},
        {"group", required_argument, NULL, 'g'},  {"topic", required_argument, NULL, 't'},
        {"rules", required_argument, NULL, 'r'},  {"threads", required_argument, NULL, 'j'},
        {"grace", required_argument, NULL, 1},    {"http", required_argument, NULL, 2},
        {"pg", required_argument, NULL, 3},       {"assignor", required_argument, NULL, 4},
        {"log-level", required_argument, NULL, 5}, {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct cli_settings set;
    cli_settings_init(&set);
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:b:g:t:r:j:X:h", opts, NULL)) != -1) {
        const char *key = NULL;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'c':
            set.config_file = optarg;
            continue;
        case 'b': key = "bootstrap"; break;
        case 'g': key = "group"; break;
        case 't': key = "topic"; break;
        case 'r': key = "rules"; break;
        case 'j': key = "threads"; break;
        case 1: key = "grace"; break;
        case 2: key = "http"; break;
        case 3: key = "pg_conninfo"; break;
        case 4: key = "assignor"; break;
        case 5: key = "log_level"; break;
        case 'X':
            if (cli_settings_add_pair(&set, "kafka.", optarg) != 0)
                return cli_bad_usage("worker", usage, "-X wants PROP=VALUE, not '%s'", optarg);
            continue;
        default:
            return cli_bad_option("worker", usage, argv);
        }
        if (cli_settings_add(&set, key, optarg) != 0)
            return cli_bad_usage("worker", usage, "too many options");
    }
    if (optind < argc)
        return cli_bad_usage("worker", usage, "unexpected argument '%s'", argv[optind]);

    char err[2048];
    int rc = 1;
    struct ctx *stop = NULL;
    struct sigwatch *sw = NULL;
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        goto fail;
    long threads, grace, batch_rows, batch_ms, max_subjects, max_message;
    if (config_get(cfg, "threads") == NULL) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? n : 2;
    } else if (config_get_long(cfg, "threads", 1, 256, &threads, err, sizeof err) != 0) {
        goto fail;
    }
    if (config_get_long(cfg, "grace", 1, 3600, &grace, err, sizeof err) != 0 ||
        config_get_long(cfg, "batch_rows", 1, 100000, &batch_rows, err, sizeof err) != 0 ||
        config_get_long(cfg, "batch_ms", 1, 60000, &batch_ms, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_subjects", 16, 100000000, &max_subjects, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_message_bytes", 64, 64 * 1024 * 1024, &max_message, err,
                        sizeof err) != 0)
        goto fail;

    struct worker_options opt = {
        .cfg = cfg,
        .bootstrap = config_get(cfg, "bootstrap"),
        .group = config_get(cfg, "group"),
        .topic = config_get(cfg, "topic"),
        .dlq_topic = config_get(cfg, "dlq_topic"),
        .alerts_topic = config_get(cfg, "alerts_topic"),
        .rules_path = config_get(cfg, "rules"),
        .conninfo = config_get(cfg, "pg_conninfo"),
        .http_addr = config_get(cfg, "http"),
        .registry_url = config_get(cfg, "registry_url"),
        .assignor = config_get(cfg, "assignor"),
        .threads = (int)threads,
        .grace_s = (int)grace,
        .batch_rows = (int)batch_rows,
        .batch_ms = (int)batch_ms,
        .max_subjects = (size_t)max_subjects,
        .max_message_bytes = (size_t)max_message,
    };
    stop = ctx_new(NULL);
    static atomic_bool reload;
    sw = stop ? sigwatch_start(stop, &reload) : NULL;
    if (sw == NULL) {
        snprintf(err, sizeof err, "could not start the signal thread");
        goto fail;
    }
    if (worker_run(&opt, stop, &reload, err, sizeof err) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "vigil worker: %s\n", err);
    log_msg(LOG_ERROR, "worker", "%s", err);
out:
    sigwatch_stop(sw);
    ctx_destroy(stop);
    config_destroy(cfg);
    return rc;
}
