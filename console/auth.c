/*
 * auth: sign-in, sessions, CSRF and API tokens (auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "password.h"
#include "pg.h"

#define TOKEN_PREFIX "vgt_"

static void rollback(PGconn *conn)
{
    char ignore[64];
    pg_command(conn, "ROLLBACK", 0, NULL, ignore, sizeof ignore);
}

int auth_session_open(PGconn *conn, const char *researcher_id, struct auth_new_session *out,
                      char *errstr, size_t errstr_size)
{
    char sh[SECRET_DIGEST_LEN + 1], ch[SECRET_DIGEST_LEN + 1];
    char abs_s[16], idle_s[16];
    secret_token(out->session);
    secret_token(out->csrf);
    secret_digest(out->session, sh);
    secret_digest(out->csrf, ch);
    snprintf(abs_s, sizeof abs_s, "%d", AUTH_SESSION_ABSOLUTE_S);
    snprintf(idle_s, sizeof idle_s, "%d", AUTH_SESSION_IDLE_S);
    const char *params[] = {sh, researcher_id, ch, abs_s, idle_s};
    PGresult *r = pg_query(conn,
                           "INSERT INTO console_sessions (session_hash, researcher_id, csrf_hash, "
                           "expires_at, idle_until) VALUES ($1, $2, $3, "
                           "now() + $4::integer * interval '1 second', "
                           "now() + $5::integer * interval '1 second') "
                           "RETURNING to_char(expires_at AT TIME ZONE 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                           5, params, errstr, errstr_size);
    if (r == NULL)
        return -1;
    snprintf(out->expires_at, sizeof out->expires_at, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

enum auth_result auth_signin(PGconn *conn, const char *email, const char *password,
                             size_t password_len, const char *old_session,
                             struct auth_new_session *out, char *researcher_id,
                             int *retry_after, char *errstr, size_t errstr_size)
{
    if (email == NULL || strlen(email) > 254 || password == NULL || password_len > PASSWORD_MAX) {
        password_verify(password_dummy_hash(), "", 0);
        return AUTH_DENIED;
    }
    if (pg_command(conn, "BEGIN", 0, NULL, errstr, errstr_size) < 0)
        return AUTH_ERROR;
    const char *p1[] = {email};
    /* FOR UPDATE: two replicas checking the same account at once count both
     * failures instead of overwriting each other's count. */
    PGresult *r = pg_query(conn,
                           "SELECT c.researcher_id, c.password_hash, (c.disabled OR NOT r.active), "
                           "CASE WHEN c.locked_until > now() THEN "
                           "greatest(1, ceil(extract(epoch FROM c.locked_until - now())))::integer "
                           "ELSE 0 END "
                           "FROM console_credentials c JOIN researchers r USING (researcher_id) "
                           "WHERE c.email = lower($1) FOR UPDATE OF c",
                           1, p1, errstr, errstr_size);
    if (r == NULL) {
        rollback(conn);
        return AUTH_ERROR;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        rollback(conn);
        password_verify(password_dummy_hash(), password, password_len);
        return AUTH_DENIED;
    }
    char rid[AUTH_ID_MAX];
    snprintf(rid, sizeof rid, "%s", PQgetvalue(r, 0, 0));
    bool inactive = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
    int locked = (int)strtol(PQgetvalue(r, 0, 3), NULL, 10);
    bool ok = false;
    if (locked == 0)
        ok = password_verify(PQgetvalue(r, 0, 1), password, password_len);
    PQclear(r);
    if (locked > 0) {
        rollback(conn);
        *retry_after = locked;
        return AUTH_LOCKED;
    }
    const char *p2[] = {rid};
    if (!ok) {
        char lock_after[12], backoff_after[12], lock_s[12];
        snprintf(lock_after, sizeof lock_after, "%d", AUTH_LOCK_AFTER);
        snprintf(backoff_after, sizeof backoff_after, "%d", AUTH_BACKOFF_AFTER);
        snprintf(lock_s, sizeof lock_s, "%d", AUTH_LOCK_SECONDS);
        const char *p3[] = {rid, lock_after, backoff_after, lock_s};
        if (pg_command(conn,
                       "UPDATE console_credentials SET failed_count = failed_count + 1, "
                       "locked_until = CASE "
                       "WHEN failed_count + 1 >= $2::integer THEN now() + $4::integer * interval '1 second' "
                       "WHEN failed_count + 1 >= $3::integer THEN "
                       "now() + power(2, failed_count + 1 - $3::integer) * interval '1 second' "
                       "ELSE locked_until END WHERE researcher_id = $1",
                       4, p3, errstr, errstr_size) < 0 ||
            pg_command(conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0) {
            rollback(conn);
            return AUTH_ERROR;
        }
        return AUTH_DENIED;
    }
    if (inactive) {
        rollback(conn);
        return AUTH_DENIED;
    }
    if (pg_command(conn,
                   "UPDATE console_credentials SET failed_count = 0, locked_until = NULL "
                   "WHERE researcher_id = $1",
                   1, p2, errstr, errstr_size) < 0)
        goto err;
    /* Sessions of this account that ended are dropped here, so the table
     * holds about one row per signed-in browser without a sweeper. */
    if (pg_command(conn,
                   "DELETE FROM console_sessions WHERE researcher_id = $1 "
                   "AND (expires_at <= now() OR idle_until <= now())",
                   1, p2, errstr, errstr_size) < 0)
        goto err;
    if (old_session != NULL && secret_token_valid(old_session)) {
        char oh[SECRET_DIGEST_LEN + 1];
        secret_digest(old_session, oh);
        const char *p4[] = {oh};
        if (pg_command(conn, "DELETE FROM console_sessions WHERE session_hash = $1", 1, p4, errstr,
                       errstr_size) < 0)
            goto err;
    }
    if (auth_session_open(conn, rid, out, errstr, errstr_size) < 0)
        goto err;
    if (pg_command(conn, "COMMIT", 0, NULL, errstr, errstr_size) < 0)
        goto err;
    snprintf(researcher_id, AUTH_ID_MAX, "%s", rid);
    return AUTH_OK;
err:
    rollback(conn);
    return AUTH_ERROR;
}

enum auth_result auth_session(PGconn *conn, const char *cookie, struct auth_principal *p,
                              char *errstr, size_t errstr_size)
{
    memset(p, 0, sizeof *p);
    if (!secret_token_valid(cookie))
        return AUTH_DENIED;
    char sh[SECRET_DIGEST_LEN + 1], idle_s[16];
    secret_digest(cookie, sh);
    snprintf(idle_s, sizeof idle_s, "%d", AUTH_SESSION_IDLE_S);
    const char *params[] = {sh, idle_s};
    /* One statement finds and checks the session and slides its idle
     * deadline, but writes only when the deadline is more than a minute
     * old: a page polling every few seconds must not make every request a
     * write (rejected: an UPDATE per request, measured as the heaviest
     * statement of a signed-in request). */
    PGresult *r = pg_query_prepared(conn,
                                   "WITH s AS (SELECT s.session_hash, s.researcher_id, s.csrf_hash, s.idle_until "
                                   "FROM console_sessions s "
                                   "JOIN console_credentials c ON c.researcher_id = s.researcher_id AND NOT c.disabled "
                                   "JOIN researchers r ON r.researcher_id = s.researcher_id AND r.active "
                                   "WHERE s.session_hash = $1 AND s.expires_at > now() AND s.idle_until > now()), "
                                   "u AS (UPDATE console_sessions t SET idle_until = now() + $2::integer * interval '1 second' "
                                   "FROM s WHERE t.session_hash = s.session_hash "
                                   "AND s.idle_until < now() + ($2::integer - 60) * interval '1 second') "
                                   "SELECT researcher_id, csrf_hash FROM s",
                                   2, params, errstr, errstr_size);
    if (r == NULL)
        return AUTH_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return AUTH_DENIED;
    }
    p->kind = AUTH_SESSION;
    snprintf(p->researcher_id, sizeof p->researcher_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(p->csrf_hash, sizeof p->csrf_hash, "%s", PQgetvalue(r, 0, 1));
    snprintf(p->session_hash, sizeof p->session_hash, "%s", sh);
    PQclear(r);
    return AUTH_OK;
}

enum auth_result auth_token(PGconn *conn, const char *authorization, struct auth_principal *p,
                            char *errstr, size_t errstr_size)
{
    memset(p, 0, sizeof *p);
    const char *bearer = "Bearer " TOKEN_PREFIX;
    if (authorization == NULL || strncmp(authorization, bearer, strlen(bearer)) != 0)
        return AUTH_DENIED;
    const char *tok = authorization + strlen(bearer);
    if (!secret_token_valid(tok))
        return AUTH_DENIED;
    char th[SECRET_DIGEST_LEN + 1];
    secret_digest(tok, th);
    const char *params[] = {th};
    PGresult *r = pg_query_prepared(conn,
                                   "SELECT t.researcher_id, t.token_id FROM console_api_tokens t "
                                   "JOIN console_credentials c ON c.researcher_id = t.researcher_id AND NOT c.disabled "
                                   "JOIN researchers r ON r.researcher_id = t.researcher_id AND r.active "
                                   "WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > now()",
                                   1, params, errstr, errstr_size);
    if (r == NULL)
        return AUTH_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return AUTH_DENIED;
    }
    p->kind = AUTH_TOKEN;
    snprintf(p->researcher_id, sizeof p->researcher_id, "%s", PQgetvalue(r, 0, 0));
    snprintf(p->token_id, sizeof p->token_id, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return AUTH_OK;
}

enum auth_result auth_proxy(PGconn *conn, const char *email, struct auth_principal *p,
                            char *errstr, size_t errstr_size)
{
    memset(p, 0, sizeof *p);
    if (email == NULL || email[0] == '\0' || strlen(email) > 254)
        return AUTH_DENIED;
    const char *params[] = {email};
    PGresult *r = pg_query_prepared(conn,
                                   "SELECT c.researcher_id FROM console_credentials c "
                                   "JOIN researchers r ON r.researcher_id = c.researcher_id AND r.active "
                                   "WHERE c.email = lower($1) AND NOT c.disabled",
                                   1, params, errstr, errstr_size);
    if (r == NULL)
        return AUTH_ERROR;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return AUTH_DENIED;
    }
    p->kind = AUTH_PROXY;
    snprintf(p->researcher_id, sizeof p->researcher_id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return AUTH_OK;
}

bool auth_csrf_ok(const struct auth_principal *p, const char *csrf_header)
{
    if (p->kind == AUTH_TOKEN)
        return true;
    if (p->kind == AUTH_PROXY)
        return csrf_header != NULL && strcmp(csrf_header, "proxy") == 0;
    if (p->kind != AUTH_SESSION || !secret_token_valid(csrf_header))
        return false;
    char h[SECRET_DIGEST_LEN + 1];
    secret_digest(csrf_header, h);
    return secret_equal(h, p->csrf_hash);
}

int auth_signout(PGconn *conn, const struct auth_principal *p, char *errstr, size_t errstr_size)
{
    if (p->kind != AUTH_SESSION)
        return 0;
    const char *params[] = {p->session_hash};
    return pg_command(conn, "DELETE FROM console_sessions WHERE session_hash = $1", 1, params,
                      errstr, errstr_size);
}

int auth_token_create(PGconn *conn, const char *researcher_id, const char *name,
                      const char *study_ids, const char *max_role, int days, char out[48],
                      char *errstr, size_t errstr_size)
{
    char tok[SECRET_TOKEN_LEN + 1], th[SECRET_DIGEST_LEN + 1], days_s[12];
    secret_token(tok);
    secret_digest(tok, th);
    snprintf(days_s, sizeof days_s, "%d", days);
    const char *params[] = {th, researcher_id, name, study_ids, max_role, days_s};
    if (pg_command(conn,
                   "INSERT INTO console_api_tokens (token_hash, researcher_id, name, study_ids, "
                   "max_role, expires_at) VALUES ($1, $2, $3, $4::text[], $5, "
                   "now() + $6::integer * interval '1 day')",
                   6, params, errstr, errstr_size) < 0)
        return -1;
    snprintf(out, 48, TOKEN_PREFIX "%s", tok);
    return 0;
}
