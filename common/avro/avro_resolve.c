/*
 * avro_resolve: writer schemas resolved by avro-c, and decoding through
 * avro-c's value API. See avro_resolve.h for what is avro-c's and what is
 * added here.
 *
 * DESIGN: for each writer W and reader R the builder walks both once and
 * makes R', "R as W can supply it": R's records cut to the fields W has,
 * a bytes branch where R wants a string and W may send bytes (and the
 * reverse), everything else R's own. avro-c resolves W against R' (its
 * resolved reader), and the walk leaves an extraction plan beside it: per
 * R' field the reader field it fills, the enum table, the plan of array
 * items; per record the reader fields filled by default. Decoding walks
 * the resolved value with that plan and hands each value to the sink.
 *
 * The alternative, decoding into a generic value of W and resolving it to
 * our structs by a hand-written plan, is what the codec did before avro-c
 * was used; it is exactly the code this module exists to delete.
 */
#include <avro.h>

#include "avro_resolve.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_guard.h"

/* ---- extraction plans ------------------------------------------------ */

struct emap {          /* one writer enum read as one reader enum */
    avro_schema_t wenum; /* for symbol names in errors (a reference) */
    int n;
    int *to_reader;    /* writer index -> reader index, or -1 */
};

struct rrec;

struct rfield {        /* one field of R' */
    size_t rindex;     /* the reader field it fills */
    const char *name;  /* the reader field's name (owned by avro-c's reader schema) */
    struct emap *emap; /* the field holds an enum (maybe in a union) */
    struct rrec *items; /* the field is an array of records */
};

struct rdefault {
    size_t rindex;
    struct aval v;     /* strings point into the reader's JSON */
};

struct rrec {          /* one record of R' */
    struct rfield *fields;
    size_t n_fields;
    struct rdefault *defs;
    size_t n_defs;
};

/* Everything a plan allocates, on one list, freed together. */
struct pnode {
    struct pnode *next;
    void *mem;
};

struct plan {
    avro_schema_t adapted;       /* R' */
    avro_value_iface_t *iface;   /* avro-c's resolved reader, W -> R' */
    struct rrec *root;
    struct pnode *owned;
};

/* ---- readers ------------------------------------------------------------ */

struct avro_resolve_reader {
    avro_schema_t schema;
    json_t *json; /* for defaults: avro-c 1.11 does not keep them */
};

/* Reader shapes the extraction supports (see the header). */
static bool reader_supported(avro_schema_t r, bool field_level)
{
    switch (avro_typeof(r)) {
    case AVRO_RECORD:
        if (field_level)
            return false;
        for (size_t i = 0; i < avro_schema_record_size(r); i++)
            if (!reader_supported(avro_schema_record_field_get_by_index(r, (int)i), true))
                return false;
        return true;
    case AVRO_ARRAY:
        return field_level && is_avro_record(avro_schema_array_items(r)) &&
               reader_supported(avro_schema_array_items(r), false);
    case AVRO_UNION: {
        int enums = 0;
        for (size_t i = 0; i < avro_schema_union_size(r); i++) {
            avro_schema_t b = avro_schema_union_branch(r, (int)i);
            if (!is_avro_primitive(b) && !is_avro_enum(b) && !is_avro_fixed(b))
                return false;
            enums += is_avro_enum(b);
        }
        return field_level && enums <= 1;
    }
    case AVRO_MAP:
    case AVRO_LINK:
        return false;
    default:
        return field_level;
    }
}

struct avro_resolve_reader *avro_resolve_reader_new(const char *json, char *errstr,
                                                    size_t errstr_size)
{
    struct avro_resolve_reader *rd = calloc(1, sizeof *rd);
    if (!rd) {
        snprintf(errstr, errstr_size, "could not parse reader schema: out of memory");
        return NULL;
    }
    if (avro_schema_from_json_length(json, strlen(json), &rd->schema) != 0) {
        snprintf(errstr, errstr_size, "could not parse reader schema: %s", avro_strerror());
        goto err;
    }
    rd->json = json_loads(json, 0, NULL);
    if (!rd->json) {
        snprintf(errstr, errstr_size, "could not parse reader schema: not JSON");
        goto err;
    }
    if (!reader_supported(rd->schema, false)) {
        snprintf(errstr, errstr_size, "reader schema has a shape common/avro does not support");
        goto err;
    }
    return rd;
err:
    avro_resolve_reader_destroy(rd);
    return NULL;
}

void avro_resolve_reader_destroy(struct avro_resolve_reader *rd)
{
    if (!rd)
        return;
    if (rd->schema)
        avro_schema_decref(rd->schema);
    json_decref(rd->json);
    free(rd);
}

avro_schema_t avro_resolve_reader_schema(const struct avro_resolve_reader *rd)
{
    return rd->schema;
}

/* ---- building a plan ------------------------------------------------------ */

struct build {
    struct plan *plan;
    char why[256];
    bool failed;
};

static void bfail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void bfail(struct build *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    b->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->why, sizeof b->why, fmt, ap);
    va_end(ap);
}

static void *balloc(struct build *b, size_t n)
{
    struct pnode *node = calloc(1, sizeof *node);
    void *mem = calloc(1, n ? n : 1);
    if (!node || !mem) {
        free(node);
        free(mem);
        bfail(b, "out of memory");
        return NULL;
    }
    node->mem = mem;
    node->next = b->plan->owned;
    b->plan->owned = node;
    return mem;
}

static avro_schema_t deref(avro_schema_t s)
{
    while (is_avro_link(s))
        s = avro_schema_link_target(s);
    return s;
}

/* The writer schemas that can meet reader type `type` at this place: w
 * itself, or the branches of a writer union, that have that type (and, for
 * named types, the reader's unqualified name, as avro-c matches them).
 * Returns how many; *one is the first. */
static int candidates(avro_schema_t w, avro_type_t type, const char *name, avro_schema_t *one)
{
    w = deref(w);
    size_t n = is_avro_union(w) ? avro_schema_union_size(w) : 1;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        avro_schema_t c = is_avro_union(w) ? deref(avro_schema_union_branch(w, (int)i)) : w;
        if (avro_typeof(c) != type || (name && strcmp(avro_schema_name(c), name) != 0))
            continue;
        if (!found)
            *one = c;
        found++;
    }
    return found;
}

/* A reader field's default, for a field the writer lacks. */
static bool default_value(struct build *b, avro_schema_t r, json_t *def, const char *name,
                          struct aval *v, bool *nothing)
{
    *nothing = false;
    if (!def) {
        bfail(b, "%s: the writer lacks it and the reader has no default", name);
        return false;
    }
    if (is_avro_union(r)) /* a union's default is for its first branch */
        r = avro_schema_union_branch(r, 0);
    memset(v, 0, sizeof *v);
    bool ok = false;
    switch (avro_typeof(r)) {
    case AVRO_NULL:
        v->kind = AVAL_NULL;
        ok = json_is_null(def);
        break;
    case AVRO_BOOLEAN:
        v->kind = AVAL_BOOL;
        v->l = json_is_true(def);
        ok = json_is_boolean(def);
        break;
    case AVRO_INT32:
    case AVRO_INT64:
        v->kind = AVAL_LONG;
        v->l = (int64_t)json_integer_value(def);
        ok = json_is_integer(def) &&
             (is_avro_int64(r) || (v->l >= INT32_MIN && v->l <= INT32_MAX));
        break;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        v->kind = AVAL_DOUBLE;
        v->d = json_number_value(def);
        ok = json_is_number(def);
        break;
    case AVRO_STRING:
    case AVRO_BYTES:
        v->kind = AVAL_STRING;
        v->s = json_string_value(def);
        v->n = json_string_length(def);
        ok = v->s != NULL;
        break;
    case AVRO_ENUM:
        v->kind = AVAL_ENUM;
        v->l = json_is_string(def) ? avro_schema_enum_get_by_name(r, json_string_value(def)) : -1;
        ok = v->l >= 0;
        break;
    case AVRO_ARRAY:
        *nothing = true; /* decoded structs start zeroed: nothing to set */
        ok = json_is_array(def) && json_array_size(def) == 0;
        break;
    default:
        break;
    }
    if (!ok)
        bfail(b, "%s: the reader's default is not supported or does not match its type", name);
    return ok;
}

static struct emap *enum_map(struct build *b, avro_schema_t w, avro_schema_t r, json_t *rjson)
{
    avro_schema_t we = NULL;
    int n = candidates(w, AVRO_ENUM, avro_schema_name(r), &we);
    if (n == 0)
        return NULL; /* avro-c will say why it cannot resolve */
    if (n > 1) {
        bfail(b, "the writer has %d enums named %s where one is read", n, avro_schema_name(r));
        return NULL;
    }
    const char *fallback = json_string_value(json_object_get(rjson, "default"));
    int rdefault = fallback ? avro_schema_enum_get_by_name(r, fallback) : -1;
    struct emap *m = balloc(b, sizeof *m);
    int count = avro_schema_enum_number_of_symbols(we);
    int *to = m ? balloc(b, (size_t)count * sizeof *to) : NULL;
    if (!to)
        return NULL;
    m->wenum = we;
    m->n = count;
    m->to_reader = to;
    for (int i = 0; i < count; i++) {
        int k = avro_schema_enum_get_by_name(r, avro_schema_enum_get(we, i));
        to[i] = k >= 0 ? k : rdefault;
    }
    return m;
}

/* Whether the writer may send bytes (want_bytes) or a string here. */
static bool writer_sends(avro_schema_t w, avro_type_t type)
{
    avro_schema_t one;
    return candidates(w, type, NULL, &one) > 0;
}

static avro_schema_t adapt(struct build *b, avro_schema_t w, avro_schema_t r, json_t *rjson,
                           struct rfield *f);

/* A reader leaf (primitive, enum, fixed) or union of leaves. */
static avro_schema_t adapt_leaf(struct build *b, avro_schema_t w, avro_schema_t r,
                                json_t *rjson, struct rfield *f)
{
    bool runion = is_avro_union(r);
    size_t n = runion ? avro_schema_union_size(r) : 1;
    bool has_string = false, has_bytes = false;
    for (size_t i = 0; i < n; i++) {
        avro_schema_t br = runion ? avro_schema_union_branch(r, (int)i) : r;
        has_string |= is_avro_string(br);
        has_bytes |= is_avro_bytes(br);
        if (is_avro_enum(br)) {
            json_t *bj = runion ? json_array_get(rjson, i) : rjson;
            f->emap = enum_map(b, w, br, json_is_object(bj) ? bj : NULL);
        }
    }
    /* avro-c does not promote string <-> bytes: offer it the other one. */
    bool add_bytes = has_string && !has_bytes && writer_sends(w, AVRO_BYTES);
    bool add_string = has_bytes && !has_string && writer_sends(w, AVRO_STRING);
    if (!add_bytes && !add_string)
        return avro_schema_incref(r);
    if (!runion && !(has_string ? writer_sends(w, AVRO_STRING) : writer_sends(w, AVRO_BYTES)))
        return add_bytes ? avro_schema_bytes() : avro_schema_string();
    avro_schema_t u = avro_schema_union();
    if (!u) {
        bfail(b, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        avro_schema_union_append(u, runion ? avro_schema_union_branch(r, (int)i) : r);
    avro_schema_t extra = add_bytes ? avro_schema_bytes() : avro_schema_string();
    avro_schema_union_append(u, extra);
    avro_schema_decref(extra);
    return u;
}

static struct rrec *adapt_record(struct build *b, avro_schema_t w, avro_schema_t r,
                                 json_t *rjson, avro_schema_t *out)
{
    avro_schema_t wrec = NULL;
    int n = candidates(w, AVRO_RECORD, avro_schema_name(r), &wrec);
    *out = NULL;
    if (n == 0) {
        *out = avro_schema_incref(r); /* avro-c will say why it cannot resolve */
        return NULL;
    }
    if (n > 1) {
        bfail(b, "the writer has %d records named %s where one is read", n, avro_schema_name(r));
        return NULL;
    }
    size_t rn = avro_schema_record_size(r);
    struct rrec *rec = balloc(b, sizeof *rec);
    if (rec) {
        rec->fields = balloc(b, rn * sizeof *rec->fields);
        rec->defs = balloc(b, rn * sizeof *rec->defs);
    }
    avro_schema_t rp = avro_schema_record(avro_schema_name(r), avro_schema_namespace(r));
    if (!rec || !rec->fields || !rec->defs || !rp) {
        bfail(b, "out of memory");
        goto err;
    }
    json_t *jfields = json_object_get(rjson, "fields");
    for (size_t i = 0; i < rn; i++) {
        const char *name = avro_schema_record_field_name(r, (int)i);
        avro_schema_t rt = avro_schema_record_field_get_by_index(r, (int)i);
        json_t *jf = json_array_get(jfields, i); /* avro-c keeps the JSON order */
        int wi = avro_schema_record_field_get_index(wrec, name);
        if (wi < 0) {
            bool nothing;
            struct aval v;
            if (!default_value(b, rt, json_object_get(jf, "default"), name, &v, &nothing))
                goto err;
            if (!nothing)
                rec->defs[rec->n_defs++] = (struct rdefault){.rindex = i, .v = v};
            continue;
        }
        struct rfield *f = &rec->fields[rec->n_fields];
        f->rindex = i;
        f->name = name;
        avro_schema_t wt = avro_schema_record_field_get_by_index(wrec, wi);
        avro_schema_t ft = adapt(b, wt, rt, json_object_get(jf, "type"), f);
        if (!ft)
            goto err;
        /* avro-c 1.11 frees a resolver that several fields share once per
         * field when a record fails to resolve (try_record's error path: a
         * double free). So each field is resolved on its own first, and the
         * record only once all of them resolve. */
        avro_value_iface_t *probe = avro_resolved_reader_new(wt, ft);
        if (!probe) {
            bfail(b, "%s: %s", name, avro_strerror());
            avro_schema_decref(ft);
            goto err;
        }
        avro_value_iface_decref(probe);
        int rc = avro_schema_record_field_append(rp, name, ft);
        avro_schema_decref(ft);
        if (rc != 0) {
            bfail(b, "out of memory");
            goto err;
        }
        rec->n_fields++;
    }
    *out = rp;
    return rec;
err:
    if (rp)
        avro_schema_decref(rp);
    return NULL;
}

static avro_schema_t adapt(struct build *b, avro_schema_t w, avro_schema_t r, json_t *rjson,
                           struct rfield *f)
{
    if (b->failed)
        return NULL;
    if (is_avro_array(r)) {
        /* avro-c 1.11 dereferences a NULL item resolver when an array
         * fails to resolve (try_array's error path): it is only asked once
         * the items are known to resolve. */
        avro_schema_t wa = NULL;
        int n = candidates(w, AVRO_ARRAY, NULL, &wa);
        if (n != 1) {
            bfail(b, "%s: the writer has %d arrays here, not one", f->name, n);
            return NULL;
        }
        avro_schema_t items = NULL;
        f->items = adapt_record(b, avro_schema_array_items(wa), avro_schema_array_items(r),
                                json_object_get(rjson, "items"), &items);
        if (!f->items) {
            bfail(b, "%s: the writer's items are not a record %s", f->name,
                  avro_schema_name(avro_schema_array_items(r)));
            if (items)
                avro_schema_decref(items);
            return NULL;
        }
        avro_schema_t a = avro_schema_array(items);
        avro_schema_decref(items);
        if (!a)
            bfail(b, "out of memory");
        return a;
    }
    return adapt_leaf(b, w, r, rjson, f);
}

static void plan_destroy(struct plan *p)
{
    if (!p)
        return;
    if (p->iface)
        avro_value_iface_decref(p->iface);
    if (p->adapted)
        avro_schema_decref(p->adapted);
    struct pnode *n = p->owned;
    while (n) {
        struct pnode *next = n->next;
        free(n->mem);
        free(n);
        n = next;
    }
    free(p);
}

/* Resolves w against reader rd; NULL with the reason in why. */
static struct plan *plan_new(avro_schema_t w, const struct avro_resolve_reader *rd, char *why,
                             size_t why_size)
{
    struct build b = {0};
    b.plan = calloc(1, sizeof *b.plan);
    if (!b.plan) {
        snprintf(why, why_size, "could not resolve schema: out of memory");
        return NULL;
    }
    const char *rname = avro_schema_name(rd->schema);
    b.plan->root = adapt_record(&b, w, rd->schema, rd->json, &b.plan->adapted);
    if (b.plan->root) {
        b.plan->iface = avro_resolved_reader_new(w, b.plan->adapted);
        if (!b.plan->iface)
            bfail(&b, "%s", avro_strerror());
    } else if (!b.failed) {
        bfail(&b, "the writer has no record %s", rname);
    }
    if (b.failed) {
        snprintf(why, why_size, "writer schema cannot be resolved to reader %s: %s", rname,
                 b.why);
        plan_destroy(b.plan);
        return NULL;
    }
    return b.plan;
}

/* ---- writers ------------------------------------------------------------ */

/* What one thread needs to decode a message of this writer: avro-c's
 * values, reused message after message. */
struct dctx {
    avro_reader_t in;
    avro_value_t wval; /* generic value of the writer schema */
    avro_value_t rval[AVRO_RESOLVE_MAX_READERS]; /* resolved readers over wval */
    struct dctx *next;
};

struct avro_resolve_writer {
    avro_schema_t schema; /* NULL if the text did not parse */
    struct avro_guard_costs *costs; /* NULL if avro-c may not build its values */
    avro_value_iface_t *wiface;
    struct plan *plan[AVRO_RESOLVE_MAX_READERS];
    char why[AVRO_RESOLVE_MAX_READERS][320];
    size_t n_readers;
    pthread_mutex_t lock; /* @locks free */
    struct dctx *free;    /* contexts not in use */
};

struct avro_resolve_writer *avro_resolve_writer_new(const char *json,
                                                    struct avro_resolve_reader *const *readers,
                                                    size_t n)
{
    struct avro_resolve_writer *wr = calloc(1, sizeof *wr);
    if (!wr)
        return NULL;
    pthread_mutex_init(&wr->lock, NULL);
    wr->n_readers = n;
    char err[320] = "";
    /* avro-c's parser recurses per nesting level and has no limits of its
     * own; the canonical form checks them first (the codec takes it
     * before this), so this text is within them. */
    if (avro_schema_from_json_length(json, strlen(json), &wr->schema) != 0) {
        snprintf(err, sizeof err, "could not parse schema: %s", avro_strerror());
        wr->schema = NULL;
    } else {
        /* Before avro-c builds a value of it (see avro_guard.h). */
        wr->costs = avro_guard_costs_new(wr->schema, err, sizeof err);
        if (wr->costs) {
            wr->wiface = avro_generic_class_from_schema(wr->schema);
            if (!wr->wiface)
                snprintf(err, sizeof err, "could not use schema: %s", avro_strerror());
        }
    }
    for (size_t r = 0; r < n; r++) {
        if (wr->wiface)
            wr->plan[r] = plan_new(wr->schema, readers[r], err, sizeof err);
        if (!wr->plan[r])
            snprintf(wr->why[r], sizeof wr->why[r], "%s", err);
    }
    return wr;
}

static void dctx_destroy(struct dctx *x)
{
    for (size_t r = 0; r < AVRO_RESOLVE_MAX_READERS; r++)
        if (x->rval[r].iface)
            avro_value_decref(&x->rval[r]);
    if (x->wval.iface)
        avro_value_decref(&x->wval);
    if (x->in)
        avro_reader_free(x->in);
    free(x);
}

void avro_resolve_writer_destroy(struct avro_resolve_writer *wr)
{
    if (!wr)
        return;
    while (wr->free) {
        struct dctx *next = wr->free->next;
        dctx_destroy(wr->free);
        wr->free = next;
    }
    for (size_t r = 0; r < AVRO_RESOLVE_MAX_READERS; r++)
        plan_destroy(wr->plan[r]);
    if (wr->wiface)
        avro_value_iface_decref(wr->wiface);
    avro_guard_costs_destroy(wr->costs);
    if (wr->schema)
        avro_schema_decref(wr->schema);
    pthread_mutex_destroy(&wr->lock);
    free(wr);
}

bool avro_resolve_writer_can_read(const struct avro_resolve_writer *wr, size_t r)
{
    return r < wr->n_readers && wr->plan[r] != NULL;
}

const char *avro_resolve_writer_why(const struct avro_resolve_writer *wr, size_t r)
{
    return r < wr->n_readers ? wr->why[r] : "no such reader";
}

/* Takes a decode context from the pool, or builds one (the first decode
 * of each thread that decodes at once). NULL if memory ran out. */
static struct dctx *dctx_take(struct avro_resolve_writer *wr)
{
    pthread_mutex_lock(&wr->lock);
    struct dctx *x = wr->free;
    if (x)
        wr->free = x->next;
    pthread_mutex_unlock(&wr->lock);
    if (x)
        return x;
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    static const char empty[1];
    x->in = avro_reader_memory(empty, 0);
    if (!x->in || avro_generic_value_new(wr->wiface, &x->wval) != 0)
        goto err;
    for (size_t r = 0; r < wr->n_readers; r++) {
        if (!wr->plan[r])
            continue;
        if (avro_resolved_reader_new_value(wr->plan[r]->iface, &x->rval[r]) != 0)
            goto err;
        avro_resolved_reader_set_source(&x->rval[r], &x->wval);
    }
    return x;
err:
    dctx_destroy(x);
    return NULL;
}

static void dctx_give(struct avro_resolve_writer *wr, struct dctx *x)
{
    pthread_mutex_lock(&wr->lock);
    x->next = wr->free;
    wr->free = x;
    pthread_mutex_unlock(&wr->lock);
}

/* ---- decoding ------------------------------------------------------------- */

static enum codec_status efail(char *errstr, size_t errstr_size, enum codec_status st,
                               const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum codec_status efail(char *errstr, size_t errstr_size, enum codec_status st,
                               const char *fmt, ...)
{
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* An avro-c getter failed on a value the guard passed: a writer union
 * branch the reader cannot take (EINVAL), or no memory. avro-c's own text
 * is not read here: its error buffer is shared by every thread. */
static enum codec_status value_fail(int rc, const char *field, char *errstr, size_t errstr_size)
{
    if (rc == ENOMEM)
        return efail(errstr, errstr_size, CODEC_ETRANSIENT, "%s: out of memory", field);
    return efail(errstr, errstr_size, CODEC_EINVALID,
                 "%s: the writer's value (its union branch) cannot be read as the reader's type",
                 field);
}

static enum codec_status extract_record(const struct rrec *rec, avro_value_t *v, void *obj,
                                        const struct avro_sink *sink, char *errstr,
                                        size_t errstr_size);

static enum codec_status extract_field(const struct rfield *f, avro_value_t *v, void *obj,
                                       const struct avro_sink *sink, char *errstr,
                                       size_t errstr_size)
{
    avro_value_t branch;
    struct aval a = {0};
    int rc = 0;
    avro_type_t t = avro_value_get_type(v);
    if (t == AVRO_UNION) {
        rc = avro_value_get_current_branch(v, &branch);
        if (rc != 0)
            return value_fail(rc, f->name, errstr, errstr_size);
        v = &branch;
        t = avro_value_get_type(v);
    }
    switch (t) {
    case AVRO_NULL:
        a.kind = AVAL_NULL;
        break;
    case AVRO_BOOLEAN: {
        int bv = 0;
        rc = avro_value_get_boolean(v, &bv);
        a.kind = AVAL_BOOL;
        a.l = bv != 0;
        break;
    }
    case AVRO_INT32: {
        int32_t iv = 0;
        rc = avro_value_get_int(v, &iv);
        a.kind = AVAL_LONG;
        a.l = iv;
        break;
    }
    case AVRO_INT64:
        rc = avro_value_get_long(v, &a.l);
        a.kind = AVAL_LONG;
        break;
    case AVRO_FLOAT: {
        float fv = 0;
        rc = avro_value_get_float(v, &fv);
        a.kind = AVAL_DOUBLE;
        a.d = fv;
        break;
    }
    case AVRO_DOUBLE:
        rc = avro_value_get_double(v, &a.d);
        a.kind = AVAL_DOUBLE;
        break;
    case AVRO_STRING: /* avro-c's size counts the NUL it adds */
        rc = avro_value_get_string(v, &a.s, &a.n);
        a.kind = AVAL_STRING;
        a.n = a.n ? a.n - 1 : 0;
        break;
    case AVRO_BYTES:
    case AVRO_FIXED: {
        const void *p = NULL;
        rc = t == AVRO_BYTES ? avro_value_get_bytes(v, &p, &a.n)
                             : avro_value_get_fixed(v, &p, &a.n);
        a.kind = AVAL_STRING;
        a.s = p;
        break;
    }
    case AVRO_ENUM: {
        int wi = 0;
        rc = avro_value_get_enum(v, &wi); /* the writer's index: see emap */
        if (rc != 0)
            break;
        if (!f->emap || wi < 0 || wi >= f->emap->n)
            return efail(errstr, errstr_size, CODEC_ECORRUPT, "%s: enum index %d out of range",
                         f->name, wi);
        if (f->emap->to_reader[wi] < 0)
            return efail(errstr, errstr_size, CODEC_EINVALID,
                         "%s: symbol %s of enum %s is not known to this reader", f->name,
                         avro_schema_enum_get(f->emap->wenum, wi),
                         avro_schema_name(f->emap->wenum));
        a.kind = AVAL_ENUM;
        a.l = f->emap->to_reader[wi];
        break;
    }
    case AVRO_ARRAY: {
        size_t n = 0;
        rc = avro_value_get_size(v, &n);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            avro_value_t item;
            rc = avro_value_get_by_index(v, i, &item, NULL);
            if (rc != 0)
                break;
            const struct avro_sink *isink = NULL;
            void *iobj = sink->item(obj, f->rindex, i, &isink, errstr, errstr_size);
            if (!iobj)
                return CODEC_EINVALID;
            enum codec_status st = extract_record(f->items, &item, iobj, isink, errstr,
                                                  errstr_size);
            if (st != CODEC_OK)
                return st;
        }
        if (rc != 0)
            return value_fail(rc, f->name, errstr, errstr_size);
        return CODEC_OK;
    }
    default:
        return efail(errstr, errstr_size, CODEC_EINVALID, "%s: a value of avro-c type %d",
                     f->name, (int)t);
    }
    if (rc != 0)
        return value_fail(rc, f->name, errstr, errstr_size);
    return sink->set(obj, f->rindex, &a, errstr, errstr_size);
}

static enum codec_status extract_record(const struct rrec *rec, avro_value_t *v, void *obj,
                                        const struct avro_sink *sink, char *errstr,
                                        size_t errstr_size)
{
    for (size_t i = 0; i < rec->n_fields; i++) {
        avro_value_t child;
        int rc = avro_value_get_by_index(v, i, &child, NULL);
        if (rc != 0)
            return value_fail(rc, rec->fields[i].name, errstr, errstr_size);
        enum codec_status st = extract_field(&rec->fields[i], &child, obj, sink, errstr,
                                             errstr_size);
        if (st != CODEC_OK)
            return st;
    }
    for (size_t i = 0; i < rec->n_defs; i++) {
        enum codec_status st = sink->set(obj, rec->defs[i].rindex, &rec->defs[i].v, errstr,
                                         errstr_size);
        if (st != CODEC_OK)
            return st;
    }
    return CODEC_OK;
}

/* avro_value_read() failed on bytes the guard passed (so this should not
 * happen): its return codes, as avro-c 1.11 uses them, to our classes. */
static enum codec_status read_class(int rc)
{
    switch (rc) {
    case ENOSPC: /* the memory reader ran out of bytes */
        return CODEC_ETRUNCATED;
    case ENOMEM:
        return CODEC_ETRANSIENT;
    default: /* EILSEQ varint too long, ERANGE int out of range, EINVAL, 1: bad union index */
        return CODEC_ECORRUPT;
    }
}

enum codec_status avro_resolve_decode(struct avro_resolve_writer *wr, size_t r, const void *base,
                                      const void *body, const void *end, void *obj,
                                      const struct avro_sink *sink, char *errstr,
                                      size_t errstr_size)
{
    if (!avro_resolve_writer_can_read(wr, r))
        return efail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s",
                     avro_resolve_writer_why(wr, r));

    /* 1. the guard: nothing reaches avro-c that could make it allocate by
     *    a hostile length, loop on a forged count or recurse too deep. */
    struct avro_guard g;
    avro_guard_init(&g, wr->costs, base, body, end, errstr, errstr_size);
    enum codec_status st = avro_guard_value(&g, wr->schema);
    if (st != CODEC_OK)
        return st;
    if (g.p != g.end)
        return avro_guard_fail(&g, CODEC_ECORRUPT, "%zu bytes left after the record",
                               (size_t)(g.end - g.p));

    /* 2. avro-c reads the body into the writer's generic value. */
    struct dctx *x = dctx_take(wr);
    if (!x)
        return efail(errstr, errstr_size, CODEC_ETRANSIENT,
                     "could not decode: out of memory for a decode context");
    size_t len = (size_t)((const uint8_t *)end - (const uint8_t *)body);
    avro_reader_memory_set_source(x->in, body, (int64_t)len);
    int rc = avro_value_read(x->in, &x->wval);
    if (rc != 0) {
        st = efail(errstr, errstr_size, read_class(rc),
                   "avro-c could not read a body the guard passed (error %d)", rc);
    } else {
        /* 3. the resolved reader presents it as the reader schema. */
        st = extract_record(wr->plan[r]->root, &x->rval[r], obj, sink, errstr, errstr_size);
    }
    dctx_give(wr, x);
    return st;
}
