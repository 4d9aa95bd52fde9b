/*
 * publish: a Kafka producer that loses nothing: the worker's, for alerts
 * (vigil.alerts) and dead letters (vigil.observations.dlq), and the
 * notifier's, for its dead letters (vigil.alerts.dlq). Idempotent (enable.idempotence,
 * acks=all), and every message is retried until the broker acknowledges it:
 * the caller's done callback runs only after that, which is what lets a
 * consumer commit a message's offset only when what it produced is durable.
 *
 * A fatal idempotent-producer error (librdkafka < 2.3 can raise one on a
 * sequence desync) rebuilds the producer: everything not yet acknowledged is
 * purged from the old one and produced again on the new one. The broker may
 * then hold a message twice; alert ids are deterministic, so consumers
 * (the notifier, the tests) treat the second copy as a replay.
 *
 * Thread-safety: publisher_send may be called from any thread. Callbacks
 * run on the publisher's own thread and must not call publisher_close.
 */
#ifndef VIGIL_PUBLISH_H
#define VIGIL_PUBLISH_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"
#include "deadline.h"
#include "metrics.h"

struct publisher;

typedef void (*publish_done_fn)(void *arg);

/* At most this many topics are learned ahead (publisher_new's TOPICS). */
#define PUBLISH_TOPICS_MAX 4

/* Creates the producer (librdkafka client.id CLIENT_ID) and starts its
 * thread. CFG's kafka.* properties pass through. TOPICS (NULL-terminated, may be NULL; the strings borrowed, they
 * must outlive the publisher; at most PUBLISH_TOPICS_MAX) are the topics it
 * will send to: their partitions and leaders are asked for now, and again
 * for each rebuilt producer, rather than on librdkafka's 1 s topic scan
 * after the first message (which held the first alerts after a start back
 * by about a second). Failing to learn them is logged, not fatal. M
 * (borrowed) receives vigil_publish_* metrics. Returns NULL with errstr
 * filled on failure. */
struct publisher *publisher_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, const char *const *topics,
                                struct metrics *m, char *errstr, size_t errstr_size);

/* Queues one message. TOPIC is borrowed and must outlive the publisher;
 * KEY and VALUE are copied; HEADERS (may be NULL) is taken. Blocks while the
 * producer's queue is full. DONE(ARG) runs once, after the broker
 * acknowledged the message. Returns 0, or -1 if the publisher is closing
 * (DONE will not run; HEADERS were freed). */
int publisher_send(struct publisher *p, const char *topic, const void *key, size_t klen,
                   const void *value, size_t vlen, rd_kafka_headers_t *headers,
                   publish_done_fn done, void *arg);

/* Number of messages sent and not yet acknowledged. */
size_t publisher_pending(struct publisher *p);

/* Returns 0 if the producer currently has a broker connection problem
 * reported by librdkafka as all brokers down, 1 if it looks healthy. */
int publisher_healthy(struct publisher *p);

/* Waits until every message is acknowledged or DEADLINE passes, stops the
 * thread and frees everything. Returns the number of messages abandoned
 * unacknowledged (their DONE never runs). NULL is a no-op returning 0. */
size_t publisher_close(struct publisher *p, deadline_t deadline);

/* For the fault tests: makes the publisher act as if librdkafka had raised
 * a fatal error, so the rebuild path runs on demand. */
void publisher_inject_fatal(struct publisher *p);

#endif
