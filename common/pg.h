/*
 * pg: thin helpers over libpq that every PostgreSQL user in vigil shares.
 *
 *   pg_conninfo_resolve()  --conninfo flag, else $VIGIL_PG_CONNINFO, else libpq's PG* defaults
 *   pg_connect()           connect, with vigil's defaults and an error that never shows a password
 *   pg_redact_conninfo()   a conninfo string fit for a log line (password masked)
 *   pg_query()             run one parameterised statement, check its status
 *   pg_query_prepared()    the same through a statement prepared per connection
 *   pg_command()           ... for a statement whose rows, if any, are not wanted
 *   pg_exec_script()       run a trusted multi-statement script (migrations only)
 *   pg_result_error()      format a failed result as "message (SQLSTATE xxxxx)"
 *   pg_textarray_*()       build a text[] literal, passed as one parameter
 *
 * Not an ORM: callers write their SQL and read PGresult themselves. Every
 * statement that carries a value passes it as a parameter ($1, $2, ...);
 * values are never pasted into SQL text.
 *
 * Thread-safety: as libpq's. A PGconn is used by one thread at a time; the
 * functions themselves keep no state and may be called from any thread.
 */
#ifndef VIGIL_PG_H
#define VIGIL_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Upper bound on a redacted conninfo string (pg_redact_conninfo's output). */
#define PG_CONNINFO_MAX 1024

/* Returns the conninfo to use: FLAG if non-NULL, else the environment
 * variable VIGIL_PG_CONNINFO if set, else "" (libpq then reads PGHOST,
 * PGPORT, PGDATABASE, PGUSER, PGPASSFILE, ...). The result is borrowed
 * (FLAG or the environment's storage); do not free it. Cannot fail. */
const char *pg_conninfo_resolve(const char *flag);

/* Connects to PostgreSQL with CONNINFO (key=value or postgresql:// URI; NULL
 * or "" means libpq's PG* environment defaults). vigil's defaults, which the
 * conninfo may override: connect_timeout=10, client_encoding=UTF8,
 * fallback_application_name=vigil. Server NOTICEs go to the debug log
 * instead of stderr.
 *
 * Returns a connection the caller owns (PQfinish it), or NULL with errstr
 * set to "could not connect to PostgreSQL: <libpq's message>". The message
 * never contains the password: libpq's connection errors do not, and a
 * malformed conninfo that contains one is reported without libpq's detail
 * (which could quote it). Blocks for up to connect_timeout per host. */
PGconn *pg_connect(const char *conninfo, char *errstr, size_t errstr_size);

/* Writes CONNINFO into out (always NUL-terminated, truncated to outsz) as
 * space-separated key=value pairs of the options it sets, with the value of
 * password shown as "***". A URI is rewritten in the same key=value form. An
 * unparseable conninfo becomes "(malformed conninfo)". Returns out. Cannot
 * fail; thread-safe. */
char *pg_redact_conninfo(const char *conninfo, char *out, size_t outsz);

/* If RES completed as a command or a query (PGRES_COMMAND_OK or
 * PGRES_TUPLES_OK) returns true. Otherwise returns false with errstr set to
 * the server's primary message and SQLSTATE, e.g.
 * 'duplicate key value violates unique constraint "x" (SQLSTATE 23505)', or
 * libpq's message when there is no server error (RES may be NULL: out of
 * memory or a lost connection, taken from CONN). Does not free RES. */
bool pg_result_error(const PGconn *conn, const PGresult *res, char *errstr, size_t errstr_size);

/* Runs SQL with NPARAMS text parameters PARAMS (NULL entries are SQL nulls;
 * types inferred by the server) through PQexecParams. Returns the result
 * (caller PQclears it) when it completed, else NULL with errstr set as
 * pg_result_error and nothing to free. A failed statement inside a
 * transaction leaves that transaction aborted: the caller rolls back. */
PGresult *pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   char *errstr, size_t errstr_size);

/* As pg_query, through a statement prepared on CONN under a name derived
 * from SQL's text (prepared at first use on each connection, again after a
 * reconnect): parse and analysis happen once per connection, and after
 * five runs PostgreSQL may keep a generic plan, so planning too. For hot,
 * fixed statements whose predicates a generic plan serves (no "$n IS NULL
 * OR ..." that only a custom plan folds away). Inside a transaction block
 * it is pg_query (a failed first use there would abort the transaction). */
PGresult *pg_query_prepared(PGconn *conn, const char *sql, int nparams,
                            const char *const *params, char *errstr, size_t errstr_size);

/* As pg_query, for a statement whose rows are not wanted (BEGIN, INSERT
 * without RETURNING, ...). Returns 0, or -1 with errstr set. */
int pg_command(PGconn *conn, const char *sql, int nparams, const char *const *params,
               char *errstr, size_t errstr_size);

/* Runs SCRIPT, which may hold several statements, with the simple query
 * protocol (PQexec). Only for SQL that is part of vigil itself (the embedded
 * migrations): it takes no parameters, so it must never be built from
 * outside values. Returns 0, or -1 with errstr set as pg_result_error and,
 * when the server points at a position, prefixed with "line N: " counted in
 * SCRIPT. Statements before a failing one have run: wrap the call in a
 * transaction to make it all-or-nothing. */
int pg_exec_script(PGconn *conn, const char *script, char *errstr, size_t errstr_size);

/* A text[] array literal ('{"a","b\\"c",NULL}') built from outside values,
 * passed as ONE statement parameter: how a batch of rows travels in one
 * round trip (unnest($1::text[], $2::text[], ...)) without pasting values
 * into SQL. Every element is quoted and escaped, so any bytes are safe.
 * Owned by the caller; one thread at a time. */
struct pg_textarray;

/* Returns an empty array, or NULL when out of memory. */
struct pg_textarray *pg_textarray_new(void);
/* Appends V (NULL appends an SQL null). Returns 0, or -1 when out of
 * memory (the array is then unchanged). */
int pg_textarray_add(struct pg_textarray *a, const char *v);
/* The literal so far, NUL-terminated; valid until the next add, reset or
 * destroy. Never NULL ("{}" when empty). */
const char *pg_textarray_str(struct pg_textarray *a);
/* Elements added since the last reset. */
size_t pg_textarray_len(const struct pg_textarray *a);
/* Empties A, keeping its memory for the next batch. */
void pg_textarray_reset(struct pg_textarray *a);
void pg_textarray_destroy(struct pg_textarray *a);

#endif
