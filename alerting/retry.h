/*
 * retry: when to try a send again, and how often one recipient may be sent
 * to.
 *
 *   retry_backoff_ms()    exponential backoff with jitter
 *   retry_classify_http() / retry_classify_smtp()   outcome of an attempt
 *   ratelimit_*           per-recipient token buckets
 *
 * Backoff uses "equal jitter": the n-th retry waits a uniformly random time
 * in [d/2, d) with d = min(max, base * 2^n). Full jitter ([0, d)) was
 * rejected because a provider that fails fast (503) would then be retried
 * almost at once by a share of the sends; no jitter because every send
 * that failed together would retry together.
 *
 * Thread-safety: the functions are pure; a struct ratelimit belongs to one
 * thread (the sender's).
 */
#ifndef VIGIL_RETRY_H
#define VIGIL_RETRY_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Delay before retry number ATTEMPT (0 for the first retry) with BASE_MS
 * and MAX_MS (base >= 1, max >= base) and RND in [0, 1): a value in
 * [d/2, d) where d = min(MAX_MS, BASE_MS * 2^ATTEMPT). Cannot fail. */
int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, double rnd);

enum retry_outcome {
    RETRY_SENT = 0,  /* the provider accepted it */
    RETRY_AGAIN,     /* transient: timeout, connection, HTTP 429/5xx, SMTP 4xx */
    RETRY_PERMANENT, /* retrying will not help: HTTP 4xx, SMTP 5xx, bad setup */
};

/* Outcome of an HTTP gateway request that ended with curl result RESULT
 * and status STATUS (0 if none was received). */
enum retry_outcome retry_classify_http(CURLcode result, long status);

/* Outcome of an SMTP transfer with curl result RESULT and last SMTP reply
 * code REPLY (0 if none). */
enum retry_outcome retry_classify_smtp(CURLcode result, long reply);

/* Per-recipient token buckets: each key (researcher + channel) may send
 * BURST messages at once and PER_MINUTE on average. Bounded: at most
 * CAPACITY keys; when full, a key whose bucket has refilled (the same as a
 * new one) is reused; if none has, the new key is let through (fail open:
 * a page matters more than the limit) and counted. */
struct ratelimit;

/* Returns a limiter, or NULL on allocation failure. PER_MINUTE == 0
 * disables limiting (every take succeeds). */
struct ratelimit *ratelimit_new(double per_minute, double burst, size_t capacity);

/* Frees RL. NULL is a no-op. */
void ratelimit_destroy(struct ratelimit *rl);

/* Takes a token for KEY at NOW_MS (monotonic). Returns 0 if taken, else
 * the milliseconds until one will be available (nothing taken). */
int64_t ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms);

/* Keys let through because the table was full (for a metric). */
uint64_t ratelimit_overflows(const struct ratelimit *rl);

#endif
