/*
 * avro_guard: the bounds walk that runs before avro-c reads a body. See
 * avro_guard.h for why each check exists.
 */
#include "avro_guard.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- costs of avro-c's generic values ------------------------------------
 *
 * inst(s): bytes a value of s takes inline in its container (avro-c's
 * generic instance size, roughly: fixed inline, records the sum of their
 * fields, unions their largest branch, references and containers a
 * handle). eager(s): what building a value of s allocates in all: inst(s)
 * plus, for every named-type reference reached through record fields, a
 * value of the referenced type (avro-c builds those at once; unions,
 * arrays and maps build theirs when a message fills them). Both are
 * estimates from above; the limits are far from honest schemas.
 */

#define COSTS_SLOTS 16384 /* > twice the nodes a schema within the canonical limits has */

struct cost_slot {
    avro_schema_t key;
    size_t eager;
    int state;    /* of eager: 0 not yet, 1 being worked out, 2 done */
    bool visited; /* its children worked out too */
};

struct avro_guard_costs {
    struct cost_slot slots[COSTS_SLOTS];
};

struct cbuild {
    struct avro_guard_costs *c;
    bool failed;
    char *errstr;
    size_t errstr_size;
};

static void cfail(struct cbuild *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void cfail(struct cbuild *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    b->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->errstr, b->errstr_size, fmt, ap);
    va_end(ap);
}

static struct cost_slot *slot_of(const struct avro_guard_costs *c, avro_schema_t s)
{
    size_t h = ((uintptr_t)s >> 4) * 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < COSTS_SLOTS; i++) {
        const struct cost_slot *slot = &c->slots[(h + i) % COSTS_SLOTS];
        if (slot->key == s || slot->key == NULL)
            return (struct cost_slot *)slot;
    }
    return NULL;
}

static size_t add_sat(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

static size_t inst(avro_schema_t s, int depth)
{
    if (depth > 4 * AVRO_GUARD_MAX_DEPTH)
        return SIZE_MAX; /* beyond the canonical form's limits: cannot happen */
    size_t n = 32;
    switch (avro_typeof(s)) {
    case AVRO_FIXED:
        return avro_schema_fixed_size(s) < 0 ? SIZE_MAX
                                             : add_sat(16, (size_t)avro_schema_fixed_size(s));
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            n = add_sat(n, inst(avro_schema_record_field_get_by_index(s, (int)i), depth + 1));
        return n;
    case AVRO_UNION: {
        size_t max = 0;
        for (size_t i = 0; i < avro_schema_union_size(s); i++) {
            size_t b = inst(avro_schema_union_branch(s, (int)i), depth + 1);
            max = b > max ? b : max;
        }
        return add_sat(n, max);
    }
    case AVRO_ARRAY:
    case AVRO_MAP:
        return 64;
    default:
        return 32;
    }
}

static size_t eager(struct cbuild *b, avro_schema_t s, int depth);

/* The values building one of s allocates besides its own instance. */
static size_t extra(struct cbuild *b, avro_schema_t s, int depth)
{
    if (b->failed)
        return SIZE_MAX;
    if (is_avro_link(s))
        return eager(b, avro_schema_link_target(s), depth + 1);
    size_t n = 0;
    if (is_avro_record(s))
        for (size_t i = 0; i < avro_schema_record_size(s) && !b->failed; i++)
            n = add_sat(n, extra(b, avro_schema_record_field_get_by_index(s, (int)i), depth + 1));
    return n;
}

static size_t eager(struct cbuild *b, avro_schema_t s, int depth)
{
    struct cost_slot *slot = slot_of(b->c, s);
    if (!slot) {
        cfail(b, "writer schema has too many types to check");
        return SIZE_MAX;
    }
    if (slot->state == 2)
        return slot->eager;
    if (slot->state == 1) {
        cfail(b, "record %s holds itself with no union, array or map between: avro-c "
                 "would build its values without end",
              avro_schema_type_name(s));
        return SIZE_MAX;
    }
    slot->key = s;
    slot->state = 1;
    size_t n = add_sat(inst(s, 0), extra(b, s, depth));
    if (n > AVRO_GUARD_MAX_VALUE && !b->failed)
        cfail(b, "a value of %s would take %s%zu bytes in avro-c, more than %d",
              avro_schema_type_name(s), n == SIZE_MAX ? "over " : "",
              n == SIZE_MAX ? (size_t)AVRO_GUARD_MAX_VALUE : n, AVRO_GUARD_MAX_VALUE);
    slot->eager = n;
    slot->state = 2;
    return n;
}

/* Works out eager() of every type reachable from s. */
static void visit(struct cbuild *b, avro_schema_t s)
{
    eager(b, s, 0);
    struct cost_slot *slot = slot_of(b->c, s);
    if (b->failed || !slot || slot->visited)
        return;
    slot->visited = true;
    switch (avro_typeof(s)) {
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            visit(b, avro_schema_record_field_get_by_index(s, (int)i));
        break;
    case AVRO_UNION:
        for (size_t i = 0; i < avro_schema_union_size(s); i++)
            visit(b, avro_schema_union_branch(s, (int)i));
        break;
    case AVRO_ARRAY:
        visit(b, avro_schema_array_items(s));
        break;
    case AVRO_MAP:
        visit(b, avro_schema_map_values(s));
        break;
    case AVRO_LINK:
        visit(b, avro_schema_link_target(s));
        break;
    default:
        break;
    }
}

struct avro_guard_costs *avro_guard_costs_new(avro_schema_t schema, char *errstr,
                                              size_t errstr_size)
{
    struct cbuild b = {.errstr = errstr, .errstr_size = errstr_size};
    b.c = calloc(1, sizeof *b.c);
    if (!b.c) {
        snprintf(errstr, errstr_size, "could not check schema: out of memory");
        return NULL;
    }
    visit(&b, schema);
    if (b.failed) {
        free(b.c);
        return NULL;
    }
    return b.c;
}

void avro_guard_costs_destroy(struct avro_guard_costs *costs)
{
    free(costs);
}

static size_t cost_of(const struct avro_guard_costs *c, avro_schema_t s)
{
    const struct cost_slot *slot = slot_of(c, s);
    return slot && slot->state == 2 ? slot->eager : AVRO_GUARD_MAX_VALUE;
}

/* ---- the walk ----------------------------------------------------------------- */

void avro_guard_init(struct avro_guard *g, const struct avro_guard_costs *costs,
                     const void *base, const void *body, const void *end, char *errstr,
                     size_t errstr_size)
{
    g->costs = costs;
    g->base = base;
    g->p = body;
    g->end = end;
    g->depth = 0;
    /* Items of zero bytes (nulls, empty records) cost no input; the budget
     * keeps a forged count from buying unbounded work in avro-c's loops. */
    g->items_left = (size_t)(g->end - g->p) + 1024;
    g->memory_left = add_sat((size_t)(g->end - g->p) * AVRO_GUARD_MEMORY_FACTOR,
                             AVRO_GUARD_MEMORY_BASE);
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

/* Counts what avro-c will allocate for the value about to be read. */
static enum codec_status charge(struct avro_guard *g, size_t bytes)
{
    if (bytes > g->memory_left)
        return avro_guard_fail(g, CODEC_EOVERSIZE,
                               "avro-c would allocate more for this message than %d x its "
                               "length + %d bytes",
                               AVRO_GUARD_MEMORY_FACTOR, AVRO_GUARD_MEMORY_BASE);
    g->memory_left -= bytes;
    return CODEC_OK;
}

static enum codec_status read_long(struct avro_guard *g, int64_t *out)
{
    uint64_t v = 0;
    *out = 0; /* set on failure too: -O3's maybe-uninitialized cannot see the status */
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
    int64_t n = 0;
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
    int64_t n = 0;
    const uint8_t *at = g->p;
    enum codec_status st = read_len(g, &n);
    if (st == CODEC_OK) {
        /* avro-c: the bytes plus a NUL, and a wrapper for them */
        const uint8_t *after = g->p;
        g->p = at;
        st = charge(g, (size_t)n + 64);
        g->p = after;
    }
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
        int64_t bytes = 0; /* avro-c ignores it; checked as any length */
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
    int64_t v = 0;
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
    int64_t v = 0;
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
            st = charge(g, cost_of(g->costs, avro_schema_union_branch(s, (int)v)));
        if (st == CODEC_OK)
            st = avro_guard_value(g, avro_schema_union_branch(s, (int)v));
        break;
    case AVRO_ARRAY:
    case AVRO_MAP: {
        bool map = avro_typeof(s) == AVRO_MAP;
        avro_schema_t items = map ? avro_schema_map_values(s) : avro_schema_array_items(s);
        size_t item_cost = 2 * cost_of(g->costs, items); /* avro-c doubles its arrays */
        int64_t count = 0;
        for (;;) {
            st = read_block(g, &count);
            if (st != CODEC_OK || count == 0)
                break;
            for (int64_t i = 0; i < count && st == CODEC_OK; i++) {
                st = charge(g, item_cost);
                if (map && st == CODEC_OK)
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
