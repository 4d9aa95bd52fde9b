/*
 * vsem: a permit count under a mutex with one condition variable.
 *
 * POSIX sem_timedwait was rejected: it measures CLOCK_REALTIME (its
 * monotonic twin, sem_clockwait, is a GNU extension), it cannot detect an
 * over-release, and it returns EINTR to every caller on a signal.
 *
 * FIFO mode (vsem_new_fifo): each waiter queues a node of its own with its
 * own condition variable, and a release hands the permit to the oldest
 * waiter directly (it never goes back to the pool while someone waits), so
 * a thread arriving later cannot take it first and a waiter timing out
 * just as it is handed one keeps it.
 */
#include "sem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A waiter in FIFO mode, on its own stack. */
struct waiter {
    pthread_cond_t cond;
    bool granted; /* guarded by the semaphore's mu */
    struct waiter *next;
};

struct vsem {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled when a permit is returned */
    unsigned permits;    /* total given to vsem_new; immutable */
    unsigned free;       /* guarded by mu */
    bool fifo;           /* immutable */
    unsigned waiting;    /* threads blocked in vsem_acquire, guarded by mu */
    struct waiter *head, *tail; /* FIFO mode: the queue, guarded by mu */
};

struct vsem *vsem_new_fifo(unsigned permits)
{
    struct vsem *s = vsem_new(permits);
    if (s != NULL)
        s->fifo = true;
    return s;
}

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

static void queue_unlink(struct vsem *s, struct waiter *w)
{
    struct waiter **pp = &s->head, *prev = NULL;
    while (*pp != NULL && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    *pp = w->next;
    if (s->tail == w)
        s->tail = prev;
}

static enum vsem_status acquire_fifo(struct vsem *s, deadline_t deadline)
{
    pthread_mutex_lock(&s->mu);
    if (s->free > 0 && s->head == NULL) {
        s->free--;
        pthread_mutex_unlock(&s->mu);
        return VSEM_OK;
    }
    struct waiter w = {.granted = false, .next = NULL};
    if (deadline_cond_init(&w.cond) != 0) {
        /* no condition variable to wait on: only a deadline already due
         * can be answered honestly */
        pthread_mutex_unlock(&s->mu);
        return VSEM_TIMEOUT;
    }
    if (s->tail != NULL)
        s->tail->next = &w;
    else
        s->head = &w;
    s->tail = &w;
    s->waiting++;
    enum vsem_status st = VSEM_OK;
    while (!w.granted) {
        if (deadline_cond_wait(&w.cond, &s->mu, deadline) == ETIMEDOUT && !w.granted) {
            queue_unlink(s, &w);
            st = VSEM_TIMEOUT;
            break;
        }
    }
    s->waiting--;
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&w.cond);
    return st;
}

enum vsem_status vsem_acquire(struct vsem *s, deadline_t deadline)
{
    if (s->fifo)
        return acquire_fifo(s, deadline);
    enum vsem_status st = VSEM_OK;
    pthread_mutex_lock(&s->mu);
    s->waiting++;
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
    s->waiting--;
    pthread_mutex_unlock(&s->mu);
    return st;
}

bool vsem_try_acquire(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->free > 0 && s->head == NULL;
    if (ok)
        s->free--;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void vsem_release(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->head != NULL) { /* FIFO mode: straight to the oldest waiter */
        struct waiter *w = s->head;
        s->head = w->next;
        if (s->head == NULL)
            s->tail = NULL;
        w->granted = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&s->mu);
        return;
    }
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

unsigned vsem_waiting(struct vsem *s)
{
    pthread_mutex_lock(&s->mu);
    unsigned n = s->waiting;
    pthread_mutex_unlock(&s->mu);
    return n;
}
