#include "retry.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms, double rnd)
{
    if (base_ms < 1)
        base_ms = 1;
    if (max_ms < base_ms)
        max_ms = base_ms;
    if (rnd < 0 || rnd >= 1)
        rnd = 0;
    int64_t d = base_ms;
    for (int i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    int64_t half = d / 2;
    return half + (int64_t)(rnd * (double)(d - half));
}

/* curl results that say the network or the peer let us down this time. */
static bool transient(CURLcode r)
{
    switch (r) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_AGAIN:
        return true;
    default:
        return false;
    }
}

enum retry_outcome retry_classify_http(CURLcode result, long status)
{
    if (result != CURLE_OK)
        return transient(result) ? RETRY_AGAIN : RETRY_PERMANENT;
    if (status >= 200 && status < 300)
        return RETRY_SENT;
    if (status == 429 || status >= 500 || status == 408)
        return RETRY_AGAIN;
    return RETRY_PERMANENT;
}

enum retry_outcome retry_classify_smtp(CURLcode result, long reply)
{
    if (result == CURLE_OK)
        return RETRY_SENT;
    /* The reply code decides when there is one: 4xx is "try again later"
     * by definition (RFC 5321 4.2.1), 5xx is final. */
    if (reply >= 400 && reply < 500)
        return RETRY_AGAIN;
    if (reply >= 500 && reply < 600)
        return RETRY_PERMANENT;
    return transient(result) ? RETRY_AGAIN : RETRY_PERMANENT;
}

struct bucket {
    char *key; /* NULL: free slot */
    double tokens;
    int64_t last_ms;
};

struct ratelimit {
    double per_ms;
    double burst;
    size_t cap;
    struct bucket *b;
    uint64_t overflows;
};

struct ratelimit *ratelimit_new(double per_minute, double burst, size_t capacity)
{
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    rl->per_ms = per_minute / 60000.0;
    rl->burst = burst < 1 ? 1 : burst;
    rl->cap = capacity < 16 ? 16 : capacity;
    rl->b = calloc(rl->cap, sizeof *rl->b);
    if (rl->b == NULL) {
        free(rl);
        return NULL;
    }
    return rl;
}

void ratelimit_destroy(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->cap; i++)
        free(rl->b[i].key);
    free(rl->b);
    free(rl);
}

static void refill(struct ratelimit *rl, struct bucket *b, int64_t now_ms)
{
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rl->per_ms;
        if (b->tokens > rl->burst)
            b->tokens = rl->burst;
        b->last_ms = now_ms;
    }
}

/* Open addressing with linear probing; a probe sequence ends at a free
 * slot, so slots are never freed (only reused for a new key in place once
 * their bucket is full again), which keeps lookups correct without
 * tombstones. */
static struct bucket *find(struct ratelimit *rl, const char *key, int64_t now_ms)
{
    size_t start = (size_t)(hash_str(key, HASH_SEED) % rl->cap);
    struct bucket *reusable = NULL;
    for (size_t i = 0; i < rl->cap; i++) {
        struct bucket *b = &rl->b[(start + i) % rl->cap];
        if (b->key == NULL) {
            if (reusable != NULL)
                b = reusable;
            char *k = strdup(key);
            if (k == NULL)
                return NULL;
            free(b->key);
            b->key = k;
            b->tokens = rl->burst;
            b->last_ms = now_ms;
            return b;
        }
        if (strcmp(b->key, key) == 0)
            return b;
        if (reusable == NULL) {
            refill(rl, b, now_ms);
            if (b->tokens >= rl->burst)
                reusable = b;
        }
    }
    if (reusable == NULL)
        return NULL;
    /* Table full: take over a refilled bucket. Its old key, seen again,
     * gets a fresh (full) bucket: exactly what it had. */
    char *k = strdup(key);
    if (k == NULL)
        return NULL;
    free(reusable->key);
    reusable->key = k;
    reusable->tokens = rl->burst;
    reusable->last_ms = now_ms;
    return reusable;
}

int64_t ratelimit_take(struct ratelimit *rl, const char *key, int64_t now_ms)
{
    if (rl->per_ms <= 0)
        return 0;
    struct bucket *b = find(rl, key, now_ms);
    if (b == NULL) {
        rl->overflows++;
        return 0;
    }
    refill(rl, b, now_ms);
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    int64_t wait = (int64_t)((1 - b->tokens) / rl->per_ms) + 1;
    return wait;
}

uint64_t ratelimit_overflows(const struct ratelimit *rl)
{
    return rl->overflows;
}
