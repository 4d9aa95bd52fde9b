/*
 * libFuzzer target for the configuration file: config_load_file() reads a
 * path, so each input is written to one fixed per-process file under /tmp
 * and loaded into a fresh config with a small item table (a secret among
 * them). Whatever loads must be readable back through the getters.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct config_item items[] = {
    {"bootstrap", "VIGILF_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"threads", "VIGILF_THREADS", "2", "analysis threads", false},
    {"ratio", "VIGILF_RATIO", "0.5", "a ratio", false},
    {"pg_conninfo", "VIGILF_PG_CONNINFO", NULL, "PostgreSQL conninfo", true},
    {NULL, NULL, NULL, NULL, false},
};

static char path[64];

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(path, sizeof path, "/tmp/vigil-fuzz-config-%ld.yaml", (long)getpid());
    atexit(remove_file);
    return 0;
}

static void count_prop(void *arg, const char *name, const char *value)
{
    if (name == NULL || value == NULL)
        abort();
    (*(int *)arg)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        abort();
    if (size > 0 && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);

    struct config *c = config_new(items);
    if (c == NULL)
        abort();
    char err[512];
    err[0] = '\0';
    if (config_load_file(c, path, err, sizeof err) != 0 && err[0] == '\0')
        abort(); /* every failure says why */
    long l;
    double d;
    (void)config_get(c, "bootstrap");
    (void)config_get(c, "pg_conninfo");
    (void)config_get_long(c, "threads", 1, 64, &l, err, sizeof err);
    (void)config_get_double(c, "ratio", 0, 1, &d, err, sizeof err);
    int props = 0;
    config_kafka_foreach(c, count_prop, &props);
    config_destroy(c);
    return 0;
}
