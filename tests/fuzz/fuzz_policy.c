/*
 * libFuzzer target for escalation policy files (alerting/policy.c): YAML
 * or JSON from an operator today, from the console's API tomorrow.
 * policy_load_text() on arbitrary bytes must return policies that satisfy
 * the validator, or -1 with a message; never crash, hang or leak.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct policy pol[8];
    static char err[8192];
    err[0] = '\0';
    int n = policy_load_text("fuzz.yaml", (const char *)data, size, pol, 8, err, sizeof err);
    if (n < 0) {
        if (err[0] == '\0')
            abort(); /* every refusal says why */
        return 0;
    }
    for (int i = 0; i < n; i++) {
        const struct policy *p = &pol[i];
        if (p->study[0] == '\0' || p->ntiers < 0 || p->ntiers > POLICY_TIERS_MAX)
            abort();
        for (int t = 0; t < p->ntiers; t++)
            if (p->tiers[t].ntargets < 1 ||
                p->tiers[t].ack_deadline_s < POLICY_DEADLINE_MIN_S ||
                p->tiers[t].ack_deadline_s > POLICY_DEADLINE_MAX_S)
                abort(); /* the validator let an invalid tier through */
    }
    return 0;
}
