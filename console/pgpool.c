#include "pgpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"

struct pgpool {
    const char *conninfo;
    int size;
    int idle_n;   /* open connections waiting in idle[] */
    int out;      /* connections (or slots) borrowed */
    PGconn **idle;
    pthread_mutex_t mu;
    pthread_cond_t freed;
};

struct pgpool *pgpool_new(const char *conninfo, int size)
{
    if (size < 1)
        size = 1;
    struct pgpool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->idle = calloc((size_t)size, sizeof *p->idle);
    if (p->idle == NULL) {
        free(p);
        return NULL;
    }
    p->conninfo = conninfo;
    p->size = size;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->freed, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

void pgpool_destroy(struct pgpool *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->idle_n; i++)
        PQfinish(p->idle[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->freed);
    free(p->idle);
    free(p);
}

PGconn *pgpool_get(struct pgpool *p, int wait_ms, char *errstr, size_t errstr_size)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&p->mu);
    while (p->idle_n == 0 && p->out >= p->size) {
        if (pthread_cond_timedwait(&p->freed, &p->mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            snprintf(errstr, errstr_size, "every PostgreSQL connection is busy");
            return NULL;
        }
    }
    PGconn *c = p->idle_n > 0 ? p->idle[--p->idle_n] : NULL;
    p->out++;
    pthread_mutex_unlock(&p->mu);
    if (c != NULL)
        return c;
    /* connect outside the lock: it may take connect_timeout */
    c = pg_connect(p->conninfo, errstr, errstr_size);
    /* The lists' generic plans read an index in order and stop at a page;
     * their estimates for "study_id = ANY ($1)" (a whole table) could tempt
     * the planner into parallel workers, which cost a page far more than
     * they save. */
    if (c != NULL && (pg_command(c, "SET plan_cache_mode = force_generic_plan", 0, NULL, errstr,
                                 errstr_size) != 0 ||
                      pg_command(c, "SET max_parallel_workers_per_gather = 0", 0, NULL, errstr,
                                 errstr_size) != 0)) {
        PQfinish(c);
        c = NULL;
    }
    if (c == NULL) {
        pthread_mutex_lock(&p->mu);
        p->out--;
        pthread_cond_signal(&p->freed);
        pthread_mutex_unlock(&p->mu);
    }
    return c;
}

void pgpool_put(struct pgpool *p, PGconn *c, bool broken)
{
    if (c != NULL && !broken && PQstatus(c) == CONNECTION_OK &&
        PQtransactionStatus(c) != PQTRANS_IDLE) {
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
    }
    if (c != NULL && (broken || PQstatus(c) != CONNECTION_OK ||
                      PQtransactionStatus(c) != PQTRANS_IDLE)) {
        PQfinish(c);
        c = NULL;
    }
    pthread_mutex_lock(&p->mu);
    p->out--;
    if (c != NULL)
        p->idle[p->idle_n++] = c;
    pthread_cond_signal(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

bool pgpool_ping(struct pgpool *p, char *errstr, size_t errstr_size)
{
    PGconn *c = pgpool_get(p, 1000, errstr, errstr_size);
    if (c == NULL)
        return false;
    PGresult *r = pg_query(c, "SELECT 1", 0, NULL, errstr, errstr_size);
    bool ok = r != NULL;
    PQclear(r);
    pgpool_put(p, c, !ok);
    return ok;
}
