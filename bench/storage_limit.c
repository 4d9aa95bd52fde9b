/*
 * bench/storage_limit: PostgreSQL's ceiling for vigil's own batch statement.
 *
 * Writes observation rows shaped like `vigil produce --generate`'s (the
 * same generator, hospital/trialgen.h, cleaned by consumer/clean.h, revision
 * from store.h) with store_batch.h's statement — the very code the worker's
 * store runs, not a copy — from 1, 2, 4 and 8 sessions at once, each on its
 * own connection and thread, batch after batch, and prints
 *
 *   figure storage_limit_pN ROWS rows/s     for each session count N
 *   figure storage_limit_best ROWS rows/s   the best of those
 *
 * No Kafka and no decoding: rows are made before the clock starts. Every
 * round writes new observation ids (the seed is unique to the run and each
 * round takes its own index range), so it measures inserts, not replays;
 * with --fresh the observations and alerts tables are emptied before each
 * round (a benchmark database only), so each round starts equal.
 *
 * usage: storage_limit [--sessions 1,2,4,8] [--rows N] [--batch N] [--fresh]
 *                      [--seed S]
 * Conninfo: $VIGIL_PG_CONNINFO (as scripts/services exports it).
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clean.h"
#include "pg.h"
#include "store.h"
#include "store_batch.h"
#include "trialgen.h"
#include "work.h"

struct session {
    const char *conninfo;
    struct work **items; /* this session's rows */
    size_t n;
    size_t batch;
    pthread_barrier_t *start;
    int failed;
    char err[512];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *session_run(void *arg)
{
    struct session *se = arg;
    PGconn *conn = pg_connect(se->conninfo, se->err, sizeof se->err);
    struct store_batch *b = store_batch_new("vigil.observations");
    if (conn == NULL || b == NULL ||
        store_batch_prepare(conn, se->err, sizeof se->err) != STORE_WRITE_OK)
        se->failed = 1;
    pthread_barrier_wait(se->start);
    for (size_t i = 0; !se->failed && i < se->n; i += se->batch) {
        size_t k = se->n - i < se->batch ? se->n - i : se->batch;
        size_t nalerts;
        if (store_batch_write(b, conn, se->items + i, k, &nalerts, se->err, sizeof se->err) !=
            STORE_WRITE_OK)
            se->failed = 1;
    }
    store_batch_destroy(b);
    PQfinish(conn);
    return NULL;
}

static int truncate_tables(const char *conninfo, char *err, size_t errsz)
{
    PGconn *c = pg_connect(conninfo, err, errsz);
    if (c == NULL)
        return -1;
    int rc = pg_command(c, "TRUNCATE observations, alerts CASCADE", 0, NULL, err, errsz);
    PQfinish(c);
    return rc;
}

/* One round: N sessions share ROWS rows; returns rows/s or -1. */
static double round_run(const char *conninfo, struct work **items, size_t rows, int nsess,
                        size_t batch)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nsess + 1);
    struct session *se = calloc((size_t)nsess, sizeof *se);
    pthread_t *th = calloc((size_t)nsess, sizeof *th);
    size_t per = rows / (size_t)nsess;
    for (int i = 0; i < nsess; i++) {
        se[i] = (struct session){conninfo, items + (size_t)i * per, per, batch, &start, 0, ""};
        pthread_create(&th[i], NULL, session_run, &se[i]);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    int failed = 0;
    for (int i = 0; i < nsess; i++) {
        pthread_join(th[i], NULL);
        if (se[i].failed) {
            fprintf(stderr, "storage_limit: session %d: %s\n", i, se[i].err);
            failed = 1;
        }
    }
    double dt = now_s() - t0;
    pthread_barrier_destroy(&start);
    free(se);
    free(th);
    return failed ? -1 : (double)(per * (size_t)nsess) / dt;
}

int main(int argc, char **argv)
{
    const char *sessions = "1,2,4,8";
    size_t rows = 200000, batch = 1000;
    int fresh = 0;
    uint64_t seed = (uint64_t)time(NULL) * 1000003u;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sessions") == 0 && i + 1 < argc)
            sessions = argv[++i];
        else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc)
            rows = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--fresh") == 0)
            fresh = 1;
        else {
            fprintf(stderr, "usage: storage_limit [--sessions 1,2,4,8] [--rows N] [--batch N] "
                            "[--fresh] [--seed S]\n");
            return 2;
        }
    }
    if (rows < 1 || batch < 1) {
        fprintf(stderr, "storage_limit: --rows and --batch must be positive\n");
        return 2;
    }
    const char *conninfo = getenv("VIGIL_PG_CONNINFO");
    if (conninfo == NULL)
        conninfo = "";

    /* The generator's trial as bench/worker produces it. */
    struct trialgen g;
    trialgen_init(&g);
    g.seed = seed;
    g.studies = 4;
    g.sites_per_study = 10;
    g.subjects_per_site = 50;
    struct work *pool = calloc(rows, sizeof *pool);
    struct work **items = calloc(rows, sizeof *items);
    if (pool == NULL || items == NULL) {
        fprintf(stderr, "storage_limit: out of memory\n");
        return 1;
    }

    double best = 0;
    uint64_t base = 0;
    char err[512];
    for (const char *p = sessions; *p != '\0';) {
        int n = (int)strtol(p, (char **)&p, 10);
        if (*p == ',')
            p++;
        if (n < 1)
            continue;
        /* New ids every round: record indexes never reused in this run. */
        for (size_t i = 0; i < rows; i++) {
            struct work *w = &pool[i];
            memset(w, 0, sizeof *w);
            trialgen_get(&g, base + i, &w->obs);
            clean_observation(&w->obs, &w->clean);
            w->store_row = true;
            w->revision = store_revision(&w->obs);
            w->partition = (int32_t)(i % 12);
            w->offset = (int64_t)(base + i);
            items[i] = w;
        }
        base += rows;
        if (fresh && truncate_tables(conninfo, err, sizeof err) != 0) {
            fprintf(stderr, "storage_limit: %s\n", err);
            return 1;
        }
        double r = round_run(conninfo, items, rows, n, batch);
        if (r < 0)
            return 1;
        printf("figure storage_limit_p%d %.0f rows/s\n", n, r);
        fflush(stdout);
        if (r > best)
            best = r;
    }
    printf("figure storage_limit_best %.0f rows/s\n", best);
    free(items);
    free(pool);
    return 0;
}
