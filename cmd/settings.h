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

#include <stddef.h>

#include "config.h"

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

#endif
