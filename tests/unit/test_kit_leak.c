/* Thread leaks: a "task" of 64 threads built from ctx + waitgroup + chan
 * (consumers blocked in chan_recv, waiters in ctx_wait, loops on ctx_done,
 * producers sending with deadlines, one closer), cancelled through its root
 * context; after wg_wait the process must have exactly as many threads as
 * before the task started. */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "chan.h"
#include "ctx.h"
#include "testlib.h"
#include "waitgroup.h"

#define WORKERS 64

/* Returns the number of threads of this process, -1 on error. */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

struct task {
    struct ctx *ctx;
    struct chan *ch;
    atomic_int started;
    atomic_int sent;
    atomic_int received;
    atomic_int wrong_exit; /* a worker that left for a reason it should not */
};

struct worker {
    struct task *task;
    int kind;
};

enum { CLOSER, CONSUMER, WAITER, LOOPER, PRODUCER, KINDS };

static void worker_main(void *p)
{
    struct worker *w = p;
    struct task *t = w->task;
    atomic_fetch_add(&t->started, 1);
    switch (w->kind) {
    case CLOSER:
        /* The Go pattern: whoever owns the channel closes it on cancel. */
        if (!ctx_wait(t->ctx, DEADLINE_FOREVER))
            atomic_fetch_add(&t->wrong_exit, 1);
        chan_close(t->ch);
        break;
    case CONSUMER: {
        void *item;
        enum chan_status st;
        while ((st = chan_recv(t->ch, &item, DEADLINE_FOREVER)) == CHAN_OK)
            atomic_fetch_add(&t->received, 1);
        if (st != CHAN_END)
            atomic_fetch_add(&t->wrong_exit, 1);
        break;
    }
    case WAITER:
        if (!ctx_wait(t->ctx, DEADLINE_FOREVER))
            atomic_fetch_add(&t->wrong_exit, 1);
        break;
    case LOOPER:
        while (!ctx_done(t->ctx)) {
            struct timespec ts = {0, 1000 * 1000}; /* simulated work */
            nanosleep(&ts, NULL);
        }
        break;
    case PRODUCER:
        while (!ctx_done(t->ctx)) {
            enum chan_status st = chan_send(t->ch, NULL, deadline_after_ms(20));
            if (st == CHAN_OK)
                atomic_fetch_add(&t->sent, 1);
            else if (st == CHAN_CLOSED)
                break;
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        break;
    }
}

struct count_is {
    int want;
};

static bool count_is(void *p)
{
    return thread_count() == ((struct count_is *)p)->want;
}

static bool all_started(void *p)
{
    return atomic_load(&((struct task *)p)->started) == WORKERS;
}

static bool some_flow(void *p)
{
    return atomic_load(&((struct task *)p)->received) > 0;
}

static void *nothing(void *p)
{
    return p;
}

int main(void)
{
    /* Sanitizer runtimes may start a helper thread with the first
     * pthread_create; let that happen before the baseline. */
    pthread_t warm;
    pthread_create(&warm, NULL, nothing, NULL);
    pthread_join(warm, NULL);

    int base = thread_count();
    CHECK(base >= 1);

    struct ctx *root = ctx_new(NULL);
    struct task t = {.ctx = ctx_new(root), .ch = chan_new(8)};
    struct wg *wg = wg_new();
    struct worker w[WORKERS];
    char err[128];
    int started = 0;
    for (int i = 0; i < WORKERS; i++) {
        w[i] = (struct worker){.task = &t, .kind = i % KINDS};
        if (wg_go(wg, worker_main, &w[i], err, sizeof err) == 0)
            started++;
        else
            fprintf(stderr, "%s\n", err);
    }
    CHECK_EQ_INT(started, WORKERS);
    CHECK(testlib_wait(all_started, &t, 10));
    /* Every worker is alive and blocked until the cancel, so the count is
     * exact now -- which also shows the counting sees the task's threads
     * (else the final check would prove nothing). */
    CHECK_EQ_INT(thread_count(), base + WORKERS);
    CHECK(testlib_wait(some_flow, &t, 10));

    ctx_cancel(root); /* shutdown reaches the task through its parent */
    /* Bounded, so a worker deaf to the cancel fails here, by name, rather
     * than hanging until ctest's timeout. */
    bool joined = wg_wait_deadline(wg, deadline_after_ms(5000 * VIGIL_TIMEOUT_SCALE));
    CHECK(joined);
    if (!joined) {
        fprintf(stderr, "%d workers still running after cancel\n", wg_count(wg));
        return testlib_done(); /* cannot free what threads still use */
    }
    CHECK_EQ_INT(wg_count(wg), 0);

    /* pthread_join returns when the thread's tid is cleared, a moment
     * before the kernel drops it from /proc: wait for the count, but only
     * briefly, so a stray thread that ends on its own a little later (a
     * detached helper, say) still counts as leaked. */
    struct count_is back = {base};
    bool ok = testlib_wait(count_is, &back, 0.5);
    CHECK(ok);
    if (!ok)
        fprintf(stderr, "threads: %d before, %d after\n", base, thread_count());
    CHECK_EQ_INT(atomic_load(&t.wrong_exit), 0);
    CHECK(chan_is_closed(t.ch));
    /* Everything sent was received: the consumers drained before END. */
    CHECK_EQ_INT(atomic_load(&t.sent), atomic_load(&t.received));

    wg_destroy(wg);
    chan_destroy(t.ch);
    ctx_destroy(t.ctx);
    ctx_destroy(root);
    return testlib_done();
}
