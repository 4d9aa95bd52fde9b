/*
 * avro_canon: Parsing Canonical Form and CRC-64-AVRO. See avro_canon.h.
 *
 * The form follows the Avro 1.11 specification, "Parsing Canonical Form
 * for Schemas": primitives in simple form, full names, only the attributes
 * that matter for parsing (name, type, fields, symbols, items, values,
 * size) in that order, no whitespace, a named type written in full at its
 * first occurrence and by name after. It also refuses what the spec
 * forbids and avro-c 1.11's parser lets through (a union directly inside a
 * union, an enum symbol or a record field name twice). Why ours: avro-c 1.11 has neither
 * the form nor the fingerprint (avro_schema_to_json keeps namespaces,
 * docs and whitespace), and single-object encoding needs both.
 */
#include "avro_canon.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const primitives[] = {"null",   "boolean", "int",   "long",
                                         "float",  "double",  "bytes", "string"};

static bool is_primitive(const char *name)
{
    for (size_t i = 0; i < sizeof primitives / sizeof primitives[0]; i++)
        if (strcmp(name, primitives[i]) == 0)
            return true;
    return false;
}

/* Canonical text is at most a small multiple of the schema text. */
#define CANON_MAX (4 * AVRO_CANON_MAX_TEXT)

struct cctx {
    char *p; /* the form being written */
    size_t len;
    size_t cap;
    char **names; /* full names defined so far: written by name after */
    size_t n_names;
    size_t cap_names;
    size_t nodes;
    int flags;
    bool failed;
    char *errstr;
    size_t errstr_size;
};

static void fail(struct cctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct cctx *c, const char *fmt, ...)
{
    if (c->failed)
        return; /* keep the first, innermost reason */
    c->failed = true;
    if (!c->errstr || !c->errstr_size)
        return;
    int n = snprintf(c->errstr, c->errstr_size, "could not parse schema: ");
    if (n < 0 || (size_t)n >= c->errstr_size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errstr + n, c->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
}

static void put(struct cctx *c, const char *s, size_t n)
{
    if (c->failed)
        return;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 256;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *grown = cap <= CANON_MAX ? realloc(c->p, cap) : NULL;
        if (!grown) {
            fail(c, "canonical form larger than %d bytes or out of memory", CANON_MAX);
            return;
        }
        c->p = grown;
        c->cap = cap;
    }
    memcpy(c->p + c->len, s, n);
    c->len += n;
    c->p[c->len] = '\0';
}

static void puts_raw(struct cctx *c, const char *s)
{
    put(c, s, strlen(s));
}

/* A JSON string literal; [STRINGS]: only what JSON requires is escaped,
 * everything else (UTF-8 included) is written as itself. */
static void put_string(struct cctx *c, const char *s)
{
    put(c, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            put(c, esc, 2);
        } else if (ch < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            put(c, esc, 6);
        } else {
            put(c, s, 1);
        }
    }
    put(c, "\"", 1);
}

static bool defined(const struct cctx *c, const char *full)
{
    for (size_t i = 0; i < c->n_names; i++)
        if (strcmp(c->names[i], full) == 0)
            return true;
    return false;
}

/* "ns.name", or name alone when ns is empty; malloc'd. */
static char *join(const char *ns, const char *name)
{
    size_t a = strlen(ns), b = strlen(name);
    char *out = malloc(a + b + 2);
    if (!out)
        return NULL;
    if (a) {
        memcpy(out, ns, a);
        out[a++] = '.';
    }
    memcpy(out + a, name, b + 1);
    return out;
}

/* Writes a reference to a named type by its full name: a dotted name is
 * full already; a plain one is looked up in the enclosing namespace, then
 * in the null namespace (as avro-c and python-avro do). */
static void put_reference(struct cctx *c, const char *name, const char *ns)
{
    if (is_primitive(name)) {
        put_string(c, name);
        return;
    }
    char *full = join(strchr(name, '.') ? "" : ns, name);
    if (!full) {
        fail(c, "out of memory");
        return;
    }
    if (!defined(c, full) && defined(c, name))
        memcpy(full, name, strlen(name) + 1);
    if (!defined(c, full))
        fail(c, "unknown type \"%s\"", name);
    put_string(c, full);
    free(full);
}

/* Records a named type's definition; returns its malloc'd full name (owned
 * by c->names), or NULL after fail(). */
static const char *define(struct cctx *c, json_t *j, const char *ns)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    if (!name || !name[0]) {
        fail(c, "a named type needs a \"name\"");
        return NULL;
    }
    json_t *space = json_object_get(j, "namespace");
    const char *in = ns;
    if (strchr(name, '.'))
        in = "";
    else if (json_is_string(space))
        in = json_string_value(space);
    char *full = join(in, name);
    if (!full) {
        fail(c, "out of memory");
        return NULL;
    }
    if (defined(c, full) || is_primitive(full)) {
        fail(c, "type \"%s\" defined twice", full);
        free(full);
        return NULL;
    }
    if (c->n_names == c->cap_names) {
        size_t cap = c->cap_names ? 2 * c->cap_names : 16;
        char **grown = realloc(c->names, cap * sizeof *grown);
        if (!grown) {
            fail(c, "out of memory");
            free(full);
            return NULL;
        }
        c->names = grown;
        c->cap_names = cap;
    }
    c->names[c->n_names++] = full;
    return full;
}

static void put_node(struct cctx *c, json_t *j, const char *ns, int depth);

static void put_named(struct cctx *c, json_t *j, const char *type, const char *ns, int depth)
{
    const char *full = define(c, j, ns);
    if (!full)
        return;
    bool record = strcmp(type, "record") == 0 || strcmp(type, "error") == 0;
    puts_raw(c, "{\"name\":");
    put_string(c, full);
    puts_raw(c, ",\"type\":");
    put_string(c, record ? "record" : type);
    if (record) {
        json_t *fields = json_object_get(j, "fields");
        if (!json_is_array(fields)) {
            fail(c, "record %s needs a \"fields\" array", full);
            return;
        }
        /* Names inside a record live in the namespace of its full name. */
        const char *dot = strrchr(full, '.');
        size_t n = dot ? (size_t)(dot - full) : 0;
        char *inner = malloc(n + 1);
        if (!inner) {
            fail(c, "out of memory");
            return;
        }
        memcpy(inner, full, n);
        inner[n] = '\0';
        puts_raw(c, ",\"fields\":[");
        for (size_t i = 0; i < json_array_size(fields) && !c->failed; i++) {
            json_t *f = json_array_get(fields, i);
            const char *fname = json_string_value(json_object_get(f, "name"));
            json_t *ftype = json_object_get(f, "type");
            if (!fname || !ftype) {
                fail(c, "field %zu of record %s needs a \"name\" and a \"type\"", i, full);
                break;
            }
            for (size_t k = 0; k < i; k++) {
                const char *other = json_string_value(
                    json_object_get(json_array_get(fields, k), "name"));
                if (other && strcmp(other, fname) == 0) {
                    fail(c, "record %s has two fields named %s", full, fname);
                    break;
                }
            }
            puts_raw(c, i ? ",{\"name\":" : "{\"name\":");
            put_string(c, fname);
            puts_raw(c, ",\"type\":");
            put_node(c, ftype, inner, depth + 1);
            puts_raw(c, "}");
        }
        puts_raw(c, "]}");
        free(inner);
    } else if (strcmp(type, "enum") == 0) {
        json_t *symbols = json_object_get(j, "symbols");
        if (!json_is_array(symbols)) {
            fail(c, "enum %s needs a \"symbols\" array", full);
            return;
        }
        puts_raw(c, ",\"symbols\":[");
        for (size_t i = 0; i < json_array_size(symbols); i++) {
            const char *sym = json_string_value(json_array_get(symbols, i));
            if (!sym) {
                fail(c, "enum %s has a symbol that is not a string", full);
                return;
            }
            for (size_t k = 0; k < i; k++) {
                if (strcmp(sym, json_string_value(json_array_get(symbols, k))) == 0) {
                    fail(c, "enum %s has symbol %s twice", full, sym);
                    return;
                }
            }
            if (i)
                puts_raw(c, ",");
            put_string(c, sym);
        }
        puts_raw(c, "]}");
    } else {
        json_t *size = json_object_get(j, "size");
        if (!json_is_integer(size) || json_integer_value(size) < 0) {
            fail(c, "fixed %s needs a \"size\"", full);
            return;
        }
        char text[48];
        snprintf(text, sizeof text, ",\"size\":%lld}", (long long)json_integer_value(size));
        puts_raw(c, text);
    }
}

static void put_node(struct cctx *c, json_t *j, const char *ns, int depth)
{
    if (c->failed)
        return;
    if (depth > AVRO_CANON_MAX_DEPTH) {
        fail(c, "nested deeper than %d", AVRO_CANON_MAX_DEPTH);
        return;
    }
    if (++c->nodes > AVRO_CANON_MAX_NODES) {
        fail(c, "more than %d types", AVRO_CANON_MAX_NODES);
        return;
    }
    if (json_is_string(j)) {
        put_reference(c, json_string_value(j), ns);
        return;
    }
    if (json_is_array(j)) {
        puts_raw(c, "[");
        for (size_t i = 0; i < json_array_size(j); i++) {
            if (json_is_array(json_array_get(j, i))) {
                fail(c, "a union may not hold a union directly");
                return;
            }
            if (i)
                puts_raw(c, ",");
            put_node(c, json_array_get(j, i), ns, depth + 1);
        }
        puts_raw(c, "]");
        return;
    }
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type) {
        fail(c, "a schema must be a name, a union or an object with a \"type\" name");
        return;
    }
    if (is_primitive(type)) {
        if ((c->flags & AVRO_CANON_PY111) && json_object_size(j) > 1) {
            puts_raw(c, "{\"type\":");
            put_string(c, type);
            puts_raw(c, "}");
        } else {
            put_string(c, type);
        }
    } else if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
               strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0) {
        put_named(c, j, type, ns, depth);
    } else if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
        bool array = type[0] == 'a';
        json_t *inner = json_object_get(j, array ? "items" : "values");
        if (!inner) {
            fail(c, "%s needs \"%s\"", type, array ? "items" : "values");
            return;
        }
        puts_raw(c, array ? "{\"type\":\"array\",\"items\":" : "{\"type\":\"map\",\"values\":");
        put_node(c, inner, ns, depth + 1);
        puts_raw(c, "}");
    } else {
        put_reference(c, type, ns); /* {"type": "SomeNamedType"} */
    }
}

char *avro_canon_form(const char *json, size_t len, int flags, size_t *out_len, char *errstr,
                      size_t errstr_size)
{
    struct cctx c = {.flags = flags, .errstr = errstr, .errstr_size = errstr_size};
    json_t *root = NULL;
    if (len > AVRO_CANON_MAX_TEXT) {
        fail(&c, "schema text of %zu bytes is larger than %d", len, AVRO_CANON_MAX_TEXT);
        goto out;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_DECODE_ANY, &jerr);
    if (!root) {
        fail(&c, "line %d: %s", jerr.line, jerr.text);
        goto out;
    }
    put_node(&c, root, "", 0);
out:
    json_decref(root);
    for (size_t i = 0; i < c.n_names; i++)
        free(c.names[i]);
    free(c.names);
    if (c.failed) {
        free(c.p);
        return NULL;
    }
    if (out_len)
        *out_len = c.len;
    return c.p;
}

uint64_t avro_canon_fingerprint64(const void *data, size_t len)
{
    /* Bit at a time rather than the spec's 256-entry table: fingerprints
     * are taken once per schema, never per message, and this needs no
     * table to initialise. Same polynomial, same result. */
    const unsigned char *p = data;
    uint64_t fp = AVRO_CANON_FP_EMPTY;
    for (size_t i = 0; i < len; i++) {
        fp ^= p[i];
        for (int k = 0; k < 8; k++)
            fp = (fp >> 1) ^ (AVRO_CANON_FP_EMPTY & (0 - (fp & 1)));
    }
    return fp;
}
