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
 * Accepted unit spellings (exact UCUM, `l` for litre, the UTF-8 micro sign for
 * `u`, and the aliases `mEq/L` and `IU/L`), the factors and the plausibility
 * limits are documented in clean.c's DESIGN comment.
 *
 * Pure functions over caller-owned memory: thread-safe, allocate nothing.
 */
#ifndef VIGIL_CLEAN_H
#define VIGIL_CLEAN_H

#include <stdbool.h>
#include <stddef.h>

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
    double value;          /* normalised value (valid when status == CLEAN_OK; also set,
                            * possibly non-finite, for CLEAN_IMPLAUSIBLE; else 0) */
    const char *unit;      /* canonical unit, static string; NULL unless known code */
    bool has_ref_low;
    double ref_low;        /* normalised with the same factor as the value */
    bool has_ref_high;
    double ref_high;       /* a bound that is not finite or negative, a 0 ULN, or an
                            * inverted range (low > high) is dropped (has_ref_* false) */
    const char *finding;   /* static: "unknown_unit", "implausible_value", or NULL */
};

/* Normalises OBS into OUT. Always fills OUT (status says what happened);
 * returns OUT->status. Cannot fail otherwise. Checks in this order: unknown
 * code, no value, unknown unit, implausible (not finite, negative, or outside
 * the code's limits, inclusive). The reference range is set for CLEAN_OK and
 * CLEAN_IMPLAUSIBLE only. OBS's strings must be NUL-terminated (the decoder
 * guarantees it). Thread-safe; allocates nothing. */
enum clean_status clean_observation(const struct observation *obs, struct clean_result *out);

/* Returns the canonical unit for LOINC (static string), or NULL if vigil does
 * not know the code. Thread-safe. */
const char *clean_canonical_unit(const char *loinc);

/* Sets *MIN and *MAX to LOINC's plausibility limits in its canonical unit
 * (inclusive) and returns true; returns false and leaves both untouched if the
 * code is unknown. Thread-safe. */
bool clean_limits(const char *loinc, double *min, double *max);

/* Stores up to CAP of the unit spellings LOINC's table row accepts (static
 * strings, the table's own spelling) into UNITS and returns how many there are
 * in all (may exceed CAP; 0 for an unknown code). Thread-safe. */
size_t clean_units(const char *loinc, const char **units, size_t cap);

/* Returns a stable lowercase name for STATUS ("ok", "unknown_code",
 * "unknown_unit", "implausible_value", "no_value"), for logs and metric
 * labels. Cannot fail. */
const char *clean_status_name(enum clean_status status);

#endif
