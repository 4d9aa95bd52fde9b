/*
 * vigil alerts ack|resolve: acknowledge or resolve an alert from the command
 * line. The work is the SQL contract of migration 0010 (vigil_alert_ack,
 * vigil_alert_resolve): idempotent, audited, and it stops the alert's
 * escalation. The answer is printed as the function gives it, so a script
 * can tell "acknowledged" from "already_acknowledged".
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "settings.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil alerts list|show ...   (vigil alerts list --help)\n"
            "       vigil alerts ack ID --as RESEARCHER [--note TEXT]\n"
            "       vigil alerts resolve ID --as RESEARCHER --category C --note TEXT\n\n"
            "Acknowledges or resolves alert ID on behalf of RESEARCHER, records it in the\n"
            "audit trail (alert_events) with channel 'cli' and this host as origin, and\n"
            "stops the alert's escalation. Prints the answer:\n"
            "  ack:     acknowledged | already_acknowledged | already_resolved | retracted |\n"
            "           unknown_alert\n"
            "  resolve: resolved | already_resolved | retracted | unknown_alert | bad_category\n"
            "categories: clinically_managed, lab_error, known_expected, reported_as_sae, other\n\n"
            "options:\n"
            "  --as ID          the researcher (directory id) acting\n"
            "  --note TEXT      free text kept with the event (required to resolve)\n"
            "  --category C     resolution category\n"
            "  --conninfo STR   libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                   VIGIL_PG_CONNINFO, libpq's PG* variables)\n"
            "  -h, --help       print this help\n\n"
            "exit status: 0 acknowledged/resolved now, 3 nothing changed (the answer says\n"
            "why: already done, retracted, unknown alert, bad category), 1 failure,\n"
            "2 bad usage (including --as naming no active researcher)\n");
}

enum { OPT_AS = 256, OPT_NOTE, OPT_CATEGORY, OPT_CONNINFO };

int cmd_alerts(int argc, char **argv)
{
    static const struct option opts[] = {{"as", required_argument, NULL, OPT_AS},
                                         {"note", required_argument, NULL, OPT_NOTE},
                                         {"category", required_argument, NULL, OPT_CATEGORY},
                                         {"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    /* list and show read; cmd_alerts_view.c has them */
    if (argc >= 2 && (strcmp(argv[1], "list") == 0 || strcmp(argv[1], "show") == 0))
        return cmd_alerts_view(argc - 1, argv + 1);
    const char *as = NULL, *note = NULL, *category = NULL, *conninfo = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_AS:
            as = optarg;
            break;
        case OPT_NOTE:
            note = optarg;
            break;
        case OPT_CATEGORY:
            category = optarg;
            break;
        case OPT_CONNINFO:
            conninfo = optarg;
            break;
        default:
            return cli_bad_option("alerts", usage, argv);
        }
    }
    if (optind >= argc)
        return cli_bad_usage("alerts", usage, "missing subcommand (ack or resolve)");
    const char *sub = argv[optind];
    bool resolve = strcmp(sub, "resolve") == 0;
    if (!resolve && strcmp(sub, "ack") != 0)
        return cli_bad_usage("alerts", usage, "unknown subcommand '%s'", sub);
    if (optind + 2 != argc)
        return cli_bad_usage("alerts", usage, "%s takes exactly one alert ID", sub);
    const char *id = argv[optind + 1];
    if (as == NULL || *as == '\0')
        return cli_bad_usage("alerts", usage, "who is acting? (--as RESEARCHER)");
    if (resolve && (category == NULL || *category == '\0'))
        return cli_bad_usage("alerts", usage, "resolve needs --category");
    if (resolve && (note == NULL || *note == '\0'))
        return cli_bad_usage("alerts", usage, "resolve needs --note");
    if (category != NULL && !resolve)
        return cli_bad_usage("alerts", usage, "--category is for resolve");

    char err[1024], origin[300];
    cli_origin(origin, sizeof origin);
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil alerts: %s\n", err);
        return 1;
    }
    /* Attributable (21 CFR 11.10(e)): the actor must be someone the
     * directory knows, or the trail would name nobody. */
    const char *pr[] = {as};
    PGresult *r = pg_query(conn, "SELECT active FROM researchers WHERE researcher_id = $1", 1,
                           pr, err, sizeof err);
    if (r == NULL || PQntuples(r) != 1 || strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        fprintf(stderr, "vigil alerts: %s\n",
                r == NULL ? err
                : PQntuples(r) != 1 ? "--as names no researcher in the directory"
                                    : "--as names an inactive researcher");
        PQclear(r);
        PQfinish(conn);
        return r == NULL ? 1 : 2;
    }
    PQclear(r);
    if (resolve) {
        const char *p[] = {id, as, category, note, "cli", origin};
        r = pg_query(conn, "SELECT vigil_alert_resolve($1, $2, $3, $4, $5, $6)", 6, p, err,
                     sizeof err);
    } else {
        const char *p[] = {id, as, "cli", origin, note};
        r = pg_query(conn, "SELECT vigil_alert_ack($1, $2, $3, $4, $5)", 5, p, err, sizeof err);
    }
    int rc = 1;
    if (r == NULL) {
        fprintf(stderr, "vigil alerts: %s\n", err);
    } else {
        const char *answer = PQgetvalue(r, 0, 0);
        printf("%s %s: %s\n", sub, id, answer);
        rc = strcmp(answer, "acknowledged") == 0 || strcmp(answer, "resolved") == 0 ? 0 : 3;
        PQclear(r);
    }
    PQfinish(conn);
    return rc;
}
