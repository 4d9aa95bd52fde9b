/*
 * codec: Avro encoding and decoding of vigil.Observation and vigil.Alert
 * (schemas/observation.avsc, schemas/alert.avsc) in both wire framings:
 *
 *   single object  C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint of
 *                  the writer schema's canonical form | Avro binary body
 *   Confluent      00 | 4-byte big-endian schema id | Avro binary body;
 *                  the writer schema is fetched from a Schema Registry
 *                  (GET {url}/schemas/ids/{id}) and cached by id
 *
 * avro-c parses the schemas, reads and writes the bodies and resolves the
 * writer schema against the current (reader) schema as the Avro spec says:
 * fields the reader lacks are skipped, fields the writer lacks take the
 * reader's default, int/long/float promote, enum symbols map by name (the
 * last two, and string<->bytes, added where avro-c 1.11 lacks them; see
 * README.md). Writer schemas are known by fingerprint (the current schemas
 * and the schemas in schemas/history/, embedded in the binary) or by
 * registry id. Every resolution is worked out once per writer schema,
 * never per message.
 *
 * Outside bytes are never trusted: before avro-c reads a body, a walk over
 * it checks every length, count, index and the nesting against the bytes
 * left and what avro-c would allocate for it against a budget; no read
 * past the buffer, and a precise error class for the dead-letter queue.
 *
 * Thread-safety: a struct codec may be shared by any number of threads for
 * decoding and encoding once built (the registry cache is behind a lock).
 * codec_add_writer_schema() and codec_add_schema_id() must be called before
 * the codec is shared.
 */
#ifndef VIGIL_CODEC_H
#define VIGIL_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "observation.h"

/* Error classes. The names from codec_error_class_name() are stable: they
 * go into dead-letter headers and metrics. */
enum codec_status {
    CODEC_OK = 0,
    CODEC_ETRUNCATED,     /* the bytes end inside a header or value */
    CODEC_ECORRUPT,       /* bad framing, varint, union or enum index, trailing bytes */
    CODEC_EOVERSIZE,      /* message, length, item count or nesting beyond limits */
    CODEC_EUNKNOWN_SCHEMA, /* fingerprint or registry id not known (registry said 404) */
    CODEC_EINCOMPATIBLE,  /* writer schema known but cannot be resolved to the reader */
    CODEC_EINVALID,       /* decoded, but a field fails validation */
    CODEC_ETRANSIENT,     /* registry unreachable/failing: retry, the message is not poison */
};

/* Returns "ok", "truncated", "corrupt", "oversize", "unknown_schema",
 * "incompatible_schema", "invalid" or "transient". Cannot fail. */
const char *codec_error_class_name(enum codec_status status);

/* Returns true for the classes where the message itself is bad (send it to
 * the dead-letter queue); false for CODEC_OK and CODEC_ETRANSIENT. */
int codec_status_is_poison(enum codec_status status);

enum codec_framing {
    CODEC_SINGLE_OBJECT = 0,
    CODEC_CONFLUENT = 1,
};

#define CODEC_DEFAULT_MAX_MESSAGE (1024 * 1024)

/* Upper bounds of an encoded message (header included): every field of the
 * structs has a fixed maximum size, so callers can use a stack buffer. */
#define CODEC_OBSERVATION_MAX_ENCODED 1024
#define CODEC_ALERT_MAX_ENCODED 2048

struct codec_config {
    size_t max_message_bytes;   /* larger messages are CODEC_EOVERSIZE (default 1 MiB) */
    const char *registry_url;   /* e.g. "http://registry:8081"; NULL: no registry */
    long registry_timeout_ms;   /* whole request, connect included (default 5000) */
    size_t registry_cache_max;  /* schemas cached by id (default 256) */
};

/* Fills cfg with the defaults (no registry). Cannot fail. */
void codec_config_init(struct codec_config *cfg);

struct codec;

/* Creates a codec: parses the embedded reader schemas and every embedded
 * history schema (*.v<N>.avsc). cfg may be NULL for the defaults; the codec
 * copies what it needs. Returns NULL with a reason in errstr on failure. */
struct codec *codec_new(const struct codec_config *cfg, char *errstr, size_t errstr_size);

/* Frees the codec. NULL is a no-op. No other thread may be using it. */
void codec_destroy(struct codec *codec);

/* Makes the writer schema in json (NUL-terminated) known by its
 * fingerprint, so single-object messages written with it decode. Returns
 * CODEC_OK, or CODEC_EINCOMPATIBLE/CODEC_EOVERSIZE with errstr filled (the
 * codec is unchanged). Not thread-safe: call before sharing the codec. */
enum codec_status codec_add_writer_schema(struct codec *codec, const char *json, char *errstr,
                                          size_t errstr_size);

/* Pins Confluent schema id to the writer schema in json, as if the
 * registry had answered it; pinned ids are never evicted or fetched.
 * Used by tests and the fuzzer (no network). Same returns as above. Not
 * thread-safe: call before sharing the codec. */
enum codec_status codec_add_schema_id(struct codec *codec, uint32_t id, const char *json,
                                      char *errstr, size_t errstr_size);

/* Decodes one message (either framing, told apart by its first byte) into
 * *out. Returns CODEC_OK, or an error class with a message in errstr such
 * as "invalid: unit is 40 bytes, longer than 32" ; *out is then
 * unspecified. May block up to the registry timeout on a Confluent id not
 * yet cached. Thread-safe. */
enum codec_status codec_decode_observation(struct codec *codec, const void *buf, size_t len,
                                           struct observation *out, char *errstr,
                                           size_t errstr_size);

/* As codec_decode_observation(), for vigil.Alert. */
enum codec_status codec_decode_alert(struct codec *codec, const void *buf, size_t len,
                                     struct alert *out, char *errstr, size_t errstr_size);

/* Encodes obs with the current schema in the given framing into buf (cap
 * bytes; CODEC_OBSERVATION_MAX_ENCODED always suffices), length in *len.
 * schema_id is the registry id of the current schema (CODEC_CONFLUENT
 * only). Returns CODEC_OK; CODEC_EINVALID if obs fails the same validation
 * as decoding; CODEC_EOVERSIZE if cap is too small. Thread-safe. */
enum codec_status codec_encode_observation(const struct codec *codec,
                                           const struct observation *obs,
                                           enum codec_framing framing, uint32_t schema_id,
                                           void *buf, size_t cap, size_t *len, char *errstr,
                                           size_t errstr_size);

/* As codec_encode_observation(), for vigil.Alert (CODEC_ALERT_MAX_ENCODED). */
enum codec_status codec_encode_alert(const struct codec *codec, const struct alert *alert,
                                     enum codec_framing framing, uint32_t schema_id, void *buf,
                                     size_t cap, size_t *len, char *errstr,
                                     size_t errstr_size);

/* Returns the fingerprint of the current Observation or Alert schema (what
 * single-object encoding writes). Cannot fail; thread-safe. */
uint64_t codec_observation_fingerprint(const struct codec *codec);
uint64_t codec_alert_fingerprint(const struct codec *codec);

#endif
