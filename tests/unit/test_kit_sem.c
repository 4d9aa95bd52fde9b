/* vsem: never more than N holders under contention, timed acquire times
 * out, release wakes a waiter, over-release aborts. */
#include <pthread.h>
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

int main(void)
{
    test_over_release_aborts(); /* first: fork while single-threaded */
    test_bound();
    test_timeout_and_wake();
    return testlib_done();
}
