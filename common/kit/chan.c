/*
 * chan: a ring buffer under one mutex with two condition variables.
 *
 * DESIGN: one mutex rather than a lock-free ring, because the queue sits
 * between stages that each do milliseconds of work (decode, SQL, SMTP) per
 * item; an uncontended mutex costs tens of nanoseconds and is easy to prove
 * correct under ThreadSanitizer, with close and deadlines folded in.
 * Senders wait on not_full, receivers on not_empty; a send or receive
 * signals one waiter of the other side, close broadcasts to both.
 *
 * A waiter whose timed wait expires at the moment it is signalled re-checks
 * the queue before reporting TIMEOUT, so a signal is never swallowed by a
 * thread that then gives up while the item sits unclaimed.
 */
#include "chan.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

struct chan {
    pthread_mutex_t mu;
    pthread_cond_t not_empty; /* receivers wait here */
    pthread_cond_t not_full;  /* senders wait here */
    size_t cap;
    size_t head; /* index of the oldest item */
    size_t len;
    bool closed;
    void **items; /* cap slots */
};

const char *chan_status_str(enum chan_status st)
{
    switch (st) {
    case CHAN_OK:
        return "ok";
    case CHAN_FULL:
        return "full";
    case CHAN_EMPTY:
        return "empty";
    case CHAN_TIMEOUT:
        return "timeout";
    case CHAN_CLOSED:
        return "closed";
    case CHAN_END:
        return "end";
    }
    return "unknown";
}

struct chan *chan_new(size_t capacity)
{
    assert(capacity >= 1);
    if (capacity == 0 || capacity > SIZE_MAX / sizeof(void *))
        return NULL;
    struct chan *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return NULL;
    ch->items = calloc(capacity, sizeof *ch->items);
    if (ch->items == NULL)
        goto err;
    ch->cap = capacity;
    if (pthread_mutex_init(&ch->mu, NULL) != 0)
        goto err;
    if (deadline_cond_init(&ch->not_empty) != 0)
        goto err_mu;
    if (deadline_cond_init(&ch->not_full) != 0)
        goto err_empty;
    return ch;

err_empty:
    pthread_cond_destroy(&ch->not_empty);
err_mu:
    pthread_mutex_destroy(&ch->mu);
err:
    free(ch->items);
    free(ch);
    return NULL;
}

void chan_destroy(struct chan *ch)
{
    if (ch == NULL)
        return;
    pthread_cond_destroy(&ch->not_full);
    pthread_cond_destroy(&ch->not_empty);
    pthread_mutex_destroy(&ch->mu);
    free(ch->items);
    free(ch);
}

/* Appends ITEM; the caller holds mu and has checked there is room. */
static void push_locked(struct chan *ch, void *item)
{
    ch->items[(ch->head + ch->len) % ch->cap] = item;
    ch->len++;
    pthread_cond_signal(&ch->not_empty);
}

/* Removes the oldest item; the caller holds mu and has checked len > 0. */
static void *pop_locked(struct chan *ch)
{
    void *item = ch->items[ch->head];
    ch->items[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->cap;
    ch->len--;
    pthread_cond_signal(&ch->not_full);
    return item;
}

enum chan_status chan_send(struct chan *ch, void *item, deadline_t deadline)
{
    enum chan_status st = CHAN_OK;
    pthread_mutex_lock(&ch->mu);
    for (;;) {
        if (ch->closed) {
            st = CHAN_CLOSED;
            break;
        }
        if (ch->len < ch->cap) {
            push_locked(ch, item);
            break;
        }
        if (deadline_cond_wait(&ch->not_full, &ch->mu, deadline) == ETIMEDOUT &&
            ch->len == ch->cap && !ch->closed) {
            st = CHAN_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&ch->mu);
    return st;
}

enum chan_status chan_try_send(struct chan *ch, void *item)
{
    enum chan_status st = CHAN_OK;
    pthread_mutex_lock(&ch->mu);
    if (ch->closed)
        st = CHAN_CLOSED;
    else if (ch->len == ch->cap)
        st = CHAN_FULL;
    else
        push_locked(ch, item);
    pthread_mutex_unlock(&ch->mu);
    return st;
}

enum chan_status chan_recv(struct chan *ch, void **item, deadline_t deadline)
{
    enum chan_status st = CHAN_OK;
    pthread_mutex_lock(&ch->mu);
    for (;;) {
        /* Queued items first, even after close: close means "no more",
         * not "drop what was accepted". */
        if (ch->len > 0) {
            *item = pop_locked(ch);
            break;
        }
        if (ch->closed) {
            st = CHAN_END;
            break;
        }
        if (deadline_cond_wait(&ch->not_empty, &ch->mu, deadline) == ETIMEDOUT &&
            ch->len == 0 && !ch->closed) {
            st = CHAN_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&ch->mu);
    return st;
}

enum chan_status chan_try_recv(struct chan *ch, void **item)
{
    enum chan_status st = CHAN_OK;
    pthread_mutex_lock(&ch->mu);
    if (ch->len > 0)
        *item = pop_locked(ch);
    else if (ch->closed)
        st = CHAN_END;
    else
        st = CHAN_EMPTY;
    pthread_mutex_unlock(&ch->mu);
    return st;
}

void chan_close(struct chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    if (!ch->closed) {
        ch->closed = true;
        pthread_cond_broadcast(&ch->not_empty);
        pthread_cond_broadcast(&ch->not_full);
    }
    pthread_mutex_unlock(&ch->mu);
}

bool chan_is_closed(struct chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    bool closed = ch->closed;
    pthread_mutex_unlock(&ch->mu);
    return closed;
}

size_t chan_len(struct chan *ch)
{
    pthread_mutex_lock(&ch->mu);
    size_t len = ch->len;
    pthread_mutex_unlock(&ch->mu);
    return len;
}

size_t chan_cap(const struct chan *ch)
{
    return ch->cap;
}
