/* vsem: never more than N holders under contention, timed acquire times
 * out, release wakes a waiter, over-release aborts. */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sem.h"
#include "testlib.h"

#define MS INT64_C(1000000)
#define PERMITS 4
#define THREADS 16
#define ROUNDS 200

struct shared {
    struct vsem *sem;
    atomic_int holders;
    atomic_int max_holders;
    atomic_int timeouts;
};

static void *contend(void *p)
{
    struct shared *sh = p;
    for (int i = 0; i < ROUNDS; i++) {
        if (vsem_acquire(sh->sem, DEADLINE_FOREVER) != VSEM_OK) {
            atomic_fetch_add(&sh->timeouts, 1);
            continue;
        }
        int now = atomic_fetch_add(&sh->holders, 1) + 1;
        int max = atomic_load(&sh->max_holders);
        while (now > max && !atomic_compare_exchange_weak(&sh->max_holders, &max, now))
            ;
        /* Hold the permit a little, so holders overlap. */
        struct timespec ts = {0, 100 * 1000};
        nanosleep(&ts, NULL);
        atomic_fetch_sub(&sh->holders, 1);
        vsem_release(sh->sem);
    }
    return NULL;
}

static void test_bound(void)
{
    struct shared sh = {.sem = vsem_new(PERMITS)};
    CHECK(sh.sem != NULL);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, contend, &sh);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(atomic_load(&sh.max_holders), PERMITS);
    CHECK_EQ_INT(atomic_load(&sh.timeouts), 0);
    CHECK_EQ_INT(vsem_available(sh.sem), PERMITS);
    vsem_destroy(sh.sem);
    vsem_destroy(NULL);
}

struct blocked {
    struct vsem *sem;
    atomic_int state;
    enum vsem_status st;
};

static void *acquire_forever(void *p)
{
    struct blocked *b = p;
    b->st = vsem_acquire(b->sem, DEADLINE_FOREVER);
    atomic_store(&b->state, 1);
    return NULL;
}

static bool returned(void *p)
{
    return atomic_load(&((struct blocked *)p)->state) == 1;
}

static void test_timeout_and_wake(void)
{
    struct vsem *s = vsem_new(1);
    CHECK(vsem_try_acquire(s));
    CHECK(!vsem_try_acquire(s));
    CHECK_EQ_INT(vsem_available(s), 0);

    deadline_t t0 = deadline_now();
    CHECK_EQ_INT(vsem_acquire(s, deadline_after_ms(50)), VSEM_TIMEOUT);
    int64_t took = deadline_now() - t0;
    CHECK(took >= 50 * MS);
    CHECK(took < 2000 * MS * VIGIL_TIMEOUT_SCALE);

    /* A release wakes a blocked acquirer. */
    struct blocked b = {.sem = s};
    pthread_t t;
    pthread_create(&t, NULL, acquire_forever, &b);
    CHECK(!testlib_wait(returned, &b, 0.1));
    vsem_release(s);
    CHECK(testlib_wait(returned, &b, 5));
    pthread_join(t, NULL);
    CHECK_EQ_INT(b.st, VSEM_OK);
    CHECK_EQ_INT(vsem_available(s), 0);
    vsem_release(s);
    CHECK_EQ_INT(vsem_acquire(s, deadline_after_ms(0)), VSEM_OK);
    vsem_release(s);
    vsem_destroy(s);

    CHECK(vsem_new(0) == NULL);
}

static void test_over_release_aborts(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        close(STDERR_FILENO); /* the expected message, out of the log */
        struct vsem *s = vsem_new(2);
        vsem_release(s);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

/* FIFO mode: waiters get the permit in the order they queued, one that
 * times out leaves the queue without taking a later one's turn, and a
 * try-acquire never jumps the queue. */
#define FIFO_WAITERS 8

struct fifo_shared {
    struct vsem *sem;
    pthread_mutex_t mu;
    int order[FIFO_WAITERS];
    int n;
};

struct fifo_arg {
    struct fifo_shared *sh;
    int index;
};

static void *fifo_wait(void *p)
{
    struct fifo_arg *a = p;
    if (vsem_acquire(a->sh->sem, deadline_after_ms(30000)) != VSEM_OK)
        return NULL;
    pthread_mutex_lock(&a->sh->mu);
    a->sh->order[a->sh->n++] = a->index;
    pthread_mutex_unlock(&a->sh->mu);
    vsem_release(a->sh->sem);
    return NULL;
}

static void wait_for_waiters(struct vsem *s, unsigned n)
{
    deadline_t give_up = deadline_after_ms(10000);
    while (vsem_waiting(s) < n && deadline_now() < give_up)
        sched_yield();
    CHECK_EQ_INT((int)vsem_waiting(s), (int)n);
}

static void test_fifo(void)
{
    struct fifo_shared sh = {.sem = vsem_new_fifo(1), .n = 0};
    pthread_mutex_init(&sh.mu, NULL);
    CHECK(sh.sem != NULL);
    CHECK_EQ_INT(vsem_acquire(sh.sem, DEADLINE_FOREVER), VSEM_OK);
    pthread_t t[FIFO_WAITERS];
    struct fifo_arg args[FIFO_WAITERS];
    for (int i = 0; i < FIFO_WAITERS; i++) {
        args[i] = (struct fifo_arg){&sh, i};
        pthread_create(&t[i], NULL, fifo_wait, &args[i]);
        wait_for_waiters(sh.sem, (unsigned)i + 1); /* queued in index order */
    }
    /* a timed waiter behind them gives up and leaves the queue */
    CHECK_EQ_INT(vsem_acquire(sh.sem, deadline_after_ms(20)), VSEM_TIMEOUT);
    CHECK_EQ_INT((int)vsem_waiting(sh.sem), FIFO_WAITERS);
    CHECK(!vsem_try_acquire(sh.sem)); /* nothing free, and others wait */
    vsem_release(sh.sem);
    /* the permit went to the oldest waiter, not back to the pool: a
     * newcomer cannot take it before that waiter wakes */
    bool barged = vsem_try_acquire(sh.sem);
    CHECK(!barged);
    if (barged)
        vsem_release(sh.sem);
    for (int i = 0; i < FIFO_WAITERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(sh.n, FIFO_WAITERS);
    for (int i = 0; i < sh.n; i++)
        CHECK_EQ_INT(sh.order[i], i);
    CHECK_EQ_INT((int)vsem_available(sh.sem), 1);
    CHECK_EQ_INT((int)vsem_waiting(sh.sem), 0);
    CHECK(vsem_try_acquire(sh.sem));
    vsem_release(sh.sem);
    pthread_mutex_destroy(&sh.mu);
    vsem_destroy(sh.sem);
}

int main(void)
{
    test_over_release_aborts(); /* first: fork while single-threaded */
    test_bound();
    test_timeout_and_wake();
    test_fifo();
    return testlib_done();
}
