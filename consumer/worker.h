/*
 * worker: `vigil worker` put together. Its consumer is the consumer-group
 * engine (common/group.h: poll loop, offset tracking, backpressure,
 * rebalance, commits); this file is the worker's role on it and starts the
 * stages the rest of consumer/ holds:
 *
 *   group (poll) ─► analyse.c ×K ─► store.c (PostgreSQL)
 *        │               └────────► common/publish.c (vigil.alerts, DLQ)
 *        └── commits only what every stage has finished
 *
 * A message is offered to the analysis thread of its key (one subject's
 * messages to one thread, in order); when that queue stays full the engine
 * keeps the message aside and pauses its partition (backpressure without
 * missing max.poll.interval.ms).
 */
#ifndef VIGIL_WORKER_H
#define VIGIL_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "clean.h"
#include "config.h"
#include "ctx.h"
#include "deadletter.h"
#include "group.h"

struct worker_options {
    /* the consumer group (cfg: kafka.* pass-through, borrowed); worker_run
     * sets its client id, component and drain time */
    struct group_config consumer;
    const char *alerts_topic;
    const char *rules_path;
    const char *conninfo;
    const char *http_addr;    /* "" or NULL: no HTTP endpoint */
    const char *registry_url; /* NULL: no Confluent framing */
    int threads;
    int grace_s;
    int batch_rows;
    int batch_ms;
    int store_writers; /* PostgreSQL connections writing concurrently */
    size_t max_subjects;
    size_t max_subject_bytes; /* all analysis threads' subject states together; 0: no limit */
    size_t max_message_bytes; /* larger messages are dead-lettered as oversize */
    struct deadletter_config dead_letters; /* the topic, truncation and policy (cmd fills all) */
    struct clean_time_limits time_limits; /* results from the future or too old */
};

/* Runs the worker until STOP is cancelled (SIGTERM/SIGINT), then drains,
 * flushes, commits and leaves the group within grace_s seconds, whatever
 * is stalled: what cannot finish by then is left uncommitted for the
 * partition's next owner, and if even the stop itself hangs the process
 * ends at the grace with GROUP_EXIT_FORCED (group_arm_exit). RELOAD is
 * polled: when set (SIGHUP), the rules file is reloaded and the flag
 * cleared. Returns GROUP_EXIT_CLEAN (0) when everything taken was
 * finished and committed, GROUP_EXIT_UNFINISHED (3) when some partition
 * was left unfinished (logged with its offset), or -1 with errstr if it
 * could not start (bad rules file, bad Kafka property, port in use). */
int worker_run(const struct worker_options *opt, struct ctx *stop, atomic_bool *reload,
               char *errstr, size_t errstr_size);

#endif
