/*
 * config: a command's settings from, lowest precedence first, built-in
 * defaults, an optional YAML file, the environment, and command-line flags.
 *
 * Each command declares its settings once in a table of struct config_item;
 * the same table drives lookup, validation of unknown keys and `--help`.
 *
 *   YAML file      key: value           (top-level mapping of scalars)
 *                  kafka: {prop: value} (librdkafka properties, passed through)
 *   environment    the item's env name, e.g. VIGIL_PG_CONNINFO;
 *                  NAME_FILE=/path reads the value from a file (Kubernetes
 *                  Secrets), trailing newline removed;
 *                  VIGIL_KAFKA_PROP_<NAME>=v sets librdkafka property <name>
 *                  with '_' read as '.' and '__' as '_'
 *                  (VIGIL_KAFKA_PROP_SECURITY_PROTOCOL=SSL)
 *   flags          config_set() from the command's getopt loop
 *
 * Secret items are never printed (config_describe shows "(set)").
 *
 * Thread-safety: build it in one thread; afterwards any number of threads
 * may read it concurrently. Not reloadable: settings that change at run time
 * (the rules) have their own snapshot.
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

struct config_item {
    const char *key;  /* YAML key and config_get name, e.g. "pg_conninfo" */
    const char *env;  /* environment variable, e.g. "VIGIL_PG_CONNINFO" */
    const char *def;  /* default value, or NULL for unset */
    const char *help; /* one line for --help */
    bool secret;      /* never printed */
};

struct config;

/* Returns a config for ITEMS (terminated by an item with key NULL; the table
 * must outlive the config), with defaults applied; NULL on allocation failure. */
struct config *config_new(const struct config_item *items);

/* Frees the config. NULL is a no-op. */
void config_destroy(struct config *c);

/* Sets KEY to VALUE (copied). KEY is an item's key or "kafka.<property>".
 * Returns 0, or -1 with errstr filled for an unknown key. */
int config_set(struct config *c, const char *key, const char *value, char *errstr,
               size_t errstr_size);

/* Reads the YAML file PATH. Returns 0, or -1 with errstr
 * ("PATH:LINE:COL: ...") and the config unchanged in its earlier values for
 * keys not yet read (values read before the error stay set). */
int config_load_file(struct config *c, const char *path, char *errstr, size_t errstr_size);

/* Applies the environment (each item's env and env_FILE, and
 * VIGIL_KAFKA_PROP_*). Returns 0, or -1 with errstr if a _FILE cannot be read. */
int config_load_env(struct config *c, char *errstr, size_t errstr_size);

/* Reads one setting outside a config table, as config_load_env reads an
 * item: the file named by $NAME_FILE (when set and non-empty; it wins, and
 * is read like every _FILE: bounded, one trailing newline removed), else
 * $NAME. For commands with a single setting that do not build a config
 * (vigil migrate's VIGIL_PG_CONNINFO).
 * Returns 0 with *out a malloc'd copy the caller frees, or NULL when neither
 * variable is set; -1 with *out NULL and errstr naming NAME_FILE, the path
 * and the reason (never the file's content). Not thread-safe against a
 * concurrent setenv (getenv). */
int config_env_or_file(const char *name, char **out, char *errstr, size_t errstr_size);

/* Returns KEY's value or NULL if unset. KEY must be an item's key (asserted). */
const char *config_get(const struct config *c, const char *key);

/* Parses KEY as an integer in [min, max] into *out. Returns 0, or -1 with
 * errstr naming the key, the value and the range. */
int config_get_long(const struct config *c, const char *key, long min, long max, long *out,
                    char *errstr, size_t errstr_size);

/* Parses KEY as a number in [min, max]. Same contract as config_get_long. */
int config_get_double(const struct config *c, const char *key, double min, double max,
                      double *out, char *errstr, size_t errstr_size);

/* Calls fn for each librdkafka property set, in the order set. */
void config_kafka_foreach(const struct config *c,
                          void (*fn)(void *arg, const char *name, const char *value), void *arg);

/* Prints the items as a --help table: env name, default, help. */
void config_print_help(const struct config_item *items, FILE *out);

#endif
