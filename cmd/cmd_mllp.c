/* vigil mllp: flags and settings, then hospital/mllp_server.c does the work. */
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "log.h"
#include "mllp_server.h"
#include "settings.h"

static const struct config_item items[] = {
    {"bootstrap", "VIGIL_KAFKA_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"topic", "VIGIL_TOPIC", "vigil.observations", "observations topic", false},
    {"dlq_topic", "VIGIL_HL7_DLQ_TOPIC", "vigil.hl7.dlq",
     "dead-letter topic for messages answered AE/AR (patient fields removed)", false},
    {"listen", "VIGIL_MLLP_LISTEN", "127.0.0.1:2575", "MLLP address HOST:PORT (port 0: any)",
     false},
    {"http", "VIGIL_MLLP_HTTP_ADDR", "127.0.0.1:9102",
     "/metrics, /healthz, /readyz address; empty: off", false},
    {"pg_conninfo", "VIGIL_PG_CONNINFO", "",
     "libpq conninfo (the hl7_enrolments table); empty: libpq's PG* variables", true},
    {"facilities", "VIGIL_MLLP_FACILITIES", NULL,
     "facility mapping YAML (time zones, local codes, unit spellings); reloaded on SIGHUP and "
     "when it changes",
     false},
    {"processing_ids", "VIGIL_MLLP_PROCESSING_IDS", "P",
     "accepted MSH-11 processing ids (P production, T training, D debugging)", false},
    {"tls_cert", "VIGIL_MLLP_TLS_CERT", NULL, "PEM certificate chain: MLLP over TLS when set",
     false},
    {"tls_key", "VIGIL_MLLP_TLS_KEY", NULL, "PEM private key of tls_cert", false},
    {"tls_client_ca", "VIGIL_MLLP_TLS_CLIENT_CA", NULL,
     "PEM CA bundle: when set, clients must present a certificate it signed", false},
    {"max_connections", "VIGIL_MLLP_MAX_CONNECTIONS", "128",
     "connections served at once; more are closed at once and counted", false},
    {"idle_timeout", "VIGIL_MLLP_IDLE_TIMEOUT", "300", "seconds a silent connection stays open",
     false},
    {"ack_timeout", "VIGIL_MLLP_ACK_TIMEOUT", "4000",
     "ms to wait for Kafka before answering AE; keep it below the sender's response timeout",
     false},
    {"max_message_bytes", "VIGIL_MLLP_MAX_MESSAGE_BYTES", "1048576",
     "longer messages are answered AR", false},
    {"max_in_flight", "VIGIL_MLLP_MAX_IN_FLIGHT", "20000",
     "observations sent to Kafka and not yet acknowledged, at most", false},
    {"enrol_refresh", "VIGIL_MLLP_ENROL_REFRESH", "60",
     "seconds between full reloads of hl7_enrolments (changes also arrive by NOTIFY)", false},
    {"grace", "VIGIL_GRACE", "25", "seconds to finish messages in progress on SIGTERM", false},
    {"log_level", "VIGIL_LOG_LEVEL", "info", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil mllp [OPTIONS]\n\n"
            "Listens for HL7 v2 ORU^R01 results (v2.3 to v2.5.1) over MLLP, forwards the\n"
            "observations of enrolled patients to vigil.observations and answers each\n"
            "message with an original-mode ACK: AA only once Kafka has acknowledged every\n"
            "observation of the message; AE (mapping error, Kafka unavailable) or AR (not\n"
            "ORU^R01, not HL7, too large) with ERR segments otherwise. AE/AR messages go to\n"
            "the dead-letter topic with every patient-identifying field removed. Patients\n"
            "not in hl7_enrolments are dropped and counted. See hospital/README.md.\n\n"
            "options (each overrides the setting of the same name):\n"
            "  -b, --bootstrap HOSTS   Kafka bootstrap servers\n"
            "  -t, --topic NAME        observations topic\n"
            "  -l, --listen HOST:PORT  MLLP address\n"
            "  -f, --facilities FILE   facility mapping\n"
            "      --http ADDR         HTTP endpoint address (HOST:PORT)\n"
            "      --pg CONNINFO       PostgreSQL conninfo\n"
            "      --max-connections N\n"
            "      --idle-timeout SECONDS\n"
            "      --ack-timeout MS\n"
            "      --grace SECONDS\n"
            "  (-X PROP=VALUE: vigil's defaults for this producer are enable.idempotence=true\n"
            "  acks=all linger.ms=1 message.timeout.ms=ack_timeout)\n");
    cli_usage_common(out);
    fprintf(out, "signals: SIGTERM/SIGINT finish the messages in progress and exit 0;\n"
                 "SIGHUP reloads the facility mapping.\n\n");
    config_print_help(items, out);
}

struct has_prop {
    const char *name;
    bool found;
};

static void find_prop(void *arg, const char *name, const char *value)
{
    (void)value;
    struct has_prop *h = arg;
    if (strcmp(h->name, name) == 0)
        h->found = true;
}

/* Sets librdkafka property NAME unless the user did. */
static int default_prop(struct config *cfg, const char *name, const char *value, char *err,
                        size_t errsz)
{
    struct has_prop h = {name, false};
    config_kafka_foreach(cfg, find_prop, &h);
    if (h.found)
        return 0;
    char key[128];
    snprintf(key, sizeof key, "kafka.%s", name);
    return config_set(cfg, key, value, err, errsz);
}

CLI_ROLE(run, mllp_server_run)

int cmd_mllp(int argc, char **argv)
{
    static const struct cli_flag flags[] = {
        {"bootstrap", 'b', "bootstrap", 0, true},
        {"topic", 't', "topic", 0, true},
        {"listen", 'l', "listen", 0, true},
        {"facilities", 'f', "facilities", 0, true},
        {"http", 0, "http", 0, true},
        {"pg", 0, "pg_conninfo", 0, true},
        {"max-connections", 0, "max_connections", 0, true},
        {"idle-timeout", 0, "idle_timeout", 0, true},
        {"ack-timeout", 0, "ack_timeout", 0, true},
        {"grace", 0, "grace", 0, true},
        {0},
    };
    struct cli_settings set;
    int status;
    if (cli_settings_parse(&set, "mllp", usage, flags, argc, argv, &status) != 0)
        return status;

    char err[2048];
    int rc = 1;
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        return cli_fail("mllp", err);
    long max_conn, idle, ack, max_msg, in_flight, refresh, grace;
    if (config_get_long(cfg, "max_connections", 1, 10000, &max_conn, err, sizeof err) != 0 ||
        config_get_long(cfg, "idle_timeout", 1, 86400, &idle, err, sizeof err) != 0 ||
        config_get_long(cfg, "ack_timeout", 100, 600000, &ack, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_message_bytes", 1024, 64L * 1024 * 1024, &max_msg, err,
                        sizeof err) != 0 ||
        config_get_long(cfg, "max_in_flight", 1, 1000000, &in_flight, err, sizeof err) != 0 ||
        config_get_long(cfg, "enrol_refresh", 1, 86400, &refresh, err, sizeof err) != 0 ||
        config_get_long(cfg, "grace", 1, 3600, &grace, err, sizeof err) != 0)
        goto fail;
    const char *cert = config_get(cfg, "tls_cert"), *key = config_get(cfg, "tls_key");
    if ((cert && *cert) != (key && *key)) {
        snprintf(err, sizeof err, "tls_cert and tls_key must be set together");
        goto fail;
    }
    const char *ids = config_get(cfg, "processing_ids");
    if (ids == NULL || ids[0] == '\0' || strspn(ids, "PTD") != strlen(ids)) {
        snprintf(err, sizeof err, "processing_ids must be letters of P, T and D, not '%s'",
                 ids ? ids : "");
        goto fail;
    }
    /* Every delivery is reported by the ACK deadline, and a connection's
     * message is not held back to fill a batch: each waits for its ACK. */
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%ld", ack);
    if (default_prop(cfg, "message.timeout.ms", timeout, err, sizeof err) != 0 ||
        default_prop(cfg, "linger.ms", "1", err, sizeof err) != 0)
        goto fail;

    struct mllp_server_options opt = {
        .cfg = cfg,
        .bootstrap = config_get(cfg, "bootstrap"),
        .topic = config_get(cfg, "topic"),
        .dlq_topic = config_get(cfg, "dlq_topic"),
        .listen = config_get(cfg, "listen"),
        .http_addr = config_get(cfg, "http"),
        .conninfo = config_get(cfg, "pg_conninfo"),
        .facilities = config_get(cfg, "facilities"),
        .processing_ids = ids,
        .tls_cert = cert,
        .tls_key = key,
        .tls_client_ca = config_get(cfg, "tls_client_ca"),
        .max_connections = (int)max_conn,
        .idle_timeout_s = (int)idle,
        .ack_timeout_ms = (int)ack,
        .grace_s = (int)grace,
        .enrol_refresh_s = (int)refresh,
        .max_message_bytes = (size_t)max_msg,
        .max_in_flight = (size_t)in_flight,
    };
    /* A peer that closes while its ACK is written must not kill the
     * process (TLS writes go through write(2), which raises SIGPIPE). */
    signal(SIGPIPE, SIG_IGN);
    rc = cli_serve("mllp", run, &opt);
    config_destroy(cfg);
    return rc;
fail:
    config_destroy(cfg);
    return cli_fail("mllp", err);
}
