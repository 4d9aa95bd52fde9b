/*
 * jsonw: JSON text written straight into a buffer (jsonw.h).
 */
#include "jsonw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(struct jsonw *w, size_t more)
{
    if (w->failed)
        return false;
    if (w->len + more + 1 <= w->cap)
        return true;
    size_t cap = w->cap ? w->cap : 1024;
    while (cap < w->len + more + 1)
        cap *= 2;
    char *b = realloc(w->buf, cap);
    if (b == NULL) {
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
        w->failed = true;
        return false;
    }
    w->buf = b;
    w->cap = cap;
    return true;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void jsonw_lit(struct jsonw *w, const char *s)
{
    jsonw_raw(w, s, strlen(s));
}

static void put_u(char *out, unsigned v)
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'u';
    out[2] = hex[(v >> 12) & 0xf];
    out[3] = hex[(v >> 8) & 0xf];
    out[4] = hex[(v >> 4) & 0xf];
    out[5] = hex[v & 0xf];
}

/* The code point of the UTF-8 sequence at P (of N bytes left) and its
 * length in *LEN, or -1 (length 1) for a byte that starts no valid
 * sequence: overlong forms, surrogates and values above U+10FFFF too. */
static int32_t utf8_next(const unsigned char *p, size_t n, size_t *len)
{
    *len = 1;
    unsigned c = p[0];
    if (c < 0x80)
        return (int32_t)c;
    size_t k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (k == 0 || c > 0xf4 || n < k)
        return -1;
    uint32_t v = c & (0x7f >> k);
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if ((k == 3 && v < 0x800) || (k == 4 && (v < 0x10000 || v > 0x10ffff)) ||
        (v >= 0xd800 && v <= 0xdfff))
        return -1;
    *len = k;
    return (int32_t)v;
}

void jsonw_str(struct jsonw *w, const char *s)
{
    if (s == NULL) {
        jsonw_raw(w, "null", 4);
        return;
    }
    size_t n = strlen(s);
    /* at most 6 bytes out per byte in (a control byte's \u00XX; a 4-byte
     * sequence becomes a 12-byte surrogate pair), plus the quotes */
    if (!reserve(w, n * 6 + 2))
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
            *o++ = (char)c;
            p++;
            continue;
        }
        size_t len;
        int32_t v = utf8_next(p, (size_t)(end - p), &len);
        p += len;
        switch (v) {
        case '"':
            *o++ = '\\';
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            *o++ = '\\';
            break;
        case '\n':
            *o++ = '\\';
            *o++ = 'n';
            break;
        case '\t':
            *o++ = '\\';
            *o++ = 't';
            break;
        case '\r':
            *o++ = '\\';
            *o++ = 'r';
            break;
        default:
            if (v < 0)
                v = 0xfffd;
            if (v >= 0x10000) {
                unsigned u = (unsigned)v - 0x10000;
                put_u(o, 0xd800 + (u >> 10));
                put_u(o + 6, 0xdc00 + (u & 0x3ff));
                o += 12;
            } else {
                put_u(o, (unsigned)v);
                o += 6;
            }
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

char *jsonw_finish(struct jsonw *w)
{
    char *b = w->failed ? NULL : w->buf;
    if (b == NULL && !w->failed)
        b = calloc(1, 1);
    w->buf = NULL;
    w->len = w->cap = 0;
    w->failed = false;
    return b;
}
