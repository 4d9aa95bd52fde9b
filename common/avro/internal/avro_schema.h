/*
 * avro_schema: a small, read-only model of an Avro schema, parsed from its
 * JSON text, with the spec's Parsing Canonical Form and CRC-64-AVRO
 * ("Rabin") fingerprint. The codec (codec.h) uses it to know writer schemas
 * by fingerprint and to resolve them against its reader schemas.
 *
 * Why not avro-c's avro_schema_t: avro-c has no canonical form or
 * fingerprint, and its generic value API costs an allocation-heavy detour
 * per message; this model is parsed once per schema, never per message.
 *
 * Interface routines:
 *   avsc_parse()           JSON text -> schema (bounded: depth, node count)
 *   avsc_destroy()
 *   avsc_canonical_form()  Parsing Canonical Form, as a malloc'd string
 *   avsc_fingerprint64()   CRC-64-AVRO of bytes
 *
 * A parsed schema is immutable: any number of threads may read it at once.
 */
#ifndef VIGIL_AVRO_SCHEMA_H
#define VIGIL_AVRO_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on a schema's shape: a schema comes from outside (a registry). */
#define AVSC_MAX_DEPTH 32
#define AVSC_MAX_NODES 4096
#define AVSC_MAX_TEXT (1024 * 1024)

/* The spec's fingerprint of the empty byte string, CRC-64-AVRO's seed. */
#define AVSC_FP_EMPTY UINT64_C(0xc15d213aa4d7a795)

enum avsc_type {
    AVSC_NULL,
    AVSC_BOOLEAN,
    AVSC_INT,
    AVSC_LONG,
    AVSC_FLOAT,
    AVSC_DOUBLE,
    AVSC_BYTES,
    AVSC_STRING,
    AVSC_RECORD,
    AVSC_ENUM,
    AVSC_ARRAY,
    AVSC_MAP,
    AVSC_UNION,
    AVSC_FIXED,
};

struct avsc_node;

struct avsc_field {
    char *name;
    struct avsc_node *type;
    json_t *def; /* the field's "default" as written, or NULL if it has none */
};

/* One schema node. Named types (record, enum, fixed) appear once and are
 * shared by every reference to them, so the graph may be cyclic. */
struct avsc_node {
    enum avsc_type type;
    char *name;        /* full name of a named type, else NULL */
    bool object_form;  /* a primitive written as {"type": ..., more...} */
    struct avsc_field *fields; /* record */
    size_t n_fields;
    char **symbols;            /* enum */
    size_t n_symbols;
    long enum_default;         /* enum: index of "default" symbol, or -1 */
    struct avsc_node *items;   /* array items, map values */
    struct avsc_node **branches; /* union */
    size_t n_branches;
    size_t size;               /* fixed */
    struct avsc_node *all_next; /* every node of a schema, for freeing */
};

struct avsc_schema {
    struct avsc_node *root;
    struct avsc_node *all;
    size_t n_nodes;
};

/* Parses the Avro schema in json (len bytes, need not be NUL-terminated).
 * Returns a new schema the caller frees with avsc_destroy(), or NULL with a
 * reason in errstr ("could not parse schema: ..."). Thread-safe. */
struct avsc_schema *avsc_parse(const char *json, size_t len, char *errstr, size_t errstr_size);

/* Frees a schema. NULL is a no-op. */
void avsc_destroy(struct avsc_schema *schema);

/* Flags for avsc_canonical_form(). */
enum {
    /* python3-avro 1.11.1 writes a primitive that carried extra attributes
     * (a logicalType) as {"type":"long"} instead of "long", against the
     * spec; this flag reproduces that so its fingerprints can be known too. */
    AVSC_CANON_PY111 = 1,
};

/* Returns the Parsing Canonical Form of schema as a malloc'd NUL-terminated
 * string (length in *len if len is not NULL), or NULL if memory ran out.
 * flags: 0 for the spec's form, or AVSC_CANON_PY111. Thread-safe. */
char *avsc_canonical_form(const struct avsc_schema *schema, int flags, size_t *len);

/* Returns the CRC-64-AVRO fingerprint of len bytes at data (AVSC_FP_EMPTY
 * for len 0). Cannot fail; thread-safe. */
uint64_t avsc_fingerprint64(const void *data, size_t len);

/* Returns the type's name as in schemas ("long", "record"...). Cannot fail. */
const char *avsc_type_name(enum avsc_type type);

/* Returns the part of a full name after its last dot. Cannot fail. */
const char *avsc_short_name(const char *fullname);

#endif
