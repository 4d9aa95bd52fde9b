/*
 * alert: the in-memory form of vigil.Alert (schemas/alert.avsc). Like
 * struct observation it owns no heap memory.
 *
 * The alert id is deterministic: the same rule applied to the same
 * observation always yields the same id, so a replay never pages twice.
 */
#ifndef VIGIL_ALERT_H
#define VIGIL_ALERT_H

#include <stdint.h>

#include "observation.h"

#define ALERT_ID_MAX 64
#define ALERT_RULE_MAX 64
#define ALERT_MESSAGE_MAX 512
#define ALERT_EVIDENCE_MAX 4

enum alert_kind { ALERT_SIGNAL = 0, ALERT_RETRACTION = 1 };
enum alert_severity { SEV_INFO = 0, SEV_WARNING = 1, SEV_CRITICAL = 2 };

struct alert_evidence {
    char observation_id[OBS_ID_MAX + 1];
    char loinc[OBS_LOINC_MAX + 1];
    double value; /* normalised value */
    char unit[OBS_UNIT_MAX + 1];
    int64_t effective_ms;
};

struct alert {
    char alert_id[ALERT_ID_MAX + 1];
    enum alert_kind kind;
    char rule_id[ALERT_RULE_MAX + 1];
    int32_t rule_version;
    enum alert_severity severity;
    int32_t ctcae_grade; /* 0 when the rule is not a CTCAE grade */
    char study_id[OBS_ID_MAX + 1];
    char site_id[OBS_ID_MAX + 1];
    char subject_id[OBS_ID_MAX + 1];
    int n_evidence;
    struct alert_evidence evidence[ALERT_EVIDENCE_MAX];
    char message[ALERT_MESSAGE_MAX + 1]; /* no PHI beyond the pseudonym */
    int64_t observed_ms; /* effective time of the triggering observation */
    int64_t detected_ms;
    char retracts_alert_id[ALERT_ID_MAX + 1]; /* "" unless kind == RETRACTION */
};

/* Returns "info", "warning" or "critical". Cannot fail. */
const char *alert_severity_name(enum alert_severity s);

/* Parses a severity name; returns -1 if unknown. */
int alert_severity_parse(const char *s);

#endif
