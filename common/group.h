/*
 * group: the consumer-group engine, written once for every role that reads
 * a topic in a Kafka consumer group (the worker on vigil.observations, the
 * notifier on vigil.alerts).
 *
 * The engine owns the librdkafka consumer and its poll thread's view of the
 * partitions; the role owns what happens to a message after it accepted it.
 *
 *   poll ─► wrap (role) ─► track offset ─► offer (role) ─┬─ accepted: the role
 *                              │                         │  calls group_done or
 *                              │       full ◄────────────┘  group_abandon once
 *                              ▼
 *                 stash in offset order + pause the partition;
 *                 offered again each turn; resume when the stash is empty
 *
 * Guarantees, whichever role plugs in:
 * - a message is never dropped: when the role's queue or the offset tracker
 *   is full it waits in its partition's stash and the partition is paused
 *   (the poll loop keeps polling, so the member stays in the group);
 * - offsets are tracked in offset order (a stashed message is tracked when
 *   it leaves the stash) and committed per partition up to the longest
 *   finished prefix (offsets.h), every commit_interval_ms and at close;
 *   a failed commit is retried;
 * - on revoke: the stashes of the revoked partitions are dropped, the
 *   engine waits (bounded) for their accepted messages to finish, commits
 *   and forgets them; late completions of a forgotten partition change
 *   nothing;
 * - prefetch is capped (queued.max.messages.kbytes), so a paused partition
 *   holds a bounded number of fetched messages.
 *
 * Large records: max_record_bytes raises librdkafka's
 * receive.message.max.bytes so a record as large as the topic allows is
 * fetched whole and reaches the role, which dead-letters what it cannot
 * process (common/deadletter.h). fetch.max.bytes and
 * max.partition.fetch.bytes need no raising: since KIP-74 the broker
 * returns a first record batch larger than them anyway.
 *
 * Stopping: group_stop, then the role drains its stages, then group_close
 * (commit, leave); group_arm_exit bounds the whole stop, whatever hangs.
 *
 * Metrics: vigil_consumed_total, vigil_processed_total, vigil_abandoned_total,
 * vigil_paused_partitions, vigil_assigned_partitions, and per partition
 * vigil_consumer_lag and vigil_oldest_unfinished_seconds.
 *
 * Thread-safety: group_done, group_abandon and group_pending may be called
 * from any thread; everything else from the one thread that polls (the
 * role's callbacks, except offer's completions, run on it).
 */
#ifndef VIGIL_GROUP_H
#define VIGIL_GROUP_H

#include <librdkafka/rdkafka.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "deadline.h"
#include "metrics.h"

/* Which tracked message an accepted item is: pass it back to group_done
 * or group_abandon. */
struct group_ticket {
    int32_t partition;
    int64_t offset;
    uint32_t epoch; /* the partition's tracking epoch (offsets.h) */
};

/* How a role plugs in. Every callback runs on the poll thread. */
struct group_role {
    void *arg;
    /* Wraps message M into the role's item; M passes to the item (freed with
     * it). Returns NULL if out of memory: M is then still the engine's, and
     * the message is read again after a restart (never committed past). */
    void *(*wrap)(void *arg, rd_kafka_message_t *m);
    /* Offers ITEM, whose offset is tracked as T, to the role's first stage,
     * waiting at most WAIT_MS (0: do not wait) for room. Returns true when
     * the role took ITEM: it then calls group_done or group_abandon with T
     * exactly once, from any thread. false: full; ITEM is still the
     * engine's and is offered again later. */
    bool (*offer)(void *arg, void *item, const struct group_ticket *t, int wait_ms);
    /* Frees an item the role never took (revoke, shutdown). */
    void (*discard)(void *arg, void *item);
    /* Optional: called after partitions were assigned and after revoked
     * ones were drained (the worker forgets its subjects' states). */
    void (*rebalanced)(void *arg, bool assigned);
};

struct group_config {
    const struct config *cfg; /* kafka.* pass-through properties; borrowed */
    const char *bootstrap;
    const char *group;
    const char *topic;
    const char *assignor;      /* partition.assignment.strategy */
    const char *client_id;
    const char *component;     /* log lines' component: "worker", "notifier" */
    int32_t max_partitions;    /* partitions 0..max-1 are handled; default 1024 */
    size_t inflight_per_partition; /* tracker capacity; default 20000 */
    int commit_interval_ms;    /* default 500 */
    int commit_refresh_ms;     /* every this long the positions already
                                * committed are committed again (a stale
                                * retried commit may have moved the group
                                * back); default 5000 */
    int revoke_drain_ms;       /* default 30000 */
    int offer_wait_ms;         /* first offer of a fresh message waits this long
                                * for room; 0: not at all */
    int prefetch_kbytes;       /* queued.max.messages.kbytes; default 4096 */
    int stall_ms;              /* group_ready fails when a message is unfinished this
                                * long; 0: never */
    size_t max_record_bytes;   /* the largest record the topic may hold (its
                                * max.message.bytes): receive.message.max.bytes is
                                * raised above it so such a record is fetched (and
                                * can be dead-lettered) instead of failing every
                                * fetch of its partition; 0: librdkafka's limits */
};

/* Exit statuses of a role stopped by SIGTERM/SIGINT: */
#define GROUP_EXIT_CLEAN      0 /* everything taken was finished and committed */
#define GROUP_EXIT_UNFINISHED 3 /* stopped within the grace, some messages left
                                 * uncommitted for the partitions' next owners
                                 * (the log names each partition and offset) */
#define GROUP_EXIT_FORCED     4 /* the grace ran out before the stop finished:
                                 * ended there (same log lines) */

struct group;

/* Creates the consumer (not yet subscribed). Settings a role may not
 * override (manual commits, no auto offset store) are set after the
 * pass-through properties. Returns NULL with errstr naming what failed
 * (a librdkafka property refused, out of memory). CFG, ROLE and METRICS are
 * borrowed and must outlive the group. */
struct group *group_new(const struct group_config *cfg, const struct group_role *role,
                        struct metrics *metrics, char *errstr, size_t errstr_size);

/* Subscribes to the topic. Returns 0, or -1 with errstr. */
int group_subscribe(struct group *g, char *errstr, size_t errstr_size);

/* One turn of the poll loop: waits up to TIMEOUT_MS for a message and
 * hands it on (or stashes it), serves rebalances and commit results, moves
 * stashed messages on, commits on the cadence and refreshes the gauges
 * about once a second. */
void group_poll(struct group *g, int timeout_ms);

/* The message of T finished: every effect of it is durable. Any thread.
 * A completion for a partition revoked meanwhile changes nothing. */
void group_done(struct group *g, const struct group_ticket *t);

/* The message of T will not finish here; it is never committed past, so
 * the partition's next owner reads it again. Any thread. */
void group_abandon(struct group *g, const struct group_ticket *t);

/* Readiness as far as consuming goes: false, with WHY, while not yet
 * subscribed, once stopping, or when an assigned partition's oldest
 * unfinished message is older than stall_ms. G may be NULL (not started).
 * Any thread (the HTTP server's). */
bool group_ready(struct group *g, char *why, size_t whysz);

/* Messages accepted by the role and not yet done or abandoned, over all
 * partitions. Any thread. */
size_t group_pending(struct group *g);

/* Stops taking messages: drops every stash (their items are discarded,
 * their offsets never committed past). Call before draining the role's
 * stages at shutdown. */
void group_stop(struct group *g);

/* At a stop, before group_stop: offers the messages set aside for want
 * of room (the stashes) to the role again until they are taken or
 * DEADLINE passes, so what was already fetched is finished here rather
 * than abandoned to the partitions' next owner (a worker SIGTERMed while
 * its stages were full exited 3 with one message left). Polls nothing.
 * Returns how many are still stashed, and logs a warning when any are. */
size_t group_flush_stashes(struct group *g, deadline_t deadline);

/* Commits what finished, then leaves the group (rd_kafka_consumer_close).
 * Logs, per partition, the offset its next owner starts from when messages
 * were left unfinished. Call after the role's stages have drained. */
void group_close(struct group *g);

/* After group_close: GROUP_EXIT_UNFINISHED if it left any partition with
 * unfinished messages, else GROUP_EXIT_CLEAN. */
int group_exit_status(const struct group *g);

/* The last resort of a stop: unless group_disarm_exit is called before
 * DEADLINE, a thread then logs, per partition, the offset its next owner
 * restarts from and ends the process with GROUP_EXIT_FORCED (_Exit:
 * nothing else runs, nothing more is committed; what was not committed is
 * read again). Returns 0, or -1 if the thread could not start (the stop
 * then has no such bound). Call once, from the poll thread, when the stop
 * begins. */
int group_arm_exit(struct group *g, deadline_t deadline);

/* Cancels group_arm_exit's thread and joins it. No-op if not armed. */
void group_disarm_exit(struct group *g);

/* Frees the group (closing it first if group_close was not called). NULL
 * is a no-op. */
void group_destroy(struct group *g);

/* The consumer's librdkafka handle, borrowed: for tests that act as the
 * member itself (a commit behind the engine's back) and for diagnostics.
 * Polling it or changing its assignment breaks the engine. */
rd_kafka_t *group_kafka(struct group *g);

#endif
