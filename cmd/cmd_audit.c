/* vigil audit verify: check the alert audit trail's hash chain
 * (alerting/audit.h) and name the first bad row. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "commands.h"
#include "settings.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil audit verify [--conninfo STR]\n\n"
            "Recomputes the SHA-256 chain of alert_events (every page, delivery outcome,\n"
            "acknowledgement, escalation, resolution and retraction) and compares it with\n"
            "the stored hashes and the chain head. Prints\n"
            "  audit trail intact: N events, head HASH\n"
            "or the first bad event and what is wrong with it (edited, deleted, inserted,\n"
            "truncated). Keep the printed head hash somewhere else: a chain rewritten\n"
            "whole by a superuser is only caught against a head recorded before.\n\n"
            "options:\n"
            "  --conninfo STR   libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                   VIGIL_PG_CONNINFO, libpq's PG* variables)\n"
            "  -h, --help       print this help\n\n"
            "exit status: 0 intact, 1 broken (or the check failed), 2 bad usage\n");
}

enum { OPT_CONNINFO = 256 };

int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {{"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *conninfo = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c != OPT_CONNINFO)
            return cli_bad_option("audit", usage, argv);
        conninfo = optarg;
    }
    if (optind >= argc)
        return cli_bad_usage("audit", usage, "missing subcommand (verify)");
    if (strcmp(argv[optind], "verify") != 0)
        return cli_bad_usage("audit", usage, "unknown subcommand '%s'", argv[optind]);
    if (optind + 1 != argc)
        return cli_bad_usage("audit", usage, "unexpected argument '%s'", argv[optind + 1]);
    char err[1024];
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil audit: %s\n", err);
        return 1;
    }
    struct audit_result res;
    int rc = 1;
    if (audit_verify(conn, &res, err, sizeof err) != 0) {
        fprintf(stderr, "vigil audit: %s\n", err);
    } else if (res.bad_event != 0) {
        printf("audit trail BROKEN at event %" PRId64 ": %s (%" PRId64
               " events before it verified)\n",
               res.bad_event, res.problem, res.events);
    } else {
        printf("audit trail intact: %" PRId64 " events, head %s\n", res.events, res.head_hex);
        rc = 0;
    }
    PQfinish(conn);
    return rc;
}
