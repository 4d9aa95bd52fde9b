#include "testlib.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

static int passed;
static int failed;

void testlib_check(bool ok, const char *file, int line, const char *expr)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "FAIL %s:%d: %s\n", file, line, expr);
}

void testlib_checkf(bool ok, const char *file, int line, const char *fmt, ...)
{
    if (ok) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int testlib_done(void)
{
    printf("%d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed == 0 && passed > 0 ? 0 : 1;
}

const char *testlib_env(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0') {
        fprintf(stderr,
                "FAIL: %s is not set: run `eval \"$(scripts/services up)\"` "
                "before the integration tests\n",
                name);
        exit(1);
    }
    return v;
}

double testlib_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool testlib_wait(bool (*pred)(void *), void *arg, double seconds)
{
    double end = testlib_now() + seconds * VIGIL_TIMEOUT_SCALE;
    for (;;) {
        if (pred(arg))
            return true;
        if (testlib_now() > end)
            return false;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int testlib_run(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    size_t n = 0;
    char buf[4096];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, p)) > 0) {
        if (out != NULL && cap > 0) {
            size_t room = cap - 1 - n;
            size_t take = r < room ? r : room;
            memcpy(out + n, buf, take);
            n += take;
        }
    }
    if (out != NULL && cap > 0)
        out[n] = '\0';
    int st = pclose(p);
    if (st == -1)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
