/*
 * alerting/dedupe's batched statements against the real PostgreSQL of
 * scripts/services: a batch claim says, per key and in the caller's order,
 * owned / busy / done; a lease that ran out is taken over; outcomes land
 * with their provider id or error; ids that would break a hand-built array
 * literal round-trip; and two notifiers claiming the same keys at once, in
 * opposite orders, own each key exactly once (and do not deadlock); and
 * quiet hours (0064): a deferrable key of a researcher inside their window
 * is recorded deferred until the window's end, a non-deferrable one of the
 * same researcher is owned at once, a replay of the deferred one is done,
 * and one outside the window is owned; the window's end across midnight
 * and a change to summer time.
 */
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dedupe.h"
#include "pg.h"
#include "testlib.h"

extern char **environ;

#define RACE_KEYS 300

static char prefix[40];

static int migrate(const char *conninfo)
{
    char a0[] = VIGIL_BINARY, a1[] = "migrate", a2[] = "--conninfo";
    char *argv[] = {a0, a1, a2, (char *)conninfo, NULL};
    pid_t pid;
    if (posix_spawn(&pid, VIGIL_BINARY, NULL, NULL, argv, environ) != 0)
        return -1;
    int st = 0;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* The value of column COL of the row of (ALERT, RESEARCHER, CH), or "" if
 * none; "(null)" for SQL NULL. */
static const char *row_value(PGconn *c, const char *col_sql, const char *alert,
                             const char *researcher, const char *ch, char *out, size_t outsz)
{
    char err[512];
    const char *p[] = {alert, researcher, ch};
    PGresult *r = pg_query(c, col_sql, 3, p, err, sizeof err);
    snprintf(out, outsz, "%s",
             r == NULL || PQntuples(r) != 1 ? ""
             : PQgetisnull(r, 0, 0)         ? "(null)"
                                            : PQgetvalue(r, 0, 0));
    PQclear(r);
    return out;
}

#define ROW_SQL(col)                                                                             \
    "SELECT " col " FROM notifications WHERE alert_id = $1 AND researcher_id = $2 AND "          \
    "channel = $3"

static void test_lifecycle(PGconn *c, struct dedupe_batch *b)
{
    char err[512], v[256];
    char a0[128], a1[128], a2[128];
    snprintf(a0, sizeof a0, "%s-plain", prefix);
    snprintf(a1, sizeof a1, "%s-we\"ird\\id,{x}", prefix); /* breaks naive literals */
    snprintf(a2, sizeof a2, "%s-NULL", prefix);
    const struct dedupe_key k[3] = {
        {a0, "r-1", CHANNEL_EMAIL, 0}, {a1, "NULL", CHANNEL_SMS, 0}, {a2, "r \"q\"", CHANNEL_EMAIL, 0}};
    enum dedupe_claim out[3];
    bool taken[3];

    CHECK_EQ_INT(dedupe_claim_many(c, b, k, NULL, 3, 600, out, taken, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(out[i], DEDUPE_OWNED);
        CHECK(!taken[i]);
    }
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a1, "NULL", "sms", v, sizeof v), "pending");
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a2, "r \"q\"", "email", v, sizeof v),
                 "pending");

    /* a live lease: busy, and nothing changes */
    CHECK_EQ_INT(dedupe_claim_many(c, b, k, NULL, 3, 600, out, taken, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(out[i], DEDUPE_BUSY);

    bool mine[3] = {false, false, false};
    CHECK_EQ_INT(dedupe_mark_sending_many(c, b, k, 3, mine, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        CHECK(mine[i]);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, "r-1", "email", v, sizeof v), "sending");
    CHECK_EQ_STR(row_value(c, ROW_SQL("attempts::text"), a1, "NULL", "sms", v, sizeof v), "1");

    /* a lease of 0 s has run out: taken over, and said so */
    CHECK_EQ_INT(dedupe_claim_many(c, b, k, NULL, 3, 0, out, taken, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(out[i], DEDUPE_OWNED);
        CHECK(taken[i]);
    }

    const struct dedupe_outcome o[3] = {{k[0], true, "<m1@vigil>", NULL},
                                        {k[1], false, NULL, "SMS gateway answered HTTP 400"},
                                        {k[2], true, NULL, NULL}};
    CHECK_EQ_INT(dedupe_record_outcomes(c, b, o, 3, err, sizeof err), 0);
    CHECK_EQ_INT(PQtransactionStatus(c), PQTRANS_IDLE);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, "r-1", "email", v, sizeof v), "sent");
    CHECK_EQ_STR(row_value(c, ROW_SQL("provider_message_id"), a0, "r-1", "email", v, sizeof v),
                 "<m1@vigil>");
    CHECK_EQ_STR(row_value(c, ROW_SQL("(sent_at IS NOT NULL)::text"), a0, "r-1", "email", v,
                           sizeof v),
                 "true");
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a1, "NULL", "sms", v, sizeof v), "failed");
    CHECK_EQ_STR(row_value(c, ROW_SQL("last_error"), a1, "NULL", "sms", v, sizeof v),
                 "SMS gateway answered HTTP 400");
    CHECK_EQ_STR(row_value(c, ROW_SQL("sent_at::text"), a1, "NULL", "sms", v, sizeof v),
                 "(null)");
    CHECK_EQ_STR(row_value(c, ROW_SQL("provider_message_id"), a2, "r \"q\"", "email", v,
                           sizeof v),
                 "(null)");

    /* final rows are done for good, even with a lease of 0 */
    CHECK_EQ_INT(dedupe_claim_many(c, b, k, NULL, 3, 0, out, taken, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(out[i], DEDUPE_DONE);

    /* A notifier whose lease ran out while it was stalled, after another
     * took its rows over and settled them: it may not start them (no
     * second message), schedule a retry on them, or write its outcome
     * over theirs. */
    for (int i = 0; i < 3; i++)
        mine[i] = true;
    CHECK_EQ_INT(dedupe_mark_sending_many(c, b, k, 3, mine, err, sizeof err), 0);
    for (int i = 0; i < 3; i++)
        CHECK(!mine[i]);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, "r-1", "email", v, sizeof v), "sent");
    CHECK_EQ_STR(row_value(c, ROW_SQL("attempts::text"), a1, "NULL", "sms", v, sizeof v), "1");
    const char *ids0[] = {a0};
    CHECK_EQ_INT(dedupe_mark_retry(c, ids0, 1, "r-1", CHANNEL_EMAIL, 0, 1000, "timeout", err,
                                   sizeof err),
                 0);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, "r-1", "email", v, sizeof v), "sent");
    const struct dedupe_outcome late = {k[0], false, NULL, "SMTP: timeout"};
    CHECK_EQ_INT(dedupe_record_outcomes(c, b, &late, 1, err, sizeof err), 0);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, "r-1", "email", v, sizeof v), "sent");
    CHECK_EQ_STR(row_value(c, ROW_SQL("provider_message_id"), a0, "r-1", "email", v, sizeof v),
                 "<m1@vigil>");

    /* results come back in the caller's order, whatever the key order */
    char n1[128], n2[128];
    snprintf(n1, sizeof n1, "%s-zz-new", prefix);
    snprintf(n2, sizeof n2, "%s-aa-new", prefix);
    const struct dedupe_key mixed[4] = {
        {n1, "r-1", CHANNEL_SMS, 0}, k[0], {n2, "r-1", CHANNEL_SMS, 0}, k[1]};
    enum dedupe_claim mo[4];
    CHECK_EQ_INT(dedupe_claim_many(c, b, mixed, NULL, 4, 600, mo, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(mo[0], DEDUPE_OWNED);
    CHECK_EQ_INT(mo[1], DEDUPE_DONE);
    CHECK_EQ_INT(mo[2], DEDUPE_OWNED);
    CHECK_EQ_INT(mo[3], DEDUPE_DONE);

    /* the documented precondition: duplicate keys fail the whole batch */
    char d1[128];
    snprintf(d1, sizeof d1, "%s-dup", prefix);
    const struct dedupe_key dup[2] = {{d1, "r-1", CHANNEL_SMS, 0}, {d1, "r-1", CHANNEL_SMS, 0}};
    CHECK_EQ_INT(dedupe_claim_many(c, b, dup, NULL, 2, 600, mo, NULL, err, sizeof err), -1);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), d1, "r-1", "sms", v, sizeof v), "");
}

struct racer {
    const char *conninfo;
    bool reverse;
    char (*ids)[64];
    enum dedupe_claim out[RACE_KEYS];
    int failures;
};

/* Claims every key in batches of 50, in its own order. */
static void test_quiet(PGconn *c, struct dedupe_batch *b)
{
    char err[512], v[256], quiet[96], awake[96], a0[96], a1[96];
    snprintf(quiet, sizeof quiet, "%s-quiet", prefix);
    snprintf(awake, sizeof awake, "%s-awake", prefix);
    snprintf(a0, sizeof a0, "%s-warning", prefix);
    snprintf(a1, sizeof a1, "%s-critical", prefix);
    const char *p[] = {quiet, awake};
    /* quiet: a window from an hour ago to two hours on, in Asia/Tokyo (no
     * DST, far from UTC, so a zone mix-up shows); awake: one that ended */
    CHECK_EQ_INT(pg_command(c,
                            "INSERT INTO researchers (researcher_id, name) VALUES ($1, 'q'), "
                            "($2, 'a')",
                            2, p, err, sizeof err),
                 0);
    CHECK_EQ_INT(pg_command(c,
                            "INSERT INTO researcher_quiet_hours VALUES "
                            "($1, (now() AT TIME ZONE 'Asia/Tokyo' - interval '1 hour')::time, "
                            "(now() AT TIME ZONE 'Asia/Tokyo' + interval '2 hours')::time, "
                            "'Asia/Tokyo'), "
                            "($2, (now() AT TIME ZONE 'Asia/Tokyo' - interval '3 hours')::time, "
                            "(now() AT TIME ZONE 'Asia/Tokyo' - interval '1 hour')::time, "
                            "'Asia/Tokyo')",
                            2, p, err, sizeof err),
                 0);
    const struct dedupe_key k[3] = {
        {a0, quiet, CHANNEL_EMAIL, 0}, {a1, quiet, CHANNEL_EMAIL, 0}, {a0, awake, CHANNEL_EMAIL, 0}};
    const bool defer[3] = {true, false, true};
    enum dedupe_claim out[3];
    CHECK_EQ_INT(dedupe_claim_many(c, b, k, defer, 3, 600, out, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(out[0], DEDUPE_DEFERRED);
    CHECK_EQ_INT(out[1], DEDUPE_OWNED);
    CHECK_EQ_INT(out[2], DEDUPE_OWNED);
    CHECK_EQ_STR(row_value(c, ROW_SQL("state"), a0, quiet, "email", v, sizeof v), "deferred");
    /* due about two hours on (the window's end), the same instant recorded twice */
    CHECK_EQ_STR(row_value(c, ROW_SQL("(abs(extract(epoch FROM next_attempt_at - now()) - 7200) "
                                      "< 60 AND next_attempt_at = deferred_until)::text"),
                           a0, quiet, "email", v, sizeof v),
                 "true");
    CHECK_EQ_STR(row_value(c, ROW_SQL("deferred_until IS NULL"), a1, quiet, "email", v, sizeof v),
                 "t");
    /* the same alert read again from Kafka: the deferred row is final for it */
    CHECK_EQ_INT(dedupe_claim_many(c, b, k, defer, 1, 600, out, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(out[0], DEDUPE_DONE);
    CHECK_EQ_INT(dedupe_deferred_count(c, a0, err, sizeof err), 1);
}

/* vigil_quiet_end (0064): the window's end in UTC for a few instants,
 * across midnight and across the night Europe/Paris moves to summer time
 * (2026-03-29 02:00 CET becomes 03:00 CEST: 07:00 local is 05:00 UTC). */
static void test_quiet_end(PGconn *c)
{
    static const char *const cases[][5] = {
        /* start, end, zone, at (UTC), expected end (UTC) or "" for none */
        {"22:00", "07:00", "Europe/Paris", "2026-03-28 20:00", ""},
        {"22:00", "07:00", "Europe/Paris", "2026-03-28 21:30", "2026-03-29 05:00:00+00"},
        {"22:00", "07:00", "Europe/Paris", "2026-03-29 00:30", "2026-03-29 05:00:00+00"},
        {"22:00", "07:00", "Europe/Paris", "2026-03-29 05:00", ""},
        {"22:00", "07:00", "Europe/Paris", "2026-01-10 05:59", "2026-01-10 06:00:00+00"},
        {"12:00", "14:00", "Asia/Tokyo", "2026-01-01 04:00", "2026-01-01 05:00:00+00"},
        {"12:00", "14:00", "Asia/Tokyo", "2026-01-01 05:00", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        const char *p[] = {cases[i][0], cases[i][1], cases[i][2], cases[i][3]};
        PGresult *r = pg_query(c,
                               "SELECT coalesce(vigil_quiet_end($1::time, $2::time, $3, "
                               "($4 || '+00')::timestamptz) AT TIME ZONE 'UTC' || '+00', '')",
                               4, p, err, sizeof err);
        CHECK(r != NULL);
        if (r == NULL)
            continue;
        testlib_checkf(strcmp(PQgetvalue(r, 0, 0), cases[i][4]) == 0, __FILE__, __LINE__,
                       "quiet %s-%s %s at %s: got '%s', want '%s'", cases[i][0], cases[i][1],
                       cases[i][2], cases[i][3], PQgetvalue(r, 0, 0), cases[i][4]);
        PQclear(r);
    }
}

static void *race(void *arg)
{
    struct racer *r = arg;
    char err[512];
    PGconn *c = pg_connect(r->conninfo, err, sizeof err);
    struct dedupe_batch *b = dedupe_batch_new();
    if (c == NULL || b == NULL) {
        r->failures = RACE_KEYS;
        goto out;
    }
    for (int base = 0; base < RACE_KEYS; base += 50) {
        struct dedupe_key k[50];
        int idx[50];
        for (int i = 0; i < 50; i++) {
            idx[i] = r->reverse ? RACE_KEYS - 1 - (base + i) : base + i;
            k[i] = (struct dedupe_key){r->ids[idx[i]], "racer", CHANNEL_EMAIL, 0};
        }
        enum dedupe_claim o[50];
        if (dedupe_claim_many(c, b, k, NULL, 50, 600, o, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "race: %s\n", err);
            r->failures++;
            continue;
        }
        for (int i = 0; i < 50; i++)
            r->out[idx[i]] = o[i];
    }
out:
    dedupe_batch_destroy(b);
    PQfinish(c);
    return NULL;
}

static void test_race(const char *conninfo)
{
    static char ids[RACE_KEYS][64];  /* prefix + "-race-NNNN" */
    for (int i = 0; i < RACE_KEYS; i++)
        snprintf(ids[i], sizeof ids[i], "%s-race-%04d", prefix, i);
    struct racer r[2] = {{conninfo, false, ids, {0}, 0}, {conninfo, true, ids, {0}, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK_EQ_INT(pthread_create(&t[i], NULL, race, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT(r[0].failures + r[1].failures, 0);
    int owned_once = 0;
    for (int i = 0; i < RACE_KEYS; i++) {
        int owned = (r[0].out[i] == DEDUPE_OWNED) + (r[1].out[i] == DEDUPE_OWNED);
        int busy = (r[0].out[i] == DEDUPE_BUSY) + (r[1].out[i] == DEDUPE_BUSY);
        owned_once += owned == 1 && busy == 1;
    }
    CHECK_EQ_INT(owned_once, RACE_KEYS);
}

int main(void)
{
    const char *conninfo = testlib_env("VIGIL_PG_CONNINFO");
    snprintf(prefix, sizeof prefix, "dd%ld-%d", (long)time(NULL), (int)getpid());
    CHECK_EQ_INT(migrate(conninfo), 0);
    char err[512];
    PGconn *c = pg_connect(conninfo, err, sizeof err);
    struct dedupe_batch *b = dedupe_batch_new();
    CHECK(c != NULL);
    CHECK(b != NULL);
    if (c != NULL && b != NULL) {
        test_lifecycle(c, b);
        test_quiet(c, b);
        test_quiet_end(c);
        test_race(conninfo);
    } else {
        fprintf(stderr, "%s\n", err);
    }
    dedupe_batch_destroy(b);
    PQfinish(c);
    return testlib_done();
}
