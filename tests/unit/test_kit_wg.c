/* waitgroup: wait returns only after every task is done (and joined);
 * wait_deadline times out while work remains; misuse aborts. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"
#include "waitgroup.h"

#define MS INT64_C(1000000)

struct work {
    atomic_int *finished;
    int sleep_ms;
};

static void do_work(void *p)
{
    struct work *w = p;
    /* Simulated work, so tasks end in a different order than started. */
    struct timespec ts = {0, (long)w->sleep_ms * 1000 * 1000};
    nanosleep(&ts, NULL);
    atomic_fetch_add(w->finished, 1);
}

static void test_wait_all(void)
{
    enum { N = 16 };
    struct wg *wg = wg_new();
    CHECK(wg != NULL);
    wg_wait(wg); /* nothing added: returns at once */
    atomic_int finished = 0;
    struct work w[N];
    char err[128];
    for (int i = 0; i < N; i++) {
        w[i] = (struct work){.finished = &finished, .sleep_ms = (i * 7) % 20 + 1};
        CHECK_EQ_INT(wg_go(wg, do_work, &w[i], err, sizeof err), 0);
    }
    wg_wait(wg);
    CHECK_EQ_INT(atomic_load(&finished), N);
    CHECK_EQ_INT(wg_count(wg), 0);
    /* Reusable after a wait, as Go's. */
    CHECK_EQ_INT(wg_go(wg, do_work, &w[0], err, sizeof err), 0);
    CHECK(wg_wait_deadline(wg, deadline_after_ms(5000)));
    CHECK_EQ_INT(atomic_load(&finished), N + 1);
    wg_destroy(wg);
    wg_destroy(NULL);
}

struct manual {
    struct wg *wg;
    atomic_int go; /* set by main: finish now */
};

static bool flag_set(void *p)
{
    return atomic_load((atomic_int *)p) != 0;
}

static void *manual_worker(void *p)
{
    struct manual *m = p;
    while (!flag_set(&m->go)) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    wg_done(m->wg);
    return NULL;
}

static void test_wait_deadline(void)
{
    struct manual m = {.wg = wg_new()};
    wg_add(m.wg, 1);
    pthread_t t;
    pthread_create(&t, NULL, manual_worker, &m);

    deadline_t t0 = deadline_now();
    CHECK(!wg_wait_deadline(m.wg, deadline_after_ms(50)));
    int64_t took = deadline_now() - t0;
    CHECK(took >= 50 * MS);
    CHECK(took < 2000 * MS * VIGIL_TIMEOUT_SCALE);
    CHECK_EQ_INT(wg_count(m.wg), 1);

    atomic_store(&m.go, 1);
    CHECK(wg_wait_deadline(m.wg, deadline_after_ms(5000)));
    CHECK_EQ_INT(wg_count(m.wg), 0);
    pthread_join(t, NULL);
    wg_destroy(m.wg);
}

/* Several threads wait on one group at once; each must see all work done. */
struct waiter {
    struct wg *wg;
    atomic_int *finished;
    int seen;
};

static void *waiter_main(void *p)
{
    struct waiter *w = p;
    wg_wait(w->wg);
    w->seen = atomic_load(w->finished);
    return NULL;
}

static void test_many_waiters(void)
{
    enum { TASKS = 8, WAITERS = 4 };
    struct wg *wg = wg_new();
    atomic_int finished = 0;
    struct work w[TASKS];
    char err[128];
    for (int i = 0; i < TASKS; i++) {
        w[i] = (struct work){.finished = &finished, .sleep_ms = 5 + i};
        CHECK_EQ_INT(wg_go(wg, do_work, &w[i], err, sizeof err), 0);
    }
    struct waiter ws[WAITERS];
    pthread_t t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        ws[i] = (struct waiter){.wg = wg, .finished = &finished};
        pthread_create(&t[i], NULL, waiter_main, &ws[i]);
    }
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ_INT(ws[i].seen, TASKS);
    }
    wg_destroy(wg);
}

/* A group that starts a thread per job: wg_go joins the finished ones as it
 * goes (no deadlock between that join and the ending threads), and the
 * sanitizers' thread bookkeeping sees every thread joined. */
static void test_reap(void)
{
    struct wg *wg = wg_new();
    atomic_int finished = 0;
    struct work w = {.finished = &finished, .sleep_ms = 0};
    char err[128];
    int failed = 0;
    for (int i = 0; i < 200; i++)
        if (wg_go(wg, do_work, &w, err, sizeof err) != 0)
            failed++;
    CHECK_EQ_INT(failed, 0);
    wg_wait(wg);
    CHECK_EQ_INT(atomic_load(&finished), 200);
    wg_destroy(wg);
}

/* wg_done below zero is a programming error: the process aborts. */
static void test_done_below_zero_aborts(void)
{
    pid_t pid = fork();
    if (pid == 0) {
        close(STDERR_FILENO); /* the expected message, out of the log */
        struct wg *wg = wg_new();
        wg_done(wg);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0);
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void)
{
    test_done_below_zero_aborts(); /* first: fork while single-threaded */
    test_wait_all();
    test_wait_deadline();
    test_many_waiters();
    test_reap();
    return testlib_done();
}
