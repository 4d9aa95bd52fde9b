/* offsets: the committable position only moves past a finished prefix. */
#include <stdlib.h>

#include "offsets.h"
#include "testlib.h"

static void test_prefix(void)
{
    uint32_t ep = 0;
    struct offsets *o = offsets_new(4, 8);
    CHECK(o != NULL);
    for (int64_t off = 10; off < 15; off++)
        CHECK_EQ_INT(offsets_track(o, 1, off, &ep), OFFSETS_OK);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    /* Out of order completion: 12 and 11 first, nothing committable. */
    CHECK(offsets_done(o, 1, 12, ep));
    CHECK(offsets_done(o, 1, 11, ep));
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK(offsets_done(o, 1, 10, ep));
    CHECK_EQ_INT(offsets_committable(o, 1), 13); /* 10,11,12 finished */
    CHECK_EQ_INT(offsets_committable(o, 1), -1); /* reported once */
    /* The broker refused that commit: it is handed out again, once. */
    offsets_commit_failed(o, 1, 12); /* not the position handed out: moot */
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    offsets_commit_failed(o, 1, 13);
    CHECK_EQ_INT(offsets_committable(o, 1), 13);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK_EQ_INT(offsets_inflight(o, 1), 2);
    CHECK(!offsets_done(o, 1, 12, ep)); /* already popped */
    CHECK(!offsets_done(o, 1, 99, ep)); /* never tracked */
    CHECK(offsets_done(o, 1, 14, ep));
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK(offsets_done(o, 1, 13, ep));
    /* A late failure of 13 while 15 is newer never moves the commit back. */
    offsets_commit_failed(o, 1, 13);
    CHECK_EQ_INT(offsets_committable(o, 1), 15);
    offsets_commit_failed(o, 1, 13);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK_EQ_INT(offsets_inflight(o, 1), 0);
    /* The refresh: the last position goes out again, once per call, and
     * never instead of a newer one; nothing for a partition never handed
     * out, nor after forget. */
    offsets_recommit(o, 1);
    CHECK_EQ_INT(offsets_committable(o, 1), 15);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK_EQ_INT(offsets_track(o, 1, 15, &ep), OFFSETS_OK);
    CHECK(offsets_done(o, 1, 15, ep));
    offsets_recommit(o, 1);
    CHECK_EQ_INT(offsets_committable(o, 1), 16);
    offsets_recommit(o, 0);
    CHECK_EQ_INT(offsets_committable(o, 0), -1);
    offsets_forget(o, 1);
    offsets_recommit(o, 1);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    /* Other partitions untouched. */
    CHECK_EQ_INT(offsets_committable(o, 0), -1);
    offsets_destroy(o);
}

static void test_gaps_and_bounds(void)
{
    uint32_t ep = 0;
    struct offsets *o = offsets_new(2, 3);
    /* Compacted topic: gaps between offsets. */
    CHECK_EQ_INT(offsets_track(o, 0, 5, &ep), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 9, &ep), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 20, &ep), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 21, &ep), OFFSETS_FULL);
    CHECK_EQ_INT(offsets_track(o, 0, 20, &ep), OFFSETS_ORDER);
    CHECK_EQ_INT(offsets_track(o, 2, 1, &ep), OFFSETS_RANGE);
    CHECK_EQ_INT(offsets_track(o, -1, 1, &ep), OFFSETS_RANGE);
    CHECK(offsets_done(o, 0, 9, ep));
    CHECK(offsets_done(o, 0, 5, ep));
    CHECK_EQ_INT(offsets_committable(o, 0), 10);
    CHECK_EQ_INT(offsets_track(o, 0, 21, &ep), OFFSETS_OK); /* room again, ring wraps */
    CHECK_EQ_INT(offsets_track(o, 0, 22, &ep), OFFSETS_OK);
    CHECK(offsets_done(o, 0, 22, ep));
    CHECK(offsets_done(o, 0, 20, ep));
    CHECK(offsets_done(o, 0, 21, ep));
    CHECK_EQ_INT(offsets_committable(o, 0), 23);
    /* Forget (revoke): done for old offsets is refused, tracking restarts. */
    CHECK_EQ_INT(offsets_track(o, 0, 30, &ep), OFFSETS_OK);
    uint32_t old_ep = ep;
    offsets_forget(o, 0);
    CHECK(!offsets_done(o, 0, 30, old_ep));
    CHECK_EQ_INT(offsets_inflight(o, 0), 0);
    /* Re-assigned from an older position: the same offset is delivered
     * again. A late completion from before the revoke must not finish the
     * new delivery. */
    CHECK_EQ_INT(offsets_track(o, 0, 30, &ep), OFFSETS_OK);
    CHECK(ep != old_ep);
    CHECK(!offsets_done(o, 0, 30, old_ep));
    CHECK_EQ_INT(offsets_inflight(o, 0), 1);
    CHECK(offsets_done(o, 0, 30, ep));
    CHECK_EQ_INT(offsets_committable(o, 0), 31);
    offsets_destroy(o);
    offsets_destroy(NULL);
}

/* Random completion order over many messages: the committed position is
 * always a prefix of finished messages and ends at the last one. */
static void test_random(void)
{
    enum { N = 5000, CAP = 64 };
    uint32_t ep = 0;
    struct offsets *o = offsets_new(1, CAP);
    static bool finished[N];
    int64_t tracked = 0, committed = 0;
    unsigned seed = 12345;
    bool prefix_ok = true;
    while (committed < N) {
        while (tracked < N && offsets_track(o, 0, tracked, &ep) == OFFSETS_OK)
            tracked++;
        /* finish a random in-flight message */
        int64_t lo = committed, span = tracked - committed;
        seed = seed * 1103515245u + 12345u;
        int64_t pick = lo + (int64_t)((seed >> 8) % (unsigned)span);
        while (finished[pick])
            pick = pick + 1 < tracked ? pick + 1 : lo;
        finished[pick] = true;
        CHECK(offsets_done(o, 0, pick, ep) || !"done refused");
        int64_t c = offsets_committable(o, 0);
        if (c >= 0) {
            for (int64_t i = committed; i < c; i++)
                if (!finished[i])
                    prefix_ok = false;
            committed = c;
        }
    }
    CHECK(prefix_ok);
    CHECK_EQ_INT(committed, N);
    offsets_destroy(o);
}

/* Abandoned messages: never committed past, not waited for by a revoke,
 * and what the stall gauge reports. */
static void test_abandon(void)
{
    uint32_t ep = 0;
    struct offsets *o = offsets_new(2, 8);
    CHECK_EQ_INT(offsets_oldest(o, 0, NULL), -1);
    for (int64_t off = 0; off < 4; off++)
        CHECK_EQ_INT(offsets_track(o, 0, off, &ep), OFFSETS_OK);
    CHECK_EQ_INT(offsets_pending(o, 0), 4);
    CHECK(offsets_done(o, 0, 0, ep));
    CHECK(offsets_abandon(o, 0, 1, ep));
    CHECK(!offsets_abandon(o, 0, 1, ep)); /* once */
    CHECK(!offsets_done(o, 0, 1, ep));    /* an abandoned message does not finish */
    CHECK(offsets_done(o, 0, 2, ep));
    CHECK(offsets_done(o, 0, 3, ep));
    CHECK_EQ_INT(offsets_pending(o, 0), 0);
    /* 0 committed; 1 abandoned holds the position for the next owner */
    CHECK_EQ_INT(offsets_committable(o, 0), 1);
    CHECK_EQ_INT(offsets_committable(o, 0), -1);
    CHECK_EQ_INT(offsets_inflight(o, 0), 3);
    int64_t age = -1;
    CHECK_EQ_INT(offsets_oldest(o, 0, &age), 1);
    CHECK(age >= 0 && age < 60000);
    /* a stale epoch changes nothing */
    CHECK(!offsets_abandon(o, 0, 1, ep + 1));
    offsets_forget(o, 0);
    CHECK_EQ_INT(offsets_oldest(o, 0, NULL), -1);
    CHECK_EQ_INT(offsets_pending(o, 0), 0);
    CHECK(!offsets_done(o, 0, 2, ep)); /* forgotten: the old epoch is gone */
    CHECK_EQ_INT(offsets_track(o, 0, 1, &ep), OFFSETS_OK); /* the next owner's delivery */
    CHECK_EQ_INT(offsets_pending(o, 0), 1);
    offsets_destroy(o);
}

int main(void)
{
    test_abandon();
    test_prefix();
    test_gaps_and_bounds();
    test_random();
    return testlib_done();
}
