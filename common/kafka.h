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
#include "offsets.h"

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

/* The consumer-group plumbing the worker and the notifier share. All four
 * run on the consumer's poll thread (inside its callbacks or loop). */

/* Takes the assignment L, incrementally when COOPERATIVE. Errors are
 * logged under COMPONENT (librdkafka keeps its previous assignment). */
void kafka_assign(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, bool cooperative,
                  const char *component);

/* Gives up L (incrementally when COOPERATIVE) or the whole assignment. */
void kafka_unassign(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, bool cooperative);

/* Pauses (PAUSE) or resumes partition P of TOPIC. Returns true if done;
 * false, logged under COMPONENT, if librdkafka refused (the caller keeps
 * its own paused flag as it was). */
bool kafka_pause(rd_kafka_t *rk, const char *topic, int32_t p, bool pause,
                 const char *component);

/* The bounded wait of a revoke: until LEFT(ARG, p) is 0 for every
 * partition p of L (checked every 5 ms; LEFT is read on this thread while
 * other threads finish the work) or DRAIN_MS pass. Returns what was still
 * in flight at the end (logged under COMPONENT as left for the
 * partitions' next owner when not 0). */
size_t kafka_revoke_wait(const rd_kafka_topic_partition_list_t *l, int32_t nparts,
                         size_t (*left)(void *arg, int32_t p), void *arg, int drain_ms,
                         const char *component);

/* Commits, for partitions 0..NPARTS-1 of TOPIC, every position O has
 * finished since the last call (asynchronously unless SYNC). */
void kafka_commit_offsets(rd_kafka_t *rk, const char *topic, struct offsets *o, int32_t nparts,
                          bool sync, const char *component);

/* For the offset-commit callback: hands every failed position of TOPIC in
 * L back to O so the next kafka_commit_offsets sends it again. */
void kafka_commit_result(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t *l,
                         const char *topic, struct offsets *o, const char *component);

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
