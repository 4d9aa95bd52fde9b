#include "work.h"

#include <stdlib.h>

#include "kafka.h"

struct work *work_new(rd_kafka_message_t *rkm, work_sink_fn sink, void *sink_arg)
{
    struct work *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->rkm = rkm;
    w->partition = rkm->partition;
    w->offset = rkm->offset;
    w->received_ms = kafka_now_ms();
    atomic_init(&w->holds, 1);
    atomic_init(&w->abandoned, false);
    w->sink = sink;
    w->sink_arg = sink_arg;
    return w;
}

void work_hold(struct work *w)
{
    atomic_fetch_add_explicit(&w->holds, 1, memory_order_relaxed);
}

void work_release(struct work *w)
{
    /* acq_rel: every stage's writes to W happen-before the sink reads them. */
    if (atomic_fetch_sub_explicit(&w->holds, 1, memory_order_acq_rel) == 1)
        w->sink(w->sink_arg, w);
}

void work_release_cb(void *w, rd_kafka_resp_err_t err)
{
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        work_abandon(w);
    work_release(w);
}

void work_abandon(struct work *w)
{
    atomic_store(&w->abandoned, true);
}

void work_free(struct work *w)
{
    if (w == NULL)
        return;
    if (w->rkm != NULL)
        rd_kafka_message_destroy(w->rkm);
    free(w->alerts);
    free(w);
}
