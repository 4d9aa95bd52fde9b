/*
 * clean: unit normalisation and plausibility for the 12 LOINC codes vigil
 * analyses (contract in clean.h).
 *
 * DESIGN
 *
 * One static table, one row per LOINC code: its canonical unit, the
 * physiological limits in that unit, and the units accepted for it with the
 * factor that takes each to the canonical unit. A lookup is a linear scan with
 * strcmp: 12 codes and at most 9 units each cost far less than the 1 us budget
 * per observation, and a hash or sorted table would buy nothing but code.
 * None of these units needs an offset (only temperature-like scales do), so
 * the table carries a factor alone.
 *
 * Which unit strings are accepted. UCUM is case-sensitive and is the contract
 * with hospitals (`mg/dL`, not `MG/DL`): `Mg` is a megagram and `Ms` a
 * megasecond, so folding case in general could silently turn one unit into
 * another. We accept:
 *   - the exact UCUM code of every unit in the table;
 *   - `l` wherever the table has `L`: UCUM's case-sensitive table defines
 *     litre twice, as `l` and as `L`, so `mg/dl` and `mmol/l` are valid UCUM
 *     and mean exactly `mg/dL` and `mmol/L`. Refusing them would silence a
 *     real signal over a spelling UCUM itself allows. In the table, every `L`
 *     is the litre symbol (checked by the unit test), so this never widens any
 *     other symbol;
 *   - the micro sign spelled in UTF-8, U+00B5 (`µ`) or U+03BC (Greek `μ`),
 *     wherever the table has the UCUM micro prefix `u` (`µmol/L`, `/µL`):
 *     analysers and LIS print it, and it cannot mean anything else. Every
 *     lowercase `u` in the table is that prefix;
 *   - a short explicit alias list of non-UCUM spellings real feeds send and
 *     that cannot be misread: `mEq/L` (UCUM: `meq/L`) and `IU/L` (UCUM:
 *     `[IU]/L`). `10^9/L` and `10*3/mm3` are UCUM already (`10^` is UCUM's
 *     caret form of `10*`; mm3 = uL).
 * Anything else - `MG/DL`, `Mmol/L`, `K/uL`, `x10E9/L`, `umol/L ` with a
 * trailing blank - is CLEAN_UNKNOWN_UNIT: a data-quality finding that the
 * site fixes in its interface mapping, never a guess.
 *
 * Plausibility limits. They exist to catch impossible numbers (typos, a value
 * sent in another unit than the one it is labelled with), not to judge
 * severity: an implausible value runs no clinical rule, so a limit set too
 * tight would silence exactly the most extreme, most dangerous results. They
 * therefore sit at or beyond the extremes described in survivors in the
 * clinical literature; each row says why. Limits are inclusive.
 */
#include "clean.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "loinc.h"
#include "proctcae.h"

#define MAX_UNITS 9

struct unit_factor {
    const char *ucum; /* as written in UCUM (or an alias listed above) */
    double factor;    /* canonical = value * factor */
};

struct analyte {
    const char *loinc;
    const char *canonical; /* the unit of the factor-1 row */
    double min, max;       /* plausible, inclusive, canonical unit */
    struct unit_factor units[MAX_UNITS];
};

/* Factors from /work/shared/clinical/ctcae-v5-labs.md "Unit factors". Written
 * as the expression the reference gives (÷ 18.016 is 1.0 / 18.016) so a
 * reviewer can compare them line by line. */
static const struct analyte analytes[] = {
    /* Potassium. Survivors are reported down to about 1 mmol/L and up to
     * about 14 mmol/L; 0.8-15 keeps both and still catches a mg/dL value
     * labelled mmol/L (a normal 4.5 mmol/L is 17.6 mg/dL). */
    {"2823-3", "mmol/L", 0.8, 15.0,
     {{"mmol/L", 1.0}, {"meq/L", 1.0}, {"mEq/L", 1.0}, {"mg/dL", 10.0 / 39.098}}},
    /* Sodium. Salt poisoning is reported with sodium above 200 mmol/L in
     * survivors, severe hyponatraemia below 100; 80-250 keeps both. */
    {"2951-2", "mmol/L", 80.0, 250.0, {{"mmol/L", 1.0}, {"meq/L", 1.0}, {"mEq/L", 1.0}}},
    /* Glucose. Hyperosmolar states have been reported near 150 mmol/L
     * (about 2,650 mg/dL); below 0.1 mmol/L is under any assay's range. */
    {"2345-7", "mmol/L", 0.1, 170.0, {{"mmol/L", 1.0}, {"mg/dL", 1.0 / 18.016}}},
    /* Creatinine. Untreated renal failure reaches a few thousand umol/L;
     * below 5 umol/L is no human muscle mass, and is what a mg/dL value
     * labelled umol/L looks like (1.2 mg/dL is 106 umol/L). */
    {"2160-0", "umol/L", 5.0, 5000.0,
     {{"umol/L", 1.0}, {"mmol/L", 1000.0}, {"mg/dL", 88.42}}},
    /* ALT and AST. Ischaemic hepatitis and paracetamol poisoning give
     * values above 10,000 U/L, reported up to about 30,000; 0 is a valid
     * "below detection". */
    {"1742-6", "U/L", 0.0, 50000.0,
     {{"U/L", 1.0}, {"[IU]/L", 1.0}, {"IU/L", 1.0}, {"ukat/L", 60.0}}},
    {"1920-8", "U/L", 0.0, 50000.0,
     {{"U/L", 1.0}, {"[IU]/L", 1.0}, {"IU/L", 1.0}, {"ukat/L", 60.0}}},
    /* ALP. Transient hyperphosphatasaemia of infancy and Paget's disease
     * reach several thousand U/L, occasionally beyond 10,000. */
    {"6768-6", "U/L", 0.0, 30000.0,
     {{"U/L", 1.0}, {"[IU]/L", 1.0}, {"IU/L", 1.0}, {"ukat/L", 60.0}}},
    /* Total bilirubin. Neonatal and Crigler-Najjar extremes are below
     * about 900 umol/L; 1500 (88 mg/dL) leaves a wide margin. */
    {"1975-2", "umol/L", 0.0, 1500.0, {{"umol/L", 1.0}, {"mg/dL", 17.104}}},
    /* Haemoglobin. Survivors (refusing transfusion) are reported near
     * 20 g/L and below, polycythaemia and neonates up to about 250 g/L.
     * mmol/L is per Fe (monomer), as Dutch and Nordic labs report it:
     * g/dL = mmol/L / 0.6206. */
    {"718-7", "g/L", 10.0, 260.0,
     {{"g/L", 1.0}, {"g/dL", 10.0}, {"mmol/L", 10.0 / 0.6206}}},
    /* Neutrophils. 0 is real (agranulocytosis); leukaemic counts reach a
     * few hundred x10^9/L. 10*9/L = 10*3/uL = 10*3/mm3 = 1000 /uL. */
    {"751-8", "10*9/L", 0.0, 500.0,
     {{"10*9/L", 1.0},
      {"10^9/L", 1.0},
      {"10*3/uL", 1.0},
      {"10^3/uL", 1.0},
      {"10*3/mm3", 1.0},
      {"/uL", 1.0 / 1000.0},
      {"/mm3", 1.0 / 1000.0}}},
    /* Platelets. 0 is real; essential thrombocythaemia passes 3,000 and is
     * reported up to about 5,000 x10^9/L. */
    {"777-3", "10*9/L", 0.0, 5000.0,
     {{"10*9/L", 1.0},
      {"10^9/L", 1.0},
      {"10*3/uL", 1.0},
      {"10^3/uL", 1.0},
      {"10*3/mm3", 1.0},
      {"/uL", 1.0 / 1000.0},
      {"/mm3", 1.0 / 1000.0}}},
    /* QTc. Short-QT syndrome is about 300 ms; torsades-range QTc rarely
     * passes 700. 200-900 keeps both and catches seconds labelled ms. */
    {"8636-3", "ms", 200.0, 900.0, {{"ms", 1.0}, {"s", 1000.0}}},
};

#define N_ANALYTES (sizeof analytes / sizeof analytes[0])

static const struct analyte *analyte_find(const char *loinc)
{
    for (size_t i = 0; i < N_ANALYTES; i++)
        if (strcmp(analytes[i].loinc, loinc) == 0)
            return &analytes[i];
    return NULL;
}

/* True if S starts with U+00B5 MICRO SIGN or U+03BC GREEK SMALL LETTER MU in
 * UTF-8. Reads S[1] only when S[0] matched, so never past the NUL. */
static bool is_micro_sign(const unsigned char *s)
{
    return (s[0] == 0xC2 && s[1] == 0xB5) || (s[0] == 0xCE && s[1] == 0xBC);
}

/* Returns true if IN spells the table unit WANT under the two equivalences
 * the DESIGN comment lists: `l` for litre `L`, and the UTF-8 micro sign or
 * Greek mu for the micro prefix `u`. Otherwise byte for byte. */
static bool unit_matches(const char *want, const char *in)
{
    const unsigned char *w = (const unsigned char *)want;
    const unsigned char *s = (const unsigned char *)in;

    while (*w != '\0') {
        if (*w == *s) {
            w++;
            s++;
        } else if (*w == 'L' && *s == 'l') {
            w++;
            s++;
        } else if (*w == 'u' && is_micro_sign(s)) {
            w++;
            s += 2;
        } else {
            return false;
        }
    }
    return *s == '\0';
}

static const struct unit_factor *unit_find(const struct analyte *a, const char *unit)
{
    for (size_t i = 0; i < MAX_UNITS && a->units[i].ucum != NULL; i++)
        if (unit_matches(a->units[i].ucum, unit))
            return &a->units[i];
    return NULL;
}

/* Copies one reference bound, scaled. A bound that cannot serve as a ULN or
 * LLN (not finite, negative) is dropped rather than passed on: a NaN or
 * negative ULN would turn every x-ULN rule into noise. */
static void ref_convert(bool has, double raw, double factor, bool *out_has, double *out)
{
    *out_has = false;
    *out = 0.0;
    if (!has || !isfinite(raw) || raw < 0.0)
        return;
    double v = raw * factor;
    if (!isfinite(v))
        return;
    *out_has = true;
    *out = v;
}

/* A symptom score: unit "{score}", "1" or none; a whole number 0..max.
 * No reference range (a score has none). */
static enum clean_status clean_score(const struct observation *obs,
                                     const struct proctcae_item *item, struct clean_result *out)
{
    out->unit = PROCTCAE_UNIT;
    if (!obs->has_value) {
        out->status = CLEAN_NO_VALUE;
        return out->status;
    }
    if (strcmp(obs->unit, PROCTCAE_UNIT) != 0 && strcmp(obs->unit, "1") != 0 &&
        obs->unit[0] != '\0') {
        out->status = CLEAN_UNKNOWN_UNIT;
        out->finding = "unknown_unit";
        return out->status;
    }
    out->value = obs->value;
    if (!isfinite(obs->value) || obs->value < 0.0 || obs->value > item->max_score ||
        obs->value != floor(obs->value)) {
        out->status = CLEAN_IMPLAUSIBLE;
        out->finding = "implausible_value";
        return out->status;
    }
    out->status = CLEAN_OK;
    return out->status;
}

enum clean_status clean_observation(const struct observation *obs, struct clean_result *out)
{
    memset(out, 0, sizeof *out);

    if (proctcae_is_code(obs->loinc)) {
        const struct proctcae_item *item = proctcae_find(obs->loinc);
        if (item != NULL)
            return clean_score(obs, item, out);
        out->status = CLEAN_UNKNOWN_CODE;
        out->finding = "unknown_code";
        return out->status;
    }
    const struct analyte *a = analyte_find(obs->loinc);
    if (a == NULL) {
        /* A mistyped code (wrong check digit) is the site's to fix; a real
         * code vigil has no row for is worth knowing about too, but is not
         * an error of the site's. */
        bool formed = loinc_check(obs->loinc) == LOINC_WELL_FORMED;
        out->status = formed ? CLEAN_UNKNOWN_CODE : CLEAN_MALFORMED_CODE;
        out->finding = formed ? "unknown_code" : "malformed_code";
        return out->status;
    }
    out->unit = a->canonical;

    /* Checked before the unit: a cancelled result often carries no unit,
     * and that is not a data-quality problem. */
    if (!obs->has_value) {
        out->status = CLEAN_NO_VALUE;
        return out->status;
    }

    const struct unit_factor *u = unit_find(a, obs->unit);
    if (u == NULL) {
        out->status = CLEAN_UNKNOWN_UNIT;
        out->finding = "unknown_unit";
        return out->status;
    }

    /* The range converts with the value, so value/ULN is the same ratio
     * whatever unit the lab used. */
    ref_convert(obs->has_ref_low, obs->ref_low, u->factor, &out->has_ref_low, &out->ref_low);
    ref_convert(obs->has_ref_high, obs->ref_high, u->factor, &out->has_ref_high, &out->ref_high);
    if (out->has_ref_low && out->has_ref_high && out->ref_low > out->ref_high) {
        /* An inverted range has no usable ULN or LLN. */
        out->has_ref_low = false;
        out->has_ref_high = false;
        out->ref_low = 0.0;
        out->ref_high = 0.0;
    }
    if (out->has_ref_high && out->ref_high <= 0.0) {
        /* A ULN of 0 makes every x-ULN ratio a division by zero. */
        out->has_ref_high = false;
    }

    /* Written as !(min <= v <= max) so that NaN, which fails every
     * comparison, lands here too; an overflow to infinity by the factor
     * is caught by isfinite. */
    double v = obs->value * u->factor;
    out->value = v;
    if (!isfinite(v) || !(v >= a->min && v <= a->max) || v < 0.0) {
        out->status = CLEAN_IMPLAUSIBLE;
        out->finding = "implausible_value";
        return out->status;
    }

    out->status = CLEAN_OK;
    return out->status;
}

/* Times are compared in milliseconds; a horizon or tolerance is at most
 * years, so none of the sums below can overflow for times a decoder
 * accepts (it refuses nothing: guard the arithmetic anyway). */
static bool later_than(int64_t t, int64_t ref, int64_t slack)
{
    if (ref > INT64_MAX - slack)
        return false;
    return t > ref + slack;
}

enum clean_status clean_times(const struct observation *obs, int64_t arrival_ms,
                              const struct clean_time_limits *lim, struct clean_result *out)
{
    if (out->status == CLEAN_MALFORMED_CODE)
        return out->status;
    const char *finding = NULL;
    int64_t tol = lim->future_tolerance_ms;
    if (later_than(obs->effective_ms, arrival_ms, tol))
        finding = "future_effective_time";
    else if (obs->issued_ms > 0 && later_than(obs->issued_ms, arrival_ms, tol))
        finding = "future_issued_time";
    else if (obs->issued_ms > 0 && later_than(obs->effective_ms, obs->issued_ms, tol))
        finding = "effective_after_issued";
    else if (lim->horizon_ms > 0 && arrival_ms > INT64_MIN + lim->horizon_ms &&
             obs->effective_ms < arrival_ms - lim->horizon_ms)
        finding = "older_than_horizon";
    if (finding == NULL)
        return out->status;
    out->status = CLEAN_IMPOSSIBLE_TIME;
    out->finding = finding;
    return out->status;
}

const char *clean_canonical_unit(const char *loinc)
{
    if (proctcae_find(loinc) != NULL)
        return PROCTCAE_UNIT;
    const struct analyte *a = analyte_find(loinc);
    return a != NULL ? a->canonical : NULL;
}

bool clean_limits(const char *loinc, double *min, double *max)
{
    const struct proctcae_item *item = proctcae_find(loinc);
    if (item != NULL) {
        *min = 0.0;
        *max = item->max_score;
        return true;
    }
    const struct analyte *a = analyte_find(loinc);
    if (a == NULL)
        return false;
    *min = a->min;
    *max = a->max;
    return true;
}

size_t clean_units(const char *loinc, const char **units, size_t cap)
{
    const struct analyte *a = analyte_find(loinc);
    if (a == NULL)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < MAX_UNITS && a->units[i].ucum != NULL; i++) {
        if (n < cap)
            units[n] = a->units[i].ucum;
        n++;
    }
    return n;
}

const char *clean_status_name(enum clean_status status)
{
    switch (status) {
    case CLEAN_OK:
        return "ok";
    case CLEAN_UNKNOWN_CODE:
        return "unknown_code";
    case CLEAN_UNKNOWN_UNIT:
        return "unknown_unit";
    case CLEAN_IMPLAUSIBLE:
        return "implausible_value";
    case CLEAN_NO_VALUE:
        return "no_value";
    case CLEAN_MALFORMED_CODE:
        return "malformed_code";
    case CLEAN_IMPOSSIBLE_TIME:
        return "impossible_time";
    }
    return "unknown";
}
