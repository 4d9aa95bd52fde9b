/*
 * kafka: what every role needs to talk to Kafka through librdkafka: a
 * configuration built from vigil's settings (bootstrap servers plus every
 * passed-through librdkafka property), librdkafka's log lines turned into
 * vigil's JSON log, and a wall clock in milliseconds.
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

/* The headers of a dead letter (the Kafka Connect convention): a copy of
 * M's own headers plus
 *   vigil.error.class      stable class ("truncated", "unknown_schema", ...)
 *   vigil.error.message    what exactly was wrong (no patient data)
 *   vigil.source.topic / vigil.source.partition / vigil.source.offset
 * Returns headers the caller owns (rd_kafka_producev takes them on
 * success). Cannot fail (librdkafka aborts when out of memory). */
rd_kafka_headers_t *kafka_dead_letter_headers(const rd_kafka_message_t *m,
                                              const char *source_topic, const char *error_class,
                                              const char *error_message);

/* Milliseconds since the Unix epoch (wall clock: event and detection times). */
int64_t kafka_now_ms(void);

#endif
