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
#include <sys/types.h>

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

/* ---- requests for a role's own endpoints (the console) -------------------
 * A role that serves more than the operations endpoints passes a handler in
 * httpd_options: every request that is not GET/HEAD /healthz, /readyz or
 * /metrics goes to it, with its body read (bounded by max_body) and its
 * client's address. Requests run on the server's thread pool, so a handler
 * must be thread-safe. */

#define HTTPD_MAX_HEADERS 8

struct httpd_request {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* the URL path, without the query string */
    const char *body;   /* NUL-terminated (not counted in body_len); "" when none */
    size_t body_len;
    const char *client; /* the peer's address, "127.0.0.1" or "::1" */
    void *conn;         /* libmicrohttpd's connection: use the accessors below */
};

/* A request header's value (case-insensitive name) or NULL. */
const char *httpd_request_header(const struct httpd_request *r, const char *name);

/* A query-string argument's value (percent-decoded) or NULL. */
const char *httpd_request_query(const struct httpd_request *r, const char *name);

struct httpd_response {
    unsigned status;          /* 0: the handler does not know this path (404) */
    const char *content_type; /* NULL: text/plain; charset=utf-8 */
    char *body;               /* malloc'd; httpd frees it */
    size_t len;
    int nheaders;
    char header_name[HTTPD_MAX_HEADERS][64];
    char header_value[HTTPD_MAX_HEADERS][512];
    /* A streamed body (Server-Sent Events) instead of body: when set, the
     * answer has no length and its bytes come from stream(stream_arg, buf,
     * max), called on the connection's thread until it returns -1 (end);
     * it may block (thread_per_connection only) but must return within a
     * few seconds, with bytes or -1, and must end once the role stops.
     * stream_free(stream_arg) runs when the connection is done, whether
     * the stream ended or the client went away. */
    ssize_t (*stream)(void *arg, char *buf, size_t max);
    void (*stream_free)(void *arg);
    void *stream_arg;
};

/* Adds a response header (copied, truncated). Ignored past HTTPD_MAX_HEADERS. */
void httpd_response_header(struct httpd_response *resp, const char *name, const char *value);

/* Sets RESP's status, content type and a copy of BODY (NUL-terminated).
 * Returns 0, or -1 out of memory (status becomes 500 with no body). */
int httpd_response_set(struct httpd_response *resp, unsigned status, const char *ctype,
                       const char *body);

/* Answers REQ into RESP (status left 0 for an unknown path). */
typedef void (*httpd_handler_fn)(void *arg, const struct httpd_request *req,
                                 struct httpd_response *resp);

struct httpd_options {
    httpd_handler_fn handler; /* NULL: operations endpoints only (every role) */
    void *handler_arg;
    unsigned threads;      /* 0/1: one thread; more: libmicrohttpd's thread pool */
    size_t max_body;       /* larger bodies are answered 413; 0: 64 KiB */
    unsigned conn_limit;   /* 0: 64 */
    unsigned per_ip_limit; /* 0: 16 */
    /* true: every connection gets its own thread (threads is then ignored;
     * conn_limit bounds the threads). A handler that blocks (waiting for
     * a limiter slot, a stalled PostgreSQL) then holds up its own
     * connection only; in a pool, a thread's other accepted connections
     * (even /healthz) wait behind it. */
    bool thread_per_connection;
};

/* As httpd_start, with OPT (borrowed for the server's life; NULL: defaults,
 * no handler). */
struct httpd *httpd_start_opts(const char *addr, struct metrics *m, httpd_ready_fn ready,
                               void *arg, const struct httpd_options *opt, char *errstr,
                               size_t errstr_size);

/* Returns the port the server listens on. */
int httpd_port(const struct httpd *h);

/* Stops the server and frees it, waiting for its thread. NULL is a no-op. */
void httpd_stop(struct httpd *h);

#endif
