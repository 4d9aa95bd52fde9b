/*
 * avro_resolve: writer schemas and their resolution to the codec's reader
 * schemas, done by avro-c: avro-c parses both schemas, resolves them with
 * its resolved readers (avro_resolved_reader_new), reads each message
 * into a generic value of the writer schema (avro_value_read) that a
 * resolved reader value wraps. Values are reused across messages: each
 * writer keeps a pool of decode contexts, one per thread that decodes at
 * once, built on first use and never freed before the writer.
 *
 * What avro-c 1.11's resolved reader lacks, added here (resolved-reader.c
 * in avro-c 1.11.1 shows each):
 *   - reader fields the writer lacks: avro-c refuses the schema ("Reader
 *     field %s doesn't appear in writer", a TODO for defaults). Here the
 *     reader avro-c resolves against is the reader cut to the fields the
 *     writer has, and the others take the reader's default (from its JSON).
 *   - enum symbols: avro-c passes the writer's symbol index through as if
 *     it were the reader's (wrong data as soon as the symbol lists differ).
 *     Here each writer enum gets a table writer index -> reader index (or
 *     the reader enum's default, or an "invalid" error naming the symbol).
 *   - string <-> bytes promotion (spec 1.7.7+): avro-c refuses it. Here the
 *     reader avro-c sees takes bytes where the reader wants a string (and
 *     the reverse), and the value is handed on as text.
 * Everything else (fields by name, writer-only fields skipped, int/long/
 * float/double promotion, writer unions branch by branch, reader unions,
 * arrays, maps, fixed, recursive writers) is avro-c's.
 *
 * And what avro-c 1.11 gets wrong when a resolution fails, kept away from
 * it: a record that fails frees a resolver its fields share once per field
 * (a double free), an array that fails dereferences its NULL item resolver.
 * Each reader field is therefore resolved on its own first, and a record
 * or array is handed to avro-c only once everything in it resolves (the
 * other failing paths, leaves and unions, are safe in 1.11.1).
 *
 * Reader shapes supported (readers are ours): a record whose fields are
 * primitives, enums, fixed, unions of those, or arrays of such records.
 *
 * Thread-safety: readers and writers are immutable once built; any number
 * of threads may call avro_resolve_decode() on one writer at once. Build
 * writers from one thread at a time (the caller's lock): avro-c keeps its
 * error text in one buffer for the whole process (Debian builds it
 * without THREADSAFE).
 */
#ifndef VIGIL_AVRO_RESOLVE_H
#define VIGIL_AVRO_RESOLVE_H

#include <avro.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define AVRO_RESOLVE_MAX_READERS 2

/* A reader field's value as the decoder hands it to a sink. */
enum aval_kind { AVAL_NULL, AVAL_BOOL, AVAL_LONG, AVAL_DOUBLE, AVAL_STRING, AVAL_ENUM };

struct aval {
    enum aval_kind kind;
    int64_t l;     /* AVAL_BOOL (0/1), AVAL_LONG, AVAL_ENUM (reader symbol index) */
    double d;      /* AVAL_DOUBLE */
    const char *s; /* AVAL_STRING: not NUL-terminated; valid until the next decode */
    size_t n;
};

/* Where decoded values go. field is the index of the field in the reader
 * record. Each callback returns CODEC_OK, or an error class with the reason
 * in errstr. */
struct avro_sink {
    enum codec_status (*set)(void *obj, size_t field, const struct aval *v, char *errstr,
                             size_t errstr_size);
    /* For a field that is an array of records: returns the object for item
     * number index and its sink in *item_sink, or NULL with errstr filled
     * (class CODEC_EINVALID). */
    void *(*item)(void *obj, size_t field, size_t index, const struct avro_sink **item_sink,
                  char *errstr, size_t errstr_size);
};

struct avro_resolve_reader;
struct avro_resolve_writer;

/* Parses a reader schema (NUL-terminated JSON) with avro-c and keeps its
 * JSON for the defaults. Returns NULL with the reason in errstr if it does
 * not parse or has a shape the decoder does not support. */
struct avro_resolve_reader *avro_resolve_reader_new(const char *json, char *errstr,
                                                    size_t errstr_size);

/* Frees a reader. NULL is a no-op. Every writer resolved against it must
 * be destroyed first. */
void avro_resolve_reader_destroy(struct avro_resolve_reader *reader);

/* avro-c's model of the reader schema, owned by the reader. */
avro_schema_t avro_resolve_reader_schema(const struct avro_resolve_reader *reader);

/* Parses a writer schema (NUL-terminated JSON) with avro-c and resolves it
 * against each of the n readers (at most AVRO_RESOLVE_MAX_READERS, which
 * must outlive the writer). Returns NULL only when memory runs out; a
 * schema that does not parse or resolve still yields a writer whose
 * avro_resolve_writer_can_read() is false, with the reason kept. Not
 * thread-safe (see the header comment): one builder at a time. */
struct avro_resolve_writer *avro_resolve_writer_new(const char *json,
                                                    struct avro_resolve_reader *const *readers,
                                                    size_t n);

/* Frees a writer and its decode contexts. NULL is a no-op. No decode may
 * be in progress. */
void avro_resolve_writer_destroy(struct avro_resolve_writer *writer);

/* Whether messages of this writer can be read by reader r; if not, why
 * ("writer schema cannot be resolved to reader Observation: ..."). */
bool avro_resolve_writer_can_read(const struct avro_resolve_writer *writer, size_t r);
const char *avro_resolve_writer_why(const struct avro_resolve_writer *writer, size_t r);

/* Decodes the body at body..end (of a message starting at base, for
 * offsets) with writer for reader r into obj through sink. First the
 * bounds walk (avro_guard.h) over the whole body, then avro-c reads it.
 * Returns CODEC_OK; CODEC_ETRUNCATED/ECORRUPT/EOVERSIZE with the byte
 * offset (from the walk, "N bytes left after the record" included);
 * CODEC_EINVALID naming the field (avro-c gives no offset) for a value
 * the reader cannot take; CODEC_ETRANSIENT when memory runs out.
 * Allocates only what avro-c allocates per string/bytes value (two blocks
 * each) and, the first time a thread decodes with this writer, a decode
 * context. Thread-safe. */
enum codec_status avro_resolve_decode(struct avro_resolve_writer *writer, size_t r,
                                      const void *base, const void *body, const void *end,
                                      void *obj, const struct avro_sink *sink, char *errstr,
                                      size_t errstr_size);

#endif
