/*
 * work: one Kafka message on its way through the worker, from poll to the
 * moment every effect of it is durable.
 *
 * A work item is created by the poll thread and then held by each stage that
 * still owes an effect: the analysis thread while it runs, the store until
 * the row is committed, the publisher until each alert or dead letter is
 * acknowledged. work_hold() adds a hold, work_release() drops one; the last
 * release hands the item to its sink (the worker), which marks the offset
 * finished and frees the item. Holds are atomic, so stages on different
 * threads release independently and in any order.
 *
 * A stage that cannot finish (shutdown while PostgreSQL is down, a revoked
 * partition) calls work_abandon() before releasing: the sink then frees the
 * item without marking its offset, so it is consumed again later.
 *
 * Memory: the item owns the librdkafka message (payload and headers) and
 * the alerts array; both are freed with the item (habit 6: per-message
 * memory freed when the message is done).
 */
#ifndef VIGIL_WORK_H
#define VIGIL_WORK_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alert.h"
#include "clean.h"
#include "observation.h"

struct work;

/* Called once, by whichever thread drops the last hold. */
typedef void (*work_sink_fn)(void *sink, struct work *w);

struct work {
    struct work *next; /* poll thread's stash link; unused elsewhere */
    rd_kafka_message_t *rkm;
    int32_t partition;
    int64_t offset;
    uint32_t epoch;      /* the partition's tracking epoch (offsets.h) */
    bool tracked;        /* offsets_track accepted it (poll thread only) */
    int64_t received_ms; /* wall clock when polled */
    atomic_int holds;
    atomic_bool abandoned;
    work_sink_fn sink;
    void *sink_arg;

    /* Set by the analysis thread before the store sees the item. */
    bool store_row; /* false: dead-lettered, nothing to store */
    struct observation obs;
    struct clean_result clean;
    int64_t revision;
    int nalerts;
    struct alert *alerts; /* nalerts entries, owned; signals and retractions */
};

/* Wraps RKM (taken) in a new item holding one hold (the caller's). Returns
 * NULL on allocation failure (RKM is then still the caller's). */
struct work *work_new(rd_kafka_message_t *rkm, work_sink_fn sink, void *sink_arg);

/* Adds a hold. Thread-safe. */
void work_hold(struct work *w);

/* Drops a hold; the last one calls the sink. Thread-safe. */
void work_release(struct work *w);

/* Marks W so its offset is never marked finished. Thread-safe. */
void work_abandon(struct work *w);

/* Frees W, its message and its alerts. For the sink. NULL is a no-op. */
void work_free(struct work *w);

/* Adapter for publisher_send's done callback: releases the hold taken for
 * that message; a message not acknowledged (ERR set: abandoned at
 * shutdown) first abandons W, so its offset is read again later. */
void work_release_cb(void *w, rd_kafka_resp_err_t err);

#endif
