/*
 * kafka: what every role needs to talk to Kafka through librdkafka: a
 * configuration built from vigil's settings (bootstrap servers plus every
 * passed-through librdkafka property), librdkafka's log lines turned into
 * vigil's JSON log, the headers of a dead letter, and a wall clock in
 * milliseconds.
 */
#ifndef VIGIL_KAFKA_H
#define VIGIL_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

/* Returns a new librdkafka configuration: bootstrap.servers = BOOTSTRAP,
 * client.id = CLIENT_ID, then every "kafka.*" property of CFG (which win),
 * and vigil's log callback. Returns NULL with errstr naming the property
 * librdkafka refused. The caller owns the result (rd_kafka_new takes it). */
rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, char *errstr, size_t errstr_size);

/* Applies every "kafka.*" property of CFG to CONF (they override what CONF
 * holds). Returns 0, or -1 with errstr naming the refused property. */
int kafka_conf_apply(rd_kafka_conf_t *conf, const struct config *cfg, char *errstr,
                     size_t errstr_size);

/* Sets NAME=VALUE on CONF; returns 0, or -1 with errstr
 * "could not set Kafka property NAME: reason". */
int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                   size_t errstr_size);

/* What a dead letter says about the record it stands for, besides the
 * record's own headers. */
struct kafka_dead_letter {
    const char *source_topic;
    const char *error_class;   /* stable class ("truncated", "unknown_schema", ...) */
    const char *error_message; /* what exactly was wrong (no patient data) */
    const char *sha256;        /* hex SHA-256 of the record's value (kafka_sha256_hex) */
    bool truncated;            /* false: the record's key and value as they are */
    const char *publish_error; /* truncated: why the whole one was refused (may be
                                * NULL: added later as vigil.publish.error) */
    size_t header_budget; /* truncated: the record's own headers are copied
                           * only while their names and values fit in this
                           * many bytes; the others are counted, not copied */
};

/* The headers of a dead letter (the Kafka Connect convention): a copy of
 * M's own headers (a trace id among them travels on), then
 *   vigil.error.class / vigil.error.message    why it was dead-lettered
 *   vigil.source.topic / vigil.source.partition / vigil.source.offset
 *   vigil.source.timestamp   M's timestamp, ms since the epoch (if it has one)
 *   vigil.original.size      bytes of M's value
 *   vigil.original.sha256    hex SHA-256 of M's value
 * and for a truncated one also
 *   vigil.truncated          "true": the value is the first bytes only
 *   vigil.publish.error      why the whole dead letter was refused
 *   vigil.headers.dropped    how many of M's headers did not fit (if any)
 * Returns headers the caller owns (rd_kafka_producev takes them on
 * success). Cannot fail (librdkafka aborts when out of memory). */
rd_kafka_headers_t *kafka_dead_letter_headers(const rd_kafka_message_t *m,
                                              const struct kafka_dead_letter *d);

/* Writes the SHA-256 of LEN bytes at DATA as 64 lowercase hex digits and a
 * NUL into OUT. Cannot fail. Thread-safe. */
void kafka_sha256_hex(const void *data, size_t len, char out[65]);

/* Milliseconds since the Unix epoch (wall clock: event and detection times). */
int64_t kafka_now_ms(void);

#endif
