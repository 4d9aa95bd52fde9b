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
 *   vsem_acquire(s, deadline)   VSEM_OK or VSEM_TIMEOUT
 *   vsem_try_acquire(s)         never blocks
 *   vsem_release(s)
 *   vsem_available(s)
 *
 * Thread-safety: all functions may be called from any thread at the same
 * time, except vsem_destroy (the last call). Waiters are not served in
 * strict FIFO order (a pthread condition variable decides), which is fine
 * for bounding concurrency; no waiter starves while permits keep coming back
 * in practice, but there is no fairness guarantee.
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

#endif
