/*
 * analyse: the worker's analysis threads. Each owns a bounded input queue
 * and the state of the subjects dispatched to it (dispatch is by message
 * key, study_id/subject_id, so one subject's results are analysed in order
 * by one thread and its state needs no lock).
 *
 * For each work item: decode (a poison message is dead-lettered), check the
 * key matches the record, clean (codes, units, plausibility, impossible
 * times: a data-quality finding raises no alert), load the subject's state
 * from PostgreSQL the first time the subject is seen in this assignment
 * generation, reconcile the subject's standing alerts with the result on
 * the rules snapshot (reconcile.h: a late, amended or withdrawn result
 * re-judges what it reaches, raising what now holds and withdrawing what
 * no longer does), then publish the alerts and hand the row to the store.
 * The item is released when both are durable.
 *
 * Thread-safety: analyser_try_put from the poll thread; the rest from the
 * worker's owner thread.
 */
#ifndef VIGIL_ANALYSE_H
#define VIGIL_ANALYSE_H

#include <stdatomic.h>
#include <stddef.h>

#include "chan.h"
#include "clean.h"
#include "codec.h"
#include "ctx.h"
#include "deadletter.h"
#include "metrics.h"
#include "publish.h"
#include "snapshot.h"
#include "store.h"
#include "work.h"

/* What every analysis thread shares; all borrowed and outliving them. */
struct analyse_env {
    struct codec *codec;
    struct snapshot *rules; /* current struct rules * */
    struct publisher *pub;
    struct store *store;
    struct metrics *metrics;
    const char *source_topic;
    const char *alerts_topic;
    struct deadletter *dlq; /* poison messages go here (dlq.h) */
    const char *conninfo;   /* for loading subject state */
    atomic_int *assign_gen; /* bumped on every assignment: states reload */
    struct ctx *ctx;        /* cancelled when the worker must stop waiting */
    size_t max_subjects;    /* per thread; least recently used evicted */
    size_t max_subject_bytes; /* per thread, their states' memory; 0: no limit */
    struct clean_time_limits time_limits; /* impossible times (clean.h) */
};

struct analyser;

/* Starts one analysis thread with a queue of QUEUE_CAP items. Returns NULL
 * with errstr on failure. */
struct analyser *analyser_new(const struct analyse_env *env, int index, size_t queue_cap,
                              char *errstr, size_t errstr_size);

/* Queues W (the caller's hold passes to the analyser) without blocking.
 * Returns CHAN_OK, CHAN_FULL or CHAN_CLOSED (then the hold is still the
 * caller's). */
enum chan_status analyser_try_put(struct analyser *a, struct work *w);

/* Queues W like analyser_try_put, but waits for room until DEADLINE:
 * CHAN_OK, CHAN_TIMEOUT or CHAN_CLOSED (then the hold is still the
 * caller's). */
enum chan_status analyser_put(struct analyser *a, struct work *w, deadline_t deadline);

/* Items waiting in the queue. */
size_t analyser_depth(struct analyser *a);

/* Closes the queue, lets the thread finish what is queued, joins it and
 * frees the analyser. NULL is a no-op. */
void analyser_close(struct analyser *a);

#endif
