#include "offsets.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* One partition: a ring of tracked messages in offset order. head is the
 * oldest unfinished (or finished-but-not-yet-popped) message. */
enum slot_state { SLOT_PENDING, SLOT_DONE, SLOT_ABANDONED };

struct slot {
    int64_t offset;
    int64_t tracked_ms; /* monotonic clock when tracked */
    enum slot_state state;
};

struct part {
    struct slot *ring; /* capacity slots, allocated on first use */
    size_t head;
    size_t len;
    int64_t last_tracked; /* -1 before the first message */
    int64_t committable;  /* -1: nothing new since the last offsets_committable */
    int64_t handed_out;   /* last position offsets_committable returned, -1 none */
    size_t pending;       /* slots neither done nor abandoned */
    uint32_t epoch;       /* bumped by offsets_forget */
};

struct offsets {
    pthread_mutex_t lock;
    size_t capacity;
    int32_t nparts;
    struct part *parts;
};

struct offsets *offsets_new(int32_t max_partitions, size_t capacity)
{
    if (max_partitions <= 0 || capacity == 0)
        return NULL;
    struct offsets *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    o->parts = calloc((size_t)max_partitions, sizeof *o->parts);
    if (o->parts == NULL) {
        free(o);
        return NULL;
    }
    for (int32_t i = 0; i < max_partitions; i++) {
        o->parts[i].last_tracked = -1;
        o->parts[i].committable = -1;
        o->parts[i].handed_out = -1;
    }
    o->capacity = capacity;
    o->nparts = max_partitions;
    pthread_mutex_init(&o->lock, NULL);
    return o;
}

void offsets_destroy(struct offsets *o)
{
    if (o == NULL)
        return;
    for (int32_t i = 0; i < o->nparts; i++)
        free(o->parts[i].ring);
    free(o->parts);
    pthread_mutex_destroy(&o->lock);
    free(o);
}

static struct slot *slot_at(struct offsets *o, struct part *p, size_t i)
{
    return &p->ring[(p->head + i) % o->capacity];
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The slot of OFFSET in P if it is tracked and still pending, else NULL.
 * Binary search: the ring holds strictly increasing offsets. */
static struct slot *find_pending(struct offsets *o, struct part *p, int64_t offset)
{
    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = slot_at(o, p, mid)->offset;
        if (v < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->len && slot_at(o, p, lo)->offset == offset &&
        slot_at(o, p, lo)->state == SLOT_PENDING)
        return slot_at(o, p, lo);
    return NULL;
}

enum offsets_status offsets_track(struct offsets *o, int32_t partition, int64_t offset,
                                  uint32_t *epoch)
{
    if (partition < 0 || partition >= o->nparts)
        return OFFSETS_RANGE;
    enum offsets_status st = OFFSETS_OK;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    if (p->ring == NULL) {
        p->ring = calloc(o->capacity, sizeof *p->ring);
        if (p->ring == NULL) {
            st = OFFSETS_FULL;
            goto out;
        }
    }
    if (offset <= p->last_tracked) {
        st = OFFSETS_ORDER;
    } else if (p->len == o->capacity) {
        st = OFFSETS_FULL;
    } else {
        struct slot *s = slot_at(o, p, p->len);
        s->offset = offset;
        s->tracked_ms = monotonic_ms();
        s->state = SLOT_PENDING;
        p->len++;
        p->pending++;
        p->last_tracked = offset;
        *epoch = p->epoch;
    }
out:
    pthread_mutex_unlock(&o->lock);
    return st;
}

bool offsets_done(struct offsets *o, int32_t partition, int64_t offset, uint32_t epoch)
{
    if (partition < 0 || partition >= o->nparts)
        return false;
    bool found = false;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    struct slot *s = p->epoch == epoch ? find_pending(o, p, offset) : NULL;
    if (s != NULL) {
        s->state = SLOT_DONE;
        p->pending--;
        found = true;
        /* Pop the finished prefix; its end is the new commit position. An
         * abandoned slot stops it: nothing is ever committed past it. */
        while (p->len > 0 && slot_at(o, p, 0)->state == SLOT_DONE) {
            p->committable = slot_at(o, p, 0)->offset + 1;
            p->head = (p->head + 1) % o->capacity;
            p->len--;
        }
    }
    pthread_mutex_unlock(&o->lock);
    return found;
}

bool offsets_abandon(struct offsets *o, int32_t partition, int64_t offset, uint32_t epoch)
{
    if (partition < 0 || partition >= o->nparts)
        return false;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    struct slot *s = p->epoch == epoch ? find_pending(o, p, offset) : NULL;
    if (s != NULL) {
        s->state = SLOT_ABANDONED;
        p->pending--;
    }
    pthread_mutex_unlock(&o->lock);
    return s != NULL;
}

int64_t offsets_committable(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return -1;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    int64_t c = p->committable;
    p->committable = -1;
    if (c >= 0)
        p->handed_out = c;
    pthread_mutex_unlock(&o->lock);
    return c;
}

void offsets_commit_failed(struct offsets *o, int32_t partition, int64_t offset)
{
    if (partition < 0 || partition >= o->nparts)
        return;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    if (offset == p->handed_out && p->committable < 0)
        p->committable = offset;
    pthread_mutex_unlock(&o->lock);
}

void offsets_recommit(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    if (p->handed_out >= 0 && p->committable < 0)
        p->committable = p->handed_out;
    pthread_mutex_unlock(&o->lock);
}

size_t offsets_inflight(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return 0;
    pthread_mutex_lock(&o->lock);
    size_t n = o->parts[partition].len;
    pthread_mutex_unlock(&o->lock);
    return n;
}

size_t offsets_pending(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return 0;
    pthread_mutex_lock(&o->lock);
    size_t n = o->parts[partition].pending;
    pthread_mutex_unlock(&o->lock);
    return n;
}

int64_t offsets_oldest(struct offsets *o, int32_t partition, int64_t *age_ms)
{
    if (partition < 0 || partition >= o->nparts)
        return -1;
    int64_t off = -1;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    if (p->len > 0) {
        /* the head is never done (done heads are popped at once) */
        const struct slot *s = slot_at(o, p, 0);
        off = s->offset;
        if (age_ms != NULL)
            *age_ms = monotonic_ms() - s->tracked_ms;
    }
    pthread_mutex_unlock(&o->lock);
    return off;
}

void offsets_forget(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return;
    pthread_mutex_lock(&o->lock);
    struct part *p = &o->parts[partition];
    p->head = 0;
    p->len = 0;
    p->last_tracked = -1;
    p->committable = -1;
    p->handed_out = -1;
    p->pending = 0;
    p->epoch++;
    pthread_mutex_unlock(&o->lock);
}
