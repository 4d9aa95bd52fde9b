#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Prometheus scrapes and probes are tiny; these bounds are generous for them
 * and small for anyone else. */
#define HTTPD_CONN_LIMIT 64
#define HTTPD_PER_IP_LIMIT 16
#define HTTPD_TIMEOUT_S 10
#define HTTPD_CONN_MEMORY (32 * 1024)

#define HTTPD_MAX_BODY_DEFAULT (64 * 1024)

struct httpd {
    struct MHD_Daemon *daemon;
    struct metrics *metrics;
    httpd_ready_fn ready;
    void *ready_arg;
    struct httpd_options opt; /* handler == NULL: operations endpoints only */
    int port;
};

/* One request to a handler: its body as it arrives. */
struct req_state {
    char *body;
    size_t len, cap;
    bool too_big;
};

static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct httpd *h = cls;
    if (h->opt.handler == NULL || req_cls == NULL || *req_cls == NULL)
        return;
    struct req_state *st = *req_cls;
    free(st->body);
    free(st);
    *req_cls = NULL;
}

const char *httpd_request_header(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_request_query(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

void httpd_response_header(struct httpd_response *resp, const char *name, const char *value)
{
    if (resp->nheaders >= HTTPD_MAX_HEADERS)
        return;
    int i = resp->nheaders++;
    snprintf(resp->header_name[i], sizeof resp->header_name[i], "%s", name);
    snprintf(resp->header_value[i], sizeof resp->header_value[i], "%s", value);
}

int httpd_response_set(struct httpd_response *resp, unsigned status, const char *ctype,
                       const char *body)
{
    free(resp->body);
    resp->body = strdup(body != NULL ? body : "");
    resp->content_type = ctype;
    if (resp->body == NULL) {
        resp->status = 500;
        resp->len = 0;
        return -1;
    }
    resp->status = status;
    resp->len = strlen(resp->body);
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* One request per connection: probes and scrapes do not need keep-alive,
     * and a client that half-closes a kept-alive connection would otherwise
     * hold it (and its per-address slot) until the timeout. */
    MHD_add_response_header(r, "Connection", "close");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, "Allow", "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static void client_address(struct MHD_Connection *conn, char *out, size_t outsz)
{
    snprintf(out, outsz, "unknown");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outsz);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outsz);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct httpd_response *resp = cls;
    ssize_t n = resp->stream(resp->stream_arg, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_done(void *cls)
{
    struct httpd_response *resp = cls;
    if (resp->stream_free != NULL)
        resp->stream_free(resp->stream_arg);
    free(resp);
}

/* A request for the role's handler: collect the body (bounded), then call
 * it once the upload is over. */
static enum MHD_Result handle_role(struct httpd *h, struct MHD_Connection *conn, const char *url,
                                   const char *method, const char *upload_data,
                                   size_t *upload_data_size, void **req_cls)
{
    static char too_large[] = "request body too large\n";
    const char *text = "text/plain; charset=utf-8";
    if (*req_cls == NULL) {
        struct req_state *st = calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        *req_cls = st;
        return MHD_YES;
    }
    struct req_state *st = *req_cls;
    size_t max = h->opt.max_body ? h->opt.max_body : HTTPD_MAX_BODY_DEFAULT;
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (st->too_big || st->len + n > max) {
            st->too_big = true; /* keep reading (and dropping) to answer 413 */
            return MHD_YES;
        }
        if (st->len + n + 1 > st->cap) {
            size_t cap = st->cap ? st->cap : 1024;
            while (cap < st->len + n + 1)
                cap *= 2;
            char *b = realloc(st->body, cap);
            if (b == NULL)
                return MHD_NO;
            st->body = b;
            st->cap = cap;
        }
        memcpy(st->body + st->len, upload_data, n);
        st->len += n;
        st->body[st->len] = '\0';
        return MHD_YES;
    }
    if (st->too_big)
        return reply(conn, 413, text, too_large, sizeof too_large - 1,
                     MHD_RESPMEM_PERSISTENT);
    char client[INET6_ADDRSTRLEN + 1];
    client_address(conn, client, sizeof client);
    struct httpd_request req = {
        .method = method,
        .path = url,
        .body = st->body != NULL ? st->body : "",
        .body_len = st->len,
        .client = client,
        .conn = conn,
    };
    struct httpd_response *resp = calloc(1, sizeof *resp);
    if (resp == NULL)
        return MHD_NO;
    h->opt.handler(h->opt.handler_arg, &req, resp);
    if (resp->status == 0) {
        free(resp->body);
        resp->body = strdup("not found\n");
        resp->len = resp->body ? strlen(resp->body) : 0;
        resp->status = MHD_HTTP_NOT_FOUND;
        resp->content_type = NULL;
    }
    struct MHD_Response *r;
    bool streamed = resp->stream != NULL;
    if (streamed) {
        free(resp->body);
        resp->body = NULL;
        /* resp lives until stream_done: the callback reads it */
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, resp,
                                              stream_done);
        if (r == NULL) {
            if (resp->stream_free != NULL)
                resp->stream_free(resp->stream_arg);
            free(resp);
            return MHD_NO;
        }
    } else {
        r = MHD_create_response_from_buffer(resp->len, resp->body ? resp->body : (char *)"",
                                            resp->body ? MHD_RESPMEM_MUST_FREE
                                                       : MHD_RESPMEM_PERSISTENT);
        if (r == NULL) {
            free(resp->body);
            free(resp);
            return MHD_NO;
        }
    }
    MHD_add_response_header(r, "Content-Type",
                            resp->content_type ? resp->content_type : text);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    /* Pages carry signed tokens in their URLs: never send them on as a
     * Referer, never frame them. */
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(r, resp->header_name[i], resp->header_value[i]);
    enum MHD_Result rc = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    if (!streamed)
        free(resp);
    return rc;
}

static bool is_ops_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
           strcmp(url, "/metrics") == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    struct httpd *h = cls;
    if (h->opt.handler != NULL && !is_ops_path(url))
        return handle_role(h, conn, url, method, upload_data, upload_data_size, req_cls);
    if (h->opt.handler != NULL && *req_cls == NULL) {
        /* handle_role's state on every request of a server with a
         * handler, so request_completed frees one kind of thing */
        struct req_state *st = calloc(1, sizeof *st);
        if (st == NULL)
            return MHD_NO;
        *req_cls = st;
        return MHD_YES;
    }
    static int first_call_marker;
    /* First call per request: headers only. Answer on the second, after any
     * body has been discarded. */
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* discard bodies: no endpoint takes one */
        return MHD_YES;
    }
    static char not_found[] = "not found\n";
    static char not_allowed[] = "method not allowed\n";
    static char ok[] = "ok\n";
    const char *text = "text/plain; charset=utf-8";

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, not_allowed,
                     sizeof not_allowed - 1, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/healthz") == 0)
        return reply(conn, MHD_HTTP_OK, text, ok, sizeof ok - 1, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/readyz") == 0) {
        char why[256] = "";
        bool ready = h->ready == NULL || h->ready(h->ready_arg, why, sizeof why);
        char body[300];
        int n = snprintf(body, sizeof body, ready ? "ready\n" : "not ready: %s\n", why);
        if (n < 0)
            n = 0;
        if ((size_t)n >= sizeof body)
            n = sizeof body - 1;
        return reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, text, body,
                     (size_t)n, MHD_RESPMEM_MUST_COPY);
    }
    if (strcmp(url, "/metrics") == 0 && h->metrics != NULL) {
        size_t len = 0;
        char *body = metrics_render(h->metrics, &len);
        if (body == NULL)
            return MHD_NO;
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                     MHD_RESPMEM_MUST_FREE);
    }
    return reply(conn, MHD_HTTP_NOT_FOUND, text, not_found, sizeof not_found - 1,
                 MHD_RESPMEM_PERSISTENT);
}

/* Parses "host:port" or "[v6]:port" into ss. Returns 0 or -1. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *sl)
{
    char host[128];
    const char *colon;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        size_t n = (size_t)(close - addr - 1);
        if (n >= sizeof host)
            return -1;
        memcpy(host, addr + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -1;
        size_t n = (size_t)(colon - addr);
        if (n >= sizeof host)
            return -1;
        memcpy(host, addr, n);
        host[n] = '\0';
        if (n == 0)
            snprintf(host, sizeof host, "0.0.0.0");
    }
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
        return -1;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *sl = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *sl = sizeof *v6;
        return 0;
    }
    return -1;
}

struct httpd *httpd_start(const char *addr, struct metrics *m, httpd_ready_fn ready, void *arg,
                          char *errstr, size_t errstr_size)
{
    return httpd_start_opts(addr, m, ready, arg, NULL, errstr, errstr_size);
}

struct httpd *httpd_start_opts(const char *addr, struct metrics *m, httpd_ready_fn ready,
                               void *arg, const struct httpd_options *opt, char *errstr,
                               size_t errstr_size)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (parse_addr(addr, &ss, &sl) != 0) {
        snprintf(errstr, errstr_size,
                 "could not parse listen address '%s' (want HOST:PORT, e.g. 127.0.0.1:9100)",
                 addr);
        return NULL;
    }
    struct httpd *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    h->metrics = m;
    h->ready = ready;
    h->ready_arg = arg;
    if (opt != NULL)
        h->opt = *opt;
    unsigned conn_limit = h->opt.conn_limit ? h->opt.conn_limit : HTTPD_CONN_LIMIT;
    unsigned per_ip = h->opt.per_ip_limit ? h->opt.per_ip_limit : HTTPD_PER_IP_LIMIT;
    unsigned threads = h->opt.threads > 1 ? h->opt.threads : 1;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (h->opt.thread_per_connection) {
        flags |= MHD_USE_THREAD_PER_CONNECTION;
        threads = 1; /* a pool and a thread per connection exclude each other */
    }
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, conn_limit, MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, h,
        /* 1: no pool, the one internal thread (the roles' endpoint) */
        MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_END);
    if (h->daemon == NULL) {
        snprintf(errstr, errstr_size, "could not listen on %s: %s", addr,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : 0;
    return h;
}

int httpd_port(const struct httpd *h)
{
    return h->port;
}

void httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}

bool httpd_checks(const struct httpd_check *checks, size_t n, char *why, size_t whysz)
{
    for (size_t i = 0; i < n; i++) {
        if (!checks[i].ok) {
            snprintf(why, whysz, "%s", checks[i].why);
            return false;
        }
    }
    return true;
}
