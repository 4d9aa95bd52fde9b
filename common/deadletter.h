/*
 * deadletter: the promise a dead-letter queue exists to keep, written once
 * for every role that consumes (the worker's vigil.observations.dlq, the
 * notifier's vigil.alerts.dlq): a record that cannot be processed is set
 * aside and its partition moves on; no single record stops a partition.
 *
 * A dead letter goes, in turn:
 *
 *   1. whole: the record's key, value and headers plus vigil.* headers
 *      (kafka.h: why, where from, size and SHA-256 of the value), through
 *      publisher_send_or_fail, so a permanent refusal comes back here
 *      instead of being retried for ever (too large for the producer's
 *      message.max.bytes or the topic's max.message.bytes, topic missing,
 *      not authorised, a fatal producer error after rebuilds);
 *   2. truncated, when (1) was refused for good: the first truncate_bytes
 *      of the value (and of the key), the record's headers as far as they
 *      fit in truncate_bytes, the same vigil.* headers plus
 *      vigil.truncated and vigil.publish.error. The original stays
 *      addressable at its source offset while retention keeps it;
 *   3. when (2) is refused for good too, the policy decides:
 *      DEADLETTER_SKIP   a row in PostgreSQL's dead_letters (migration
 *                        0040) with the same facts, an error log line and
 *                        vigil_dead_letters_skipped_total; then the
 *                        record counts as finished. If PostgreSQL cannot
 *                        take the row either, it is retried (with backoff)
 *                        and the record stays unfinished: skipping leaves
 *                        a trace or does not happen;
 *      DEADLETTER_STALL  the truncated dead letter is retried until the
 *                        topic takes it (publisher_send's backoff); the
 *                        partition's committed offset waits, visibly
 *                        (vigil_dead_letters_stalled, the group's stall
 *                        gauge and readiness).
 *   With no dead-letter topic configured, (1) and (2) are skipped and the
 *   record is recorded as in SKIP whatever the policy.
 *
 * Each step's outcome reaches the caller once, through DONE: WRITTEN,
 * TRUNCATED or SKIPPED (the record is finished: commit past it), or
 * ABANDONED (shutdown came first: leave it for the partition's next owner).
 *
 * Metrics: vigil_dead_letters_total (acknowledged on the topic, whole or
 * truncated), vigil_dead_letters_truncated_total,
 * vigil_dead_letters_skipped_total, vigil_dead_letters_stalled (gauge).
 *
 * Thread-safety: deadletter_send from any thread. DONE runs on the
 * publisher's thread, the recorder's thread (SKIPPED) or the thread
 * closing the publisher or the dead letters (ABANDONED); it must not call
 * deadletter_close or publisher_close.
 */
#ifndef VIGIL_DEADLETTER_H
#define VIGIL_DEADLETTER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "deadline.h"
#include "metrics.h"
#include "publish.h"

enum deadletter_policy {
    DEADLETTER_SKIP = 0, /* record in PostgreSQL, log, count, move on */
    DEADLETTER_STALL,    /* retry until written; the partition waits */
};

/* Parses "skip" or "stall"; returns 0, or -1 for anything else. */
int deadletter_policy_parse(const char *s, enum deadletter_policy *out);

/* Default of truncate_bytes: the first 64 KiB of a record travel. */
#define DEADLETTER_TRUNCATE_DEFAULT 65536

struct deadletter_config {
    const char *topic;        /* "" or NULL: no dead-letter topic (always recorded) */
    const char *source_topic; /* the topic the records come from */
    const char *group;        /* the consumer group, recorded in dead_letters */
    const char *conninfo;     /* PostgreSQL, for dead_letters rows */
    const char *component;    /* log lines' component: "worker", "notifier" */
    size_t truncate_bytes;    /* K; 0: DEADLETTER_TRUNCATE_DEFAULT */
    enum deadletter_policy policy;
};

enum deadletter_outcome {
    DEADLETTER_WRITTEN,   /* whole, acknowledged */
    DEADLETTER_TRUNCATED, /* truncated, acknowledged */
    DEADLETTER_SKIPPED,   /* recorded in dead_letters (SKIP, or no topic) */
    DEADLETTER_ABANDONED, /* shutdown first: not finished */
};

typedef void (*deadletter_done_fn)(void *arg, enum deadletter_outcome outcome);

struct deadletter;

/* Room for a dead letter's headers on top of its record. */
#define DEADLETTER_HEADROOM 65536

/* The producer's message.max.bytes for dead letters of records up to
 * MAX_RECORD_BYTES (0: librdkafka's default), so any record the topic may
 * hold is first tried whole: the dead-letter topic's own limit decides. */
size_t deadletter_message_max(size_t max_record_bytes);

/* Creates the dead-letter sender on PUB (borrowed; the caller closes it
 * before deadletter_close) and starts the recorder thread that writes
 * dead_letters rows (it connects to PostgreSQL only when it has one to
 * write). C's strings are borrowed and must outlive it; M receives the
 * metrics above. Returns NULL with errstr on failure (out of memory, no
 * thread). */
struct deadletter *deadletter_new(const struct deadletter_config *c, struct publisher *pub,
                                  struct metrics *m, char *errstr, size_t errstr_size);

/* Dead-letters M (borrowed: what is needed is copied before return) for
 * ERROR_CLASS / ERROR_MESSAGE. DONE(ARG, outcome) runs exactly once, later
 * or before this returns. Returns 0; or -1 when the publisher or the dead
 * letters are closing (DONE will not run). Any thread. */
int deadletter_send(struct deadletter *d, const rd_kafka_message_t *m, const char *error_class,
                    const char *error_message, deadletter_done_fn done, void *arg);

/* Gives rows still waiting for PostgreSQL until DEADLINE, stops the
 * recorder and frees D; what is still waiting is ABANDONED (DONE runs on
 * this thread). Call after publisher_close (no step can start any more).
 * NULL is a no-op. */
void deadletter_close(struct deadletter *d, deadline_t deadline);

#endif
