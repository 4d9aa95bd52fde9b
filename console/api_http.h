/*
 * api_http: the JSON API (api.c) as a console module. Registers
 * /api/v1/ in the console's route table (GET, POST, PUT, DELETE) and, for each
 * request: finds the API route, takes a limiter slot of its class (at most
 * 500 ms of waiting, else 503 + Retry-After), borrows a PostgreSQL
 * connection, runs the handler, and sends its JSON back with
 * Cache-Control: no-store and X-Content-Type-Options: nosniff.
 *
 * Settings (console_options): api_max_in_flight (0: pg_connections: a
 * request holding a slot then always finds a connection), api_max_heavy
 * (0: a quarter of that, at least 1), api_slot_wait_ms (0: 500). The
 * console serves each connection on its own thread (console.c), so a
 * request waiting here holds up no other connection.
 *
 * Thread-safety: the handler runs on every server thread at once.
 */
#ifndef VIGIL_CONSOLE_API_HTTP_H
#define VIGIL_CONSOLE_API_HTTP_H

#include "console.h"

/* A console_module_fn: registers the API's routes into APP. */
int api_http_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                      char *errstr, size_t errstr_size);

#endif
