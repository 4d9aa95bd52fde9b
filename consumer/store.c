#include "store.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "sem.h"
#include "store_batch.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A gathering writer looks at its queue this often (ns). */
#define GATHER_NAP_NS 2000000L

/* One writer: a queue, a thread, a connection. A subject's items always
 * go to the same writer (store_put hashes the message key), so they are
 * committed in the order the subject's analysis thread handed them over:
 * an amendment after what it amends, a retraction after the alert it
 * withdraws. Writers of different subjects commit concurrently, and their
 * commits share WAL flushes (PostgreSQL's group commit). */
struct writer {
    struct store *s;
    int index;
    struct chan *in;
    pthread_t thread;
    bool started;
    PGconn *conn;
    struct store_batch *batch;
    atomic_bool healthy;
};

struct store {
    char *conninfo;
    struct store_config cfg;
    struct writer *writers;
    int nwriters;
    /* queue_cap permits: one per item queued on any writer. A shared
     * budget, not a share each: a writer slowed by a long commit queues
     * more while the others keep going, instead of blocking every
     * analysis thread as soon as its own share is full. */
    struct vsem *room;
    deadline_t give_up; /* DEADLINE_FOREVER until store_close sets it */
    pthread_mutex_t close_lock;

    struct metric *m_batch_seconds;
    struct metric *m_rows;
    struct metric *m_alerts;
    struct metric *m_failures;
    struct metric *m_rejected;
};

/* A different seed from the worker's dispatch, so that with K analysis
 * threads and N writers a thread's subjects still spread over every
 * writer. */
#define WRITER_SEED 0x9e3779b97f4a7c15ull

static struct writer *writer_for(struct store *s, const struct work *w)
{
    uint64_t h;
    if (w->rkm != NULL && w->rkm->key != NULL) {
        h = hash_bytes(w->rkm->key, w->rkm->key_len, WRITER_SEED);
    } else {
        /* no message key (tests, benchmarks): the key it would have been */
        h = hash_bytes(w->obs.study_id, strlen(w->obs.study_id), WRITER_SEED);
        h = hash_bytes("/", 1, h);
        h = hash_bytes(w->obs.subject_id, strlen(w->obs.subject_id), h);
    }
    return &s->writers[h % (uint64_t)s->nwriters];
}

static enum store_write write_batch(struct writer *wr, struct work **items, size_t n, char *err,
                                    size_t errsz)
{
    struct store *s = wr->s;
    if (wr->conn == NULL || PQstatus(wr->conn) != CONNECTION_OK) {
        PQfinish(wr->conn);
        wr->conn = pg_connect(s->conninfo, err, errsz);
        if (wr->conn == NULL)
            return STORE_WRITE_TRANSIENT;
        if (store_batch_prepare(wr->conn, err, errsz) != STORE_WRITE_OK)
            return STORE_WRITE_TRANSIENT;
    }
    size_t nalerts = 0;
    enum store_write r = store_batch_write(wr->batch, wr->conn, items, n, &nalerts, err, errsz);
    if (r == STORE_WRITE_OK) {
        metric_add(s->m_rows, n);
        metric_add(s->m_alerts, nalerts);
    }
    return r;
}

static void finish_all(struct work **items, size_t n, bool abandon)
{
    for (size_t i = 0; i < n; i++) {
        if (abandon)
            work_abandon(items[i]);
        work_release(items[i]);
    }
}

/* Writes ITEMS until committed, retrying transient failures with backoff;
 * returns false if the store is closing past its deadline (items then
 * abandoned by the caller). */
static bool write_until_done(struct writer *wr, struct work **items, size_t n)
{
    struct store *s = wr->s;
    char err[512];
    int backoff = BACKOFF_MIN_MS;
    for (;;) {
        deadline_t t0 = deadline_now();
        enum store_write r = write_batch(wr, items, n, err, sizeof err);
        if (r == STORE_WRITE_OK) {
            metric_observe(s->m_batch_seconds, (double)(deadline_now() - t0) / 1e9);
            if (!atomic_load(&wr->healthy))
                log_msg(LOG_INFO, "store", "PostgreSQL writes succeed again (writer %d)",
                        wr->index);
            atomic_store(&wr->healthy, true);
            finish_all(items, n, false);
            return true;
        }
        if (r == STORE_WRITE_DATA) {
            if (n == 1) {
                metric_add(s->m_rejected, 1);
                s->cfg.reject(s->cfg.reject_arg, items[0], err);
                return true;
            }
            log_msg(LOG_WARN, "store", "batch of %zu refused (%s): writing row by row", n, err);
            for (size_t i = 0; i < n; i++)
                if (!write_until_done(wr, &items[i], 1)) {
                    finish_all(items + i + 1, n - i - 1, true);
                    return false;
                }
            return true;
        }
        metric_add(s->m_failures, 1);
        if (atomic_load(&wr->healthy))
            log_msg(LOG_ERROR, "store", "could not write to PostgreSQL, retrying: %s", err);
        atomic_store(&wr->healthy, false);
        PQfinish(wr->conn);
        wr->conn = NULL;
        pthread_mutex_lock(&s->close_lock);
        deadline_t give_up = s->give_up;
        pthread_mutex_unlock(&s->close_lock);
        deadline_t wake = deadline_after_ms(backoff);
        if (give_up < wake) {
            finish_all(items, n, true);
            return false;
        }
        struct timespec ts = {backoff / 1000, (long)(backoff % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static void *run(void *arg)
{
    struct writer *wr = arg;
    struct store *s = wr->s;
    size_t cap = (size_t)s->cfg.batch_rows;
    struct work **batch = calloc(cap, sizeof *batch);
    bool give_up = false;
    for (;;) {
        void *item;
        enum chan_status st = chan_recv(wr->in, &item, DEADLINE_FOREVER);
        if (st == CHAN_END)
            break;
        vsem_release(s->room);
        if (batch == NULL) { /* out of memory at start: nothing can be written */
            work_abandon(item);
            work_release(item);
            continue;
        }
        size_t n = 0;
        batch[n++] = item;
        /* Gather until the batch is full or batch_ms after its first item.
         * The queue is drained in turns with short sleeps in between, not
         * waited on item by item: a writer blocked on the queue would be
         * woken (a context switch) by every store_put. */
        deadline_t flush_at = deadline_after_ms(s->cfg.batch_ms);
        for (;;) {
            while (n < cap && (st = chan_try_recv(wr->in, &item)) == CHAN_OK) {
                vsem_release(s->room);
                batch[n++] = item;
            }
            if (n == cap || st == CHAN_END)
                break;
            int64_t left_ns = flush_at - deadline_now();
            if (left_ns <= 0)
                break;
            struct timespec ts = {0, left_ns < GATHER_NAP_NS ? (long)left_ns : GATHER_NAP_NS};
            nanosleep(&ts, NULL);
        }
        if (give_up) {
            finish_all(batch, n, true);
            continue;
        }
        if (!write_until_done(wr, batch, n))
            give_up = true; /* closing past the deadline: abandon the rest */
    }
    free(batch);
    return NULL;
}

static void writers_destroy(struct store *s)
{
    for (int i = 0; i < s->nwriters; i++) {
        struct writer *wr = &s->writers[i];
        if (wr->in != NULL)
            chan_close(wr->in);
    }
    for (int i = 0; i < s->nwriters; i++) {
        struct writer *wr = &s->writers[i];
        if (wr->started)
            pthread_join(wr->thread, NULL);
        PQfinish(wr->conn);
        chan_destroy(wr->in);
        store_batch_destroy(wr->batch);
    }
    free(s->writers);
    s->writers = NULL;
}

struct store *store_new(const struct store_config *cfg, struct metrics *m, char *errstr,
                        size_t errstr_size)
{
    struct store *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto oom;
    pthread_mutex_init(&s->close_lock, NULL);
    s->cfg = *cfg;
    s->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    if (s->conninfo == NULL)
        goto oom;
    s->cfg.conninfo = NULL;
    if (s->cfg.batch_rows < 1)
        s->cfg.batch_rows = 1;
    s->nwriters = s->cfg.writers < 1 ? 1 : s->cfg.writers;
    s->give_up = DEADLINE_FOREVER;
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};
    s->m_batch_seconds = metrics_histogram(m, "vigil_store_batch_seconds",
                                           "Time to write one batch to PostgreSQL", NULL, bounds,
                                           sizeof bounds / sizeof bounds[0]);
    s->m_rows = metrics_counter(m, "vigil_stored_observations_total",
                                "Observations committed to PostgreSQL (replays included)", NULL);
    s->m_alerts = metrics_counter(m, "vigil_stored_alerts_total",
                                  "Alert rows committed to PostgreSQL (replays included)", NULL);
    s->m_failures = metrics_counter(m, "vigil_store_failures_total",
                                    "Batch writes that failed and were retried", NULL);
    s->m_rejected = metrics_counter(m, "vigil_store_rejected_total",
                                    "Rows PostgreSQL refused on their own merits (dead-lettered)",
                                    NULL);
    if (s->cfg.queue_cap < 1)
        s->cfg.queue_cap = 1;
    s->room = vsem_new((unsigned)s->cfg.queue_cap);
    s->writers = calloc((size_t)s->nwriters, sizeof *s->writers);
    if (s->room == NULL || s->writers == NULL)
        goto oom;
    for (int i = 0; i < s->nwriters; i++) {
        struct writer *wr = &s->writers[i];
        wr->s = s;
        wr->index = i;
        atomic_init(&wr->healthy, true);
        wr->in = chan_new(s->cfg.queue_cap); /* never full: room bounds them all */
        wr->batch = store_batch_new(s->cfg.source_topic);
        if (wr->in == NULL || wr->batch == NULL)
            goto oom;
    }
    for (int i = 0; i < s->nwriters; i++) {
        struct writer *wr = &s->writers[i];
        if (pthread_create(&wr->thread, NULL, run, wr) != 0) {
            snprintf(errstr, errstr_size, "could not start store writer thread %d", i);
            goto fail;
        }
        wr->started = true;
    }
    return s;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    if (s != NULL) {
        if (s->writers != NULL)
            writers_destroy(s);
        vsem_destroy(s->room);
        pthread_mutex_destroy(&s->close_lock);
        free(s->conninfo);
        free(s);
    }
    return NULL;
}

int store_put(struct store *s, struct work *w, struct ctx *ctx)
{
    struct writer *wr = writer_for(s, w);
    while (vsem_acquire(s->room, deadline_after_ms(100)) != VSEM_OK)
        if (chan_is_closed(wr->in) || (ctx != NULL && ctx_done(ctx)))
            return -1;
    if (chan_send(wr->in, w, DEADLINE_FOREVER) != CHAN_OK) {
        vsem_release(s->room); /* closed */
        return -1;
    }
    return 0;
}

static int status_rank(enum obs_status s)
{
    switch (s) {
    case OBS_FINAL:
        return 0;
    case OBS_AMENDED:
    case OBS_CORRECTED:
        return 1;
    default:
        return 2;
    }
}

int64_t store_revision(const struct observation *obs)
{
    return (obs->issued_ms > 0 ? obs->issued_ms : 0) * 4 + status_rank(obs->status);
}

bool store_healthy(struct store *s)
{
    for (int i = 0; i < s->nwriters; i++)
        if (!atomic_load(&s->writers[i].healthy))
            return false;
    return true;
}

size_t store_depth(struct store *s)
{
    size_t n = 0;
    for (int i = 0; i < s->nwriters; i++)
        n += chan_len(s->writers[i].in);
    return n;
}

void store_close(struct store *s, deadline_t deadline)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->close_lock);
    s->give_up = deadline;
    pthread_mutex_unlock(&s->close_lock);
    writers_destroy(s);
    vsem_destroy(s->room);
    free(s->conninfo);
    pthread_mutex_destroy(&s->close_lock);
    free(s);
}
