#include "policy_store.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "pg.h"

/* Appends "policy K+1: MESSAGE" as a line of ERR. */
static void add_problem(char *err, size_t errsz, int k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_problem(char *err, size_t errsz, int k, const char *fmt, ...)
{
    size_t used = strlen(err);
    if (used + 1 >= errsz)
        return;
    snprintf(err + used, errsz - used, "%spolicy %d: ", used ? "\n" : "", k + 1);
    used = strlen(err);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + used, errsz - used, fmt, ap);
    va_end(ap);
}
#define PROBLEM(...) (bad++, add_problem(err, errsz, k, __VA_ARGS__))

static int check_one(PGconn *c, const struct policy *pol, int k, char *err, size_t errsz)
{
    int bad = 0;
    char e[512];
    const char *p2[] = {pol->study, pol->site};
    PGresult *r = pg_query(c,
                           "SELECT EXISTS (SELECT 1 FROM studies WHERE study_id = $1), "
                           "$2 = '' OR EXISTS (SELECT 1 FROM sites WHERE study_id = $1 "
                           "AND site_id = $2)",
                           2, p2, e, sizeof e);
    if (r == NULL) {
        PROBLEM("%s", e);
        return bad;
    }
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
        PROBLEM("study '%s' is not in the directory", pol->study);
    else if (strcmp(PQgetvalue(r, 0, 1), "t") != 0)
        PROBLEM("site '%s' is not a site of study '%s'", pol->site, pol->study);
    PQclear(r);
    for (int t = 0; t < pol->ntiers; t++)
        for (int g = 0; g < pol->tiers[t].ntargets; g++) {
            const char *tg = pol->tiers[t].targets[g];
            const char *p3[] = {pol->study, pol->site, tg};
            r = pg_query(c,
                         "SELECT CASE WHEN $3 = 'subscribers' THEN true "
                         "WHEN $3 LIKE 'researcher:%' THEN EXISTS (SELECT 1 FROM researchers "
                         "WHERE researcher_id = substr($3, 12) AND active) "
                         "ELSE EXISTS (SELECT 1 FROM vigil_tier_recipients($1, "
                         "nullif($2, ''), 'critical', ARRAY[$3], ARRAY['email', 'sms'])) END",
                         3, p3, e, sizeof e);
            if (r == NULL) {
                PROBLEM("%s", e);
                continue;
            }
            if (strcmp(PQgetvalue(r, 0, 0), "t") != 0)
                PROBLEM("tier %d: target '%s' reaches nobody (%s)", t + 1, tg,
                        strncmp(tg, "researcher:", 11) == 0
                            ? "no such active researcher"
                            : "nobody holds that role at this study/site: add them to "
                              "study_roles");
            PQclear(r);
        }
    return bad;
}

int policy_store_check(PGconn *c, const struct policy *pol, int n, char *problems,
                       size_t problems_size)
{
    int bad = 0;
    for (int k = 0; k < n; k++)
        bad += check_one(c, &pol[k], k, problems, problems_size);
    return bad;
}

/* The policy of row p (escalation_policies p) with its tiers, as the
 * audit events policy_set and policy_removed carry it. */
#define POLICY_DETAIL_SQL                                                                       \
    "jsonb_build_object('study_id', p.study_id, 'site_id', p.site_id, 'severity', p.severity, " \
    "'repeat_last_s', p.repeat_last_s, 'digest', p.digest, 'tiers', coalesce((SELECT "        \
    "jsonb_agg(jsonb_build_object('tier', t.tier, 'targets', t.targets, 'channels', "         \
    "t.channels, 'ack_deadline_s', t.ack_deadline_s) ORDER BY t.tier) FROM escalation_tiers " \
    "t WHERE t.policy_id = p.policy_id), '[]'))"

/* Ends the transaction the caller began: COMMIT when RC is 0, else (or
 * when the commit fails) ROLLBACK. Returns 0 committed, -1 with errstr. */
static int tx_end(PGconn *c, int rc, char *errstr, size_t errstr_size)
{
    if (rc == 0)
        rc = pg_command(c, "COMMIT", 0, NULL, errstr, errstr_size);
    if (rc != 0) {
        char e[256];
        pg_command(c, "ROLLBACK", 0, NULL, e, sizeof e);
        return -1;
    }
    return 0;
}

/* The policy's rows: the old one of its (study, site, severity) replaced. */
static int store_one(PGconn *c, const struct policy *p, const char *actor, char *e, size_t esz)
{
    char rep[16], digest[8];
    snprintf(rep, sizeof rep, "%d", p->repeat_last_s);
    snprintf(digest, sizeof digest, "%s", p->digest ? "true" : "false");
    const char *pp[] = {p->study, p->site, p->severity, rep, digest};
    if (pg_command(c,
                   "DELETE FROM escalation_policies WHERE study_id = $1 "
                   "AND coalesce(site_id, '') = $2 AND severity = $3",
                   3, pp, e, esz) != 0)
        return -1;
    PGresult *r = pg_query(c,
                           "INSERT INTO escalation_policies (study_id, site_id, severity, "
                           "repeat_last_s, digest) VALUES ($1, nullif($2, ''), $3, $4, $5) "
                           "RETURNING policy_id",
                           5, pp, e, esz);
    if (r == NULL)
        return -1;
    char id[32];
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    struct pg_textarray *targets = pg_textarray_new(), *channels = pg_textarray_new();
    int rc = targets != NULL && channels != NULL ? 0 : -1;
    if (rc != 0)
        snprintf(e, esz, "out of memory");
    for (int t = 0; rc == 0 && t < p->ntiers; t++) {
        const struct policy_tier *tr = &p->tiers[t];
        pg_textarray_reset(targets);
        pg_textarray_reset(channels);
        for (int g = 0; g < tr->ntargets; g++)
            rc |= pg_textarray_add(targets, tr->targets[g]);
        if (tr->email)
            rc |= pg_textarray_add(channels, "email");
        if (tr->sms)
            rc |= pg_textarray_add(channels, "sms");
        if (tr->subscribed)
            rc |= pg_textarray_add(channels, "subscribed");
        if (rc != 0) {
            snprintf(e, esz, "out of memory");
            break;
        }
        char tier[16], dl[16];
        snprintf(tier, sizeof tier, "%d", t + 1);
        snprintf(dl, sizeof dl, "%d", tr->ack_deadline_s);
        const char *pt[] = {id, tier, pg_textarray_str(targets), pg_textarray_str(channels), dl};
        rc = pg_command(c,
                        "INSERT INTO escalation_tiers (policy_id, tier, targets, channels, "
                        "ack_deadline_s) VALUES ($1, $2, $3, $4, $5)",
                        5, pt, e, esz);
    }
    pg_textarray_destroy(targets);
    pg_textarray_destroy(channels);
    if (rc != 0)
        return -1;
    const char *pa[] = {actor, id};
    return pg_command(c,
                      "SELECT vigil_audit_append(NULL, 'policy_set', $1, "
                      "(SELECT " POLICY_DETAIL_SQL " FROM escalation_policies p "
                      "WHERE p.policy_id = $2::bigint))",
                      2, pa, e, esz);
}

/* 1 when the tables hold exactly P for its (study, site, severity), 0 when
 * not, -1 with E. Compared as jsonb built the same way on both sides
 * (channels in store_one's order), so key order does not matter. */
static int stored_same(PGconn *c, const struct policy *p, char *e, size_t esz)
{
    json_t *tiers = json_array();
    for (int t = 0; tiers != NULL && t < p->ntiers; t++) {
        const struct policy_tier *tr = &p->tiers[t];
        json_t *tg = json_array(), *ch = json_array();
        for (int g = 0; tg != NULL && g < tr->ntargets; g++)
            json_array_append_new(tg, json_string(tr->targets[g]));
        if (ch != NULL && tr->email)
            json_array_append_new(ch, json_string("email"));
        if (ch != NULL && tr->sms)
            json_array_append_new(ch, json_string("sms"));
        if (ch != NULL && tr->subscribed)
            json_array_append_new(ch, json_string("subscribed"));
        json_array_append_new(tiers, json_pack("{s:o?, s:o?, s:i}", "targets", tg, "channels", ch,
                                               "ack_deadline_s", tr->ack_deadline_s));
    }
    json_t *want = json_pack("{s:i, s:b, s:o?}", "repeat_last_s", p->repeat_last_s, "digest",
                             p->digest, "tiers", tiers);
    char *text = want != NULL ? json_dumps(want, JSON_COMPACT) : NULL;
    json_decref(want);
    if (text == NULL) {
        snprintf(e, esz, "out of memory");
        return -1;
    }
    const char *pp[] = {p->study, p->site, p->severity, text};
    PGresult *r = pg_query(c,
                           "SELECT EXISTS (SELECT 1 FROM escalation_policies ep WHERE "
                           "ep.study_id = $1 AND coalesce(ep.site_id, '') = $2 AND ep.severity = $3 "
                           "AND jsonb_build_object('repeat_last_s', ep.repeat_last_s, 'digest', "
                           "ep.digest, 'tiers', coalesce((SELECT jsonb_agg(jsonb_build_object("
                           "'targets', to_jsonb(t.targets), 'channels', to_jsonb(t.channels), "
                           "'ack_deadline_s', t.ack_deadline_s) ORDER BY t.tier) FROM "
                           "escalation_tiers t WHERE t.policy_id = ep.policy_id), '[]'::jsonb)) "
                           "= $4::jsonb)",
                           4, pp, e, esz);
    free(text);
    if (r == NULL)
        return -1;
    int same = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return same;
}

int policy_store_write(PGconn *c, const struct policy *pol, int n, const char *actor,
                       bool skip_same, int *changed, char *errstr, size_t errstr_size)
{
    /* the audit chain's head first, as every appender does (0014) */
    if (pg_command(c, "SELECT vigil_audit_lock()", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    for (int k = 0; k < n; k++) {
        int same = skip_same ? stored_same(c, &pol[k], errstr, errstr_size) : 0;
        if (same < 0)
            return -1;
        if (same)
            continue;
        if (store_one(c, &pol[k], actor, errstr, errstr_size) != 0)
            return -1;
        if (changed != NULL)
            (*changed)++;
    }
    return 0;
}

int policy_store_set(PGconn *c, const struct policy *pol, int n, const char *actor, char *errstr,
                     size_t errstr_size)
{
    if (pg_command(c, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    return tx_end(c, policy_store_write(c, pol, n, actor, false, NULL, errstr, errstr_size),
                  errstr, errstr_size);
}

int policy_store_remove(PGconn *c, const char *study, const char *site, const char *severity,
                        const char *actor, int *removed, char *errstr, size_t errstr_size)
{
    *removed = 0;
    const char *pp[] = {study, site != NULL ? site : "", severity, actor};
    if (pg_command(c, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    /* The audit chain's head first, as every appender does (0014); the
     * event carries the policy as it was, read before its rows go. */
    PGresult *r = NULL;
    int rc = pg_command(c, "SELECT vigil_audit_lock()", 0, NULL, errstr, errstr_size);
    if (rc == 0)
        r = pg_query(c,
                     "WITH old AS (SELECT p.policy_id, " POLICY_DETAIL_SQL " AS detail "
                     "FROM escalation_policies p WHERE p.study_id = $1 "
                     "AND coalesce(p.site_id, '') = $2 AND p.severity = $3 FOR UPDATE), "
                     "gone AS (DELETE FROM escalation_policies p USING old "
                     "WHERE p.policy_id = old.policy_id RETURNING old.detail) "
                     "SELECT vigil_audit_append(NULL, 'policy_removed', $4, detail) FROM gone",
                     4, pp, errstr, errstr_size);
    if (r == NULL)
        rc = -1;
    else
        *removed = PQntuples(r);
    PQclear(r);
    if (tx_end(c, rc, errstr, errstr_size) != 0) {
        *removed = 0;
        return -1;
    }
    return 0;
}
