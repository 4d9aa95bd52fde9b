/*
 * vsem: a counting semaphore with a timed acquire -- Go's buffered
 * `chan struct{}` used as a semaphore, with `time.After` for the timeout.
 * Bounds how many calls run at once against a peer (SMS gateway, SMTP,
 * HTTP); a timed-out acquire is the caller's cue to answer 503 or retry
 * later rather than queue without bound.
 *
 * Named vsem_ so as not to collide with POSIX <semaphore.h> (sem_wait...).
 *
 *   vsem_new(n) / vsem_destroy(s)
 *   vsem_new_fifo(n)            waiters served in arrival order
 *   vsem_acquire(s, deadline)   VSEM_OK or VSEM_TIMEOUT
 *   vsem_try_acquire(s)         never blocks
 *   vsem_release(s)
 *   vsem_available(s)
 *   vsem_waiting(s)
 *
 * Thread-safety: all functions may be called from any thread at the same
 * time, except vsem_destroy (the last call). A vsem_new semaphore does not
 * serve waiters in FIFO order (a pthread condition variable decides, and a
 * thread arriving as a permit comes back may take it first), which is fine
 * for bounding concurrency. A vsem_new_fifo one does: a request limiter
 * whose waiters give up after a deadline wants the oldest served first, or
 * the unlucky ones wait several turns and its latency tail grows.
 */
#ifndef VIGIL_SEM_H
#define VIGIL_SEM_H

#include <stdbool.h>

#include "deadline.h"

struct vsem;

enum vsem_status {
    VSEM_OK = 0,  /* a permit is now held by the caller */
    VSEM_TIMEOUT, /* the deadline passed first; nothing is held */
};

/* Returns a semaphore with PERMITS (>= 1) permits free, or NULL if memory or
 * pthread resources ran out. The caller owns it (vsem_destroy). */
struct vsem *vsem_new(unsigned permits);

/* As vsem_new, with waiters served strictly in the order they arrived. */
struct vsem *vsem_new_fifo(unsigned permits);

/* Frees S. Precondition: no thread is blocked in vsem_acquire (permits still
 * held are simply forgotten). NULL is a no-op. */
void vsem_destroy(struct vsem *s);

/* Takes a permit, blocking while none is free, until DEADLINE. Returns
 * VSEM_OK (the caller must vsem_release it later) or VSEM_TIMEOUT. */
enum vsem_status vsem_acquire(struct vsem *s, deadline_t deadline);

/* Takes a permit if one is free now. Returns true if taken. Never blocks. */
bool vsem_try_acquire(struct vsem *s);

/* Returns a permit taken by vsem_acquire/vsem_try_acquire and wakes one
 * waiter. Releasing more permits than vsem_new gave is a programming error
 * and aborts. */
void vsem_release(struct vsem *s);

/* Returns the number of free permits: a snapshot, for metrics and tests. */
unsigned vsem_available(struct vsem *s);

/* Returns the number of threads waiting in vsem_acquire (a non-FIFO one
 * counts a waiter until it has checked the pool after waking): a
 * snapshot, for metrics and tests. */
unsigned vsem_waiting(struct vsem *s);

#endif
