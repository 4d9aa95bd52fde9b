/*
 * limiter: bounded in-flight requests with a timed wait (limiter.h).
 */
#include "limiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "sem.h"

struct limiter {
    struct metrics *m;
    struct vsem *general, *heavy, *signin;
    struct metric *in_flight;
    int wait_ms;
};

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,   0.25,   0.5,   1,    2.5,   5};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct limiter *limiter_new(struct metrics *m, unsigned general, unsigned heavy, unsigned signin,
                            int wait_ms)
{
    struct limiter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->m = m;
    l->wait_ms = wait_ms;
    l->general = vsem_new_fifo(general);
    l->heavy = vsem_new_fifo(heavy);
    l->signin = vsem_new_fifo(signin);
    if (l->general == NULL || l->heavy == NULL || l->signin == NULL) {
        limiter_destroy(l);
        return NULL;
    }
    l->in_flight = metrics_gauge(m, "vigil_console_in_flight",
                                 "Console requests holding a general limiter slot", NULL);
    return l;
}

void limiter_destroy(struct limiter *l)
{
    if (l == NULL)
        return;
    vsem_destroy(l->general);
    vsem_destroy(l->heavy);
    vsem_destroy(l->signin);
    free(l);
}

static struct vsem *class_sem(struct limiter *l, enum limiter_class cls)
{
    switch (cls) {
    case LIMITER_HEAVY:
        return l->heavy;
    case LIMITER_SIGNIN:
        return l->signin;
    case LIMITER_GENERAL:
        break;
    }
    return NULL;
}

bool limiter_enter(struct limiter *l, enum limiter_class cls, const char *route,
                   struct limiter_slot *slot)
{
    char esc[160], labels[200];
    metrics_label_escape(route, esc, sizeof esc);
    snprintf(labels, sizeof labels, "route=\"%s\"", esc);
    memset(slot, 0, sizeof *slot);
    slot->l = l;
    slot->cls = cls;
    slot->start_ns = now_ns();
    slot->count = metrics_counter(l->m, "vigil_console_requests_total",
                                  "Console requests answered, by route", labels);
    slot->latency = metrics_histogram(l->m, "vigil_console_request_seconds",
                                      "Console request latency including the wait for a slot",
                                      labels, latency_bounds,
                                      sizeof latency_bounds / sizeof latency_bounds[0]);
    /* One deadline for both pools: the wait bound is the request's, not
     * per pool. */
    deadline_t d = deadline_after_ms(l->wait_ms);
    struct vsem *extra = class_sem(l, cls);
    if (extra != NULL && vsem_acquire(extra, d) != VSEM_OK)
        goto refused;
    if (vsem_acquire(l->general, d) != VSEM_OK) {
        if (extra != NULL)
            vsem_release(extra);
        goto refused;
    }
    slot->held = true;
    metric_gauge_add(l->in_flight, 1);
    return true;
refused:
    metric_add(metrics_counter(l->m, "vigil_console_rejected_total",
                               "Console requests refused with 503 by the limiter, by route", labels),
               1);
    metric_add(slot->count, 1);
    metric_observe(slot->latency, (double)(now_ns() - slot->start_ns) / 1e9);
    return false;
}

void limiter_leave(struct limiter_slot *slot)
{
    if (slot->l == NULL || !slot->held)
        return;
    struct limiter *l = slot->l;
    vsem_release(l->general);
    struct vsem *extra = class_sem(l, slot->cls);
    if (extra != NULL)
        vsem_release(extra);
    metric_gauge_add(l->in_flight, -1);
    metric_add(slot->count, 1);
    metric_observe(slot->latency, (double)(now_ns() - slot->start_ns) / 1e9);
    slot->held = false;
}

unsigned limiter_available(struct limiter *l)
{
    return vsem_available(l->general);
}
