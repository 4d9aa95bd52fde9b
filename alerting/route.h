/*
 * route: the notifier's read-mostly cache of the directory (directory.h)
 * and the thread that keeps it fresh.
 *
 * DESIGN. The refresh thread holds its own PostgreSQL connection with
 * LISTEN vigil_directory (the 0003 triggers notify on every change of
 * researchers, studies, sites and subscriptions). It LISTENs first and
 * loads second, so no change between the two is missed; each notification
 * (coalesced: several in a burst cause one load) and every refresh_s
 * seconds (a fallback for a lost connection or a missed notification) it
 * loads the four tables in one REPEATABLE READ transaction, builds a new
 * sealed directory outside any lock, and swaps the pointer under the write
 * lock. Routing takes the read lock for the length of one route, so a
 * reader sees one whole directory, never half of a reload. A failed load
 * keeps the old directory (counted, logged, retried with backoff).
 *
 * Rejected: the snapshot kit (refcounted swap) -- a plain rwlock is what
 * the design names for this cache and routing holds it only microseconds.
 *
 * Thread-safety: route_cache_route, _escalation, _address, _ready and
 * _generation may be called from any thread; _new and _destroy from one.
 */
#ifndef VIGIL_ROUTE_H
#define VIGIL_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include "directory.h"
#include "metrics.h"
#include "pg.h"

struct route_cache;

/* Starts the refresh thread for CONNINFO (borrowed; must outlive the
 * cache). The first load happens on that thread: route_cache_ready() tells
 * when it is done. REFRESH_S is the periodic full reload. M (borrowed) gets
 * vigil_notifier_directory_generation and _reload_failures_total. Returns
 * NULL with errstr filled if memory or the thread cannot be had. */
struct route_cache *route_cache_new(const char *conninfo, int refresh_s, struct metrics *m,
                                    char *errstr, size_t errstr_size);

/* Stops the thread, frees the directory and the cache. NULL is a no-op. */
void route_cache_destroy(struct route_cache *rc);

/* True once a directory has been loaded. */
bool route_cache_ready(struct route_cache *rc);

/* directory_route() on the current directory, under the read lock. Before
 * the first load: *out is unroutable with n == 0 and false is returned. */
bool route_cache_route(struct route_cache *rc, const struct alert *a, struct route_result *out);

/* directory_escalation() under the read lock; returns the number added. */
int route_cache_escalation(struct route_cache *rc, const char *study, const char *researcher,
                           struct route_result *out);

/* directory_address() under the read lock. */
bool route_cache_address(struct route_cache *rc, const char *researcher, enum channel c,
                         char *out, size_t outsz);

/* Asks the refresh thread to reload now (SIGHUP). Never blocks. */
void route_cache_poke(struct route_cache *rc);

/* Loads the directory from CONN now (one REPEATABLE READ transaction).
 * Returns a sealed directory the caller owns, or NULL with errstr filled;
 * the connection is left idle (rolled back) either way. Exposed for tests. */
struct directory *route_load(PGconn *conn, char *errstr, size_t errstr_size);

#endif
