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
 * Failures are of two kinds (publish_error_permanent): transient ones (the
 * broker away, a leader moving, a full queue, a rebuild) are retried here
 * for as long as it takes; permanent ones will fail the same way however
 * often the same message is sent (larger than the producer's
 * message.max.bytes or the topic's max.message.bytes, the topic missing,
 * not authorised on the topic, refused by a topic policy, or a fatal error
 * again after PUBLISH_FATAL_REBUILDS rebuilds). publisher_send retries even
 * those, with a backoff growing to 10 s, because an alert must never be
 * dropped (the partition waits, visibly: group.h's stall gauge and
 * readiness); publisher_send_or_fail hands them to the caller, who can do
 * something else (a dead letter is truncated, then recorded elsewhere).
 *
 * Thread-safety: publisher_send* may be called from any thread, including
 * from a DONE callback (it then never blocks). Callbacks run on the
 * publisher's own thread, or on publisher_close's for what is abandoned,
 * and must not call publisher_close.
 */
#ifndef VIGIL_PUBLISH_H
#define VIGIL_PUBLISH_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "deadline.h"
#include "metrics.h"

struct publisher;

/* What became of a message, as its DONE callback hears it (once):
 *   RD_KAFKA_RESP_ERR_NO_ERROR  the broker acknowledged it;
 *   RD_KAFKA_RESP_ERR__DESTROY  abandoned unacknowledged: the publisher was
 *                               cancelled or closed first;
 *   anything else               refused for good (publisher_send_or_fail
 *                               only): publish_error_permanent(ERR) holds. */
typedef void (*publish_done_fn)(void *arg, rd_kafka_resp_err_t err);

/* A message purged by this many rebuilds in a row (a fatal error each
 * time) is refused for good with RD_KAFKA_RESP_ERR__FATAL
 * (publisher_send_or_fail only). */
#define PUBLISH_FATAL_REBUILDS 3

/* True when ERR, from rd_kafka_producev or a delivery report, will come
 * back however often the same message is produced again: too large for the
 * producer or the topic, unknown topic or partition, topic not authorised,
 * invalid record or timestamp, refused by a policy. False for everything
 * that passes (broker away, leader change, timeouts, full queue, purges,
 * fatal errors, which a rebuild clears). Cannot fail; thread-safe. */
bool publish_error_permanent(rd_kafka_resp_err_t err);

/* At most this many topics are learned ahead (publisher_new's TOPICS). */
#define PUBLISH_TOPICS_MAX 4

/* Creates the producer (librdkafka client.id CLIENT_ID) and starts its
 * thread. CFG's kafka.* properties pass through. TOPICS (NULL-terminated, may be NULL; the strings borrowed, they
 * must outlive the publisher; at most PUBLISH_TOPICS_MAX) are the topics it
 * will send to: their partitions and leaders are asked for now, and again
 * for each rebuilt producer, rather than on librdkafka's 1 s topic scan
 * after the first message (which held the first alerts after a start back
 * by about a second). Failing to learn them is logged, not fatal.
 * MESSAGE_MAX (0: librdkafka's 1,000,000) is the producer's
 * message.max.bytes: the largest message it will try to send (the topic's
 * max.message.bytes then decides); a kafka.message.max.bytes property
 * overrides it. M (borrowed) receives vigil_publish_* metrics. Returns NULL
 * with errstr filled on failure. */
struct publisher *publisher_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, const char *const *topics,
                                size_t message_max, struct metrics *m, char *errstr,
                                size_t errstr_size);

/* Queues one message. TOPIC is borrowed and must outlive the publisher;
 * KEY and VALUE are copied; HEADERS (may be NULL) is taken. Blocks while the
 * producer's queue is full (not when called on the publisher's thread).
 * Every failure is retried, permanent ones with a backoff, until the broker
 * acknowledges it: DONE(ARG, NO_ERROR) then runs once; or DONE(ARG,
 * __DESTROY) if the publisher is cancelled or closed first. Returns 0, or
 * -1 if the publisher is cancelled or closing (DONE will not run; HEADERS
 * were freed). */
int publisher_send(struct publisher *p, const char *topic, const void *key, size_t klen,
                   const void *value, size_t vlen, rd_kafka_headers_t *headers,
                   publish_done_fn done, void *arg);

/* As publisher_send, except that a permanent failure is not retried: DONE
 * runs once with the error that refused the message (see publish_done_fn).
 * Transient failures are retried as ever. */
int publisher_send_or_fail(struct publisher *p, const char *topic, const void *key,
                           size_t klen, const void *value, size_t vlen,
                           rd_kafka_headers_t *headers, publish_done_fn done, void *arg);

/* Number of messages sent and not yet acknowledged. */
size_t publisher_pending(struct publisher *p);

/* Returns 0 if the producer currently has a broker connection problem
 * reported by librdkafka as all brokers down, 1 if it looks healthy. */
int publisher_healthy(struct publisher *p);

/* From now on publisher_send* refuse new messages (return -1) and stop
 * waiting for room; what is queued goes on being delivered. For a shutdown
 * whose time is up, so no thread stays blocked in publisher_send.
 * Idempotent; any thread. */
void publisher_cancel(struct publisher *p);

/* Waits until every message is acknowledged or refused, or DEADLINE
 * passes, stops the thread, purges what is left and frees everything. Each
 * message left runs its DONE with __DESTROY, on the calling thread, before
 * this returns (so whoever waits for it can let go). Returns the number of
 * such messages. NULL is a no-op returning 0. Not from a DONE callback. */
size_t publisher_close(struct publisher *p, deadline_t deadline);

/* For the fault tests: makes the publisher act as if librdkafka had raised
 * a fatal error, so the rebuild path runs on demand. */
void publisher_inject_fatal(struct publisher *p);

#endif
