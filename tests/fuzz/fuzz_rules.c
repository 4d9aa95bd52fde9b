/*
 * libFuzzer target for the rules YAML: rules_parse() on arbitrary bytes
 * must return a set or NULL with a message, never crash, hang or leak.
 * A set that parses is also queried (ids, alert room) so the accessors
 * see every shape the validator lets through.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[2048];
    err[0] = '\0';
    struct rules *r = rules_parse((const char *)data, size, "fuzz.yaml", err, sizeof err);
    if (r == NULL) {
        if (err[0] == '\0')
            abort(); /* every refusal says why */
        return 0;
    }
    int n = rules_count(r);
    if (n < 0 || n > RULES_MAX)
        abort();
    for (int i = 0; i < n; i++)
        if (rules_id(r, i) == NULL || rules_id(r, i)[0] == '\0')
            abort();
    if (rules_max_alerts(r) < 0)
        abort();
    rules_destroy(r);
    return 0;
}
