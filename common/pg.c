#include "pg.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hash.h"
#include "log.h"

const char *pg_conninfo_resolve(const char *flag)
{
    if (flag != NULL)
        return flag;
    const char *env = getenv("VIGIL_PG_CONNINFO");
    return env != NULL ? env : "";
}

/* Copies src into dst (bounded, NUL-terminated) as one line: libpq ends
 * its messages with '\n' and puts hints on further tab-indented lines, but
 * an error must fit one log line. Each line break and the blanks around it
 * become "; "; trailing blanks go. */
static void copy_trimmed(char *dst, size_t dstsz, const char *src)
{
    if (dstsz == 0)
        return;
    size_t n = 0;
    for (const char *p = src; *p != '\0' && n + 1 < dstsz; p++) {
        if (*p != '\n') {
            dst[n++] = *p;
            continue;
        }
        while (n > 0 && isspace((unsigned char)dst[n - 1]))
            n--;
        while (p[1] != '\0' && isspace((unsigned char)p[1]))
            p++;
        if (p[1] != '\0' && n + 3 < dstsz) {
            dst[n++] = ';';
            dst[n++] = ' ';
        }
    }
    while (n > 0 && isspace((unsigned char)dst[n - 1]))
        n--;
    dst[n] = '\0';
}

/* libpq prints server NOTICEs ("relation ... already exists, skipping") on
 * stderr by default; they are not errors, so they go to the debug log. */
static void on_notice(void *arg, const char *message)
{
    char line[512];
    copy_trimmed(line, sizeof line, message);
    log_msg(LOG_DEBUG, "pg", "%s", line);
}

/* True if libpq could not parse CONNINFO as a connection string although it
 * looks like one (a bare word is a database name, which libpq accepts). */
static bool conninfo_malformed(const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    PQconninfoFree(opts);
    PQfreemem(err);
    return opts == NULL;
}

/* Could CONNINFO carry a password: a password= keyword or a URI userinfo? */
static bool conninfo_may_hold_password(const char *conninfo)
{
    return strcasestr(conninfo, "password") != NULL || strchr(conninfo, '@') != NULL;
}

PGconn *pg_connect(const char *conninfo, char *errstr, size_t errstr_size)
{
    if (conninfo == NULL)
        conninfo = "";
    /* Processed in order, later keys win: our defaults come first so the
     * operator's conninfo (expanded from "dbname") can override each. */
    const char *const keys[] = {"connect_timeout", "client_encoding", "fallback_application_name",
                                "dbname", NULL};
    const char *const vals[] = {"10", "UTF8", "vigil", conninfo, NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(errstr, errstr_size, "could not connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        /* libpq's parse errors quote the offending text, which may be the
         * password (e.g. a bad %-escape in a URI's userinfo); its
         * connection errors never include it. */
        if (conninfo[0] != '\0' && conninfo_malformed(conninfo) &&
            conninfo_may_hold_password(conninfo))
            snprintf(msg, sizeof msg,
                     "malformed connection string (details withheld: it holds a password)");
        else
            copy_trimmed(msg, sizeof msg, PQerrorMessage(conn));
        snprintf(errstr, errstr_size, "could not connect to PostgreSQL: %s", msg);
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, on_notice, NULL);
    return conn;
}

/* Appends VALUE to out[*len] quoted as a conninfo value when it needs it. */
static void append_value(char *out, size_t outsz, size_t *len, const char *value)
{
    bool quote = value[0] == '\0' || strpbrk(value, " \t\n\r\\'") != NULL;
    if (quote && *len + 1 < outsz)
        out[(*len)++] = '\'';
    for (const char *p = value; *p != '\0' && *len + 2 < outsz; p++) {
        if (*p == '\\' || *p == '\'')
            out[(*len)++] = '\\';
        out[(*len)++] = *p;
    }
    if (quote && *len + 1 < outsz)
        out[(*len)++] = '\'';
    out[*len] = '\0';
}

char *pg_redact_conninfo(const char *conninfo, char *out, size_t outsz)
{
    if (outsz == 0)
        return out;
    out[0] = '\0';
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &err);
    PQfreemem(err); /* may quote the password: never shown */
    if (opts == NULL) {
        snprintf(out, outsz, "(malformed conninfo)");
        return out;
    }
    size_t len = 0;
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL)
            continue;
        int n = snprintf(out + len, outsz - len, "%s%s=", len > 0 ? " " : "", o->keyword);
        if (n < 0 || (size_t)n >= outsz - len) {
            out[len] = '\0';
            break;
        }
        len += (size_t)n;
        /* The dispchar "*" is libpq's own mark for a secret option. */
        bool secret = strcmp(o->keyword, "password") == 0 || strchr(o->dispchar, '*') != NULL;
        append_value(out, outsz, &len, secret ? "***" : o->val);
    }
    PQconninfoFree(opts);
    return out;
}

bool pg_result_error(const PGconn *conn, const PGresult *res, char *errstr, size_t errstr_size)
{
    ExecStatusType st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res != NULL && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
        return true;
    /* Primary message and SQLSTATE only: the DETAIL of e.g. a unique
     * violation quotes the row's values, which may be patient data. */
    const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary != NULL) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(errstr, errstr_size, "%s (SQLSTATE %s)", primary, state != NULL ? state : "?");
        return false;
    }
    const char *msg = res != NULL ? PQresultErrorMessage(res) : "";
    if (msg[0] == '\0' && conn != NULL)
        msg = PQerrorMessage(conn);
    if (msg[0] == '\0') {
        snprintf(errstr, errstr_size, "unexpected result status %s", PQresStatus(st));
        return false;
    }
    copy_trimmed(errstr, errstr_size, msg);
    return false;
}

PGresult *pg_query(PGconn *conn, const char *sql, int nparams, const char *const *params,
                   char *errstr, size_t errstr_size)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (!pg_result_error(conn, res, errstr, errstr_size)) {
        PQclear(res);
        return NULL;
    }
    return res;
}

PGresult *pg_query_prepared(PGconn *conn, const char *sql, int nparams,
                            const char *const *params, char *errstr, size_t errstr_size)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        return pg_query(conn, sql, nparams, params, errstr, errstr_size);
    /* The name is a 64-bit hash of the text and its length: statements are
     * vigil's own, a handful per process, so a collision is not a concern
     * worth a registry per connection. */
    char name[40];
    snprintf(name, sizeof name, "vigil_%016llx_%zx",
             (unsigned long long)hash_str(sql, HASH_SEED), strlen(sql));
    PGresult *res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (state != NULL && strcmp(state, "26000") == 0) { /* invalid_sql_statement_name */
        PQclear(res);
        res = PQprepare(conn, name, sql, nparams, NULL);
        if (!pg_result_error(conn, res, errstr, errstr_size)) {
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        res = PQexecPrepared(conn, name, nparams, params, NULL, NULL, 0);
    }
    if (!pg_result_error(conn, res, errstr, errstr_size)) {
        PQclear(res);
        return NULL;
    }
    return res;
}

int pg_command(PGconn *conn, const char *sql, int nparams, const char *const *params,
               char *errstr, size_t errstr_size)
{
    PGresult *res = pg_query(conn, sql, nparams, params, errstr, errstr_size);
    if (res == NULL)
        return -1;
    PQclear(res);
    return 0;
}

/* Returns the 1-based line of SCRIPT holding character POS (1-based, counted
 * in characters as the server counts them: UTF-8 continuation bytes are not
 * characters). */
static int line_of_position(const char *script, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)script; *p != '\0'; p++) {
        if ((*p & 0xC0) == 0x80)
            continue;
        if (++chars >= pos)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

int pg_exec_script(PGconn *conn, const char *script, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(conn, script);
    char msg[1024];
    if (pg_result_error(conn, res, msg, sizeof msg)) {
        PQclear(res);
        return 0;
    }
    const char *pos = res != NULL ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
    long p = pos != NULL ? strtol(pos, NULL, 10) : 0;
    if (p > 0)
        snprintf(errstr, errstr_size, "line %d: %s", line_of_position(script, p), msg);
    else
        snprintf(errstr, errstr_size, "%s", msg);
    PQclear(res);
    return -1;
}

/* ---- text[] literals -------------------------------------------------- */

struct pg_textarray {
    char *buf;  /* "{" + elements; the closing brace is added by _str */
    size_t len; /* bytes used in buf, without the closing brace */
    size_t cap;
    size_t n;
};

struct pg_textarray *pg_textarray_new(void)
{
    struct pg_textarray *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->cap = 256;
    a->buf = malloc(a->cap);
    if (a->buf == NULL) {
        free(a);
        return NULL;
    }
    a->buf[0] = '{';
    a->len = 1;
    return a;
}

static int textarray_reserve(struct pg_textarray *a, size_t more)
{
    /* +2: the closing brace and the NUL _str adds */
    if (more > SIZE_MAX / 2 - a->len - 2)
        return -1;
    size_t need = a->len + more + 2;
    if (need <= a->cap)
        return 0;
    size_t ncap = a->cap;
    while (ncap < need)
        ncap *= 2;
    char *p = realloc(a->buf, ncap);
    if (p == NULL)
        return -1;
    a->buf = p;
    a->cap = ncap;
    return 0;
}

int pg_textarray_add(struct pg_textarray *a, const char *v)
{
    /* worst case: separator, two quotes and every byte escaped */
    size_t vlen = v != NULL ? strlen(v) : 0;
    if (vlen > SIZE_MAX / 4 || textarray_reserve(a, 2 * vlen + 8) != 0)
        return -1;
    char *o = a->buf + a->len;
    if (a->n > 0)
        *o++ = ',';
    if (v == NULL) {
        /* unquoted NULL is the null element; a quoted "NULL" is the text */
        memcpy(o, "NULL", 4);
        o += 4;
    } else {
        *o++ = '"';
        for (const char *p = v; *p; p++) {
            if (*p == '"' || *p == '\\')
                *o++ = '\\';
            *o++ = *p;
        }
        *o++ = '"';
    }
    a->len = (size_t)(o - a->buf);
    a->n++;
    return 0;
}

const char *pg_textarray_str(struct pg_textarray *a)
{
    /* room for these two bytes is kept by every reserve */
    a->buf[a->len] = '}';
    a->buf[a->len + 1] = '\0';
    return a->buf;
}

size_t pg_textarray_len(const struct pg_textarray *a)
{
    return a->n;
}

void pg_textarray_reset(struct pg_textarray *a)
{
    a->len = 1;
    a->n = 0;
}

void pg_textarray_destroy(struct pg_textarray *a)
{
    if (a == NULL)
        return;
    free(a->buf);
    free(a);
}
