/* vigil console: flags and settings, then console/console.c does the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "console.h"
#include "settings.h"

static const struct config_item items[] = {
    {"pg_conninfo", "VIGIL_PG_CONNINFO", "",
     "libpq conninfo; empty: libpq's PG* variables (PGPASSFILE for the password)", true},
    {"listen", "VIGIL_CONSOLE_ADDR", "127.0.0.1:8080",
     "address the console listens on (HOST:PORT; port 0: any free port)", false},
    {"metrics_listen", "VIGIL_CONSOLE_METRICS_ADDR", NULL,
     "a second address (HOST:PORT) for /metrics, /healthz and /readyz alone; set, the main "
     "address no longer answers /metrics (a NetworkPolicy can then admit scrapers to this port "
     "only); unset: all on listen",
     false},
    {"threads", "VIGIL_CONSOLE_THREADS", "4",
     "unused since the console serves each connection on its own thread (kept for old settings)",
     false},
    {"pg_connections", "VIGIL_CONSOLE_PG_CONNECTIONS", "4",
     "PostgreSQL connections the request threads share", false},
    {"public_url", "VIGIL_CONSOLE_PUBLIC_URL", "http://127.0.0.1:8080",
     "the console's address as researchers reach it (the links in messages)", false},
    {"link_keys_file", "VIGIL_LINK_KEYS_FILE", NULL,
     "acknowledgement link keys, lines 'KID SECRET' (the first signs, every one verifies); "
     "unset: acknowledgement pages off",
     false},
    {"sms_inbound_secret", "VIGIL_SMS_INBOUND_SECRET", NULL,
     "the SMS gateway's shared secret for inbound replies (HMAC-SHA256 of the body in "
     "X-Vigil-Signature); unset: inbound SMS off",
     true},
    {"port_file", "VIGIL_CONSOLE_PORT_FILE", NULL,
     "write the port listened on to this file once serving (tests, port 0)", false},
    {"max_in_flight", "VIGIL_CONSOLE_MAX_IN_FLIGHT", "0",
     "API requests served at once (the limiter); 0: pg_connections. Keep threads above it", false},
    {"max_heavy", "VIGIL_CONSOLE_MAX_HEAVY", "0",
     "of those, timelines and exports at once; 0: a quarter of max_in_flight", false},
    {"slot_wait_ms", "VIGIL_CONSOLE_SLOT_WAIT_MS", "500",
     "how long an API request waits for a slot before 503 + Retry-After", false},
    {"coalesce", "VIGIL_CONSOLE_COALESCE", "1",
     "1: identical alert-list reads at once share one execution, if it was sent after the later "
     "request arrived (as fresh as running it again); 0: each request runs its own",
     false},
    {"max_streams", "VIGIL_CONSOLE_MAX_STREAMS", "32",
     "live alert queue streams (Server-Sent Events, GET /api/v1/alerts/stream) open at once; "
     "beyond, 503 and the page polls. Keep it well below the 256 connections",
     false},
    {"trusted_proxies", "VIGIL_CONSOLE_TRUSTED_PROXIES", NULL,
     "trusted-proxy mode (single sign-on): comma-separated addresses of the authenticating "
     "proxy (oauth2-proxy...) whose identity header is believed; unset: off",
     false},
    {"proxy_user_header", "VIGIL_CONSOLE_PROXY_USER_HEADER", "X-Forwarded-Email",
     "the header in which a trusted proxy names the user (their console e-mail)", false},
    {"smtp_url", "VIGIL_SMTP_URL", NULL,
     "SMTP server for password reset e-mails (smtp:// or smtps://); unset: reset by e-mail off",
     false},
    {"smtp_from", "VIGIL_SMTP_FROM", "vigil@localhost", "sender of password reset e-mails", false},
    {"smtp_user", "VIGIL_SMTP_USER", NULL, "SMTP AUTH user; unset: no AUTH", false},
    {"smtp_password", "VIGIL_SMTP_PASSWORD", NULL, "SMTP AUTH password", true},
    {"smtp_tls", "VIGIL_SMTP_TLS", "try", "off, try (STARTTLS if offered) or require", false},
    {"log_level", "VIGIL_LOG_LEVEL", "info", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil console [OPTIONS]\n\n"
                 "The researchers' web service: the pages (/console/) and the JSON API\n"
                 "(/api/v1: sign-in, alerts, acknowledge/resolve, timelines, subscriptions,\n"
                 "audit export; console/openapi.yaml), acknowledgement pages for the links\n"
                 "in alert emails and SMS, the SMS gateway's inbound webhook, /healthz,\n"
                 "/readyz (PostgreSQL reachable) and /metrics.\n\n"
                 "options (each overrides the setting of the same name):\n"
                 "      --listen ADDR      address to listen on (HOST:PORT)\n"
                 "      --pg CONNINFO      PostgreSQL conninfo\n"
                 "      --public-url URL   the console's address as researchers reach it\n"
                 "      --threads N        request threads\n");
    cli_usage_common(out);
    fprintf(out, "Secrets (pg_conninfo, sms_inbound_secret) may come from a file:\n"
                 "set VAR_FILE=/path instead of VAR (Kubernetes Secrets).\n"
                 "signals: SIGTERM/SIGINT stop serving. exit status: 0 stopped, 1 could\n"
                 "not start.\n\n");
    config_print_help(items, out);
}

CLI_ROLE(run, console_run)

int cmd_console(int argc, char **argv)
{
    static const struct cli_flag flags[] = {
        {"listen", 0, "listen", 0, true},
        {"pg", 0, "pg_conninfo", 0, true},
        {"public-url", 0, "public_url", 0, true},
        {"threads", 0, "threads", 0, true},
        {0},
    };
    struct cli_settings set;
    int status;
    if (cli_settings_parse(&set, "console", usage, flags, argc, argv, &status) != 0)
        return status;
    char err[2048];
    int rc;
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        return cli_fail("console", err);
    long threads, pgconns, inflight, heavy, waitms, streams, coalesce;
    if (config_get_long(cfg, "threads", 1, 256, &threads, err, sizeof err) != 0 ||
        config_get_long(cfg, "pg_connections", 1, 256, &pgconns, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_in_flight", 0, 1024, &inflight, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_heavy", 0, 1024, &heavy, err, sizeof err) != 0 ||
        config_get_long(cfg, "slot_wait_ms", 1, 60000, &waitms, err, sizeof err) != 0 ||
        config_get_long(cfg, "max_streams", 1, 200, &streams, err, sizeof err) != 0 ||
        config_get_long(cfg, "coalesce", 0, 1, &coalesce, err, sizeof err) != 0) {
        rc = cli_fail("console", err);
        goto out;
    }
    /* links are built as PUBLIC_URL + "/ack/..." */
    char public_url[1024];
    snprintf(public_url, sizeof public_url, "%s", config_get(cfg, "public_url"));
    size_t n = strlen(public_url);
    while (n > 0 && public_url[n - 1] == '/')
        public_url[--n] = '\0';
    struct console_options opt = {
        .conninfo = config_get(cfg, "pg_conninfo"),
        .addr = config_get(cfg, "listen"),
        .metrics_addr = config_get(cfg, "metrics_listen"),
        .threads = (int)threads,
        .pg_connections = (int)pgconns,
        .public_url = public_url,
        .link_keys_file = config_get(cfg, "link_keys_file"),
        .sms_inbound_secret = config_get(cfg, "sms_inbound_secret"),
        .port_file = config_get(cfg, "port_file"),
        .api_max_in_flight = (int)inflight,
        .api_max_heavy = (int)heavy,
        .api_slot_wait_ms = (int)waitms,
        .trusted_proxies = config_get(cfg, "trusted_proxies"),
        .proxy_user_header = config_get(cfg, "proxy_user_header"),
        .smtp_url = config_get(cfg, "smtp_url"),
        .smtp_from = config_get(cfg, "smtp_from"),
        .smtp_user = config_get(cfg, "smtp_user"),
        .smtp_password = config_get(cfg, "smtp_password"),
        .smtp_tls = config_get(cfg, "smtp_tls"),
        .max_streams = (int)streams,
        .coalesce = coalesce == 1,
    };
    rc = cli_serve("console", run, &opt);
out:
    config_destroy(cfg);
    return rc;
}
