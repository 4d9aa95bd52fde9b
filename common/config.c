#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Secrets and property values are short; a larger file is a mistake. */
#define CONFIG_FILE_VALUE_MAX 65536
#define CONFIG_KAFKA_MAX 128

struct kv {
    char *name;
    char *value;
};

struct config {
    const struct config_item *items;
    size_t nitems;
    char **values; /* one per item; NULL = unset */
    struct kv kafka[CONFIG_KAFKA_MAX];
    size_t nkafka;
};

struct config *config_new(const struct config_item *items)
{
    struct config *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->items = items;
    while (items[c->nitems].key != NULL)
        c->nitems++;
    c->values = calloc(c->nitems + 1, sizeof *c->values);
    if (c->values == NULL)
        goto err;
    for (size_t i = 0; i < c->nitems; i++) {
        if (items[i].def != NULL) {
            c->values[i] = strdup(items[i].def);
            if (c->values[i] == NULL)
                goto err;
        }
    }
    return c;
err:
    config_destroy(c);
    return NULL;
}

void config_destroy(struct config *c)
{
    if (c == NULL)
        return;
    if (c->values != NULL)
        for (size_t i = 0; i < c->nitems; i++)
            free(c->values[i]);
    free(c->values);
    for (size_t i = 0; i < c->nkafka; i++) {
        free(c->kafka[i].name);
        free(c->kafka[i].value);
    }
    free(c);
}

static long item_index(const struct config *c, const char *key)
{
    for (size_t i = 0; i < c->nitems; i++)
        if (strcmp(c->items[i].key, key) == 0)
            return (long)i;
    return -1;
}

static int set_kafka(struct config *c, const char *name, const char *value, char *errstr,
                     size_t errsz)
{
    if (*name == '\0') {
        snprintf(errstr, errsz, "empty Kafka property name");
        return -1;
    }
    for (size_t i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].name, name) == 0) {
            char *v = strdup(value);
            if (v == NULL)
                goto oom;
            free(c->kafka[i].value);
            c->kafka[i].value = v;
            return 0;
        }
    }
    if (c->nkafka == CONFIG_KAFKA_MAX) {
        snprintf(errstr, errsz, "too many Kafka properties (at most %d)", CONFIG_KAFKA_MAX);
        return -1;
    }
    char *n = strdup(name);
    char *v = strdup(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        goto oom;
    }
    c->kafka[c->nkafka].name = n;
    c->kafka[c->nkafka].value = v;
    c->nkafka++;
    return 0;
oom:
    snprintf(errstr, errsz, "out of memory");
    return -1;
}

int config_set(struct config *c, const char *key, const char *value, char *errstr,
               size_t errstr_size)
{
    if (strncmp(key, "kafka.", 6) == 0)
        return set_kafka(c, key + 6, value, errstr, errstr_size);
    long i = item_index(c, key);
    if (i < 0) {
        snprintf(errstr, errstr_size, "unknown setting '%s'", key);
        return -1;
    }
    char *v = strdup(value);
    if (v == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    free(c->values[i]);
    c->values[i] = v;
    return 0;
}

/* Reads a secret or value file: at most CONFIG_FILE_VALUE_MAX bytes, one
 * trailing newline (and CR) removed. Returns a malloc'd string or NULL. */
static char *read_value_file(const char *path, char *errstr, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errstr, errsz, "could not open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_FILE_VALUE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(errstr, errsz, "out of memory");
        return NULL;
    }
    size_t n = fread(buf, 1, CONFIG_FILE_VALUE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        snprintf(errstr, errsz, "could not read %s", path);
        free(buf);
        return NULL;
    }
    if (n > CONFIG_FILE_VALUE_MAX) {
        snprintf(errstr, errsz, "%s is larger than %d bytes", path, CONFIG_FILE_VALUE_MAX);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n) {
        snprintf(errstr, errsz, "%s contains a NUL byte", path);
        free(buf);
        return NULL;
    }
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return buf;
}

/* Applies the VIGIL_KAFKA_PROP_<NAME> variables: '_' in NAME reads as '.',
 * '__' as '_', letters are lowered. A NAME whose property ends in ".file"
 * (VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE) names a file holding the value of the
 * property without that suffix (sasl.password), read like VAR_FILE. No
 * librdkafka property ends in ".file" (the file-valued ones end in
 * ".location", ".path" or ".keytab"), so the suffix cannot hide a real one.
 * FILES selects the pass: false applies the plain variables, true the file ones.
 * Errors name the variable and the file, never the value. */
static int load_kafka_env(struct config *c, bool files, char *errstr, size_t errsz)
{
    extern char **environ;
    static const char prefix[] = "VIGIL_KAFKA_PROP_";
    static const char fsuffix[] = ".file";
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *name = *e + sizeof prefix - 1;
        const char *eq = strchr(name, '=');
        if (eq == NULL)
            continue;
        char prop[256];
        size_t n = 0;
        for (const char *p = name; p < eq && n + 1 < sizeof prop; p++) {
            if (*p == '_' && p + 1 < eq && p[1] == '_') {
                prop[n++] = '_';
                p++;
            } else if (*p == '_') {
                prop[n++] = '.';
            } else {
                prop[n++] = (char)tolower((unsigned char)*p);
            }
        }
        prop[n] = '\0';
        size_t fl = sizeof fsuffix - 1;
        bool is_file = n > fl && strcmp(prop + n - fl, fsuffix) == 0;
        if (is_file != files)
            continue;
        if (!is_file) {
            if (set_kafka(c, prop, eq + 1, errstr, errsz) != 0)
                return -1;
            continue;
        }
        const char *path = eq + 1;
        if (*path == '\0') /* empty = unset, as for VAR_FILE */
            continue;
        prop[n - fl] = '\0';
        char rerr[512];
        char *v = read_value_file(path, rerr, sizeof rerr);
        if (v == NULL) {
            snprintf(errstr, errsz, "%.*s: %s", (int)(eq - *e), *e, rerr);
            return -1;
        }
        int rc = set_kafka(c, prop, v, errstr, errsz);
        free(v);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int config_env_or_file(const char *name, char **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    char fname[256];
    int len = snprintf(fname, sizeof fname, "%s_FILE", name);
    if (len < 0 || (size_t)len >= sizeof fname) {
        snprintf(errstr, errstr_size, "environment variable name %s is too long", name);
        return -1;
    }
    const char *path = getenv(fname);
    if (path != NULL && *path != '\0') {
        /* The reader's message names the path and the reason; the value
         * read is never part of an error. */
        char rerr[512];
        *out = read_value_file(path, rerr, sizeof rerr);
        if (*out == NULL) {
            snprintf(errstr, errstr_size, "%s: %s", fname, rerr);
            return -1;
        }
        return 0;
    }
    const char *v = getenv(name);
    if (v == NULL)
        return 0;
    *out = strdup(v);
    if (*out == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    return 0;
}

int config_load_env(struct config *c, char *errstr, size_t errstr_size)
{
    for (size_t i = 0; i < c->nitems; i++) {
        const char *env = c->items[i].env;
        if (env == NULL)
            continue;
        char *v = NULL;
        if (config_env_or_file(env, &v, errstr, errstr_size) != 0)
            return -1;
        if (v != NULL) {
            int rc = config_set(c, c->items[i].key, v, errstr, errstr_size);
            free(v);
            if (rc != 0)
                return -1;
        }
    }
    /* Two passes so that, as for VAR and VAR_FILE above, the file form
     * wins over the plain form whatever their order in environ. */
    for (int pass = 0; pass < 2; pass++)
        if (load_kafka_env(c, pass == 1, errstr, errstr_size) != 0)
            return -1;
    return 0;
}

static int yaml_fail(char *errstr, size_t errsz, const char *path, const yaml_mark_t *m,
                     const char *what)
{
    snprintf(errstr, errsz, "%s:%zu:%zu: %s", path, m->line + 1, m->column + 1, what);
    return -1;
}

int config_load_file(struct config *c, const char *path, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "could not open config file %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errstr, errstr_size, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "bad YAML");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) { /* empty file: nothing to set */
        rc = 0;
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE) {
        yaml_fail(errstr, errstr_size, path, &root->start_mark, "expected a mapping of settings");
        goto out;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            yaml_fail(errstr, errstr_size, path, &k->start_mark, "expected a setting name");
            goto out;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (strcmp(key, "kafka") == 0) {
            if (v->type != YAML_MAPPING_NODE) {
                yaml_fail(errstr, errstr_size, path, &v->start_mark,
                          "kafka: expected a mapping of librdkafka properties");
                goto out;
            }
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start;
                 q < v->data.mapping.pairs.top; q++) {
                yaml_node_t *kk = yaml_document_get_node(&doc, q->key);
                yaml_node_t *kv = yaml_document_get_node(&doc, q->value);
                if (kk->type != YAML_SCALAR_NODE || kv->type != YAML_SCALAR_NODE) {
                    yaml_fail(errstr, errstr_size, path, &kk->start_mark,
                              "kafka: expected property: value");
                    goto out;
                }
                char e[256];
                if (set_kafka(c, (const char *)kk->data.scalar.value,
                              (const char *)kv->data.scalar.value, e, sizeof e) != 0) {
                    yaml_fail(errstr, errstr_size, path, &kk->start_mark, e);
                    goto out;
                }
            }
            continue;
        }
        if (v->type != YAML_SCALAR_NODE) {
            yaml_fail(errstr, errstr_size, path, &v->start_mark, "expected a scalar value");
            goto out;
        }
        char e[256];
        if (config_set(c, key, (const char *)v->data.scalar.value, e, sizeof e) != 0) {
            yaml_fail(errstr, errstr_size, path, &k->start_mark, e);
            goto out;
        }
    }
    rc = 0;
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

const char *config_get(const struct config *c, const char *key)
{
    long i = item_index(c, key);
    assert(i >= 0 && "config_get: key not declared in the command's items");
    if (i < 0)
        return NULL;
    return c->values[i];
}

int config_get_long(const struct config *c, const char *key, long min, long max, long *out,
                    char *errstr, size_t errstr_size)
{
    const char *v = config_get(c, key);
    if (v == NULL) {
        snprintf(errstr, errstr_size, "%s is not set", key);
        return -1;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
        snprintf(errstr, errstr_size, "%s must be an integer from %ld to %ld, not '%s'", key, min,
                 max, v);
        return -1;
    }
    *out = n;
    return 0;
}

int config_get_double(const struct config *c, const char *key, double min, double max,
                      double *out, char *errstr, size_t errstr_size)
{
    const char *v = config_get(c, key);
    if (v == NULL) {
        snprintf(errstr, errstr_size, "%s is not set", key);
        return -1;
    }
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !isfinite(d) || d < min || d > max) {
        snprintf(errstr, errstr_size, "%s must be a number from %g to %g, not '%s'", key, min,
                 max, v);
        return -1;
    }
    *out = d;
    return 0;
}

void config_kafka_foreach(const struct config *c,
                          void (*fn)(void *arg, const char *name, const char *value), void *arg)
{
    for (size_t i = 0; i < c->nkafka; i++)
        fn(arg, c->kafka[i].name, c->kafka[i].value);
}

void config_print_help(const struct config_item *items, FILE *out)
{
    fprintf(out, "settings (YAML key / environment variable, default):\n");
    for (const struct config_item *it = items; it->key != NULL; it++) {
        fprintf(out, "  %-22s %-26s %s\n", it->key, it->env ? it->env : "",
                it->secret ? "(secret)" : (it->def ? it->def : "(unset)"));
        fprintf(out, "      %s\n", it->help);
    }
    fprintf(out, "  Any VAR above also reads its value from the file named by VAR_FILE.\n"
                 "  librdkafka properties: YAML `kafka: {prop: value}`, environment\n"
                 "  VIGIL_KAFKA_PROP_<PROP> ('_' for '.', '__' for '_'), or -X prop=value;\n"
                 "  VIGIL_KAFKA_PROP_<PROP>_FILE reads <PROP> from a file (and wins), e.g.\n"
                 "  VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE=/run/secrets/kafka-password.\n");
}
