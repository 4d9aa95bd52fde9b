#include "console.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ack_page.h"
#include "api_http.h"
#include "httpd.h"
#include "log.h"
#include "sms_inbound.h"
#include "web.h"

/* The console's modules, in registration order. Add a line per module;
 * each registers its own routes (route.h). */
static const console_module_fn modules[] = {
    ack_page_register,
    sms_inbound_register,
    api_http_register, /* /api/v1/: sign-in, alerts, subjects (api.c) */
    web_register,      /* /console/: the pages (web.c) */
    NULL,
};

#define MODULE_MAX 32

struct readiness {
    atomic_bool pg_ok;
    char why[256]; /* written by the run loop only while pg_ok is false */
};

static bool ready(void *arg, char *why, size_t whysz)
{
    struct readiness *r = arg;
    struct httpd_check checks[] = {
        {atomic_load(&r->pg_ok), "PostgreSQL not reachable"},
    };
    return httpd_checks(checks, sizeof checks / sizeof checks[0], why, whysz);
}

static void write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "%d\n", port);
    if (fclose(f) == 0)
        rename(tmp, path);
}

int console_run(const struct console_options *opt, struct ctx *stop, atomic_bool *reload,
                char *errstr, size_t errstr_size)
{
    (void)reload;
    int rc = -1;
    struct readiness rd = {.pg_ok = false};
    struct console_app app = {.opt = opt, .stop = stop};
    void (*cleanup[MODULE_MAX])(void *) = {0};
    void *cleanup_arg[MODULE_MAX] = {0};
    int nmod = 0;
    struct httpd *h = NULL, *hm = NULL;
    bool split = opt->metrics_addr != NULL && *opt->metrics_addr != '\0';

    app.routes = route_table_new();
    app.metrics = metrics_new();
    app.pool = pgpool_new(opt->conninfo, opt->pg_connections);
    if (app.routes == NULL || app.metrics == NULL || app.pool == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    for (const console_module_fn *m = modules; *m != NULL && nmod < MODULE_MAX; m++, nmod++)
        if ((*m)(&app, &cleanup[nmod], &cleanup_arg[nmod], errstr, errstr_size) != 0)
            goto out;

    struct httpd_options hopt = {
        .handler = route_dispatch,
        .handler_arg = app.routes,
        .threads = (unsigned)opt->threads,
        .max_body = 64 * 1024,
        .conn_limit = 256,
        .per_ip_limit = 64,
        /* The API's limiter makes requests wait up to 500 ms for a slot,
         * and a stalled PostgreSQL makes them wait longer: in a thread pool
         * each such wait would hold up the other connections of its thread
         * (measured: 7 % of 200 refused clients waited 2 x 500 ms, and
         * /metrics hung behind a stalled timeline). One thread per
         * connection, at most conn_limit of them. */
        .thread_per_connection = true,
    };
    /* With a metrics address the main port leaves /metrics out (httpd
     * serves it only with a registry), so a NetworkPolicy that admits the
     * ingress controller to the main port and the scrapers to the other
     * means what it says. /healthz and /readyz stay on both: probes. */
    h = httpd_start_opts(opt->addr, split ? NULL : app.metrics, ready, &rd, &hopt, errstr,
                         errstr_size);
    if (h == NULL)
        goto out;
    if (split) {
        hm = httpd_start(opt->metrics_addr, app.metrics, ready, &rd, errstr, errstr_size);
        if (hm == NULL)
            goto out;
        log_msg(LOG_INFO, "console", "metrics on port %d", httpd_port(hm));
    }
    log_msg(LOG_INFO, "console", "serving on port %d (%d threads), public url %s", httpd_port(h),
            opt->threads, opt->public_url ? opt->public_url : "(unset)");
    if (opt->port_file != NULL && *opt->port_file != '\0')
        write_port_file(opt->port_file, httpd_port(h));

    struct metric *pg_up =
        metrics_gauge(app.metrics, "vigil_console_pg_up", "1 when PostgreSQL answers", NULL);
    /* Readiness is probed here, not in the readiness callback: that one
     * must not block, and a PostgreSQL outage would block it. */
    while (!ctx_done(stop)) {
        char why[256];
        bool ok = pgpool_ping(app.pool, why, sizeof why);
        if (ok != atomic_load(&rd.pg_ok))
            log_msg(ok ? LOG_INFO : LOG_WARN, "console", "PostgreSQL %s%s%s",
                    ok ? "reachable" : "not reachable", ok ? "" : ": ", ok ? "" : why);
        atomic_store(&rd.pg_ok, ok);
        metric_set(pg_up, ok ? 1 : 0);
        ctx_wait(stop, deadline_after_ms(1000));
    }
    log_msg(LOG_INFO, "console", "stopping");
    rc = 0;
out:
    httpd_stop(hm);
    httpd_stop(h);
    for (int i = nmod - 1; i >= 0; i--)
        if (cleanup[i] != NULL)
            cleanup[i](cleanup_arg[i]);
    pgpool_destroy(app.pool);
    metrics_destroy(app.metrics);
    route_table_destroy(app.routes);
    return rc;
}
