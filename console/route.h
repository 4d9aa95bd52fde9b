/*
 * route: the console's route table. Modules register (method, path prefix)
 * → handler before the server starts; route_dispatch (an httpd_handler_fn)
 * picks the longest registered prefix that matches the request's path, and
 * among those the one for its method (HEAD is served by a GET route).
 * A path that matches a prefix under another method only is answered 405
 * with an Allow header; no prefix at all leaves the status 0 (httpd: 404).
 *
 * A prefix ending in '/' matches everything under it ("/ack/" matches
 * "/ack/abc"); any other prefix matches that exact path only, so "/sms"
 * does not swallow "/smsx".
 *
 * Ownership: the table copies nothing but the pointers it is given (method
 * and prefix must be static strings; ARG outlives the table). Registration
 * is not thread-safe and happens before httpd_start_opts; dispatch only
 * reads the table and may run on every server thread at once.
 */
#ifndef VIGIL_CONSOLE_ROUTE_H
#define VIGIL_CONSOLE_ROUTE_H

#include <stddef.h>

#include "httpd.h"

#define ROUTE_MAX 64

struct route_table;

struct route_table *route_table_new(void);
void route_table_destroy(struct route_table *t);

/* Registers FN(ARG, ...) for METHOD ("GET", "POST", ...) on PREFIX.
 * Returns 0, or -1 with errstr (table full, duplicate, bad prefix). */
int route_add(struct route_table *t, const char *method, const char *prefix,
              httpd_handler_fn fn, void *arg, char *errstr, size_t errstr_size);

/* httpd_handler_fn over a struct route_table (ARG). */
void route_dispatch(void *arg, const struct httpd_request *req, struct httpd_response *resp);

#endif
