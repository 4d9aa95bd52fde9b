/*
 * chan: a bounded multi-producer, multi-consumer queue of void * with close,
 * Go's buffered `chan` -- the hand-off between pipeline stages.
 *
 *   chan_new(cap)                   / chan_destroy(ch)
 *   chan_send(ch, item, deadline)   block while full: OK, TIMEOUT or CLOSED
 *   chan_try_send(ch, item)         never blocks:     OK, FULL or CLOSED
 *   chan_recv(ch, &item, deadline)  block while empty: OK, TIMEOUT or END
 *   chan_try_recv(ch, &item)        never blocks:     OK, EMPTY or END
 *   chan_close(ch)                  no more sends; receivers drain, then END
 *   chan_len(ch), chan_cap(ch)
 *
 * Items are opaque pointers (NULL is a valid item); the channel never
 * dereferences or frees them. Items come out in the order they went in, so
 * what one producer sends, each consumer sees in that producer's order.
 *
 * Close is how a producer says "no more": every blocked sender gets CLOSED
 * and every receiver gets the items queued before the close, then END, so
 * nothing accepted is lost. Sending on a closed channel is not a crash (as it
 * is in Go): the send reports CHAN_CLOSED and the caller still owns the item.
 *
 * Thread-safety: every function may be called from any thread at the same
 * time, except chan_destroy, which must be the last call on the channel.
 * Bounded by construction: at most cap items are ever queued.
 */
#ifndef VIGIL_CHAN_H
#define VIGIL_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "deadline.h"

struct chan;

enum chan_status {
    CHAN_OK = 0,  /* the item was queued / received */
    CHAN_FULL,    /* try_send: no room; the caller still owns the item */
    CHAN_EMPTY,   /* try_recv: nothing queued, channel open */
    CHAN_TIMEOUT, /* the deadline passed first; nothing changed */
    CHAN_CLOSED,  /* send on a closed channel; the caller still owns the item */
    CHAN_END,     /* recv on a closed and drained channel: no item will come */
};

/* Returns a short constant name for ST ("ok", "full", ...), for logs. */
const char *chan_status_str(enum chan_status st);

/* Returns a new open, empty channel holding at most CAPACITY items
 * (CAPACITY >= 1; Go's unbuffered channel has no equivalent here), or NULL
 * if memory or pthread resources ran out. The caller owns it and frees it
 * with chan_destroy. */
struct chan *chan_new(size_t capacity);

/* Frees CH. Items still queued are NOT freed (the channel does not know what
 * they are): drain them first with chan_try_recv if they own memory. Must be
 * called once no thread uses CH any more (join them first). NULL is a no-op. */
void chan_destroy(struct chan *ch);

/* Queues ITEM, blocking while the channel is full, until DEADLINE
 * (deadline_after_ms, or DEADLINE_FOREVER). Returns CHAN_OK (the channel now
 * holds ITEM for a receiver), CHAN_TIMEOUT, or CHAN_CLOSED (closed before or
 * while waiting). On anything but CHAN_OK the caller still owns ITEM. */
enum chan_status chan_send(struct chan *ch, void *item, deadline_t deadline);

/* Queues ITEM if there is room now. Returns CHAN_OK, CHAN_FULL or
 * CHAN_CLOSED; never blocks. On anything but CHAN_OK the caller still owns
 * ITEM. */
enum chan_status chan_try_send(struct chan *ch, void *item);

/* Takes the oldest item into *ITEM, blocking while the channel is empty and
 * open, until DEADLINE. Returns CHAN_OK (*ITEM set, the caller owns the
 * item), CHAN_TIMEOUT, or CHAN_END (closed and drained). *ITEM is untouched
 * unless CHAN_OK. Items queued before chan_close are still delivered. */
enum chan_status chan_recv(struct chan *ch, void **item, deadline_t deadline);

/* As chan_recv, but never blocks: returns CHAN_OK, CHAN_EMPTY or CHAN_END. */
enum chan_status chan_try_recv(struct chan *ch, void **item);

/* Closes CH: later sends return CHAN_CLOSED, blocked senders and receivers
 * wake; receivers drain what is queued, then get CHAN_END. Idempotent.
 * Cannot fail. */
void chan_close(struct chan *ch);

/* Returns true once chan_close has been called. */
bool chan_is_closed(struct chan *ch);

/* Returns the number of queued items: a snapshot, stale as soon as it
 * returns; for metrics and backpressure heuristics, not synchronisation. */
size_t chan_len(struct chan *ch);

/* Returns the capacity given to chan_new. */
size_t chan_cap(const struct chan *ch);

#endif
