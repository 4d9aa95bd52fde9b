/*
 * subject_cache: an analysis thread's subjects (see subject_cache.h).
 *
 * DESIGN: a chained hash table of fixed size (65,536 buckets: a thread
 * holds up to --max-subjects, 100,000 by default, so chains stay short)
 * threaded on a doubly linked list in recency order, most recent at the
 * head; eviction takes the tail. Written by hand: Debian has no small C
 * library for an intrusive LRU map, and this is a page of code.
 */
#include "subject_cache.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define BUCKETS 65536

struct subject {
    struct subject *hnext;
    struct subject *lru_prev, *lru_next; /* most recent at head */
    uint64_t hash;
    int gen;
    size_t bytes; /* of the state and this entry, at the last measure */
    struct subject_state *st;
    char key[SUBJECT_CACHE_KEY_MAX];
};

struct subject_cache {
    struct subject **buckets;
    size_t nbuckets;
    size_t nsubjects;
    size_t max_subjects;
    size_t bytes;     /* over every subject's last measure */
    size_t max_bytes; /* 0: no byte limit */
    struct subject *lru_head, *lru_tail;
};

static void lru_unlink(struct subject_cache *c, struct subject *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        c->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        c->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push(struct subject_cache *c, struct subject *s)
{
    s->lru_next = c->lru_head;
    s->lru_prev = NULL;
    if (c->lru_head)
        c->lru_head->lru_prev = s;
    c->lru_head = s;
    if (c->lru_tail == NULL)
        c->lru_tail = s;
}

static void evict(struct subject_cache *c, struct subject *s)
{
    struct subject **pp = &c->buckets[s->hash % c->nbuckets];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    lru_unlink(c, s);
    c->bytes -= s->bytes;
    subject_state_destroy(s->st);
    free(s);
    c->nsubjects--;
}

/* The subject KEY (hash H) if it is in memory, else NULL. Changes nothing. */
static struct subject *lookup(const struct subject_cache *c, const char *key, uint64_t h)
{
    for (struct subject *s = c->buckets[h % c->nbuckets]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

static void measure(struct subject_cache *c, struct subject *s)
{
    c->bytes -= s->bytes;
    s->bytes = sizeof *s + subject_state_bytes(s->st);
    c->bytes += s->bytes;
}

struct subject_cache *subject_cache_new(size_t max_subjects, size_t max_bytes)
{
    struct subject_cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->nbuckets = BUCKETS;
    c->max_subjects = max_subjects;
    c->max_bytes = max_bytes;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void subject_cache_destroy(struct subject_cache *c)
{
    if (c == NULL)
        return;
    while (c->lru_head != NULL)
        evict(c, c->lru_head);
    free(c->buckets);
    free(c);
}

struct subject_state *subject_cache_get(struct subject_cache *c, const char *key, int gen,
                                        bool *fresh)
{
    uint64_t h = hash_str(key, HASH_SEED);
    struct subject *s = lookup(c, key, h);
    if (s != NULL) {
        lru_unlink(c, s);
        lru_push(c, s);
        *fresh = s->gen != gen;
        if (*fresh) {
            subject_state_reset(s->st);
            s->gen = gen;
        }
        return s->st;
    }
    while (c->nsubjects >= c->max_subjects && c->lru_tail != NULL)
        evict(c, c->lru_tail);
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->st = subject_state_new();
    if (s->st == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->key, sizeof s->key, "%s", key);
    s->hash = h;
    s->gen = gen;
    s->hnext = c->buckets[h % c->nbuckets];
    c->buckets[h % c->nbuckets] = s;
    lru_push(c, s);
    c->nsubjects++;
    measure(c, s);
    *fresh = true;
    return s->st;
}

bool subject_cache_known(const struct subject_cache *c, const char *key, int gen)
{
    const struct subject *s = lookup(c, key, hash_str(key, HASH_SEED));
    return s != NULL && s->gen == gen;
}

void subject_cache_drop(struct subject_cache *c, const char *key)
{
    struct subject *s = lookup(c, key, hash_str(key, HASH_SEED));
    if (s != NULL)
        evict(c, s);
}

void subject_cache_settle(struct subject_cache *c)
{
    if (c->lru_head == NULL)
        return;
    measure(c, c->lru_head);
    while (c->max_bytes > 0 && c->bytes > c->max_bytes && c->lru_tail != c->lru_head)
        evict(c, c->lru_tail);
}

size_t subject_cache_bytes(const struct subject_cache *c)
{
    return c->bytes;
}
