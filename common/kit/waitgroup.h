/*
 * waitgroup: Go's sync.WaitGroup, plus wg_go, which starts a thread that
 * counts in the group -- so every thread a task starts is joined, and none
 * leaks past the task's end.
 *
 *   wg_new() / wg_destroy(wg)
 *   wg_add(wg, n)          n more things to wait for
 *   wg_done(wg)            one of them finished
 *   wg_wait(wg)            block until the count is zero and every thread
 *                          started with wg_go has been joined
 *   wg_wait_deadline(wg, d)   ... or until d passes (returns false)
 *   wg_go(wg, fn, arg, errstr, errstr_size)   start a joinable thread
 *                          running fn(arg); wg_add(1) before, wg_done after
 *
 * Threads started by wg_go are joined (not detached) by wg_wait, so when
 * wg_wait returns, the OS threads are gone, not merely finished with fn.
 * Threads that finished earlier are joined by the next wg_go as well, so a
 * long-lived group that starts a thread per job does not pile up zombies.
 *
 * Thread-safety: all functions may be called from any thread concurrently,
 * including several wg_wait callers, except wg_destroy (the last call).
 * wg_add with a positive n while a wg_wait is already blocked is allowed
 * (it extends the wait), as in Go; wg_done below zero is a programming error
 * and aborts the process.
 */
#ifndef VIGIL_WAITGROUP_H
#define VIGIL_WAITGROUP_H

#include <stdbool.h>
#include <stddef.h>

#include "deadline.h"

struct wg;

/* Returns a new group with count zero, or NULL if memory or pthread
 * resources ran out. The caller owns it (wg_destroy). */
struct wg *wg_new(void);

/* Joins any wg_go thread not yet joined, then frees WG. Precondition: the
 * count is zero (a wg_wait has returned, or nothing was added); a non-zero
 * count aborts, since freeing a group that threads will still wg_done is a
 * use-after-free in waiting. NULL is a no-op. */
void wg_destroy(struct wg *wg);

/* Adds N (> 0) to the count. Cannot fail. */
void wg_add(struct wg *wg, int n);

/* Subtracts one from the count, waking waiters when it reaches zero.
 * Aborts if the count was already zero. Cannot fail otherwise. */
void wg_done(struct wg *wg);

/* Blocks until the count is zero and every wg_go thread has been joined. */
void wg_wait(struct wg *wg);

/* As wg_wait, but gives up at DEADLINE: returns true if the group finished
 * (count zero, wg_go threads joined), false if DEADLINE passed first (the
 * group is unchanged; call wg_wait or wg_wait_deadline again later). Joining
 * happens after the count reaches zero, when each thread has only to exit,
 * so it can overrun DEADLINE only by that exit. */
bool wg_wait_deadline(struct wg *wg, deadline_t deadline);

/* Starts a joinable thread that runs FN(ARG) and then counts done; the
 * count is raised before the thread starts, so a wg_wait that follows
 * cannot miss it. FN owns ARG as the caller's contract says. Returns 0, or
 * -1 with a message in ERRSTR (e.g. "could not start thread: Resource
 * temporarily unavailable"): then FN does not run and the count is
 * unchanged. */
int wg_go(struct wg *wg, void (*fn)(void *arg), void *arg, char *errstr, size_t errstr_size);

/* Returns the current count: a snapshot, for tests and metrics. */
int wg_count(struct wg *wg);

#endif
