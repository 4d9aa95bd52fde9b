/*
 * api: the console's JSON API handlers (api.h).
 */
#include "api.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "audit.h"
#include "email.h"
#include "jsonw.h"
#include "log.h"
#include "password.h"
#include "pg.h"
#include "policy.h"
#include "policy_store.h"

/* An alert's lifecycle state as the console shows it: alert_lifecycle's
 * (0010), else what the alert row says (a signal not yet given a lifecycle
 * row is open; a retraction is an alert of its own that is never open).
 * One expression, so the list's filter and every answer agree. */
#define STATE_SQL                                                                          \
    "coalesce(l.state, CASE WHEN a.retracted THEN 'retracted' WHEN a.kind = 'retraction' " \
    "THEN 'closed' ELSE 'open' END)"
#define ALERT_FROM "alerts a LEFT JOIN alert_lifecycle l ON l.alert_id = a.alert_id "

/* Times are answered as RFC 3339 in UTC with microseconds (the cursor
 * round-trips them exactly): to_char(x AT TIME ZONE 'UTC', ...), written
 * out at each use so every statement stays one literal (check_sql_params). */

void api_response_clear(struct api_response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* JSON text with <, > and & written as \u003c, \u003e, \u0026: those
 * characters can only occur inside JSON strings, so the rewrite is exact,
 * and the answer stays inert even if something embeds it in HTML or a
 * browser sniffs it. Returns a new string (caller frees) or NULL. */
static char *dump_inert(const json_t *j)
{
    char *t = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (t == NULL)
        return NULL;
    size_t n = 0, extra = 0;
    for (const char *p = t; *p; p++, n++)
        if (*p == '<' || *p == '>' || *p == '&')
            extra += 5;
    if (extra == 0)
        return t;
    char *out = malloc(n + extra + 1), *w = out;
    if (out != NULL) {
        for (const char *p = t; *p; p++) {
            if (*p == '<' || *p == '>' || *p == '&') {
                w += snprintf(w, 7, "\\u%04x", (unsigned)*p);
            } else {
                *w++ = *p;
            }
        }
        *w = '\0';
    }
    free(t);
    return out;
}

static void respond_json(struct api_response *resp, int status, json_t *j)
{
    resp->status = status;
    free(resp->body);
    resp->body = j ? dump_inert(j) : NULL;
    if (j != NULL && resp->body == NULL)
        resp->status = 503;
    json_decref(j);
}

void api_error(struct api_response *resp, int status, const char *code, const char *message)
{
    respond_json(resp, status, json_pack("{s:s, s:s}", "error", code, "message", message));
    if (status == 503 && resp->retry_after == 0)
        resp->retry_after = 1;
}

/* A failed statement: a data exception (class 22: a value PostgreSQL would
 * not convert) is the client's 400; anything else the database's 503. The
 * server's text is logged by the caller's errstr, never sent. */
static void db_error(struct api_response *resp, const char *err)
{
    if (strstr(err, "(SQLSTATE 23") != NULL)
        api_error(resp, 422, "conflict", "the change does not fit the directory (unknown site?)");
    else if (strstr(err, "(SQLSTATE 22") != NULL)
        api_error(resp, 400, "bad_request", "a parameter has a value the database refuses");
    else
        api_error(resp, 503, "unavailable", "the database is not available; retry later");
}

/* The column's text, or JSON null. */
static json_t *col_str(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_string(PQgetvalue(r, row, col));
}

static json_t *col_num(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_real(strtod(PQgetvalue(r, row, col), NULL));
}

static const char *token_param(const struct auth_principal *who)
{
    return who->token_id[0] ? who->token_id : NULL;
}

/* ---- session ------------------------------------------------------------ */

const char *api_actor(const struct auth_principal *who, char *buf, size_t size)
{
    snprintf(buf, size, "console:%s%s%s", who->researcher_id, who->token_id[0] ? ":token:" : "",
             who->token_id);
    return buf;
}

static void session_cookie(struct api_response *resp, const char *value, int max_age)
{
    /* __Host- prefix: the browser accepts it only with Secure, Path=/ and no
     * Domain, so a sibling subdomain cannot plant or overwrite it. */
    snprintf(resp->set_cookie, sizeof resp->set_cookie,
             AUTH_COOKIE "=%s; Path=/; Max-Age=%d; HttpOnly; Secure; SameSite=Strict", value,
             max_age);
}

static void session_post(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    (void)who;
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    if (body == NULL) {
        api_error(resp, 400, "bad_request", err);
        return;
    }
    const char *email = json_string_value(json_object_get(body, "email"));
    json_t *pw = json_object_get(body, "password");
    if (email == NULL || !json_is_string(pw)) {
        json_decref(body);
        api_error(resp, 400, "bad_request", "email and password (strings) are required");
        return;
    }
    char old[SECRET_TOKEN_LEN + 2];
    int has_old = reqparse_cookie_get(req->cookie, AUTH_COOKIE, old, sizeof old);
    struct auth_new_session s;
    char rid[AUTH_ID_MAX];
    int retry = 0;
    enum auth_result ar = auth_signin(conn, email, json_string_value(pw), json_string_length(pw),
                                      has_old == 1 ? old : NULL, &s, rid, &retry, err, sizeof err);
    json_decref(body);
    switch (ar) {
    case AUTH_OK:
        session_cookie(resp, s.session, AUTH_SESSION_ABSOLUTE_S);
        respond_json(resp, 200,
                     json_pack("{s:s, s:s, s:s}", "researcher_id", rid, "csrf_token", s.csrf,
                               "expires_at", s.expires_at));
        sodium_memzero(&s, sizeof s);
        return;
    case AUTH_LOCKED:
        resp->retry_after = retry;
        api_error(resp, 429, "locked", "too many wrong passwords: try again later");
        return;
    case AUTH_DENIED:
        api_error(resp, 401, "denied", "wrong e-mail or password");
        return;
    case AUTH_ERROR:
        db_error(resp, err);
        return;
    }
}

static void session_get(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    (void)values;
    char err[512];
    const char *params[] = {who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn,
                           "SELECT r.study_id, CASE r.rank WHEN 1 THEN 'viewer' WHEN 2 THEN 'responder' "
                           "WHEN 3 THEN 'study_admin' END, "
                           "(SELECT name FROM researchers WHERE researcher_id = $1), "
                           "EXISTS (SELECT 1 FROM console_grants WHERE researcher_id = $1 AND role = 'admin' "
                           "AND $2::bigint IS NULL) "
                           "FROM console_study_roles($1, $2::bigint) r ORDER BY r.study_id",
                           2, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    json_t *studies = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(studies, json_pack("{s:o, s:o}", "study_id", col_str(r, i, 0), "role",
                                                 col_str(r, i, 1)));
    bool admin = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 3), "t") == 0;
    json_t *name = PQntuples(r) > 0 ? col_str(r, 0, 2) : json_null();
    PQclear(r);
    respond_json(resp, 200,
                 json_pack("{s:s, s:o, s:s, s:b, s:o}", "researcher_id", who->researcher_id, "name",
                           name, "via", who->kind == AUTH_TOKEN ? "token" : who->kind == AUTH_PROXY ? "proxy" : "session", "admin",
                           admin, "studies", studies));
}

static void session_delete(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    (void)values;
    char err[512];
    if (auth_signout(conn, who, err, sizeof err) < 0) {
        db_error(resp, err);
        return;
    }
    session_cookie(resp, "", 0);
    resp->status = 204;
}

/* ---- alerts ------------------------------------------------------------- */

static bool one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0)
            return true;
    return false;
}

/* Cursor: base64url("M<time>|<alert_id>") of the last row of a page, M
 * being the ordering it belongs to ('d': alerts by detected_at, 'o': a
 * state's queue by alert_lifecycle.opened_at). Opaque to clients; checked
 * as strictly as any parameter on the way back, its mode included. */
static int cursor_decode(const char *c, char mode, char *ts, size_t tssz, char *id, size_t idsz)
{
    unsigned char raw[512];
    size_t n = 0;
    if (strlen(c) > 600 ||
        sodium_base642bin(raw, sizeof raw - 1, c, strlen(c), NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    raw[n] = '\0';
    if (n < 2 || memchr(raw, '\0', n) != NULL || raw[0] != (unsigned char)mode)
        return -1;
    char *t = (char *)raw + 1;
    char *bar = strchr(t, '|');
    if (bar == NULL)
        return -1;
    *bar = '\0';
    if (!reqparse_time_valid(t) || !reqparse_id_valid(bar + 1))
        return -1;
    if (strlen(t) >= tssz || strlen(bar + 1) >= idsz)
        return -1;
    memcpy(ts, t, strlen(t) + 1);
    memcpy(id, bar + 1, strlen(bar + 1) + 1);
    return 0;
}

static char *cursor_encode(char mode, const char *ts, const char *id)
{
    char raw[512];
    int n = snprintf(raw, sizeof raw, "%c%s|%s", mode, ts, id);
    if (n < 0 || (size_t)n >= sizeof raw)
        return NULL;
    size_t outsz = sodium_base64_encoded_len((size_t)n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(outsz);
    if (out != NULL)
        sodium_bin2base64(out, outsz, (const unsigned char *)raw, (size_t)n,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* Strict decimal in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, long *out)
{
    if (s == NULL || *s == '\0' || strlen(s) > 9)
        return false;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

#define ALERT_COLS                                                                          \
    "a.alert_id, a.kind, a.rule_id, a.rule_version, a.severity, a.ctcae_grade, a.study_id, " \
    "a.site_id, a.subject_id, a.observation_id, a.message, " "to_char(a.observed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", "      \
    "to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", " STATE_SQL ", a.retracts_alert_id, a.retracted_by"

static json_t *alert_json(const PGresult *r, int i)
{
    json_t *grade = PQgetisnull(r, i, 5) ? json_null() : json_integer(strtol(PQgetvalue(r, i, 5), NULL, 10));
    return json_pack("{s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                     "alert_id", col_str(r, i, 0), "kind", col_str(r, i, 1), "rule_id",
                     col_str(r, i, 2), "rule_version", (json_int_t)strtol(PQgetvalue(r, i, 3), NULL, 10),
                     "severity", col_str(r, i, 4), "ctcae_grade", grade, "study_id",
                     col_str(r, i, 6), "site_id", col_str(r, i, 7), "subject_id", col_str(r, i, 8),
                     "observation_id", col_str(r, i, 9), "message", col_str(r, i, 10), "observed_at",
                     col_str(r, i, 11), "detected_at", col_str(r, i, 12), "state", col_str(r, i, 13),
                     "retracts_alert_id", col_str(r, i, 14), "retracted_by", col_str(r, i, 15));
}

/* alert_json's object written straight out (jsonw.h): the queue's pages
 * are the answers served most, and building them as jansson values was
 * most of the console's CPU per page. Same keys, same order, same
 * values. */
static void alert_write(struct jsonw *w, const PGresult *r, int i)
{
    static const char *const keys[] = {
        "{\"alert_id\":", ",\"kind\":", ",\"rule_id\":", ",\"rule_version\":",
        ",\"severity\":", ",\"ctcae_grade\":", ",\"study_id\":", ",\"site_id\":",
        ",\"subject_id\":", ",\"observation_id\":", ",\"message\":", ",\"observed_at\":",
        ",\"detected_at\":", ",\"state\":", ",\"retracts_alert_id\":", ",\"retracted_by\":"};
    for (int c = 0; c < 16; c++) {
        jsonw_lit(w, keys[c]);
        if (c == 3 || c == 5) { /* integers */
            char num[24];
            if (PQgetisnull(r, i, c)) {
                jsonw_raw(w, c == 3 ? "0" : "null", c == 3 ? 1 : 4);
            } else {
                snprintf(num, sizeof num, "%ld", strtol(PQgetvalue(r, i, c), NULL, 10));
                jsonw_lit(w, num);
            }
        } else {
            jsonw_str(w, PQgetisnull(r, i, c) ? NULL : PQgetvalue(r, i, c));
        }
    }
    jsonw_raw(w, "}", 1);
}

/* The lists: newest first, only the filters asked for, each combination
 * its own statement text so pg_query_prepared keeps one prepared statement
 * (and, after five runs, a generic plan) per combination on each
 * connection. Written as "$n IS NULL OR ..." in one text instead, a
 * generic plan could not use the keyset or the study filter on the index
 * and every request paid for planning (0.4 ms, against 0.14 ms to run the
 * first page at a million alerts).
 *
 * Without a state filter: alerts by detected_at, read backwards from
 * 0061's indexes. With one (open, acknowledged, ...): by when the
 * lifecycle opened (the alert's insertion, within a batch of its
 * detection), read backwards from 0063's (state, opened_at, alert_id)
 * index, so an open queue of a few thousand among a million alerts costs
 * what its first page holds (ordering by alerts.detected_at instead meant
 * a lifecycle lookup for every alert read: 40 ms a page at a million).
 * Column 16 is the cursor's time. */
#define TS_TEXT(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define LIST_ALL_HEAD                                                                           \
    "SELECT " ALERT_COLS ", " TS_TEXT("a.detected_at") " FROM " ALERT_FROM                     \
    "WHERE a.study_id = ANY ($1::text[])"
#define LIST_STATE_HEAD                                                                         \
    "SELECT " ALERT_COLS ", " TS_TEXT("l.opened_at") " FROM alert_lifecycle l "                 \
    "JOIN alerts a ON a.alert_id = l.alert_id WHERE l.study_id = ANY ($1::text[])"
/* The studies the caller may see, as the text of a sorted text[]: the list
 * is filtered by it in SQL, and it is the only thing about the caller the
 * list's statement carries, so callers who see the same studies ask the
 * same statement and can share its execution (coalesce.h). */
#define LIST_STUDIES                                                                            \
    "SELECT coalesce(array_agg(study_id ORDER BY study_id), '{}') FROM console_study_roles($1, $2::bigint)"

/* A statement under construction: text and the parameters it numbers. */
struct list_sql {
    char text[4096];
    size_t len;
    const char *params[12];
    int n;
    bool overflow;
};

/* Appends FMT with each "%d" replaced by the next parameter ("$3"), V1
 * then V2 being those parameters' values. */
static void list_sql_add(struct list_sql *q, const char *fmt, const char *v1, const char *v2)
{
    const char *vals[2] = {v1, v2};
    int k = 0;
    for (const char *p = fmt; *p != '\0'; p++) {
        char buf[16];
        const char *piece = buf;
        if (p[0] == '%' && p[1] == 'd' && k < 2 && q->n < 12) {
            q->params[q->n++] = vals[k++];
            snprintf(buf, sizeof buf, "$%d", q->n);
            p++;
        } else {
            buf[0] = *p;
            buf[1] = '\0';
        }
        size_t l = strlen(piece);
        if (q->len + l >= sizeof q->text) {
            q->overflow = true;
            return;
        }
        memcpy(q->text + q->len, piece, l + 1);
        q->len += l;
    }
}

static void alerts_list(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    static const char *const allowed[] = {"study", "site", "severity", "state", "since",
                                          "until", "limit", "cursor", NULL};
    static const char *const severities[] = {"info", "warning", "critical", NULL};
    static const char *const states[] = {"open", "acknowledged", "resolved", "retracted", NULL};
    char err[512];
    const struct reqparse_query *q = req->query;
    if (reqparse_query_only(q, allowed, err, sizeof err) < 0) {
        api_error(resp, 400, "bad_request", err);
        return;
    }
    const char *study = reqparse_query_get(q, "study"), *site = reqparse_query_get(q, "site");
    const char *sev = reqparse_query_get(q, "severity"), *state = reqparse_query_get(q, "state");
    const char *since = reqparse_query_get(q, "since"), *until = reqparse_query_get(q, "until");
    const char *limit_s = reqparse_query_get(q, "limit"), *cursor = reqparse_query_get(q, "cursor");
    long limit = API_PAGE_DEFAULT;
    char cts[64] = "", cid[REQPARSE_ID_MAX + 1] = "";
    if ((study && !reqparse_id_valid(study)) || (site && !reqparse_id_valid(site))) {
        api_error(resp, 400, "bad_request", "study and site are identifiers (1-200 printable characters)");
        return;
    }
    if (sev && !one_of(sev, severities)) {
        api_error(resp, 400, "bad_request", "severity is info, warning or critical");
        return;
    }
    if (state && !one_of(state, states)) {
        api_error(resp, 400, "bad_request", "state is open, acknowledged, resolved or retracted");
        return;
    }
    if ((since && !reqparse_time_valid(since)) || (until && !reqparse_time_valid(until))) {
        api_error(resp, 400, "bad_request", "since and until are RFC 3339 times (2026-01-31T12:00:00Z)");
        return;
    }
    if (limit_s && !parse_int(limit_s, 1, API_PAGE_MAX, &limit)) {
        api_error(resp, 400, "bad_request", "limit is an integer from 1 to 200");
        return;
    }
    char mode = state ? 'o' : 'd';
    if (cursor && cursor_decode(cursor, mode, cts, sizeof cts, cid, sizeof cid) < 0) {
        api_error(resp, 400, "bad_request", "cursor is not one this server gave out");
        return;
    }
    char limit1[24];
    snprintf(limit1, sizeof limit1, "%ld", limit + 1);
    /* The cursor is the (time, alert_id) of the last row shown, compared
     * as a row value so the index serves each page from where the last
     * ended. A signal from before 0010 has no lifecycle row: listed (as
     * open) without a state filter, not found with one. */
    const char *caller[] = {who->researcher_id, token_param(who)};
    struct coalesce_ref sref = {0};
    const PGresult *sr;
    PGresult *sr_own = NULL;
    if (req->coalesce != NULL)
        sr = coalesce_query(req->coalesce, conn, "" LIST_STUDIES, 2, caller, req->arrived_ns, &sref,
                            err, sizeof err);
    else
        sr = sr_own = pg_query_prepared(conn, "" LIST_STUDIES, 2, caller, err, sizeof err);
    if (sr == NULL) {
        db_error(resp, err);
        return;
    }
    if (strcmp(PQgetvalue(sr, 0, 0), "{}") == 0) {
        /* nothing to see: no statement (it would read the whole index) */
        PQclear(sr_own);
        coalesce_release(req->coalesce, &sref);
        resp->status = 200;
        free(resp->body);
        resp->body = strdup("{\"alerts\":[],\"next_cursor\":null}");
        if (resp->body == NULL)
            api_error(resp, 503, "unavailable", "out of memory");
        return;
    }
    struct list_sql ls = {.len = 0, .n = 1};
    ls.params[0] = PQgetvalue(sr, 0, 0);
    const char *t = state ? "l" : "a"; /* the table the filters read */
    char f[160];
    list_sql_add(&ls, state ? LIST_STATE_HEAD : LIST_ALL_HEAD, NULL, NULL);
    if (state)
        list_sql_add(&ls, " AND l.state = %d", state, NULL);
    snprintf(f, sizeof f, " AND %s.study_id = %%d", t);
    if (study)
        list_sql_add(&ls, f, study, NULL);
    snprintf(f, sizeof f, " AND %s.site_id = %%d", t);
    if (site)
        list_sql_add(&ls, f, site, NULL);
    snprintf(f, sizeof f, " AND %s.severity = %%d", t);
    if (sev)
        list_sql_add(&ls, f, sev, NULL);
    if (since)
        list_sql_add(&ls, " AND a.detected_at >= %d::timestamptz", since, NULL);
    if (until)
        list_sql_add(&ls, " AND a.detected_at < %d::timestamptz", until, NULL);
    if (cursor)
        list_sql_add(&ls, state ? " AND (l.opened_at, l.alert_id) < (%d::timestamptz, %d::text)"
                               : " AND (a.detected_at, a.alert_id) < (%d::timestamptz, %d::text)",
                     cts, cid);
    list_sql_add(&ls, state ? " ORDER BY l.opened_at DESC, l.alert_id DESC LIMIT %d::integer"
                           : " ORDER BY a.detected_at DESC, a.alert_id DESC LIMIT %d::integer",
                 limit1, NULL);
    if (ls.overflow) {
        PQclear(sr_own);
        coalesce_release(req->coalesce, &sref);
        api_error(resp, 500, "internal", "statement too long");
        return;
    }
    /* Every open console of a study's team asks for the same first page:
     * those asking at once share one execution (coalesce.h). */
    struct coalesce_ref ref = {0};
    const PGresult *r;
    PGresult *own = NULL;
    if (req->coalesce != NULL)
        r = coalesce_query(req->coalesce, conn, ls.text, ls.n, ls.params, req->arrived_ns, &ref, err,
                           sizeof err);
    else
        r = own = pg_query_prepared(conn, ls.text, ls.n, ls.params, err, sizeof err);
    PQclear(sr_own);
    coalesce_release(req->coalesce, &sref);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    int shown = n > limit ? (int)limit : n;
    struct jsonw w = {0};
    jsonw_lit(&w, "{\"alerts\":[");
    for (int i = 0; i < shown; i++) {
        if (i > 0)
            jsonw_raw(&w, ",", 1);
        alert_write(&w, r, i);
    }
    jsonw_lit(&w, "],\"next_cursor\":");
    char *c = n > limit ? cursor_encode(mode, PQgetvalue(r, shown - 1, 16), PQgetvalue(r, shown - 1, 0))
                        : NULL;
    jsonw_str(&w, c);
    free(c);
    jsonw_raw(&w, "}", 1);
    PQclear(own);
    coalesce_release(req->coalesce, &ref);
    resp->status = 200;
    free(resp->body);
    resp->body = jsonw_finish(&w);
    if (resp->body == NULL)
        api_error(resp, 503, "unavailable", "out of memory");
}

static void alert_get(PGconn *conn, const struct api_request *req, const char *const *values,
                      const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    const char *params[] = {values[0], who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn,
                           "SELECT " ALERT_COLS ", a.evidence::text, " "to_char(l.acknowledged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", l.acknowledged_by, "
                           "l.ack_channel, l.ack_note, " "to_char(l.resolved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", l.resolved_by, l.resolution_category, "
                           "l.resolution_note FROM " ALERT_FROM
                           "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = a.study_id "
                           "WHERE a.alert_id = $1",
                           3, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        api_error(resp, 404, "not_found", "no such alert in your studies");
        return;
    }
    json_t *alert = alert_json(r, 0);
    json_t *evidence = json_loads(PQgetvalue(r, 0, 16), 0, NULL);
    json_object_set_new(alert, "evidence", evidence ? evidence : json_array());
    json_object_set_new(alert, "acknowledgement",
                        PQgetisnull(r, 0, 17) ? json_null()
                                              : json_pack("{s:o, s:o, s:o, s:o}", "at", col_str(r, 0, 17),
                                                          "by", col_str(r, 0, 18), "channel",
                                                          col_str(r, 0, 19), "note", col_str(r, 0, 20)));
    json_object_set_new(alert, "resolution",
                        PQgetisnull(r, 0, 21) ? json_null()
                                              : json_pack("{s:o, s:o, s:o, s:o}", "at", col_str(r, 0, 21),
                                                          "by", col_str(r, 0, 22), "category",
                                                          col_str(r, 0, 23), "note", col_str(r, 0, 24)));
    PQclear(r);

    r = pg_query(conn,
                 "SELECT n.researcher_id, n.channel, n.state, n.attempts, " "to_char(n.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", "
                 "to_char(n.sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", n.last_error, n.step, "
                 "to_char(n.deferred_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                 "FROM notifications n "
                 "JOIN alerts a ON a.alert_id = n.alert_id "
                 "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = a.study_id "
                 "WHERE n.alert_id = $1 ORDER BY n.created_at, n.step, n.researcher_id, n.channel",
                 3, params, err, sizeof err);
    if (r == NULL) {
        json_decref(alert);
        db_error(resp, err);
        return;
    }
    json_t *notes = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(notes,
                              json_pack("{s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:I, s:o}", "researcher_id",
                                        col_str(r, i, 0), "channel", col_str(r, i, 1), "state",
                                        col_str(r, i, 2), "attempts",
                                        (json_int_t)strtol(PQgetvalue(r, i, 3), NULL, 10),
                                        "created_at", col_str(r, i, 4), "sent_at", col_str(r, i, 5),
                                        "last_error", col_str(r, i, 6), "step",
                                        (json_int_t)strtol(PQgetvalue(r, i, 7), NULL, 10),
                                        "deferred_until", col_str(r, i, 8)));
    PQclear(r);
    json_object_set_new(alert, "notifications", notes);

    /* The audit trail of this alert (0010's hash-chained alert_events). */
    r = pg_query(conn,
                 "SELECT e.event_id, e.kind, e.actor, e.detail::text, " "to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" " "
                 "FROM alert_events e JOIN alerts a ON a.alert_id = e.alert_id "
                 "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = a.study_id "
                 "WHERE e.alert_id = $1 ORDER BY e.event_id LIMIT 1000",
                 3, params, err, sizeof err);
    if (r == NULL) {
        json_decref(alert);
        db_error(resp, err);
        return;
    }
    json_t *events = json_array();
    for (int i = 0; i < PQntuples(r); i++) {
        json_t *detail = json_loads(PQgetvalue(r, i, 3), 0, NULL);
        json_array_append_new(events,
                              json_pack("{s:I, s:o, s:o, s:o, s:o}", "event_id",
                                        (json_int_t)strtoll(PQgetvalue(r, i, 0), NULL, 10), "kind",
                                        col_str(r, i, 1), "actor", col_str(r, i, 2), "detail",
                                        detail ? detail : json_object(), "recorded_at",
                                        col_str(r, i, 4)));
    }
    PQclear(r);
    json_object_set_new(alert, "events", events);
    respond_json(resp, 200, alert);
}

/* The lifecycle's outcome as an HTTP status. */
static int outcome_status(const char *outcome)
{
    if (strcmp(outcome, "acknowledged") == 0 || strcmp(outcome, "already_acknowledged") == 0 ||
        strcmp(outcome, "resolved") == 0)
        return 200;
    if (strcmp(outcome, "unknown_alert") == 0)
        return 404;
    if (strcmp(outcome, "already_resolved") == 0 || strcmp(outcome, "retracted") == 0)
        return 409;
    return 422;
}

/* ack and resolve: the rank check and the change are one statement (the
 * function is called only on a row the join let through), so no window
 * lets a grant revoked in between slip past. */
static void alert_change(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp, bool resolve)
{
    char err[512];
    json_t *body = NULL;
    const char *note = NULL, *category = NULL;
    if (req->body_len > 0 || resolve) {
        body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
        if (body == NULL) {
            api_error(resp, 400, "bad_request", err);
            return;
        }
        json_t *n = json_object_get(body, "note"), *c = json_object_get(body, "category");
        if ((n && !json_is_string(n)) || (c && !json_is_string(c)) ||
            (n && json_string_length(n) > 2000)) {
            json_decref(body);
            api_error(resp, 400, "bad_request", "note and category are strings (note up to 2000 bytes)");
            return;
        }
        note = json_string_value(n);
        category = json_string_value(c);
        if (note && memchr(json_string_value(n), '\0', json_string_length(n)) != NULL) {
            json_decref(body);
            api_error(resp, 400, "bad_request", "note holds a NUL character");
            return;
        }
        if (resolve && (category == NULL || !reqparse_id_valid(category))) {
            json_decref(body);
            api_error(resp, 400, "bad_request", "resolve needs a category");
            return;
        }
    }
    char origin[64];
    if (who->kind == AUTH_TOKEN)
        snprintf(origin, sizeof origin, "api-token:%s", who->token_id);
    else
        snprintf(origin, sizeof origin, "session");
    const char *channel = who->kind == AUTH_TOKEN ? "api" : "console";
    if (who->kind == AUTH_PROXY)
        snprintf(origin, sizeof origin, "proxy");
    const char *params[] = {values[0], who->researcher_id, token_param(who), note, origin, category, channel};
    PGresult *r;
    if (resolve)
        r = pg_query(conn,
                     "SELECT vigil_alert_resolve(a.alert_id, $2, $6, $4, $7, $5) FROM alerts a "
                     "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = a.study_id "
                     "AND sr.rank >= 2 WHERE a.alert_id = $1",
                     7, params, err, sizeof err);
    else
        r = pg_query(conn,
                     "SELECT vigil_alert_ack(a.alert_id, $2, $7, $5, $4) FROM alerts a "
                     "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = a.study_id "
                     "AND sr.rank >= 2 WHERE a.alert_id = $1 AND $6::text IS NULL",
                     7, params, err, sizeof err);
    json_decref(body);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) == 1) {
        char outcome[64];
        snprintf(outcome, sizeof outcome, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        int st = outcome_status(outcome);
        respond_json(resp, st, st == 200 ? json_pack("{s:s}", "result", outcome)
                                         : json_pack("{s:s, s:s}", "error", outcome, "message",
                                                     "the alert's state does not allow this"));
        return;
    }
    PQclear(r);
    /* Nothing changed: say 403 only to a caller who may see the alert. */
    r = pg_query(conn,
                 "SELECT 1 FROM alerts a JOIN console_study_roles($2, $3::bigint) sr "
                 "ON sr.study_id = a.study_id WHERE a.alert_id = $1",
                 3, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    bool visible = PQntuples(r) > 0;
    PQclear(r);
    if (visible)
        api_error(resp, 403, "forbidden", "acknowledging and resolving need the responder role");
    else
        api_error(resp, 404, "not_found", "no such alert in your studies");
}

static void alert_ack(PGconn *conn, const struct api_request *req, const char *const *values,
                      const struct auth_principal *who, struct api_response *resp)
{
    alert_change(conn, req, values, who, resp, false);
}

static void alert_resolve(PGconn *conn, const struct api_request *req, const char *const *values,
                          const struct auth_principal *who, struct api_response *resp)
{
    alert_change(conn, req, values, who, resp, true);
}

/* ---- subjects ----------------------------------------------------------- */

static void timeline_get(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp)
{
    static const char *const allowed[] = {"loinc", "since", "until", NULL};
    char err[512];
    const struct reqparse_query *q = req->query;
    if (reqparse_query_only(q, allowed, err, sizeof err) < 0) {
        api_error(resp, 400, "bad_request", err);
        return;
    }
    const char *loinc = reqparse_query_get(q, "loinc");
    const char *since = reqparse_query_get(q, "since"), *until = reqparse_query_get(q, "until");
    if ((loinc && !reqparse_id_valid(loinc)) || (since && !reqparse_time_valid(since)) ||
        (until && !reqparse_time_valid(until))) {
        api_error(resp, 400, "bad_request", "loinc is a code; since and until are RFC 3339 times");
        return;
    }
    char maxrows[16];
    snprintf(maxrows, sizeof maxrows, "%d", API_TIMELINE_MAX + 1);
    const char *params[] = {values[0], values[1], who->researcher_id, token_param(who), loinc,
                            since, until, maxrows};
    PGresult *r = pg_query(conn, "SELECT 1 FROM console_study_roles($3, $4::bigint) WHERE study_id = $1 "
                                 "AND $2::text IS NOT NULL",
                           4, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    bool visible = PQntuples(r) > 0;
    PQclear(r);
    if (!visible) {
        api_error(resp, 404, "not_found", "no such study among yours");
        return;
    }
    r = pg_query(conn,
                 "SELECT o.loinc, o.observation_id, " "to_char(o.effective_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", o.value_norm, o.unit_norm, "
                 "o.ref_low_norm, o.ref_high_norm, o.value, o.unit, o.status, o.site_id "
                 "FROM observations o JOIN console_study_roles($3, $4::bigint) sr ON sr.study_id = o.study_id "
                 "WHERE o.study_id = $1 AND o.subject_id = $2 "
                 "AND ($5::text IS NULL OR o.loinc = $5) "
                 "AND ($6::timestamptz IS NULL OR o.effective_at >= $6::timestamptz) "
                 "AND ($7::timestamptz IS NULL OR o.effective_at < $7::timestamptz) "
                 "ORDER BY o.loinc, o.effective_at, o.observation_id LIMIT $8::integer",
                 8, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    bool truncated = n > API_TIMELINE_MAX;
    if (truncated)
        n = API_TIMELINE_MAX;
    json_t *analytes = json_array(), *cur = NULL, *points = NULL;
    for (int i = 0; i < n; i++) {
        if (cur == NULL || strcmp(json_string_value(json_object_get(cur, "loinc")), PQgetvalue(r, i, 0)) != 0) {
            points = json_array();
            cur = json_pack("{s:o, s:o, s:o}", "loinc", col_str(r, i, 0), "unit", col_str(r, i, 4),
                            "points", points);
            json_array_append_new(analytes, cur);
        }
        json_array_append_new(points,
                              json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                                        "observation_id", col_str(r, i, 1), "effective_at",
                                        col_str(r, i, 2), "value", col_num(r, i, 3), "ref_low",
                                        col_num(r, i, 5), "ref_high", col_num(r, i, 6), "raw_value",
                                        col_num(r, i, 7), "raw_unit", col_str(r, i, 8), "status",
                                        col_str(r, i, 9), "site_id", col_str(r, i, 10)));
    }
    PQclear(r);
    const char *aparams[] = {values[0], values[1], who->researcher_id, token_param(who), since,
                             until, maxrows};
    r = pg_query(conn,
                 "SELECT " ALERT_COLS " FROM " ALERT_FROM
                 "JOIN console_study_roles($3, $4::bigint) sr ON sr.study_id = a.study_id "
                 "WHERE a.study_id = $1 AND a.subject_id = $2 "
                 "AND ($5::timestamptz IS NULL OR a.observed_at >= $5::timestamptz) "
                 "AND ($6::timestamptz IS NULL OR a.observed_at < $6::timestamptz) "
                 "ORDER BY a.observed_at, a.alert_id LIMIT $7::integer",
                 7, aparams, err, sizeof err);
    if (r == NULL) {
        json_decref(analytes);
        db_error(resp, err);
        return;
    }
    json_t *alerts = json_array();
    for (int i = 0; i < PQntuples(r) && i < API_TIMELINE_MAX; i++)
        json_array_append_new(alerts, alert_json(r, i));
    PQclear(r);
    respond_json(resp, 200,
                 json_pack("{s:s, s:s, s:o, s:o, s:b}", "study_id", values[0], "subject_id",
                           values[1], "analytes", analytes, "alerts", alerts, "truncated", truncated));
}

/* ---- subscriptions (self-service) ---------------------------------------- */

static json_t *subscription_json(const PGresult *r, int i)
{
    json_t *channels = json_loads(PQgetvalue(r, i, 3), 0, NULL);
    return json_pack("{s:o, s:o, s:o, s:o}", "study_id", col_str(r, i, 0), "site_id", col_str(r, i, 1),
                     "min_severity", col_str(r, i, 2), "channels", channels ? channels : json_array());
}

#define SUB_COLS "s.study_id, s.site_id, s.min_severity, to_json(s.channels)::text"

static void subscriptions_get(PGconn *conn, const struct api_request *req, const char *const *values,
                              const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    (void)values;
    char err[512];
    const char *params[] = {who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn,
                           "SELECT " SUB_COLS " FROM subscriptions s "
                           "JOIN console_study_roles($1, $2::bigint) sr ON sr.study_id = s.study_id "
                           "WHERE s.researcher_id = $1 ORDER BY s.study_id, s.site_id NULLS FIRST",
                           2, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(list, subscription_json(r, i));
    PQclear(r);
    json_t *quiet = api_quiet_get(conn, who->researcher_id, err, sizeof err);
    if (quiet == NULL) {
        json_decref(list);
        db_error(resp, err);
        return;
    }
    respond_json(resp, 200, json_pack("{s:o, s:o}", "subscriptions", list, "quiet_hours", quiet));
}

/* PUT: the caller's own subscription to one study (one site, or every site
 * when site_id is null), created or replaced. Only in a study the caller
 * holds a role in; the notifier picks it up through its directory cache
 * (LISTEN vigil_directory). */
static void subscriptions_put(PGconn *conn, const struct api_request *req, const char *const *values,
                              const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    static const char *const severities[] = {"info", "warning", "critical", NULL};
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    if (body == NULL) {
        api_error(resp, 400, "bad_request", err);
        return;
    }
    /* quiet_hours (0064) are the researcher's, not one subscription's: a
     * body may carry them alone, or with a subscription */
    json_t *quiet = json_object_get(body, "quiet_hours");
    if (quiet != NULL && json_object_size(body) == 1) {
        if (api_quiet_put(conn, who, quiet, resp) == 0) {
            json_t *q = api_quiet_get(conn, who->researcher_id, err, sizeof err);
            if (q == NULL)
                db_error(resp, err);
            else
                respond_json(resp, 200, json_pack("{s:o}", "quiet_hours", q));
        }
        json_decref(body);
        return;
    }
    const char *study = json_string_value(json_object_get(body, "study_id"));
    json_t *site_j = json_object_get(body, "site_id");
    const char *site = json_string_value(site_j);
    const char *sev = json_string_value(json_object_get(body, "min_severity"));
    json_t *ch = json_object_get(body, "channels");
    bool ok = study && reqparse_id_valid(study) && (site_j == NULL || json_is_null(site_j) ||
                                                    (site && reqparse_id_valid(site))) &&
              sev && one_of(sev, severities) && json_is_array(ch) && json_array_size(ch) >= 1 &&
              json_array_size(ch) <= 2;
    bool email = false, sms = false;
    for (size_t i = 0; ok && i < json_array_size(ch); i++) {
        const char *c = json_string_value(json_array_get(ch, i));
        bool *seen = c == NULL ? NULL : strcmp(c, "email") == 0 ? &email : strcmp(c, "sms") == 0 ? &sms : NULL;
        ok = seen != NULL && !*seen;
        if (ok)
            *seen = true;
    }
    if (!ok) {
        json_decref(body);
        api_error(resp, 400, "bad_request",
                  "study_id, site_id (or null: every site), min_severity (info, warning, critical) "
                  "and channels (email and/or sms, once each) are required");
        return;
    }
    const char *channels = email && sms ? "{email,sms}" : email ? "{email}" : "{sms}";
    if (quiet != NULL && api_quiet_put(conn, who, quiet, resp) != 0) {
        json_decref(body);
        return;
    }
    char actor[300];
    const char *params[] = {who->researcher_id, token_param(who), study, site, sev, channels,
                            api_actor(who, actor, sizeof actor)};
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$7")
                           "INSERT INTO subscriptions AS s (researcher_id, study_id, site_id, min_severity, channels) "
                           "SELECT $1, sr.study_id, $4, $5, $6::text[] FROM audit_ctx, "
                           "console_study_roles($1, $2::bigint) sr WHERE sr.study_id = $3 "
                           "ON CONFLICT (researcher_id, study_id, (coalesce(site_id, ''))) DO UPDATE "
                           "SET min_severity = EXCLUDED.min_severity, channels = EXCLUDED.channels "
                           "RETURNING " SUB_COLS,
                           7, params, err, sizeof err);
    json_decref(body);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        api_error(resp, 404, "not_found", "no such study among yours");
        return;
    }
    json_t *sub = subscription_json(r, 0);
    PQclear(r);
    if (quiet != NULL) {
        json_t *q = api_quiet_get(conn, who->researcher_id, err, sizeof err);
        json_object_set_new(sub, "quiet_hours", q != NULL ? q : json_null());
    }
    respond_json(resp, 200, sub);
}

static void subscriptions_delete(PGconn *conn, const struct api_request *req,
                                 const char *const *values, const struct auth_principal *who,
                                 struct api_response *resp)
{
    (void)values;
    static const char *const allowed[] = {"study", "site", NULL};
    char err[512];
    const struct reqparse_query *q = req->query;
    const char *study = reqparse_query_get(q, "study"), *site = reqparse_query_get(q, "site");
    if (reqparse_query_only(q, allowed, err, sizeof err) < 0 || study == NULL ||
        !reqparse_id_valid(study) || (site && !reqparse_id_valid(site))) {
        api_error(resp, 400, "bad_request", "study (and site, absent for every site) are required");
        return;
    }
    char actor[300];
    const char *params[] = {who->researcher_id, token_param(who), study, site,
                            api_actor(who, actor, sizeof actor)};
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$5")
                           "DELETE FROM subscriptions s USING audit_ctx, console_study_roles($1, $2::bigint) sr "
                           "WHERE sr.study_id = s.study_id AND s.researcher_id = $1 AND s.study_id = $3 "
                           "AND coalesce(s.site_id, '') = coalesce($4::text, '') RETURNING 1",
                           5, params, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0)
        api_error(resp, 404, "not_found", "no such subscription of yours");
    else
        resp->status = 204;
}

/* ---- password reset by e-mail ------------------------------------------- */

/* Sends the reset link to RCPT. Returns 0 or -1 with errstr set. Runs on
 * the request's thread, bounded by the SMTP timeout, inside the sign-in
 * limiter pool. */
static int reset_mail(const struct api_context *ctx, const char *rcpt, const char *token,
                      char *errstr, size_t errstr_size)
{
    char body[1024], msg[EMAIL_MAX], mid[300], key[128];
    snprintf(body, sizeof body,
             "Someone (you, we hope) asked to set a new password for the vigil console.\n\n"
             "Set a new password here, within %d minutes; the link works once:\n\n"
             "%s/console/#reset/%s\n\n"
             "If you did not ask, ignore this message: your password stays as it is.\n",
             API_RESET_TTL_S / 60, ctx->public_url ? ctx->public_url : "", token);
    snprintf(key, sizeof key, "reset-%s", token);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    email_message_id(key, ctx->smtp_from, mid, sizeof mid);
    struct email_headers h = {.from = ctx->smtp_from, .to = rcpt,
                              .subject = "vigil console: set a new password", .message_id = mid,
                              .date_ms = now_ms, .alert_ids = ""};
    size_t len = email_format(&h, body, msg, sizeof msg);
    if (len == 0) {
        snprintf(errstr, errstr_size, "could not format the reset message");
        return -1;
    }
    struct email_config cfg = {.url = ctx->smtp_url, .from = ctx->smtp_from, .user = ctx->smtp_user,
                               .password = ctx->smtp_password,
                               .tls = ctx->smtp_tls ? ctx->smtp_tls : "try", .timeout_ms = 15000};
    CURL *easy = curl_easy_init();
    struct email_upload up;
    memset(&up, 0, sizeof up);
    int rc = -1;
    if (easy == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
    } else if (email_easy_setup(easy, &cfg, rcpt, msg, len, &up, errstr, errstr_size) == 0) {
        CURLcode cc = curl_easy_perform(easy);
        if (cc == CURLE_OK)
            rc = 0;
        else
            snprintf(errstr, errstr_size, "could not send the reset message: %s", curl_easy_strerror(cc));
    }
    email_upload_free(&up);
    curl_easy_cleanup(easy);
    memset(msg, 0, sizeof msg);
    return rc;
}

/* Always 202 with the same body, whether the account exists or not: the
 * answer must not tell an attacker which e-mails have accounts. At most
 * API_RESET_PER_HOUR messages per account and hour. */
static void reset_request(PGconn *conn, const struct api_request *req, const char *const *values,
                          const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    (void)who;
    char err[512];
    const struct api_context *ctx = req->ctx;
    if (ctx == NULL || ctx->smtp_url == NULL || ctx->smtp_url[0] == '\0') {
        api_error(resp, 503, "unavailable", "password reset by e-mail is not configured here");
        resp->retry_after = 3600;
        return;
    }
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    const char *email = body ? json_string_value(json_object_get(body, "email")) : NULL;
    if (email == NULL || strlen(email) > 254) {
        json_decref(body);
        api_error(resp, 400, "bad_request", body ? "email (a string) is required" : err);
        return;
    }
    char tok[SECRET_TOKEN_LEN + 1], th[SECRET_DIGEST_LEN + 1], ttl[16], per[16];
    secret_token(tok);
    secret_digest(tok, th);
    snprintf(ttl, sizeof ttl, "%d", API_RESET_TTL_S);
    snprintf(per, sizeof per, "%d", API_RESET_PER_HOUR);
    const char *params[] = {email, th, ttl, per};
    /* One statement: the account, its recent resets and the new row, so
     * two requests at once cannot both slip under the hourly bound by much
     * (they may: one extra message at worst, which is harmless). */
    PGresult *r = pg_query(conn,
                           "INSERT INTO console_password_resets (token_hash, researcher_id, expires_at) "
                           "SELECT $2, c.researcher_id, now() + $3::integer * interval '1 second' "
                           "FROM console_credentials c JOIN researchers r ON r.researcher_id = c.researcher_id "
                           "AND r.active WHERE c.email = lower($1) AND NOT c.disabled "
                           "AND (SELECT count(*) FROM console_password_resets p WHERE p.researcher_id = c.researcher_id "
                           "AND p.created_at > now() - interval '1 hour') < $4::integer "
                           "RETURNING researcher_id, (SELECT email FROM console_credentials x "
                           "WHERE x.researcher_id = console_password_resets.researcher_id)",
                           4, params, err, sizeof err);
    json_decref(body);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) == 1 && reset_mail(ctx, PQgetvalue(r, 0, 1), tok, err, sizeof err) < 0)
        log_msg(LOG_WARN, "console", "password reset for %s: %s", PQgetvalue(r, 0, 0), err);
    PQclear(r);
    sodium_memzero(tok, sizeof tok);
    respond_json(resp, 202, json_pack("{s:s}", "result", "if the address has an account, a link is on its way"));
}

static void reset_confirm(PGconn *conn, const struct api_request *req, const char *const *values,
                          const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    (void)who;
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    const char *tok = body ? json_string_value(json_object_get(body, "token")) : NULL;
    json_t *pw = body ? json_object_get(body, "password") : NULL;
    if (tok == NULL || !json_is_string(pw)) {
        json_decref(body);
        api_error(resp, 400, "bad_request", body ? "token and password (strings) are required" : err);
        return;
    }
    if (password_check(json_string_value(pw), json_string_length(pw), err, sizeof err) < 0) {
        json_decref(body);
        api_error(resp, 400, "weak_password", err);
        return;
    }
    char hash[PASSWORD_HASH_MAX], th[SECRET_DIGEST_LEN + 1];
    bool valid = secret_token_valid(tok);
    if (valid)
        secret_digest(tok, th);
    int hr = valid ? password_hash(json_string_value(pw), json_string_length(pw), hash, err, sizeof err) : 0;
    json_decref(body);
    if (!valid) {
        api_error(resp, 410, "invalid_link", "this link is not valid: used, expired or never issued");
        return;
    }
    if (hr < 0) {
        api_error(resp, 503, "unavailable", "out of memory");
        return;
    }
    const char *params[] = {th, hash, "console:password-reset"};
    /* One statement: spend the link (and every other open link of the
     * account), set the password (audited), clear the lockout, end the
     * sessions. */
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$3") ", t AS (UPDATE console_password_resets SET used_at = now() "
                           "FROM audit_ctx WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() "
                           "RETURNING researcher_id), "
                           "o AS (UPDATE console_password_resets SET used_at = now() "
                           "WHERE researcher_id IN (SELECT researcher_id FROM t) AND used_at IS NULL "
                           "AND token_hash <> $1), "
                           "c AS (UPDATE console_credentials SET password_hash = $2, failed_count = 0, "
                           "locked_until = NULL, password_changed_at = now() "
                           "WHERE researcher_id IN (SELECT researcher_id FROM t) AND NOT disabled "
                           "RETURNING researcher_id), "
                           "d AS (DELETE FROM console_sessions WHERE researcher_id IN (SELECT researcher_id FROM c)) "
                           "SELECT researcher_id FROM c",
                           3, params, err, sizeof err);
    sodium_memzero(hash, sizeof hash);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1)
        api_error(resp, 410, "invalid_link", "this link is not valid: used, expired or never issued");
    else
        resp->status = 204;
}

/* ---- study administration (study-admins) ------------------------------- */

/* The caller's rank in STUDY (0: none), or -1 with resp filled on a
 * database failure. */
static int study_rank(PGconn *conn, const struct auth_principal *who, const char *study,
                      struct api_response *resp)
{
    char err[512];
    const char *p[] = {study, who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn, "SELECT rank FROM console_study_roles($2, $3::bigint) WHERE study_id = $1",
                           3, p, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return -1;
    }
    int rank = PQntuples(r) > 0 ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return rank;
}

/* 404 for a study the caller holds no role in, 403 below study_admin;
 * returns true when the caller may administer STUDY. */
static bool study_admin_ok(PGconn *conn, const struct auth_principal *who, const char *study,
                           struct api_response *resp)
{
    int rank = study_rank(conn, who, study, resp);
    if (rank < 0)
        return false;
    if (rank == 0)
        api_error(resp, 404, "not_found", "no such study among yours");
    else if (rank < 3)
        api_error(resp, 403, "forbidden", "administering a study needs the study_admin role");
    return rank >= 3;
}

static void sites_get(PGconn *conn, const struct api_request *req, const char *const *values,
                      const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    const char *p[] = {values[0], who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn,
                           "SELECT s.site_id, s.name, sr.rank FROM console_study_roles($2, $3::bigint) sr "
                           "LEFT JOIN sites s ON s.study_id = sr.study_id WHERE sr.study_id = $1 "
                           "ORDER BY s.site_id",
                           3, p, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        api_error(resp, 404, "not_found", "no such study among yours");
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        if (!PQgetisnull(r, i, 0))
            json_array_append_new(list, json_pack("{s:o, s:o}", "site_id", col_str(r, i, 0), "name",
                                                  col_str(r, i, 1)));
    PQclear(r);
    respond_json(resp, 200, json_pack("{s:s, s:o}", "study_id", values[0], "sites", list));
}

static void site_put(PGconn *conn, const struct api_request *req, const char *const *values,
                     const struct auth_principal *who, struct api_response *resp)
{
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    const char *name = body ? json_string_value(json_object_get(body, "name")) : NULL;
    if (name == NULL || name[0] == '\0' || strlen(name) > 200) {
        json_decref(body);
        api_error(resp, 400, "bad_request", body ? "name (1-200 bytes) is required" : err);
        return;
    }
    if (!study_admin_ok(conn, who, values[0], resp)) {
        json_decref(body);
        return;
    }
    char actor[300];
    const char *p[] = {values[0], values[1], name, who->researcher_id, token_param(who),
                       api_actor(who, actor, sizeof actor)};
    /* The rank is checked again in the statement: a grant revoked since
     * the check above changes nothing. */
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$6")
                           "INSERT INTO sites (study_id, site_id, name) "
                           "SELECT sr.study_id, $2, $3 FROM audit_ctx, console_study_roles($4, $5::bigint) sr "
                           "WHERE sr.study_id = $1 AND sr.rank >= 3 "
                           "ON CONFLICT (study_id, site_id) DO UPDATE SET name = EXCLUDED.name "
                           "RETURNING site_id, name",
                           6, p, err, sizeof err);
    json_decref(body);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        api_error(resp, 403, "forbidden", "administering a study needs the study_admin role");
        return;
    }
    json_t *site = json_pack("{s:s, s:o, s:o}", "study_id", values[0], "site_id", col_str(r, 0, 0),
                             "name", col_str(r, 0, 1));
    PQclear(r);
    respond_json(resp, 200, site);
}

/* ---- escalation policies (issue #14's, administered here) ------------- */

/* The study's own policies (study-wide and per site, by severity); where
 * none is set the built-in defaults apply (defaults: true). Viewer or
 * above: responders should know who is paged after them. */
static void policies_get(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    int rank = study_rank(conn, who, values[0], resp);
    if (rank < 0)
        return;
    if (rank == 0) {
        api_error(resp, 404, "not_found", "no such study among yours");
        return;
    }
    const char *p[] = {values[0], who->researcher_id, token_param(who)};
    PGresult *r = pg_query(
        conn,
        "SELECT coalesce(json_agg(json_build_object('site_id', ep.site_id, 'severity', "
        "ep.severity, 'repeat_last_s', ep.repeat_last_s, 'digest', ep.digest, 'tiers', "
        "coalesce((SELECT json_agg(json_build_object('tier', t.tier, 'targets', t.targets, "
        "'channels', t.channels, 'ack_deadline_s', t.ack_deadline_s) ORDER BY t.tier) "
        "FROM escalation_tiers t WHERE t.policy_id = ep.policy_id), '[]')) "
        "ORDER BY ep.site_id NULLS FIRST, ep.severity)::text, '[]') "
        "FROM escalation_policies ep JOIN console_study_roles($2, $3::bigint) sr "
        "ON sr.study_id = ep.study_id AND sr.rank >= 1 WHERE ep.study_id = $1",
        3, p, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    json_error_t je;
    json_t *list = json_loads(PQgetvalue(r, 0, 0), 0, &je);
    PQclear(r);
    if (list == NULL) {
        api_error(resp, 503, "unavailable", "could not read the policies");
        return;
    }
    respond_json(resp, 200,
                 json_pack("{s:s, s:b, s:o}", "study_id", values[0], "defaults",
                           json_array_size(list) == 0, "policies", list));
}

static void policy_put_run(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp,
                           struct policy *pol, int max, char *problems, size_t problems_size);

/* Sets policies of the study: the body is one policy or {"policies":
 * [...]} in the form of `vigil policy set` (policy.h), every one naming
 * this study; each replaces the policy of its (site, severity). Invalid
 * policies (400) and policies the directory cannot honour (422: a target
 * nobody holds) change nothing; the problems are listed. Study-admin. */
static void policies_put(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp)
{
    enum { POLICIES_PUT_MAX = 16 };
    char problems[4096] = "";
    if (!study_admin_ok(conn, who, values[0], resp))
        return;
    if (req->body == NULL || req->body_len == 0) {
        api_error(resp, 400, "bad_request", "a policy (JSON) is required");
        return;
    }
    /* about 25 KiB each: on the heap, not on a connection thread's stack */
    struct policy *pol = calloc(POLICIES_PUT_MAX, sizeof *pol);
    if (pol == NULL) {
        api_error(resp, 503, "unavailable", "out of memory");
        return;
    }
    policy_put_run(conn, req, values, who, resp, pol, POLICIES_PUT_MAX, problems,
                   sizeof problems);
    free(pol);
}

static void policy_put_run(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp,
                           struct policy *pol, int max, char *problems, size_t problems_size)
{
    int n = policy_load_text("body", req->body, req->body_len, pol, max, problems,
                             problems_size);
    if (n <= 0) {
        api_error(resp, 400, "bad_request", n == 0 ? "no policy in the body" : problems);
        return;
    }
    for (int k = 0; k < n; k++)
        if (strcmp(pol[k].study, values[0]) != 0) {
            snprintf(problems, problems_size, "policy %d is of study '%.64s', not of '%.64s'",
                     k + 1, pol[k].study, values[0]);
            api_error(resp, 400, "bad_request", problems);
            return;
        }
    problems[0] = '\0';
    if (policy_store_check(conn, pol, n, problems, problems_size) > 0) {
        api_error(resp, 422, "conflict", problems);
        return;
    }
    char actor[300], err[512];
    if (policy_store_set(conn, pol, n, api_actor(who, actor, sizeof actor), err, sizeof err) != 0) {
        db_error(resp, err);
        return;
    }
    respond_json(resp, 200, json_pack("{s:s, s:i}", "study_id", values[0], "set", n));
}

/* Removes the study's policy of ?severity= (critical or warning) and
 * ?site= (absent: the study-wide one); its alerts fall back to the next
 * policy that applies. 204, or 404 when there is none. Study-admin. */
static void policies_delete(PGconn *conn, const struct api_request *req, const char *const *values,
                            const struct auth_principal *who, struct api_response *resp)
{
    static const char *const allowed[] = {"severity", "site", NULL};
    static const char *const severities[] = {"critical", "warning", NULL};
    char err[512];
    const struct reqparse_query *q = req->query;
    const char *sev = reqparse_query_get(q, "severity"), *site = reqparse_query_get(q, "site");
    /* A site id is whatever the sites table holds (a policy may name one
     * with markup in it): only its length and control bytes are checked;
     * it reaches the statement as a parameter. */
    bool site_ok = site == NULL || (site[0] != '\0' && strlen(site) <= REQPARSE_ID_MAX);
    for (const char *c = site; site_ok && c != NULL && *c; c++)
        site_ok = (unsigned char)*c >= 0x20 && *c != 0x7f;
    if (reqparse_query_only(q, allowed, err, sizeof err) < 0 || sev == NULL ||
        !one_of(sev, severities) || !site_ok) {
        api_error(resp, 400, "bad_request",
                  "severity (critical or warning) is required; site names a site (absent: the "
                  "study-wide policy)");
        return;
    }
    if (!study_admin_ok(conn, who, values[0], resp))
        return;
    char actor[300];
    int removed = 0;
    if (policy_store_remove(conn, values[0], site, sev, api_actor(who, actor, sizeof actor), &removed,
                            err, sizeof err) != 0) {
        db_error(resp, err);
        return;
    }
    if (removed == 0)
        api_error(resp, 404, "not_found", "the study has no such policy of its own");
    else
        resp->status = 204;
}

static void study_people_get(PGconn *conn, const struct api_request *req, const char *const *values,
                             const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    if (!study_admin_ok(conn, who, values[0], resp))
        return;
    const char *p[] = {values[0], who->researcher_id, token_param(who)};
    /* Who holds a role in the study or subscribes to it. */
    PGresult *r = pg_query(conn,
                           "SELECT r.researcher_id, r.name, r.email, r.active, g.role, "
                           "EXISTS (SELECT 1 FROM subscriptions s WHERE s.researcher_id = r.researcher_id "
                           "AND s.study_id = $1) "
                           "FROM researchers r "
                           "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = $1 AND sr.rank >= 3 "
                           "LEFT JOIN console_grants g ON g.researcher_id = r.researcher_id AND g.study_id = $1 "
                           "WHERE g.role IS NOT NULL OR EXISTS (SELECT 1 FROM subscriptions s "
                           "WHERE s.researcher_id = r.researcher_id AND s.study_id = $1) "
                           "ORDER BY r.researcher_id LIMIT 10000",
                           3, p, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    json_t *list = json_array();
    for (int i = 0; i < PQntuples(r); i++)
        json_array_append_new(list, json_pack("{s:o, s:o, s:o, s:b, s:o, s:b}", "researcher_id",
                                              col_str(r, i, 0), "name", col_str(r, i, 1), "email",
                                              col_str(r, i, 2), "active",
                                              strcmp(PQgetvalue(r, i, 3), "t") == 0, "role",
                                              col_str(r, i, 4), "subscribed",
                                              strcmp(PQgetvalue(r, i, 5), "t") == 0));
    PQclear(r);
    respond_json(resp, 200, json_pack("{s:s, s:o}", "study_id", values[0], "researchers", list));
}

/* A study-admin grants viewer, responder or study_admin in their study
 * (never the global admin role), or removes a grant. */
static void grant_put(PGconn *conn, const struct api_request *req, const char *const *values,
                      const struct auth_principal *who, struct api_response *resp)
{
    static const char *const roles[] = {"viewer", "responder", "study_admin", NULL};
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    const char *role = body ? json_string_value(json_object_get(body, "role")) : NULL;
    if (role == NULL || !one_of(role, roles)) {
        json_decref(body);
        api_error(resp, 400, "bad_request", body ? "role is viewer, responder or study_admin" : err);
        return;
    }
    /* role points into BODY, which is released before the answer is built:
     * keep the (validated, short) value. */
    char role_copy[16];
    snprintf(role_copy, sizeof role_copy, "%s", role);
    role = role_copy;
    if (!study_admin_ok(conn, who, values[0], resp)) {
        json_decref(body);
        return;
    }
    char actor[300];
    const char *p[] = {values[0], values[1], role, who->researcher_id, token_param(who),
                       api_actor(who, actor, sizeof actor)};
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$6")
                           "INSERT INTO console_grants (researcher_id, study_id, role) "
                           "SELECT $2, sr.study_id, $3 FROM audit_ctx, console_study_roles($4, $5::bigint) sr "
                           "WHERE sr.study_id = $1 AND sr.rank >= 3 "
                           "ON CONFLICT (researcher_id, coalesce(study_id, '')) DO UPDATE "
                           "SET role = EXCLUDED.role, granted_at = now() RETURNING role",
                           6, p, err, sizeof err);
    json_decref(body);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    PQclear(r);
    if (n != 1) {
        api_error(resp, 403, "forbidden", "administering a study needs the study_admin role");
        return;
    }
    respond_json(resp, 200, json_pack("{s:s, s:s, s:s}", "study_id", values[0], "researcher_id",
                                      values[1], "role", role));
}

static void grant_delete(PGconn *conn, const struct api_request *req, const char *const *values,
                         const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    if (!study_admin_ok(conn, who, values[0], resp))
        return;
    char actor[300];
    const char *p[] = {values[0], values[1], who->researcher_id, token_param(who),
                       api_actor(who, actor, sizeof actor)};
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$5")
                           "DELETE FROM console_grants g USING audit_ctx, console_study_roles($3, $4::bigint) sr "
                           "WHERE sr.study_id = $1 AND sr.rank >= 3 AND g.study_id = $1 "
                           "AND g.researcher_id = $2 RETURNING 1",
                           5, p, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int n = PQntuples(r);
    PQclear(r);
    if (n == 0)
        api_error(resp, 404, "not_found", "no such grant in this study");
    else
        resp->status = 204;
}

/* ---- audit export -------------------------------------------------------- */

/* Appends V to the CSV line in *buf as one quoted field (RFC 4180: quotes
 * doubled). A value a spreadsheet would run as a formula (=, +, -, @, tab,
 * CR first) gets a leading apostrophe: the export is opened in Excel by
 * study staff, and a resolution note is free text from anyone. */
static bool csv_field(char **buf, size_t *len, size_t *cap, const char *v, bool last)
{
    size_t need = *len + 2 * strlen(v) + 5;
    if (need > *cap) {
        size_t nc = *cap * 2 > need ? *cap * 2 : need;
        char *nb = realloc(*buf, nc);
        if (nb == NULL)
            return false;
        *buf = nb;
        *cap = nc;
    }
    char *w = *buf + *len;
    *w++ = '"';
    if (v[0] != '\0' && strchr("=+-@\t\r", v[0]) != NULL)
        *w++ = '\'';
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            *w++ = '"';
        *w++ = *p;
    }
    *w++ = '"';
    if (last) {
        *w++ = '\r';
        *w++ = '\n';
    } else {
        *w++ = ',';
    }
    *len = (size_t)(w - *buf);
    (*buf)[*len] = '\0';
    return true;
}

static void audit_csv(PGconn *conn, const struct api_request *req, const char *const *values,
                      const struct auth_principal *who, struct api_response *resp)
{
    static const char *const allowed[] = {"since", "until", NULL};
    char err[512];
    const struct reqparse_query *q = req->query;
    if (reqparse_query_only(q, allowed, err, sizeof err) < 0) {
        api_error(resp, 400, "bad_request", err);
        return;
    }
    const char *since = reqparse_query_get(q, "since"), *until = reqparse_query_get(q, "until");
    if ((since && !reqparse_time_valid(since)) || (until && !reqparse_time_valid(until))) {
        api_error(resp, 400, "bad_request", "since and until are RFC 3339 times");
        return;
    }
    const char *p1[] = {values[0], who->researcher_id, token_param(who)};
    PGresult *r = pg_query(conn, "SELECT rank FROM console_study_roles($2, $3::bigint) WHERE study_id = $1",
                           3, p1, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    int rank = PQntuples(r) > 0 ? (int)strtol(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    if (rank == 0) {
        api_error(resp, 404, "not_found", "no such study among yours");
        return;
    }
    if (rank < 3) {
        api_error(resp, 403, "forbidden", "the audit export needs the study_admin role");
        return;
    }
    char maxrows[16];
    snprintf(maxrows, sizeof maxrows, "%d", API_EXPORT_MAX + 1);
    const char *p2[] = {values[0], who->researcher_id, token_param(who), since, until, maxrows};
    /* The study's alerts' events, and the changes of its directory,
     * access and policies (alert_id null, the study in detail: 0065). */
    r = pg_query(conn,
                 "SELECT e.event_id::text, " "to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')" ", e.alert_id, e.site_id, e.subject_id, "
                 "e.kind, e.actor, e.detail::text, encode(e.row_hash, 'hex') FROM ("
                 "SELECT e.*, a.site_id, a.subject_id FROM alert_events e "
                 "JOIN alerts a ON a.alert_id = e.alert_id WHERE a.study_id = $1 "
                 "UNION ALL SELECT e.*, e.detail ->> 'site_id', NULL FROM alert_events e "
                 "WHERE e.alert_id IS NULL AND e.detail ->> 'study_id' = $1) e "
                 "JOIN console_study_roles($2, $3::bigint) sr ON sr.study_id = $1 AND sr.rank >= 3 "
                 "WHERE ($4::timestamptz IS NULL OR e.recorded_at >= $4::timestamptz) "
                 "AND ($5::timestamptz IS NULL OR e.recorded_at < $5::timestamptz) "
                 "ORDER BY e.event_id LIMIT $6::integer",
                 6, p2, err, sizeof err);
    if (r == NULL) {
        db_error(resp, err);
        return;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    bool ok = buf != NULL;
    static const char *const head[] = {"event_id", "recorded_at", "alert_id", "site_id", "subject_id",
                                       "kind", "actor", "detail", "row_hash"};
    if (ok)
        buf[0] = '\0';
    for (int c = 0; ok && c < 9; c++)
        ok = csv_field(&buf, &len, &cap, head[c], c == 8);
    int n = PQntuples(r);
    resp->truncated = n > API_EXPORT_MAX;
    for (int i = 0; ok && i < n && i < API_EXPORT_MAX; i++)
        for (int c = 0; ok && c < 9; c++)
            ok = csv_field(&buf, &len, &cap, PQgetvalue(r, i, c), c == 8);
    PQclear(r);
    if (!ok) {
        free(buf);
        api_error(resp, 503, "unavailable", "out of memory; narrow since/until");
        return;
    }
    resp->status = 200;
    resp->body = buf;
    resp->content_type = "text/csv; charset=utf-8";
}

/* ---- for the handlers in other files (api_people.c) ---------------------- */

void api_respond_json(struct api_response *resp, int status, json_t *j)
{
    respond_json(resp, status, j);
}

void api_db_error(struct api_response *resp, const char *err)
{
    db_error(resp, err);
}

const char *api_token_param(const struct auth_principal *who)
{
    return token_param(who);
}

bool api_study_admin_ok(PGconn *conn, const struct auth_principal *who, const char *study,
                        struct api_response *resp)
{
    return study_admin_ok(conn, who, study, resp);
}

/* ---- routing ------------------------------------------------------------ */

static const struct api_route routes[] = {
    {"POST", "/api/v1/session", LIMITER_SIGNIN, false, false, session_post},
    {"GET", "/api/v1/session", LIMITER_GENERAL, true, false, session_get},
    {"DELETE", "/api/v1/session", LIMITER_GENERAL, true, true, session_delete},
    {"GET", "/api/v1/alerts", LIMITER_GENERAL, true, false, alerts_list},
    {"GET", "/api/v1/alerts/{id}", LIMITER_GENERAL, true, false, alert_get},
    {"POST", "/api/v1/alerts/{id}/ack", LIMITER_GENERAL, true, true, alert_ack},
    {"POST", "/api/v1/alerts/{id}/resolve", LIMITER_GENERAL, true, true, alert_resolve},
    {"GET", "/api/v1/subjects/{study}/{subject}/timeline", LIMITER_HEAVY, true, false, timeline_get},
    {"GET", "/api/v1/studies/{study}/audit.csv", LIMITER_HEAVY, true, false, audit_csv},
    {"POST", "/api/v1/password-reset", LIMITER_SIGNIN, false, false, reset_request},
    {"POST", "/api/v1/password-reset/confirm", LIMITER_SIGNIN, false, false, reset_confirm},
    {"GET", "/api/v1/studies/{study}/sites", LIMITER_GENERAL, true, false, sites_get},
    {"PUT", "/api/v1/studies/{study}/sites/{site}", LIMITER_GENERAL, true, true, site_put},
    {"GET", "/api/v1/studies/{study}/researchers", LIMITER_GENERAL, true, false, study_people_get},
    {"PUT", "/api/v1/studies/{study}/grants/{researcher}", LIMITER_GENERAL, true, true, grant_put},
    {"DELETE", "/api/v1/studies/{study}/grants/{researcher}", LIMITER_GENERAL, true, true, grant_delete},
    {"GET", "/api/v1/studies/{study}/policies", LIMITER_GENERAL, true, false, policies_get},
    {"PUT", "/api/v1/studies/{study}/policies", LIMITER_GENERAL, true, true, policies_put},
    {"DELETE", "/api/v1/studies/{study}/policies", LIMITER_GENERAL, true, true, policies_delete},
    {"GET", "/api/v1/subscriptions", LIMITER_GENERAL, true, false, subscriptions_get},
    {"PUT", "/api/v1/subscriptions", LIMITER_GENERAL, true, true, subscriptions_put},
    {"DELETE", "/api/v1/subscriptions", LIMITER_GENERAL, true, true, subscriptions_delete},
    {"GET", "/api/v1/me/contact", LIMITER_GENERAL, true, false, api_me_contact_get},
    {"PUT", "/api/v1/me/contact", LIMITER_GENERAL, true, true, api_me_contact_put},
    {"GET", "/api/v1/studies/{study}/researchers/{researcher}/contact", LIMITER_GENERAL, true, false,
     api_study_contact_get},
    {"PUT", "/api/v1/studies/{study}/researchers/{researcher}/contact", LIMITER_GENERAL, true, true,
     api_study_contact_put},
    {NULL, NULL, LIMITER_GENERAL, false, false, NULL},
};

/* Matches PATH against PATTERN segment by segment; {x} takes one segment. */
static bool match(const char *pattern, const char *path,
                  char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1])
{
    int nv = 0;
    const char *p = pattern, *s = path;
    while (*p && *s) {
        if (*p == '{') {
            const char *pe = strchr(p, '}');
            const char *se = strchr(s, '/');
            size_t len = se ? (size_t)(se - s) : strlen(s);
            if (len == 0 || len > REQPARSE_ID_MAX || nv == API_PATH_VALUES)
                return false;
            memcpy(values[nv], s, len);
            values[nv][len] = '\0';
            if (!reqparse_id_valid(values[nv]))
                return false;
            nv++;
            p = pe + 1;
            s += len;
        } else {
            if (*p != *s)
                return false;
            p++;
            s++;
        }
    }
    return *p == '\0' && *s == '\0';
}

const struct api_route *api_route_find(const char *method, const char *path,
                                       char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1],
                                       int *status)
{
    *status = 404;
    for (const struct api_route *r = routes; r->method; r++) {
        if (!match(r->pattern, path, values))
            continue;
        if (strcmp(r->method, method) == 0)
            return r;
        *status = 405;
    }
    return NULL;
}

int api_authenticate(PGconn *conn, const struct api_request *req, struct auth_principal *who,
                     struct api_response *resp)
{
    char err[512];
    enum auth_result ar;
    if (req->proxy_user != NULL) {
        ar = auth_proxy(conn, req->proxy_user, who, err, sizeof err);
    } else if (req->authorization != NULL) {
        ar = auth_token(conn, req->authorization, who, err, sizeof err);
    } else {
        char cookie[SECRET_TOKEN_LEN + 2];
        int c = reqparse_cookie_get(req->cookie, AUTH_COOKIE, cookie, sizeof cookie);
        ar = auth_session(conn, c == 1 ? cookie : NULL, who, err, sizeof err);
    }
    if (ar == AUTH_ERROR) {
        db_error(resp, err);
        return -1;
    }
    if (ar != AUTH_OK) {
        api_error(resp, 401, "unauthenticated", "sign in, or send a valid API token");
        return -1;
    }
    return 0;
}

/* Open alerts of the caller's studies whose lifecycle opened after $3 and
 * after $4 minus the look-back (in ms, $5): the live queue's poll. Forward
 * on 0063's (state, opened_at, alert_id) index. Column 16 is opened_at,
 * 17 the look-back's lower bound (for the caller's dedupe window). */
#define LIST_OPENED                                                                             \
    "SELECT " ALERT_COLS ", to_char(l.opened_at AT TIME ZONE 'UTC', "                          \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "                                                      \
    "to_char(($4::timestamptz - $5::integer * interval '1 millisecond') AT TIME ZONE 'UTC', "   \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM alert_lifecycle l "                                \
    "JOIN alerts a ON a.alert_id = l.alert_id "                                                \
    "JOIN console_study_roles($1, $2::bigint) sr ON sr.study_id = l.study_id "                 \
    "WHERE l.state = 'open' AND l.opened_at > $3::timestamptz "                                \
    "AND l.opened_at > $4::timestamptz - $5::integer * interval '1 millisecond' "              \
    "ORDER BY l.opened_at, l.alert_id LIMIT $6::integer"

PGresult *api_alerts_opened(PGconn *conn, const struct auth_principal *who, const char *start,
                            const char *newest, int lookback_ms, int limit, char *errstr,
                            size_t errstr_size)
{
    char lb[24], lim[24];
    snprintf(lb, sizeof lb, "%d", lookback_ms);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {who->researcher_id, token_param(who), start, newest, lb, lim};
    return pg_query(conn, "" LIST_OPENED, 6, params, errstr, errstr_size);
}

/* Lifecycle changes of visible alerts after event AFTER: the audit trail's
 * event ids are handed out under a lock held to commit (0010), so they
 * become visible in id order and a keyset on them misses nothing. The
 * head's id comes in the same snapshot: events of other studies are
 * skipped in SQL, and the caller moves on to the head when fewer than
 * LIMIT rows came back, so they are not scanned again. */
#define LIST_CHANGES                                                                            \
    "SELECT h.last_event_id, x.event_id, x.alert_id, x.kind, x.state, x.at "                    \
    "FROM alert_events_head h LEFT JOIN LATERAL ("                                              \
    "SELECT e.event_id, e.alert_id, e.kind, l.state, to_char(e.recorded_at AT TIME ZONE 'UTC', " \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') AS at FROM alert_events e "                           \
    "JOIN alerts a ON a.alert_id = e.alert_id "                                                 \
    "JOIN console_study_roles($1, $2::bigint) sr ON sr.study_id = a.study_id "                 \
    "LEFT JOIN alert_lifecycle l ON l.alert_id = e.alert_id "                                   \
    "WHERE e.event_id > $3::bigint AND e.event_id <= h.last_event_id "                          \
    "AND e.kind IN ('acknowledged', 'resolved', 'retracted') "                                  \
    "ORDER BY e.event_id LIMIT $4::integer) x ON true ORDER BY x.event_id"

PGresult *api_alert_changes(PGconn *conn, const struct auth_principal *who, long long after,
                            int limit, char *errstr, size_t errstr_size)
{
    char aft[24], lim[24];
    snprintf(aft, sizeof aft, "%lld", after);
    snprintf(lim, sizeof lim, "%d", limit);
    const char *params[] = {who->researcher_id, token_param(who), aft, lim};
    return pg_query(conn, "" LIST_CHANGES, 4, params, errstr, errstr_size);
}

json_t *api_alert_json(const PGresult *r, int row)
{
    return alert_json(r, row);
}

void api_handle(PGconn *conn, const struct api_route *route,
                char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1], const struct api_request *req,
                struct api_response *resp)
{
    struct auth_principal who;
    memset(&who, 0, sizeof who);
    memset(resp, 0, sizeof *resp);
    /* A body must be declared JSON. Besides saying what it is, this keeps
     * HTML forms out: a cross-site form can post only form encodings or
     * text/plain, and anything else needs a CORS preflight, which the
     * console never grants. So sign-in and reset requests (no session yet,
     * hence no CSRF token) cannot be forged from another site either. */
    if (req->body_len > 0) {
        const char *ct = req->content_type;
        size_t n = strlen("application/json");
        if (ct == NULL || strncasecmp(ct, "application/json", n) != 0 || (ct[n] != '\0' && ct[n] != ';')) {
            api_error(resp, 415, "unsupported_media_type", "send the body as application/json");
            return;
        }
    }
    if (route->needs_auth) {
        if (api_authenticate(conn, req, &who, resp) != 0)
            return;
        if (route->changes_state && !auth_csrf_ok(&who, req->csrf)) {
            api_error(resp, 403, "csrf", "missing or wrong X-CSRF-Token header");
            return;
        }
    }
    const char *const vals[API_PATH_VALUES] = {values[0], values[1]};
    route->handle(conn, req, vals, &who, resp);
}
