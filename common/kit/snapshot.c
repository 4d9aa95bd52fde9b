/*
 * snapshot: a mutex-protected pointer swap with a reference count per
 * version.
 *
 * DESIGN: each published object gets a `version` record (object,
 * generation, reader count). The current version is `cur`; versions that
 * were replaced while readers still held them wait in `retired` until their
 * count falls to zero. Acquire and release are a few loads and stores under
 * the mutex, so their critical section is tens of nanoseconds; a reader
 * acquires once per message or batch, not per field, so the lock is far
 * from hot.
 *
 * Rejected: a lock-free atomic pointer with a count inside the object.
 * Between loading the pointer and incrementing its count, a publisher can
 * swap and a last release free the object -- the classic ABA/use-after-free
 * that needs hazard pointers, RCU or split reference counts to close.
 * Each of those is far more code to prove than this, for a read path that
 * is not the bottleneck. snapshot_generation stays lock-free (an atomic), so
 * the per-message "did it change?" check costs one load.
 *
 * destroy_fn runs outside the mutex: it is user code, may be slow (freeing
 * a large rules tree) and must not stall readers of the new version.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

struct version {
    void *obj;
    uint64_t gen;
    long readers; /* guarded by snapshot mu */
    struct version *next; /* in `retired` */
};

struct snapshot {
    pthread_mutex_t mu;
    struct version *cur;     /* never NULL; guarded by mu */
    struct version *retired; /* replaced, still read; guarded by mu */
    atomic_uint_fast64_t gen; /* == cur->gen; written under mu */
    snapshot_destroy_fn destroy_fn;
};

static void die(const char *what)
{
    fprintf(stderr, "vigil: snapshot misuse: %s\n", what);
    abort();
}

/* Frees V and its object; called without the mutex. */
static void version_free(struct snapshot *s, struct version *v)
{
    if (s->destroy_fn != NULL)
        s->destroy_fn(v->obj);
    free(v);
}

struct snapshot *snapshot_new(void *initial, snapshot_destroy_fn destroy_fn)
{
    if (initial == NULL)
        return NULL;
    struct snapshot *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->cur = calloc(1, sizeof *s->cur);
    if (s->cur == NULL)
        goto err;
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        goto err;
    s->cur->obj = initial;
    s->cur->gen = 1;
    atomic_init(&s->gen, 1);
    s->destroy_fn = destroy_fn;
    return s;

err:
    free(s->cur);
    free(s);
    return NULL;
}

void snapshot_destroy(struct snapshot *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    bool busy = s->cur->readers != 0 || s->retired != NULL;
    pthread_mutex_unlock(&s->mu);
    if (busy)
        die("snapshot_destroy while objects are still acquired");
    version_free(s, s->cur);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

void *snapshot_acquire(struct snapshot *s, uint64_t *generation)
{
    pthread_mutex_lock(&s->mu);
    struct version *v = s->cur;
    v->readers++;
    void *obj = v->obj;
    uint64_t gen = v->gen;
    pthread_mutex_unlock(&s->mu);
    if (generation != NULL)
        *generation = gen;
    return obj;
}

void snapshot_release(struct snapshot *s, void *obj)
{
    if (obj == NULL)
        return;
    struct version *dead = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->cur->obj == obj) {
        /* The common case: the reader is done before the next reload. */
        if (s->cur->readers <= 0)
            goto misuse;
        s->cur->readers--;
    } else {
        /* Retired versions are few (one per reload a slow reader still
         * straddles), so a list walk is short. */
        struct version **pp = &s->retired;
        while (*pp != NULL && (*pp)->obj != obj)
            pp = &(*pp)->next;
        if (*pp == NULL || (*pp)->readers <= 0)
            goto misuse;
        if (--(*pp)->readers == 0) {
            dead = *pp;
            *pp = dead->next;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (dead != NULL)
        version_free(s, dead);
    return;

misuse:
    pthread_mutex_unlock(&s->mu);
    die("snapshot_release of an object not acquired");
}

uint64_t snapshot_publish(struct snapshot *s, void *obj)
{
    if (obj == NULL)
        return 0;
    struct version *v = calloc(1, sizeof *v);
    if (v == NULL)
        return 0;
    v->obj = obj;

    struct version *dead = NULL;
    pthread_mutex_lock(&s->mu);
    struct version *old = s->cur;
    /* Read under the mutex: once it is dropped, a later publish and the
     * last release may free V. */
    uint64_t gen = old->gen + 1;
    v->gen = gen;
    s->cur = v;
    atomic_store_explicit(&s->gen, gen, memory_order_release);
    if (old->readers == 0) {
        dead = old;
    } else {
        old->next = s->retired;
        s->retired = old;
    }
    pthread_mutex_unlock(&s->mu);
    if (dead != NULL)
        version_free(s, dead);
    return gen;
}

uint64_t snapshot_generation(struct snapshot *s)
{
    return atomic_load_explicit(&s->gen, memory_order_acquire);
}
