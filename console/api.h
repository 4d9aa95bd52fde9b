/*
 * api: the console's JSON API under /api/v1, as functions from a request to
 * a response, independent of the HTTP server (which adapts libmicrohttpd's
 * connection to struct api_request and sends struct api_response back).
 *
 *   api_route_find()   the route for a method and path, with its path values
 *   api_handle()       authenticate, authorise, run one route's handler
 *   api_response_clear()
 *
 * Routes (console/openapi.yaml describes each, with its statuses):
 *   POST   /api/v1/session                        sign in (e-mail, password)
 *   GET    /api/v1/session                        who am I, my studies and roles, CSRF token
 *   DELETE /api/v1/session                        sign out (CSRF)
 *   GET    /api/v1/alerts                         alerts of my studies, filtered, keyset pages
 *   GET    /api/v1/alerts/{id}                    one alert, evidence, notifications, events
 *   POST   /api/v1/alerts/{id}/ack                responder+ (CSRF or API token)
 *   POST   /api/v1/alerts/{id}/resolve            responder+ (CSRF or API token)
 *   GET    /api/v1/subjects/{study}/{subject}/timeline   observations per analyte, alerts
 *   GET    /api/v1/studies/{study}/audit.csv      the study's audit trail as CSV (study-admin)
 *   GET    /api/v1/studies/{study}/sites          the study's sites (viewer+)
 *   PUT    /api/v1/studies/{study}/sites/{site}   create or rename a site (study_admin)
 *   GET    /api/v1/studies/{study}/researchers    who holds a role or subscribes (study_admin)
 *   PUT    /api/v1/studies/{study}/grants/{researcher}  grant a role in the study (study_admin)
 *   DELETE /api/v1/studies/{study}/grants/{researcher}  remove it (study_admin)
 *   GET    /api/v1/studies/{study}/policies       escalation policies (viewer+)
 *   PUT    /api/v1/studies/{study}/policies       set them (study_admin)
 *   DELETE /api/v1/studies/{study}/policies?severity=&site=  remove one (study_admin)
 *   GET    /api/v1/subscriptions                  my subscriptions (in studies I hold a role in)
 *   PUT    /api/v1/subscriptions                  create or replace one of mine (CSRF)
 *   DELETE /api/v1/subscriptions?study=&site=     remove one of mine (CSRF)
 *   POST   /api/v1/password-reset                 e-mail a single-use link (always 202)
 *   POST   /api/v1/password-reset/confirm         a new password with that link's token
 *
 * DESIGN. Authorisation is in SQL: every statement that reads or changes
 * study data joins console_study_roles(researcher, token) (0060), so rows of
 * a study the caller may not see are never fetched. An alert or a subject
 * of another study answers 404, as one that does not exist: a caller cannot
 * probe for another study's ids. Seeing an alert but lacking the rank to
 * change it answers 403. Errors are JSON {"error": code, "message": text}
 * and never carry PostgreSQL's text (it may quote values).
 *
 * Thread-safety: api_handle may run on many threads at once, each with its
 * own PGconn.
 */
#ifndef VIGIL_CONSOLE_API_H
#define VIGIL_CONSOLE_API_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "coalesce.h"
#include "limiter.h"
#include "reqparse.h"

#define API_PAGE_DEFAULT 50
#define API_PAGE_MAX 200
#define API_TIMELINE_MAX 5000 /* observations in one timeline answer */
#define API_EXPORT_MAX 100000 /* audit events in one CSV export */
#define API_RESET_TTL_S 1800  /* a password reset link's life */
#define API_RESET_PER_HOUR 3  /* reset e-mails per account and hour */

/* What the API needs of the console's settings: borrowed, lives as long
 * as the server. */
struct api_context {
    const char *public_url; /* links in e-mails: PUBLIC_URL/console/#reset/TOKEN */
    const char *smtp_url;   /* NULL: password reset by e-mail off */
    const char *smtp_from, *smtp_user, *smtp_password, *smtp_tls;
};

/* What the server hands over: borrowed for the call. */
struct api_request {
    const struct api_context *ctx;
    const char *method;               /* "GET", "POST", ... */
    const char *path;                 /* decoded path, no query */
    const struct reqparse_query *query;
    const char *cookie;               /* Cookie header, or NULL */
    const char *csrf;                 /* X-CSRF-Token header, or NULL */
    const char *authorization;        /* Authorization header, or NULL */
    const char *proxy_user;           /* the trusted proxy's identity header (the server
                                         checked the peer is a trusted proxy), or NULL */
    const char *content_type;         /* Content-Type header, or NULL */
    const char *body;                 /* request body, or NULL */
    size_t body_len;
    struct coalesce *coalesce;        /* identical reads share one execution, or NULL */
    int64_t arrived_ns;               /* deadline_now() when the request arrived */
};

struct api_response {
    int status;
    char *body;               /* malloc'd text (JSON unless content_type says), or NULL */
    const char *content_type; /* NULL: application/json; charset=utf-8 */
    char set_cookie[256];     /* a Set-Cookie value, or "" */
    int retry_after;          /* seconds for Retry-After, or 0 */
    bool truncated;           /* an export stopped at its row bound: X-Vigil-Truncated: true */
};

/* Frees R's body and empties it. */
void api_response_clear(struct api_response *r);

#define API_PATH_VALUES 2

struct api_route {
    const char *method;
    const char *pattern;        /* "/api/v1/alerts/{id}/ack": the metrics label too */
    enum limiter_class cls;
    bool needs_auth;
    bool changes_state;         /* needs CSRF (session) or an API token */
    void (*handle)(PGconn *conn, const struct api_request *req, const char *const *values,
                   const struct auth_principal *who, struct api_response *resp);
};

/* Finds the route for METHOD and PATH and writes its {..} values into
 * values (API_PATH_VALUES buffers of REQPARSE_ID_MAX + 1 bytes). Returns the
 * route, or NULL with *status 404 (no such path) or 405 (path exists, not
 * with this method). */
const struct api_route *api_route_find(const char *method, const char *path,
                                       char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1],
                                       int *status);

/* Runs ROUTE for REQ on CONN, filling RESP. Does not take a limiter slot:
 * the server wraps the call in limiter_enter/leave with ROUTE's class. */
void api_handle(PGconn *conn, const struct api_route *route,
                char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1], const struct api_request *req,
                struct api_response *resp);

/* Who REQ is (proxy identity, API token or session cookie, in that
 * order). Returns 0 with *WHO filled, or -1 with RESP filled (401, or 503
 * when PostgreSQL failed). */
int api_authenticate(PGconn *conn, const struct api_request *req, struct auth_principal *who,
                     struct api_response *resp);

/* The live queue's poll (alert_stream.c): open alerts of WHO's studies
 * (filtered in SQL) whose lifecycle opened after START and after NEWEST
 * minus LOOKBACK_MS, oldest first, at most LIMIT. Columns 0-15 are
 * api_alert_json's, 16 opened_at, 17 the look-back's lower bound (both
 * RFC 3339 UTC with microseconds, so they compare as text). NULL with
 * errstr on failure; the caller PQclears. */
PGresult *api_alerts_opened(PGconn *conn, const struct auth_principal *who, const char *start,
                            const char *newest, int lookback_ms, int limit, char *errstr,
                            size_t errstr_size);

/* The live queue's other poll: acknowledged, resolved and retracted
 * events of WHO's studies (filtered in SQL) with event_id > AFTER, oldest
 * first, at most LIMIT. Always at least one row: column 0 is the audit
 * trail's last event id in the same snapshot (where the next poll may
 * start when fewer than LIMIT events came back); columns 1-5 are
 * event_id, alert_id, kind, the alert's state now, recorded_at (RFC 3339
 * UTC), all NULL in the one row when there is no event. NULL with errstr
 * on failure; the caller PQclears. */
PGresult *api_alert_changes(PGconn *conn, const struct auth_principal *who, long long after,
                            int limit, char *errstr, size_t errstr_size);

/* Row ROW of api_alerts_opened as the alert JSON the list answers. */
json_t *api_alert_json(const PGresult *r, int row);

/* Fills RESP with a JSON error {"error": CODE, "message": MESSAGE}. */
void api_error(struct api_response *resp, int status, const char *code, const char *message);

/* For handlers in other files (api_people.c): answer J (taken) with
 * STATUS; a failed statement's 400/422/503; the caller's token id as a
 * parameter (NULL for a session); 404/403 answered unless the caller
 * administers STUDY (true). Same thread rules as the handlers. */
void api_respond_json(struct api_response *resp, int status, json_t *j);
void api_db_error(struct api_response *resp, const char *err);
const char *api_token_param(const struct auth_principal *who);
/* Who the audit trail names for a change WHO makes ("console:RESEARCHER",
 * ":token:ID" after it for an API token), written into BUF. */
const char *api_actor(const struct auth_principal *who, char *buf, size_t size);
bool api_study_admin_ok(PGconn *conn, const struct auth_principal *who, const char *study,
                        struct api_response *resp);

/* api_people.c: quiet hours (migration 0064) and contact details.
 * api_quiet_get returns RESEARCHER's window as {start, end, time_zone,
 * quiet_until} or JSON null (none), NULL with errstr on a database error.
 * api_quiet_put sets WHO's from QUIET (null: none; else exactly those
 * three keys, HH:MM[:SS] local times that differ, an IANA zone PostgreSQL
 * knows), audited as WHO's change: 0, or -1 with RESP answered (400 for
 * bad input). */
json_t *api_quiet_get(PGconn *conn, const char *researcher, char *errstr, size_t errstr_size);
int api_quiet_put(PGconn *conn, const struct auth_principal *who, const json_t *quiet,
                  struct api_response *resp);
void api_me_contact_get(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp);
void api_me_contact_put(PGconn *conn, const struct api_request *req, const char *const *values,
                        const struct auth_principal *who, struct api_response *resp);
void api_study_contact_get(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp);
void api_study_contact_put(PGconn *conn, const struct api_request *req, const char *const *values,
                           const struct auth_principal *who, struct api_response *resp);

#endif
