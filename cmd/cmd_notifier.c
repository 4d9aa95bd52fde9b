/* vigil notifier: flags and settings, then alerting/notifier.c does the work. */
#include <curl/curl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acklink.h"
#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "log.h"
#include "settings.h"
#include "notifier.h"
#include "sigwatch.h"

static const struct config_item items[] = {
    {"bootstrap", "VIGIL_KAFKA_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"group", "VIGIL_NOTIFIER_GROUP", "vigil-notifier", "consumer group", false},
    {"topic", "VIGIL_ALERTS_TOPIC", "vigil.alerts", "alerts topic", false},
    {"dlq_topic", "VIGIL_ALERTS_DLQ_TOPIC", "vigil.alerts.dlq",
     "dead-letter topic for alerts that do not decode; empty: record them in PostgreSQL's "
     "dead_letters, log and skip them",
     false},
    {"max_record_bytes", "VIGIL_MAX_RECORD_BYTES", "67108864",
     "the largest record the alerts topic may hold (set its max.message.bytes no higher): "
     "fetched whole, and dead-lettered whole when the dead-letter topic takes it",
     false},
    {"dlq_truncate_bytes", "VIGIL_DLQ_TRUNCATE_BYTES", "65536",
     "a dead letter refused whole carries the record's first this many bytes, its size and "
     "SHA-256",
     false},
    {"dlq_policy", "VIGIL_DLQ_POLICY", "skip",
     "when not even the truncated dead letter can be written: skip (record it in PostgreSQL's "
     "dead_letters, log, count, move on) or stall (retry; the partition waits)",
     false},
    {"stall_seconds", "VIGIL_STALL_SECONDS", "1200",
     "/readyz fails while a partition's oldest unfinished alert is older (above give_up: an "
     "alert may retry that long); 0: never",
     false},
    {"pg_conninfo", "VIGIL_PG_CONNINFO", "",
     "libpq conninfo; empty: libpq's PG* variables (PGPASSFILE for the password)", true},
    {"http", "VIGIL_NOTIFIER_HTTP_ADDR", "127.0.0.1:9101",
     "/metrics, /healthz, /readyz address; empty: off", false},
    {"registry_url", "VIGIL_REGISTRY_URL", NULL,
     "Confluent Schema Registry URL (for magic-byte framed messages)", false},
    {"assignor", "VIGIL_ASSIGNOR", "range",
     "partition.assignment.strategy: range, roundrobin or cooperative-sticky", false},
    {"grace", "VIGIL_GRACE", "25", "seconds to finish sends, commit and leave on SIGTERM", false},
    {"directory_refresh", "VIGIL_DIRECTORY_REFRESH", "300",
     "seconds between full directory reloads (changes arrive by LISTEN at once)", false},
    {"smtp_url", "VIGIL_SMTP_URL", NULL,
     "SMTP server, smtp://host:port (STARTTLS per smtp_tls) or smtps://host:port (implicit "
     "TLS); unset: email disabled",
     false},
    {"smtp_from", "VIGIL_SMTP_FROM", "vigil@localhost", "sender address (envelope and From:)",
     false},
    {"smtp_user", "VIGIL_SMTP_USER", NULL, "SMTP AUTH user; unset: no AUTH", false},
    {"smtp_password", "VIGIL_SMTP_PASSWORD", NULL, "SMTP AUTH password", true},
    {"smtp_tls", "VIGIL_SMTP_TLS", "try",
     "STARTTLS on smtp://: off, try (if offered) or require", false},
    {"smtp_ca_file", "VIGIL_SMTP_CA_FILE", NULL,
     "PEM CA file to verify the SMTP server's certificate; unset: the system's CAs", false},
    {"smtp_timeout_ms", "VIGIL_SMTP_TIMEOUT_MS", "30000", "one SMTP transfer, connect included",
     false},
    {"sms_url", "VIGIL_SMS_URL", NULL, "SMS gateway endpoint (form POST); unset: SMS disabled",
     false},
    {"sms_user", "VIGIL_SMS_USER", NULL, "SMS gateway user (HTTP Basic)", false},
    {"sms_password", "VIGIL_SMS_PASSWORD", NULL, "SMS gateway password (HTTP Basic)", true},
    {"sms_from", "VIGIL_SMS_FROM", "vigil", "SMS sender id or number", false},
    {"sms_timeout_ms", "VIGIL_SMS_TIMEOUT_MS", "10000", "one SMS request, connect included",
     false},
    {"concurrency", "VIGIL_NOTIFY_CONCURRENCY", "32", "transfers at once per channel", false},
    {"retry_base_ms", "VIGIL_RETRY_BASE_MS", "1000", "first retry delay (doubles each retry)",
     false},
    {"retry_max_ms", "VIGIL_RETRY_MAX_MS", "60000", "longest retry delay", false},
    {"give_up", "VIGIL_GIVE_UP", "900",
     "seconds after the first attempt before a notification is failed", false},
    {"lease", "VIGIL_NOTIFY_LEASE", "120",
     "seconds before another notifier may take over a notification left unfinished", false},
    {"rate_per_min", "VIGIL_RATE_PER_MIN", "30",
     "messages per minute to one researcher on one channel (critical exempt); 0: unlimited",
     false},
    {"rate_burst", "VIGIL_RATE_BURST", "10", "messages at once before the rate limit applies",
     false},
    {"group_window_ms", "VIGIL_GROUP_WINDOW_MS", "0",
     "group a subject's warning/info alerts arriving within this window into one message; 0: "
     "off",
     false},
    {"max_alerts", "VIGIL_MAX_ALERTS", "2048", "alerts in progress at once (backpressure)",
     false},
    {"max_inflight_per_partition", "VIGIL_MAX_INFLIGHT_PER_PARTITION", "20000",
     "alerts of one partition in progress at once; beyond, the partition pauses", false},
    {"console_url", "VIGIL_CONSOLE_PUBLIC_URL", NULL,
     "the console's address as researchers reach it: acknowledgement links point there; "
     "unset: no links",
     false},
    {"link_keys_file", "VIGIL_LINK_KEYS_FILE", NULL,
     "acknowledgement link keys, lines 'KID SECRET' (the first signs); unset: no links", false},
    {"link_ttl", "VIGIL_LINK_TTL", "259200", "seconds an acknowledgement link stays valid",
     false},
    {"sms_code_ttl", "VIGIL_SMS_CODE_TTL", "259200",
     "seconds an SMS reply code (\"Reply ACK 4821\") stays valid; 0: no codes", false},
    {"webhooks", "VIGIL_WEBHOOKS", "on",
     "on: POST alerts to the webhook_subscribers of their study (Standard Webhooks "
     "signatures); off: not from this notifier",
     false},
    {"webhook_poll_ms", "VIGIL_WEBHOOK_POLL_MS", "500",
     "between scans for new alerts and due webhook retries", false},
    {"webhook_timeout_ms", "VIGIL_WEBHOOK_TIMEOUT_MS", "10000", "one webhook POST", false},
    {"webhook_max_attempts", "VIGIL_WEBHOOK_MAX_ATTEMPTS", "10",
     "webhook attempts (backoff from retry_base_ms to retry_max_ms) before failed", false},
    {"webhook_lookback", "VIGIL_WEBHOOK_LOOKBACK", "86400",
     "at start, alerts up to this many seconds old are still sent to subscribers", false},
    {"webhook_ca_file", "VIGIL_WEBHOOK_CA_FILE", NULL,
     "PEM CA file to verify https subscribers; unset: the system's CAs", false},
    {"escalation", "VIGIL_ESCALATION", "on",
     "fire the escalation timers kept in PostgreSQL (on or off); any number of notifiers may",
     false},
    {"escalation_scale", "VIGIL_ESCALATION_SCALE", "1",
     "multiplies every escalation deadline (tests: 0.01 makes 15 minutes 9 seconds)", false},
    {"escalation_tick_ms", "VIGIL_ESCALATION_TICK_MS", "250",
     "how often due escalation timers are looked for", false},
    {"escalation_batch", "VIGIL_ESCALATION_BATCH", "500",
     "escalation steps fired per transaction", false},
    {"digest_hour", "VIGIL_DIGEST_HOUR", "7",
     "UTC hour from which each day's digest of unacknowledged warning alerts is emailed to "
     "the researchers subscribed to them; -1: no digests",
     false},
    {"digest_min_age", "VIGIL_DIGEST_MIN_AGE", "3600",
     "seconds a warning must have been open to be in a digest", false},
    {"log_level", "VIGIL_LOG_LEVEL", "info", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil notifier [OPTIONS]\n\n"
            "Consumes vigil.alerts in consumer group vigil-notifier and sends each\n"
            "alert by SMS and email to the researchers subscribed to its study (or the\n"
            "study's safety contact), once: every (alert, researcher, channel) is\n"
            "recorded in PostgreSQL before and after sending. It also fires the\n"
            "escalation timers kept in PostgreSQL (any number of notifiers may: each\n"
            "step happens once), paging the next tier of the study's policy until the\n"
            "alert is acknowledged, and sends the daily digest of unacknowledged\n"
            "warnings (settings escalation*, digest*).\n\n"
            "options (each overrides the setting of the same name):\n"
            "  -b, --bootstrap HOSTS  Kafka bootstrap servers\n"
            "  -g, --group NAME       consumer group\n"
            "  -t, --topic NAME       alerts topic\n"
            "      --escalation-scale X  multiply escalation deadlines by X (tests)\n"
            "      --grace SECONDS    shutdown grace\n"
            "      --http ADDR        HTTP endpoint address (HOST:PORT)\n"
            "      --pg CONNINFO      PostgreSQL conninfo\n"
            "      --assignor NAME    partition assignment strategy\n"
            "      --smtp-url URL     SMTP server\n"
            "      --sms-url URL      SMS gateway endpoint\n");
    cli_usage_common(out);
    fprintf(out,
            "Secrets (pg_conninfo, smtp_password, sms_password) may come from a file:\n"
            "set VAR_FILE=/path instead of VAR (Kubernetes Secrets).\n"
            "signals: SIGTERM/SIGINT finish in-flight sends, commit and leave within\n"
            "--grace seconds; SIGHUP reloads the directory.\n");
    cli_usage_role_exit(out, "alerts");
    config_print_help(items, out);
}

CLI_ROLE(run, notifier_run)

int cmd_notifier(int argc, char **argv)
{
    static const struct cli_flag flags[] = {
        CLI_CONSUMER_FLAGS,
        {"smtp-url", 0, "smtp_url", 0, true},
        {"sms-url", 0, "sms_url", 0, true},
        {"escalation-scale", 0, "escalation_scale", 0, true},
        {0},
    };
    struct cli_settings set;
    int status;
    if (cli_settings_parse(&set, "notifier", usage, flags, argc, argv, &status) != 0)
        return status;

    char err[2048];
    int rc = 1;
    bool curl_ok = false;
    struct acklink_keys *keys = NULL;
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        goto fail;
    const char *tls = config_get(cfg, "smtp_tls");
    if (strcmp(tls, "off") != 0 && strcmp(tls, "try") != 0 && strcmp(tls, "require") != 0) {
        snprintf(err, sizeof err, "smtp_tls must be off, try or require, not '%s'", tls);
        goto fail;
    }
    long link_ttl, code_ttl, wh_poll, wh_timeout, wh_attempts, wh_lookback;
    const char *wh = config_get(cfg, "webhooks");
    if (strcmp(wh, "on") != 0 && strcmp(wh, "off") != 0) {
        snprintf(err, sizeof err, "webhooks must be on or off, not '%s'", wh);
        goto fail;
    }
    if (config_get_long(cfg, "webhook_poll_ms", 10, 60000, &wh_poll, err, sizeof err) != 0 ||
        config_get_long(cfg, "webhook_timeout_ms", 100, 600000, &wh_timeout, err, sizeof err) !=
            0 ||
        config_get_long(cfg, "webhook_max_attempts", 1, 100, &wh_attempts, err, sizeof err) !=
            0 ||
        config_get_long(cfg, "webhook_lookback", 0, 30L * 86400, &wh_lookback, err,
                        sizeof err) != 0)
        goto fail;
    if (config_get_long(cfg, "link_ttl", 60, 30L * 86400, &link_ttl, err, sizeof err) != 0 ||
        config_get_long(cfg, "sms_code_ttl", 0, 30L * 86400, &code_ttl, err, sizeof err) != 0)
        goto fail;
    const char *keys_file = config_get(cfg, "link_keys_file");
    const char *console_url = config_get(cfg, "console_url");
    if (keys_file != NULL && keys_file[0] != '\0') {
        if (console_url == NULL || console_url[0] == '\0') {
            snprintf(err, sizeof err, "link_keys_file is set but console_url is not: the links "
                                      "would point nowhere");
            goto fail;
        }
        keys = calloc(1, sizeof *keys);
        if (keys == NULL || acklink_keys_load(keys_file, keys, err, sizeof err) != 0)
            goto fail;
    }
    char public_url[1024] = "";
    if (console_url != NULL) {
        snprintf(public_url, sizeof public_url, "%s", console_url);
        size_t ul = strlen(public_url);
        while (ul > 0 && public_url[ul - 1] == '/')
            public_url[--ul] = '\0';
    }
    long grace, refresh, smtp_to, sms_to, conc, base, rmax, give_up, lease, window, max_alerts;
    double rate, burst, esc_scale;
    long esc_tick, esc_batch, dg_hour, dg_age;
    if (config_get_long(cfg, "grace", 1, 3600, &grace, err, sizeof err) != 0 ||
        config_get_long(cfg, "directory_refresh", 1, 86400, &refresh, err, sizeof err) != 0 ||
        config_get_long(cfg, "smtp_timeout_ms", 100, 600000, &smtp_to, err, sizeof err) != 0 ||
        config_get_long(cfg, "sms_timeout_ms", 100, 600000, &sms_to, err, sizeof err) != 0 ||
        config_get_long(cfg, "concurrency", 1, 1024, &conc, err, sizeof err) != 0 ||
        config_get_long(cfg, "retry_base_ms", 1, 3600000, &base, err, sizeof err) != 0 ||
        config_get_long(cfg, "retry_max_ms", 1, 3600000, &rmax, err, sizeof err) != 0 ||
        config_get_long(cfg, "give_up", 1, 7 * 86400, &give_up, err, sizeof err) != 0 ||
        config_get_long(cfg, "lease", 1, 86400, &lease, err, sizeof err) != 0 ||
        config_get_long(cfg, "group_window_ms", 0, 3600000, &window, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_alerts", 1, 1000000, &max_alerts, err, sizeof err) != 0 ||
        config_get_double(cfg, "rate_per_min", 0, 1e9, &rate, err, sizeof err) != 0 ||
        config_get_double(cfg, "rate_burst", 1, 1e9, &burst, err, sizeof err) != 0 ||
        config_get_double(cfg, "escalation_scale", 1e-6, 1000, &esc_scale, err, sizeof err) !=
            0 ||
        config_get_long(cfg, "escalation_tick_ms", 1, 60000, &esc_tick, err, sizeof err) != 0 ||
        config_get_long(cfg, "escalation_batch", 1, 100000, &esc_batch, err, sizeof err) != 0 ||
        config_get_long(cfg, "digest_hour", -1, 23, &dg_hour, err, sizeof err) != 0 ||
        config_get_long(cfg, "digest_min_age", 0, 7 * 86400, &dg_age, err, sizeof err) != 0)
        goto fail;
    const char *esc_on = config_get(cfg, "escalation");
    if (strcmp(esc_on, "on") != 0 && strcmp(esc_on, "off") != 0) {
        snprintf(err, sizeof err, "escalation must be on or off, not '%s'", esc_on);
        goto fail;
    }
    if (rmax < base) {
        snprintf(err, sizeof err, "retry_max_ms (%ld) must not be below retry_base_ms (%ld)",
                 rmax, base);
        goto fail;
    }
    if (config_get(cfg, "smtp_url") == NULL && config_get(cfg, "sms_url") == NULL) {
        snprintf(err, sizeof err, "neither smtp_url nor sms_url is set: nothing could be sent");
        goto fail;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, sizeof err, "could not initialise libcurl");
        goto fail;
    }
    curl_ok = true;

    struct notifier_options opt = {
        .conninfo = config_get(cfg, "pg_conninfo"),
        .http_addr = config_get(cfg, "http"),
        .registry_url = config_get(cfg, "registry_url"),
        .grace_s = (int)grace,
        .directory_refresh_s = (int)refresh,
        .send =
            {
                .email = {config_get(cfg, "smtp_url"), config_get(cfg, "smtp_from"),
                          config_get(cfg, "smtp_user"), config_get(cfg, "smtp_password"), tls,
                          smtp_to, config_get(cfg, "smtp_ca_file")},
                .sms = {config_get(cfg, "sms_url"), config_get(cfg, "sms_from"),
                        config_get(cfg, "sms_user"), config_get(cfg, "sms_password"), sms_to},
                .concurrency = (int)conc,
                .backoff_base_ms = base,
                .backoff_max_ms = rmax,
                .give_up_ms = (int64_t)give_up * 1000,
                .lease_s = (int)lease,
                .rate_per_min = rate,
                .rate_burst = burst,
                .group_window_ms = window,
                .max_jobs = (int)max_alerts,
                .queue_cap = 256,
                .ack = {public_url, keys, link_ttl, (int)code_ttl},
            },
        .webhook =
            {
                .poll_ms = strcmp(wh, "on") == 0 ? (int)wh_poll : 0,
                .timeout_ms = wh_timeout,
                .backoff_base_ms = base,
                .backoff_max_ms = rmax,
                .max_attempts = (int)wh_attempts,
                .lookback_s = (int)wh_lookback,
                .lease_s = (int)lease,
                .ca_file = config_get(cfg, "webhook_ca_file"),
            },
        .escalation = strcmp(esc_on, "on") == 0,
        .escalate =
            {
                .tick_ms = (int)esc_tick,
                .scale = esc_scale,
                .batch = (int)esc_batch,
                .lease_s = (int)lease,
                .digest_hour = (int)dg_hour,
                .digest_min_age_s = (int)dg_age,
            },
    };
    if (cli_group_config(cfg, &opt.consumer, err, sizeof err) != 0 ||
        cli_deadletter_config(cfg, &opt.consumer, "notifier", &opt.dead_letters, err,
                              sizeof err) != 0)
        goto fail;
    rc = cli_serve("notifier", run, &opt);
    goto out;
fail:
    rc = cli_fail("notifier", err);
out:
    config_destroy(cfg);
    if (curl_ok)
        curl_global_cleanup();
    if (keys != NULL)
        memset(keys, 0, sizeof *keys);
    free(keys);
    return rc;
}
