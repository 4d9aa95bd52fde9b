/* offsets: the committable position only moves past a finished prefix. */
#include <stdlib.h>

#include "offsets.h"
#include "testlib.h"

static void test_prefix(void)
{
    struct offsets *o = offsets_new(4, 8);
    CHECK(o != NULL);
    for (int64_t off = 10; off < 15; off++)
        CHECK_EQ_INT(offsets_track(o, 1, off), OFFSETS_OK);
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    /* Out of order completion: 12 and 11 first, nothing committable. */
    CHECK(offsets_done(o, 1, 12));
    CHECK(offsets_done(o, 1, 11));
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK(offsets_done(o, 1, 10));
    CHECK_EQ_INT(offsets_committable(o, 1), 13); /* 10,11,12 finished */
    CHECK_EQ_INT(offsets_committable(o, 1), -1); /* reported once */
    CHECK_EQ_INT(offsets_inflight(o, 1), 2);
    CHECK(!offsets_done(o, 1, 12)); /* already popped */
    CHECK(!offsets_done(o, 1, 99)); /* never tracked */
    CHECK(offsets_done(o, 1, 14));
    CHECK_EQ_INT(offsets_committable(o, 1), -1);
    CHECK(offsets_done(o, 1, 13));
    CHECK_EQ_INT(offsets_committable(o, 1), 15);
    CHECK_EQ_INT(offsets_inflight(o, 1), 0);
    /* Other partitions untouched. */
    CHECK_EQ_INT(offsets_committable(o, 0), -1);
    offsets_destroy(o);
}

static void test_gaps_and_bounds(void)
{
    struct offsets *o = offsets_new(2, 3);
    /* Compacted topic: gaps between offsets. */
    CHECK_EQ_INT(offsets_track(o, 0, 5), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 9), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 20), OFFSETS_OK);
    CHECK_EQ_INT(offsets_track(o, 0, 21), OFFSETS_FULL);
    CHECK_EQ_INT(offsets_track(o, 0, 20), OFFSETS_ORDER);
    CHECK_EQ_INT(offsets_track(o, 2, 1), OFFSETS_RANGE);
    CHECK_EQ_INT(offsets_track(o, -1, 1), OFFSETS_RANGE);
    CHECK(offsets_done(o, 0, 9));
    CHECK(offsets_done(o, 0, 5));
    CHECK_EQ_INT(offsets_committable(o, 0), 10);
    CHECK_EQ_INT(offsets_track(o, 0, 21), OFFSETS_OK); /* room again, ring wraps */
    CHECK_EQ_INT(offsets_track(o, 0, 22), OFFSETS_OK);
    CHECK(offsets_done(o, 0, 22));
    CHECK(offsets_done(o, 0, 20));
    CHECK(offsets_done(o, 0, 21));
    CHECK_EQ_INT(offsets_committable(o, 0), 23);
    /* Forget (revoke): done for old offsets is refused, tracking restarts. */
    CHECK_EQ_INT(offsets_track(o, 0, 30), OFFSETS_OK);
    offsets_forget(o, 0);
    CHECK(!offsets_done(o, 0, 30));
    CHECK_EQ_INT(offsets_inflight(o, 0), 0);
    CHECK_EQ_INT(offsets_track(o, 0, 3), OFFSETS_OK); /* re-assigned from an older position */
    offsets_destroy(o);
    offsets_destroy(NULL);
}

/* Random completion order over many messages: the committed position is
 * always a prefix of finished messages and ends at the last one. */
static void test_random(void)
{
    enum { N = 5000, CAP = 64 };
    struct offsets *o = offsets_new(1, CAP);
    static bool finished[N];
    int64_t tracked = 0, committed = 0;
    unsigned seed = 12345;
    bool prefix_ok = true;
    while (committed < N) {
        while (tracked < N && offsets_track(o, 0, tracked) == OFFSETS_OK)
            tracked++;
        /* finish a random in-flight message */
        int64_t lo = committed, span = tracked - committed;
        seed = seed * 1103515245u + 12345u;
        int64_t pick = lo + (int64_t)((seed >> 8) % (unsigned)span);
        while (finished[pick])
            pick = pick + 1 < tracked ? pick + 1 : lo;
        finished[pick] = true;
        CHECK(offsets_done(o, 0, pick) || !"done refused");
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

int main(void)
{
    test_prefix();
    test_gaps_and_bounds();
    test_random();
    return testlib_done();
}
