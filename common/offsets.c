#include "offsets.h"

#include <pthread.h>
#include <stdlib.h>

/* One partition: a ring of tracked messages in offset order. head is the
 * oldest unfinished (or finished-but-not-yet-popped) message. */
struct slot {
    int64_t offset;
    bool done;
};

struct part {
    struct slot *ring; /* capacity slots, allocated on first use */
    size_t head;
    size_t len;
    int64_t last_tracked; /* -1 before the first message */
    int64_t committable;  /* -1: nothing new since the last offsets_committable */
    int64_t handed_out;   /* last position offsets_committable returned, -1 none */
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
        s->done = false;
        p->len++;
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
    if (p->epoch != epoch)
        goto out;
    /* Binary search: the ring holds strictly increasing offsets. */
    size_t lo = 0, hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = slot_at(o, p, mid)->offset;
        if (v < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < p->len && slot_at(o, p, lo)->offset == offset && !slot_at(o, p, lo)->done) {
        slot_at(o, p, lo)->done = true;
        found = true;
        /* Pop the finished prefix; its end is the new commit position. */
        while (p->len > 0 && slot_at(o, p, 0)->done) {
            p->committable = slot_at(o, p, 0)->offset + 1;
            p->head = (p->head + 1) % o->capacity;
            p->len--;
        }
    }
out:
    pthread_mutex_unlock(&o->lock);
    return found;
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

size_t offsets_inflight(struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return 0;
    pthread_mutex_lock(&o->lock);
    size_t n = o->parts[partition].len;
    pthread_mutex_unlock(&o->lock);
    return n;
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
    p->epoch++;
    pthread_mutex_unlock(&o->lock);
}
