/*
 * avro_schema: parse an Avro schema into struct avsc_node, write its
 * Parsing Canonical Form, fingerprint it. See avro_schema.h.
 *
 * Canonical form follows the Avro 1.11 specification, "Parsing Canonical
 * Form for Schemas": primitives in simple form, full names, only the
 * attributes that matter for parsing (name, type, fields, symbols, items,
 * values, size) in that order, no whitespace, a named type written in full
 * at its first occurrence and by name after.
 */
#include "avro_schema.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = {"null",   "boolean", "int",   "long",  "float",
                                         "double", "bytes",   "string", "record", "enum",
                                         "array",  "map",     "union", "fixed"};

const char *avsc_type_name(enum avsc_type type)
{
    return type_names[type];
}

const char *avsc_short_name(const char *fullname)
{
    const char *dot = strrchr(fullname, '.');
    return dot ? dot + 1 : fullname;
}

/* ---- parsing ---------------------------------------------------------- */

struct pctx {
    struct avsc_schema *s;
    struct avsc_node **named; /* named types defined so far */
    size_t n_named;
    size_t cap_named;
    char *errstr;
    size_t errstr_size;
    bool failed;
};

static void fail(struct pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct pctx *c, const char *fmt, ...)
{
    if (c->failed)
        return; /* keep the first, innermost reason */
    c->failed = true;
    int n = snprintf(c->errstr, c->errstr_size, "could not parse schema: ");
    if (n < 0 || (size_t)n >= c->errstr_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr + n, c->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
}

static struct avsc_node *node_new(struct pctx *c, enum avsc_type type)
{
    if (c->s->n_nodes >= AVSC_MAX_NODES) {
        fail(c, "more than %d types", AVSC_MAX_NODES);
        return NULL;
    }
    struct avsc_node *n = calloc(1, sizeof *n);
    if (!n) {
        fail(c, "out of memory");
        return NULL;
    }
    n->type = type;
    n->enum_default = -1;
    n->all_next = c->s->all;
    c->s->all = n;
    c->s->n_nodes++;
    return n;
}

static int primitive_type(const char *name)
{
    for (int t = AVSC_NULL; t <= AVSC_STRING; t++)
        if (strcmp(name, type_names[t]) == 0)
            return t;
    return -1;
}

static struct avsc_node *find_named(struct pctx *c, const char *fullname)
{
    for (size_t i = 0; i < c->n_named; i++)
        if (strcmp(c->named[i]->name, fullname) == 0)
            return c->named[i];
    return NULL;
}

static char *join_name(const char *ns, const char *name)
{
    size_t a = strlen(ns), b = strlen(name);
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    memcpy(out, ns, a);
    out[a] = '.';
    memcpy(out + a + 1, name, b + 1);
    return out;
}

/* A name or namespace component as the spec allows: [A-Za-z_][A-Za-z0-9_]*,
 * dots between components when dots is true. */
static bool valid_name(const char *s, bool dots)
{
    bool start = true;
    for (; *s; s++) {
        char ch = *s;
        bool alpha = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
        bool digit = ch >= '0' && ch <= '9';
        if (ch == '.' && dots && !start) {
            start = true;
            continue;
        }
        if (!(alpha || (digit && !start)))
            return false;
        start = false;
    }
    return !start;
}

/* Registers a named type; its full name from "name", "namespace" and the
 * enclosing namespace ns. */
static bool define_named(struct pctx *c, struct avsc_node *n, json_t *j, const char *ns)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !valid_name(name, true)) {
        fail(c, "a %s needs a valid \"name\"", type_names[n->type]);
        return false;
    }
    const char *nsattr = json_string_value(json_object_get(j, "namespace"));
    if (strchr(name, '.') || (nsattr && nsattr[0] == '\0') || (!nsattr && ns[0] == '\0')) {
        n->name = strdup(name);
    } else {
        const char *space = nsattr ? nsattr : ns;
        if (!valid_name(space, true)) {
            fail(c, "invalid namespace \"%s\"", space);
            return false;
        }
        n->name = join_name(space, name);
    }
    if (!n->name) {
        fail(c, "out of memory");
        return false;
    }
    if (primitive_type(n->name) >= 0 || find_named(c, n->name)) {
        fail(c, "type \"%s\" defined twice", n->name);
        return false;
    }
    if (c->n_named == c->cap_named) {
        size_t cap = c->cap_named ? c->cap_named * 2 : 16;
        struct avsc_node **grown = realloc(c->named, cap * sizeof *grown);
        if (!grown) {
            fail(c, "out of memory");
            return false;
        }
        c->named = grown;
        c->cap_named = cap;
    }
    c->named[c->n_named++] = n;
    return true;
}

/* The namespace a named node gives to the names inside it: a malloc'd
 * copy of its full name up to the last dot ("" if none). */
static char *namespace_of(const char *fullname)
{
    const char *dot = strrchr(fullname, '.');
    size_t n = dot ? (size_t)(dot - fullname) : 0;
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, fullname, n);
        out[n] = '\0';
    }
    return out;
}

static struct avsc_node *parse_node(struct pctx *c, json_t *j, const char *ns, int depth);

static struct avsc_node *parse_reference(struct pctx *c, const char *name, const char *ns)
{
    int prim = primitive_type(name);
    if (prim >= 0)
        return node_new(c, (enum avsc_type)prim);
    struct avsc_node *n = NULL;
    if (!strchr(name, '.') && ns[0] != '\0') {
        char *full = join_name(ns, name);
        if (!full) {
            fail(c, "out of memory");
            return NULL;
        }
        n = find_named(c, full);
        free(full);
    }
    if (!n)
        n = find_named(c, name);
    if (!n)
        fail(c, "unknown type \"%s\"", name);
    return n;
}

static bool parse_record(struct pctx *c, struct avsc_node *n, json_t *j, int depth)
{
    json_t *fields = json_object_get(j, "fields");
    if (!json_is_array(fields)) {
        fail(c, "record %s needs a \"fields\" array", n->name);
        return false;
    }
    char *inner_ns = namespace_of(n->name);
    if (!inner_ns) {
        fail(c, "out of memory");
        return false;
    }
    bool ok = false;
    size_t count = json_array_size(fields);
    n->fields = calloc(count ? count : 1, sizeof *n->fields);
    if (!n->fields) {
        fail(c, "out of memory");
        goto err;
    }
    for (size_t i = 0; i < count; i++) {
        json_t *f = json_array_get(fields, i);
        const char *fname = json_string_value(json_object_get(f, "name"));
        if (!fname || !valid_name(fname, false)) {
            fail(c, "field %zu of record %s needs a valid \"name\"", i, n->name);
            goto err;
        }
        for (size_t k = 0; k < n->n_fields; k++) {
            if (strcmp(n->fields[k].name, fname) == 0) {
                fail(c, "record %s has two fields named %s", n->name, fname);
                goto err;
            }
        }
        struct avsc_field *dst = &n->fields[n->n_fields];
        dst->name = strdup(fname);
        if (!dst->name) {
            fail(c, "out of memory");
            goto err;
        }
        n->n_fields++; /* counted now so destroy frees the name */
        json_t *ftype = json_object_get(f, "type");
        if (!ftype) {
            fail(c, "field %s.%s has no \"type\"", n->name, fname);
            goto err;
        }
        dst->type = parse_node(c, ftype, inner_ns, depth + 1);
        if (!dst->type)
            goto err;
        json_t *def = json_object_get(f, "default");
        if (def)
            dst->def = json_incref(def);
    }
    ok = true;
err:
    free(inner_ns);
    return ok;
}

static bool parse_enum(struct pctx *c, struct avsc_node *n, json_t *j)
{
    json_t *symbols = json_object_get(j, "symbols");
    if (!json_is_array(symbols)) {
        fail(c, "enum %s needs a \"symbols\" array", n->name);
        return false;
    }
    size_t count = json_array_size(symbols);
    n->symbols = calloc(count ? count : 1, sizeof *n->symbols);
    if (!n->symbols) {
        fail(c, "out of memory");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        const char *sym = json_string_value(json_array_get(symbols, i));
        if (!sym || !valid_name(sym, false)) {
            fail(c, "enum %s has an invalid symbol at %zu", n->name, i);
            return false;
        }
        for (size_t k = 0; k < n->n_symbols; k++) {
            if (strcmp(n->symbols[k], sym) == 0) {
                fail(c, "enum %s has symbol %s twice", n->name, sym);
                return false;
            }
        }
        n->symbols[n->n_symbols] = strdup(sym);
        if (!n->symbols[n->n_symbols]) {
            fail(c, "out of memory");
            return false;
        }
        n->n_symbols++;
    }
    json_t *def = json_object_get(j, "default");
    if (def) {
        const char *d = json_string_value(def);
        for (size_t k = 0; d && k < n->n_symbols; k++)
            if (strcmp(n->symbols[k], d) == 0)
                n->enum_default = (long)k;
        if (n->enum_default < 0) {
            fail(c, "enum %s has a default that is not one of its symbols", n->name);
            return false;
        }
    }
    return true;
}

static struct avsc_node *parse_union(struct pctx *c, json_t *j, const char *ns, int depth)
{
    struct avsc_node *n = node_new(c, AVSC_UNION);
    if (!n)
        return NULL;
    size_t count = json_array_size(j);
    n->branches = calloc(count ? count : 1, sizeof *n->branches);
    if (!n->branches) {
        fail(c, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        struct avsc_node *b = parse_node(c, json_array_get(j, i), ns, depth + 1);
        if (!b)
            return NULL;
        if (b->type == AVSC_UNION) {
            fail(c, "a union may not hold a union directly");
            return NULL;
        }
        n->branches[n->n_branches++] = b;
    }
    return n;
}

static struct avsc_node *parse_object(struct pctx *c, json_t *j, const char *ns, int depth)
{
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) {
        fail(c, "a schema object needs a string \"type\"");
        return NULL;
    }
    int prim = primitive_type(type);
    if (prim >= 0) {
        struct avsc_node *n = node_new(c, (enum avsc_type)prim);
        if (n)
            n->object_form = json_object_size(j) > 1;
        return n;
    }
    struct avsc_node *n = NULL;
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        n = node_new(c, AVSC_RECORD);
        /* Defined before its fields so a field may refer to it. */
        if (!n || !define_named(c, n, j, ns) || !parse_record(c, n, j, depth))
            return NULL;
    } else if (strcmp(type, "enum") == 0) {
        n = node_new(c, AVSC_ENUM);
        if (!n || !define_named(c, n, j, ns) || !parse_enum(c, n, j))
            return NULL;
    } else if (strcmp(type, "fixed") == 0) {
        n = node_new(c, AVSC_FIXED);
        if (!n || !define_named(c, n, j, ns))
            return NULL;
        json_t *size = json_object_get(j, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0 ||
            json_integer_value(size) > AVSC_MAX_TEXT) {
            fail(c, "fixed %s needs a \"size\" from 0 to %d", n->name, AVSC_MAX_TEXT);
            return NULL;
        }
        n->size = (size_t)json_integer_value(size);
    } else if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        bool array = type[0] == 'a';
        n = node_new(c, array ? AVSC_ARRAY : AVSC_MAP);
        json_t *inner = json_object_get(j, array ? "items" : "values");
        if (!n)
            return NULL;
        if (!inner) {
            fail(c, "%s needs \"%s\"", type, array ? "items" : "values");
            return NULL;
        }
        n->items = parse_node(c, inner, ns, depth + 1);
        if (!n->items)
            return NULL;
    } else {
        /* {"type": "SomeNamedType"} refers to a defined type. */
        return parse_reference(c, type, ns);
    }
    return n;
}

static struct avsc_node *parse_node(struct pctx *c, json_t *j, const char *ns, int depth)
{
    if (depth > AVSC_MAX_DEPTH) {
        fail(c, "nested deeper than %d", AVSC_MAX_DEPTH);
        return NULL;
    }
    if (json_is_string(j))
        return parse_reference(c, json_string_value(j), ns);
    if (json_is_array(j))
        return parse_union(c, j, ns, depth);
    if (json_is_object(j))
        return parse_object(c, j, ns, depth);
    fail(c, "a schema must be a string, an object or an array");
    return NULL;
}

struct avsc_schema *avsc_parse(const char *json, size_t len, char *errstr, size_t errstr_size)
{
    struct pctx c = {.errstr = errstr, .errstr_size = errstr_size};
    json_t *root = NULL;
    c.s = calloc(1, sizeof *c.s);
    if (!c.s) {
        fail(&c, "out of memory");
        goto err;
    }
    if (len > AVSC_MAX_TEXT) {
        fail(&c, "schema text of %zu bytes is larger than %d", len, AVSC_MAX_TEXT);
        goto err;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        fail(&c, "line %d: %s", jerr.line, jerr.text);
        goto err;
    }
    c.s->root = parse_node(&c, root, "", 0);
    if (!c.s->root)
        goto err;
    json_decref(root);
    free(c.named);
    return c.s;
err:
    json_decref(root);
    free(c.named);
    avsc_destroy(c.s);
    return NULL;
}

void avsc_destroy(struct avsc_schema *schema)
{
    if (!schema)
        return;
    struct avsc_node *n = schema->all;
    while (n) {
        struct avsc_node *next = n->all_next;
        for (size_t i = 0; i < n->n_fields; i++) {
            free(n->fields[i].name);
            json_decref(n->fields[i].def);
        }
        free(n->fields);
        for (size_t i = 0; i < n->n_symbols; i++)
            free(n->symbols[i]);
        free(n->symbols);
        free(n->branches);
        free(n->name);
        free(n);
        n = next;
    }
    free(schema);
}

/* ---- canonical form --------------------------------------------------- */

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    bool failed;
    const struct avsc_node **seen; /* named types already written */
    size_t n_seen;
    int flags;
};

/* Canonical text can be at most a small multiple of the schema text,
 * which is itself bounded by AVSC_MAX_TEXT. */
#define CANON_MAX (4 * AVSC_MAX_TEXT)

static void put(struct sbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = cap <= CANON_MAX ? realloc(b->p, cap) : NULL;
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_raw(struct sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A JSON string literal; [STRINGS]: only what JSON requires is escaped,
 * everything else (UTF-8 included) is written as itself. */
static void put_string(struct sbuf *b, const char *s)
{
    put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            put(b, esc, 2);
        } else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put(b, esc, 6);
        } else {
            put(b, s, 1);
        }
    }
    put(b, "\"", 1);
}

static bool mark_seen(struct sbuf *b, const struct avsc_node *n)
{
    for (size_t i = 0; i < b->n_seen; i++)
        if (b->seen[i] == n)
            return true;
    const struct avsc_node **grown = realloc(b->seen, (b->n_seen + 1) * sizeof *grown);
    if (!grown) {
        b->failed = true;
        return true;
    }
    b->seen = grown;
    b->seen[b->n_seen++] = n;
    return false;
}

static void put_node(struct sbuf *b, const struct avsc_node *n)
{
    switch (n->type) {
    case AVSC_NULL:
    case AVSC_BOOLEAN:
    case AVSC_INT:
    case AVSC_LONG:
    case AVSC_FLOAT:
    case AVSC_DOUBLE:
    case AVSC_BYTES:
    case AVSC_STRING:
        if (n->object_form && (b->flags & AVSC_CANON_PY111)) {
            puts_raw(b, "{\"type\":");
            put_string(b, type_names[n->type]);
            puts_raw(b, "}");
        } else {
            put_string(b, type_names[n->type]);
        }
        return;
    case AVSC_RECORD:
    case AVSC_ENUM:
    case AVSC_FIXED:
        if (mark_seen(b, n)) {
            put_string(b, n->name);
            return;
        }
        puts_raw(b, "{\"name\":");
        put_string(b, n->name);
        puts_raw(b, ",\"type\":");
        put_string(b, type_names[n->type]);
        if (n->type == AVSC_RECORD) {
            puts_raw(b, ",\"fields\":[");
            for (size_t i = 0; i < n->n_fields; i++) {
                puts_raw(b, i ? ",{\"name\":" : "{\"name\":");
                put_string(b, n->fields[i].name);
                puts_raw(b, ",\"type\":");
                put_node(b, n->fields[i].type);
                puts_raw(b, "}");
            }
            puts_raw(b, "]}");
        } else if (n->type == AVSC_ENUM) {
            puts_raw(b, ",\"symbols\":[");
            for (size_t i = 0; i < n->n_symbols; i++) {
                if (i)
                    puts_raw(b, ",");
                put_string(b, n->symbols[i]);
            }
            puts_raw(b, "]}");
        } else {
            char size[32];
            snprintf(size, sizeof size, ",\"size\":%zu}", n->size);
            puts_raw(b, size);
        }
        return;
    case AVSC_ARRAY:
    case AVSC_MAP:
        puts_raw(b, n->type == AVSC_ARRAY ? "{\"type\":\"array\",\"items\":"
                                          : "{\"type\":\"map\",\"values\":");
        put_node(b, n->items);
        puts_raw(b, "}");
        return;
    case AVSC_UNION:
        puts_raw(b, "[");
        for (size_t i = 0; i < n->n_branches; i++) {
            if (i)
                puts_raw(b, ",");
            put_node(b, n->branches[i]);
        }
        puts_raw(b, "]");
        return;
    }
}

char *avsc_canonical_form(const struct avsc_schema *schema, int flags, size_t *len)
{
    struct sbuf b = {.flags = flags};
    put_node(&b, schema->root);
    free(b.seen);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

/* ---- fingerprint ------------------------------------------------------ */

uint64_t avsc_fingerprint64(const void *data, size_t len)
{
    /* Bit at a time rather than the spec's 256-entry table: fingerprints
     * are taken once per schema, never per message, and this needs no
     * table to initialise. Same polynomial, same result. */
    const unsigned char *p = data;
    uint64_t fp = AVSC_FP_EMPTY;
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int k = 0; k < 8; k++)
            fp = (fp >> 1) ^ (AVSC_FP_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}
