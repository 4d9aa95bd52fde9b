/*
 * offsets: per-partition tracking of in-flight messages, so a partition's
 * committed offset only ever moves past messages whose every effect is
 * durable (rows committed in PostgreSQL, alerts and dead letters
 * acknowledged by Kafka).
 *
 * Messages of one partition enter in offset order (offsets_track) but finish
 * in any order (offsets_done), because different subjects go to different
 * analysis threads. The committable position is one past the last message of
 * the longest finished prefix. Offsets need not be contiguous (compaction and
 * transaction markers leave gaps): the prefix is over tracked messages, not
 * over integers.
 *
 * Bounded: each partition holds at most `capacity` in-flight messages;
 * offsets_track refuses the next one (the caller pauses the partition).
 *
 * Thread-safety: every function may be called from any thread; one mutex
 * guards the whole tracker (operations are O(log n) or amortised O(1)).
 */
#ifndef VIGIL_OFFSETS_H
#define VIGIL_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct offsets;

/* Returns a tracker allowing CAPACITY in-flight messages per partition and
 * partitions 0..MAX_PARTITIONS-1, or NULL on allocation failure. */
struct offsets *offsets_new(int32_t max_partitions, size_t capacity);

/* Frees the tracker. NULL is a no-op. */
void offsets_destroy(struct offsets *o);

enum offsets_status {
    OFFSETS_OK = 0,
    OFFSETS_FULL,     /* capacity reached: pause the partition, try again later */
    OFFSETS_ORDER,    /* offset not above the last tracked one: a replay after seek */
    OFFSETS_RANGE,    /* partition out of range */
};

/* Records that the message at OFFSET of PARTITION entered the pipeline and
 * writes the partition's current epoch to *EPOCH (pass it to offsets_done).
 * On anything but OFFSETS_OK nothing changed. */
enum offsets_status offsets_track(struct offsets *o, int32_t partition, int64_t offset,
                                  uint32_t *epoch);

/* Marks a tracked message finished. Returns false (and changes nothing) if
 * it is not tracked or EPOCH is not the partition's current one: its
 * partition was revoked and forgotten meanwhile, perhaps re-assigned and
 * the same offset tracked again for a new delivery, which this stale
 * completion must not finish. */
bool offsets_done(struct offsets *o, int32_t partition, int64_t offset, uint32_t epoch);

/* Marks a tracked message given up: it will not finish here (shutdown,
 * revoke, a stage that cannot complete it). It stays in the tracker, so the
 * committed position never moves past it and the partition's next owner
 * reads it again, but it no longer counts as pending. Returns false (and
 * changes nothing) on the same conditions as offsets_done. */
bool offsets_abandon(struct offsets *o, int32_t partition, int64_t offset, uint32_t epoch);

/* Returns the offset to commit for PARTITION (one past the last message of
 * the finished prefix), or -1 if nothing new has finished since the last
 * call that returned a value (so each position is committed once). */
int64_t offsets_committable(struct offsets *o, int32_t partition);

/* Reports that the commit of OFFSET for PARTITION failed. If OFFSET is the
 * last position offsets_committable handed out and nothing newer has
 * finished since, the next offsets_committable returns it again, so a
 * commit the broker refused (coordinator moved, timeout) is retried
 * instead of leaving the group behind. An older position's failure is
 * moot: a newer one is on its way. */
void offsets_commit_failed(struct offsets *o, int32_t partition, int64_t offset);

/* Hands out PARTITION's last position again, unless a newer one waits:
 * the next offsets_committable returns it. Commits are asynchronous and
 * librdkafka retries a refused one by itself, so an older position can
 * reach the broker after a newer one that succeeded and move the group
 * back, with every callback reporting success; committing the current
 * position again from time to time puts it right. */
void offsets_recommit(struct offsets *o, int32_t partition);

/* Returns the number of tracked messages not yet popped: pending,
 * abandoned, or finished behind one of those. */
size_t offsets_inflight(struct offsets *o, int32_t partition);

/* Returns the number of tracked messages still pending (neither finished
 * nor abandoned): what a revoke waits for. */
size_t offsets_pending(struct offsets *o, int32_t partition);

/* Returns the offset of PARTITION's oldest unfinished message (pending or
 * abandoned; the one the committed position waits for) and, if AGE_MS is
 * not NULL, how long ago it was tracked; -1 when nothing is unfinished. */
int64_t offsets_oldest(struct offsets *o, int32_t partition, int64_t *age_ms);

/* Forgets everything about PARTITION (after it was revoked and drained, or
 * lost) and starts a new epoch: offsets_done calls for messages tracked
 * before return false. */
void offsets_forget(struct offsets *o, int32_t partition);

#endif
