/*
 * hl7_enrol: who on a hospital's feed is in a trial. A read-only table of
 * the active rows of hl7_enrolments (schemas/migrations/0030_hl7_enrolments.sql):
 *
 *   (facility, patient_id, assigning_authority) -> (study, site, subject pseudonym)
 *
 * facility is MSH-4 as sent, patient_id a PID-3 identifier (CX-1) and
 * assigning_authority its CX-4 ("" matches any authority). The listener
 * forwards only patients found here; everyone else is dropped and counted.
 *
 * Built whole (from PostgreSQL or by hand for tests) and then immutable, so
 * it is published as a snapshot (common/kit/snapshot.h) and swapped whole
 * on a reload.
 *
 * Thread-safety: hl7_enrol_find and _knows_facility may be called from any
 * number of threads once building is done (_add is for the builder only).
 */
#ifndef VIGIL_HL7_ENROL_H
#define VIGIL_HL7_ENROL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "observation.h"

struct hl7_enrolment {
    const char *facility;
    const char *patient_id;
    const char *authority; /* "" = any */
    char study_id[OBS_ID_MAX + 1];
    char site_id[OBS_ID_MAX + 1];
    char subject_id[OBS_ID_MAX + 1]; /* pseudonym */
};

struct hl7_enrol;

/* Returns an empty table, or NULL when out of memory. */
struct hl7_enrol *hl7_enrol_new(void);

/* Frees E. NULL is a no-op. */
void hl7_enrol_destroy(struct hl7_enrol *e);

/* Adds one enrolment (strings copied). Returns 0, or -1 with errstr when a
 * value is empty or too long (ids over OBS_ID_MAX) or out of memory. */
int hl7_enrol_add(struct hl7_enrol *e, const char *facility, const char *patient_id,
                  const char *authority, const char *study, const char *site,
                  const char *subject, char *errstr, size_t errstr_size);

/* Reads every active enrolment from CONN into a new table. Returns it, or
 * NULL with errstr ("could not read hl7_enrolments: ..."). Rows whose
 * values are unusable are skipped and counted in *SKIPPED (may be NULL). */
struct hl7_enrol *hl7_enrol_load(PGconn *conn, size_t *skipped, char *errstr,
                                 size_t errstr_size);

/* The enrolment of patient PATIENT_ID (assigning authority AUTHORITY, ""
 * if the message gives none) at FACILITY, or NULL. */
const struct hl7_enrolment *hl7_enrol_find(const struct hl7_enrol *e, const char *facility,
                                           const char *patient_id, const char *authority);

/* True if FACILITY has at least one enrolment (bounds metric labels). */
bool hl7_enrol_knows_facility(const struct hl7_enrol *e, const char *facility);

/* Number of enrolments. */
size_t hl7_enrol_count(const struct hl7_enrol *e);

#endif
