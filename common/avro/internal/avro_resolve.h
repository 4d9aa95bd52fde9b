/*
 * avro_resolve: Avro schema resolution worked out once (writer schema x
 * reader schema -> a plan), then a plan-driven decoder of Avro binary
 * bodies that hands each reader field's value to a sink (the codec's
 * per-record setters). Internal to the codec; see codec.h.
 *
 * Resolution follows the Avro 1.11 specification, "Schema Resolution":
 * records match by unqualified name and fields by name; a writer field the
 * reader lacks is skipped; a reader field the writer lacks takes the
 * reader's default (an error if it has none); int promotes to long, float
 * and double, long to float and double, float to double, string and bytes
 * to each other; enum symbols map by name (an unknown symbol takes the
 * reader enum's default, else is an error when it occurs); a writer union
 * resolves branch by branch (a branch that cannot resolve is an error only
 * when a message uses it); a reader union takes the first branch that
 * matches exactly, else the first that resolves. Aliases are not used.
 *
 * Reader schemas are ours, so the reader shapes supported are what vigil
 * needs: a record whose fields are primitives, enums, fixed, unions of
 * those, or arrays of such records. Writer schemas may be anything.
 *
 * A plan is immutable: any number of threads may decode with it at once.
 */
#ifndef VIGIL_AVRO_RESOLVE_H
#define VIGIL_AVRO_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

#include "avro_schema.h"
#include "codec.h"

/* Nesting of records/arrays/maps/unions a message may have. */
#define ADEC_MAX_DEPTH 64

/* A reader field's value as the decoder hands it to a sink. */
enum aval_kind { AVAL_NULL, AVAL_BOOL, AVAL_LONG, AVAL_DOUBLE, AVAL_STRING, AVAL_ENUM };

struct aval {
    enum aval_kind kind;
    int64_t l;     /* AVAL_BOOL (0/1), AVAL_LONG, AVAL_ENUM (reader symbol index) */
    double d;      /* AVAL_DOUBLE */
    const char *s; /* AVAL_STRING: not NUL-terminated, points into the message */
    size_t n;
};

/* Decoding state of one message. */
struct adec {
    const uint8_t *base; /* start of the message, for offsets in errors */
    const uint8_t *p;
    const uint8_t *end;
    int depth;
    size_t items_left; /* array/map items this message may still have */
    char *errstr;
    size_t errstr_size;
};

/* Starts decoding the body at body..end of a message that starts at base.
 * errstr receives the reason of a failure. Cannot fail. */
void adec_init(struct adec *d, const void *base, const void *body, const void *end,
               char *errstr, size_t errstr_size);

/* Records a failure reason (with the byte offset) and returns status. */
enum codec_status adec_fail(struct adec *d, enum codec_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Where decoded values go. field is the index of the field in the reader
 * record; each callback returns CODEC_OK or fails through adec_fail(). */
struct aplan_sink {
    enum codec_status (*set)(void *obj, size_t field, const struct aval *v, struct adec *d);
    /* For a field that is an array of records: returns the object for item
     * number index and its sink in *item_sink, or NULL after adec_fail(). */
    void *(*item)(void *obj, size_t field, size_t index, const struct aplan_sink **item_sink,
                  struct adec *d);
};

struct aplan;

/* Resolves writer against reader (both records at the root, or a writer
 * union holding one). Returns a plan that refers to both schemas (keep
 * them alive until aplan_destroy()), or NULL with the reason in errstr
 * ("field value: writer string cannot be read as double"). Thread-safe. */
struct aplan *aplan_resolve(const struct avsc_schema *writer, const struct avsc_schema *reader,
                            char *errstr, size_t errstr_size);

/* Frees a plan. NULL is a no-op. */
void aplan_destroy(struct aplan *plan);

/* Decodes one record body with plan into obj through sink. Returns
 * CODEC_OK (d->p is then just past the record) or an error class with the
 * reason in d->errstr. Never reads outside d->p..d->end. Thread-safe. */
enum codec_status aplan_decode(const struct aplan *plan, struct adec *d, void *obj,
                               const struct aplan_sink *sink);

#endif
