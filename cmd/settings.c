#include "settings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

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
