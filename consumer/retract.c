/*
 * retract: the retraction policy (see retract.h).
 */
#include "retract.h"

#include <stdio.h>
#include <string.h>

#include "hash.h"

void retract_alert_id(const char *target, char *out, size_t outsz)
{
    uint64_t h1 = hash_str(target, hash_str("vigil-retraction", HASH_SEED));
    uint64_t h2 = hash_str(target, hash_str("vigil-retraction-2", 0x9e3779b97f4a7c15ull));
    snprintf(out, outsz, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static const char *why(enum obs_status s)
{
    return s == OBS_ENTERED_IN_ERROR ? "entered in error"
           : s == OBS_CANCELLED      ? "cancelled"
                                     : "amended";
}

static void make_retraction(const struct subject_alert *r, const struct observation *obs,
                            int64_t now_ms, struct alert *out)
{
    memset(out, 0, sizeof *out);
    retract_alert_id(r->alert_id, out->alert_id, sizeof out->alert_id);
    out->kind = ALERT_RETRACTION;
    snprintf(out->rule_id, sizeof out->rule_id, "%s", r->rule_id);
    out->rule_version = r->rule_version;
    out->severity = r->severity;
    snprintf(out->study_id, sizeof out->study_id, "%s", obs->study_id);
    snprintf(out->site_id, sizeof out->site_id, "%s", obs->site_id);
    snprintf(out->subject_id, sizeof out->subject_id, "%s", obs->subject_id);
    out->n_evidence = 1;
    struct alert_evidence *e = &out->evidence[0];
    snprintf(e->observation_id, sizeof e->observation_id, "%s", obs->observation_id);
    snprintf(e->loinc, sizeof e->loinc, "%s", obs->loinc);
    e->value = obs->has_value ? obs->value : 0;
    snprintf(e->unit, sizeof e->unit, "%s", obs->unit);
    e->effective_ms = obs->effective_ms;
    snprintf(out->message, sizeof out->message,
             "Withdrawn: alert %s (rule %s) no longer stands: result %s was %s", r->alert_id,
             r->rule_id, obs->observation_id, why(obs->status));
    out->observed_ms = obs->effective_ms;
    out->detected_ms = now_ms;
    snprintf(out->retracts_alert_id, sizeof out->retracts_alert_id, "%s", r->alert_id);
}

static bool cites(const struct subject_alert *r, const char *obs_id)
{
    for (int i = 0; i < r->nobs; i++)
        if (strcmp(r->obs_ids[i], obs_id) == 0)
            return true;
    return false;
}

static bool raised_again(const struct subject_alert *r, const struct alert *now, int nnow)
{
    for (int j = 0; j < nnow; j++)
        if (strcmp(now[j].alert_id, r->alert_id) == 0)
            return true;
    return false;
}

int retract_alerts(const struct subject_alert *raised, int nraised, const struct observation *obs,
                   const struct alert *now, int nnow, retract_still_fn still_stands, void *arg,
                   int64_t now_ms, struct alert *out, int max_out)
{
    if (obs->status == OBS_FINAL)
        return 0;
    int n = 0;
    for (int i = 0; i < nraised && n < max_out; i++) {
        const struct subject_alert *r = &raised[i];
        if (!cites(r, obs->observation_id) || raised_again(r, now, nnow) || still_stands(arg, r))
            continue;
        make_retraction(r, obs, now_ms, &out[n++]);
    }
    return n;
}
