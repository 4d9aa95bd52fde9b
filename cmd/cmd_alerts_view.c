/*
 * vigil alerts list|show: the alerts table for operators and scripts, read
 * straight from PostgreSQL (no console roles: whoever holds the database
 * credentials sees every study). `vigil alerts ack|resolve` (cmd_alerts.c)
 * hands list and show over to cmd_alerts_view.
 *
 *   list  newest first, filtered by study, site, severity, lifecycle state
 *         and time; text columns or JSON lines
 *   show  one alert as JSON: the row, its lifecycle, evidence, the
 *         notifications sent and their outcomes, the audit events
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "settings.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil alerts list [--study S] [--site S] [--severity SEV] [--state ST]\n"
            "                         [--since TIME] [--limit N] [--json]\n"
            "       vigil alerts show ID\n\n"
            "list: alerts newest first (default 50, at most 10000), one per line:\n"
            "  detected_at severity state study/site subject alert_id message\n"
            "  or, with --json, one JSON object per line.\n"
            "show: one alert as JSON with its evidence, lifecycle, notifications and\n"
            "  audit events.\n\n"
            "options:\n"
            "  --state ST       open, acknowledged, resolved or retracted\n"
            "  --since TIME     detected at or after TIME (RFC 3339)\n"
            "  --conninfo STR   libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                   VIGIL_PG_CONNINFO, libpq's PG* variables)\n"
            "  -h, --help       print this help\n\n"
            "exit status: 0 done, 1 failure, 2 bad usage, 3 show: no such alert\n");
}

#define STATE "coalesce(l.state, CASE WHEN a.retracted THEN 'retracted' WHEN a.kind = 'retraction' THEN 'closed' ELSE 'open' END)"

static int list(PGconn *conn, const char *const *p, bool json)
{
    char err[1024];
    PGresult *r = pg_query(conn,
                           "SELECT " "to_char(a.detected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" ", a.severity, " STATE ", a.study_id, a.site_id, "
                           "a.subject_id, a.alert_id, a.message, a.rule_id "
                           "FROM alerts a LEFT JOIN alert_lifecycle l ON l.alert_id = a.alert_id "
                           "WHERE ($1::text IS NULL OR a.study_id = $1) AND ($2::text IS NULL OR a.site_id = $2) "
                           "AND ($3::text IS NULL OR a.severity = $3) AND ($4::text IS NULL OR " STATE " = $4) "
                           "AND ($5::timestamptz IS NULL OR a.detected_at >= $5::timestamptz) "
                           "ORDER BY a.detected_at DESC, a.alert_id DESC LIMIT $6::integer",
                           6, p, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "vigil alerts: could not list alerts: %s\n", err);
        return 1;
    }
    static const char *const names[] = {"detected_at", "severity", "state", "study_id", "site_id",
                                        "subject_id", "alert_id", "message", "rule_id"};
    for (int i = 0; i < PQntuples(r); i++) {
        if (json) {
            json_t *o = json_object();
            for (int c = 0; c < 9; c++)
                json_object_set_new(o, names[c], json_string(PQgetvalue(r, i, c)));
            char *line = json_dumps(o, JSON_COMPACT);
            if (line != NULL)
                printf("%s\n", line);
            free(line);
            json_decref(o);
        } else {
            printf("%s %-8s %-12s %s/%s %s %s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                   PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5),
                   PQgetvalue(r, i, 6), PQgetvalue(r, i, 7));
        }
    }
    PQclear(r);
    return 0;
}

static int show(PGconn *conn, const char *id)
{
    char err[1024];
    const char *p[] = {id};
    /* One statement builds the whole document, so it is one snapshot. */
    PGresult *r = pg_query(
        conn,
        "SELECT jsonb_pretty(to_jsonb(a) || jsonb_build_object('state', " STATE ", "
        "'lifecycle', to_jsonb(l), "
        "'notifications', coalesce((SELECT jsonb_agg(to_jsonb(n) ORDER BY n.created_at) "
        "  FROM notifications n WHERE n.alert_id = a.alert_id), '[]'::jsonb), "
        "'events', coalesce((SELECT jsonb_agg(jsonb_build_object('event_id', e.event_id, 'kind', e.kind, "
        "  'actor', e.actor, 'detail', e.detail, 'recorded_at', e.recorded_at) ORDER BY e.event_id) "
        "  FROM alert_events e WHERE e.alert_id = a.alert_id), '[]'::jsonb))) "
        "FROM alerts a LEFT JOIN alert_lifecycle l ON l.alert_id = a.alert_id WHERE a.alert_id = $1",
        1, p, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "vigil alerts: could not read alert %s: %s\n", id, err);
        return 1;
    }
    int rc = 3;
    if (PQntuples(r) == 1) {
        printf("%s\n", PQgetvalue(r, 0, 0));
        rc = 0;
    } else {
        fprintf(stderr, "vigil alerts: no alert %s\n", id);
    }
    PQclear(r);
    return rc;
}

enum { OPT_STUDY = 256, OPT_SITE, OPT_SEVERITY, OPT_STATE, OPT_SINCE, OPT_LIMIT, OPT_JSON, OPT_CONNINFO };

int cmd_alerts_view(int argc, char **argv)
{
    static const struct option opts[] = {{"study", required_argument, NULL, OPT_STUDY},
                                         {"site", required_argument, NULL, OPT_SITE},
                                         {"severity", required_argument, NULL, OPT_SEVERITY},
                                         {"state", required_argument, NULL, OPT_STATE},
                                         {"since", required_argument, NULL, OPT_SINCE},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"json", no_argument, NULL, OPT_JSON},
                                         {"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *study = NULL, *site = NULL, *sev = NULL, *state = NULL, *since = NULL;
    const char *conninfo = NULL, *limit = "50";
    bool json = false;
    const char *sub = argv[0];
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': usage(stdout); return 0;
        case OPT_STUDY: study = optarg; break;
        case OPT_SITE: site = optarg; break;
        case OPT_SEVERITY: sev = optarg; break;
        case OPT_STATE: state = optarg; break;
        case OPT_SINCE: since = optarg; break;
        case OPT_LIMIT: limit = optarg; break;
        case OPT_JSON: json = true; break;
        case OPT_CONNINFO: conninfo = optarg; break;
        default: return cli_bad_option("alerts", usage, argv);
        }
    }
    bool is_show = strcmp(sub, "show") == 0;
    if (is_show && optind + 1 != argc)
        return cli_bad_usage("alerts", usage, "show takes exactly one alert ID");
    if (!is_show && optind != argc)
        return cli_bad_usage("alerts", usage, "unexpected argument '%s'", argv[optind]);
    char *end;
    long n = strtol(limit, &end, 10);
    if (*end != '\0' || n < 1 || n > 10000)
        return cli_bad_usage("alerts", usage, "--limit takes 1 to 10000");
    char err[1024];
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil alerts: %s\n", err);
        return 1;
    }
    int rc;
    if (is_show) {
        rc = show(conn, argv[optind]);
    } else {
        const char *p[] = {study, site, sev, state, since, limit};
        rc = list(conn, p, json);
    }
    PQfinish(conn);
    return rc;
}
