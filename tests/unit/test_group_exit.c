/*
 * test_group_exit: the last resort of a stop (group_arm_exit). A child
 * process arms it with a short deadline and then hangs, as a stop blocked
 * on an unanswering broker or PostgreSQL would: it must end by itself at
 * the deadline with GROUP_EXIT_FORCED, saying so in its log. A second
 * child arms it and disarms it in time: it must end normally (0). No
 * broker is needed: the consumer is created, never subscribed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "group.h"
#include "testlib.h"

static void *wrap(void *arg, rd_kafka_message_t *m)
{
    (void)arg;
    return m;
}

static bool offer(void *arg, void *item, const struct group_ticket *t, int wait_ms)
{
    (void)arg, (void)item, (void)t, (void)wait_ms;
    return false;
}

static void discard(void *arg, void *item)
{
    (void)arg;
    rd_kafka_message_destroy(item);
}

/* The child: builds a group, arms its exit at 300 ms, then hangs (HANG)
 * or disarms and returns 0. */
static int child(bool hang)
{
    char err[512];
    struct group_config c = {
        .bootstrap = "127.0.0.1:1", .group = "exit-test", .topic = "t", .component = "test"};
    struct group_role role = {NULL, wrap, offer, discard, NULL};
    struct metrics *m = metrics_new();
    struct group *g = group_new(&c, &role, m, err, sizeof err);
    if (g == NULL) {
        fprintf(stderr, "could not create the group: %s\n", err);
        return 1;
    }
    group_arm_exit(g, deadline_after_ms(300));
    if (hang) {
        /* a stop that never finishes */
        for (;;)
            nanosleep(&(struct timespec){1, 0}, NULL);
    }
    group_disarm_exit(g);
    group_destroy(g);
    metrics_destroy(m);
    return 0;
}

/* Runs child(HANG) with stderr in LOG; returns its wait status, or -1 if
 * it was still running after 10 s (then killed). *SECONDS gets its run
 * time. */
static int run(bool hang, const char *log, double *seconds)
{
    double t0 = testlib_now();
    pid_t pid = fork();
    if (pid == 0) {
        if (freopen(log, "w", stderr) == NULL)
            _exit(99);
        _exit(child(hang));
    }
    int st = -1;
    while (testlib_now() - t0 < 10 * VIGIL_TIMEOUT_SCALE) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            *seconds = testlib_now() - t0;
            return st;
        }
        nanosleep(&(struct timespec){0, 20000000}, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    *seconds = testlib_now() - t0;
    return -1;
}

static bool log_says(const char *log, const char *what)
{
    FILE *f = fopen(log, "r");
    char line[2048];
    bool found = false;
    while (f != NULL && !found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, what) != NULL;
    if (f != NULL)
        fclose(f);
    return found;
}

int main(void)
{
    char log[64];
    snprintf(log, sizeof log, "/tmp/test_group_exit.%d.log", (int)getpid());
    double took = 0;

    int st = run(true, log, &took);
    CHECK(st != -1 && WIFEXITED(st));
    CHECK_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, GROUP_EXIT_FORCED);
    CHECK(took < 5 * VIGIL_TIMEOUT_SCALE);
    CHECK(log_says(log, "shutdown grace ran out"));
    printf("hung stop: status %d after %.2f s\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1, took);

    st = run(false, log, &took);
    CHECK(st != -1 && WIFEXITED(st));
    CHECK_EQ_INT(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
    CHECK(!log_says(log, "shutdown grace ran out"));
    printf("disarmed stop: status %d after %.2f s\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1, took);
    unlink(log);
    return testlib_done();
}
