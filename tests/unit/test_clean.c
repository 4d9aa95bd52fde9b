/*
 * Unit tests for consumer/clean.c: every conversion against a hand-computed
 * value, reference ranges and x-ULN ratios across units, the unit-spelling
 * policy (exact UCUM, `l` for litre, micro sign, two aliases, nothing else),
 * plausibility at and past every limit, non-finite values, no value, unknown
 * code, and the per-call cost.
 */
#include "clean.h"
#include "loinc.h"
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define CHECK_NEAR(a, b, tol)                                                         \
    do {                                                                              \
        double a_ = (a), b_ = (b);                                                    \
        testlib_checkf(fabs(a_ - b_) <= (tol), __FILE__, __LINE__,                    \
                       "%s ~= %s (%.6f vs %.6f, tol %g)", #a, #b, a_, b_, (double)(tol)); \
    } while (0)

static const struct {
    const char *loinc;
    const char *unit;
} canonical[] = {
    {"2823-3", "mmol/L"}, {"2951-2", "mmol/L"}, {"2345-7", "mmol/L"}, {"2160-0", "umol/L"},
    {"1742-6", "U/L"},    {"1920-8", "U/L"},    {"6768-6", "U/L"},    {"1975-2", "umol/L"},
    {"718-7", "g/L"},     {"751-8", "10*9/L"},  {"777-3", "10*9/L"},  {"8636-3", "ms"},
};
#define N_CODES (sizeof canonical / sizeof canonical[0])

static struct observation make_obs(const char *loinc, double value, const char *unit)
{
    struct observation o;
    memset(&o, 0, sizeof o);
    snprintf(o.loinc, sizeof o.loinc, "%s", loinc);
    snprintf(o.unit, sizeof o.unit, "%s", unit);
    o.has_value = true;
    o.value = value;
    return o;
}

/* Cleans VALUE UNIT for LOINC, expecting CLEAN_OK and EXPECT (within TOL). */
static void check_conv(int line, const char *loinc, double value, const char *unit,
                       double expect, double tol)
{
    struct observation o = make_obs(loinc, value, unit);
    struct clean_result r;
    enum clean_status st = clean_observation(&o, &r);
    testlib_checkf(st == CLEAN_OK && r.status == CLEAN_OK, __FILE__, line,
                   "%s %g %s: status %s, want ok", loinc, value, unit, clean_status_name(st));
    testlib_checkf(fabs(r.value - expect) <= tol, __FILE__, line,
                   "%s %g %s = %.6f, want %.6f", loinc, value, unit, r.value, expect);
    testlib_checkf(r.unit != NULL && strcmp(r.unit, clean_canonical_unit(loinc)) == 0,
                   __FILE__, line, "%s: unit %s", loinc, r.unit ? r.unit : "(null)");
    testlib_checkf(r.finding == NULL, __FILE__, line, "%s: finding %s", loinc,
                   r.finding ? r.finding : "");
}

#define CONV(loinc, v, unit, expect, tol) check_conv(__LINE__, loinc, v, unit, expect, tol)

static void test_conversions(void)
{
    /* Potassium: mEq/L = mmol/L; mg/dL x 10 / 39.098 (19.5 mg/dL = 4.9875). */
    CONV("2823-3", 6.8, "mmol/L", 6.8, 1e-9);
    CONV("2823-3", 6.8, "mEq/L", 6.8, 1e-9);
    CONV("2823-3", 6.8, "meq/L", 6.8, 1e-9);
    CONV("2823-3", 19.5, "mg/dL", 4.9875, 1e-3);
    /* Sodium: mEq/L = mmol/L. */
    CONV("2951-2", 140.0, "mmol/L", 140.0, 1e-9);
    CONV("2951-2", 140.0, "mEq/L", 140.0, 1e-9);
    CONV("2951-2", 118.0, "meq/L", 118.0, 1e-9);
    /* Glucose: mg/dL / 18.016 (126 mg/dL = 6.994, 54 mg/dL = 2.997). */
    CONV("2345-7", 126.0, "mg/dL", 6.994, 1e-3);
    CONV("2345-7", 54.0, "mg/dL", 2.997, 1e-3);
    CONV("2345-7", 5.5, "mmol/L", 5.5, 1e-9);
    /* Creatinine: mg/dL x 88.42 (1.2 mg/dL = 106.104); mmol/L x 1000. */
    CONV("2160-0", 1.2, "mg/dL", 106.104, 1e-3);
    CONV("2160-0", 80.0, "umol/L", 80.0, 1e-9);
    CONV("2160-0", 0.106, "mmol/L", 106.0, 1e-9);
    /* Bilirubin: mg/dL x 17.104 (2.0 mg/dL = 34.208). */
    CONV("1975-2", 2.0, "mg/dL", 34.208, 1e-3);
    CONV("1975-2", 17.0, "umol/L", 17.0, 1e-9);
    /* ALT, AST, ALP: ukat/L x 60; U/L = IU/L = [IU]/L. */
    CONV("1742-6", 1.0, "ukat/L", 60.0, 1e-9);
    CONV("1742-6", 45.0, "U/L", 45.0, 1e-9);
    CONV("1742-6", 45.0, "IU/L", 45.0, 1e-9);
    CONV("1742-6", 45.0, "[IU]/L", 45.0, 1e-9);
    CONV("1920-8", 0.5, "ukat/L", 30.0, 1e-9);
    CONV("1920-8", 33.0, "U/L", 33.0, 1e-9);
    CONV("1920-8", 33.0, "IU/L", 33.0, 1e-9);
    CONV("1920-8", 33.0, "[IU]/L", 33.0, 1e-9);
    CONV("6768-6", 2.0, "ukat/L", 120.0, 1e-9);
    CONV("6768-6", 110.0, "U/L", 110.0, 1e-9);
    CONV("6768-6", 110.0, "IU/L", 110.0, 1e-9);
    CONV("6768-6", 110.0, "[IU]/L", 110.0, 1e-9);
    /* Haemoglobin: g/dL x 10; mmol/L (Fe) / 0.6206 x 10 (8.0 mmol/L = 128.907). */
    CONV("718-7", 9.5, "g/dL", 95.0, 1e-9);
    CONV("718-7", 120.0, "g/L", 120.0, 1e-9);
    CONV("718-7", 8.0, "mmol/L", 128.907, 1e-3);
    /* Platelets and neutrophils: 10*9/L = 10*3/uL = 10*3/mm3 = 1000 /uL. */
    CONV("777-3", 45000.0, "/uL", 45.0, 1e-9);
    CONV("777-3", 45000.0, "/mm3", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*3/uL", 45.0, 1e-9);
    CONV("777-3", 45.0, "10^3/uL", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*3/mm3", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*9/L", 45.0, 1e-9);
    CONV("777-3", 45.0, "10^9/L", 45.0, 1e-9);
    CONV("751-8", 1500.0, "/uL", 1.5, 1e-9);
    CONV("751-8", 1500.0, "/mm3", 1.5, 1e-9);
    CONV("751-8", 1.5, "10*3/uL", 1.5, 1e-9);
    CONV("751-8", 1.5, "10^3/uL", 1.5, 1e-9);
    CONV("751-8", 1.5, "10*3/mm3", 1.5, 1e-9);
    CONV("751-8", 1.5, "10*9/L", 1.5, 1e-9);
    CONV("751-8", 1.5, "10^9/L", 1.5, 1e-9);
    /* QTc: s x 1000. */
    CONV("8636-3", 0.512, "s", 512.0, 1e-9);
    CONV("8636-3", 470.0, "ms", 470.0, 1e-9);
}

static void test_spellings(void)
{
    /* UCUM defines litre as both `l` and `L`: these are valid UCUM. */
    CONV("2345-7", 126.0, "mg/dl", 6.994, 1e-3);
    CONV("2823-3", 5.0, "mmol/l", 5.0, 1e-9);
    CONV("2823-3", 5.0, "meq/l", 5.0, 1e-9);
    CONV("718-7", 9.5, "g/dl", 95.0, 1e-9);
    CONV("1742-6", 45.0, "U/l", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*9/l", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*3/ul", 45.0, 1e-9);
    CONV("751-8", 1500.0, "/ul", 1.5, 1e-9);
    /* The micro sign, U+00B5, and Greek mu, U+03BC, for the prefix u. */
    CONV("2160-0", 80.0, "\xC2\xB5mol/L", 80.0, 1e-9);
    CONV("2160-0", 80.0, "\xCE\xBCmol/L", 80.0, 1e-9);
    CONV("1975-2", 17.0, "\xC2\xB5mol/l", 17.0, 1e-9);
    CONV("1742-6", 1.0, "\xC2\xB5kat/L", 60.0, 1e-9);
    CONV("777-3", 45000.0, "/\xC2\xB5L", 45.0, 1e-9);
    CONV("777-3", 45.0, "10*3/\xCE\xBCL", 45.0, 1e-9);

    /* Real mis-casings change the meaning in UCUM (Mg = megagram, Ms =
     * megasecond, MMOL is no unit) and are refused with a finding. */
    static const struct {
        const char *loinc, *unit;
    } bad[] = {
        {"2345-7", "MG/DL"},  {"2345-7", "Mg/dL"},  {"2345-7", "mg/DL"},  {"2345-7", "MMOL/L"},
        {"2345-7", "Mmol/L"}, {"2823-3", "MEQ/L"},  {"2823-3", "mEQ/L"},  {"2160-0", "UMOL/L"},
        {"2160-0", "uMol/L"}, {"1742-6", "u/L"},    {"1742-6", "UKAT/L"}, {"1742-6", "iu/L"},
        {"718-7", "G/DL"},    {"8636-3", "MS"},     {"8636-3", "Ms"},     {"8636-3", "S"},
        {"777-3", "K/uL"},    {"777-3", "x10E9/L"}, {"777-3", "/UL"},     {"751-8", "10E9/L"},
        {"2345-7", "mg/dL "}, {"2345-7", " mg/dL"}, {"2345-7", ""},       {"2345-7", "mg"},
        {"2345-7", "mmol"},   {"2160-0", "\xC2"},   {"2160-0", "\xC2mol/L"},
        {"2160-0", "\xB5mol/L"}, /* Latin-1 micro, not UTF-8 */
        {"2345-7", "umol/L"}, /* a real unit, not convertible for glucose here */
        {"718-7", "mg/dL"},   {"8636-3", "min"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct observation o = make_obs(bad[i].loinc, 5.0, bad[i].unit);
        struct clean_result r;
        enum clean_status st = clean_observation(&o, &r);
        testlib_checkf(st == CLEAN_UNKNOWN_UNIT, __FILE__, __LINE__,
                       "%s \"%s\": %s, want unknown_unit", bad[i].loinc, bad[i].unit,
                       clean_status_name(st));
        CHECK(r.finding != NULL && strcmp(r.finding, "unknown_unit") == 0);
        CHECK(r.unit != NULL && strcmp(r.unit, clean_canonical_unit(bad[i].loinc)) == 0);
        CHECK(!r.has_ref_low && !r.has_ref_high);
    }
}

static void test_table_invariants(void)
{
    for (size_t i = 0; i < N_CODES; i++) {
        CHECK_EQ_STR(clean_canonical_unit(canonical[i].loinc), canonical[i].unit);

        const char *units[16];
        size_t n = clean_units(canonical[i].loinc, units, 16);
        testlib_checkf(n >= 2 && n <= 16, __FILE__, __LINE__, "%s: %zu units",
                       canonical[i].loinc, n);
        bool has_canonical = false;
        for (size_t k = 0; k < n && k < 16; k++) {
            const char *u = units[k];
            if (strcmp(u, canonical[i].unit) == 0)
                has_canonical = true;
            /* The `l` and micro-sign equivalences are safe only because
             * every `L` in the table is the litre (last, after `/` or a
             * prefix) and every `u` the micro prefix (first or after `/`). */
            for (size_t c = 0; u[c] != '\0'; c++) {
                if (u[c] == 'L')
                    testlib_checkf(u[c + 1] == '\0' && c > 0, __FILE__, __LINE__,
                                   "%s: L in \"%s\" is not the litre", canonical[i].loinc, u);
                if (u[c] == 'u')
                    testlib_checkf(c == 0 || u[c - 1] == '/', __FILE__, __LINE__,
                                   "%s: u in \"%s\" is not the micro prefix",
                                   canonical[i].loinc, u);
            }
        }
        testlib_checkf(has_canonical, __FILE__, __LINE__, "%s: canonical unit not accepted",
                       canonical[i].loinc);

        /* The canonical unit converts with factor 1. */
        double lo = 0, hi = 0;
        CHECK(clean_limits(canonical[i].loinc, &lo, &hi));
        CHECK(lo >= 0.0 && lo < hi);
        double mid = (lo + hi) / 2;
        CONV(canonical[i].loinc, mid, canonical[i].unit, mid, 0.0);
    }
    const char *units[1];
    CHECK_EQ_INT(clean_units("9999-9", units, 1), 0);
    /* cap smaller than the list: count still reported, nothing written past cap */
    const char *two[2] = {NULL, NULL};
    size_t n = clean_units("777-3", two, 1);
    CHECK(n > 1);
    CHECK(two[0] != NULL && two[1] == NULL);
}

static void test_ref_range(void)
{
    /* Creatinine 1.5 mg/dL, range 0.6-1.2 mg/dL: 132.63 in 53.052-106.104 umol/L. */
    struct observation o = make_obs("2160-0", 1.5, "mg/dL");
    o.has_ref_low = true;
    o.ref_low = 0.6;
    o.has_ref_high = true;
    o.ref_high = 1.2;
    struct clean_result r;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK_NEAR(r.value, 132.63, 1e-3);
    CHECK(r.has_ref_low && r.has_ref_high);
    CHECK_NEAR(r.ref_low, 53.052, 1e-3);
    CHECK_NEAR(r.ref_high, 106.104, 1e-3);
    CHECK_NEAR(r.value / r.ref_high, 1.25, 1e-9);

    /* Glucose range 70-99 mg/dL = 3.885-5.495 mmol/L. */
    o = make_obs("2345-7", 50.0, "mg/dL");
    o.has_ref_low = true;
    o.ref_low = 70.0;
    o.has_ref_high = true;
    o.ref_high = 99.0;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK_NEAR(r.ref_low, 3.8854, 1e-3);
    CHECK_NEAR(r.ref_high, 5.4951, 1e-3);

    /* x ULN is the same whatever the unit: ALT 150 U/L over ULN 30 U/L, and
     * the same result in ukat/L (2.5 over 0.5). Hy's law rests on this. */
    struct observation u_l = make_obs("1742-6", 150.0, "U/L");
    u_l.has_ref_high = true;
    u_l.ref_high = 30.0;
    struct observation ukat = make_obs("1742-6", 2.5, "ukat/L");
    ukat.has_ref_high = true;
    ukat.ref_high = 0.5;
    struct clean_result r1, r2;
    CHECK_EQ_INT(clean_observation(&u_l, &r1), CLEAN_OK);
    CHECK_EQ_INT(clean_observation(&ukat, &r2), CLEAN_OK);
    CHECK_NEAR(r1.value / r1.ref_high, 5.0, 1e-9);
    CHECK_NEAR(r2.value / r2.ref_high, 5.0, 1e-9);
    CHECK_NEAR(r2.ref_high, 30.0, 1e-9);

    /* Bilirubin 2.0 mg/dL over ULN 1.2 mg/dL vs 34.208 over 20.5248 umol/L. */
    struct observation b1 = make_obs("1975-2", 2.0, "mg/dL");
    b1.has_ref_high = true;
    b1.ref_high = 1.2;
    struct observation b2 = make_obs("1975-2", 34.208, "umol/L");
    b2.has_ref_high = true;
    b2.ref_high = 20.5248;
    CHECK_EQ_INT(clean_observation(&b1, &r1), CLEAN_OK);
    CHECK_EQ_INT(clean_observation(&b2, &r2), CLEAN_OK);
    CHECK_NEAR(r1.value / r1.ref_high, r2.value / r2.ref_high, 1e-9);
    CHECK_NEAR(r1.ref_high, 20.5248, 1e-6);

    /* Haemoglobin LLN 12.0 g/dL = 120 g/L; 7.45 mmol/L = 120.04 g/L. */
    struct observation h = make_obs("718-7", 9.5, "g/dL");
    h.has_ref_low = true;
    h.ref_low = 12.0;
    CHECK_EQ_INT(clean_observation(&h, &r), CLEAN_OK);
    CHECK(r.has_ref_low && !r.has_ref_high);
    CHECK_NEAR(r.ref_low, 120.0, 1e-9);
    h = make_obs("718-7", 6.0, "mmol/L");
    h.has_ref_low = true;
    h.ref_low = 7.45;
    CHECK_EQ_INT(clean_observation(&h, &r), CLEAN_OK);
    CHECK_NEAR(r.ref_low, 120.045, 1e-3);

    /* Platelet LLN 150,000 /uL = 150 x10^9/L. */
    struct observation p = make_obs("777-3", 45000.0, "/uL");
    p.has_ref_low = true;
    p.ref_low = 150000.0;
    p.has_ref_high = true;
    p.ref_high = 400000.0;
    CHECK_EQ_INT(clean_observation(&p, &r), CLEAN_OK);
    CHECK_NEAR(r.ref_low, 150.0, 1e-9);
    CHECK_NEAR(r.ref_high, 400.0, 1e-9);

    /* No range in, none out. */
    o = make_obs("2823-3", 4.0, "mmol/L");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(!r.has_ref_low && !r.has_ref_high);

    /* Bounds that cannot be a ULN/LLN are dropped; the value still cleans. */
    o = make_obs("2823-3", 4.0, "mmol/L");
    o.has_ref_low = true;
    o.ref_low = NAN;
    o.has_ref_high = true;
    o.ref_high = INFINITY;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(!r.has_ref_low && !r.has_ref_high);
    o.ref_low = -3.5;
    o.ref_high = 5.1;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(!r.has_ref_low && r.has_ref_high);
    CHECK_NEAR(r.ref_high, 5.1, 1e-12);
    o.ref_low = 5.1; /* inverted */
    o.ref_high = 3.5;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(!r.has_ref_low && !r.has_ref_high);
    o.ref_low = 0.0;
    o.ref_high = 0.0; /* a ULN of 0 */
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(r.has_ref_low && !r.has_ref_high);
    o.has_ref_low = false; /* has_ref false: a value in ref_* is ignored */
    o.ref_low = 3.5;
    o.has_ref_high = false;
    o.ref_high = 5.1;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(!r.has_ref_low && !r.has_ref_high);
}

static void check_implausible(int line, const char *loinc, double v, const char *unit)
{
    struct observation o = make_obs(loinc, v, unit);
    struct clean_result r;
    enum clean_status st = clean_observation(&o, &r);
    testlib_checkf(st == CLEAN_IMPLAUSIBLE, __FILE__, line, "%s %.17g %s: %s, want implausible",
                   loinc, v, unit, clean_status_name(st));
    testlib_checkf(r.finding != NULL && strcmp(r.finding, "implausible_value") == 0, __FILE__,
                   line, "%s %.17g: finding %s", loinc, v, r.finding ? r.finding : "(null)");
    testlib_checkf(r.unit != NULL, __FILE__, line, "%s: unit NULL", loinc);
}

static void test_plausibility(void)
{
    /* At each limit: accepted; one ulp past it, either side: refused. */
    for (size_t i = 0; i < N_CODES; i++) {
        const char *loinc = canonical[i].loinc;
        const char *unit = canonical[i].unit;
        double lo = 0, hi = 0;
        CHECK(clean_limits(loinc, &lo, &hi));
        CONV(loinc, lo, unit, lo, 0.0);
        CONV(loinc, hi, unit, hi, 0.0);
        check_implausible(__LINE__, loinc, nextafter(lo, -INFINITY), unit);
        check_implausible(__LINE__, loinc, nextafter(hi, INFINITY), unit);
        check_implausible(__LINE__, loinc, -1.0, unit);
        check_implausible(__LINE__, loinc, NAN, unit);
        check_implausible(__LINE__, loinc, INFINITY, unit);
        check_implausible(__LINE__, loinc, -INFINITY, unit);
        check_implausible(__LINE__, loinc, hi * 10, unit);
    }

    /* The documented limits themselves (a change must be deliberate). */
    static const struct {
        const char *loinc;
        double lo, hi;
    } limits[] = {
        {"2823-3", 0.8, 15.0}, {"2951-2", 80.0, 250.0},  {"2345-7", 0.1, 170.0},
        {"2160-0", 5.0, 5000.0}, {"1742-6", 0.0, 50000.0}, {"1920-8", 0.0, 50000.0},
        {"6768-6", 0.0, 30000.0}, {"1975-2", 0.0, 1500.0}, {"718-7", 10.0, 260.0},
        {"751-8", 0.0, 500.0},  {"777-3", 0.0, 5000.0},  {"8636-3", 200.0, 900.0},
    };
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        double lo = -1, hi = -1;
        CHECK(clean_limits(limits[i].loinc, &lo, &hi));
        testlib_checkf(lo == limits[i].lo && hi == limits[i].hi, __FILE__, __LINE__,
                       "%s limits %g-%g", limits[i].loinc, lo, hi);
    }
    double lo = 7, hi = 8;
    CHECK(!clean_limits("0000-0", &lo, &hi));
    CHECK(lo == 7 && hi == 8);

    /* Limits apply after conversion. K 60 mg/dL = 15.35 mmol/L: refused;
     * creatinine 1.2 labelled umol/L (a mg/dL value) is below 5: refused;
     * QTc 0.45 labelled ms (seconds) is refused; 0.45 s is fine. */
    check_implausible(__LINE__, "2823-3", 60.0, "mg/dL");
    CONV("2823-3", 58.0, "mg/dL", 14.834, 1e-3);
    check_implausible(__LINE__, "2160-0", 1.2, "umol/L");
    check_implausible(__LINE__, "8636-3", 0.45, "ms");
    CONV("8636-3", 0.45, "s", 450.0, 1e-9);
    check_implausible(__LINE__, "777-3", 45000.0, "10*9/L");
    check_implausible(__LINE__, "1742-6", -0.5, "ukat/L");
    check_implausible(__LINE__, "2345-7", NAN, "mg/dL");
    /* A finite value the factor overflows to infinity. */
    check_implausible(__LINE__, "2160-0", 1e307, "mg/dL");
    /* The implausible value is reported normalised, for the finding's text. */
    struct observation o = make_obs("2823-3", 60.0, "mg/dL");
    struct clean_result r;
    clean_observation(&o, &r);
    CHECK_NEAR(r.value, 15.346, 1e-3);
    CHECK_EQ_STR(r.unit, "mmol/L");
    /* Realistic extremes stay plausible: they are the signals. */
    CONV("2823-3", 9.1, "mmol/L", 9.1, 1e-9);
    CONV("2345-7", 1.4, "mmol/L", 1.4, 1e-9);
    CONV("777-3", 3.0, "10*9/L", 3.0, 1e-9);
    CONV("751-8", 0.0, "10*9/L", 0.0, 0.0);
    CONV("1742-6", 0.0, "U/L", 0.0, 0.0);
}

static void test_no_value_and_unknown_code(void)
{
    struct observation o = make_obs("2823-3", 0.0, "");
    o.has_value = false;
    o.has_ref_high = true;
    o.ref_high = 5.1;
    struct clean_result r;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_NO_VALUE);
    CHECK_EQ_INT(r.status, CLEAN_NO_VALUE);
    CHECK_EQ_STR(r.unit, "mmol/L");
    CHECK(r.finding == NULL);
    CHECK(!r.has_ref_low && !r.has_ref_high);
    /* No value wins over a bad unit or a NaN left in the value field. */
    o = make_obs("2823-3", NAN, "MG/DL");
    o.has_value = false;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_NO_VALUE);
    CHECK(r.finding == NULL);

    /* Well formed (right check digit) but not in the table: unknown code,
     * a finding counted for the site. */
    const char *unknown[] = {"1234-4", "99999-5", "100000-9", "12345-5", "0-0"};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        o = make_obs(unknown[i], 4.0, "mmol/L");
        CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_UNKNOWN_CODE);
        CHECK(r.unit == NULL);
        CHECK_EQ_STR(r.finding, "unknown_code");
        CHECK(clean_canonical_unit(unknown[i]) == NULL);
    }
    /* A wrong check digit, or not the shape of a LOINC code at all. */
    const char *malformed[] = {"99999-9",    "1234-5",  "2823-4",        "",
                               "2823",       "2823-3 ", "718-7x",        "-3",
                               "12345678-0", "28a3-3",  "pro-nausea-frq"};
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        o = make_obs(malformed[i], 4.0, "mmol/L");
        CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_MALFORMED_CODE);
        CHECK_EQ_STR(r.finding, "malformed_code");
        CHECK(r.unit == NULL);
    }
    /* A bad code wins over no value. */
    o = make_obs("1234-4", 0.0, "");
    o.has_value = false;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_UNKNOWN_CODE);
    o = make_obs("1234-5", 0.0, "");
    o.has_value = false;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_MALFORMED_CODE);

    /* OUT is fully overwritten, whatever it held. */
    memset(&r, 0xA5, sizeof r);
    o = make_obs("1234-4", 4.0, "mmol/L");
    clean_observation(&o, &r);
    CHECK(r.unit == NULL && !r.has_ref_low && !r.has_ref_high);

    CHECK_EQ_STR(clean_status_name(CLEAN_OK), "ok");
    CHECK_EQ_STR(clean_status_name(CLEAN_UNKNOWN_CODE), "unknown_code");
    CHECK_EQ_STR(clean_status_name(CLEAN_UNKNOWN_UNIT), "unknown_unit");
    CHECK_EQ_STR(clean_status_name(CLEAN_IMPLAUSIBLE), "implausible_value");
    CHECK_EQ_STR(clean_status_name(CLEAN_NO_VALUE), "no_value");
    CHECK_EQ_STR(clean_status_name(CLEAN_MALFORMED_CODE), "malformed_code");
    CHECK_EQ_STR(clean_status_name(CLEAN_IMPOSSIBLE_TIME), "impossible_time");
}

/* The check digit itself: the LOINC Users' Guide's example (12345 -> 5)
 * and every code vigil grades. */
static void test_loinc_check_digit(void)
{
    CHECK_EQ_INT(loinc_check_digit("12345", 5), 5);
    const char *known[] = {"2823-3", "2951-2", "2345-7", "2160-0", "1742-6", "1920-8",
                           "6768-6", "1975-2", "718-7",  "751-8",  "777-3",  "8636-3"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        CHECK_EQ_INT(loinc_check(known[i]), LOINC_WELL_FORMED);
    CHECK_EQ_INT(loinc_check("99999-9"), LOINC_BAD_CHECK_DIGIT);
    CHECK_EQ_INT(loinc_check("99999-5"), LOINC_WELL_FORMED);
    CHECK_EQ_INT(loinc_check("abc"), LOINC_NOT_A_CODE);
    CHECK_EQ_INT(loinc_check(NULL), LOINC_NOT_A_CODE);
    CHECK_EQ_INT(loinc_check_digit("", 0), -1);
    CHECK_EQ_INT(loinc_check_digit("12a", 3), -1);
}

/* Symptom scores: whole numbers of the item's scale, unit {score}, 1 or
 * none, no reference range; an unknown item of the right shape is an
 * unknown code. */
static void test_symptom_scores(void)
{
    struct clean_result r;
    struct observation o = make_obs("PRO-NAUSEA-FRQ", 4.0, "{score}");
    o.has_ref_high = true;
    o.ref_high = 1.0;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    CHECK(r.value == 4.0);
    CHECK_EQ_STR(r.unit, "{score}");
    CHECK(!r.has_ref_low && !r.has_ref_high);
    CHECK(r.finding == NULL);
    o = make_obs("PRO-FATIGUE-SEV", 0.0, "");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    o = make_obs("PRO-FATIGUE-SEV", 2.0, "1");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    const double bad[] = {5.0, -1.0, 2.5, NAN, INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = make_obs("PRO-FATIGUE-SEV", bad[i], "{score}");
        CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_IMPLAUSIBLE);
        CHECK_EQ_STR(r.finding, "implausible_value");
    }
    o = make_obs("PRO-RASH-PRS", 1.0, "{score}");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_OK);
    o = make_obs("PRO-RASH-PRS", 2.0, "{score}");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_IMPLAUSIBLE);
    o = make_obs("PRO-FATIGUE-SEV", 2.0, "mmol/L");
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_UNKNOWN_UNIT);
    o = make_obs("PRO-RASH-SEV", 2.0, "{score}"); /* rash is asked as presence only */
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_UNKNOWN_CODE);
    CHECK_EQ_STR(r.finding, "unknown_code");
    o = make_obs("PRO-NAUSEA-SEV", 0.0, "");
    o.has_value = false;
    CHECK_EQ_INT(clean_observation(&o, &r), CLEAN_NO_VALUE);
    CHECK_EQ_STR(clean_canonical_unit("PRO-NAUSEA-FRQ"), "{score}");
    double lo = -1, hi = -1;
    CHECK(clean_limits("PRO-RASH-PRS", &lo, &hi) && lo == 0 && hi == 1);
}

#define T_ARRIVE 1780000000000LL
#define MIN      60000LL
#define DAYS     86400000LL

static enum clean_status times(int64_t effective, int64_t issued, const char **finding)
{
    struct observation o = make_obs("2823-3", 4.0, "mmol/L");
    o.effective_ms = effective;
    o.issued_ms = issued;
    struct clean_result r;
    clean_observation(&o, &r);
    const struct clean_time_limits lim = {5 * MIN, 3650 * DAYS};
    enum clean_status st = clean_times(&o, T_ARRIVE, &lim, &r);
    *finding = r.finding;
    return st;
}

/* Impossible times: each finding at its edge, the tolerance inclusive,
 * an unknown issue time not checked, a malformed code kept. */
static void test_times(void)
{
    const char *f;
    CHECK_EQ_INT(times(T_ARRIVE - DAYS, T_ARRIVE - DAYS + MIN, &f), CLEAN_OK);
    CHECK(f == NULL);
    CHECK_EQ_INT(times(T_ARRIVE + 5 * MIN, 0, &f), CLEAN_OK); /* skew within tolerance */
    CHECK_EQ_INT(times(T_ARRIVE + 5 * MIN + 1, 0, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_STR(f, "future_effective_time");
    CHECK_EQ_INT(times(T_ARRIVE + 365 * DAYS, T_ARRIVE, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_STR(f, "future_effective_time");
    CHECK_EQ_INT(times(T_ARRIVE - DAYS, T_ARRIVE + DAYS, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_STR(f, "future_issued_time");
    CHECK_EQ_INT(times(T_ARRIVE - DAYS, T_ARRIVE - 2 * DAYS, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_STR(f, "effective_after_issued");
    CHECK_EQ_INT(times(T_ARRIVE - DAYS + 5 * MIN, T_ARRIVE - DAYS, &f), CLEAN_OK);
    CHECK_EQ_INT(times(T_ARRIVE - 3650 * DAYS, 0, &f), CLEAN_OK);
    CHECK_EQ_INT(times(T_ARRIVE - 3650 * DAYS - 1, 0, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_STR(f, "older_than_horizon");
    CHECK_EQ_INT(times(0, 0, &f), CLEAN_IMPOSSIBLE_TIME); /* the epoch: a missing date */
    CHECK_EQ_STR(f, "older_than_horizon");
    CHECK_EQ_INT(times(INT64_MAX, INT64_MAX, &f), CLEAN_IMPOSSIBLE_TIME);
    CHECK_EQ_INT(times(INT64_MIN, 0, &f), CLEAN_IMPOSSIBLE_TIME);

    /* no horizon: old results pass */
    struct observation o = make_obs("2823-3", 4.0, "mmol/L");
    o.effective_ms = 0;
    struct clean_result r;
    clean_observation(&o, &r);
    const struct clean_time_limits none = {0, 0};
    CHECK_EQ_INT(clean_times(&o, T_ARRIVE, &none, &r), CLEAN_OK);
    /* a malformed code keeps its finding */
    o = make_obs("99999-9", 4.0, "mmol/L");
    o.effective_ms = T_ARRIVE + 365 * DAYS;
    clean_observation(&o, &r);
    CHECK_EQ_INT(clean_times(&o, T_ARRIVE, &none, &r), CLEAN_MALFORMED_CODE);
    CHECK_EQ_STR(r.finding, "malformed_code");
    /* an unknown code with an impossible time: the time is the finding */
    o = make_obs("99999-5", 4.0, "mmol/L");
    o.effective_ms = T_ARRIVE + 365 * DAYS;
    clean_observation(&o, &r);
    CHECK_EQ_INT(clean_times(&o, T_ARRIVE, &none, &r), CLEAN_IMPOSSIBLE_TIME);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The worker budget is well under 1 us per observation. Asserted loosely (an
 * unoptimised, possibly sanitized build on a shared machine) so the test
 * catches an accidental O(n^2) or allocation, not scheduler noise. */
static void test_cost(void)
{
    struct observation obs[4] = {
        make_obs("8636-3", 0.512, "s"),      /* last code: the longest scan */
        make_obs("777-3", 45000.0, "/mm3"), /* late unit in a long list */
        make_obs("2345-7", 126.0, "mg/dL"),
        make_obs("9999-9", 1.0, "mmol/L"),
    };
    enum { N = 200000 };
    struct clean_result r;
    unsigned sink = 0;
    double t0 = now_s();
    for (int i = 0; i < N; i++)
        sink += (unsigned)clean_observation(&obs[i & 3], &r);
    double per = (now_s() - t0) / N;
    printf("clean_observation: %.0f ns per call (%d calls)\n", per * 1e9, N);
    CHECK(sink > 0);
    testlib_checkf(per < 2e-6 * VIGIL_TIMEOUT_SCALE, __FILE__, __LINE__,
                   "clean_observation costs %.0f ns", per * 1e9);
}

int main(void)
{
    test_conversions();
    test_spellings();
    test_table_invariants();
    test_ref_range();
    test_plausibility();
    test_no_value_and_unknown_code();
    test_loinc_check_digit();
    test_symptom_scores();
    test_times();
    test_cost();
    return testlib_done();
}
