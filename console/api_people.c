/*
 * api_people: a researcher's own notification settings and contact
 * details, and a study-admin's view of a study member's contact (issue #15).
 *
 *   api_quiet_get / api_quiet_put   quiet hours (migration 0064), carried by
 *                                   GET/PUT /api/v1/subscriptions
 *   api_me_contact_get / _put       GET/PUT /api/v1/me/contact
 *   api_study_contact_get / _put    GET/PUT /api/v1/studies/{study}/researchers/{researcher}/contact
 *
 * Contact details are personal data: a phone number is answered only to
 * its owner and to a study-admin of a study the researcher belongs to (a
 * grant in it, or a subscription to it -- the study's people list), and
 * logged masked (contact_mask). A study-admin may change the contact of a
 * researcher who belongs to no study the admin does not administer:
 * otherwise they could redirect another study's alerts to themselves.
 * Directory changes are not in the audit trail (alert_events is per
 * alert; sites and grants are not audited either): each change is logged.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "directory.h"
#include "log.h"
#include "pg.h"

#define ZONE_MAX 64
#define EMAIL_LEN_MAX 254
#define PHONE_LEN_MAX 16

/* ---- validation --------------------------------------------------------- */

/* "HH:MM" or "HH:MM:SS", 00:00 .. 23:59:59. */
static bool local_time_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n != 5 && n != 8)
        return false;
    for (size_t i = 0; i < n; i++)
        if (i % 3 == 2 ? s[i] != ':' : !isdigit((unsigned char)s[i]))
            return false;
    int hh = (s[0] - '0') * 10 + (s[1] - '0'), mm = (s[3] - '0') * 10 + (s[4] - '0');
    int ss = n == 8 ? (s[6] - '0') * 10 + (s[7] - '0') : 0;
    return hh < 24 && mm < 60 && ss < 60;
}

/* The shape of an IANA zone name; whether PostgreSQL knows it is asked
 * separately (vigil_time_zone_valid). */
static bool zone_shape_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > ZONE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("/_+-", s[i]) == NULL)
            return false;
    return true;
}

/* researchers_email_check: something@something, no spaces, one @. */
static bool email_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    const char *at = n > 0 ? strchr(s, '@') : NULL;
    if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL ||
        n > EMAIL_LEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || (unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* researchers_phone_check: E.164, + then 2 to 15 digits, no leading 0. */
static bool phone_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 3 || n > PHONE_LEN_MAX || s[0] != '+' || s[1] < '1' || s[1] > '9')
        return false;
    for (size_t i = 2; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- quiet hours -------------------------------------------------------- */

json_t *api_quiet_get(PGconn *conn, const char *researcher, char *errstr, size_t errstr_size)
{
    const char *p[] = {researcher};
    PGresult *r = pg_query(conn,
                           "SELECT to_char(start_local, 'HH24:MI:SS'), to_char(end_local, 'HH24:MI:SS'), "
                           "time_zone, "
                           "to_char(vigil_quiet_until(researcher_id, now()) AT TIME ZONE 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                           "FROM researcher_quiet_hours WHERE researcher_id = $1",
                           1, p, errstr, errstr_size);
    if (r == NULL)
        return NULL;
    json_t *q = json_null();
    if (PQntuples(r) == 1)
        q = json_pack("{s:s, s:s, s:s, s:o}", "start", PQgetvalue(r, 0, 0), "end",
                      PQgetvalue(r, 0, 1), "time_zone", PQgetvalue(r, 0, 2), "quiet_until",
                      PQgetisnull(r, 0, 3) ? json_null() : json_string(PQgetvalue(r, 0, 3)));
    PQclear(r);
    return q;
}

int api_quiet_put(PGconn *conn, const struct auth_principal *who, const json_t *quiet,
                  struct api_response *resp)
{
    char err[512], actor[300];
    const char *researcher = who->researcher_id;
    api_actor(who, actor, sizeof actor);
    if (json_is_null(quiet)) {
        const char *p[] = {researcher, actor};
        if (pg_command(conn,
                       "WITH " AUDIT_CTX_SQL("$2") "DELETE FROM researcher_quiet_hours q "
                       "USING audit_ctx WHERE q.researcher_id = $1",
                       2, p, err, sizeof err) != 0) {
            api_db_error(resp, err);
            return -1;
        }
        return 0;
    }
    const char *start = json_string_value(json_object_get(quiet, "start"));
    const char *end = json_string_value(json_object_get(quiet, "end"));
    const char *zone = json_string_value(json_object_get(quiet, "time_zone"));
    if (!json_is_object(quiet) || json_object_size(quiet) != 3 || !local_time_valid(start) ||
        !local_time_valid(end) || !zone_shape_valid(zone)) {
        api_error(resp, 400, "bad_request",
                  "quiet_hours is null (none) or {start, end, time_zone}: local times HH:MM "
                  "and an IANA time zone such as Europe/Paris");
        return -1;
    }
    if (strncmp(start, end, 5) == 0 && strcmp(strlen(start) == 8 ? start + 5 : ":00",
                                              strlen(end) == 8 ? end + 5 : ":00") == 0) {
        api_error(resp, 400, "bad_request", "quiet_hours: start and end must differ");
        return -1;
    }
    const char *zp[] = {zone};
    PGresult *r = pg_query(conn, "SELECT vigil_time_zone_valid($1)", 1, zp, err, sizeof err);
    if (r == NULL) {
        api_db_error(resp, err);
        return -1;
    }
    bool known = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!known) {
        api_error(resp, 400, "bad_request", "quiet_hours: unknown time zone (an IANA name such as Europe/Paris)");
        return -1;
    }
    const char *p[] = {researcher, start, end, zone, actor};
    if (pg_command(conn,
                   "WITH " AUDIT_CTX_SQL("$5")
                   "INSERT INTO researcher_quiet_hours (researcher_id, start_local, end_local, time_zone) "
                   "SELECT $1, $2::time, $3::time, $4 FROM audit_ctx ON CONFLICT (researcher_id) DO UPDATE "
                   "SET start_local = EXCLUDED.start_local, end_local = EXCLUDED.end_local, "
                   "time_zone = EXCLUDED.time_zone",
                   5, p, err, sizeof err) != 0) {
        api_db_error(resp, err);
        return -1;
    }
    return 0;
}

/* ---- contact details ---------------------------------------------------- */

static json_t *contact_json(const PGresult *r)
{
    return json_pack("{s:s, s:s, s:o, s:o}", "researcher_id", PQgetvalue(r, 0, 0), "name",
                     PQgetvalue(r, 0, 1),
                     "email", PQgetisnull(r, 0, 2) ? json_null() : json_string(PQgetvalue(r, 0, 2)),
                     "phone", PQgetisnull(r, 0, 3) ? json_null() : json_string(PQgetvalue(r, 0, 3)));
}

/* Answers R (taken: cleared here): its one row's contact, 404 with
 * NOT_FOUND when it has none, or ERR's database error when R is NULL. */
static void contact_answer(PGresult *r, const char *err, const char *not_found,
                           struct api_response *resp)
{
    if (r == NULL) {
        api_db_error(resp, err);
        return;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        api_error(resp, 404, "not_found", not_found);
        return;
    }
    json_t *c = contact_json(r);
    PQclear(r);
    api_respond_json(resp, 200, c);
}

/* Parses REQ's body {email, phone} (email required; phone a string or
 * null) into *EMAIL and *PHONE, which point into the body returned (the
 * caller releases it with json_decref); NULL with a 400 answered. */
static json_t *contact_parse(const struct api_request *req, const char **email,
                             const char **phone, struct api_response *resp)
{
    char err[512];
    json_t *body = reqparse_json_object(req->body, req->body_len, err, sizeof err);
    if (body == NULL) {
        api_error(resp, 400, "bad_request", err);
        return NULL;
    }
    json_t *pj = json_object_get(body, "phone");
    *email = json_string_value(json_object_get(body, "email"));
    *phone = json_string_value(pj);
    bool ok = json_object_size(body) == (pj != NULL ? 2u : 1u) && email_valid(*email) &&
              (pj == NULL || json_is_null(pj) || phone_valid(*phone));
    if (!ok) {
        api_error(resp, 400, "bad_request",
                  "email (name@domain, at most 254 bytes) is required; phone is E.164 "
                  "(+ and 2 to 15 digits, e.g. +447700900123) or null");
        json_decref(body);
        return NULL;
    }
    return body;
}

static void contact_logged(const char *who, const char *target, const char *email,
                           const char *phone)
{
    char me[64], mp[64];
    log_msg(LOG_INFO, "console", "contact of researcher %s set by %s: email %s, phone %s", target,
            who, contact_mask(email, me, sizeof me),
            phone != NULL ? contact_mask(phone, mp, sizeof mp) : "none");
}

#define CONTACT_COLS "r.researcher_id, r.name, r.email, r.phone"

void api_me_contact_get(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    (void)values;
    char err[512];
    const char *p[] = {who->researcher_id};
    PGresult *r = pg_query(conn, "SELECT " CONTACT_COLS " FROM researchers r WHERE r.researcher_id = $1",
                           1, p, err, sizeof err);
    contact_answer(r, err, "no directory entry for you", resp);
}

void api_me_contact_put(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp)
{
    (void)values;
    char err[512];
    const char *email, *phone;
    json_t *body = contact_parse(req, &email, &phone, resp);
    if (body == NULL)
        return;
    char actor[300];
    const char *p[] = {who->researcher_id, email, phone, api_actor(who, actor, sizeof actor)};
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$4")
                           "UPDATE researchers r SET email = $2, phone = $3, updated_at = now() "
                           "FROM audit_ctx WHERE r.researcher_id = $1 RETURNING " CONTACT_COLS,
                           4, p, err, sizeof err);
    if (r != NULL && PQntuples(r) == 1)
        contact_logged(who->researcher_id, who->researcher_id, email, phone);
    json_decref(body);
    contact_answer(r, err, "no directory entry for you", resp);
}

/* $1 study, $2 researcher, $3 caller, $4 token: the researcher belongs to
 * the study (a grant in it or a subscription to it), and the caller
 * administers it. */
#define MEMBER_WHERE                                                                            \
    "r.researcher_id = $2 AND EXISTS (SELECT 1 FROM console_study_roles($3, $4::bigint) sr "    \
    "WHERE sr.study_id = $1 AND sr.rank >= 3) "                                                 \
    "AND (EXISTS (SELECT 1 FROM console_grants g WHERE g.researcher_id = $2 AND g.study_id = $1) " \
    "OR EXISTS (SELECT 1 FROM subscriptions s WHERE s.researcher_id = $2 AND s.study_id = $1))"

/* ... and belongs to nothing the caller does not administer: a study of
 * theirs without the caller's study_admin rank, or a global grant. */
#define ELSEWHERE                                                                               \
    "(EXISTS (SELECT 1 FROM (SELECT g.study_id FROM console_grants g WHERE g.researcher_id = $2 " \
    "UNION SELECT s.study_id FROM subscriptions s WHERE s.researcher_id = $2) m "               \
    "WHERE m.study_id IS NULL OR NOT EXISTS (SELECT 1 FROM console_study_roles($3, $4::bigint) x " \
    "WHERE x.study_id = m.study_id AND x.rank >= 3)))"

void api_study_contact_get(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp)
{
    (void)req;
    char err[512];
    if (!api_study_admin_ok(conn, who, values[0], resp))
        return;
    const char *p[] = {values[0], values[1], who->researcher_id, api_token_param(who)};
    PGresult *r = pg_query(conn, "SELECT " CONTACT_COLS " FROM researchers r WHERE " MEMBER_WHERE,
                           4, p, err, sizeof err);
    contact_answer(r, err, "no such researcher in this study", resp);
}

void api_study_contact_put(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp)
{
    char err[512];
    const char *email, *phone;
    json_t *body = contact_parse(req, &email, &phone, resp);
    if (body == NULL)
        return;
    if (!api_study_admin_ok(conn, who, values[0], resp)) {
        json_decref(body);
        return;
    }
    char actor[300];
    const char *p[] = {values[0], values[1], who->researcher_id, api_token_param(who), email,
                       phone, api_actor(who, actor, sizeof actor)};
    /* One statement: the checks and the change see the same rows. The
     * flag row (elsewhere) comes back without a change when the
     * researcher belongs to a study the caller does not administer. */
    PGresult *r = pg_query(conn,
                           "WITH " AUDIT_CTX_SQL("$7") ", t AS (SELECT r.researcher_id, " ELSEWHERE
                           " AS elsewhere FROM audit_ctx, researchers r WHERE " MEMBER_WHERE
                           " FOR UPDATE OF r), "
                           "u AS (UPDATE researchers r SET email = $5, phone = $6, updated_at = now() "
                           "FROM t WHERE r.researcher_id = t.researcher_id AND NOT t.elsewhere "
                           "RETURNING " CONTACT_COLS ") "
                           "SELECT u.*, false FROM u UNION ALL SELECT t.researcher_id, NULL, NULL, "
                           "NULL, true FROM t WHERE t.elsewhere",
                           7, p, err, sizeof err);
    if (r != NULL && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 4), "f") == 0)
        contact_logged(who->researcher_id, values[1], email, phone);
    json_decref(body);
    if (r != NULL && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 4), "t") == 0) {
        PQclear(r);
        api_error(resp, 403, "forbidden",
                  "this researcher belongs to a study you do not administer too: a global admin "
                  "(or that study's admin with yours) changes their contact");
        return;
    }
    contact_answer(r, err, "no such researcher in this study", resp);
}
