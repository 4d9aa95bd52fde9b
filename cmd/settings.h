/*
 * settings: what every long-running subcommand does with its settings
 * flags. getopt loops collect them first (flags must win over the YAML
 * file and the environment, which are read after the flags are parsed),
 * then cli_settings_load builds the config in precedence order and applies
 * log_level.
 *
 * Owned by the subcommand's stack frame; values point into argv.
 */
#ifndef VIGIL_CMD_SETTINGS_H
#define VIGIL_CMD_SETTINGS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "ctx.h"
#include "deadletter.h"
#include "group.h"
#include "pg.h"

#define CLI_SETTINGS_MAX 64

struct cli_settings {
    const char *config_file; /* --config, else $VIGIL_CONFIG, else NULL */
    int n;
    const char *key[CLI_SETTINGS_MAX];
    const char *value[CLI_SETTINGS_MAX];
    char keybuf[CLI_SETTINGS_MAX][256];
};

/* Empties S; config_file from $VIGIL_CONFIG. Cannot fail. */
void cli_settings_init(struct cli_settings *s);

/* Records setting KEY (a static string) = VALUE (borrowed). Returns 0, or
 * -1 when CLI_SETTINGS_MAX flags were already given. */
int cli_settings_add(struct cli_settings *s, const char *key, const char *value);

/* Records "NAME=VALUE" given to -X (PREFIX "kafka.") or -s (PREFIX "").
 * Returns 0, or -1 if ARG has no '=' or an empty name, or too many flags. */
int cli_settings_add_pair(struct cli_settings *s, const char *prefix, const char *arg);

/* Returns a config for ITEMS with, in rising precedence, the defaults, the
 * YAML file, the environment and the recorded flags, and applies
 * log_level (if ITEMS has it). NULL with errstr filled on any error. The
 * caller owns the result. */
struct config *cli_settings_load(const struct cli_settings *s, const struct config_item *items,
                                 char *errstr, size_t errstr_size);

/* One flag of a subcommand. KEY set: the flag sets that setting (its
 * argument is the value). KEY NULL: the flag is the subcommand's own and
 * cli_settings_next returns ID for it (ID > 0; ARG says whether it takes
 * an argument). */
struct cli_flag {
    const char *name; /* long name, without "--" */
    int letter;       /* short form, 0 for none */
    const char *key;
    int id;
    bool arg;
};

/* Parses ARGV (ARGV[0] is the subcommand) for subcommand CMD. Every
 * subcommand takes -c/--config FILE, -X PROP=VALUE (a librdkafka
 * property), --set KEY=VALUE (-s too when FLAGS does not use 's'),
 * --log-level LEVEL and -h/--help; FLAGS (ended by a zero entry) adds its
 * own. Settings flags are recorded in S. Returns, one call after another:
 * the ID of the next subcommand-own flag (its argument in *ARG, or NULL),
 * 0 when the flags are over (the first positional argument is then
 * ARGV[*NEXT]), or -1 when the subcommand must exit with *STATUS: 0 after
 * --help (USAGE printed on stdout), 2 after bad usage (reported on stderr
 * with USAGE). Not thread-safe (getopt). */
int cli_settings_next(struct cli_settings *s, const char *cmd, void (*usage)(FILE *),
                      const struct cli_flag *flags, int argc, char **argv, const char **arg,
                      int *next, int *status);

/* For subcommands whose every flag is a setting and that take no
 * arguments (the long-running roles): initialises S and parses ARGV into
 * it. Returns 0 to go on, or -1 when the subcommand must exit with
 * *STATUS (after --help, or bad usage reported). */
int cli_settings_parse(struct cli_settings *s, const char *cmd, void (*usage)(FILE *),
                       const struct cli_flag *flags, int argc, char **argv, int *status);

/* The flags of a role that consumes a topic in a consumer group. */
#define CLI_CONSUMER_FLAGS                                                                      \
    {"bootstrap", 'b', "bootstrap", 0, true}, {"group", 'g', "group", 0, true},                 \
        {"topic", 't', "topic", 0, true}, {"grace", 0, "grace", 0, true},                      \
        {"http", 0, "http", 0, true}, {"pg", 0, "pg_conninfo", 0, true},                       \
        {"assignor", 0, "assignor", 0, true}

/* Prints the help lines of the flags every subcommand takes (see
 * cli_settings_next), ending with a blank line. */
void cli_usage_common(FILE *out);

/* Prints the exit statuses of a role on the consumer-group engine, WHAT
 * naming its messages ("messages", "alerts"), ending with a blank line. */
void cli_usage_role_exit(FILE *out, const char *what);

/* A long-running role (worker, notifier, console...): RUN serves until STOP
 * is cancelled; RELOAD is set on SIGHUP. Returns 0 on a clean stop, a
 * positive exit status for a stop that left work behind (group.h's
 * GROUP_EXIT_*), or -1 with errstr when it could not start or had to
 * stop. */
typedef int (*cli_role_fn)(const void *opt, struct ctx *stop, atomic_bool *reload, char *errstr,
                           size_t errstr_size);

/* Defines NAME, a cli_role_fn that calls ROLE_RUN with its typed options
 * (one line per subcommand instead of an adapter function each). */
#define CLI_ROLE(name, role_run)                                                                \
    static int name(const void *opt, struct ctx *stop, atomic_bool *reload, char *errstr,      \
                    size_t errstr_size)                                                        \
    {                                                                                          \
        return role_run(opt, stop, reload, errstr, errstr_size);                               \
    }

/* Runs RUN(OPT) with SIGTERM/SIGINT cancelling its stop context and SIGHUP
 * setting its reload flag; a failure is printed as "vigil CMD: ..." on
 * stderr and logged. Returns the process exit status: RUN's own status
 * (0, or GROUP_EXIT_UNFINISHED), or 1 on failure. */
int cli_serve(const char *cmd, cli_role_fn run, const void *opt);

/* The largest max_record_bytes accepted: the producer's message.max.bytes
 * is set a little above it and librdkafka takes at most 1,000,000,000. */
#define CLI_MAX_RECORD_BYTES 999000000L

/* Fills C with the consumer-group settings of CFG (keys bootstrap, group,
 * topic, assignor, max_inflight_per_partition, stall_seconds and
 * max_record_bytes, which every consuming role's items have); CFG stays
 * CFG's, borrowed by C. Returns 0, or -1 with errstr. */
int cli_group_config(const struct config *cfg, struct group_config *c, char *errstr,
                     size_t errstr_size);

/* Fills DC with the dead-letter settings of CFG (keys dlq_topic,
 * dlq_truncate_bytes, dlq_policy, pg_conninfo) for records of CONSUMER's
 * topic and group, logging as COMPONENT. CFG stays borrowed by DC.
 * Returns 0, or -1 with errstr. */
int cli_deadletter_config(const struct config *cfg, const struct group_config *consumer,
                          const char *component, struct deadletter_config *dc, char *errstr,
                          size_t errstr_size);

/* Connects to PostgreSQL for a one-shot command: CONNINFO_FLAG (--conninfo)
 * if not NULL, else VIGIL_PG_CONNINFO(_FILE), else libpq's PG* variables.
 * NULL with errstr on failure. */
PGconn *cli_pg_connect(const char *conninfo_flag, char *errstr, size_t errstr_size);

/* "USER@HOST" of whoever runs this command into OUT (OUTSZ bytes): the
 * OS account, not $USER (the environment is the caller's to set). Used
 * for audit entries of command-line changes. Cannot fail ("?" for what is
 * unknown). */
void cli_origin(char *out, size_t outsz);

/* Reports ERR as subcommand CMD's failure (stderr and the log). Returns 1. */
int cli_fail(const char *cmd, const char *err);

#endif
