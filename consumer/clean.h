/*
 * clean: the worker's cleaning stage. Normalises an observation's value and
 * reference range to the canonical UCUM unit of its LOINC code, and flags
 * what is not fit for clinical rules as a data-quality finding.
 *
 * Canonical units (the unit every rule compares in):
 *   2823-3 potassium mmol/L      2951-2 sodium mmol/L       2345-7 glucose mmol/L
 *   2160-0 creatinine umol/L     1742-6 ALT U/L             1920-8 AST U/L
 *   6768-6 ALP U/L               1975-2 bilirubin umol/L    718-7 haemoglobin g/L
 *   751-8 neutrophils 10*9/L     777-3 platelets 10*9/L     8636-3 QTc ms
 *
 * Pure functions over caller-owned memory: thread-safe, allocate nothing.
 */
#ifndef VIGIL_CLEAN_H
#define VIGIL_CLEAN_H

#include <stdbool.h>

#include "observation.h"

enum clean_status {
    CLEAN_OK = 0,          /* known code, value normalised: rules may run */
    CLEAN_UNKNOWN_CODE,    /* LOINC not in the table: stored as is, no clinical rules */
    CLEAN_UNKNOWN_UNIT,    /* known code, unit not convertible: data-quality finding */
    CLEAN_IMPLAUSIBLE,     /* value outside physiological limits: data-quality finding */
    CLEAN_NO_VALUE,        /* no value (e.g. cancelled): nothing to analyse */
};

struct clean_result {
    enum clean_status status;
    double value;          /* normalised value (valid when status == CLEAN_OK) */
    const char *unit;      /* canonical unit, static string; NULL unless known code */
    bool has_ref_low;
    double ref_low;        /* normalised with the same factor as the value */
    bool has_ref_high;
    double ref_high;
    const char *finding;   /* static: "unknown_unit", "implausible_value", or NULL */
};

/* Normalises OBS into OUT. Always fills OUT (status says what happened);
 * returns OUT->status. Cannot fail otherwise. */
enum clean_status clean_observation(const struct observation *obs, struct clean_result *out);

/* Returns the canonical unit for LOINC, or NULL if vigil does not know the code. */
const char *clean_canonical_unit(const char *loinc);

#endif
