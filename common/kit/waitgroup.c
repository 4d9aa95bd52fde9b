/*
 * waitgroup: a counter under a mutex, and two lists of wg_go threads.
 *
 * DESIGN: wg_go threads are joinable and recorded; when one ends it moves
 * its record from `running` to `finished` (under the mutex, the last thing
 * it does before returning), and whoever waits or starts the next thread
 * joins the finished ones. Detached threads were rejected: their wg_done
 * would come before the thread is really gone, and a caller counting
 * threads (the leak test, or a Kubernetes pod near its PID limit) would see
 * them linger after wg_wait returned.
 *
 * Several threads may wait at once; only one of them joins a given record
 * (it takes the records off the list first), and the others wait until
 * `joining` is back to zero, so nobody returns while a join is in progress.
 */
#include "waitgroup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct task {
    struct wg *wg;
    void (*fn)(void *arg);
    void *arg;
    pthread_t thread;
    struct task *next;
};

struct wg {
    pthread_mutex_t mu;
    pthread_cond_t cond;    /* broadcast when count or joining reach zero */
    int count;              /* guarded by mu */
    int joining;            /* threads being joined right now; guarded by mu */
    struct task *running;   /* wg_go threads still in fn; guarded by mu */
    struct task *finished;  /* ended, not joined yet; guarded by mu */
};

struct wg *wg_new(void)
{
    struct wg *wg = calloc(1, sizeof *wg);
    if (wg == NULL)
        return NULL;
    if (pthread_mutex_init(&wg->mu, NULL) != 0)
        goto err;
    if (deadline_cond_init(&wg->cond) != 0)
        goto err_mu;
    return wg;

err_mu:
    pthread_mutex_destroy(&wg->mu);
err:
    free(wg);
    return NULL;
}

static void die(const char *what)
{
    fprintf(stderr, "vigil: waitgroup misuse: %s\n", what);
    abort();
}

/* Joins and frees every task in LIST. Called without the mutex: a join can
 * wait for a thread that needs the mutex to finish. */
static void join_all(struct task *list)
{
    while (list != NULL) {
        struct task *next = list->next;
        pthread_join(list->thread, NULL);
        free(list);
        list = next;
    }
}

void wg_destroy(struct wg *wg)
{
    if (wg == NULL)
        return;
    pthread_mutex_lock(&wg->mu);
    int count = wg->count;
    struct task *finished = wg->finished;
    wg->finished = NULL;
    pthread_mutex_unlock(&wg->mu);
    if (count != 0)
        die("wg_destroy with a non-zero count");
    join_all(finished);
    pthread_cond_destroy(&wg->cond);
    pthread_mutex_destroy(&wg->mu);
    free(wg);
}

void wg_add(struct wg *wg, int n)
{
    if (n <= 0)
        die("wg_add with n <= 0");
    pthread_mutex_lock(&wg->mu);
    wg->count += n;
    pthread_mutex_unlock(&wg->mu);
}

/* Decrements the count; the caller holds mu. */
static void done_locked(struct wg *wg)
{
    if (wg->count <= 0)
        die("wg_done below zero");
    wg->count--;
    if (wg->count == 0)
        pthread_cond_broadcast(&wg->cond);
}

void wg_done(struct wg *wg)
{
    pthread_mutex_lock(&wg->mu);
    done_locked(wg);
    pthread_mutex_unlock(&wg->mu);
}

bool wg_wait_deadline(struct wg *wg, deadline_t deadline)
{
    pthread_mutex_lock(&wg->mu);
    for (;;) {
        if (wg->count > 0) {
            if (deadline_cond_wait(&wg->cond, &wg->mu, deadline) == ETIMEDOUT &&
                wg->count > 0) {
                pthread_mutex_unlock(&wg->mu);
                return false;
            }
            continue;
        }
        if (wg->finished != NULL) {
            struct task *list = wg->finished;
            wg->finished = NULL;
            wg->joining++;
            pthread_mutex_unlock(&wg->mu);
            join_all(list);
            pthread_mutex_lock(&wg->mu);
            wg->joining--;
            if (wg->joining == 0)
                pthread_cond_broadcast(&wg->cond);
            continue;
        }
        if (wg->joining > 0) {
            /* Another waiter is joining; its end is near (the threads have
             * finished fn), so wait for it even past DEADLINE rather than
             * report "not finished" for a group that has. */
            pthread_cond_wait(&wg->cond, &wg->mu);
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&wg->mu);
    return true;
}

void wg_wait(struct wg *wg)
{
    wg_wait_deadline(wg, DEADLINE_FOREVER);
}

int wg_count(struct wg *wg)
{
    pthread_mutex_lock(&wg->mu);
    int count = wg->count;
    pthread_mutex_unlock(&wg->mu);
    return count;
}

static void *task_main(void *p)
{
    struct task *t = p;
    t->fn(t->arg);

    struct wg *wg = t->wg;
    pthread_mutex_lock(&wg->mu);
    /* Move our record to `finished` and count done in one critical
     * section: whoever sees the count reach zero also sees the record to
     * join. After the unlock, T and WG belong to the joiner. */
    struct task **pp = &wg->running;
    while (*pp != t)
        pp = &(*pp)->next;
    *pp = t->next;
    t->next = wg->finished;
    wg->finished = t;
    done_locked(wg);
    pthread_mutex_unlock(&wg->mu);
    return NULL;
}

int wg_go(struct wg *wg, void (*fn)(void *arg), void *arg, char *errstr, size_t errstr_size)
{
    struct task *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(errstr, errstr_size, "could not start thread: out of memory");
        return -1;
    }
    t->wg = wg;
    t->fn = fn;
    t->arg = arg;

    pthread_mutex_lock(&wg->mu);
    /* Reap threads that already ended, so a long-lived group that starts a
     * thread per job holds at most the ones still running. */
    struct task *finished = wg->finished;
    if (finished != NULL) {
        wg->finished = NULL;
        wg->joining++;
    }
    wg->count++;
    t->next = wg->running;
    wg->running = t;
    /* Created under the mutex so the new thread cannot reach task_main's
     * critical section before its record is listed. */
    int rc = pthread_create(&t->thread, NULL, task_main, t);
    if (rc != 0) {
        wg->running = t->next;
        done_locked(wg);
    }
    pthread_mutex_unlock(&wg->mu);

    if (finished != NULL) {
        join_all(finished);
        pthread_mutex_lock(&wg->mu);
        wg->joining--;
        if (wg->joining == 0)
            pthread_cond_broadcast(&wg->cond);
        pthread_mutex_unlock(&wg->mu);
    }
    if (rc != 0) {
        free(t);
        snprintf(errstr, errstr_size, "could not start thread: %s", strerror(rc));
        return -1;
    }
    return 0;
}
