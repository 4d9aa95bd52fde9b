/*
 * avro_canon: the Avro specification's Parsing Canonical Form of a schema
 * and its CRC-64-AVRO ("Rabin") fingerprint, the two things single-object
 * encoding needs and avro-c 1.11 does not have. Written from the spec,
 * working on the schema's JSON text (jansson), not on avro-c's model: the
 * python3-avro variant (AVRO_CANON_PY111) depends on how a primitive was
 * written, which avro-c's model forgets.
 *
 * It also enforces the shape limits every schema from outside (a
 * registry) must meet before avro-c parses it: avro-c recurses once per
 * nesting level and has no limit of its own.
 *
 * Interface routines:
 *   avro_canon_form()           JSON text -> canonical form (bounded)
 *   avro_canon_fingerprint64()  CRC-64-AVRO of bytes
 *
 * Thread-safety: both functions are reentrant.
 */
#ifndef VIGIL_AVRO_CANON_H
#define VIGIL_AVRO_CANON_H

#include <stddef.h>
#include <stdint.h>

/* Limits on a schema's shape: a schema comes from outside (a registry). */
#define AVRO_CANON_MAX_DEPTH 32
#define AVRO_CANON_MAX_NODES 4096
#define AVRO_CANON_MAX_TEXT (1024 * 1024)

/* The spec's fingerprint of the empty byte string, CRC-64-AVRO's seed. */
#define AVRO_CANON_FP_EMPTY UINT64_C(0xc15d213aa4d7a795)

enum {
    /* python3-avro 1.11.1 writes a primitive that carried extra attributes
     * (a logicalType) as {"type":"long"} instead of "long", against the
     * spec; this flag reproduces that so its fingerprints can be known too. */
    AVRO_CANON_PY111 = 1,
};

/* Returns the Parsing Canonical Form of the schema in json (len bytes, need
 * not be NUL-terminated) as a malloc'd NUL-terminated string the caller
 * frees, its length in *out_len if not NULL; flags 0 for the spec's form or
 * AVRO_CANON_PY111. Returns NULL with the reason in errstr ("could not
 * parse schema: ...") when the text is not JSON, breaks a shape limit, or
 * is not a schema this form can be written for (an unknown name, a type
 * without its attributes). Thread-safe. */
char *avro_canon_form(const char *json, size_t len, int flags, size_t *out_len, char *errstr,
                      size_t errstr_size);

/* Returns the CRC-64-AVRO fingerprint of len bytes at data
 * (AVRO_CANON_FP_EMPTY for len 0). Cannot fail; thread-safe. */
uint64_t avro_canon_fingerprint64(const void *data, size_t len);

#endif
