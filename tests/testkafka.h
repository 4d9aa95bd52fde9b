/*
 * testkafka: what the C tests that talk to Kafka share (a real broker or
 * librdkafka's mock cluster): plain clients, a run's synthetic
 * observations, partition ends and the group's committed offsets.
 *
 * Test code: failures are printed and returned, never fatal.
 */
#ifndef VIGIL_TESTKAFKA_H
#define VIGIL_TESTKAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "observation.h"

/* A producer (idempotent, linger 5 ms) or a consumer (GROUP may be NULL:
 * no group; else manual commits, earliest) on BOOTSTRAPS, logging errors
 * only. NULL (printed) on failure. */
rd_kafka_t *testkafka_client(rd_kafka_type_t type, const char *bootstraps, const char *group);

/* Observation I of STUDY: potassium of subject S-(I % 200), 6.9 mmol/L
 * (above the k-high threshold of tests/integration/rules/pipeline.yaml)
 * when I % ALERT_EVERY == 0, else normal; id "STUDY-oNNNNNN". */
void testkafka_observation(const char *study, int i, int alert_every, struct observation *o);

/* Queues observations [FROM, TO) of STUDY on TOPIC (key study/subject,
 * single-object encoding), waiting out a full queue. Returns how many
 * were queued. */
int testkafka_produce(rd_kafka_t *p, struct codec *codec, const char *topic, const char *study,
                      int from, int to, int alert_every);

/* The end offset of TOPIC [PART], or -1. Retried: right after a broker
 * comes back a leader may not answer the first query. */
int64_t testkafka_end(rd_kafka_t *rk, const char *topic, int32_t part);

/* True when GROUP's committed offsets of TOPIC's partitions 0..NPARTS-1
 * equal their ends. SEEN (may be NULL) gets "[p] committed/end, ...". */
bool testkafka_committed_at_end(const char *bootstraps, const char *group, const char *topic,
                                int32_t nparts, char *seen, size_t seensz);

#endif
