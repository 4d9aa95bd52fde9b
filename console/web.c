/*
 * web: the embedded pages (web.h).
 */
#include "web.h"

#include <stdio.h>
#include <string.h>

#include "embedded.h"
#include "route.h"

static const struct {
    const char *path;
    const char *file;
    const char *ctype;
} files[] = {
    {"/console/", "console.html", "text/html; charset=utf-8"},
    {"/console/console.js", "console.js", "text/javascript; charset=utf-8"},
    {"/console/console.css", "console.css", "text/css; charset=utf-8"},
};

static void handle(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    (void)arg;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (strcmp(req->path, files[i].path) != 0)
            continue;
        const char *text = embedded_find(files[i].file);
        if (text == NULL)
            break;
        httpd_response_set(resp, 200, files[i].ctype, text);
        httpd_response_header(resp, "Content-Security-Policy", WEB_CSP);
        return;
    }
    httpd_response_set(resp, 404, "text/plain; charset=utf-8", "not found\n");
    httpd_response_header(resp, "Content-Security-Policy", WEB_CSP);
}

int web_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                 char *errstr, size_t errstr_size)
{
    (void)cleanup;
    (void)cleanup_arg;
    return route_add(app->routes, "GET", "/console/", handle, NULL, errstr, errstr_size);
}
