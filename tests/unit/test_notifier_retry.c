/* retry: backoff growth, cap and jitter range; outcome classification;
 * the per-recipient token bucket. */
#include <stdlib.h>

#include "retry.h"
#include "testlib.h"

static void test_backoff(void)
{
    /* equal jitter: [d/2, d) with d = min(max, base * 2^n) */
    CHECK_EQ_INT(retry_backoff_ms(0, 1000, 60000, 0.0), 500);
    CHECK_EQ_INT(retry_backoff_ms(0, 1000, 60000, 0.999999), 999);
    CHECK_EQ_INT(retry_backoff_ms(1, 1000, 60000, 0.0), 1000);
    CHECK_EQ_INT(retry_backoff_ms(3, 1000, 60000, 0.0), 4000);
    CHECK_EQ_INT(retry_backoff_ms(5, 1000, 60000, 0.5), 16000 + 8000);
    /* capped, and no overflow for absurd attempt numbers */
    CHECK_EQ_INT(retry_backoff_ms(6, 1000, 60000, 0.0), 30000);
    CHECK_EQ_INT(retry_backoff_ms(1000, 1000, 60000, 0.0), 30000);
    CHECK(retry_backoff_ms(1000, 1000, 60000, 0.99) < 60000);
    /* grows monotonically at a fixed random value until the cap */
    int64_t prev = 0;
    for (int i = 0; i < 20; i++) {
        int64_t d = retry_backoff_ms(i, 250, 10000, 0.3);
        CHECK(d >= prev);
        CHECK(d >= 125 && d < 10000);
        prev = d;
    }
    /* bad inputs are clamped, not trusted */
    CHECK_EQ_INT(retry_backoff_ms(0, 0, 0, 2.0), 0);
    CHECK(retry_backoff_ms(2, 100, 50, -1.0) >= 50);
    /* jitter spreads: many draws are not all equal */
    int distinct = 0;
    int64_t first = retry_backoff_ms(4, 1000, 60000, 0.01);
    for (int i = 1; i < 10; i++)
        distinct += retry_backoff_ms(4, 1000, 60000, i / 10.0) != first;
    CHECK_EQ_INT(distinct, 9);
}

static void test_classify(void)
{
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 201), RETRY_SENT);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 200), RETRY_SENT);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 429), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 503), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 500), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 401), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 400), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_http(CURLE_OK, 302), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_http(CURLE_OPERATION_TIMEDOUT, 0), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_http(CURLE_COULDNT_CONNECT, 0), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_http(CURLE_URL_MALFORMAT, 0), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_OK, 250), RETRY_SENT);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_SEND_ERROR, 451), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_RECV_ERROR, 421), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_SEND_ERROR, 550), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_LOGIN_DENIED, 535), RETRY_PERMANENT);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_COULDNT_CONNECT, 0), RETRY_AGAIN);
    CHECK_EQ_INT(retry_classify_smtp(CURLE_OPERATION_TIMEDOUT, 0), RETRY_AGAIN);
}

static void test_ratelimit(void)
{
    /* 60/min = 1 per second, burst 3 */
    struct ratelimit *rl = ratelimit_new(60, 3, 16);
    CHECK(rl != NULL);
    int64_t t = 1000000;
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(ratelimit_take(rl, "r1/sms", t), 0);
    int64_t wait = ratelimit_take(rl, "r1/sms", t);
    CHECK(wait > 900 && wait <= 1001);
    /* another recipient is not affected */
    CHECK_EQ_INT(ratelimit_take(rl, "r2/sms", t), 0);
    /* after the wait a token is there */
    CHECK_EQ_INT(ratelimit_take(rl, "r1/sms", t + wait), 0);
    CHECK(ratelimit_take(rl, "r1/sms", t + wait) > 0);
    /* bounded: 16 keys; refilled buckets are reused, busy ones kept */
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        CHECK_EQ_INT(ratelimit_take(rl, k, t + 100000 + i), 0);
    }
    /* all 16 slots hold drained-by-one buckets now: a new key overflows
     * (let through) rather than being refused */
    CHECK(ratelimit_overflows(rl) > 0);
    ratelimit_destroy(rl);
    /* 0: unlimited */
    rl = ratelimit_new(0, 1, 16);
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(ratelimit_take(rl, "r", t), 0);
    ratelimit_destroy(rl);
    ratelimit_destroy(NULL);
}

int main(void)
{
    test_backoff();
    test_classify();
    test_ratelimit();
    return testlib_done();
}
