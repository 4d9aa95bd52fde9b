/*
 * httpd: each process's operations endpoint, served by libmicrohttpd on its
 * own thread:
 *   GET /metrics  Prometheus text exposition of a struct metrics
 *   GET /healthz  200 while the process runs (liveness)
 *   GET /readyz   200 when the role's readiness callback says so, else 503
 *                 with the reason (readiness)
 * Anything else is 404; a method other than GET or HEAD is 405. Connections
 * are bounded in number, per client address, in memory and in time, so a
 * slow or malformed client costs a bounded amount and then is dropped.
 */
#ifndef VIGIL_HTTPD_H
#define VIGIL_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

struct httpd;

/* Returns true when ready; otherwise writes a short reason into why.
 * Called on the server's thread: must be thread-safe and must not block. */
typedef bool (*httpd_ready_fn)(void *arg, char *why, size_t whysz);

/* One condition of a role's readiness and what to say when it fails. */
struct httpd_check {
    bool ok;
    const char *why;
};

/* For readiness callbacks: true when every one of the N checks is ok, else
 * false with the first failing one's reason in WHY. */
bool httpd_checks(const struct httpd_check *checks, size_t n, char *why, size_t whysz);

/* Starts serving on ADDR ("127.0.0.1:9100", "0.0.0.0:9100", "[::1]:9100";
 * port 0 picks a free one). M and READY/ARG are borrowed and must outlive the
 * server. Returns NULL with errstr filled ("could not listen on ...: ...")
 * on failure. */
struct httpd *httpd_start(const char *addr, struct metrics *m, httpd_ready_fn ready, void *arg,
                          char *errstr, size_t errstr_size);

/* Returns the port the server listens on. */
int httpd_port(const struct httpd *h);

/* Stops the server and frees it, waiting for its thread. NULL is a no-op. */
void httpd_stop(struct httpd *h);

#endif
