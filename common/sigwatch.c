#include "sigwatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "log.h"

struct sigwatch {
    pthread_t thread;
    sigset_t set;
    struct ctx *stop;
    atomic_bool *reload;
};

/* SIGUSR2 is ours: sigwatch_stop sends it to end the thread. */
static void *run(void *arg)
{
    struct sigwatch *w = arg;
    for (;;) {
        int sig = 0;
        if (sigwait(&w->set, &sig) != 0)
            continue;
        if (sig == SIGUSR2)
            return NULL;
        if (sig == SIGHUP) {
            atomic_store(w->reload, true);
            log_msg(LOG_INFO, "main", "SIGHUP: reload requested");
        } else {
            log_msg(LOG_INFO, "main", "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            ctx_cancel(w->stop);
        }
    }
}

struct sigwatch *sigwatch_start(struct ctx *stop, atomic_bool *reload)
{
    struct sigwatch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->stop = stop;
    w->reload = reload;
    sigemptyset(&w->set);
    sigaddset(&w->set, SIGTERM);
    sigaddset(&w->set, SIGINT);
    sigaddset(&w->set, SIGHUP);
    sigaddset(&w->set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &w->set, NULL);
    /* A peer that closes a socket must not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        free(w);
        return NULL;
    }
    return w;
}

void sigwatch_stop(struct sigwatch *w)
{
    if (w == NULL)
        return;
    pthread_kill(w->thread, SIGUSR2);
    pthread_join(w->thread, NULL);
    free(w);
}
