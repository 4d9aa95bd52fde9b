/*
 * ctx: a tree of cancellation tokens.
 *
 * DESIGN: the cancelled state is one atomic int per context, so ctx_done is
 * a load; everything else (waiters, the children list) sits behind a
 * per-context mutex. Cancellation is pushed down eagerly: ctx_cancel marks
 * the context and walks its children, so a child never has to look up its
 * ancestors. Deadlines are the exception: a child copies the earliest
 * deadline of its ancestors when created, and each context notices its own
 * passing lazily (ctx_done compares the clock), so no timer thread is needed
 * and the answer is the same whichever context of the tree notices first.
 *
 * Lock order: a parent's mutex before a child's. cancel_with holds a
 * context's mutex while it cancels each child (locking the child), and
 * ctx_destroy takes its own mutex (through the cancel) and releases it
 * before taking the parent's to unlink itself, so the order is never
 * reversed. A child cannot be freed while linked into its parent's list,
 * because unlinking needs the parent's mutex, which the walk holds.
 *
 * Reference counts: one for the owner, one per linked child. A context
 * outlives its owner's destroy while children still point at it, so they
 * can always unlink themselves.
 */
#include "ctx.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct ctx {
    atomic_int err;       /* enum ctx_err; set once, under mu */
    atomic_int refs;      /* owner + linked children */
    deadline_t deadline;  /* effective: min(own, parent's); immutable */
    struct ctx *parent;   /* immutable; NULL for a root */
    pthread_mutex_t mu;   /* guards children, wakes waiters */
    pthread_cond_t cond;  /* broadcast on cancel */
    struct ctx *children; /* first child; guarded by mu */
    struct ctx *prev;     /* siblings; guarded by parent->mu */
    struct ctx *next;
    bool destroyed; /* the owner called ctx_destroy (debug check) */
};

const char *ctx_err_str(enum ctx_err err)
{
    switch (err) {
    case CTX_ERR_NONE:
        return "none";
    case CTX_ERR_CANCELED:
        return "canceled";
    case CTX_ERR_DEADLINE_EXCEEDED:
        return "deadline exceeded";
    }
    return "unknown";
}

static void ctx_unref(struct ctx *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    assert(c->children == NULL);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Sets ERR on C and its descendants unless already set; wakes waiters.
 * Takes C->mu, then each child's (parent before child, see DESIGN). */
static void cancel_with(struct ctx *c, enum ctx_err err)
{
    pthread_mutex_lock(&c->mu);
    if (atomic_load_explicit(&c->err, memory_order_relaxed) == CTX_ERR_NONE) {
        atomic_store_explicit(&c->err, (int)err, memory_order_release);
        pthread_cond_broadcast(&c->cond);
        for (struct ctx *k = c->children; k != NULL; k = k->next)
            cancel_with(k, err);
    }
    pthread_mutex_unlock(&c->mu);
}

struct ctx *ctx_new_deadline(struct ctx *parent, deadline_t deadline)
{
    struct ctx *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (pthread_mutex_init(&c->mu, NULL) != 0)
        goto err;
    if (deadline_cond_init(&c->cond) != 0)
        goto err_mu;
    atomic_init(&c->err, CTX_ERR_NONE);
    atomic_init(&c->refs, 1);
    c->deadline = deadline;
    if (parent == NULL)
        return c;

    assert(!parent->destroyed);
    c->deadline = deadline_min(deadline, parent->deadline);
    c->parent = parent;
    atomic_fetch_add_explicit(&parent->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&parent->mu);
    /* Under the parent's mutex, so a concurrent cancel either sees this
     * child in the list or has already set the error copied here. */
    atomic_init(&c->err, atomic_load_explicit(&parent->err, memory_order_relaxed));
    c->next = parent->children;
    if (parent->children != NULL)
        parent->children->prev = c;
    parent->children = c;
    pthread_mutex_unlock(&parent->mu);
    return c;

err_mu:
    pthread_mutex_destroy(&c->mu);
err:
    free(c);
    return NULL;
}

struct ctx *ctx_new(struct ctx *parent)
{
    return ctx_new_deadline(parent, DEADLINE_FOREVER);
}

void ctx_cancel(struct ctx *ctx)
{
    cancel_with(ctx, CTX_ERR_CANCELED);
}

enum ctx_err ctx_err(struct ctx *ctx)
{
    if (ctx == NULL)
        return CTX_ERR_NONE;
    int err = atomic_load_explicit(&ctx->err, memory_order_acquire);
    if (err != CTX_ERR_NONE)
        return (enum ctx_err)err;
    if (ctx->deadline == DEADLINE_FOREVER || deadline_now() < ctx->deadline)
        return CTX_ERR_NONE;
    /* The deadline passed and nobody has recorded it yet: record it (and
     * wake waiters) so the error sticks even if a cancel comes later. */
    cancel_with(ctx, CTX_ERR_DEADLINE_EXCEEDED);
    return (enum ctx_err)atomic_load_explicit(&ctx->err, memory_order_acquire);
}

bool ctx_done(struct ctx *ctx)
{
    return ctx_err(ctx) != CTX_ERR_NONE;
}

bool ctx_wait(struct ctx *ctx, deadline_t deadline)
{
    assert(ctx != NULL);
    /* Sleeping no later than the context's own deadline is what makes
     * deadline expiry wake waiters without a timer thread. */
    deadline_t until = deadline_min(deadline, ctx->deadline);
    pthread_mutex_lock(&ctx->mu);
    while (atomic_load_explicit(&ctx->err, memory_order_relaxed) == CTX_ERR_NONE) {
        if (deadline_cond_wait(&ctx->cond, &ctx->mu, until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&ctx->mu);
    return ctx_done(ctx);
}

deadline_t ctx_deadline(const struct ctx *ctx)
{
    return ctx == NULL ? DEADLINE_FOREVER : ctx->deadline;
}

void ctx_destroy(struct ctx *ctx)
{
    if (ctx == NULL)
        return;
    assert(!ctx->destroyed);
    ctx->destroyed = true;
    cancel_with(ctx, CTX_ERR_CANCELED);

    struct ctx *parent = ctx->parent;
    if (parent != NULL) {
        pthread_mutex_lock(&parent->mu);
        if (ctx->prev != NULL)
            ctx->prev->next = ctx->next;
        else
            parent->children = ctx->next;
        if (ctx->next != NULL)
            ctx->next->prev = ctx->prev;
        ctx->prev = NULL;
        ctx->next = NULL;
        pthread_mutex_unlock(&parent->mu);
    }
    /* Our children (if any) still hold references on us, so this frees
     * us only if none is left; the reference we held on the parent goes
     * with the link we just removed. */
    ctx_unref(ctx);
    if (parent != NULL)
        ctx_unref(parent);
}
