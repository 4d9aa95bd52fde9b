/*
 * vigil migrate: brings the PostgreSQL schema up to date with the numbered
 * SQL files compiled into the binary (schemas/migrations/NNNN_name.sql).
 *
 * DESIGN. The Helm pre-upgrade hook and a human may run it at the same
 * time, so every run first takes a session advisory lock (MIGRATE_LOCK_KEY)
 * and the second waits for the first; it then finds nothing left to do.
 * Each migration runs in its own transaction together with the row that
 * records it in schema_migrations, so a migration is either applied and
 * recorded or neither: a failure rolls back that one migration, keeps the
 * ones before it, and the next run resumes there. Everything is created in
 * the first schema of the connection's search_path (no schema is named in
 * the SQL), which lets tests migrate a private schema with
 * options=-csearch_path=NAME.
 *
 * Rejected: one transaction around all pending migrations (a failure late
 * in a long upgrade would redo everything), and checksumming applied files
 * (a migration is never edited once released; a new one is added instead).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "embedded.h"
#include "pg.h"

/* Key of the advisory lock that serialises migrations in one database
 * ("vigilmig" in ASCII). Any vigil migrate of any version uses this key. */
#define MIGRATE_LOCK_KEY "8532464671518452071"

/* Bounds: far more migrations than the project will ever have. */
#define MIGRATIONS_MAX 512
#define MIGRATION_NAME_MAX 128

struct migration {
    int version;                    /* the leading number: 3 for 0003_x.sql */
    char name[MIGRATION_NAME_MAX];  /* file name without ".sql": "0003_x" */
    const char *sql;                /* embedded text, static */
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil migrate [OPTIONS]\n\n"
            "Applies the SQL migrations compiled into this binary to PostgreSQL, each\n"
            "in its own transaction, in order, skipping those already applied (recorded\n"
            "in the table schema_migrations). Safe to run twice and concurrently: runs\n"
            "are serialised by an advisory lock. Objects are created in the first schema\n"
            "of the connection's search_path.\n\n"
            "options:\n"
            "  --conninfo STR  libpq connection string or postgresql:// URI\n"
            "                  (prefer VIGIL_PG_CONNINFO_FILE, a passfile or PGPASSWORD\n"
            "                  to a password in STR: command lines are visible to\n"
            "                  other users)\n"
            "  --status        list applied and pending migrations; change nothing\n"
            "  -h, --help      print this help\n\n"
            "environment:\n"
            "  VIGIL_PG_CONNINFO       connection string used when --conninfo is not given;\n"
            "                          without either, libpq's PGHOST, PGPORT, PGDATABASE,\n"
            "                          PGUSER, PGPASSFILE, ... apply\n"
            "  VIGIL_PG_CONNINFO_FILE  file holding the connection string (a Kubernetes\n"
            "                          Secret); wins over VIGIL_PG_CONNINFO, not over\n"
            "                          --conninfo; one trailing newline is removed\n\n"
            "exit status: 0 success (or already up to date), 1 failure, 2 bad usage or\n"
            "configuration (e.g. VIGIL_PG_CONNINFO_FILE cannot be read)\n");
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct migration *)a)->name, ((const struct migration *)b)->name);
}

/* Fills out[] with the embedded *.sql files in name order. Returns their
 * number, or -1 with errstr set if a file name is not NNNN_name.sql, two
 * share a version, or there are more than max. */
static int migrations_collect(struct migration *out, int max, char *errstr, size_t errstr_size)
{
    int n = 0;
    for (const struct embedded_file *f = embedded_files; f->name != NULL; f++) {
        size_t len = strlen(f->name);
        if (len < 4 || strcmp(f->name + len - 4, ".sql") != 0)
            continue;
        size_t digits = strspn(f->name, "0123456789");
        if (digits == 0 || digits > 6 || f->name[digits] != '_' || len - 4 >= MIGRATION_NAME_MAX) {
            snprintf(errstr, errstr_size,
                     "migration file name %s is not NNNN_name.sql (up to 6 digits)", f->name);
            return -1;
        }
        if (n == max) {
            snprintf(errstr, errstr_size, "more than %d migrations", max);
            return -1;
        }
        out[n].version = (int)strtol(f->name, NULL, 10);
        snprintf(out[n].name, sizeof out[n].name, "%.*s", (int)(len - 4), f->name);
        out[n].sql = f->text;
        n++;
    }
    qsort(out, (size_t)n, sizeof out[0], by_name);
    for (int i = 1; i < n; i++) {
        if (out[i].version <= out[i - 1].version) {
            snprintf(errstr, errstr_size, "migrations %s and %s are out of order or share a version",
                     out[i - 1].name, out[i].name);
            return -1;
        }
    }
    return n;
}

/* Returns the row of RES (columns: version, ...) whose version is V, or -1. */
static int applied_row(const PGresult *res, int v)
{
    for (int i = 0; res != NULL && i < PQntuples(res); i++)
        if (strtol(PQgetvalue(res, i, 0), NULL, 10) == v)
            return i;
    return -1;
}

static bool known_version(const struct migration *m, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (m[i].version == v)
            return true;
    return false;
}

static const char applied_sql[] =
    "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations ORDER BY version";

/* --status: read-only, takes no lock and creates nothing. */
static int show_status(PGconn *conn, const struct migration *m, int n)
{
    char err[1024];
    PGresult *res = NULL;
    PGresult *exists = pg_query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0,
                                NULL, err, sizeof err);
    if (exists == NULL)
        goto err;
    bool has_table = strcmp(PQgetvalue(exists, 0, 0), "t") == 0;
    PQclear(exists);
    if (has_table) {
        res = pg_query(conn, applied_sql, 0, NULL, err, sizeof err);
        if (res == NULL)
            goto err;
    }
    int applied = 0;
    for (int i = 0; i < n; i++) {
        int row = applied_row(res, m[i].version);
        if (row >= 0) {
            printf("applied  %-32s %s\n", m[i].name, PQgetvalue(res, row, 2));
            applied++;
        } else {
            printf("pending  %s\n", m[i].name);
        }
    }
    for (int i = 0; res != NULL && i < PQntuples(res); i++) {
        int v = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (!known_version(m, n, v))
            printf("unknown  %-32s %s (not in this binary: is it older than the database?)\n",
                   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
    }
    printf("%d applied, %d pending\n", applied, n - applied);
    PQclear(res);
    return 0;
err:
    fprintf(stderr, "vigil migrate: could not read the migration status: %s\n", err);
    PQclear(res);
    return 1;
}

/* Applies M in one transaction with its schema_migrations row. Returns 0,
 * or -1 with errstr set and the transaction rolled back. */
static int apply_one(PGconn *conn, const struct migration *m, char *errstr, size_t errstr_size)
{
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name};
    if (pg_command(conn, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    if (pg_exec_script(conn, m->sql, errstr, errstr_size) != 0)
        goto err;
    if (pg_command(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", 2, params,
                   errstr, errstr_size) != 0)
        goto err;
    if (pg_command(conn, "COMMIT", 0, NULL, errstr, errstr_size) != 0)
        goto err;
    return 0;
err:;
    /* The error we report is the first one; a failed ROLLBACK (connection
     * gone) changes nothing: the server aborts the transaction anyway. */
    char ignored[256];
    pg_command(conn, "ROLLBACK", 0, NULL, ignored, sizeof ignored);
    return -1;
}

static int apply_pending(PGconn *conn, const struct migration *m, int n)
{
    char err[1024];
    PGresult *res = NULL;
    const char *key[] = {MIGRATE_LOCK_KEY};
    PGresult *got = pg_query(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, key, err,
                             sizeof err);
    if (got == NULL)
        goto lock_err;
    bool locked = strcmp(PQgetvalue(got, 0, 0), "t") == 0;
    PQclear(got);
    if (!locked) {
        fprintf(stderr, "vigil migrate: waiting for another vigil migrate to finish\n");
        if (pg_command(conn, "SELECT pg_advisory_lock($1::bigint)", 1, key, err, sizeof err) != 0)
            goto lock_err;
    }
    /* Under the lock, so two first runs cannot race to create it. */
    if (pg_command(conn,
                   "CREATE TABLE IF NOT EXISTS schema_migrations ("
                   " version integer PRIMARY KEY,"
                   " name text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())",
                   0, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "vigil migrate: could not create schema_migrations: %s\n", err);
        goto err;
    }
    res = pg_query(conn, applied_sql, 0, NULL, err, sizeof err);
    if (res == NULL) {
        fprintf(stderr, "vigil migrate: could not read schema_migrations: %s\n", err);
        goto err;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        int v = (int)strtol(PQgetvalue(res, i, 0), NULL, 10);
        if (!known_version(m, n, v))
            fprintf(stderr,
                    "vigil migrate: warning: the database has migration %s, which this binary "
                    "does not know: is it older than the database?\n",
                    PQgetvalue(res, i, 1));
    }
    int applied = 0;
    for (int i = 0; i < n; i++) {
        if (applied_row(res, m[i].version) >= 0)
            continue;
        if (apply_one(conn, &m[i], err, sizeof err) != 0) {
            fprintf(stderr, "vigil migrate: could not apply %s: %s\n", m[i].name, err);
            goto err;
        }
        printf("applied %s\n", m[i].name);
        fflush(stdout);
        applied++;
    }
    if (applied == 0)
        printf("database is up to date (%d migrations)\n", n);
    PQclear(res);
    /* Disconnecting would release it too; unlocking says we are done even
     * if the caller keeps the connection. */
    pg_command(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, key, err, sizeof err);
    return 0;
lock_err:
    fprintf(stderr, "vigil migrate: could not take the migration lock: %s\n", err);
err:
    PQclear(res);
    return 1;
}

int cmd_migrate(int argc, char **argv)
{
    enum { OPT_CONNINFO = 256, OPT_STATUS };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"status", no_argument, NULL, OPT_STATUS},
                                         {0}};
    const char *conninfo_flag = NULL;
    bool status = false;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_CONNINFO:
            conninfo_flag = optarg;
            break;
        case OPT_STATUS:
            status = true;
            break;
        default:
            return cli_bad_option("migrate", usage, argv);
        }
    }
    if (optind < argc)
        return cli_bad_usage("migrate", usage, "unexpected argument '%s'", argv[optind]);

    int rc = 1;
    char err[1024];
    PGconn *conn = NULL;
    struct migration *migrations = NULL;
    /* The flag wins; otherwise VIGIL_PG_CONNINFO_FILE, then
     * VIGIL_PG_CONNINFO, as the worker and notifier read their config. */
    char *conninfo_env = NULL;
    const char *conninfo = conninfo_flag;
    if (conninfo == NULL) {
        if (config_env_or_file("VIGIL_PG_CONNINFO", &conninfo_env, err, sizeof err) != 0) {
            rc = 2;
            goto err;
        }
        conninfo = conninfo_env != NULL ? conninfo_env : "";
    }
    migrations = calloc(MIGRATIONS_MAX, sizeof *migrations);
    if (migrations == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto err;
    }
    int n = migrations_collect(migrations, MIGRATIONS_MAX, err, sizeof err);
    if (n < 0)
        goto err;
    conn = pg_connect(conninfo, err, sizeof err);
    if (conn == NULL)
        goto err;
    rc = status ? show_status(conn, migrations, n) : apply_pending(conn, migrations, n);
    PQfinish(conn);
    free(migrations);
    free(conninfo_env);
    return rc;
err:
    fprintf(stderr, "vigil migrate: %s\n", err);
    PQfinish(conn);
    free(migrations);
    free(conninfo_env);
    return rc;
}
