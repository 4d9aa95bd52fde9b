/*
 * avro_resolve: schema resolution into a plan, and the plan-driven decoder.
 * See avro_resolve.h for the rules.
 *
 * DESIGN: a plan is a tree of pnode, one per (writer node, reader node)
 * pair reached from the roots, built once per writer schema. Decoding walks
 * the plan and the bytes together: no per-message schema work, no per-
 * message allocation (strings are handed to the sink as pointers into the
 * message). Writer-only parts are skipped by walking the writer schema.
 * The alternative, avro-c's resolved readers over avro_value_t, allocates
 * per message and reports errors without the offset or a class.
 */
#include "avro_resolve.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pop {
    P_SKIP,   /* writer-only: skip w */
    P_NULL,   /* reads nothing, gives AVAL_NULL */
    P_SCALAR, /* primitive of writer type wt read as reader type rt */
    P_ENUM,
    P_FIXED,
    P_RECORD,
    P_ARRAY,
    P_WUNION, /* writer union: a plan per writer branch */
    P_FAIL,   /* a writer union branch the reader cannot take */
};

struct pnode;

struct pfield {
    long rindex; /* reader field, or -1 when skipped */
    struct pnode *plan;
};

struct pdefault {
    size_t rindex;
    struct aval v;
};

struct pnode {
    enum pop op;
    const struct avsc_node *w;
    const struct avsc_node *r;
    enum avsc_type wt, rt;
    long *symmap; /* enum: writer symbol -> reader symbol or -1 */
    struct pfield *fields; /* record: one per writer field, writer order */
    size_t n_fields;
    struct pdefault *defs; /* record: reader fields the writer lacks */
    size_t n_defs;
    struct pnode *items;      /* array */
    struct pnode **branches;  /* writer union */
    size_t n_branches;
    char *why;                /* P_FAIL */
    struct pnode *all_next;
};

struct aplan {
    struct pnode *root;
    struct pnode *all;
    size_t n_nodes;
};

/* A plan has at most one node per (writer node, reader node) visit; this
 * bounds a hostile writer schema's plan (huge unions of records). */
#define APLAN_MAX_NODES 65536

struct rctx {
    struct aplan *plan;
    char why[256];
    bool failed;
};

static void rfail(struct rctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rfail(struct rctx *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
}

/* Prefixes the recorded reason with a field name, innermost last. */
static void rprefix(struct rctx *c, const char *name)
{
    char tmp[sizeof c->why];
    int n = snprintf(tmp, sizeof tmp, "%s.", name);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return;
    size_t keep = strnlen(c->why, sizeof tmp - (size_t)n - 1);
    memcpy(tmp + n, c->why, keep);
    tmp[(size_t)n + keep] = '\0';
    memcpy(c->why, tmp, sizeof tmp);
}

static struct pnode *pnode_new(struct rctx *c, enum pop op, const struct avsc_node *w,
                               const struct avsc_node *r)
{
    if (c->plan->n_nodes >= APLAN_MAX_NODES) {
        rfail(c, "writer schema too large to resolve");
        return NULL;
    }
    struct pnode *p = calloc(1, sizeof *p);
    if (!p) {
        rfail(c, "out of memory");
        return NULL;
    }
    p->op = op;
    p->w = w;
    p->r = r;
    p->all_next = c->plan->all;
    c->plan->all = p;
    c->plan->n_nodes++;
    return p;
}

static bool is_primitive(enum avsc_type t)
{
    return t <= AVSC_STRING;
}

static bool is_named(enum avsc_type t)
{
    return t == AVSC_RECORD || t == AVSC_ENUM || t == AVSC_FIXED;
}

static bool same_short_name(const struct avsc_node *a, const struct avsc_node *b)
{
    return strcmp(avsc_short_name(a->name), avsc_short_name(b->name)) == 0;
}

static bool promotes(enum avsc_type w, enum avsc_type r)
{
    switch (w) {
    case AVSC_INT:
        return r == AVSC_LONG || r == AVSC_FLOAT || r == AVSC_DOUBLE;
    case AVSC_LONG:
        return r == AVSC_FLOAT || r == AVSC_DOUBLE;
    case AVSC_FLOAT:
        return r == AVSC_DOUBLE;
    case AVSC_STRING:
        return r == AVSC_BYTES;
    case AVSC_BYTES:
        return r == AVSC_STRING;
    default:
        return false;
    }
}

static struct pnode *resolve(struct rctx *c, const struct avsc_node *w, const struct avsc_node *r);

/* A reader field's default as a value, for a field the writer lacks. */
static bool default_value(struct rctx *c, const struct avsc_field *f, struct aval *v,
                          bool *empty_array)
{
    const struct avsc_node *r = f->type;
    json_t *def = f->def;
    *empty_array = false;
    if (!def) {
        rfail(c, "%s: the writer lacks it and the reader has no default", f->name);
        return false;
    }
    if (r->type == AVSC_UNION) /* a union's default is for its first branch */
        r = r->n_branches ? r->branches[0] : NULL;
    memset(v, 0, sizeof *v);
    bool ok = false;
    switch (r ? r->type : AVSC_UNION) {
    case AVSC_NULL:
        v->kind = AVAL_NULL;
        ok = json_is_null(def);
        break;
    case AVSC_BOOLEAN:
        v->kind = AVAL_BOOL;
        v->l = json_is_true(def);
        ok = json_is_boolean(def);
        break;
    case AVSC_INT:
    case AVSC_LONG:
        v->kind = AVAL_LONG;
        v->l = (int64_t)json_integer_value(def);
        ok = json_is_integer(def) &&
             (r->type == AVSC_LONG || (v->l >= INT32_MIN && v->l <= INT32_MAX));
        break;
    case AVSC_FLOAT:
    case AVSC_DOUBLE:
        v->kind = AVAL_DOUBLE;
        v->d = json_number_value(def);
        ok = json_is_number(def);
        break;
    case AVSC_STRING:
    case AVSC_BYTES:
    case AVSC_FIXED:
        v->kind = AVAL_STRING;
        v->s = json_string_value(def);
        v->n = json_string_length(def);
        ok = v->s && (r->type != AVSC_FIXED || v->n == r->size);
        break;
    case AVSC_ENUM:
        v->kind = AVAL_ENUM;
        for (size_t i = 0; json_is_string(def) && i < r->n_symbols; i++) {
            if (strcmp(r->symbols[i], json_string_value(def)) == 0) {
                v->l = (int64_t)i;
                ok = true;
            }
        }
        break;
    case AVSC_ARRAY:
        *empty_array = true; /* decoded structs start zeroed: nothing to set */
        ok = json_is_array(def) && json_array_size(def) == 0;
        break;
    default:
        break;
    }
    if (!ok)
        rfail(c, "%s: the reader's default is not supported or does not match its type",
              f->name);
    return ok;
}

static struct pnode *resolve_record(struct rctx *c, const struct avsc_node *w,
                                    const struct avsc_node *r)
{
    struct pnode *p = pnode_new(c, P_RECORD, w, r);
    if (!p)
        return NULL;
    p->fields = calloc(w->n_fields ? w->n_fields : 1, sizeof *p->fields);
    p->defs = calloc(r->n_fields ? r->n_fields : 1, sizeof *p->defs);
    bool *taken = calloc(r->n_fields ? r->n_fields : 1, sizeof *taken);
    if (!p->fields || !p->defs || !taken) {
        rfail(c, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < w->n_fields; i++) {
        const struct avsc_field *wf = &w->fields[i];
        long j = -1;
        for (size_t k = 0; k < r->n_fields; k++)
            if (strcmp(r->fields[k].name, wf->name) == 0)
                j = (long)k;
        struct pfield *pf = &p->fields[p->n_fields++];
        pf->rindex = j;
        if (j < 0) {
            pf->plan = pnode_new(c, P_SKIP, wf->type, NULL);
        } else {
            taken[j] = true;
            pf->plan = resolve(c, wf->type, r->fields[j].type);
            if (!pf->plan)
                rprefix(c, wf->name);
        }
        if (!pf->plan)
            goto err;
    }
    for (size_t k = 0; k < r->n_fields; k++) {
        if (taken[k])
            continue;
        bool empty_array;
        struct aval v;
        if (!default_value(c, &r->fields[k], &v, &empty_array))
            goto err;
        if (!empty_array) {
            p->defs[p->n_defs].rindex = k;
            p->defs[p->n_defs].v = v;
            p->n_defs++;
        }
    }
    free(taken);
    return p;
err:
    free(taken);
    return NULL;
}

static struct pnode *resolve_enum(struct rctx *c, const struct avsc_node *w,
                                  const struct avsc_node *r)
{
    struct pnode *p = pnode_new(c, P_ENUM, w, r);
    if (!p)
        return NULL;
    p->symmap = calloc(w->n_symbols ? w->n_symbols : 1, sizeof *p->symmap);
    if (!p->symmap) {
        rfail(c, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < w->n_symbols; i++) {
        p->symmap[i] = r->enum_default;
        for (size_t k = 0; k < r->n_symbols; k++)
            if (strcmp(w->symbols[i], r->symbols[k]) == 0)
                p->symmap[i] = (long)k;
    }
    return p;
}

/* w is not a union here. */
static bool exact_match(const struct avsc_node *w, const struct avsc_node *r)
{
    if (w->type != r->type)
        return false;
    return !is_named(w->type) || same_short_name(w, r);
}

static struct pnode *resolve_wunion(struct rctx *c, const struct avsc_node *w,
                                    const struct avsc_node *r)
{
    struct pnode *p = pnode_new(c, P_WUNION, w, r);
    if (!p)
        return NULL;
    p->branches = calloc(w->n_branches ? w->n_branches : 1, sizeof *p->branches);
    if (!p->branches) {
        rfail(c, "out of memory");
        return NULL;
    }
    size_t usable = 0;
    char last_why[sizeof c->why] = "empty union";
    for (size_t i = 0; i < w->n_branches; i++) {
        struct pnode *b = resolve(c, w->branches[i], r);
        if (!b) {
            /* Running out of memory or nodes is fatal; a branch the reader
             * cannot take only fails the messages that use it. */
            if (c->plan->n_nodes >= APLAN_MAX_NODES || strcmp(c->why, "out of memory") == 0)
                return NULL;
            memcpy(last_why, c->why, sizeof last_why);
            c->failed = false;
            b = pnode_new(c, P_FAIL, w->branches[i], r);
            if (!b)
                return NULL;
            b->why = strdup(last_why);
            if (!b->why) {
                rfail(c, "out of memory");
                return NULL;
            }
        } else {
            usable++;
        }
        p->branches[p->n_branches++] = b;
    }
    if (usable == 0) {
        rfail(c, "no branch of the writer union can be read: %s", last_why);
        return NULL;
    }
    return p;
}

static struct pnode *resolve(struct rctx *c, const struct avsc_node *w, const struct avsc_node *r)
{
    if (w->type == AVSC_UNION)
        return resolve_wunion(c, w, r);
    if (r->type == AVSC_UNION) {
        for (size_t i = 0; i < r->n_branches; i++)
            if (exact_match(w, r->branches[i]))
                return resolve(c, w, r->branches[i]);
        for (size_t i = 0; i < r->n_branches; i++) {
            struct pnode *p = resolve(c, w, r->branches[i]);
            if (p)
                return p;
            if (strcmp(c->why, "out of memory") == 0)
                return NULL;
            c->failed = false;
        }
        rfail(c, "writer %s matches no branch of the reader union", avsc_type_name(w->type));
        return NULL;
    }
    if (w->type == r->type && is_primitive(w->type)) {
        struct pnode *p = pnode_new(c, w->type == AVSC_NULL ? P_NULL : P_SCALAR, w, r);
        if (p) {
            p->wt = w->type;
            p->rt = r->type;
        }
        return p;
    }
    if (is_primitive(w->type) && promotes(w->type, r->type)) {
        struct pnode *p = pnode_new(c, P_SCALAR, w, r);
        if (p) {
            p->wt = w->type;
            p->rt = r->type;
        }
        return p;
    }
    if (w->type == r->type && is_named(w->type) && !same_short_name(w, r)) {
        rfail(c, "writer %s %s cannot be read as %s", avsc_type_name(w->type), w->name, r->name);
        return NULL;
    }
    if (w->type == r->type) {
        switch (w->type) {
        case AVSC_RECORD:
            return resolve_record(c, w, r);
        case AVSC_ENUM:
            return resolve_enum(c, w, r);
        case AVSC_FIXED:
            if (w->size != r->size) {
                rfail(c, "fixed %s has size %zu, the reader's %zu", w->name, w->size, r->size);
                return NULL;
            }
            return pnode_new(c, P_FIXED, w, r);
        case AVSC_ARRAY: {
            if (r->items->type != AVSC_RECORD) {
                rfail(c, "reader arrays of %s are not supported", avsc_type_name(r->items->type));
                return NULL;
            }
            struct pnode *p = pnode_new(c, P_ARRAY, w, r);
            if (p)
                p->items = resolve(c, w->items, r->items);
            return p && p->items ? p : NULL;
        }
        default:
            break;
        }
    }
    rfail(c, "writer %s cannot be read as %s", avsc_type_name(w->type), avsc_type_name(r->type));
    return NULL;
}

/* The reader shapes the decoder and sinks support (see the header). */
static bool reader_supported(const struct avsc_node *r, bool field_level)
{
    if (r->type == AVSC_RECORD && !field_level) {
        for (size_t i = 0; i < r->n_fields; i++)
            if (!reader_supported(r->fields[i].type, true))
                return false;
        return true;
    }
    if (r->type == AVSC_ARRAY)
        return field_level && r->items->type == AVSC_RECORD && reader_supported(r->items, false);
    if (r->type == AVSC_UNION) {
        for (size_t i = 0; i < r->n_branches; i++) {
            enum avsc_type t = r->branches[i]->type;
            if (!is_primitive(t) && t != AVSC_ENUM && t != AVSC_FIXED)
                return false;
        }
        return field_level;
    }
    return field_level && (is_primitive(r->type) || r->type == AVSC_ENUM || r->type == AVSC_FIXED);
}

struct aplan *aplan_resolve(const struct avsc_schema *writer, const struct avsc_schema *reader,
                            char *errstr, size_t errstr_size)
{
    struct rctx c = {0};
    c.plan = calloc(1, sizeof *c.plan);
    if (!c.plan) {
        snprintf(errstr, errstr_size, "could not resolve schema: out of memory");
        return NULL;
    }
    if (!reader_supported(reader->root, false)) {
        snprintf(errstr, errstr_size, "could not resolve schema: unsupported reader shape");
        goto err;
    }
    c.plan->root = resolve(&c, writer->root, reader->root);
    if (!c.plan->root) {
        snprintf(errstr, errstr_size, "writer schema cannot be resolved to reader %s: %s",
                 reader->root->name, c.why);
        goto err;
    }
    return c.plan;
err:
    aplan_destroy(c.plan);
    return NULL;
}

void aplan_destroy(struct aplan *plan)
{
    if (!plan)
        return;
    struct pnode *p = plan->all;
    while (p) {
        struct pnode *next = p->all_next;
        free(p->symmap);
        free(p->fields);
        free(p->defs);
        free(p->branches);
        free(p->why);
        free(p);
        p = next;
    }
    free(plan);
}

/* ---- decoding --------------------------------------------------------- */

void adec_init(struct adec *d, const void *base, const void *body, const void *end,
               char *errstr, size_t errstr_size)
{
    d->base = base;
    d->p = body;
    d->end = end;
    d->depth = 0;
    /* Items of zero bytes (nulls, empty records) cost no input; the budget
     * keeps a forged count from buying unbounded work. */
    d->items_left = (size_t)(d->end - d->p) + 1024;
    d->errstr = errstr;
    d->errstr_size = errstr_size;
}

enum codec_status adec_fail(struct adec *d, enum codec_status status, const char *fmt, ...)
{
    if (!d->errstr || d->errstr_size == 0)
        return status;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(d->errstr, d->errstr_size, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < d->errstr_size)
        snprintf(d->errstr + n, d->errstr_size - (size_t)n, " (at byte %zu)",
                 (size_t)(d->p - d->base));
    return status;
}

static size_t remaining(const struct adec *d)
{
    return (size_t)(d->end - d->p);
}

/* The readers below leave *out unset on failure. Their callers still
 * initialise what they pass: adec_fail() is out of line, so GCC at -O3
 * cannot see it never returns CODEC_OK and stops a Release build on
 * -Wmaybe-uninitialized. */
static enum codec_status read_long(struct adec *d, int64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
        if (d->p >= d->end)
            return adec_fail(d, CODEC_ETRUNCATED, "message ends inside a number");
        uint8_t b = *d->p;
        if (shift == 63 && b > 1)
            return adec_fail(d, CODEC_ECORRUPT, "number longer than 64 bits");
        d->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
    return CODEC_OK;
}

static enum codec_status read_int(struct adec *d, int64_t *out)
{
    const uint8_t *at = d->p;
    enum codec_status st = read_long(d, out);
    if (st == CODEC_OK && (*out < INT32_MIN || *out > INT32_MAX)) {
        d->p = at;
        return adec_fail(d, CODEC_ECORRUPT, "int %lld out of 32-bit range", (long long)*out);
    }
    return st;
}

/* A string/bytes length: never negative, never beyond the bytes left. */
static enum codec_status read_len(struct adec *d, size_t *out)
{
    int64_t n = 0;
    const uint8_t *at = d->p;
    enum codec_status st = read_long(d, &n);
    if (st != CODEC_OK)
        return st;
    if (n < 0) {
        d->p = at;
        return adec_fail(d, CODEC_ECORRUPT, "negative length %lld", (long long)n);
    }
    if ((uint64_t)n > remaining(d)) {
        /* A length a message could carry means the bytes were cut short;
         * one no message may carry is a corrupt or hostile length. */
        d->p = at;
        if ((uint64_t)n <= CODEC_DEFAULT_MAX_MESSAGE)
            return adec_fail(d, CODEC_ETRUNCATED, "message ends inside a value of %lld bytes "
                             "(%zu bytes left)", (long long)n, remaining(d));
        return adec_fail(d, CODEC_EOVERSIZE, "length %lld is beyond the %zu bytes left",
                         (long long)n, remaining(d));
    }
    *out = (size_t)n;
    return CODEC_OK;
}

static enum codec_status need(struct adec *d, size_t n, const char *what)
{
    if (remaining(d) < n)
        return adec_fail(d, CODEC_ETRUNCATED, "message ends inside a %s", what);
    return CODEC_OK;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static enum codec_status read_double(struct adec *d, double *out)
{
    enum codec_status st = need(d, 8, "double");
    if (st != CODEC_OK)
        return st;
    uint64_t bits = le64(d->p);
    memcpy(out, &bits, sizeof *out);
    d->p += 8;
    return CODEC_OK;
}

static enum codec_status read_float(struct adec *d, double *out)
{
    enum codec_status st = need(d, 4, "float");
    if (st != CODEC_OK)
        return st;
    uint32_t bits = (uint32_t)d->p[0] | (uint32_t)d->p[1] << 8 | (uint32_t)d->p[2] << 16 |
                    (uint32_t)d->p[3] << 24;
    float f;
    memcpy(&f, &bits, sizeof f);
    *out = f;
    d->p += 4;
    return CODEC_OK;
}

/* Reads an array/map block header: the item count (0 ends the array). A
 * negative count is followed by the block's size in bytes (spec). */
static enum codec_status read_block(struct adec *d, int64_t *count)
{
    const uint8_t *at = d->p;
    enum codec_status st = read_long(d, count);
    if (st != CODEC_OK)
        return st;
    if (*count < 0) {
        if (*count == INT64_MIN) {
            d->p = at;
            return adec_fail(d, CODEC_ECORRUPT, "bad block count");
        }
        *count = -*count;
        size_t bytes;
        st = read_len(d, &bytes);
        if (st != CODEC_OK)
            return st;
    }
    if ((uint64_t)*count > d->items_left) {
        d->p = at;
        return adec_fail(d, CODEC_EOVERSIZE, "block of %lld items is beyond this message's limit",
                         (long long)*count);
    }
    d->items_left -= (size_t)*count;
    return CODEC_OK;
}

static enum codec_status read_union_index(struct adec *d, size_t n_branches, size_t *out)
{
    const uint8_t *at = d->p;
    int64_t idx = 0;
    enum codec_status st = read_long(d, &idx);
    if (st != CODEC_OK)
        return st;
    if (idx < 0 || (uint64_t)idx >= n_branches) {
        d->p = at;
        return adec_fail(d, CODEC_ECORRUPT, "union index %lld out of range (%zu branches)",
                         (long long)idx, n_branches);
    }
    *out = (size_t)idx;
    return CODEC_OK;
}

static enum codec_status read_enum_index(struct adec *d, const struct avsc_node *w, size_t *out)
{
    const uint8_t *at = d->p;
    int64_t idx = 0;
    enum codec_status st = read_int(d, &idx);
    if (st != CODEC_OK)
        return st;
    if (idx < 0 || (uint64_t)idx >= w->n_symbols) {
        d->p = at;
        return adec_fail(d, CODEC_ECORRUPT, "enum %s index %lld out of range (%zu symbols)",
                         w->name, (long long)idx, w->n_symbols);
    }
    *out = (size_t)idx;
    return CODEC_OK;
}

static enum codec_status enter(struct adec *d)
{
    if (++d->depth > ADEC_MAX_DEPTH)
        return adec_fail(d, CODEC_EOVERSIZE, "values nested deeper than %d", ADEC_MAX_DEPTH);
    return CODEC_OK;
}

static enum codec_status skip(const struct avsc_node *w, struct adec *d)
{
    enum codec_status st = CODEC_OK;
    int64_t v = 0;
    size_t n = 0;
    switch (w->type) {
    case AVSC_NULL:
        return CODEC_OK;
    case AVSC_BOOLEAN:
        st = need(d, 1, "boolean");
        if (st == CODEC_OK)
            d->p++;
        return st;
    case AVSC_INT:
        return read_int(d, &v);
    case AVSC_LONG:
        return read_long(d, &v);
    case AVSC_FLOAT:
    case AVSC_DOUBLE:
        n = w->type == AVSC_FLOAT ? 4 : 8;
        st = need(d, n, avsc_type_name(w->type));
        if (st == CODEC_OK)
            d->p += n;
        return st;
    case AVSC_BYTES:
    case AVSC_STRING:
        st = read_len(d, &n);
        if (st == CODEC_OK)
            d->p += n;
        return st;
    case AVSC_FIXED:
        st = need(d, w->size, "fixed");
        if (st == CODEC_OK)
            d->p += w->size;
        return st;
    case AVSC_ENUM:
        return read_enum_index(d, w, &n);
    default:
        break;
    }
    /* Containers: a recursive writer schema recurses here per value. */
    st = enter(d);
    if (st != CODEC_OK)
        return st;
    if (w->type == AVSC_RECORD) {
        for (size_t i = 0; i < w->n_fields && st == CODEC_OK; i++)
            st = skip(w->fields[i].type, d);
    } else if (w->type == AVSC_UNION) {
        st = read_union_index(d, w->n_branches, &n);
        if (st == CODEC_OK)
            st = skip(w->branches[n], d);
    } else { /* array or map */
        int64_t count;
        for (;;) {
            st = read_block(d, &count);
            if (st != CODEC_OK || count == 0)
                break;
            for (int64_t i = 0; i < count && st == CODEC_OK; i++) {
                if (w->type == AVSC_MAP) {
                    st = read_len(d, &n);
                    if (st == CODEC_OK)
                        d->p += n;
                }
                if (st == CODEC_OK)
                    st = skip(w->items, d);
            }
            if (st != CODEC_OK)
                break;
        }
    }
    d->depth--;
    return st;
}

static enum codec_status dec_scalar(const struct pnode *p, struct adec *d, struct aval *v)
{
    enum codec_status st = CODEC_OK;
    size_t n;
    memset(v, 0, sizeof *v);
    switch (p->op) {
    case P_NULL:
        v->kind = AVAL_NULL;
        return CODEC_OK;
    case P_ENUM:
        st = read_enum_index(d, p->w, &n);
        if (st != CODEC_OK)
            return st;
        if (p->symmap[n] < 0)
            return adec_fail(d, CODEC_EINVALID, "symbol %s of enum %s is not known to this reader",
                             p->w->symbols[n], p->w->name);
        v->kind = AVAL_ENUM;
        v->l = p->symmap[n];
        return CODEC_OK;
    case P_FIXED:
        st = need(d, p->w->size, "fixed");
        if (st != CODEC_OK)
            return st;
        v->kind = AVAL_STRING;
        v->s = (const char *)d->p;
        v->n = p->w->size;
        d->p += p->w->size;
        return CODEC_OK;
    case P_SCALAR:
        break;
    default:
        return adec_fail(d, CODEC_ECORRUPT, "internal: plan node %d is not a value", (int)p->op);
    }
    double dv = 0;
    int64_t lv = 0;
    switch (p->wt) {
    case AVSC_BOOLEAN:
        st = need(d, 1, "boolean");
        if (st != CODEC_OK)
            return st;
        if (*d->p > 1)
            return adec_fail(d, CODEC_ECORRUPT, "boolean byte 0x%02x", *d->p);
        lv = *d->p++;
        break;
    case AVSC_INT:
        st = read_int(d, &lv);
        dv = (double)lv;
        break;
    case AVSC_LONG:
        st = read_long(d, &lv);
        dv = (double)lv;
        break;
    case AVSC_FLOAT:
        st = read_float(d, &dv);
        break;
    case AVSC_DOUBLE:
        st = read_double(d, &dv);
        break;
    case AVSC_BYTES:
    case AVSC_STRING:
        st = read_len(d, &n);
        if (st == CODEC_OK) {
            v->s = (const char *)d->p;
            v->n = n;
            d->p += n;
        }
        break;
    default:
        return adec_fail(d, CODEC_ECORRUPT, "internal: writer type %s is not scalar",
                         avsc_type_name(p->wt));
    }
    if (st != CODEC_OK)
        return st;
    switch (p->rt) {
    case AVSC_BOOLEAN:
        v->kind = AVAL_BOOL;
        v->l = lv;
        break;
    case AVSC_INT:
    case AVSC_LONG:
        v->kind = AVAL_LONG;
        v->l = lv;
        break;
    case AVSC_FLOAT:
    case AVSC_DOUBLE:
        v->kind = AVAL_DOUBLE;
        v->d = dv;
        break;
    default:
        v->kind = AVAL_STRING;
        break;
    }
    return CODEC_OK;
}

static enum codec_status dec_record(const struct pnode *p, struct adec *d, void *obj,
                                    const struct aplan_sink *sink);

/* Decodes a value whose plan ends in a record (through writer unions). */
static enum codec_status dec_to_record(const struct pnode *p, struct adec *d, void *obj,
                                       const struct aplan_sink *sink)
{
    size_t idx = 0;
    enum codec_status st;
    switch (p->op) {
    case P_RECORD:
        return dec_record(p, d, obj, sink);
    case P_WUNION:
        st = read_union_index(d, p->n_branches, &idx);
        return st != CODEC_OK ? st : dec_to_record(p->branches[idx], d, obj, sink);
    case P_FAIL:
        return adec_fail(d, CODEC_EINVALID, "record: %s", p->why);
    default:
        return adec_fail(d, CODEC_ECORRUPT, "internal: plan node %d is not a record", (int)p->op);
    }
}

static enum codec_status dec_field(const struct pnode *p, struct adec *d, void *obj,
                                   const struct aplan_sink *sink, size_t rindex,
                                   const char *fname)
{
    size_t idx = 0;
    enum codec_status st;
    struct aval v;
    switch (p->op) {
    case P_SKIP:
        return skip(p->w, d);
    case P_WUNION:
        st = read_union_index(d, p->n_branches, &idx);
        return st != CODEC_OK ? st : dec_field(p->branches[idx], d, obj, sink, rindex, fname);
    case P_FAIL:
        return adec_fail(d, CODEC_EINVALID, "%s: %s", fname, p->why);
    case P_ARRAY: {
        st = enter(d);
        size_t index = 0;
        int64_t count = 0;
        while (st == CODEC_OK) {
            st = read_block(d, &count);
            if (st != CODEC_OK || count == 0)
                break;
            for (int64_t i = 0; i < count && st == CODEC_OK; i++) {
                const struct aplan_sink *item_sink = NULL;
                void *item = sink->item(obj, rindex, index++, &item_sink, d);
                st = item ? dec_to_record(p->items, d, item, item_sink) : CODEC_EINVALID;
            }
        }
        d->depth--;
        return st;
    }
    case P_RECORD:
        return adec_fail(d, CODEC_ECORRUPT, "internal: nested record field");
    default:
        st = dec_scalar(p, d, &v);
        return st != CODEC_OK ? st : sink->set(obj, rindex, &v, d);
    }
}

static enum codec_status dec_record(const struct pnode *p, struct adec *d, void *obj,
                                    const struct aplan_sink *sink)
{
    enum codec_status st = enter(d);
    for (size_t i = 0; i < p->n_fields && st == CODEC_OK; i++)
        st = dec_field(p->fields[i].plan, d, obj, sink, (size_t)p->fields[i].rindex,
                       p->w->fields[i].name);
    for (size_t i = 0; i < p->n_defs && st == CODEC_OK; i++)
        st = sink->set(obj, p->defs[i].rindex, &p->defs[i].v, d);
    d->depth--;
    return st;
}

enum codec_status aplan_decode(const struct aplan *plan, struct adec *d, void *obj,
                               const struct aplan_sink *sink)
{
    return dec_to_record(plan->root, d, obj, sink);
}
