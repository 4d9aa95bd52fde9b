#include "policy_store.h"

#include <stdarg.h>
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
                      "(SELECT jsonb_build_object('study_id', p.study_id, 'site_id', p.site_id, "
                      "'severity', p.severity, 'repeat_last_s', p.repeat_last_s, 'digest', "
                      "p.digest, 'tiers', coalesce((SELECT jsonb_agg(jsonb_build_object("
                      "'tier', t.tier, 'targets', t.targets, 'channels', t.channels, "
                      "'ack_deadline_s', t.ack_deadline_s) ORDER BY t.tier) FROM "
                      "escalation_tiers t WHERE t.policy_id = p.policy_id), '[]')) "
                      "FROM escalation_policies p WHERE p.policy_id = $2::bigint))",
                      2, pa, e, esz);
}

int policy_store_set(PGconn *c, const struct policy *pol, int n, const char *actor, char *errstr,
                     size_t errstr_size)
{
    if (pg_command(c, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    /* the audit chain's head first, as every appender does (0014) */
    int rc = pg_command(c, "SELECT vigil_audit_lock()", 0, NULL, errstr, errstr_size);
    for (int k = 0; rc == 0 && k < n; k++)
        rc = store_one(c, &pol[k], actor, errstr, errstr_size);
    if (rc == 0)
        rc = pg_command(c, "COMMIT", 0, NULL, errstr, errstr_size);
    if (rc != 0) {
        char e[256];
        pg_command(c, "ROLLBACK", 0, NULL, e, sizeof e);
        return -1;
    }
    return 0;
}
