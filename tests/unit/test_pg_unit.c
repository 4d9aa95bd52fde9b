/*
 * common/pg without a server: conninfo resolution, password redaction, and
 * connection errors that are one line and never show the password.
 */
#include <stdlib.h>
#include <string.h>

#include "pg.h"
#include "testlib.h"

static void test_redact(void)
{
    char out[PG_CONNINFO_MAX];
    pg_redact_conninfo("host=db.example port=5432 user=vigil password=hunter2 dbname=vigil", out,
                       sizeof out);
    CHECK(strstr(out, "hunter2") == NULL);
    CHECK(strstr(out, "password=***") != NULL);
    CHECK(strstr(out, "host=db.example") != NULL);
    CHECK(strstr(out, "dbname=vigil") != NULL);

    pg_redact_conninfo("postgresql://vigil:hunter2@db.example:5433/vigil?sslmode=require", out,
                       sizeof out);
    CHECK(strstr(out, "hunter2") == NULL);
    CHECK(strstr(out, "password=***") != NULL);
    CHECK(strstr(out, "port=5433") != NULL);
    CHECK(strstr(out, "sslmode=require") != NULL);

    /* Quoted values stay a valid conninfo. */
    pg_redact_conninfo("host=h application_name='night shift'", out, sizeof out);
    CHECK_EQ_STR(out, "host=h application_name='night shift'");
    pg_redact_conninfo("", out, sizeof out);
    CHECK_EQ_STR(out, "");

    /* libpq's parse error may quote the password: nothing of it is shown. */
    pg_redact_conninfo("host=h password=hunter2 bogus", out, sizeof out);
    CHECK_EQ_STR(out, "(malformed conninfo)");

    /* Bounded: a short buffer is truncated and still terminated. */
    char tiny[12];
    memset(tiny, 'x', sizeof tiny);
    pg_redact_conninfo("host=a-very-long-host-name password=hunter2", tiny, sizeof tiny);
    CHECK(strlen(tiny) < sizeof tiny);
    CHECK(strstr(tiny, "hunter") == NULL);
}

static void test_resolve(void)
{
    setenv("VIGIL_PG_CONNINFO", "host=from-env", 1);
    CHECK_EQ_STR(pg_conninfo_resolve("host=from-flag"), "host=from-flag");
    CHECK_EQ_STR(pg_conninfo_resolve(NULL), "host=from-env");
    unsetenv("VIGIL_PG_CONNINFO");
    CHECK_EQ_STR(pg_conninfo_resolve(NULL), "");
}

static void test_connect_errors(void)
{
    char err[1024];
    /* Port 1 on loopback: nothing listens, refused at once. */
    PGconn *c = pg_connect("host=127.0.0.1 port=1 user=vigil password=hunter2 connect_timeout=3",
                           err, sizeof err);
    CHECK(c == NULL);
    CHECK(strncmp(err, "could not connect to PostgreSQL: ", 33) == 0);
    CHECK(strstr(err, "127.0.0.1") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(strstr(err, "hunter2") == NULL);
    PQfinish(c);

    /* A bad %-escape in the userinfo: libpq would quote "hun%ZZter2". */
    c = pg_connect("postgresql://vigil:hun%ZZter2@127.0.0.1:1/vigil", err, sizeof err);
    CHECK(c == NULL);
    CHECK(strncmp(err, "could not connect to PostgreSQL: ", 33) == 0);
    CHECK(strstr(err, "ZZter2") == NULL);
    CHECK(strstr(err, "withheld") != NULL);

    /* Without a password libpq's own explanation is kept. */
    c = pg_connect("host=127.0.0.1 bogus", err, sizeof err);
    CHECK(c == NULL);
    CHECK(strstr(err, "bogus") != NULL);
}

/* The text[] literal a batch travels in: quoted, escaped, NULL as the
 * null element, growing past its first buffer, reusable after reset. */
static void test_textarray(void)
{
    struct pg_textarray *a = pg_textarray_new();
    CHECK(a != NULL);
    if (a == NULL)
        return;
    CHECK_EQ_STR(pg_textarray_str(a), "{}");
    CHECK_EQ_INT(pg_textarray_add(a, "a1"), 0);
    CHECK_EQ_INT(pg_textarray_add(a, "we\"ird\\id"), 0);
    CHECK_EQ_INT(pg_textarray_add(a, NULL), 0);
    CHECK_EQ_INT(pg_textarray_add(a, "NULL"), 0);
    CHECK_EQ_INT(pg_textarray_add(a, ""), 0);
    CHECK_EQ_INT(pg_textarray_add(a, "{,}"), 0);
    CHECK_EQ_STR(pg_textarray_str(a),
                 "{\"a1\",\"we\\\"ird\\\\id\",NULL,\"NULL\",\"\",\"{,}\"}");
    CHECK_EQ_INT((int)pg_textarray_len(a), 6);

    pg_textarray_reset(a);
    CHECK_EQ_STR(pg_textarray_str(a), "{}");
    CHECK_EQ_INT((int)pg_textarray_len(a), 0);
    /* 1000 elements of 40 bytes: far past the first allocation */
    char v[41];
    memset(v, '"', 40);
    v[40] = '\0';
    for (int i = 0; i < 1000; i++)
        CHECK_EQ_INT(pg_textarray_add(a, v), 0);
    const char *s = pg_textarray_str(a);
    CHECK_EQ_INT((int)strlen(s), 2 + 1000 * 82 + 999);
    CHECK(s[strlen(s) - 1] == '}');
    pg_textarray_destroy(a);
    pg_textarray_destroy(NULL);
}

int main(void)
{
    test_textarray();
    test_redact();
    test_resolve();
    test_connect_errors();
    return testlib_done();
}
