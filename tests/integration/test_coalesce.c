/*
 * console/coalesce against the real PostgreSQL: a request that arrived
 * before an identical statement was sent shares its result; one that
 * arrived after it was sent, or asks with other parameters, runs its own
 * and sees a row committed in between; when the shared statement fails,
 * the waiting request runs its own. The statements wait on an advisory
 * lock the test holds, so every step is ordered by a condition, not a
 * sleep.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "coalesce.h"
#include "deadline.h"
#include "metrics.h"
#include "pg.h"
#include "testlib.h"

#define LOCK_KEY "7304021"
/* The count is read in the statement's snapshot, taken before it waits. */
#define SQL                                                                              \
    "SELECT (SELECT count(*) FROM console_coalesce_test WHERE k = $1), "                   \
    "pg_advisory_lock_shared($2::bigint)::text, pg_advisory_unlock_shared($2::bigint)"

struct call {
    struct coalesce *co;
    PGconn *conn;
    const char *k;
    int64_t arrived_ns;
    const PGresult *res;
    struct coalesce_ref ref;
    char err[512];
    pthread_t th;
};

static void *call_run(void *arg)
{
    struct call *c = arg;
    const char *params[] = {c->k, LOCK_KEY};
    c->res = coalesce_query(c->co, c->conn, SQL, 2, params, c->arrived_ns, &c->ref, c->err,
                            sizeof c->err);
    return NULL;
}

static void call_start(struct call *c, struct coalesce *co, PGconn *conn, const char *k,
                       int64_t arrived_ns)
{
    memset(c, 0, sizeof *c);
    c->co = co;
    c->conn = conn;
    c->k = k;
    c->arrived_ns = arrived_ns;
    CHECK(pthread_create(&c->th, NULL, call_run, c) == 0);
}

static const char *count_of(const struct call *c)
{
    return c->res != NULL ? PQgetvalue(c->res, 0, 0) : "(failed)";
}

struct waiters {
    PGconn *main;
    int want;
};

/* WANT backends wait for the test's advisory lock. */
static bool lock_waiters(void *arg)
{
    struct waiters *w = arg;
    char err[512];
    PGresult *r = pg_query(w->main,
                           "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                           0, NULL, err, sizeof err);
    bool ok = r != NULL && atoi(PQgetvalue(r, 0, 0)) == w->want;
    PQclear(r);
    return ok;
}

struct joined {
    struct coalesce *co;
    int want;
};

static bool coalesce_waiters(void *arg)
{
    struct joined *j = arg;
    return coalesce_waiting(j->co) == j->want;
}

static void wait_lock_waiters(PGconn *main, int want)
{
    struct waiters w = {main, want};
    CHECK(testlib_wait(lock_waiters, &w, 20.0 * VIGIL_TIMEOUT_SCALE));
}

static void wait_joined(struct coalesce *co, int want)
{
    struct joined j = {co, want};
    CHECK(testlib_wait(coalesce_waiters, &j, 20.0 * VIGIL_TIMEOUT_SCALE));
}

static void test_fresh(PGconn *main, PGconn *conns[4], struct coalesce *co, struct metric *shared)
{
    char err[512];
    CHECK_EQ_INT(pg_command(main, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL, err, sizeof err), 0);
    int64_t t0 = deadline_now();
    struct call lead, early, late, other;
    call_start(&lead, co, conns[0], "a", t0);
    wait_lock_waiters(main, 1);
    /* arrived before the leader's statement was sent: joins it */
    call_start(&early, co, conns[1], "a", t0);
    wait_joined(co, 1);
    /* a row committed after the leader's snapshot */
    CHECK_EQ_INT(pg_command(main, "INSERT INTO console_coalesce_test VALUES ('a')", 0, NULL, err,
                            sizeof err),
                 0);
    /* arrived after it was sent, and other parameters: both run their own */
    call_start(&late, co, conns[2], "a", deadline_now());
    call_start(&other, co, conns[3], "b", t0);
    wait_lock_waiters(main, 3);
    CHECK_EQ_INT(coalesce_waiting(co), 1);
    CHECK_EQ_INT(pg_command(main, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, err, sizeof err), 0);
    pthread_join(lead.th, NULL);
    pthread_join(early.th, NULL);
    pthread_join(late.th, NULL);
    pthread_join(other.th, NULL);

    CHECK(lead.res != NULL && early.res == lead.res);
    CHECK_EQ_STR(count_of(&lead), "0");
    CHECK_EQ_STR(count_of(&early), "0");
    CHECK(late.res != NULL && late.res != lead.res);
    CHECK_EQ_STR(count_of(&late), "1"); /* the row committed before it arrived */
    CHECK(other.res != NULL && other.res != lead.res);
    CHECK_EQ_STR(count_of(&other), "0");
    CHECK(metric_value(shared) == 1.0);
    /* the shared result outlives its runner's reference */
    coalesce_release(co, &lead.ref);
    CHECK_EQ_STR(count_of(&early), "0");
    coalesce_release(co, &early.ref);
    coalesce_release(co, &late.ref);
    coalesce_release(co, &other.ref);
    CHECK(early.ref.flight == NULL);
}

/* The runner's statement is cancelled (its connection's statement_timeout):
 * the request that joined it runs its own and gets an answer. */
static void test_failed_runner(PGconn *main, PGconn *conns[4], struct coalesce *co,
                               struct metric *shared)
{
    char err[512];
    CHECK_EQ_INT(pg_command(conns[0], "SET statement_timeout = '2s'", 0, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(pg_command(main, "SELECT pg_advisory_lock(" LOCK_KEY ")", 0, NULL, err, sizeof err), 0);
    int64_t t0 = deadline_now();
    struct call lead, follower;
    call_start(&lead, co, conns[0], "a", t0);
    wait_lock_waiters(main, 1);
    call_start(&follower, co, conns[1], "a", t0);
    wait_joined(co, 1);
    pthread_join(lead.th, NULL);
    CHECK(lead.res == NULL);
    CHECK(strstr(lead.err, "57014") != NULL); /* query_canceled */
    /* the follower's own statement now waits for the lock in its place */
    wait_lock_waiters(main, 1);
    CHECK_EQ_INT(coalesce_waiting(co), 0);
    CHECK_EQ_INT(pg_command(main, "SELECT pg_advisory_unlock(" LOCK_KEY ")", 0, NULL, err, sizeof err), 0);
    pthread_join(follower.th, NULL);
    CHECK(follower.res != NULL);
    CHECK_EQ_STR(count_of(&follower), "1");
    CHECK(metric_value(shared) == 1.0); /* unchanged: nothing was shared */
    coalesce_release(co, &follower.ref);
    CHECK_EQ_INT(pg_command(conns[0], "RESET statement_timeout", 0, NULL, err, sizeof err), 0);
}

int main(void)
{
    char err[512];
    const char *ci = testlib_env("VIGIL_PG_CONNINFO");
    PGconn *main_conn = pg_connect(ci, err, sizeof err);
    CHECK(main_conn != NULL);
    if (main_conn == NULL) {
        fprintf(stderr, "%s\n", err);
        return testlib_done();
    }
    PGconn *conns[4];
    for (int i = 0; i < 4; i++) {
        conns[i] = pg_connect(ci, err, sizeof err);
        CHECK(conns[i] != NULL);
        if (conns[i] == NULL) {
            fprintf(stderr, "%s\n", err);
            return testlib_done();
        }
    }
    CHECK_EQ_INT(pg_command(main_conn, "DROP TABLE IF EXISTS console_coalesce_test", 0, NULL, err,
                            sizeof err),
                 0);
    CHECK_EQ_INT(pg_command(main_conn, "CREATE TABLE console_coalesce_test (k text)", 0, NULL, err,
                            sizeof err),
                 0);
    struct metrics *m = metrics_new();
    struct coalesce *co = coalesce_new(m);
    CHECK(co != NULL);
    struct metric *shared = metrics_counter(m, "vigil_console_coalesced_total", "", NULL);
    test_fresh(main_conn, conns, co, shared);
    test_failed_runner(main_conn, conns, co, shared);
    coalesce_destroy(co);
    metrics_destroy(m);
    pg_command(main_conn, "DROP TABLE console_coalesce_test", 0, NULL, err, sizeof err);
    for (int i = 0; i < 4; i++)
        PQfinish(conns[i]);
    PQfinish(main_conn);
    return testlib_done();
}
