/*
 * pgpool: a fixed set of PostgreSQL connections the console's request
 * threads borrow one at a time (libpq connections are not shared between
 * threads). Connections are opened lazily and reopened after a failure, so
 * the console starts (and answers /healthz) while PostgreSQL is down.
 *
 * Thread-safe. Owns its connections; a borrowed connection goes back with
 * pgpool_put (BROKEN true: it is closed, e.g. after a lost connection).
 */
#ifndef VIGIL_CONSOLE_PGPOOL_H
#define VIGIL_CONSOLE_PGPOOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct pgpool;

/* SIZE connections at most to CONNINFO (borrowed; outlives the pool). */
struct pgpool *pgpool_new(const char *conninfo, int size);
void pgpool_destroy(struct pgpool *p);

/* Borrows a connection, waiting up to WAIT_MS for one to be free and
 * connecting if needed. NULL with errstr when none could be had. */
PGconn *pgpool_get(struct pgpool *p, int wait_ms, char *errstr, size_t errstr_size);

/* Returns C (from pgpool_get). A connection whose status is not OK, or
 * BROKEN, is closed; a transaction left open is rolled back. */
void pgpool_put(struct pgpool *p, PGconn *c, bool broken);

/* Runs SELECT 1 on a pooled connection: true when PostgreSQL answers. */
bool pgpool_ping(struct pgpool *p, char *errstr, size_t errstr_size);

#endif
