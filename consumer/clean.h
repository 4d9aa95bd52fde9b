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
 * Codes: a LOINC code must have the shape and the check digit of one
 * (common/loinc.h), else the result is a malformed-code finding; a
 * well-formed code outside the table is an unknown-code finding. PRO-CTCAE
 * item codes (common/proctcae.h) are the one other code system: a symptom
 * score, canonical unit "{score}" (also accepted: "1" and no unit), a whole
 * number from 0 to the item's maximum.
 *
 * Pure functions over caller-owned memory: thread-safe, allocate nothing.
 */
#ifndef VIGIL_CLEAN_H
#define VIGIL_CLEAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "observation.h"

enum clean_status {
    CLEAN_OK = 0,          /* known code, value normalised: rules may run */
    CLEAN_UNKNOWN_CODE,    /* well-formed code vigil has no table row for: finding
                            * "unknown_code", stored as is, no clinical rules */
    CLEAN_UNKNOWN_UNIT,    /* known code, unit not convertible: data-quality finding */
    CLEAN_IMPLAUSIBLE,     /* value outside physiological limits: data-quality finding */
    CLEAN_NO_VALUE,        /* no value (e.g. cancelled): nothing to analyse */
    CLEAN_MALFORMED_CODE,  /* not a LOINC code, or a wrong check digit (loinc.h),
                            * nor a PRO-CTCAE item code: finding "malformed_code" */
    CLEAN_IMPOSSIBLE_TIME, /* effective or issue time that cannot be (clean_times):
                            * the finding names which */
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
    const char *finding;   /* static: "malformed_code", "unknown_code", "unknown_unit",
                            * "implausible_value", a time finding (clean_times), or NULL */
};

/* The limits clean_times() applies; settings of the worker. */
struct clean_time_limits {
    int64_t future_tolerance_ms; /* clock skew allowed between the source and vigil */
    int64_t horizon_ms;          /* oldest effective time analysed, before arrival;
                                  * 0: no horizon */
};

/* Normalises OBS into OUT. Always fills OUT (status says what happened);
 * returns OUT->status. Cannot fail otherwise. Checks in this order:
 * malformed code, unknown code, no value, unknown unit, implausible (not
 * finite, negative, or outside the code's limits, inclusive; a symptom
 * score that is not a whole number of its scale). The reference range is
 * set for CLEAN_OK and CLEAN_IMPLAUSIBLE only (never for a symptom score).
 * OBS's strings must be NUL-terminated (the decoder guarantees it).
 * Thread-safe; allocates nothing. */
enum clean_status clean_observation(const struct observation *obs, struct clean_result *out);

/*
 * Checks OBS's times against ARRIVAL_MS (when the result reached vigil:
 * the Kafka message's timestamp) and LIM, after clean_observation() filled
 * OUT. A result that cannot be true is not analysed: its status becomes
 * CLEAN_IMPOSSIBLE_TIME with the finding, in this order of precedence,
 *   "future_effective_time"   effective time later than arrival + tolerance
 *   "future_issued_time"      issue time later than arrival + tolerance
 *   "effective_after_issued"  effective time later than issue time + tolerance
 *                             (issue time 0 = unknown is not checked)
 *   "older_than_horizon"      effective time earlier than arrival - horizon
 * A malformed code keeps its own finding. Returns OUT->status. Cannot fail;
 * thread-safe.
 */
enum clean_status clean_times(const struct observation *obs, int64_t arrival_ms,
                              const struct clean_time_limits *lim, struct clean_result *out);

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
 * "unknown_unit", "implausible_value", "no_value", "malformed_code",
 * "impossible_time"), for logs and metric labels. Cannot fail. */
const char *clean_status_name(enum clean_status status);

#endif
