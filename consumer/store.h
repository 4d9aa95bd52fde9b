/*
 * store: the worker's PostgreSQL stage. Analysed work items are spread by
 * subject (the message key) over N writers; each writer is a thread with
 * its own bounded queue and its own connection, gathers its items into
 * batches (by size and by time) and writes each batch in one transaction
 * with store_batch.h's statement (COPY into session-local staging tables,
 * then one upsert per table, three round trips).
 *
 * Order: one subject's items always go to one writer, which commits them
 * in the order they were handed over, so a retraction, an amendment or an
 * alert row never lands before what it refers to. Different subjects'
 * batches commit concurrently (their WAL flushes are shared).
 *
 * Idempotent: observations upsert on observation_id and only move forward
 * (revision), alerts insert on alert_id and do nothing on conflict, and a
 * retraction marks its target retracted once. Replaying a message after a
 * crash changes nothing.
 *
 * PostgreSQL unreachable: the batch is retried with exponential backoff
 * (100 ms to 5 s) on a fresh connection until it commits; meanwhile the
 * queue fills and the worker's backpressure pauses partitions.
 * store_healthy() reports the outage for /readyz. A batch that fails for a
 * data reason (a constraint) is retried row by row; a row that fails alone
 * goes to the reject callback (the worker dead-letters it).
 *
 * Memory: at most queue_cap items queued (shared out over the writers, at
 * least batch_rows each) plus batch_rows being written per writer.
 *
 * The reads of the same tables (a subject's state) are store_load.h's.
 *
 * Thread-safety: store_put, store_healthy, store_depth, store_revision from any thread;
 * store_new/store_close from the owner only.
 */
#ifndef VIGIL_STORE_H
#define VIGIL_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include "ctx.h"
#include "deadline.h"
#include "metrics.h"
#include "observation.h"
#include "work.h"

struct store;

/* Called on a writer thread for a row PostgreSQL refuses on its own
 * merits; the callee takes over the item's hold. Several writers may call
 * it at once. */
typedef void (*store_reject_fn)(void *arg, struct work *w, const char *reason);

struct store_config {
    const char *conninfo;   /* borrowed for store_new only */
    size_t queue_cap;       /* items waiting for the store, all writers together */
    int writers;            /* connections writing concurrently (at least 1) */
    int batch_rows;         /* a batch is written at this many items ... */
    int batch_ms;           /* ... or this long after its first item */
    const char *source_topic; /* recorded with each row; borrowed, outlives the store */
    store_reject_fn reject;
    void *reject_arg;
};

/* Starts the writer threads. They connect lazily (and reconnects), so a
 * PostgreSQL that is down at start is not an error. Returns NULL with
 * errstr on allocation or thread failure. M is borrowed. */
struct store *store_new(const struct store_config *cfg, struct metrics *m, char *errstr,
                        size_t errstr_size);

/* Hands W (with one hold, which the store takes over) to the store. Blocks
 * while the queue is full, until CTX is cancelled. Returns 0, or -1 if CTX
 * was cancelled or the store is closed (the hold is still the caller's). */
int store_put(struct store *s, struct work *w, struct ctx *ctx);

/* False while PostgreSQL cannot be reached or the last batch failed. */
bool store_healthy(struct store *s);

/* Items queued, not yet taken into a batch. */
size_t store_depth(struct store *s);

/* Returns the revision to store with OBS's row (work.revision): a stored
 * row is only replaced by a higher one. Later issue time first; at the same
 * issue time final < amended/corrected < cancelled/entered-in-error, so a
 * withdrawal sent with an unchanged issue time still wins. Cannot fail;
 * thread-safe. */
int64_t store_revision(const struct observation *obs);

/* Closes the queues and waits for the writers to write what they hold. Past
 * DEADLINE, items not yet written are abandoned (not committed, consumed
 * again later). Frees the store. NULL is a no-op. */
void store_close(struct store *s, deadline_t deadline);

#endif
