/*
 * vsem: a permit count under a mutex with one condition variable.
 *
 * POSIX sem_timedwait was rejected: it measures CLOCK_REALTIME (its
 * monotonic twin, sem_clockwait, is a GNU extension), it cannot detect an
 * over-release, and it returns EINTR to every caller on a signal.
 */
#include "sem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

struct vsem {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled when a permit is returned */
    unsigned permits;    /* total given to vsem_new; immutable */
    unsigned free;       /* guarded by mu */
};

struct vsem *vsem_new(unsigned permits)
{
    if (permits == 0)
        return NULL;
    struct vsem *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto err;
    if (deadline_cond_init(&s->cond) != 0)
        goto err_mu;
    s->permits = permits;
    s->free = permits;
    return s;

err_mu:
    pthread_mutex_destroy(&s->mu);
err:
    free(s);
    return NULL;
}

void vsem_destroy(struct vsem *s)
{
    if (s == NULL)
        return;
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

enum vsem_status vsem_acquire(struct vsem *s, deadline_t deadline)
{
    enum vsem_status st = VSEM_OK;
    pthread_mutex_lock(&s->mu);
    while (s->free == 0) {
        /* Re-check after a timeout: a release may have signalled us just as
         * the wait expired, and that permit must not sit unclaimed while
         * other waiters sleep. */
        if (deadline_cond_wait(&s->cond, &s->mu, deadline) == ETIMEDOUT && s->free == 0) {
            st = VSEM_TIMEOUT;
            break;
        }
    }
    if (st == VSEM_OK)
        s->free--;
    pthread_mutex_unlock(&s->mu);
    return st;
}

bool vsem_try_acquire(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->free > 0;
    if (ok)
        s->free--;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void vsem_release(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->free >= s->permits) {
        pthread_mutex_unlock(&s->mu);
        fprintf(stderr, "vigil: semaphore misuse: release without acquire\n");
        abort();
    }
    s->free++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

unsigned vsem_available(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->free;
    pthread_mutex_unlock(&s->mu);
    return n;
}
