/*
 * coalesce: identical reads share one execution (coalesce.h).
 *
 * The flights in progress are few (at most one per PostgreSQL connection
 * of the pool), so a list under one mutex, compared by hash first, is all
 * the table needs; one condition variable wakes the waiters of every
 * flight, and each checks its own.
 */
#include "coalesce.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "hash.h"
#include "pg.h"

struct coalesce_flight {
    struct coalesce_flight *next;
    uint64_t hash;
    char *key; /* the statement and its parameters, see key_build */
    size_t key_len;
    int64_t sent_ns; /* taken before the statement was sent */
    bool done;
    PGresult *res; /* NULL when done and failed */
    int refs;
};

struct coalesce {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct coalesce_flight *flights; /* in progress, newest first */
    int waiting;                     /* requests in pthread_cond_wait below */
    struct metric *coalesced;
};

struct coalesce *coalesce_new(struct metrics *m)
{
    struct coalesce *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        return NULL;
    }
    if (pthread_cond_init(&c->cv, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    if (m != NULL)
        c->coalesced = metrics_counter(m, "vigil_console_coalesced_total",
                                       "Statements answered by an identical one another request sent after it arrived",
                                       NULL);
    return c;
}

static void flight_free(struct coalesce_flight *f)
{
    PQclear(f->res);
    free(f->key);
    free(f);
}

void coalesce_destroy(struct coalesce *c)
{
    if (c == NULL)
        return;
    while (c->flights != NULL) {
        struct coalesce_flight *f = c->flights;
        c->flights = f->next;
        flight_free(f);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* SQL, then each parameter as a tag byte (0 null, 1 text) and its text, each
 * ended by a NUL: distinct statements and parameter lists give distinct
 * keys (a text cannot hold a NUL). */
static char *key_build(const char *sql, int nparams, const char *const *params, size_t *len)
{
    size_t n = strlen(sql) + 1;
    for (int i = 0; i < nparams; i++)
        n += 1 + (params[i] != NULL ? strlen(params[i]) + 1 : 0);
    char *k = malloc(n);
    if (k == NULL)
        return NULL;
    size_t at = strlen(sql) + 1;
    memcpy(k, sql, at);
    for (int i = 0; i < nparams; i++) {
        k[at++] = params[i] != NULL;
        if (params[i] != NULL) {
            size_t l = strlen(params[i]) + 1;
            memcpy(k + at, params[i], l);
            at += l;
        }
    }
    *len = n;
    return k;
}

static void unlink_flight(struct coalesce *c, struct coalesce_flight *f)
{
    for (struct coalesce_flight **p = &c->flights; *p != NULL; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            return;
        }
}

/* Drops one reference; the caller holds c->mu. */
static void flight_unref(struct coalesce_flight *f)
{
    if (--f->refs == 0 && f->done)
        flight_free(f);
}

/* Runs the statement as F's owner, publishes the result and wakes the
 * waiters. F holds the caller's reference. */
static const PGresult *flight_run(struct coalesce *c, struct coalesce_flight *f, PGconn *conn,
                                  const char *sql, int nparams, const char *const *params,
                                  struct coalesce_ref *ref, char *errstr, size_t errstr_size)
{
    PGresult *r = pg_query_prepared(conn, sql, nparams, params, errstr, errstr_size);
    pthread_mutex_lock(&c->mu);
    f->res = r;
    f->done = true;
    unlink_flight(c, f);
    pthread_cond_broadcast(&c->cv);
    if (r == NULL) {
        flight_unref(f);
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    pthread_mutex_unlock(&c->mu);
    ref->flight = f;
    return r;
}

const PGresult *coalesce_query(struct coalesce *c, PGconn *conn, const char *sql, int nparams,
                               const char *const *params, int64_t arrived_ns,
                               struct coalesce_ref *ref, char *errstr, size_t errstr_size)
{
    ref->flight = NULL;
    size_t klen;
    char *key = key_build(sql, nparams, params, &klen);
    struct coalesce_flight *f = key != NULL ? calloc(1, sizeof *f) : NULL;
    if (f == NULL) {
        free(key);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    f->key = key;
    f->key_len = klen;
    f->hash = hash_bytes(key, klen, HASH_SEED);
    f->refs = 1;

    pthread_mutex_lock(&c->mu);
    struct coalesce_flight *join = NULL;
    for (struct coalesce_flight *g = c->flights; g != NULL; g = g->next)
        if (!g->done && g->sent_ns >= arrived_ns && g->hash == f->hash && g->key_len == klen &&
            memcmp(g->key, key, klen) == 0) {
            join = g;
            break;
        }
    if (join != NULL) {
        join->refs++;
        c->waiting++;
        while (!join->done)
            pthread_cond_wait(&c->cv, &c->mu);
        c->waiting--;
        if (join->res != NULL) {
            pthread_mutex_unlock(&c->mu);
            metric_add(c->coalesced, 1);
            flight_free(f);
            ref->flight = join;
            return join->res;
        }
        /* its statement failed: run ours, unshared (a newer flight may
         * already be on its way, but one retry alone is simplest) */
        flight_unref(join);
        f->sent_ns = deadline_now();
        pthread_mutex_unlock(&c->mu);
        return flight_run(c, f, conn, sql, nparams, params, ref, errstr, errstr_size);
    }
    /* Timed under the lock: whoever arrives later cannot join, whoever
     * arrived earlier may, and the statement's snapshot is taken after. */
    f->sent_ns = deadline_now();
    f->next = c->flights;
    c->flights = f;
    pthread_mutex_unlock(&c->mu);
    return flight_run(c, f, conn, sql, nparams, params, ref, errstr, errstr_size);
}

void coalesce_release(struct coalesce *c, struct coalesce_ref *ref)
{
    if (ref->flight == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    flight_unref(ref->flight);
    pthread_mutex_unlock(&c->mu);
    ref->flight = NULL;
}

int coalesce_waiting(struct coalesce *c)
{
    pthread_mutex_lock(&c->mu);
    int n = c->waiting;
    pthread_mutex_unlock(&c->mu);
    return n;
}
