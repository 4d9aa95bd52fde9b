/*
 * console: `vigil console`, the researchers' web service. One process
 * serving, one thread per connection (common/httpd.c):
 *   GET /healthz, /readyz (PostgreSQL reachable), /metrics  (common/httpd.c)
 *   whatever the modules in console.c's module list register in the route
 *   table (route.h): the acknowledgement pages (ack_page.c), the SMS
 *   gateway's inbound webhook (sms_inbound.c), and the console issue's
 *   sign-in, API and pages.
 *
 * A module is a function that registers its routes into APP and may keep
 * state it allocates itself; it is called once before the server starts
 * and its cleanup (if it set one) after the server stopped.
 */
#ifndef VIGIL_CONSOLE_H
#define VIGIL_CONSOLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"
#include "metrics.h"
#include "pgpool.h"
#include "route.h"

struct console_options {
    const char *conninfo;   /* libpq conninfo ("" : PG* variables) */
    const char *addr;       /* listen address, HOST:PORT (port 0: any free one) */
    const char *metrics_addr; /* NULL/"": /metrics on addr; else only there */
    int threads;            /* unused: one thread per connection (console.c) */
    int pg_connections;     /* pool size; at least threads is sensible */
    const char *public_url; /* how researchers reach it (links), no trailing '/' */
    const char *link_keys_file;     /* "kid secret" lines: acknowledgement links */
    const char *sms_inbound_secret; /* the SMS gateway's shared secret; NULL: inbound off */
    const char *port_file;          /* if set, the bound port is written there */
    int api_max_in_flight;          /* API requests in flight; 0: pg_connections */
    int api_max_heavy;              /* of which timelines/exports; 0: a quarter */
    int api_slot_wait_ms;           /* wait for a slot before 503; 0: 500 */
    const char *trusted_proxies;    /* comma-separated peer addresses whose identity
                                       header is believed; NULL/"": none (mode off) */
    const char *proxy_user_header;  /* that header, e.g. X-Forwarded-Email */
    /* password reset e-mails (smtp_url NULL: reset by e-mail off) */
    const char *smtp_url, *smtp_from, *smtp_user, *smtp_password, *smtp_tls;
    int max_streams; /* live queue streams (Server-Sent Events) at once; 0: 32 */
    bool coalesce;   /* identical alert-list reads at once share one execution */
};

/* What a module gets to register into. Borrowed for the console's life. */
struct console_app {
    const struct console_options *opt;
    struct route_table *routes;
    struct pgpool *pool;
    struct metrics *metrics;
    struct ctx *stop; /* cancelled when the console stops: long answers (streams) end */
};

/* A module: registers its routes (and allocates its state) into APP;
 * *CLEANUP (with *CLEANUP_ARG), if set, run after the server stopped. Returns 0,
 * or -1 with errstr (the console does not start). */
typedef int (*console_module_fn)(struct console_app *app, void (**cleanup)(void *),
                                 void **cleanup_arg, char *errstr, size_t errstr_size);

/* Serves until STOP is cancelled. Returns 0, or -1 with errstr when it could
 * not start. RELOAD is accepted for the cli_role_fn shape (nothing to reload
 * yet). */
int console_run(const struct console_options *opt, struct ctx *stop, atomic_bool *reload,
                char *errstr, size_t errstr_size);

#endif
