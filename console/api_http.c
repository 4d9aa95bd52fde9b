/*
 * api_http: libmicrohttpd request -> api_request -> api_response -> reply
 * (api_http.h).
 */
#include "api_http.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_stream.h"
#include "api.h"
#include "coalesce.h"
#include "deadline.h"
#include "log.h"
#include "pg.h"

#define PROXIES_MAX 16

struct api_http {
    struct api_context ctx;
    struct pgpool *pool;
    struct limiter *limiter;
    /* trusted-proxy mode: peers whose identity header is believed */
    char proxies[PROXIES_MAX][64];
    int nproxies;
    char proxy_header[64];
    struct alert_stream_hub *streams;
    struct coalesce *coalesce; /* NULL: off */
};

/* The identity the request carries through a trusted proxy, or NULL: the
 * header is believed only from a configured peer address, and ignored (not
 * an error) from anyone else, who could have set it themselves. */
static const char *proxy_user(const struct api_http *ah, const struct httpd_request *hreq)
{
    if (ah->nproxies == 0 || hreq->client == NULL)
        return NULL;
    for (int i = 0; i < ah->nproxies; i++)
        if (strcmp(ah->proxies[i], hreq->client) == 0)
            return httpd_request_header(hreq, ah->proxy_header);
    return NULL;
}

struct query_fill {
    struct reqparse_query *q;
    int bad;
    char err[256];
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    struct query_fill *f = cls;
    if (f->bad)
        return MHD_NO;
    /* reqparse_query_add checks names, lengths, control characters and
     * repeats, as it does for a raw query string. */
    if (reqparse_query_add(f->q, key ? key : "", value, f->err, sizeof f->err) < 0) {
        f->bad = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

static void reply_json(struct httpd_response *out, const struct api_response *r)
{
    httpd_response_set(out, (unsigned)r->status,
                       r->content_type ? r->content_type : "application/json; charset=utf-8",
                       r->body ? r->body : "");
    if (r->truncated)
        httpd_response_header(out, "X-Vigil-Truncated", "true");
    if (r->set_cookie[0])
        httpd_response_header(out, "Set-Cookie", r->set_cookie);
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        httpd_response_header(out, "Retry-After", ra);
    }
}

static struct api_request request_of(const struct api_http *ah, const struct httpd_request *hreq,
                                     const struct reqparse_query *q, int64_t arrived_ns)
{
    return (struct api_request){
        .ctx = &ah->ctx,
        .method = hreq->method,
        .path = hreq->path,
        .query = q,
        .cookie = httpd_request_header(hreq, "Cookie"),
        .csrf = httpd_request_header(hreq, "X-CSRF-Token"),
        .authorization = httpd_request_header(hreq, "Authorization"),
        .proxy_user = proxy_user(ah, hreq),
        .content_type = httpd_request_header(hreq, "Content-Type"),
        .body = hreq->body,
        .body_len = hreq->body_len,
        .coalesce = ah->coalesce,
        .arrived_ns = arrived_ns,
    };
}

/* GET /api/v1/alerts/stream: authenticated like every API request (under
 * a limiter slot, which is released once the stream is set up: an open
 * stream is bounded by the hub's own count, not by the request slots),
 * then Server-Sent Events (alert_stream.c). */
static void stream(struct api_http *ah, const struct httpd_request *hreq,
                   struct httpd_response *out)
{
    struct api_response resp = {0};
    if (strcmp(hreq->method, "GET") != 0 && strcmp(hreq->method, "HEAD") != 0) {
        api_error(&resp, 405, "method_not_allowed", "this path does not take that method");
        reply_json(out, &resp);
        httpd_response_header(out, "Allow", "GET, HEAD");
        api_response_clear(&resp);
        return;
    }
    struct limiter_slot slot;
    if (!limiter_enter(ah->limiter, LIMITER_GENERAL, ALERT_STREAM_PATH, &slot)) {
        resp.retry_after = LIMITER_RETRY_AFTER_S;
        api_error(&resp, 503, "busy", "the console is busy; retry shortly");
        reply_json(out, &resp);
        api_response_clear(&resp);
        return;
    }
    char err[256];
    char start[64] = "";
    long long start_event = 0;
    struct auth_principal who;
    memset(&who, 0, sizeof who);
    PGconn *conn = pgpool_get(ah->pool, 1000, err, sizeof err);
    if (conn == NULL) {
        api_error(&resp, 503, "unavailable", "the database is not available; retry later");
    } else {
        struct api_request req = request_of(ah, hreq, NULL, deadline_now());
        if (api_authenticate(conn, &req, &who, &resp) == 0) {
            PGresult *r = pg_query(conn,
                                   "SELECT to_char(now() AT TIME ZONE 'UTC', "
                                   "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
                                   "(SELECT last_event_id FROM alert_events_head)",
                                   0, NULL, err, sizeof err);
            if (r != NULL && PQntuples(r) == 1 && !PQgetisnull(r, 0, 1)) {
                snprintf(start, sizeof start, "%s", PQgetvalue(r, 0, 0));
                start_event = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
            }
            else
                api_error(&resp, 503, "unavailable", "the database is not available; retry later");
            PQclear(r);
        }
        pgpool_put(ah->pool, conn, PQstatus(conn) != CONNECTION_OK);
    }
    limiter_leave(&slot);
    if (resp.status != 0) {
        reply_json(out, &resp);
        api_response_clear(&resp);
        return;
    }
    struct alert_stream *s = alert_stream_open(ah->streams, &who, start, start_event);
    if (s == NULL) {
        resp.retry_after = 5;
        api_error(&resp, 503, "busy", "too many live queue streams; poll /api/v1/alerts instead");
        reply_json(out, &resp);
        api_response_clear(&resp);
        return;
    }
    out->status = 200;
    out->content_type = "text/event-stream; charset=utf-8";
    /* nginx (the usual ingress) buffers answers unless told not to */
    httpd_response_header(out, "X-Accel-Buffering", "no");
    out->stream = alert_stream_read;
    out->stream_free = alert_stream_free;
    out->stream_arg = s;
}

static void handle(void *arg, const struct httpd_request *hreq, struct httpd_response *out)
{
    struct api_http *ah = arg;
    /* The whole request is in: a statement sent from now on sees whatever
     * the client did before sending it (coalesce.h). */
    int64_t arrived_ns = deadline_now();
    if (strcmp(hreq->path, ALERT_STREAM_PATH) == 0) {
        stream(ah, hreq, out);
        return;
    }
    struct api_response resp = {0};
    char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1] = {{0}};
    int status;
    const struct api_route *route = api_route_find(hreq->method, hreq->path, values, &status);
    if (route == NULL) {
        api_error(&resp, status, status == 405 ? "method_not_allowed" : "not_found",
                  status == 405 ? "this path does not take that method" : "no such API path");
        reply_json(out, &resp);
        api_response_clear(&resp);
        return;
    }
    struct limiter_slot slot;
    if (!limiter_enter(ah->limiter, route->cls, route->pattern, &slot)) {
        resp.retry_after = LIMITER_RETRY_AFTER_S;
        api_error(&resp, 503, "busy", "the console is busy; retry shortly");
        reply_json(out, &resp);
        api_response_clear(&resp);
        return;
    }
    struct reqparse_query q;
    memset(&q, 0, sizeof q);
    struct query_fill fill = {.q = &q};
    MHD_get_connection_values(hreq->conn, MHD_GET_ARGUMENT_KIND, add_arg, &fill);
    char err[256];
    PGconn *conn = NULL;
    if (fill.bad) {
        api_error(&resp, 400, "bad_request", fill.err);
    } else if ((conn = pgpool_get(ah->pool, 1000, err, sizeof err)) == NULL) {
        log_msg(LOG_WARN, "console", "no PostgreSQL connection for %s: %s", route->pattern, err);
        api_error(&resp, 503, "unavailable", "the database is not available; retry later");
    } else {
        struct api_request req = request_of(ah, hreq, &q, arrived_ns);
        api_handle(conn, route, values, &req, &resp);
        pgpool_put(ah->pool, conn, PQstatus(conn) != CONNECTION_OK);
    }
    reqparse_query_free(&q);
    limiter_leave(&slot);
    reply_json(out, &resp);
    api_response_clear(&resp);
}

static void cleanup_fn(void *arg)
{
    struct api_http *ah = arg;
    alert_stream_hub_destroy(ah->streams);
    limiter_destroy(ah->limiter);
    coalesce_destroy(ah->coalesce);
    free(ah);
}

int api_http_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                      char *errstr, size_t errstr_size)
{
    if (secret_init(errstr, errstr_size) < 0)
        return -1;
    const struct console_options *o = app->opt;
    int n = o->api_max_in_flight > 0 ? o->api_max_in_flight : o->pg_connections;
    int heavy = o->api_max_heavy > 0 ? o->api_max_heavy : (n / 4 > 0 ? n / 4 : 1);
    int signin = n / 4 > 0 ? n / 4 : 1;
    int wait = o->api_slot_wait_ms > 0 ? o->api_slot_wait_ms : LIMITER_WAIT_MS;
    struct api_http *ah = calloc(1, sizeof *ah);
    if (ah == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    ah->pool = app->pool;
    ah->ctx = (struct api_context){.public_url = o->public_url, .smtp_url = o->smtp_url,
                                   .smtp_from = o->smtp_from ? o->smtp_from : "vigil@localhost",
                                   .smtp_user = o->smtp_user, .smtp_password = o->smtp_password,
                                   .smtp_tls = o->smtp_tls};
    ah->limiter = limiter_new(app->metrics, (unsigned)n, (unsigned)heavy, (unsigned)signin, wait);
    ah->streams = alert_stream_hub_new(o->max_streams, app->pool, app->stop, app->metrics);
    if (o->coalesce)
        ah->coalesce = coalesce_new(app->metrics);
    if (ah->limiter == NULL || ah->streams == NULL || (o->coalesce && ah->coalesce == NULL)) {
        limiter_destroy(ah->limiter);
        alert_stream_hub_destroy(ah->streams);
        coalesce_destroy(ah->coalesce);
        free(ah);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    *cleanup = cleanup_fn;
    *cleanup_arg = ah;
    if (o->trusted_proxies != NULL && o->trusted_proxies[0] != '\0') {
        const char *hdr = o->proxy_user_header ? o->proxy_user_header : "X-Forwarded-Email";
        if (strlen(hdr) == 0 || strlen(hdr) >= sizeof ah->proxy_header) {
            snprintf(errstr, errstr_size, "proxy_user_header '%s' is empty or too long", hdr);
            return -1;
        }
        memcpy(ah->proxy_header, hdr, strlen(hdr) + 1);
        const char *p = o->trusted_proxies;
        while (*p) {
            size_t len = strcspn(p, ", ");
            if (len > 0) {
                if (ah->nproxies == PROXIES_MAX || len >= sizeof ah->proxies[0]) {
                    snprintf(errstr, errstr_size, "trusted_proxies: at most %d addresses of up to 63 characters",
                             PROXIES_MAX);
                    return -1;
                }
                memcpy(ah->proxies[ah->nproxies], p, len);
                ah->proxies[ah->nproxies][len] = '\0';
                ah->nproxies++;
            }
            p += len;
            p += strspn(p, ", ");
        }
        log_msg(LOG_INFO, "console", "trusted-proxy mode: %s from %d address(es) identifies the user",
                ah->proxy_header, ah->nproxies);
    }
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (route_add(app->routes, methods[i], "/api/v1/", handle, ah, errstr, errstr_size) < 0)
            return -1;
    log_msg(LOG_INFO, "console", "API limiter: %d in flight (%d heavy, %d signing in), %d ms wait",
            n, heavy, signin, wait);
    return 0;
}
