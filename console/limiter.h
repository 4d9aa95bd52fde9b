/*
 * limiter: the seed's concurrency limiter for the console. At most N
 * requests are in flight; a request waits at most LIMITER_WAIT_MS (500 ms)
 * for a slot and is then refused (the caller answers 503 with Retry-After).
 * Heavy routes (timelines, exports) take a slot of their own, smaller pool
 * as well as a general one, so they cannot fill the server; sign-in has a
 * third small pool because each one costs an Argon2 hash (64 MiB, ~0.1 s).
 *
 *   limiter_new()/limiter_destroy()
 *   limiter_enter()   wait for a slot (bounded), count the route
 *   limiter_leave()   give the slot back, record latency and status
 *
 * Per-route metrics (labels route="..."):
 *   vigil_console_requests_total           requests answered, by route
 *   vigil_console_request_seconds          latency histogram, by route
 *   vigil_console_rejected_total           503s from the limiter, by route
 *   vigil_console_in_flight                requests holding a general slot
 *
 * Built on the kit's counting semaphore with a timed acquire (vsem), the
 * same primitive the notifier bounds its channels with.
 *
 * Thread-safety: limiter_enter/leave from any thread; new/destroy from one.
 */
#ifndef VIGIL_CONSOLE_LIMITER_H
#define VIGIL_CONSOLE_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

#include "metrics.h"

#define LIMITER_WAIT_MS 500
#define LIMITER_RETRY_AFTER_S 1

enum limiter_class {
    LIMITER_GENERAL = 0, /* a general slot only */
    LIMITER_HEAVY,       /* a heavy slot, then a general one */
    LIMITER_SIGNIN,      /* a sign-in slot, then a general one */
};

struct limiter;

/* A slot held by one request, on the caller's stack. */
struct limiter_slot {
    struct limiter *l;
    enum limiter_class cls;
    struct metric *count, *latency;
    int64_t start_ns;
    bool held;
};

/* Returns a limiter allowing GENERAL requests in flight, HEAVY of them
 * heavy and SIGNIN of them signing in (each >= 1), each waiting at most
 * WAIT_MS for a slot; metrics registered in M (borrowed, outlives it).
 * NULL on allocation failure. */
struct limiter *limiter_new(struct metrics *m, unsigned general, unsigned heavy, unsigned signin,
                            int wait_ms);
void limiter_destroy(struct limiter *l);

/* Waits for a slot of class CLS for ROUTE (a route pattern, not a raw
 * path: it becomes a label, so its values must be few). Returns true with
 * *slot held, or false after the wait bound with nothing held (the 503 is
 * counted). */
bool limiter_enter(struct limiter *l, enum limiter_class cls, const char *route,
                   struct limiter_slot *slot);

/* Releases SLOT (if held) and records its latency. */
void limiter_leave(struct limiter_slot *slot);

/* Free general slots now (tests, metrics). */
unsigned limiter_available(struct limiter *l);

#endif
