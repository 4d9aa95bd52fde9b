/*
 * deadline: absolute CLOCK_MONOTONIC times, the one time type the concurrency
 * kit (chan, ctx, waitgroup, vsem) takes for "block until".
 *
 * A deadline is an absolute time, not a duration, so a caller that retries a
 * wait after a spurious wake-up, or passes one deadline through several
 * blocking calls, never stretches the total wait. The monotonic clock is used
 * because wall-clock steps (NTP, an operator's `date`) must not shorten or
 * lengthen a timeout.
 *
 * Interface:
 *   deadline_now()             the current monotonic time
 *   deadline_after_ms(ms)      now + ms, saturating
 *   DEADLINE_FOREVER           never expires
 *   deadline_expired(d)
 *   deadline_remaining_ms(d)
 *   deadline_cond_init(c)      a condition variable that times out on CLOCK_MONOTONIC
 *   deadline_cond_wait(c,m,d)  pthread_cond_(timed)wait against a deadline
 *
 * All functions are thread-safe and cannot fail, except deadline_cond_init,
 * which reports pthread's error code.
 */
#ifndef VIGIL_DEADLINE_H
#define VIGIL_DEADLINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Nanoseconds on CLOCK_MONOTONIC (an arbitrary epoch: compare, never print
 * as a date). */
typedef int64_t deadline_t;

/* A deadline that never expires: blocking calls wait without a timeout. */
#define DEADLINE_FOREVER INT64_MAX

/* Returns the current CLOCK_MONOTONIC time. Cannot fail. */
deadline_t deadline_now(void);

/* Returns the deadline MS milliseconds from now. A negative MS means now
 * (already expired); a sum that would overflow saturates to DEADLINE_FOREVER.
 * Cannot fail. */
deadline_t deadline_after_ms(int64_t ms);

/* Returns true if D is at or before now. DEADLINE_FOREVER never expires. */
bool deadline_expired(deadline_t d);

/* Returns the whole milliseconds left before D (rounded up, so a caller that
 * sleeps that long has reached D), 0 if D has passed, INT64_MAX for
 * DEADLINE_FOREVER. */
int64_t deadline_remaining_ms(deadline_t d);

/* Returns the earlier of A and B. */
static inline deadline_t deadline_min(deadline_t a, deadline_t b)
{
    return a < b ? a : b;
}

/* Initialises COND so that timed waits measure CLOCK_MONOTONIC (the default,
 * CLOCK_REALTIME, would make every deadline wrong after a clock step).
 * Returns 0 or pthread's error number; on failure COND is not initialised.
 * The caller destroys it with pthread_cond_destroy. */
int deadline_cond_init(pthread_cond_t *cond);

/* Waits on COND (initialised by deadline_cond_init) with MU held, until
 * signalled or D passes. Returns 0 when woken (possibly spuriously: callers
 * re-check their condition in a loop) or ETIMEDOUT once D has passed. MU is
 * held again on return either way. */
int deadline_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mu, deadline_t d);

#endif
