/*
 * ctx: a cancellation token with an optional deadline and children, Go's
 * context.Context -- how shutdown, an import's cancel and request timeouts
 * reach every thread working for them.
 *
 *   ctx_new(parent)                  cancelled with its parent, or by ctx_cancel
 *   ctx_new_deadline(parent, d)      ... or when d passes
 *   ctx_cancel(ctx)                  cancel ctx and all its descendants
 *   ctx_done(ctx)                    cheap check, for hot loops
 *   ctx_wait(ctx, d)                 block until cancelled or d
 *   ctx_err(ctx)                     why: NONE, CANCELED, DEADLINE_EXCEEDED
 *   ctx_deadline(ctx)                the effective deadline (own or inherited)
 *   ctx_destroy(ctx)                 cancel (Go's `defer cancel()`) and release
 *
 * Cancellation flows down only: cancelling a context cancels its children
 * and their children, never its parent or siblings. A context whose deadline
 * passes counts as cancelled with CTX_ERR_DEADLINE_EXCEEDED; no timer thread
 * exists -- the deadline is checked lazily by ctx_done/ctx_err, and ctx_wait
 * sleeps no later than it, so waiters wake when it passes. A child's
 * deadline is never later than its parent's.
 *
 * Ownership (reference counted, so destroy order is free):
 *   - whoever calls ctx_new* owns the context and must ctx_destroy it once;
 *   - ctx_destroy cancels the context (and so its descendants: a task's
 *     context ends with the task, as with Go's `defer cancel()`), then drops
 *     the owner's reference;
 *   - a child holds a reference on its parent, so destroying a parent
 *     before its children is safe: the children are cancelled (by the
 *     parent's destroy) and stay usable until their own owners destroy them;
 *     the parent's memory goes with the last child.
 *   - other threads may use a context they do not own while its owner
 *     guarantees it lives (typically: the owner joins them -- waitgroup --
 *     before ctx_destroy).
 *
 * Thread-safety: every function except ctx_destroy may be called from any
 * thread at any time; ctx_destroy is the owner's last call on that context.
 */
#ifndef VIGIL_CTX_H
#define VIGIL_CTX_H

#include <stdbool.h>

#include "deadline.h"

struct ctx;

enum ctx_err {
    CTX_ERR_NONE = 0,          /* not cancelled (yet) */
    CTX_ERR_CANCELED,          /* ctx_cancel on it or an ancestor, or destroyed */
    CTX_ERR_DEADLINE_EXCEEDED, /* its (possibly inherited) deadline passed */
};

/* Returns "none", "canceled" or "deadline exceeded", for messages. */
const char *ctx_err_str(enum ctx_err err);

/* Returns a new context that is cancelled when PARENT is (NULL: a root, the
 * "background" context, cancelled only by ctx_cancel), inheriting PARENT's
 * deadline. If PARENT is already cancelled, so is the new context, with the
 * same error. Returns NULL if memory or pthread resources ran out (nothing
 * changed). The caller owns it (see the ownership rules above). */
struct ctx *ctx_new(struct ctx *parent);

/* As ctx_new, and also cancelled with CTX_ERR_DEADLINE_EXCEEDED once
 * DEADLINE (absolute monotonic, see deadline.h) passes; the effective
 * deadline is the earlier of DEADLINE and PARENT's. */
struct ctx *ctx_new_deadline(struct ctx *parent, deadline_t deadline);

/* Cancels CTX and every descendant with CTX_ERR_CANCELED, waking all their
 * ctx_wait callers. Idempotent: a context already cancelled (or past its
 * deadline) keeps its first error. Never touches the parent. Cannot fail. */
void ctx_cancel(struct ctx *ctx);

/* Returns true once CTX is cancelled or its deadline has passed. Cheap (one
 * atomic load, plus a monotonic clock read when a deadline is set): call it
 * in hot loops. NULL counts as a background context: never done. */
bool ctx_done(struct ctx *ctx);

/* Returns why CTX is done, or CTX_ERR_NONE. Same cost as ctx_done. */
enum ctx_err ctx_err(struct ctx *ctx);

/* Blocks until CTX (non-NULL) is done or DEADLINE passes. Returns true if CTX is done
 * (cancelled or past its own deadline), false if DEADLINE came first. Any
 * number of threads may wait on one context; one cancel wakes them all. */
bool ctx_wait(struct ctx *ctx, deadline_t deadline);

/* Returns CTX's effective deadline (the earliest along its ancestry), or
 * DEADLINE_FOREVER; use it to bound calls that take their own timeout
 * (curl, libpq, librdkafka). */
deadline_t ctx_deadline(const struct ctx *ctx);

/* Cancels CTX (see ctx_cancel), detaches it from its parent and releases
 * the owner's reference; the memory is freed when no child holds it any
 * more. The caller must not use CTX afterwards. NULL is a no-op. */
void ctx_destroy(struct ctx *ctx);

#endif
