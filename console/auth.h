/*
 * auth: who is calling the console. Sign-in with e-mail and password
 * (backoff, lockout), sessions in PostgreSQL, the CSRF token of a session,
 * API tokens, sign-out.
 *
 *   auth_signin()         check a password, open a new session
 *   auth_session()        the principal behind a session cookie
 *   auth_token()          the principal behind an API token
 *   auth_csrf_ok()        does a request's CSRF header match its session
 *   auth_signout()        end a session
 *   auth_session_open()   open a session for a researcher (sign-in, tests)
 *
 * DESIGN. Sessions live in PostgreSQL (console_sessions, 0060), so any
 * replica serves any request and sign-out is immediate; the alternative,
 * signed cookies, cannot be revoked before they expire. The cookie holds
 * 256 random bits; the table their SHA-256 (secret.h). A session is valid
 * until expires_at (AUTH_SESSION_ABSOLUTE_S after sign-in) and while used
 * at least every AUTH_SESSION_IDLE_S. Sign-in always creates a new session
 * and deletes the one the browser presented: an attacker who planted a
 * session id in the browser (fixation) holds nothing after the victim
 * signs in.
 *
 * Backoff and lockout, per account, counted in console_credentials so every
 * replica sees them: the 3rd, 4th consecutive wrong password lock the
 * account for 1 s, 2 s; the AUTH_LOCK_AFTER-th (5th) for
 * AUTH_LOCK_SECONDS (15 min). A right password resets the count; `vigil
 * users reset` clears a lock. While locked, sign-in answers 429 with
 * Retry-After without checking the password, so a locked account costs no
 * Argon2 work. An unknown e-mail costs one verification of a dummy hash, as
 * a wrong password does, and answers the same 401.
 *
 * Thread-safety: no state of its own; CONN is used by the calling thread
 * only, as libpq requires.
 */
#ifndef VIGIL_CONSOLE_AUTH_H
#define VIGIL_CONSOLE_AUTH_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "secret.h"

#define AUTH_COOKIE "__Host-vigil_session"
#define AUTH_SESSION_ABSOLUTE_S (12 * 3600)
#define AUTH_SESSION_IDLE_S 3600
#define AUTH_BACKOFF_AFTER 3
#define AUTH_LOCK_AFTER 5
#define AUTH_LOCK_SECONDS 900
#define AUTH_ID_MAX 201

enum auth_kind { AUTH_NONE = 0, AUTH_SESSION, AUTH_TOKEN, AUTH_PROXY };

/* The caller of one request. researcher_id is empty for AUTH_NONE. */
struct auth_principal {
    enum auth_kind kind;
    char researcher_id[AUTH_ID_MAX];
    char token_id[24];                      /* API token id (decimal), "" for a session */
    char session_hash[SECRET_DIGEST_LEN + 1]; /* "" for a token */
    char csrf_hash[SECRET_DIGEST_LEN + 1];
};

enum auth_result {
    AUTH_OK = 0,
    AUTH_DENIED,    /* wrong e-mail or password, disabled, inactive: 401 */
    AUTH_LOCKED,    /* backoff or lockout: 429, retry_after seconds */
    AUTH_ERROR,     /* PostgreSQL failed: 503, errstr set */
};

/* A freshly opened session: the two values the client gets, once. */
struct auth_new_session {
    char session[SECRET_TOKEN_LEN + 1]; /* the cookie's value */
    char csrf[SECRET_TOKEN_LEN + 1];    /* for the X-CSRF-Token header */
    char expires_at[40];                /* RFC 3339, UTC */
};

/* Checks EMAIL/PASSWORD and on success opens a session (deleting
 * OLD_SESSION, the cookie the browser presented, if any: may be NULL) into
 * *out and sets researcher_id (AUTH_ID_MAX bytes). On AUTH_LOCKED sets
 * *retry_after (seconds, >= 1). Counts a wrong password against the
 * account. */
enum auth_result auth_signin(PGconn *conn, const char *email, const char *password,
                             size_t password_len, const char *old_session,
                             struct auth_new_session *out, char *researcher_id,
                             int *retry_after, char *errstr, size_t errstr_size);

/* Opens a session for RESEARCHER_ID without a password (auth_signin's last
 * step; tests). Returns 0 or -1 with errstr set. */
int auth_session_open(PGconn *conn, const char *researcher_id, struct auth_new_session *out,
                      char *errstr, size_t errstr_size);

/* Fills *p from the session cookie value COOKIE (NULL: none). Returns
 * AUTH_OK, AUTH_DENIED (absent, malformed, unknown, expired, idle, disabled
 * account, inactive researcher) or AUTH_ERROR. Slides the idle deadline. */
enum auth_result auth_session(PGconn *conn, const char *cookie, struct auth_principal *p,
                              char *errstr, size_t errstr_size);

/* Fills *p from an "Authorization: Bearer vgt_..." header value. Returns as
 * auth_session (expired or revoked tokens are AUTH_DENIED). */
enum auth_result auth_token(PGconn *conn, const char *authorization, struct auth_principal *p,
                            char *errstr, size_t errstr_size);

/* Fills *p for the researcher whose sign-in e-mail is EMAIL, as asserted
 * by a trusted authenticating proxy (the caller checked the proxy's
 * address). Returns AUTH_OK, AUTH_DENIED (no such account, disabled,
 * inactive) or AUTH_ERROR. */
enum auth_result auth_proxy(PGconn *conn, const char *email, struct auth_principal *p,
                            char *errstr, size_t errstr_size);

/* True when a state change by P may proceed: P is an API token (a script
 * sends no ambient cookie, so it cannot be forged cross-site); P is a
 * session and CSRF_HEADER is that session's CSRF token; or P came through
 * the trusted proxy and CSRF_HEADER is "proxy" (the proxy's own cookie is
 * ambient, so a forged cross-site request would carry it; a custom header
 * cannot be sent cross-site without a CORS preflight, which the console
 * never grants). */
bool auth_csrf_ok(const struct auth_principal *p, const char *csrf_header);

/* Deletes P's session. Returns 0 or -1 with errstr set. */
int auth_signout(PGconn *conn, const struct auth_principal *p, char *errstr, size_t errstr_size);

/* Creates an API token for RESEARCHER_ID limited to STUDY_IDS (a text[]
 * literal), MAX_ROLE and DAYS days; writes the token ("vgt_" + 43
 * characters) into out (48 bytes). Returns 0 or -1 with errstr set. */
int auth_token_create(PGconn *conn, const char *researcher_id, const char *name,
                      const char *study_ids, const char *max_role, int days, char out[48],
                      char *errstr, size_t errstr_size);

#endif
