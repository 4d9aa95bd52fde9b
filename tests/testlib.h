/*
 * testlib: the small harness every C test links.
 *
 *   CHECK(cond)                 record a failure (file:line, the expression)
 *   CHECK_EQ_INT(a, b)          ... with both values printed
 *   CHECK_EQ_STR(a, b)
 *   testlib_done()              print "N passed, N failed", return exit status
 *   testlib_env(name)           a variable scripts/services exported; a test
 *                               that needs one and lacks it fails loudly
 *   testlib_wait(pred, arg, s)  poll pred until true or s seconds (scaled for
 *                               sanitizer builds) pass: a condition, not a sleep
 *
 * Not thread-safe: call CHECK from the test's main thread only.
 */
#ifndef VIGIL_TESTLIB_H
#define VIGIL_TESTLIB_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#ifndef VIGIL_TIMEOUT_SCALE
#define VIGIL_TIMEOUT_SCALE 1
#endif

void testlib_check(bool ok, const char *file, int line, const char *expr);
void testlib_checkf(bool ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define CHECK(c) testlib_check((c), __FILE__, __LINE__, #c)
#define CHECK_EQ_INT(a, b)                                                         \
    do {                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                        \
        testlib_checkf(a_ == b_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a, \
                       #b, a_, b_);                                                \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                          \
    do {                                                                            \
        const char *a_ = (a), *b_ = (b);                                            \
        testlib_checkf(a_ && b_ && strcmp(a_, b_) == 0, __FILE__, __LINE__,         \
                       "%s == %s (\"%s\" vs \"%s\")", #a, #b, a_ ? a_ : "(null)",  \
                       b_ ? b_ : "(null)");                                         \
    } while (0)

/* Prints the closing "N passed, N failed" line; returns 0 if none failed. */
int testlib_done(void);

/* Returns the value of environment variable NAME; if unset, reports a
 * failure naming scripts/services and exits 1. */
const char *testlib_env(const char *name);

/* Calls pred(arg) every 20 ms until it returns true (returns true) or
 * seconds * VIGIL_TIMEOUT_SCALE pass (returns false). */
bool testlib_wait(bool (*pred)(void *), void *arg, double seconds);

/* Monotonic seconds. */
double testlib_now(void);

/* Runs a shell command, captures up to cap-1 bytes of stdout in out (may be
 * NULL), returns its exit status (or -1 if it could not run). */
int testlib_run(const char *cmd, char *out, size_t cap);

#endif
