/*
 * sigwatch: signals as events, for the long-running roles. SIGTERM and
 * SIGINT cancel a context (drain and exit), SIGHUP sets a flag the role
 * polls (reload). Signals are blocked in every thread and taken by one
 * thread with sigwait(), so no code runs in a signal handler.
 *
 * sigwatch_start must be called before any other thread is created (the
 * mask is inherited). One per process.
 */
#ifndef VIGIL_SIGWATCH_H
#define VIGIL_SIGWATCH_H

#include <stdatomic.h>

#include "ctx.h"

struct sigwatch;

/* Blocks the signals and starts the watching thread. STOP and RELOAD are
 * borrowed and must outlive the watch. Returns NULL if the thread cannot
 * start. */
struct sigwatch *sigwatch_start(struct ctx *stop, atomic_bool *reload);

/* Stops the watching thread and frees it. NULL is a no-op. */
void sigwatch_stop(struct sigwatch *w);

#endif
