#include "settings.h"

#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "sigwatch.h"

void cli_settings_init(struct cli_settings *s)
{
    s->n = 0;
    s->config_file = getenv("VIGIL_CONFIG");
}

int cli_settings_add(struct cli_settings *s, const char *key, const char *value)
{
    if (s->n >= CLI_SETTINGS_MAX)
        return -1;
    s->key[s->n] = key;
    s->value[s->n] = value;
    s->n++;
    return 0;
}

int cli_settings_add_pair(struct cli_settings *s, const char *prefix, const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL || eq == arg || s->n >= CLI_SETTINGS_MAX)
        return -1;
    snprintf(s->keybuf[s->n], sizeof s->keybuf[s->n], "%s%.*s", prefix, (int)(eq - arg), arg);
    return cli_settings_add(s, s->keybuf[s->n], eq + 1);
}

static bool has_item(const struct config_item *items, const char *key)
{
    for (const struct config_item *it = items; it->key != NULL; it++)
        if (strcmp(it->key, key) == 0)
            return true;
    return false;
}

struct config *cli_settings_load(const struct cli_settings *s, const struct config_item *items,
                                 char *errstr, size_t errstr_size)
{
    struct config *cfg = config_new(items);
    if (cfg == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (s->config_file != NULL && *s->config_file != '\0' &&
        config_load_file(cfg, s->config_file, errstr, errstr_size) != 0)
        goto err;
    if (config_load_env(cfg, errstr, errstr_size) != 0)
        goto err;
    for (int i = 0; i < s->n; i++)
        if (config_set(cfg, s->key[i], s->value[i], errstr, errstr_size) != 0)
            goto err;
    if (has_item(items, "log_level")) {
        const char *v = config_get(cfg, "log_level");
        int level = v ? log_level_parse(v) : -1;
        if (level < 0) {
            snprintf(errstr, errstr_size,
                     "log_level must be debug, info, warn or error, not '%s'", v ? v : "");
            goto err;
        }
        log_set_level((enum log_level)level);
    }
    return cfg;
err:
    config_destroy(cfg);
    return NULL;
}

/* ---- flags ---------------------------------------------------------------- */

enum { ID_CONFIG = -100, ID_KAFKA, ID_SET, ID_LOG_LEVEL, ID_HELP };

static const struct cli_flag common_flags[] = {
    {"config", 'c', NULL, ID_CONFIG, true},   {"set", 's', NULL, ID_SET, true},
    {"log-level", 0, NULL, ID_LOG_LEVEL, true}, {"help", 'h', NULL, ID_HELP, false},
    {NULL, 'X', NULL, ID_KAFKA, true},        {0},
};

#define OPTS_MAX 64

/* The getopt tables for FLAGS plus the common flags: a long option's val
 * is the index into the merged flag list (+ 256, above every letter). */
struct optset {
    struct option longs[OPTS_MAX + 1];
    char shorts[2 * OPTS_MAX + 2];
    const struct cli_flag *flag[OPTS_MAX];
    int n;
};

static bool letter_taken(const struct cli_flag *flags, int letter)
{
    for (const struct cli_flag *f = flags; f->name != NULL || f->letter != 0; f++)
        if (f->letter == letter)
            return true;
    return false;
}

static void optset_add(struct optset *o, const struct cli_flag *f, bool letter_ok)
{
    if (o->n >= OPTS_MAX)
        return;
    int i = o->n++;
    o->flag[i] = f;
    if (f->name != NULL) {
        size_t k = 0;
        while (o->longs[k].name != NULL)
            k++;
        o->longs[k] = (struct option){f->name, f->arg ? required_argument : no_argument, NULL,
                                      256 + i};
    }
    if (f->letter != 0 && letter_ok) {
        size_t len = strlen(o->shorts);
        o->shorts[len++] = (char)f->letter;
        if (f->arg)
            o->shorts[len++] = ':';
        o->shorts[len] = '\0';
    }
}

static void optset_build(struct optset *o, const struct cli_flag *flags)
{
    memset(o, 0, sizeof *o);
    o->shorts[0] = '\0';
    for (const struct cli_flag *f = flags; f->name != NULL || f->letter != 0; f++)
        optset_add(o, f, true);
    for (const struct cli_flag *f = common_flags; f->name != NULL || f->letter != 0; f++)
        optset_add(o, f, !letter_taken(flags, f->letter));
}

static const struct cli_flag *optset_find(const struct optset *o, int c)
{
    if (c >= 256 && c - 256 < o->n)
        return o->flag[c - 256];
    for (int i = 0; i < o->n; i++)
        if (o->flag[i]->letter == c)
            return o->flag[i];
    return NULL;
}

void cli_usage_common(FILE *out)
{
    fputs("  -c, --config FILE      YAML settings file (also VIGIL_CONFIG)\n"
          "  -s, --set KEY=VALUE    any setting below by its key\n"
          "  -X PROP=VALUE          any librdkafka property\n"
          "      --log-level LEVEL  debug, info, warn, error\n"
          "  -h, --help             this help\n\n",
          out);
}

void cli_usage_role_exit(FILE *out, const char *what)
{
    fprintf(out,
            "exit status after SIGTERM/SIGINT: 0 everything taken was finished and\n"
            "committed; 3 some %s were left uncommitted for the partition's next\n"
            "owner (the log names each partition and offset); 4 the grace ran out\n"
            "before the stop finished (same log lines). 1: could not start.\n\n",
            what);
}

int cli_settings_next(struct cli_settings *s, const char *cmd, void (*usage)(FILE *),
                      const struct cli_flag *flags, int argc, char **argv, const char **arg,
                      int *next, int *status)
{
    struct optset o;
    optset_build(&o, flags);
    opterr = 0;
    *arg = NULL;
    for (;;) {
        int c = getopt_long(argc, argv, o.shorts, o.longs, NULL);
        if (c == -1) {
            *next = optind;
            return 0;
        }
        const struct cli_flag *f = c == '?' || c == ':' ? NULL : optset_find(&o, c);
        if (f == NULL) {
            /* A long flag that lacks its argument (or has one it does not
             * take) leaves its table value in optopt, an index here, not
             * a letter: name it by its letter, else as typed. */
            if (optopt >= 256) {
                const struct cli_flag *g = optset_find(&o, optopt);
                bool lettered = g != NULL && g->letter != 0 && optset_find(&o, g->letter) == g;
                optopt = lettered ? g->letter : 0;
            }
            *status = cli_bad_option(cmd, usage, argv);
            return -1;
        }
        switch (f->id) {
        case ID_HELP:
            usage(stdout);
            *status = 0;
            return -1;
        case ID_CONFIG:
            s->config_file = optarg;
            continue;
        case ID_LOG_LEVEL:
            if (cli_settings_add(s, "log_level", optarg) != 0)
                goto too_many;
            continue;
        case ID_SET:
        case ID_KAFKA:
            if (cli_settings_add_pair(s, f->id == ID_KAFKA ? "kafka." : "", optarg) != 0) {
                *status = cli_bad_usage(cmd, usage, "%s wants %s=VALUE, not '%s'",
                                        f->id == ID_KAFKA ? "-X" : "--set",
                                        f->id == ID_KAFKA ? "PROP" : "KEY", optarg);
                return -1;
            }
            continue;
        default:
            break;
        }
        if (f->key == NULL) {
            *arg = f->arg ? optarg : NULL;
            return f->id;
        }
        if (cli_settings_add(s, f->key, optarg) != 0)
            goto too_many;
    }
too_many:
    *status = cli_bad_usage(cmd, usage, "too many options");
    return -1;
}

int cli_group_config(const struct config *cfg, struct group_config *c, char *errstr,
                     size_t errstr_size)
{
    long window, stall_s, max_record;
    if (config_get_long(cfg, "max_inflight_per_partition", 16, 1000000, &window, errstr,
                        errstr_size) != 0 ||
        config_get_long(cfg, "stall_seconds", 0, 7 * 86400, &stall_s, errstr, errstr_size) != 0 ||
        config_get_long(cfg, "max_record_bytes", 1048576, CLI_MAX_RECORD_BYTES, &max_record,
                        errstr, errstr_size) != 0)
        return -1;
    *c = (struct group_config){
        .cfg = cfg,
        .bootstrap = config_get(cfg, "bootstrap"),
        .group = config_get(cfg, "group"),
        .topic = config_get(cfg, "topic"),
        .assignor = config_get(cfg, "assignor"),
        .inflight_per_partition = (size_t)window,
        .stall_ms = (int)stall_s * 1000,
        .max_record_bytes = (size_t)max_record,
    };
    return 0;
}

int cli_deadletter_config(const struct config *cfg, const struct group_config *consumer,
                          const char *component, struct deadletter_config *dc, char *errstr,
                          size_t errstr_size)
{
    long truncate;
    enum deadletter_policy policy;
    if (config_get_long(cfg, "dlq_truncate_bytes", 1, 262144, &truncate, errstr, errstr_size) !=
        0)
        return -1;
    if (deadletter_policy_parse(config_get(cfg, "dlq_policy"), &policy) != 0) {
        snprintf(errstr, errstr_size, "dlq_policy must be skip or stall, not '%s'",
                 config_get(cfg, "dlq_policy"));
        return -1;
    }
    *dc = (struct deadletter_config){
        .topic = config_get(cfg, "dlq_topic"),
        .source_topic = consumer->topic,
        .group = consumer->group,
        .conninfo = config_get(cfg, "pg_conninfo"),
        .component = component,
        .truncate_bytes = (size_t)truncate,
        .policy = policy,
    };
    return 0;
}

int cli_settings_parse(struct cli_settings *s, const char *cmd, void (*usage)(FILE *),
                       const struct cli_flag *flags, int argc, char **argv, int *status)
{
    cli_settings_init(s);
    const char *arg;
    int next;
    if (cli_settings_next(s, cmd, usage, flags, argc, argv, &arg, &next, status) != 0)
        return -1;
    if (next < argc) {
        *status = cli_bad_usage(cmd, usage, "unexpected argument '%s'", argv[next]);
        return -1;
    }
    return 0;
}

/* ---- long-running roles ---------------------------------------------------- */

int cli_fail(const char *cmd, const char *err)
{
    fprintf(stderr, "vigil %s: %s\n", cmd, err);
    log_msg(LOG_ERROR, cmd, "%s", err);
    return 1;
}

int cli_serve(const char *cmd, cli_role_fn run, const void *opt)
{
    char err[2048];
    atomic_bool reload = false; /* set by the signal thread until sigwatch_stop */
    struct ctx *stop = ctx_new(NULL);
    struct sigwatch *sw = stop != NULL ? sigwatch_start(stop, &reload) : NULL;
    int rc;
    if (sw == NULL)
        rc = cli_fail(cmd, "could not start the signal thread");
    else if ((rc = run(opt, stop, &reload, err, sizeof err)) < 0)
        rc = cli_fail(cmd, err);
    sigwatch_stop(sw);
    ctx_destroy(stop);
    return rc;
}

void cli_origin(char *out, size_t outsz)
{
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    struct passwd *pw = getpwuid(getuid());
    const char *user = pw != NULL ? pw->pw_name : NULL;
    snprintf(out, outsz, "%s@%s", user != NULL ? user : "?", host);
}

PGconn *cli_pg_connect(const char *conninfo_flag, char *errstr, size_t errstr_size)
{
    char *env = NULL;
    const char *conninfo = conninfo_flag;
    if (conninfo == NULL) {
        if (config_env_or_file("VIGIL_PG_CONNINFO", &env, errstr, errstr_size) != 0)
            return NULL;
        conninfo = env != NULL ? env : "";
    }
    PGconn *c = pg_connect(conninfo, errstr, errstr_size);
    free(env);
    return c;
}
