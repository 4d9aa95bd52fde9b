/*
 * store_batch: vigil's batch statement — one batch of analysed work items
 * written to `observations` and `alerts` in one transaction, on a
 * connection the caller owns. store.c's writers use it, and so does
 * bench/storage_limit (PostgreSQL's ceiling for exactly this statement), so
 * the benchmark can never drift from what the worker sends.
 *
 * One batch is one simple-query message and three round trips:
 *
 *   BEGIN; COPY obs stage (binary); [COPY alert stage (binary);]
 *   upsert observations; [insert alerts; mark retracted;] COMMIT
 *
 * (the client waits only for each COPY to start and for the end). Binary
 * COPY: no float or timestamp text to print here or parse there.
 *
 * Semantics (the same whatever the batching):
 *   - observations upsert on observation_id and only move forward by
 *     revision; within a batch the highest revision, then the latest
 *     offset, wins;
 *   - alerts insert on alert_id and the first one stored wins: within a
 *     batch the first in batch order (a later copy with the same id, e.g.
 *     an amended result raising the same verdict, is what a later batch
 *     would also have skipped);
 *   - a retraction marks its target retracted once, after the batch's own
 *     alerts are in, so a retraction batched with its target still finds it.
 *
 * Thread-safety: a struct store_batch belongs to one thread at a time; the
 * connection too.
 */
#ifndef VIGIL_STORE_BATCH_H
#define VIGIL_STORE_BATCH_H

#include <libpq-fe.h>
#include <stddef.h>

#include "work.h"

enum store_write {
    STORE_WRITE_OK,
    STORE_WRITE_TRANSIENT, /* connection, shutdown, locks, resources: retry as is */
    STORE_WRITE_DATA,      /* SQLSTATE class 22 or 23: a row's own fault */
};

struct store_batch;

/* Returns a batch writer recording SOURCE_TOPIC (borrowed; it must outlive
 * the writer) with each row, or NULL if out of memory. Its buffers grow to
 * the largest batch written and are reused. */
struct store_batch *store_batch_new(const char *source_topic);

/* Frees B. NULL is a no-op. */
void store_batch_destroy(struct store_batch *b);

/* Creates the session's staging tables on CONN (once per new connection).
 * Returns STORE_WRITE_OK, or another result with the reason in ERRSTR. */
enum store_write store_batch_prepare(PGconn *conn, char *errstr, size_t errstr_size);

/* Writes the N ITEMS (borrowed; their holds are untouched) in one
 * transaction on CONN (prepared). Returns STORE_WRITE_OK with *NALERTS set
 * to the alert rows sent, or another result with the reason in ERRSTR; the
 * transaction is then rolled back and CONN is idle (or broken, for a lost
 * connection: PQstatus tells). */
enum store_write store_batch_write(struct store_batch *b, PGconn *conn, struct work *const *items,
                                   size_t n, size_t *nalerts, char *errstr, size_t errstr_size);

#endif
