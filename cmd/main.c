/*
 * vigil: one binary, one subcommand per role. Dispatch only; each command
 * lives in its own cmd_*.c and reads its own flags.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"worker", cmd_worker, "consume observations, analyse, store, raise alerts"},
    {"notifier", cmd_notifier, "send alerts to subscribed researchers by SMS and email"},
    {"console", cmd_console, "the researchers' web service: pages, /api/v1, acknowledgement links, inbound SMS"},
    {"produce", cmd_produce, "publish observations (NDJSON, CSV, FHIR, HL7 v2) or a synthetic trial"},
    {"import", cmd_import, "bulk import of a historical EDC export"},
    {"mllp", cmd_mllp, "HL7 v2 listener: ORU^R01 results over MLLP to observations"},
    {"migrate", cmd_migrate, "apply the PostgreSQL schema migrations"},
    {"rules", cmd_rules, "rules tools: `vigil rules check FILE`"},
    {"dq", cmd_dq, "data-quality report: `vigil dq report --study S`"},
    {"alerts", cmd_alerts, "list, show, acknowledge or resolve alerts: `vigil alerts list|show|ack|resolve`"},
    {"audit", cmd_audit, "check the alert audit trail's hash chain: `vigil audit verify`"},
    {"policy", cmd_policy, "escalation policies: `vigil policy show|set|check`"},
    {"directory", cmd_directory, "the study directory from CSV: `vigil directory import FILE`"},
    {"users", cmd_users, "console accounts: `vigil users create|reset|disable|grant|token`"},
    {"version", cmd_version, "print vigil's version and its libraries'"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil COMMAND [OPTIONS]\n\n"
                 "vigil watches clinical-trial observations on Kafka for safety signals.\n\n"
                 "commands:\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %-9s %s\n", c->name, c->summary);
    fprintf(out, "\n`vigil COMMAND --help` describes a command's options and environment.\n");
}

int cli_bad_usage(const char *cmd, void (*cmd_usage)(FILE *), const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vigil%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cmd_usage(stderr);
    return 2;
}

int cli_bad_option(const char *cmd, void (*cmd_usage)(FILE *), char **argv)
{
    if (optopt != 0)
        return cli_bad_usage(cmd, cmd_usage, "unknown or incomplete option '-%c'", optopt);
    return cli_bad_usage(cmd, cmd_usage, "unknown or incomplete option '%s'", argv[optind - 1]);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_bad_usage(NULL, usage, "missing command");
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        return cmd_version(1, &argv[1]);
    for (const struct command *c = commands; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c->run(argc - 1, argv + 1);
    if (name[0] == '-')
        return cli_bad_usage(NULL, usage, "unknown option '%s'", name);
    return cli_bad_usage(NULL, usage, "unknown command '%s'", name);
}
