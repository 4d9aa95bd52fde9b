/* ctx: cancel flows down (children, grandchildren) and never up; deadlines
 * expire without a timer thread and wake waiters; one cancel wakes many
 * waiters; destroying a parent before its children is safe. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ctx.h"
#include "testlib.h"

#define MS INT64_C(1000000)

static void test_tree(void)
{
    struct ctx *root = ctx_new(NULL);
    struct ctx *child = ctx_new(root);
    struct ctx *sibling = ctx_new(root);
    struct ctx *grand = ctx_new(child);
    struct ctx *grand2 = ctx_new(child);
    CHECK(root && child && sibling && grand && grand2);
    CHECK(!ctx_done(root) && !ctx_done(child) && !ctx_done(grand));
    CHECK_EQ_INT(ctx_err(grand), CTX_ERR_NONE);
    CHECK_EQ_INT(ctx_deadline(grand), DEADLINE_FOREVER);

    ctx_cancel(child);
    CHECK(ctx_done(child));
    CHECK(ctx_done(grand));
    CHECK(ctx_done(grand2));
    CHECK_EQ_INT(ctx_err(grand), CTX_ERR_CANCELED);
    CHECK(!ctx_done(root));    /* never up */
    CHECK(!ctx_done(sibling)); /* nor sideways */
    ctx_cancel(child);         /* idempotent */
    CHECK_EQ_INT(ctx_err(child), CTX_ERR_CANCELED);

    /* A child of a cancelled context is born cancelled. */
    struct ctx *late = ctx_new(child);
    CHECK(ctx_done(late));
    CHECK_EQ_INT(ctx_err(late), CTX_ERR_CANCELED);

    ctx_cancel(root);
    CHECK(ctx_done(root));
    CHECK(ctx_done(sibling));
    CHECK_EQ_STR(ctx_err_str(ctx_err(sibling)), "canceled");

    ctx_destroy(late);
    ctx_destroy(grand);
    ctx_destroy(grand2);
    ctx_destroy(sibling);
    ctx_destroy(child);
    ctx_destroy(root);
    ctx_destroy(NULL);
    CHECK(!ctx_done(NULL));
}

static void test_destroy_parent_first(void)
{
    struct ctx *root = ctx_new(NULL);
    struct ctx *child = ctx_new(root);
    struct ctx *grand = ctx_new(child);
    struct ctx *other = ctx_new(root);
    /* Destroying a context cancels its subtree (Go's `defer cancel()`); the
     * children stay usable until their own owners destroy them. */
    ctx_destroy(child);
    CHECK(ctx_done(grand));
    CHECK_EQ_INT(ctx_err(grand), CTX_ERR_CANCELED);
    CHECK(!ctx_done(root));
    CHECK(!ctx_done(other));
    ctx_destroy(root);
    CHECK(ctx_done(other));
    CHECK(ctx_wait(grand, DEADLINE_FOREVER));
    /* A child can still be made from a cancelled, undestroyed context. */
    struct ctx *g2 = ctx_new(grand);
    CHECK(ctx_done(g2));
    ctx_destroy(g2);
    ctx_destroy(grand); /* frees child's memory too (ASan checks) */
    ctx_destroy(other); /* ... and root's */
}

static bool is_done(void *p)
{
    return ctx_done(p);
}

struct waiter {
    struct ctx *ctx;
    atomic_int *started;
    atomic_int *finished;
    bool result;
};

static void *wait_forever(void *p)
{
    struct waiter *w = p;
    atomic_fetch_add(w->started, 1);
    w->result = ctx_wait(w->ctx, DEADLINE_FOREVER);
    atomic_fetch_add(w->finished, 1);
    return NULL;
}

struct counter {
    atomic_int *n;
    int want;
};

static bool reached(void *p)
{
    struct counter *c = p;
    return atomic_load(c->n) >= c->want;
}

static void test_deadline(void)
{
    deadline_t t0 = deadline_now();
    struct ctx *root = ctx_new_deadline(NULL, deadline_after_ms(50));
    struct ctx *later = ctx_new_deadline(root, deadline_after_ms(60000));
    struct ctx *plain = ctx_new(root);
    CHECK(!ctx_done(root));
    CHECK(!ctx_done(later));
    /* A child's deadline is never later than its parent's. */
    CHECK(ctx_deadline(later) == ctx_deadline(root));
    CHECK(ctx_deadline(plain) == ctx_deadline(root));

    /* A waiter with a shorter deadline of its own gives up first. */
    CHECK(!ctx_wait(root, deadline_after_ms(10)));

    /* Expiry is seen by ctx_done alone (no timer thread, nobody waiting). */
    CHECK(testlib_wait(is_done, plain, 5));
    CHECK(deadline_now() - t0 >= 50 * MS);
    CHECK_EQ_INT(ctx_err(plain), CTX_ERR_DEADLINE_EXCEEDED);
    CHECK_EQ_INT(ctx_err(later), CTX_ERR_DEADLINE_EXCEEDED);
    CHECK_EQ_INT(ctx_err(root), CTX_ERR_DEADLINE_EXCEEDED);
    /* The first error sticks. */
    ctx_cancel(root);
    CHECK_EQ_INT(ctx_err(root), CTX_ERR_DEADLINE_EXCEEDED);
    CHECK_EQ_STR(ctx_err_str(ctx_err(root)), "deadline exceeded");
    ctx_destroy(plain);
    ctx_destroy(later);
    ctx_destroy(root);

    /* Expiry wakes threads blocked in ctx_wait with no deadline of their
     * own, including on a descendant that inherited the deadline. */
    enum { N = 4 };
    atomic_int started = 0, finished = 0;
    t0 = deadline_now();
    root = ctx_new_deadline(NULL, deadline_after_ms(100));
    struct ctx *kid = ctx_new(root);
    struct waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){.ctx = i % 2 ? kid : root, .started = &started,
                               .finished = &finished};
        pthread_create(&t[i], NULL, wait_forever, &w[i]);
    }
    struct counter all = {.n = &finished, .want = N};
    CHECK(testlib_wait(reached, &all, 5));
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].result);
    }
    CHECK(deadline_now() - t0 >= 100 * MS);
    CHECK_EQ_INT(ctx_err(kid), CTX_ERR_DEADLINE_EXCEEDED);
    ctx_destroy(kid);
    ctx_destroy(root);
}

static void test_many_waiters(void)
{
    enum { N = 32 };
    struct ctx *root = ctx_new(NULL);
    struct ctx *mid = ctx_new(root);
    struct ctx *leaf = ctx_new(mid);
    atomic_int started = 0, finished = 0;
    struct waiter w[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        struct ctx *on = i % 3 == 0 ? root : i % 3 == 1 ? mid : leaf;
        w[i] = (struct waiter){.ctx = on, .started = &started, .finished = &finished};
        pthread_create(&t[i], NULL, wait_forever, &w[i]);
    }
    struct counter up = {.n = &started, .want = N};
    CHECK(testlib_wait(reached, &up, 5));
    /* Nobody returns before the cancel (gives them time to block). */
    struct counter any = {.n = &finished, .want = 1};
    CHECK(!testlib_wait(reached, &any, 0.1));

    deadline_t t0 = deadline_now();
    ctx_cancel(root);
    struct counter all = {.n = &finished, .want = N};
    CHECK(testlib_wait(reached, &all, 5));
    CHECK(deadline_now() - t0 < INT64_C(2000) * MS * VIGIL_TIMEOUT_SCALE);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        CHECK(w[i].result);
    }
    CHECK_EQ_INT(ctx_err(leaf), CTX_ERR_CANCELED);
    ctx_destroy(leaf);
    ctx_destroy(mid);
    ctx_destroy(root);
}

/* Many threads create, cancel and destroy children of one parent while the
 * parent is cancelled: a race ThreadSanitizer and ASan watch. */
struct churn {
    struct ctx *parent;
    int born_done;
};

static void *churn(void *p)
{
    struct churn *c = p;
    for (int i = 0; i < 2000; i++) {
        struct ctx *k = ctx_new(c->parent);
        struct ctx *g = ctx_new(k);
        if (i % 3 == 0)
            ctx_cancel(k);
        if (ctx_done(g))
            c->born_done++;
        ctx_destroy(k);
        ctx_destroy(g);
    }
    return NULL;
}

static void test_churn(void)
{
    enum { N = 4 };
    struct ctx *root = ctx_new(NULL);
    struct churn c[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (struct churn){.parent = root};
        pthread_create(&t[i], NULL, churn, &c[i]);
    }
    ctx_cancel(root);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    CHECK(ctx_done(root));
    /* Every third grandchild was cancelled through its parent, plus any
     * born after the root's cancel. */
    for (int i = 0; i < N; i++)
        CHECK(c[i].born_done >= 667);
    ctx_destroy(root);
}

int main(void)
{
    test_tree();
    test_destroy_parent_first();
    test_deadline();
    test_many_waiters();
    test_churn();
    return testlib_done();
}
