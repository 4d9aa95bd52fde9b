#include "route.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct route {
    const char *method;
    const char *prefix;
    size_t prefix_len;
    httpd_handler_fn fn;
    void *arg;
};

struct route_table {
    struct route routes[ROUTE_MAX];
    int n;
};

struct route_table *route_table_new(void)
{
    return calloc(1, sizeof(struct route_table));
}

void route_table_destroy(struct route_table *t)
{
    free(t);
}

int route_add(struct route_table *t, const char *method, const char *prefix,
              httpd_handler_fn fn, void *arg, char *errstr, size_t errstr_size)
{
    if (prefix == NULL || prefix[0] != '/' || method == NULL || fn == NULL) {
        snprintf(errstr, errstr_size, "route: a route needs a method, a handler and a path "
                                      "starting with '/'");
        return -1;
    }
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->routes[i].method, method) == 0 && strcmp(t->routes[i].prefix, prefix) == 0) {
            snprintf(errstr, errstr_size, "route: %s %s registered twice", method, prefix);
            return -1;
        }
    if (t->n >= ROUTE_MAX) {
        snprintf(errstr, errstr_size, "route: more than %d routes", ROUTE_MAX);
        return -1;
    }
    t->routes[t->n++] = (struct route){method, prefix, strlen(prefix), fn, arg};
    return 0;
}

static bool path_matches(const struct route *r, const char *path)
{
    if (r->prefix[r->prefix_len - 1] == '/')
        return strncmp(path, r->prefix, r->prefix_len) == 0;
    return strcmp(path, r->prefix) == 0;
}

void route_dispatch(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    const struct route_table *t = arg;
    const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
    const struct route *best = NULL;
    size_t best_len = 0;
    char allow[256] = "";
    size_t other_len = 0;
    for (int i = 0; i < t->n; i++) {
        const struct route *r = &t->routes[i];
        if (!path_matches(r, req->path))
            continue;
        if (strcmp(r->method, method) == 0) {
            if (best == NULL || r->prefix_len > best_len) {
                best = r;
                best_len = r->prefix_len;
            }
        } else if (r->prefix_len >= other_len) {
            other_len = r->prefix_len;
            size_t used = strlen(allow);
            snprintf(allow + used, sizeof allow - used, "%s%s", used ? ", " : "", r->method);
        }
    }
    if (best != NULL && best_len >= other_len) {
        best->fn(best->arg, req, resp);
        return;
    }
    if (other_len > 0) {
        httpd_response_set(resp, 405, NULL, "method not allowed\n");
        httpd_response_header(resp, "Allow", allow);
        return;
    }
    if (best != NULL)
        best->fn(best->arg, req, resp);
}
