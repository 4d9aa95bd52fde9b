/*
 * notifier: `vigil notifier` put together: its role on the consumer-group
 * engine (common/group.h), which reads vigil.alerts in its consumer group.
 * Each alert is decoded and handed to the sender (send.h); its offset
 * becomes committable only when the sender reports every notification of it
 * final, so a crash or a rebalance replays, and the notification log makes
 * the replay page nobody twice.
 *
 * An alert that does not decode goes to the dead-letter topic (original
 * bytes and headers plus the error, as the worker's dead letters, through
 * common/deadletter.h: whole, else truncated, else recorded in
 * dead_letters or retried per dlq_policy); its offset finishes with the
 * dead letter's outcome.
 *
 * Backpressure: when the sender's queue or the partition's offset tracker
 * is full, the engine keeps the alert aside and pauses the partition; the
 * poll loop keeps polling (staying in the group) and resumes it once the
 * alert is taken. Nothing is dropped.
 *
 * Shutdown (stop cancelled): stop reading, give the sender until the grace
 * period minus a margin to finish in-flight sends (the rest are handed
 * back to the log), commit what finished, leave the group; the process
 * ends within the grace whatever hangs (group_arm_exit).
 */
#ifndef VIGIL_NOTIFIER_H
#define VIGIL_NOTIFIER_H

#include <stdatomic.h>
#include <stddef.h>

#include "config.h"
#include "ctx.h"
#include "deadletter.h"
#include "escalate.h"
#include "group.h"
#include "send.h"
#include "webhook.h"

struct notifier_options {
    /* the consumer group (cfg: kafka.* pass-through, borrowed); notifier_run
     * sets its client id, component and drain time */
    struct group_config consumer;
    struct deadletter_config dead_letters; /* topic ("": recorded in dead_letters), truncation,
                                            * policy (cmd fills all) */
    const char *conninfo;
    const char *http_addr;    /* "" or NULL: no HTTP endpoint */
    const char *registry_url; /* may be NULL */
    int grace_s;
    int directory_refresh_s;
    struct sender_config send; /* conninfo is filled in by notifier_run */
    struct webhook_config webhook; /* poll_ms 0: webhooks off; conninfo filled in */
    bool escalation;           /* run the escalation timer thread (escalate.h) */
    struct escalate_config escalate; /* conninfo and actor are filled in by notifier_run */
};

/* Runs until STOP is cancelled (then drains as above and returns
 * GROUP_EXIT_CLEAN, or GROUP_EXIT_UNFINISHED when alerts were left for the
 * partitions' next owner) or a start-up failure (returns -1 with errstr). RELOAD set (SIGHUP) reloads
 * the directory. Everything it starts is stopped and freed before it
 * returns. Call from one thread. */
int notifier_run(const struct notifier_options *opt, struct ctx *stop, atomic_bool *reload,
                 char *errstr, size_t errstr_size);

#endif
