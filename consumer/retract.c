/*
 * retract: retraction alerts and the ids of withdrawal and reinstatement
 * (see retract.h).
 */
#include "retract.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hash.h"

void retract_alert_id(const char *target, char *out, size_t outsz)
{
    uint64_t h1 = hash_str(target, hash_str("vigil-retraction", HASH_SEED));
    uint64_t h2 = hash_str(target, hash_str("vigil-retraction-2", 0x9e3779b97f4a7c15ull));
    snprintf(out, outsz, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

void retract_reinstated_id(const char *withdrawn, char *out, size_t outsz)
{
    uint64_t h1 = hash_str(withdrawn, hash_str("vigil-reinstated", HASH_SEED));
    uint64_t h2 = hash_str(withdrawn, hash_str("vigil-reinstated-2", 0x9e3779b97f4a7c15ull));
    snprintf(out, outsz, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static void date_of(int64_t ms, char out[16])
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 16, "?");
}

/* Why CAUSE takes the alert back, as the end of a sentence. */
static void why(const struct observation *cause, const char *finding, char *out, size_t outsz)
{
    switch (cause->status) {
    case OBS_ENTERED_IN_ERROR:
        snprintf(out, outsz, "was entered in error");
        return;
    case OBS_CANCELLED:
        snprintf(out, outsz, "was cancelled");
        return;
    case OBS_AMENDED:
    case OBS_CORRECTED:
        if (finding == NULL) {
            snprintf(out, outsz, "was amended");
            return;
        }
        break;
    case OBS_FINAL:
        break;
    }
    if (finding != NULL) {
        snprintf(out, outsz, "was replaced by a version that is not analysed (%s)", finding);
        return;
    }
    char date[16];
    date_of(cause->effective_ms, date);
    snprintf(out, outsz, "(%s, dated %s) arrived and changes the verdict", cause->loinc, date);
}

void retract_make(const struct subject_alert *r, const struct observation *obs, const char *finding,
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
    char reason[160];
    why(obs, finding, reason, sizeof reason);
    snprintf(out->message, sizeof out->message,
             "Withdrawn: alert %s (rule %s) no longer stands: result %s %s", r->alert_id,
             r->rule_id, obs->observation_id, reason);
    out->observed_ms = obs->effective_ms;
    out->detected_ms = now_ms;
    snprintf(out->retracts_alert_id, sizeof out->retracts_alert_id, "%s", r->alert_id);
}
