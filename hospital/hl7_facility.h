/*
 * hl7_facility: the per-facility mapping of `vigil mllp` (YAML, validated
 * whole, hot-reloaded by the caller as one snapshot):
 *
 *   default_time_zone: Europe/London  # optional: for facilities without their own
 *   units:                            # optional: local unit spellings -> UCUM, all facilities
 *     "K/uL": "10*3/uL"
 *     "x10E9/L": "10*9/L"
 *   facilities:
 *     GENHOSP:                        # MSH-4 (its first component) as the facility sends it
 *       time_zone: Europe/Berlin      # for HL7 times without an offset (hl7_time.h)
 *       units: {"mval/l": "mmol/L"}   # this facility's own spellings (win over the shared ones)
 *       codes:                        # OBX-3 local codes -> LOINC
 *         - {code: "K", system: "99GH", loinc: "2823-3"}
 *         - {code: "PLT", loinc: "777-3", unit: "10*9/L"}   # unit: when OBX-6 is empty
 *
 * A code entry without `system` matches that code under any coding system.
 * Every LOINC code must be well formed (digits, '-', the Mod 10 check
 * digit); every unit at most OBS_UNIT_MAX bytes; every time zone known to
 * the system's tzdata; no facility, code (code + system) or unit listed
 * twice. Unknown keys are errors, so a misspelt key is not silently ignored.
 *
 * Units are not converted here: the listener forwards the (mapped) UCUM
 * unit and the worker's unit table (consumer/clean.c) normalises it, so
 * there is one unit table in vigil. This file is where a site declares
 * that its "K/uL" means UCUM 10*3/uL -- clean.c refuses to guess that.
 *
 * Thread-safety: immutable once loaded; any number of threads may read it.
 */
#ifndef VIGIL_HL7_FACILITY_H
#define VIGIL_HL7_FACILITY_H

#include <stddef.h>

#include "hl7_time.h"

struct hl7_facilities;
struct hl7_facility;

/* Loads and validates PATH. Returns the mapping (caller owns it), or NULL
 * with errstr "PATH:LINE: reason". */
struct hl7_facilities *hl7_facilities_load(const char *path, char *errstr, size_t errstr_size);

/* Parses TEXT (LEN bytes) as the YAML above; NAME is used in messages.
 * Same contract as hl7_facilities_load. */
struct hl7_facilities *hl7_facilities_parse(const char *text, size_t len, const char *name,
                                            char *errstr, size_t errstr_size);

/* An empty mapping: no facility, no default zone, no units. NULL when out
 * of memory. */
struct hl7_facilities *hl7_facilities_empty(void);

/* Frees F. NULL is a no-op. */
void hl7_facilities_destroy(struct hl7_facilities *f);

/* Number of facilities listed. */
size_t hl7_facilities_count(const struct hl7_facilities *f);

/* The facility named ID, or NULL if it is not listed. */
const struct hl7_facility *hl7_facilities_find(const struct hl7_facilities *f, const char *id);

/* The zone for times without an offset from facility FAC (may be NULL: not
 * listed): its own, else default_time_zone, else NULL (none configured). */
const struct hl7_tz *hl7_facilities_zone(const struct hl7_facilities *f,
                                         const struct hl7_facility *fac);

/* The LOINC code local code CODE under coding system SYSTEM ("" if none)
 * maps to for facility FAC, or NULL. *DEFAULT_UNIT gets the entry's unit
 * ("" if none). */
const char *hl7_facility_loinc(const struct hl7_facility *fac, const char *code,
                               const char *system, const char **default_unit);

/* The UCUM spelling of unit UNIT as sent by facility FAC (may be NULL):
 * the facility's own mapping, else the shared one, else UNIT itself. */
const char *hl7_facilities_unit(const struct hl7_facilities *f, const struct hl7_facility *fac,
                                const char *unit);

/* True if CODE is a well-formed LOINC code with a correct check digit. */
int hl7_loinc_valid(const char *code);

#endif
