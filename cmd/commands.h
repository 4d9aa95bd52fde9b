/*
 * The subcommands of the `vigil` binary. Each takes the arguments after the
 * subcommand name (argv[0] is the subcommand) and returns the process exit
 * status: 0 success, 1 failure, 2 bad usage.
 */
#ifndef VIGIL_COMMANDS_H
#define VIGIL_COMMANDS_H

#include <stdio.h>

int cmd_worker(int argc, char **argv);
int cmd_notifier(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_produce(int argc, char **argv);
int cmd_import(int argc, char **argv);
int cmd_mllp(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_rules(int argc, char **argv);
int cmd_dq(int argc, char **argv);
int cmd_alerts(int argc, char **argv);
/* vigil alerts list|show: ARGV[0] is "list" or "show" (cmd_alerts_view.c). */
int cmd_alerts_view(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_users(int argc, char **argv);
int cmd_directory(int argc, char **argv);
int cmd_version(int argc, char **argv);

/* Prints "vigil CMD: MESSAGE" on one line, then usage(stderr); returns 2.
 * Every subcommand reports unknown flags and missing arguments this way. */
int cli_bad_usage(const char *cmd, void (*usage)(FILE *), const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For getopt_long loops run with opterr = 0: reports the option getopt
 * rejected (argv[optind - 1], or optopt for a short one) through
 * cli_bad_usage. Returns 2. */
int cli_bad_option(const char *cmd, void (*usage)(FILE *), char **argv);

#endif
