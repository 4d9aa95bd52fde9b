/*
 * avro_guard: a walk over one Avro binary body, driven by the writer
 * schema (avro-c's model), that checks everything avro-c trusts before
 * avro-c reads a byte of it. Nothing is decoded and nothing allocated.
 *
 * Why: avro-c 1.11's binary decoder (encoding_binary.c, value-read.c)
 * allocates what a length in the input says before it reads the bytes
 * (read_string/read_bytes: avro_malloc(len + 1); a length of -1 asks for
 * 0 bytes and is reported as out of memory, which a caller would retry),
 * loops block_count times on an array or map count it never checks,
 * recurses once per nesting level of a recursive schema, takes a 10-byte
 * varint beyond 64 bits without a word, and stores an enum index it never
 * range-checks. It also reports errors without an offset. The guard refuses all of that
 * first, with an error class and the byte offset (see avro_guard_fail()).
 * Whatever it passes, avro-c can read without meeting a hostile length.
 *
 * The checks: varints at most 10 bytes and 64 bits; int within 32 bits;
 * string/bytes lengths not negative and within the bytes left; fixed sizes
 * within the bytes left; boolean bytes 0 or 1; union and enum indexes in
 * range; array/map block counts within the message's item budget; nesting
 * at most AVRO_GUARD_MAX_DEPTH; and what avro-c will allocate for the
 * message (strings, array and map items, union branches, each at the cost
 * avro_guard_costs_new() worked out) within AVRO_GUARD_MEMORY_FACTOR times
 * the body's length plus AVRO_GUARD_MEMORY_BASE.
 *
 * Writer schemas are from outside too: avro-c's generic value of a schema
 * holds fixed values and records inline, builds the value of a named-type
 * reference when its container is built, and so recurses without end on a
 * record that holds itself with no union, array or map between, and
 * allocates a fixed's declared size for every value. avro_guard_costs_new()
 * refuses such schemas before avro-c builds a value of them.
 *
 * Thread-safety: a struct avro_guard belongs to one decode; schemas are
 * only read.
 */
#ifndef VIGIL_AVRO_GUARD_H
#define VIGIL_AVRO_GUARD_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

/* Nesting of records/arrays/maps/unions a message may have. */
#define AVRO_GUARD_MAX_DEPTH 64

/* What avro-c may allocate for one message: factor x body length + base. */
#define AVRO_GUARD_MEMORY_FACTOR 64
#define AVRO_GUARD_MEMORY_BASE (1024 * 1024)

/* Largest generic value of a writer schema avro-c may build (at the first
 * decode of each thread), and of one union branch or array/map item. */
#define AVRO_GUARD_MAX_VALUE (1024 * 1024)

struct avro_guard_costs;

/* Works out, once per writer schema, what avro-c allocates to build a
 * value of each of its types. Returns NULL with the reason in errstr if
 * avro-c could not build a value of it within AVRO_GUARD_MAX_VALUE or at
 * all (a record that holds itself directly, a fixed larger than any
 * message). Thread-safe; the result is immutable. */
struct avro_guard_costs *avro_guard_costs_new(avro_schema_t schema, char *errstr,
                                              size_t errstr_size);

/* Frees costs. NULL is a no-op. */
void avro_guard_costs_destroy(struct avro_guard_costs *costs);

struct avro_guard {
    const uint8_t *base; /* start of the message, for offsets in errors */
    const uint8_t *p;
    const uint8_t *end;
    int depth;
    size_t items_left; /* array/map items this message may still have */
    size_t memory_left; /* bytes avro-c may still allocate for it */
    const struct avro_guard_costs *costs;
    char *errstr;
    size_t errstr_size;
};

/* Starts a walk of the body at body..end of a message that starts at base,
 * for a writer whose costs are given. errstr receives the reason of a
 * failure. Cannot fail. */
void avro_guard_init(struct avro_guard *g, const struct avro_guard_costs *costs,
                     const void *base, const void *body, const void *end, char *errstr,
                     size_t errstr_size);

/* Walks one value of schema at g->p. Returns CODEC_OK with g->p just past
 * the value, or CODEC_ETRUNCATED / CODEC_ECORRUPT / CODEC_EOVERSIZE with
 * the reason and " (at byte N)" in errstr. Never reads outside g->p..g->end.
 * Thread-safe for distinct guards. */
enum codec_status avro_guard_value(struct avro_guard *g, avro_schema_t schema);

/* Records a failure reason with the guard's byte offset appended and
 * returns status. */
enum codec_status avro_guard_fail(struct avro_guard *g, enum codec_status status,
                                  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
