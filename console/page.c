#include "page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg.h"

char *page_escape(const char *s, char *out, size_t outsz)
{
    size_t o = 0;
    if (outsz == 0)
        return out;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        size_t n = rep ? strlen(rep) : 1;
        if (o + n + 1 > outsz)
            break;
        if (rep)
            memcpy(out + o, rep, n);
        else
            out[o] = *s;
        o += n;
    }
    out[o] = '\0';
    return out;
}

void page_html(struct httpd_response *resp, unsigned status, const char *title,
               const char *body_html)
{
    char t[512];
    page_escape(title, t, sizeof t);
    size_t cap = strlen(body_html) + 2 * strlen(t) + 1024;
    char *b = malloc(cap);
    if (b == NULL) {
        httpd_response_set(resp, 500, NULL, "out of memory\n");
        return;
    }
    snprintf(b, cap,
             "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             "<meta name=\"robots\" content=\"noindex\">"
             "<title>vigil: %s</title></head>\n<body style=\"font-family:sans-serif;"
             "max-width:40em;margin:2em auto;padding:0 1em\">\n<h1>%s</h1>\n%s\n"
             "<p style=\"color:#666;font-size:small\">vigil safety monitoring</p>\n"
             "</body></html>\n",
             t, t, body_html);
    httpd_response_set(resp, status, "text/html; charset=utf-8", b);
    free(b);
    /* no script, no style sheet, no frame, forms only to ourselves */
    httpd_response_header(resp, "Content-Security-Policy",
                          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                          "frame-ancestors 'none'; base-uri 'none'");
}

int page_audit(PGconn *c, const char *alert_id, const char *kind, const char *actor,
               json_t *detail, char *errstr, size_t errstr_size)
{
    char *text = detail ? json_dumps(detail, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(detail);
    const char *params[] = {alert_id, kind, actor, text ? text : "{}"};
    PGresult *r = pg_query(c, "SELECT vigil_audit_append($1, $2, $3, $4::jsonb)", 4, params,
                           errstr, errstr_size);
    free(text);
    if (r == NULL)
        return -1;
    PQclear(r);
    return 0;
}
