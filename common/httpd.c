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

struct httpd {
    struct MHD_Daemon *daemon;
    struct metrics *metrics;
    httpd_ready_fn ready;
    void *ready_arg;
    int port;
};

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

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    struct httpd *h = cls;
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
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONN_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)HTTPD_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTPD_CONN_MEMORY, MHD_OPTION_END);
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
