#include "ack_page.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acklink.h"
#include "form.h"
#include "log.h"
#include "page.h"
#include "pg.h"

struct ack_pages {
    struct acklink_keys keys;
    struct pgpool *pool;
    struct metric *shown, *acked, *idempotent, *refused;
};

static void cleanup_pages(void *arg)
{
    struct ack_pages *p = arg;
    memset(&p->keys, 0, sizeof p->keys);
    free(p);
}

static const char *token_of(const struct httpd_request *req)
{
    return req->path + strlen("/ack/");
}

/* The 4xx for a refused link. */
static unsigned refusal_status(enum acklink_status st)
{
    switch (st) {
    case ACKLINK_EXPIRED:
        return 410;
    case ACKLINK_MALFORMED:
        return 400;
    default:
        return 403;
    }
}

static const char *refusal_words(const char *reason)
{
    if (strcmp(reason, "expired") == 0)
        return "This acknowledgement link has expired. Acknowledge the alert in the vigil "
               "console, or follow the link in a newer message.";
    if (strcmp(reason, "replayed") == 0)
        return "This acknowledgement link has already been used. Each link works once; the "
               "alert's state is shown in the vigil console.";
    if (strcmp(reason, "malformed") == 0)
        return "This is not a valid vigil acknowledgement link (it may have been cut short "
               "by your mail program: copy the whole link).";
    return "This acknowledgement link is not valid: its signature does not match. It was "
           "not made by vigil, or it was altered. Nothing was acknowledged.";
}

/* Audits and answers a refused link. C holds what parsing got. */
static void refuse(struct ack_pages *p, PGconn *c, const struct httpd_request *req,
                   const struct acklink_claims *cl, bool genuine, const char *reason,
                   unsigned status, struct httpd_response *resp)
{
    metric_add(p->refused, 1);
    if (c != NULL) {
        json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "reason", reason, "method", req->method,
                              "client", req->client, "channel", "link");
        if (d != NULL && cl->kid[0])
            json_object_set_new(d, "kid", json_string(cl->kid));
        /* A forged link's claims are the forger's words: kept in the detail,
         * never as the event's alert or actor. */
        if (d != NULL && cl->alert_id[0])
            json_object_set_new(d, genuine ? "researcher_id" : "claimed_alert_id",
                                json_string(genuine ? cl->researcher_id : cl->alert_id));
        if (d != NULL && !genuine && cl->researcher_id[0])
            json_object_set_new(d, "claimed_researcher_id", json_string(cl->researcher_id));
        char err[512];
        if (page_audit(c, genuine ? cl->alert_id : NULL, "ack_link_refused",
                       genuine ? cl->researcher_id : "console", d, err, sizeof err) != 0)
            log_msg(LOG_ERROR, "console", "could not audit a refused link: %s", err);
    }
    log_msg(LOG_WARN, "console", "acknowledgement link refused (%s) from %s", reason,
            req->client);
    char body[1024];
    snprintf(body, sizeof body, "<p>%s</p>", refusal_words(reason));
    page_html(resp, status, "Link not accepted", body);
}

static const char *state_words(const char *state)
{
    if (strcmp(state, "acknowledged") == 0 || strcmp(state, "already_acknowledged") == 0)
        return "This alert has already been acknowledged";
    if (strcmp(state, "resolved") == 0 || strcmp(state, "already_resolved") == 0)
        return "This alert has already been resolved";
    if (strcmp(state, "retracted") == 0)
        return "This alert was withdrawn (the result behind it was amended or entered in error)";
    return NULL;
}

/* Checks the token and its nonce; on refusal answers RESP and returns false. */
static bool check_link(struct ack_pages *p, PGconn *c, const struct httpd_request *req,
                       struct acklink_claims *cl, struct httpd_response *resp)
{
    const char *tok = token_of(req);
    enum acklink_status st = acklink_verify(&p->keys, tok, strlen(tok), (int64_t)time(NULL), cl);
    if (st != ACKLINK_OK) {
        /* an expired link's signature was good: its claims are genuine */
        refuse(p, c, req, cl, st == ACKLINK_EXPIRED, acklink_status_name(st),
               refusal_status(st), resp);
        return false;
    }
    const char *params[] = {cl->nonce};
    char err[512];
    PGresult *r = pg_query(c, "SELECT answer FROM ack_link_uses WHERE nonce = $1", 1, params,
                           err, sizeof err);
    if (r == NULL) {
        log_msg(LOG_ERROR, "console", "ack link lookup: %s", err);
        page_html(resp, 503, "Try again", "<p>vigil cannot reach its database just now. "
                                          "Nothing was changed; try again in a minute.</p>");
        return false;
    }
    bool used = PQntuples(r) > 0;
    PQclear(r);
    if (used) {
        refuse(p, c, req, cl, true, "replayed", 410, resp);
        return false;
    }
    return true;
}

static void describe_alert(PGconn *c, const char *alert_id, char *html, size_t htmlsz,
                           char *state, size_t statesz)
{
    const char *params[] = {alert_id};
    char err[512];
    PGresult *r = pg_query(c,
                           "SELECT a.severity, a.study_id, a.site_id, a.rule_id, "
                           "to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI \"UTC\"'), "
                           "coalesce(l.state, 'open') "
                           "FROM alerts a LEFT JOIN alert_lifecycle l USING (alert_id) "
                           "WHERE a.alert_id = $1",
                           1, params, err, sizeof err);
    snprintf(state, statesz, "unknown");
    snprintf(html, htmlsz, "<p>Alert <code>%s</code></p>", "");
    if (r == NULL || PQntuples(r) == 0) {
        PQclear(r);
        return;
    }
    char e[6][200];
    for (int i = 0; i < 5; i++)
        page_escape(PQgetvalue(r, 0, i), e[i], sizeof e[i]);
    page_escape(alert_id, e[5], sizeof e[5]);
    /* Study, site and finding, never the subject: whoever holds the link
     * sees this page. */
    snprintf(html, htmlsz,
             "<table><tr><th align=left>Alert</th><td><code>%s</code></td></tr>"
             "<tr><th align=left>Severity</th><td>%s</td></tr>"
             "<tr><th align=left>Study / site</th><td>%s / %s</td></tr>"
             "<tr><th align=left>Rule</th><td>%s</td></tr>"
             "<tr><th align=left>Detected</th><td>%s</td></tr></table>",
             e[5], e[0], e[1], e[2], e[3], e[4]);
    snprintf(state, statesz, "%s", PQgetvalue(r, 0, 5));
    PQclear(r);
}

static void unavailable(struct httpd_response *resp)
{
    page_html(resp, 503, "Try again",
              "<p>vigil cannot reach its database just now. Nothing was changed; try again "
              "in a minute.</p>");
}

static void ack_get(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    struct ack_pages *p = arg;
    char err[512];
    PGconn *c = pgpool_get(p->pool, 5000, err, sizeof err);
    if (c == NULL) {
        unavailable(resp);
        return;
    }
    struct acklink_claims cl;
    if (!check_link(p, c, req, &cl, resp)) {
        pgpool_put(p->pool, c, false);
        return;
    }
    char info[2048], state[32];
    describe_alert(c, cl.alert_id, info, sizeof info, state, sizeof state);
    pgpool_put(p->pool, c, false);
    metric_add(p->shown, 1);
    char body[4096];
    const char *words = state_words(state);
    if (strcmp(state, "unknown") == 0) {
        page_html(resp, 404, "Unknown alert", "<p>vigil has no such alert.</p>");
        return;
    }
    if (words != NULL) {
        snprintf(body, sizeof body, "%s<p><strong>%s.</strong> Nothing more to do.</p>", info,
                 words);
        page_html(resp, 200, "Already handled", body);
        return;
    }
    /* The form posts back to this very URL: the token is the capability,
     * so the POST needs nothing else. A GET never changes anything. */
    char action[ACKLINK_TOKEN_MAX * 2];
    page_escape(req->path, action, sizeof action);
    snprintf(body, sizeof body,
             "%s<p>Confirm that you have seen this alert and are taking responsibility for "
             "it. Escalation to the next person stops when you acknowledge.</p>"
             "<form method=\"post\" action=\"%s\">"
             "<p><label>Note (optional)<br><textarea name=\"note\" rows=\"3\" cols=\"40\" "
             "maxlength=\"500\"></textarea></label></p>"
             "<p><button type=\"submit\" name=\"confirm\" value=\"1\">Acknowledge</button></p>"
             "</form>",
             info, action);
    page_html(resp, 200, "Acknowledge alert", body);
}

static void ack_post(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    struct ack_pages *p = arg;
    char err[512];
    PGconn *c = pgpool_get(p->pool, 5000, err, sizeof err);
    if (c == NULL) {
        unavailable(resp);
        return;
    }
    struct acklink_claims cl;
    if (!check_link(p, c, req, &cl, resp)) {
        pgpool_put(p->pool, c, false);
        return;
    }
    char note[501];
    long nl = form_field(req->body, req->body_len, "note", note, sizeof note);
    if (nl < 0)
        note[0] = '\0';
    /* The nonce row and the acknowledgement commit together: two POSTs
     * racing with one link both insert, one waits on the other's key and
     * then finds it taken. */
    bool broken = true;
    PGresult *r = NULL;
    if (pg_command(c, "BEGIN", 0, NULL, err, sizeof err) != 0)
        goto fail;
    const char *ins[] = {cl.nonce, cl.kid, cl.alert_id, cl.researcher_id, req->client};
    r = pg_query(c,
                 "INSERT INTO ack_link_uses (nonce, kid, alert_id, researcher_id, answer, client) "
                 "VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT DO NOTHING RETURNING 1",
                 5, ins, err, sizeof err);
    if (r == NULL)
        goto fail;
    bool fresh = PQntuples(r) == 1;
    PQclear(r);
    r = NULL;
    if (!fresh) {
        pg_command(c, "ROLLBACK", 0, NULL, err, sizeof err);
        refuse(p, c, req, &cl, true, "replayed", 410, resp);
        pgpool_put(p->pool, c, false);
        return;
    }
    const char *ack[] = {cl.alert_id, cl.researcher_id, "link", req->client,
                         note[0] ? note : NULL};
    r = pg_query(c, "SELECT vigil_alert_ack($1, $2, $3, $4, $5)", 5, ack, err, sizeof err);
    if (r == NULL)
        goto fail;
    char answer[40];
    snprintf(answer, sizeof answer, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    r = NULL;
    const char *upd[] = {cl.nonce, answer};
    if (pg_command(c, "UPDATE ack_link_uses SET answer = $2 WHERE nonce = $1", 2, upd, err,
                   sizeof err) != 0 ||
        pg_command(c, "COMMIT", 0, NULL, err, sizeof err) != 0)
        goto fail;
    broken = false;
    char info[2048], state[32];
    describe_alert(c, cl.alert_id, info, sizeof info, state, sizeof state);
    pgpool_put(p->pool, c, false);
    char body[4096];
    if (strcmp(answer, "acknowledged") == 0) {
        metric_add(p->acked, 1);
        log_msg(LOG_INFO, "console", "alert %s acknowledged by %s through a link", cl.alert_id,
                cl.researcher_id);
        snprintf(body, sizeof body,
                 "%s<p><strong>Acknowledged.</strong> Thank you; escalation for this alert has "
                 "stopped.</p>",
                 info);
        page_html(resp, 200, "Acknowledged", body);
    } else if (strcmp(answer, "unknown_alert") == 0) {
        page_html(resp, 404, "Unknown alert", "<p>vigil has no such alert.</p>");
    } else {
        metric_add(p->idempotent, 1);
        const char *w = state_words(answer);
        snprintf(body, sizeof body, "%s<p><strong>%s.</strong> Nothing was changed.</p>", info,
                 w ? w : answer);
        page_html(resp, 200, "Already handled", body);
    }
    return;
fail:
    PQclear(r);
    log_msg(LOG_ERROR, "console", "acknowledging through a link: %s", err);
    pgpool_put(p->pool, c, broken);
    unavailable(resp);
}

int ack_page_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                      char *errstr, size_t errstr_size)
{
    if (app->opt->link_keys_file == NULL || app->opt->link_keys_file[0] == '\0') {
        log_msg(LOG_INFO, "console", "link_keys_file unset: acknowledgement pages off");
        return 0;
    }
    struct ack_pages *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (acklink_keys_load(app->opt->link_keys_file, &p->keys, errstr, errstr_size) != 0) {
        free(p);
        return -1;
    }
    p->pool = app->pool;
    p->shown = metrics_counter(app->metrics, "vigil_console_ack_pages_total",
                               "acknowledgement pages answered", "outcome=\"shown\"");
    p->acked = metrics_counter(app->metrics, "vigil_console_ack_pages_total",
                               "acknowledgement pages answered", "outcome=\"acknowledged\"");
    p->idempotent = metrics_counter(app->metrics, "vigil_console_ack_pages_total",
                                    "acknowledgement pages answered", "outcome=\"already\"");
    p->refused = metrics_counter(app->metrics, "vigil_console_ack_pages_total",
                                 "acknowledgement pages answered", "outcome=\"refused\"");
    *cleanup = cleanup_pages;
    *cleanup_arg = p;
    if (route_add(app->routes, "GET", "/ack/", ack_get, p, errstr, errstr_size) != 0 ||
        route_add(app->routes, "POST", "/ack/", ack_post, p, errstr, errstr_size) != 0)
        return -1;
    return 0;
}
