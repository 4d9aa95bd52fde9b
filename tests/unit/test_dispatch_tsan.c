/*
 * The worker's dispatch under concurrency (issue 7, item 6; run under
 * ThreadSanitizer through the "kit" label): a poll thread tracks offsets
 * and hands each work item to three stage threads (analysis, store,
 * publish) over bounded channels, each stage releasing its own hold from
 * its own thread; the last release runs the sink, which finishes the
 * offset; a commit thread polls offsets_committable meanwhile. Afterwards
 * every partition's committed position is past its last message, the
 * commits only moved forward, each sink ran exactly once, and the stage
 * writes to the item were visible to the sink (the release is acq_rel).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "deadline.h"
#include "offsets.h"
#include "testlib.h"
#include "work.h"

#define PARTITIONS 4
#define PER_PARTITION 3000
#define INFLIGHT 32 /* small, so OFFSETS_FULL and back-pressure happen */
#define STAGES 3
/* Partition 3's last ABANDONED items are abandoned (a revoke during the
 * run); fewer than INFLIGHT, or the partition would stay full. */
#define ABANDONED 8

struct run {
    struct offsets *offsets;
    struct chan *stage[STAGES];
    atomic_long sinks;
    atomic_long marked;
    atomic_long abandoned;
    atomic_long bad_stage_writes;
    atomic_bool poll_done;
    int64_t committed[PARTITIONS];
    long commit_regressions;
};

/* The fake message the item owns: freed by the sink, not by librdkafka. */
static void sink(void *arg, struct work *w)
{
    struct run *r = arg;
    atomic_fetch_add(&r->sinks, 1);
    /* Stage writes made before their releases must be visible here. */
    if (w->revision != w->offset || w->nalerts != 1 || !w->store_row)
        atomic_fetch_add(&r->bad_stage_writes, 1);
    if (atomic_load(&w->abandoned)) {
        atomic_fetch_add(&r->abandoned, 1);
    } else if (offsets_done(r->offsets, w->partition, w->offset, w->epoch)) {
        atomic_fetch_add(&r->marked, 1);
    }
    free(w->rkm);
    w->rkm = NULL;
    work_free(w);
}

struct stage_arg {
    struct run *run;
    int index;
};

static void *stage_main(void *p)
{
    struct stage_arg *a = p;
    void *item;
    while (chan_recv(a->run->stage[a->index], &item, DEADLINE_FOREVER) == CHAN_OK) {
        struct work *w = item;
        /* Each stage writes its own field, as analysis, store and publish
         * do on the real item. */
        if (a->index == 0)
            w->revision = w->offset;
        else if (a->index == 1)
            w->store_row = true;
        else
            w->nalerts = 1;
        if (a->index == 2 && w->partition == 3 &&
            w->offset >= PER_PARTITION - ABANDONED)
            work_abandon(w);
        work_release(w);
    }
    return NULL;
}

static void *poll_main(void *p)
{
    struct run *r = p;
    for (int64_t off = 0; off < PER_PARTITION; off++) {
        for (int32_t part = 0; part < PARTITIONS; part++) {
            rd_kafka_message_t *rkm = calloc(1, sizeof *rkm);
            if (rkm == NULL)
                abort();
            rkm->partition = part;
            rkm->offset = off;
            struct work *w = work_new(rkm, sink, r);
            if (w == NULL)
                abort();
            /* A full partition is paused in the worker; here the poll
             * thread waits for the stages to finish some. */
            while (offsets_track(r->offsets, part, off, &w->epoch) == OFFSETS_FULL)
                sched_yield();
            w->tracked = true;
            for (int s = 0; s < STAGES; s++)
                work_hold(w);
            for (int s = 0; s < STAGES; s++)
                if (chan_send(r->stage[s], w, DEADLINE_FOREVER) != CHAN_OK)
                    abort();
            work_release(w); /* the poll thread's own hold */
        }
    }
    atomic_store(&r->poll_done, true);
    return NULL;
}

static void commit_once(struct run *r)
{
    for (int32_t p = 0; p < PARTITIONS; p++) {
        int64_t off = offsets_committable(r->offsets, p);
        if (off < 0)
            continue;
        if (off <= r->committed[p])
            r->commit_regressions++;
        r->committed[p] = off;
    }
}

static void *commit_main(void *p)
{
    struct run *r = p;
    while (!atomic_load(&r->poll_done))
        commit_once(r);
    return NULL;
}

static bool all_sinks_ran(void *p)
{
    struct run *r = p;
    return atomic_load(&r->sinks) == (long)PARTITIONS * PER_PARTITION;
}

static void test_dispatch(void)
{
    struct run r;
    memset(&r, 0, sizeof r);
    atomic_init(&r.sinks, 0);
    atomic_init(&r.marked, 0);
    atomic_init(&r.abandoned, 0);
    atomic_init(&r.bad_stage_writes, 0);
    atomic_init(&r.poll_done, false);
    for (int p = 0; p < PARTITIONS; p++)
        r.committed[p] = -1;
    r.offsets = offsets_new(PARTITIONS, INFLIGHT);
    CHECK(r.offsets != NULL);
    for (int s = 0; s < STAGES; s++) {
        r.stage[s] = chan_new(16);
        CHECK(r.stage[s] != NULL);
    }

    pthread_t stages[STAGES], poller, committer;
    struct stage_arg args[STAGES];
    for (int s = 0; s < STAGES; s++) {
        args[s] = (struct stage_arg){&r, s};
        CHECK_EQ_INT(pthread_create(&stages[s], NULL, stage_main, &args[s]), 0);
    }
    CHECK_EQ_INT(pthread_create(&committer, NULL, commit_main, &r), 0);
    CHECK_EQ_INT(pthread_create(&poller, NULL, poll_main, &r), 0);
    pthread_join(poller, NULL);
    pthread_join(committer, NULL);
    for (int s = 0; s < STAGES; s++)
        chan_close(r.stage[s]);
    for (int s = 0; s < STAGES; s++)
        pthread_join(stages[s], NULL);
    CHECK(testlib_wait(all_sinks_ran, &r, 5));
    commit_once(&r);

    long abandoned = ABANDONED;
    CHECK_EQ_INT(atomic_load(&r.sinks), (long)PARTITIONS * PER_PARTITION);
    CHECK_EQ_INT(atomic_load(&r.abandoned), abandoned);
    CHECK_EQ_INT(atomic_load(&r.marked), (long)PARTITIONS * PER_PARTITION - abandoned);
    CHECK_EQ_INT(atomic_load(&r.bad_stage_writes), 0);
    CHECK_EQ_INT(r.commit_regressions, 0);
    for (int32_t p = 0; p < 3; p++) {
        CHECK_EQ_INT(r.committed[p], PER_PARTITION);
        CHECK_EQ_INT(offsets_inflight(r.offsets, p), 0);
    }
    /* Partition 3 stops before its first abandoned message: those are
     * consumed again after the rebalance. */
    CHECK_EQ_INT(r.committed[3], PER_PARTITION - ABANDONED);
    CHECK_EQ_INT(offsets_inflight(r.offsets, 3), abandoned);
    offsets_forget(r.offsets, 3);
    CHECK_EQ_INT(offsets_inflight(r.offsets, 3), 0);

    for (int s = 0; s < STAGES; s++)
        chan_destroy(r.stage[s]);
    offsets_destroy(r.offsets);
}

int main(void)
{
    test_dispatch();
    return testlib_done();
}
