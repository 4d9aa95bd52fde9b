/* chan: FIFO, bound, deadlines, close semantics, and an MPMC stress in which
 * every item must arrive exactly once and in each producer's order. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "chan.h"
#include "testlib.h"

#define MS INT64_C(1000000)

static void test_fifo_and_bound(void)
{
    struct chan *ch = chan_new(4);
    CHECK(ch != NULL);
    CHECK_EQ_INT(chan_cap(ch), 4);
    for (uintptr_t i = 1; i <= 4; i++)
        CHECK_EQ_INT(chan_try_send(ch, (void *)i), CHAN_OK);
    CHECK_EQ_INT(chan_len(ch), 4);
    CHECK_EQ_INT(chan_try_send(ch, (void *)5), CHAN_FULL);
    CHECK_EQ_INT(chan_len(ch), 4);

    void *item = NULL;
    CHECK_EQ_INT(chan_recv(ch, &item, DEADLINE_FOREVER), CHAN_OK);
    CHECK_EQ_INT((uintptr_t)item, 1);
    /* Room for one more: it goes to the back, behind 2, 3, 4 (wrap-around). */
    CHECK_EQ_INT(chan_try_send(ch, (void *)5), CHAN_OK);
    for (uintptr_t want = 2; want <= 5; want++) {
        CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_OK);
        CHECK_EQ_INT((uintptr_t)item, want);
    }
    CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_EMPTY);
    CHECK_EQ_INT(chan_len(ch), 0);

    /* NULL is an item like any other. */
    CHECK_EQ_INT(chan_try_send(ch, NULL), CHAN_OK);
    item = &item;
    CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_OK);
    CHECK(item == NULL);
    chan_destroy(ch);
    chan_destroy(NULL);
}

static void test_deadlines(void)
{
    struct chan *ch = chan_new(1);
    void *item = (void *)0x1;

    deadline_t t0 = deadline_now();
    CHECK_EQ_INT(chan_recv(ch, &item, deadline_after_ms(50)), CHAN_TIMEOUT);
    int64_t took = deadline_now() - t0;
    CHECK(took >= 50 * MS);
    CHECK(took < 2000 * MS * VIGIL_TIMEOUT_SCALE);
    CHECK(item == (void *)0x1); /* untouched on timeout */

    CHECK_EQ_INT(chan_send(ch, (void *)7, deadline_after_ms(50)), CHAN_OK);
    t0 = deadline_now();
    CHECK_EQ_INT(chan_send(ch, (void *)8, deadline_after_ms(50)), CHAN_TIMEOUT);
    took = deadline_now() - t0;
    CHECK(took >= 50 * MS);
    CHECK_EQ_INT(chan_len(ch), 1);

    /* An expired deadline still succeeds when no wait is needed. */
    CHECK_EQ_INT(chan_recv(ch, &item, deadline_after_ms(-1)), CHAN_OK);
    CHECK_EQ_INT((uintptr_t)item, 7);
    chan_destroy(ch);
}

struct blocked {
    struct chan *ch;
    atomic_int state; /* 0 running, 1 returned */
    enum chan_status st;
    void *item;
};

static void *recv_forever(void *p)
{
    struct blocked *b = p;
    b->st = chan_recv(b->ch, &b->item, DEADLINE_FOREVER);
    atomic_store(&b->state, 1);
    return NULL;
}

static void *send_forever(void *p)
{
    struct blocked *b = p;
    b->st = chan_send(b->ch, b->item, DEADLINE_FOREVER);
    atomic_store(&b->state, 1);
    return NULL;
}

static bool returned(void *p)
{
    return atomic_load(&((struct blocked *)p)->state) == 1;
}

static void test_close(void)
{
    struct chan *ch = chan_new(8);
    for (uintptr_t i = 1; i <= 3; i++)
        CHECK_EQ_INT(chan_send(ch, (void *)i, DEADLINE_FOREVER), CHAN_OK);
    CHECK(!chan_is_closed(ch));
    chan_close(ch);
    chan_close(ch); /* idempotent */
    CHECK(chan_is_closed(ch));
    CHECK_EQ_INT(chan_send(ch, (void *)9, DEADLINE_FOREVER), CHAN_CLOSED);
    CHECK_EQ_INT(chan_try_send(ch, (void *)9), CHAN_CLOSED);

    /* Receivers drain what was queued before the close, in order, then END. */
    void *item = NULL;
    for (uintptr_t want = 1; want <= 3; want++) {
        CHECK_EQ_INT(chan_recv(ch, &item, DEADLINE_FOREVER), CHAN_OK);
        CHECK_EQ_INT((uintptr_t)item, want);
    }
    CHECK_EQ_INT(chan_recv(ch, &item, DEADLINE_FOREVER), CHAN_END);
    CHECK_EQ_INT(chan_recv(ch, &item, deadline_after_ms(10)), CHAN_END);
    CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_END);
    chan_destroy(ch);

    /* Close wakes a receiver blocked on an empty channel. */
    ch = chan_new(1);
    struct blocked r = {.ch = ch};
    pthread_t t;
    pthread_create(&t, NULL, recv_forever, &r);
    CHECK(!testlib_wait(returned, &r, 0.1)); /* still blocked */
    chan_close(ch);
    CHECK(testlib_wait(returned, &r, 5));
    pthread_join(t, NULL);
    CHECK_EQ_INT(r.st, CHAN_END);
    chan_destroy(ch);

    /* Close wakes a sender blocked on a full channel with CLOSED. */
    ch = chan_new(1);
    CHECK_EQ_INT(chan_try_send(ch, (void *)1), CHAN_OK);
    struct blocked s = {.ch = ch, .item = (void *)2};
    pthread_create(&t, NULL, send_forever, &s);
    CHECK(!testlib_wait(returned, &s, 0.1));
    chan_close(ch);
    CHECK(testlib_wait(returned, &s, 5));
    pthread_join(t, NULL);
    CHECK_EQ_INT(s.st, CHAN_CLOSED);
    CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_OK); /* the first stays */
    CHECK_EQ_INT((uintptr_t)item, 1);
    CHECK_EQ_INT(chan_try_recv(ch, &item), CHAN_END);
    chan_destroy(ch);

    /* A blocked receiver gets an item sent later. */
    ch = chan_new(1);
    struct blocked r2 = {.ch = ch};
    pthread_create(&t, NULL, recv_forever, &r2);
    CHECK_EQ_INT(chan_send(ch, (void *)42, DEADLINE_FOREVER), CHAN_OK);
    CHECK(testlib_wait(returned, &r2, 5));
    pthread_join(t, NULL);
    CHECK_EQ_INT(r2.st, CHAN_OK);
    CHECK_EQ_INT((uintptr_t)r2.item, 42);
    chan_destroy(ch);
}

/* --- MPMC stress ------------------------------------------------------- */

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 50000
#define TOTAL (PRODUCERS * PER_PRODUCER)

struct stress {
    struct chan *ch;
    atomic_uchar seen[TOTAL];
    atomic_int duplicates;
    atomic_int out_of_order;
    atomic_int bad_items;
};

struct producer {
    struct stress *st;
    uint32_t id;
    int failures;
};

struct consumer {
    struct stress *st;
    uint64_t sum;
    uint64_t xor;
    long count;
};

/* Items are (producer, sequence) packed, plus one so no item is NULL and a
 * lost or invented value shows in the checks. */
static uintptr_t encode(uint32_t producer, uint32_t seq)
{
    return ((uintptr_t)producer * PER_PRODUCER + seq) + 1;
}

static void *produce(void *p)
{
    struct producer *pr = p;
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        if (chan_send(pr->st->ch, (void *)encode(pr->id, seq), DEADLINE_FOREVER) != CHAN_OK)
            pr->failures++;
    }
    return NULL;
}

static void *consume(void *p)
{
    struct consumer *c = p;
    long last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    void *item;
    while (chan_recv(c->st->ch, &item, DEADLINE_FOREVER) == CHAN_OK) {
        uintptr_t v = (uintptr_t)item;
        if (v == 0 || v > TOTAL) {
            atomic_fetch_add(&c->st->bad_items, 1);
            continue;
        }
        uintptr_t idx = v - 1;
        uint32_t prod = (uint32_t)(idx / PER_PRODUCER);
        long seq = (long)(idx % PER_PRODUCER);
        /* One consumer's receives are ordered, so it must see each
         * producer's items in increasing sequence. */
        if (seq <= last[prod])
            atomic_fetch_add(&c->st->out_of_order, 1);
        last[prod] = seq;
        if (atomic_exchange(&c->st->seen[idx], 1) != 0)
            atomic_fetch_add(&c->st->duplicates, 1);
        c->sum += v;
        c->xor ^= v;
        c->count++;
    }
    return NULL;
}

static void test_mpmc_stress(void)
{
    struct stress *st = calloc(1, sizeof *st);
    st->ch = chan_new(64); /* small, so both sides block often */
    pthread_t pt[PRODUCERS], ct[CONSUMERS];
    struct producer pr[PRODUCERS];
    struct consumer co[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        co[i] = (struct consumer){.st = st};
        pthread_create(&ct[i], NULL, consume, &co[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pr[i] = (struct producer){.st = st, .id = (uint32_t)i};
        pthread_create(&pt[i], NULL, produce, &pr[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(pt[i], NULL);
        CHECK_EQ_INT(pr[i].failures, 0);
    }
    chan_close(st->ch);
    uint64_t sum = 0, xor = 0;
    long count = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(ct[i], NULL);
        sum += co[i].sum;
        xor ^= co[i].xor;
        count += co[i].count;
    }
    uint64_t want_sum = 0, want_xor = 0;
    for (uint64_t v = 1; v <= TOTAL; v++) {
        want_sum += v;
        want_xor ^= v;
    }
    long missing = 0;
    for (long i = 0; i < TOTAL; i++)
        if (atomic_load(&st->seen[i]) == 0)
            missing++;
    CHECK_EQ_INT(count, TOTAL);
    CHECK_EQ_INT(missing, 0);
    CHECK_EQ_INT(atomic_load(&st->duplicates), 0);
    CHECK_EQ_INT(atomic_load(&st->out_of_order), 0);
    CHECK_EQ_INT(atomic_load(&st->bad_items), 0);
    CHECK(sum == want_sum);
    CHECK(xor == want_xor);
    CHECK_EQ_INT(chan_len(st->ch), 0);
    chan_destroy(st->ch);
    free(st);
}

int main(void)
{
    test_fifo_and_bound();
    test_deadlines();
    test_close();
    test_mpmc_stress();
    CHECK_EQ_STR(chan_status_str(CHAN_END), "end");
    return testlib_done();
}
