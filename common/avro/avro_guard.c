/*
 * avro_guard: the bounds walk that runs before avro-c reads a body. See
 * avro_guard.h for why each check exists.
 */
#include "avro_guard.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

void avro_guard_init(struct avro_guard *g, const void *base, const void *body, const void *end,
                     char *errstr, size_t errstr_size)
{
    g->base = base;
    g->p = body;
    g->end = end;
    g->depth = 0;
    /* Items of zero bytes (nulls, empty records) cost no input; the budget
     * keeps a forged count from buying unbounded work in avro-c's loops. */
    g->items_left = (size_t)(g->end - g->p) + 1024;
    g->errstr = errstr;
    g->errstr_size = errstr_size;
}

enum codec_status avro_guard_fail(struct avro_guard *g, enum codec_status status,
                                  const char *fmt, ...)
{
    if (!g->errstr || g->errstr_size == 0)
        return status;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g->errstr, g->errstr_size, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < g->errstr_size)
        snprintf(g->errstr + n, g->errstr_size - (size_t)n, " (at byte %zu)",
                 (size_t)(g->p - g->base));
    return status;
}

static size_t remaining(const struct avro_guard *g)
{
    return (size_t)(g->end - g->p);
}

static enum codec_status need(struct avro_guard *g, size_t n, const char *what)
{
    if (remaining(g) < n)
        return avro_guard_fail(g, CODEC_ETRUNCATED, "message ends inside a %s", what);
    g->p += n;
    return CODEC_OK;
}

static enum codec_status read_long(struct avro_guard *g, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        if (g->p >= g->end)
            return avro_guard_fail(g, CODEC_ETRUNCATED, "message ends inside a number");
        uint8_t b = *g->p;
        if (shift == 63 && b > 1)
            return avro_guard_fail(g, CODEC_ECORRUPT, "number longer than 64 bits");
        g->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    return CODEC_OK;
}

static enum codec_status read_int(struct avro_guard *g, int64_t *out)
{
    const uint8_t *at = g->p;
    enum codec_status st = read_long(g, out);
    if (st == CODEC_OK && (*out < INT32_MIN || *out > INT32_MAX)) {
        g->p = at;
        return avro_guard_fail(g, CODEC_ECORRUPT, "int %lld out of 32-bit range",
                               (long long)*out);
    }
    return st;
}

/* A string/bytes length (or an array block's byte size): never negative,
 * never beyond the bytes left. */
static enum codec_status read_len(struct avro_guard *g, int64_t *out)
{
    int64_t n;
    const uint8_t *at = g->p;
    enum codec_status st = read_long(g, &n);
    if (st != CODEC_OK)
        return st;
    if (n < 0) {
        g->p = at;
        return avro_guard_fail(g, CODEC_ECORRUPT, "negative length %lld", (long long)n);
    }
    if ((uint64_t)n > remaining(g)) {
        /* A length a message could carry means the bytes were cut short;
         * one no message may carry is a corrupt or hostile length. */
        g->p = at;
        if ((uint64_t)n <= CODEC_DEFAULT_MAX_MESSAGE)
            return avro_guard_fail(g, CODEC_ETRUNCATED,
                                   "message ends inside a value of %lld bytes (%zu bytes left)",
                                   (long long)n, remaining(g));
        return avro_guard_fail(g, CODEC_EOVERSIZE, "length %lld is beyond the %zu bytes left",
                               (long long)n, remaining(g));
    }
    *out = n;
    return CODEC_OK;
}

/* A string or bytes value: its length, then as many bytes. */
static enum codec_status skip_len(struct avro_guard *g)
{
    int64_t n;
    enum codec_status st = read_len(g, &n);
    if (st == CODEC_OK)
        g->p += n;
    return st;
}

/* An array/map block header: the item count (0 ends the array). A negative
 * count is followed by the block's size in bytes (spec). */
static enum codec_status read_block(struct avro_guard *g, int64_t *count)
{
    const uint8_t *at = g->p;
    enum codec_status st = read_long(g, count);
    if (st != CODEC_OK)
        return st;
    if (*count < 0) {
        if (*count == INT64_MIN) {
            g->p = at;
            return avro_guard_fail(g, CODEC_ECORRUPT, "bad block count");
        }
        *count = -*count;
        int64_t bytes; /* avro-c ignores it; checked as any length */
        st = read_len(g, &bytes);
        if (st != CODEC_OK)
            return st;
    }
    if ((uint64_t)*count > g->items_left) {
        g->p = at;
        return avro_guard_fail(g, CODEC_EOVERSIZE,
                               "block of %lld items is beyond this message's limit",
                               (long long)*count);
    }
    g->items_left -= (size_t)*count;
    return CODEC_OK;
}

static enum codec_status read_index(struct avro_guard *g, int64_t n, const char *what,
                                    int64_t *out)
{
    const uint8_t *at = g->p;
    enum codec_status st = read_long(g, out);
    if (st != CODEC_OK)
        return st;
    if (*out < 0 || *out >= n) {
        g->p = at;
        return avro_guard_fail(g, CODEC_ECORRUPT, "%s index %lld out of range (%lld)", what,
                               (long long)*out, (long long)n);
    }
    return CODEC_OK;
}

static enum codec_status walk_container(struct avro_guard *g, avro_schema_t s);

enum codec_status avro_guard_value(struct avro_guard *g, avro_schema_t s)
{
    int64_t v;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return CODEC_OK;
    case AVRO_BOOLEAN:
        if (g->p < g->end && *g->p > 1)
            return avro_guard_fail(g, CODEC_ECORRUPT, "boolean byte 0x%02x", *g->p);
        return need(g, 1, "boolean");
    case AVRO_INT32:
        return read_int(g, &v);
    case AVRO_INT64:
        return read_long(g, &v);
    case AVRO_FLOAT:
        return need(g, 4, "float");
    case AVRO_DOUBLE:
        return need(g, 8, "double");
    case AVRO_BYTES:
    case AVRO_STRING:
        return skip_len(g);
    case AVRO_FIXED: {
        /* The size comes from a writer schema, so from outside too: avro-c
         * allocates it before reading. */
        int64_t size = avro_schema_fixed_size(s);
        if (size < 0 || (uint64_t)size > remaining(g))
            return avro_guard_fail(g, CODEC_ETRUNCATED, "message ends inside a fixed of %lld",
                                   (long long)size);
        g->p += size;
        return CODEC_OK;
    }
    case AVRO_ENUM: {
        /* avro-c reads an enum index into an int without a range check. */
        const uint8_t *at = g->p;
        enum codec_status st = read_int(g, &v);
        if (st == CODEC_OK && (v < 0 || v >= avro_schema_enum_number_of_symbols(s))) {
            g->p = at;
            return avro_guard_fail(g, CODEC_ECORRUPT, "enum %s index %lld out of range (%d)",
                                   avro_schema_name(s), (long long)v,
                                   avro_schema_enum_number_of_symbols(s));
        }
        return st;
    }
    case AVRO_LINK:
        return avro_guard_value(g, avro_schema_link_target(s));
    default:
        return walk_container(g, s);
    }
}

/* Records, unions, arrays, maps: a recursive writer schema recurses here
 * once per nesting level of the message, as avro-c will. */
static enum codec_status walk_container(struct avro_guard *g, avro_schema_t s)
{
    if (++g->depth > AVRO_GUARD_MAX_DEPTH) {
        g->depth--;
        return avro_guard_fail(g, CODEC_EOVERSIZE, "values nested deeper than %d",
                               AVRO_GUARD_MAX_DEPTH);
    }
    enum codec_status st = CODEC_OK;
    int64_t v;
    switch (avro_typeof(s)) {
    case AVRO_RECORD: {
        size_t n = avro_schema_record_size(s);
        for (size_t i = 0; i < n && st == CODEC_OK; i++)
            st = avro_guard_value(g, avro_schema_record_field_get_by_index(s, (int)i));
        break;
    }
    case AVRO_UNION:
        st = read_index(g, (int64_t)avro_schema_union_size(s), "union", &v);
        if (st == CODEC_OK)
            st = avro_guard_value(g, avro_schema_union_branch(s, (int)v));
        break;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t items = map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        int64_t count;
        for (;;) {
            st = read_block(g, &count);
            if (st != CODEC_OK || count == 0)
                break;
            for (int64_t i = 0; i < count && st == CODEC_OK; i++) {
                if (map)
                    st = skip_len(g); /* the key: a string */
                if (st == CODEC_OK)
                    st = avro_guard_value(g, items);
            }
            if (st != CODEC_OK)
                break;
        }
        break;
    }
    default:
        st = avro_guard_fail(g, CODEC_ECORRUPT, "schema type %d is not known",
                             (int)avro_typeof(s));
        break;
    }
    g->depth--;
    return st;
}
