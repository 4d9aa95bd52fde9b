/*
 * observation: the in-memory form of vigil.Observation (schemas/observation.avsc),
 * modelled on FHIR Observation. Fixed-size fields: a decoded observation owns
 * no heap memory, so it can be copied, queued and freed as one block, and an
 * over-long field is a validation error at the boundary, not an allocation.
 *
 * Times are milliseconds since the Unix epoch, UTC (Avro timestamp-millis).
 */
#ifndef VIGIL_OBSERVATION_H
#define VIGIL_OBSERVATION_H

#include <stdbool.h>
#include <stdint.h>

#define OBS_ID_MAX 64     /* observation, study, site, subject ids (bytes) */
#define OBS_LOINC_MAX 16  /* LOINC code, e.g. "2823-3" */
#define OBS_UNIT_MAX 32   /* UCUM unit, e.g. "mmol/L" */
#define OBS_VISIT_MAX 64

/* FHIR ObservationStatus values vigil accepts; the Avro enum symbols use
 * '_' where FHIR uses '-' (entered-in-error). Order matches the schema. */
enum obs_status {
    OBS_FINAL = 0,
    OBS_AMENDED = 1,
    OBS_CORRECTED = 2,
    OBS_CANCELLED = 3,
    OBS_ENTERED_IN_ERROR = 4,
};

struct observation {
    char observation_id[OBS_ID_MAX + 1];
    char study_id[OBS_ID_MAX + 1];
    char site_id[OBS_ID_MAX + 1];
    char subject_id[OBS_ID_MAX + 1]; /* pseudonym; mask before logging */
    char loinc[OBS_LOINC_MAX + 1];
    bool has_value;
    double value;
    char unit[OBS_UNIT_MAX + 1];
    bool has_ref_low;
    double ref_low;
    bool has_ref_high;
    double ref_high;
    int64_t effective_ms; /* when the sample was taken (event time) */
    int64_t issued_ms;    /* when the result was released by the lab */
    enum obs_status status;
    char visit[OBS_VISIT_MAX + 1]; /* "" when absent */
};

/* Returns the FHIR spelling of status ("entered-in-error"). Cannot fail. */
const char *obs_status_name(enum obs_status status);

/* Parses a FHIR or Avro status spelling; returns -1 if unknown. */
int obs_status_parse(const char *s);

#endif
