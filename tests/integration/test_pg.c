/*
 * common/pg against the real PostgreSQL of scripts/services: parameters
 * travel as values (never as SQL), errors carry the SQLSTATE but not the
 * row's values, a script error names its line, and a failed statement in a
 * transaction can be rolled back on the same connection.
 */
#include <string.h>

#include "pg.h"
#include "testlib.h"

static void test_params(PGconn *c)
{
    char err[512];
    const char *two[] = {"2", "3"};
    PGresult *r = pg_query(c, "SELECT $1::int + $2::int", 2, two, err, sizeof err);
    CHECK(r != NULL);
    if (r != NULL)
        CHECK_EQ_STR(PQgetvalue(r, 0, 0), "5");
    PQclear(r);

    /* A value that would break string-built SQL comes back unchanged. */
    const char *evil[] = {"x'); DROP TABLE t; --", NULL};
    r = pg_query(c, "SELECT $1::text, $2::text IS NULL", 2, evil, err, sizeof err);
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK_EQ_STR(PQgetvalue(r, 0, 0), evil[0]);
        CHECK_EQ_STR(PQgetvalue(r, 0, 1), "t");
    }
    PQclear(r);
}

static void test_errors(PGconn *c)
{
    char err[512];
    CHECK(pg_query(c, "SELEC 1", 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "syntax error") != NULL);
    CHECK(strstr(err, "(SQLSTATE 42601)") != NULL);
    CHECK(strchr(err, '\n') == NULL);

    /* Unique violation: SQLSTATE yes, the DETAIL quoting the key no (it
     * may be a subject id). */
    CHECK_EQ_INT(pg_command(c, "CREATE TEMP TABLE pg_test_t (k text PRIMARY KEY)", 0, NULL, err,
                            sizeof err),
                 0);
    const char *key[] = {"SUBJ-SECRET-42"};
    CHECK_EQ_INT(pg_command(c, "INSERT INTO pg_test_t VALUES ($1)", 1, key, err, sizeof err), 0);
    CHECK_EQ_INT(pg_command(c, "INSERT INTO pg_test_t VALUES ($1)", 1, key, err, sizeof err), -1);
    CHECK(strstr(err, "(SQLSTATE 23505)") != NULL);
    CHECK(strstr(err, "SUBJ-SECRET-42") == NULL);

    /* A failed statement aborts its transaction; ROLLBACK recovers it. */
    CHECK_EQ_INT(pg_command(c, "BEGIN", 0, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(pg_command(c, "INSERT INTO pg_test_t VALUES ($1)", 1, key, err, sizeof err), -1);
    CHECK_EQ_INT(pg_command(c, "SELECT 1", 0, NULL, err, sizeof err), -1);
    CHECK(strstr(err, "25P02") != NULL); /* in_failed_sql_transaction */
    CHECK_EQ_INT(pg_command(c, "ROLLBACK", 0, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(pg_command(c, "SELECT 1", 0, NULL, err, sizeof err), 0);
}

static void test_script(PGconn *c)
{
    char err[512];
    CHECK_EQ_INT(pg_exec_script(c, "SELECT 1;\nSELECT 2;\n", err, sizeof err), 0);
    /* The position the server reports is in the whole script. A UTF-8
     * comment before it checks characters are counted, not bytes. */
    const char *bad = "SELECT 1; -- café, µmol/L\nSELECT 2;\n  SELECT no_such_column_x;\n";
    CHECK_EQ_INT(pg_exec_script(c, bad, err, sizeof err), -1);
    CHECK(strncmp(err, "line 3: ", 8) == 0);
    CHECK(strstr(err, "no_such_column_x") != NULL);
    CHECK(strstr(err, "(SQLSTATE 42703)") != NULL);
    /* An error without a position has no line. */
    CHECK_EQ_INT(pg_exec_script(c, "SELECT 1/0;", err, sizeof err), -1);
    CHECK(strncmp(err, "division by zero", 16) == 0);
}

/* pg_query_prepared: prepared at first use, reused (the server knows the
 * name), prepared again after the connection lost it (DEALLOCATE ALL, as a
 * reconnect would), plain inside a transaction block, and errors as
 * pg_query's. */
static void test_prepared(PGconn *c)
{
    char err[512];
    const char *sql = "SELECT $1::integer * 2 AS twice";
    const char *v[] = {"21"};
    for (int round = 0; round < 3; round++) {
        PGresult *r = pg_query_prepared(c, sql, 1, v, err, sizeof err);
        CHECK(r != NULL);
        if (r != NULL)
            CHECK_EQ_STR(PQgetvalue(r, 0, 0), "42");
        PQclear(r);
        r = pg_query(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1,
                     &sql, err, sizeof err);
        CHECK(r != NULL);
        if (r != NULL)
            CHECK_EQ_STR(PQgetvalue(r, 0, 0), "1");
        PQclear(r);
        if (round == 1)
            CHECK_EQ_INT(pg_command(c, "DEALLOCATE ALL", 0, NULL, err, sizeof err), 0);
    }
    CHECK_EQ_INT(pg_command(c, "BEGIN", 0, NULL, err, sizeof err), 0);
    const char *sql2 = "SELECT $1::integer + 1";
    PGresult *r = pg_query_prepared(c, sql2, 1, v, err, sizeof err);
    CHECK(r != NULL);
    if (r != NULL)
        CHECK_EQ_STR(PQgetvalue(r, 0, 0), "22");
    PQclear(r);
    CHECK(pg_query_prepared(c, "SELEC 1", 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "(SQLSTATE 42601)") != NULL);
    CHECK_EQ_INT(pg_command(c, "ROLLBACK", 0, NULL, err, sizeof err), 0);
    r = pg_query(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1", 1, &sql2,
                 err, sizeof err);
    CHECK(r != NULL);
    if (r != NULL)
        CHECK_EQ_STR(PQgetvalue(r, 0, 0), "0"); /* not prepared inside the block */
    PQclear(r);
    CHECK(pg_query_prepared(c, "SELEC 1", 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "(SQLSTATE 42601)") != NULL);
}

int main(void)
{
    char err[512];
    PGconn *c = pg_connect(testlib_env("VIGIL_PG_CONNINFO"), err, sizeof err);
    CHECK(c != NULL);
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return testlib_done();
    }
    CHECK_EQ_STR(PQparameterStatus(c, "client_encoding"), "UTF8");
    CHECK_EQ_STR(PQparameterStatus(c, "application_name"), "vigil");
    test_params(c);
    test_errors(c);
    test_script(c);
    test_prepared(c);
    PQfinish(c);
    return testlib_done();
}
