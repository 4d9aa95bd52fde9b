/*
 * vigil policy show|set|check|remove: escalation policies
 * (alerting/policy.h for the file format and the rules). check validates a
 * file alone; set also checks it against the directory and replaces the
 * policies it names, in one transaction, recording the change in the audit
 * trail; show prints the policy in force for a study (and site) with the
 * people each tier reaches today; remove deletes one policy (audited), so
 * the next one that applies takes over.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "policy.h"
#include "policy_store.h"
#include "settings.h"

#define POLICIES_MAX 64

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil policy check FILE\n"
            "       vigil policy set FILE [--conninfo STR]\n"
            "       vigil policy show --study S [--site X] [--conninfo STR]\n"
            "       vigil policy remove --study S [--site X] --severity critical|warning\n"
            "                           [--conninfo STR]\n\n"
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
            "  show   the policies in force and who each tier reaches now\n"
            "  remove the study's (or with --site, that site's) policy of a severity; its\n"
            "         alerts follow the study-wide or built-in policy from their next step;\n"
            "         audited\n\n"
            "exit status: 0 success, 1 invalid or failure, 2 bad usage\n");
}

enum { OPT_CONNINFO = 256, OPT_STUDY, OPT_SITE, OPT_SEVERITY };

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
    if (policy_store_check(c, pol, n, err, sizeof err) > 0) {
        fprintf(stderr, "%s:\n%s\n", file, err);
        return 1;
    }
    char origin[300], actor[310];
    cli_origin(origin, sizeof origin);
    snprintf(actor, sizeof actor, "cli:%s", origin);
    if (policy_store_set(c, pol, n, actor, err, sizeof err) != 0) {
        fprintf(stderr, "vigil policy set: %s\n", err);
        return 1;
    }
    for (int k = 0; k < n; k++)
        printf("set: study %s%s%s %s: %d tiers\n", pol[k].study, pol[k].site[0] ? " site " : "",
               pol[k].site, pol[k].severity, pol[k].ntiers);
    return 0;
}

static int remove_one(PGconn *c, const char *study, const char *site, const char *severity)
{
    char origin[300], actor[310], err[1024];
    cli_origin(origin, sizeof origin);
    snprintf(actor, sizeof actor, "cli:%s", origin);
    int removed = 0;
    if (policy_store_remove(c, study, site, severity, actor, &removed, err, sizeof err) != 0) {
        fprintf(stderr, "vigil policy remove: %s\n", err);
        return 1;
    }
    if (removed == 0) {
        fprintf(stderr, "vigil policy remove: study %s has no %s policy of its own%s%s\n", study,
                severity, site != NULL ? " for site " : "", site != NULL ? site : "");
        return 1;
    }
    printf("removed: study %s%s%s %s\n", study, site != NULL ? " site " : "",
           site != NULL ? site : "", severity);
    return 0;
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
                                         {"severity", required_argument, NULL, OPT_SEVERITY},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *conninfo = NULL, *study = NULL, *site = NULL, *severity = NULL;
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
        case OPT_SEVERITY:
            severity = optarg;
            break;
        default:
            return cli_bad_option("policy", usage, argv);
        }
    }
    if (optind >= argc)
        return cli_bad_usage("policy", usage, "missing subcommand (show, set, check or remove)");
    const char *sub = argv[optind];
    if (strcmp(sub, "check") == 0 || strcmp(sub, "set") == 0) {
        if (optind + 2 != argc)
            return cli_bad_usage("policy", usage, "%s takes exactly one FILE", sub);
        if (sub[0] == 'c')
            return check(argv[optind + 1]);
    } else if (strcmp(sub, "show") == 0 || strcmp(sub, "remove") == 0) {
        if (optind + 1 != argc)
            return cli_bad_usage("policy", usage, "unexpected argument '%s'", argv[optind + 1]);
        if (study == NULL || *study == '\0')
            return cli_bad_usage("policy", usage, "which study? (--study ID)");
        if (sub[0] == 'r' && (severity == NULL || (strcmp(severity, "critical") != 0 &&
                                                   strcmp(severity, "warning") != 0)))
            return cli_bad_usage("policy", usage, "remove needs --severity critical or warning");
    } else {
        return cli_bad_usage("policy", usage, "unknown subcommand '%s'", sub);
    }
    char err[1024];
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil policy: %s\n", err);
        return 1;
    }
    int rc = sub[0] == 'r'                  ? remove_one(conn, study, site, severity)
             : sub[0] == 's' && sub[1] == 'e' ? set(conn, argv[optind + 1])
                                              : show(conn, study, site != NULL ? site : "");
    PQfinish(conn);
    return rc;
}
