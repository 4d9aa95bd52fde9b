/*
 * vigil policy show|set|check: escalation policies (alerting/policy.h for
 * the file format and the rules). check validates a file alone; set also
 * checks it against the directory and replaces the policies it names, in
 * one transaction, recording the change in the audit trail; show prints
 * the policy in force for a study (and site) with the people each tier
 * reaches today.
 */
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "policy.h"
#include "settings.h"

#define POLICIES_MAX 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil policy check FILE\n"
            "       vigil policy set FILE [--conninfo STR]\n"
            "       vigil policy show --study S [--site X] [--conninfo STR]\n\n"
            "Escalation policies per study (optionally per site) and severity. A file\n"
            "(YAML or JSON) holds one policy or {policies: [...]}:\n\n"
            "  study: S1\n"
            "  severity: critical          # critical or warning\n"
            "  repeat_last: 15m            # the last tier is paged again this often\n"
            "  tiers:\n"
            "    - {targets: [subscribers], channels: [subscribed], ack_deadline: 15m}\n"
            "    - {targets: [role:safety_physician], channels: [email, sms], ack_deadline: 15m}\n\n"
            "targets: subscribers, role:site_coordinator, role:investigator,\n"
            "role:safety_physician, role:medical_monitor, researcher:ID; channels: email,\n"
            "sms, subscribed. warning policies have no tiers (digest: true). Without a\n"
            "policy, critical alerts page the subscribers at once and the safety physician\n"
            "after 15 minutes, repeated every 15 minutes until acknowledged.\n\n"
            "  check  validate FILE (no database): every problem, then exit 1\n"
            "  set    validate, check against the directory (study, site, researchers,\n"
            "         role holders) and replace those policies; audited\n"
            "  show   the policies in force and who each tier reaches now\n\n"
            "exit status: 0 success, 1 invalid or failure, 2 bad usage\n");
}

enum { OPT_CONNINFO = 256, OPT_STUDY, OPT_SITE };

static int check(const char *file)
{
    static struct policy pol[POLICIES_MAX];
    static char err[16384];
    int n = policy_load_file(file, pol, POLICIES_MAX, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: %d %s, valid\n", file, n, n == 1 ? "policy" : "policies");
    return 0;
}

static void text_array_append(char *buf, size_t size, const char *v)
{
    size_t used = strlen(buf);
    snprintf(buf + used, size - used, "%s\"", used > 1 ? "," : "");
    used = strlen(buf);
    for (; *v && used + 3 < size; v++) {
        if (*v == '"' || *v == '\\')
            buf[used++] = '\\';
        buf[used++] = *v;
    }
    buf[used] = '\0';
    snprintf(buf + used, size - used, "\"");
}

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

/* Directory checks for POL on C; every problem into err. Returns the count. */
static int directory_check(PGconn *c, const struct policy *pol, int k, char *err, size_t errsz)
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

static int set(PGconn *c, const char *file)
{
    static struct policy pol[POLICIES_MAX];
    static char err[16384];
    int n = policy_load_file(file, pol, POLICIES_MAX, err, sizeof err);
    if (n < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    err[0] = '\0';
    int bad = 0;
    for (int k = 0; k < n; k++)
        bad += directory_check(c, &pol[k], k, err, sizeof err);
    if (bad > 0) {
        fprintf(stderr, "%s:\n%s\n", file, err);
        return 1;
    }
    char e[1024];
    if (pg_command(c, "BEGIN", 0, NULL, e, sizeof e) != 0)
        goto fail;
    for (int k = 0; k < n; k++) {
        const struct policy *p = &pol[k];
        char rep[16], digest[8];
        snprintf(rep, sizeof rep, "%d", p->repeat_last_s);
        snprintf(digest, sizeof digest, "%s", p->digest ? "true" : "false");
        const char *pp[] = {p->study, p->site, p->severity, rep, digest};
        if (pg_command(c,
                       "DELETE FROM escalation_policies WHERE study_id = $1 "
                       "AND coalesce(site_id, '') = $2 AND severity = $3",
                       3, pp, e, sizeof e) != 0)
            goto fail;
        PGresult *r = pg_query(c,
                               "INSERT INTO escalation_policies (study_id, site_id, severity, "
                               "repeat_last_s, digest) VALUES ($1, nullif($2, ''), $3, $4, $5) "
                               "RETURNING policy_id",
                               5, pp, e, sizeof e);
        if (r == NULL)
            goto fail;
        char id[32];
        snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        for (int t = 0; t < p->ntiers; t++) {
            const struct policy_tier *tr = &p->tiers[t];
            char targets[POLICY_TARGETS_MAX * (POLICY_TARGET_MAX + 4) + 4] = "{";
            for (int g = 0; g < tr->ntargets; g++)
                text_array_append(targets, sizeof targets, tr->targets[g]);
            strcat(targets, "}");
            char channels[64] = "{";
            if (tr->email)
                text_array_append(channels, sizeof channels, "email");
            if (tr->sms)
                text_array_append(channels, sizeof channels, "sms");
            if (tr->subscribed)
                text_array_append(channels, sizeof channels, "subscribed");
            strcat(channels, "}");
            char tier[16], dl[16];
            snprintf(tier, sizeof tier, "%d", t + 1);
            snprintf(dl, sizeof dl, "%d", tr->ack_deadline_s);
            const char *pt[] = {id, tier, targets, channels, dl};
            if (pg_command(c,
                           "INSERT INTO escalation_tiers (policy_id, tier, targets, channels, "
                           "ack_deadline_s) VALUES ($1, $2, $3, $4, $5)",
                           5, pt, e, sizeof e) != 0)
                goto fail;
        }
        char host[128] = "?", actor[192];
        gethostname(host, sizeof host - 1);
        struct passwd *pw = getpwuid(getuid());
        const char *user = pw != NULL ? pw->pw_name : NULL;
        snprintf(actor, sizeof actor, "cli:%s@%s", user != NULL ? user : "?", host);
        const char *pa[] = {actor, id};
        if (pg_command(c,
                       "SELECT vigil_audit_append(NULL, 'policy_set', $1, "
                       "(SELECT jsonb_build_object('study_id', p.study_id, 'site_id', p.site_id, "
                       "'severity', p.severity, 'repeat_last_s', p.repeat_last_s, 'digest', "
                       "p.digest, 'tiers', coalesce((SELECT jsonb_agg(jsonb_build_object("
                       "'tier', t.tier, 'targets', t.targets, 'channels', t.channels, "
                       "'ack_deadline_s', t.ack_deadline_s) ORDER BY t.tier) FROM "
                       "escalation_tiers t WHERE t.policy_id = p.policy_id), '[]')) "
                       "FROM escalation_policies p WHERE p.policy_id = $2::bigint))",
                       2, pa, e, sizeof e) != 0)
            goto fail;
        printf("set: study %s%s%s %s: %d tiers\n", p->study, p->site[0] ? " site " : "",
               p->site, p->severity, p->ntiers);
    }
    if (pg_command(c, "COMMIT", 0, NULL, e, sizeof e) != 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "vigil policy set: %s\n", e);
    pg_command(c, "ROLLBACK", 0, NULL, err, sizeof err);
    return 1;
}

static int show(PGconn *c, const char *study, const char *site)
{
    static const char *const sev[] = {"critical", "warning"};
    char e[1024];
    for (int s = 0; s < 2; s++) {
        const char *p[] = {study, site, sev[s]};
        PGresult *r = pg_query(
            c,
            "SELECT (SELECT CASE WHEN site_id IS NULL THEN 'study policy' ELSE 'site policy' "
            "END FROM escalation_policies WHERE study_id = $1 AND severity = $3 "
            "AND (site_id = $2 OR site_id IS NULL) ORDER BY site_id IS NULL LIMIT 1), "
            "(SELECT digest FROM escalation_policies WHERE study_id = $1 AND severity = $3 "
            "AND (site_id = $2 OR site_id IS NULL) ORDER BY site_id IS NULL LIMIT 1), "
            "t.tier, array_to_string(t.targets, ', '), array_to_string(t.channels, ', '), "
            "t.ack_deadline_s, t.repeat_last_s, "
            "(SELECT string_agg(r.researcher_id || '/' || r.channel, ', ') FROM "
            "vigil_tier_recipients($1, $2, $3, t.targets, t.channels) r) "
            "FROM (SELECT 1) one LEFT JOIN vigil_policy_tiers($1, $2, $3) t ON true "
            "ORDER BY t.tier",
            3, p, e, sizeof e);
        if (r == NULL) {
            fprintf(stderr, "vigil policy show: %s\n", e);
            return 1;
        }
        const char *src = PQgetisnull(r, 0, 0) ? "built-in default" : PQgetvalue(r, 0, 0);
        printf("%s (%s):\n", sev[s], src);
        if (PQgetisnull(r, 0, 2)) {
            bool digest = PQgetisnull(r, 0, 1) ? s == 1 : strcmp(PQgetvalue(r, 0, 1), "t") == 0;
            printf("  no escalation%s\n",
                   digest ? "; daily digest email of unacknowledged alerts" : "");
        }
        for (int i = 0; i < PQntuples(r) && !PQgetisnull(r, i, 2); i++) {
            printf("  tier %s: %s on %s, %s s to acknowledge -> %s\n", PQgetvalue(r, i, 2),
                   PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                   PQgetisnull(r, i, 7) ? "NOBODY reachable" : PQgetvalue(r, i, 7));
            if (i == PQntuples(r) - 1)
                printf("  then tier %s again every %s s until acknowledged\n",
                       PQgetvalue(r, i, 2), PQgetvalue(r, i, 6));
        }
        PQclear(r);
    }
    return 0;
}

int cmd_policy(int argc, char **argv)
{
    static const struct option opts[] = {{"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"study", required_argument, NULL, OPT_STUDY},
                                         {"site", required_argument, NULL, OPT_SITE},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *conninfo = NULL, *study = NULL, *site = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_CONNINFO:
            conninfo = optarg;
            break;
        case OPT_STUDY:
            study = optarg;
            break;
        case OPT_SITE:
            site = optarg;
            break;
        default:
            return cli_bad_option("policy", usage, argv);
        }
    }
    if (optind >= argc)
        return cli_bad_usage("policy", usage, "missing subcommand (show, set or check)");
    const char *sub = argv[optind];
    if (strcmp(sub, "check") == 0 || strcmp(sub, "set") == 0) {
        if (optind + 2 != argc)
            return cli_bad_usage("policy", usage, "%s takes exactly one FILE", sub);
        if (sub[0] == 'c')
            return check(argv[optind + 1]);
    } else if (strcmp(sub, "show") == 0) {
        if (optind + 1 != argc)
            return cli_bad_usage("policy", usage, "unexpected argument '%s'", argv[optind + 1]);
        if (study == NULL || *study == '\0')
            return cli_bad_usage("policy", usage, "which study? (--study ID)");
    } else {
        return cli_bad_usage("policy", usage, "unknown subcommand '%s'", sub);
    }
    char err[1024];
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil policy: %s\n", err);
        return 1;
    }
    int rc = sub[0] == 's' && sub[1] == 'e' ? set(conn, argv[optind + 1])
                                             : show(conn, study, site != NULL ? site : "");
    PQfinish(conn);
    return rc;
}
