/*
 * libFuzzer target for directory files in YAML (alerting/directory_file.c):
 * what `vigil directory import` reads from an operator's spreadsheet
 * export. directory_file_parse_yaml() on arbitrary bytes must give records
 * whose required fields are set (and policies the validator accepted), or
 * -1 with a message naming a line; never crash, hang or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "directory_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char err[16384];
    struct directory_file *f = directory_file_new();
    if (f == NULL)
        return 0;
    int rc = directory_file_parse_yaml(f, (const char *)data, size, err, sizeof err);
    if (rc != 0) {
        if (strncmp(err, "line ", 5) != 0 && strcmp(err, "out of memory") != 0)
            abort(); /* every refusal names its line */
        directory_file_destroy(f);
        return 0;
    }
    for (int i = 0; i < directory_file_count(f); i++) {
        const struct directory_record *r = directory_file_record(f, i);
        if (r->line < 1)
            abort();
        switch (r->kind) {
        case DIRECTORY_STUDY:
            if (r->id == NULL || r->name == NULL)
                abort();
            break;
        case DIRECTORY_SITE:
            if (r->id == NULL || r->name == NULL || r->study == NULL)
                abort();
            break;
        case DIRECTORY_RESEARCHER:
            if (r->id == NULL || r->name == NULL)
                abort();
            break;
        case DIRECTORY_SUBSCRIPTION:
            if (r->id == NULL || r->study == NULL || r->min_severity == NULL ||
                r->channels == NULL || r->channels[0] != '{')
                abort();
            break;
        case DIRECTORY_POLICY:
            if (r->policy == NULL || r->policy->study[0] == '\0' ||
                r->policy->ntiers > POLICY_TIERS_MAX)
                abort(); /* the validator let an invalid policy through */
            break;
        default:
            abort();
        }
    }
    directory_file_destroy(f);
    return 0;
}
