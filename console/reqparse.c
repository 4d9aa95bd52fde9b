/*
 * reqparse: bounded parsers of query strings, cookies and JSON bodies
 * (reqparse.h).
 */
#include "reqparse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long reqparse_urldecode(const char *in, size_t len, char *out, size_t outsz, bool controls_ok)
{
    size_t o = 0;
    if (outsz == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            i += 2;
        }
        if (c == '\0' || (!controls_ok && (c < 0x20 || c == 0x7f)) || o + 1 >= outsz)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Decodes IN[0..len) into out (room for len + 1), control characters
 * refused. Returns the decoded length, or -1. */
static long decode(const char *in, size_t len, char *out)
{
    return reqparse_urldecode(in, len, out, len + 1, false);
}

static bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '_'))
            return false;
    return true;
}

static bool value_valid(const char *s)
{
    if (strlen(s) > REQPARSE_VALUE_MAX)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static int store(struct reqparse_query *q, const char *name, const char *value, char *errstr,
                 size_t errstr_size)
{
    if (!name_valid(name)) {
        snprintf(errstr, errstr_size, "malformed parameter name");
        return -1;
    }
    if (!value_valid(value)) {
        snprintf(errstr, errstr_size, "parameter '%s' is too long or holds control characters", name);
        return -1;
    }
    if (reqparse_query_get(q, name) != NULL) {
        snprintf(errstr, errstr_size, "parameter '%s' given twice", name);
        return -1;
    }
    if (q->n == REQPARSE_PARAMS_MAX) {
        snprintf(errstr, errstr_size, "more than %d parameters", REQPARSE_PARAMS_MAX);
        return -1;
    }
    q->name[q->n] = name;
    q->value[q->n] = value;
    q->n++;
    return 0;
}

int reqparse_query_parse(struct reqparse_query *q, const char *raw, char *errstr, size_t errstr_size)
{
    memset(q, 0, sizeof *q);
    if (raw == NULL || raw[0] == '\0')
        return 0;
    size_t len = strlen(raw);
    if (len > REQPARSE_QUERY_MAX) {
        snprintf(errstr, errstr_size, "query string longer than %d bytes", REQPARSE_QUERY_MAX);
        return -1;
    }
    /* Decoded text is never longer than the raw text: one buffer of the raw
     * length plus a NUL per piece holds every name and value. */
    q->buf = malloc(2 * len + 2);
    if (q->buf == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    char *w = q->buf;
    const char *p = raw;
    while (*p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen == 0) {
            p = amp ? amp + 1 : p + plen;
            continue;
        }
        const char *eq = memchr(p, '=', plen);
        size_t nlen = eq ? (size_t)(eq - p) : plen;
        char *name = w;
        if (decode(p, nlen, name) < 0)
            goto bad;
        w += strlen(name) + 1;
        char *value = w;
        if (eq) {
            if (decode(eq + 1, plen - nlen - 1, value) < 0)
                goto bad;
        } else {
            value[0] = '\0';
        }
        w += strlen(value) + 1;
        if (store(q, name, value, errstr, errstr_size) < 0)
            goto fail;
        p = amp ? amp + 1 : p + plen;
    }
    return 0;
bad:
    snprintf(errstr, errstr_size, "malformed query string (bad %%-escape or control character)");
fail:
    q->n = 0;
    return -1;
}

int reqparse_query_add(struct reqparse_query *q, const char *name, const char *value,
                       char *errstr, size_t errstr_size)
{
    return store(q, name, value ? value : "", errstr, errstr_size);
}

const char *reqparse_query_get(const struct reqparse_query *q, const char *name)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->name[i], name) == 0)
            return q->value[i];
    return NULL;
}

int reqparse_query_only(const struct reqparse_query *q, const char *const *allowed, char *errstr,
                        size_t errstr_size)
{
    for (size_t i = 0; i < q->n; i++) {
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, q->name[i]) == 0;
        if (!ok) {
            snprintf(errstr, errstr_size, "unknown parameter '%s'", q->name[i]);
            return -1;
        }
    }
    return 0;
}

void reqparse_query_free(struct reqparse_query *q)
{
    free(q->buf);
    memset(q, 0, sizeof *q);
}

int reqparse_cookie_get(const char *header, const char *name, char *out, size_t outsz)
{
    if (header == NULL)
        return 0;
    if (strlen(header) > 8192)
        return -1;
    size_t nlen = strlen(name);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == ';')
            p++;
        if (*p == '\0')
            break;
        const char *end = strchr(p, ';');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = plen - nlen - 1;
            while (vlen > 0 && p[nlen + 1 + vlen - 1] == ' ')
                vlen--;
            if (vlen + 1 > outsz)
                return -1;
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return 1;
        }
        p += plen;
    }
    return 0;
}

json_t *reqparse_json_object(const char *body, size_t len, char *errstr, size_t errstr_size)
{
    if (body == NULL || len == 0) {
        snprintf(errstr, errstr_size, "a JSON object body is required");
        return NULL;
    }
    if (len > REQPARSE_BODY_MAX) {
        snprintf(errstr, errstr_size, "body longer than %d bytes", REQPARSE_BODY_MAX);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        snprintf(errstr, errstr_size, "malformed JSON at line %d column %d: %s", je.line,
                 je.column, je.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(errstr, errstr_size, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static bool digits(const char *s, int n, int lo, int hi)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return v >= lo && v <= hi;
}

bool reqparse_time_valid(const char *s)
{
    /* 2026-12-02T17:40:00 */
    if (s == NULL || strlen(s) < 20 || strlen(s) > 32)
        return false;
    if (!digits(s, 4, 1900, 9999) || s[4] != '-' || !digits(s + 5, 2, 1, 12) || s[7] != '-' ||
        !digits(s + 8, 2, 1, 31) || s[10] != 'T' || !digits(s + 11, 2, 0, 23) || s[13] != ':' ||
        !digits(s + 14, 2, 0, 59) || s[16] != ':' || !digits(s + 17, 2, 0, 60))
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p) && n < 7) {
            p++;
            n++;
        }
        if (n == 0 || n > 6)
            return false;
    }
    if (p[0] == 'Z' && p[1] == '\0')
        return true;
    if ((p[0] == '+' || p[0] == '-') && digits(p + 1, 2, 0, 23) && p[3] == ':' &&
        digits(p + 4, 2, 0, 59) && p[6] == '\0')
        return true;
    return false;
}

bool reqparse_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    size_t n = strlen(s);
    if (n == 0 || n > REQPARSE_ID_MAX)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || c == '/' || c == '\\' || c == '"' || c == '\'' || c == '<' ||
            c == '>')
            return false;
    }
    return true;
}
