#include "deadline.h"

#include <errno.h>
#include <time.h>

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)

deadline_t deadline_now(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail on Linux with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (deadline_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

deadline_t deadline_after_ms(int64_t ms)
{
    deadline_t now = deadline_now();
    if (ms <= 0)
        return now;
    if (ms > (DEADLINE_FOREVER - now) / NS_PER_MS)
        return DEADLINE_FOREVER;
    return now + ms * NS_PER_MS;
}

bool deadline_expired(deadline_t d)
{
    if (d == DEADLINE_FOREVER)
        return false;
    return deadline_now() >= d;
}

int64_t deadline_remaining_ms(deadline_t d)
{
    if (d == DEADLINE_FOREVER)
        return INT64_MAX;
    deadline_t left = d - deadline_now();
    if (left <= 0)
        return 0;
    return (left + NS_PER_MS - 1) / NS_PER_MS;
}

int deadline_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc != 0)
        return rc;
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
    return rc;
}

int deadline_cond_wait(pthread_cond_t *cond, pthread_mutex_t *mu, deadline_t d)
{
    if (d == DEADLINE_FOREVER) {
        pthread_cond_wait(cond, mu);
        return 0;
    }
    if (d <= deadline_now())
        return ETIMEDOUT;
    struct timespec ts = {.tv_sec = (time_t)(d / NS_PER_S), .tv_nsec = (long)(d % NS_PER_S)};
    int rc = pthread_cond_timedwait(cond, mu, &ts);
    return rc == ETIMEDOUT ? ETIMEDOUT : 0;
}
