/*
 * coalesce: identical reads share one execution. When several requests
 * want the same statement with the same parameters at once (the queue's
 * first page, asked by every open console of one caller), one of them runs
 * it and the others wait for its result instead of each running it.
 *
 * Freshness is kept: a request joins only a statement that was sent to
 * PostgreSQL after the request arrived. That statement's snapshot is taken
 * after the arrival and before the answer, so the shared result is one the
 * request could have got by running the statement itself (a client that
 * writes and then reads still sees its write). A request never joins an
 * execution that began before it arrived, nor a finished one (no cache).
 * Identical text and parameters mean identical meaning, caller included:
 * statements that filter by the caller carry the caller in a parameter, so
 * nobody receives rows meant for another caller.
 *
 *   coalesce_new()/coalesce_destroy()
 *   coalesce_query()     run, or join an identical statement sent since ARRIVED
 *   coalesce_release()   drop the caller's reference to the result
 *
 * The result is shared read-only between threads (libpq's PGresult accessors
 * only read); it is freed when the last holder releases it. If the running
 * request's statement fails, the waiting ones run their own on their own
 * connections (the failure may be that connection's).
 *
 * Thread-safety: coalesce_query/release from any thread; new/destroy from
 * one, with no query in progress.
 */
#ifndef VIGIL_CONSOLE_COALESCE_H
#define VIGIL_CONSOLE_COALESCE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct coalesce;
struct coalesce_flight;

/* A result borrowed from coalesce_query, to hand back to coalesce_release. */
struct coalesce_ref {
    struct coalesce_flight *flight;
};

/* Returns an empty coalescer counting into M (borrowed; may be NULL):
 * vigil_console_coalesced_total, the statements answered by another
 * request's execution. NULL on allocation failure. */
struct coalesce *coalesce_new(struct metrics *m);
void coalesce_destroy(struct coalesce *c);

/* Runs SQL (through pg_query_prepared) with NPARAMS text PARAMS on CONN, or
 * waits for an identical statement another thread sent at or after
 * ARRIVED_NS (deadline_now() when the request arrived). Returns the result,
 * read-only, with REF set for coalesce_release (never PQclear it); NULL with
 * errstr on failure (REF then holds nothing). */
const PGresult *coalesce_query(struct coalesce *c, PGconn *conn, const char *sql, int nparams,
                               const char *const *params, int64_t arrived_ns,
                               struct coalesce_ref *ref, char *errstr, size_t errstr_size);

/* Gives back a result of coalesce_query; REF is emptied. No-op on an empty
 * REF. */
void coalesce_release(struct coalesce *c, struct coalesce_ref *ref);

/* Requests waiting for another's execution right now (tests, metrics). */
int coalesce_waiting(struct coalesce *c);

#endif
