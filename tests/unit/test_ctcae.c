/*
 * CTCAE v5 grading: both sides of every boundary in
 * /work/shared/clinical/ctcae-v5-labs.md, the abnormal-baseline branches,
 * and rounding dust from unit conversion not moving a grade.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctcae.h"
#include "testlib.h"

/* Grades V with reference range [LO, HI] (NAN: absent) and an optional
 * baseline value BASE with range [BLO, BHI] (NAN base: no baseline). */
static int grade_full(const char *loinc, double v, double lo, double hi, double base, double blo,
                      double bhi, enum ctcae_term *term)
{
    struct clean_result c = {.status = CLEAN_OK, .value = v};
    c.has_ref_low = !isnan(lo);
    c.ref_low = c.has_ref_low ? lo : 0.0;
    c.has_ref_high = !isnan(hi);
    c.ref_high = c.has_ref_high ? hi : 0.0;
    struct subject_result b = {.id.in = "base", .value = base};
    b.has_ref_low = !isnan(blo);
    b.ref_low = b.has_ref_low ? blo : 0.0;
    b.has_ref_high = !isnan(bhi);
    b.ref_high = b.has_ref_high ? bhi : 0.0;
    return ctcae_grade(loinc, v, &c, isnan(base) ? NULL : &b, term);
}

static int grade(const char *loinc, double v, double lo, double hi)
{
    return grade_full(loinc, v, lo, hi, NAN, NAN, NAN, NULL);
}

/* Checks a list of (value, expected grade) pairs for one lab and range. */
struct pt {
    double v;
    int g;
};

static void check_points(int line, const char *loinc, double lo, double hi, double base,
                         double bhi, const struct pt *pts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int g = grade_full(loinc, pts[i].v, lo, hi, base, NAN, bhi, NULL);
        testlib_checkf(g == pts[i].g, __FILE__, line, "%s value %g (range %g-%g, baseline %g): "
                       "grade %d, expected %d", loinc, pts[i].v, lo, hi, base, g, pts[i].g);
    }
}
#define POINTS(loinc, lo, hi, base, bhi, ...)                                                  \
    do {                                                                                       \
        static const struct pt pts_[] = {__VA_ARGS__};                                         \
        check_points(__LINE__, loinc, lo, hi, base, bhi, pts_, sizeof pts_ / sizeof pts_[0]);  \
    } while (0)

static void test_liver(void)
{
    /* ALT, ULN 40, normal or no baseline: exactly 3.0 x ULN is G1. */
    POINTS(LOINC_ALT, 7, 40, NAN, NAN, {40, 0}, {40.01, 1}, {120, 1}, {120.01, 2}, {200, 2},
           {200.1, 3}, {800, 3}, {800.1, 4});
    POINTS(LOINC_ALT, 7, 40, 30, 40, {120, 1}, {121, 2}); /* normal baseline: ULN branch */
    /* AST as ALT, with its own term. */
    POINTS(LOINC_AST, 8, 35, NAN, NAN, {35, 0}, {36, 1}, {105, 1}, {105.5, 2}, {175.5, 3},
           {701, 4});
    enum ctcae_term t;
    CHECK_EQ_INT(grade_full(LOINC_AST, 106, 8, 35, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_AST_INCREASED);
    CHECK_EQ_INT(grade_full(LOINC_ALT, 106, 8, 35, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_ALT_INCREASED);
    CHECK_EQ_STR(ctcae_term_name(t), "Alanine aminotransferase increased");

    /* ALT, abnormal baseline 80 (ULN 40): multiples of the baseline. */
    POINTS(LOINC_ALT, 7, 40, 80, 40, {119, 0}, {120, 1}, {240, 1}, {241, 2}, {400, 2}, {401, 3},
           {1600, 3}, {1601, 4});
    /* The baseline's ULN missing: the current ULN decides it was abnormal. */
    POINTS(LOINC_ALT, 7, 40, 80, NAN, {119, 0}, {120, 1});

    /* ALP, ULN 100; abnormal baseline 150: G1 from 2.0 x baseline. */
    POINTS(LOINC_ALP, 40, 100, NAN, NAN, {100, 0}, {101, 1}, {250, 1}, {251, 2}, {500, 2},
           {501, 3}, {2000, 3}, {2001, 4});
    POINTS(LOINC_ALP, 40, 100, 150, 100, {299, 0}, {300, 1}, {375, 1}, {376, 2}, {750, 2},
           {751, 3}, {3000, 3}, {3001, 4});

    /* Total bilirubin, ULN 20; abnormal baseline 30: G1 above 1.0 x baseline. */
    POINTS(LOINC_BILIRUBIN, 3, 20, NAN, NAN, {20, 0}, {21, 1}, {30, 1}, {30.1, 2}, {60, 2},
           {60.1, 3}, {200, 3}, {200.1, 4});
    POINTS(LOINC_BILIRUBIN, 3, 20, 30, 20, {30, 0}, {30.1, 1}, {45, 1}, {45.1, 2}, {90, 2},
           {90.1, 3}, {300, 3}, {300.1, 4});

    /* No ULN and no baseline: cannot grade. */
    CHECK_EQ_INT(grade(LOINC_ALT, 500, NAN, NAN), 0);

    /* Rounding dust: 0.55 and 1.65 ukat/L converted to U/L (x 60) are
     * exactly 3.0 x ULN, which is G1 however the doubles round. */
    double uln = 0.55 * 60.0;
    double v = 1.65 * 60.0;
    CHECK_EQ_INT(grade(LOINC_ALT, v, NAN, uln), 1);
    CHECK_EQ_INT(grade(LOINC_ALT, v * 1.0001, NAN, uln), 2);
}

static void test_creatinine(void)
{
    /* ULN 100, no baseline. */
    POINTS(LOINC_CREATININE, 60, 100, NAN, NAN, {100, 0}, {101, 1}, {150, 1}, {151, 2}, {300, 2},
           {301, 3}, {600, 3}, {601, 4});
    /* Baseline 60: the higher of the ULN and baseline grades. */
    POINTS(LOINC_CREATININE, 60, 100, 60, 100, {90, 0}, {91, 2}, {180, 2}, {181, 3}, {601, 4});
}

static void test_electrolytes(void)
{
    enum ctcae_term t;
    /* Potassium 3.5-5.1 mmol/L. */
    POINTS(LOINC_POTASSIUM, 3.5, 5.1, NAN, NAN, {5.1, 0}, {5.2, 1}, {5.5, 1}, {5.51, 2},
           {6.0, 2}, {6.01, 3}, {7.0, 3}, {7.01, 4});
    POINTS(LOINC_POTASSIUM, 3.5, 5.1, NAN, NAN, {3.5, 0}, {3.4, 1}, {3.0, 1}, {2.99, 3},
           {2.5, 3}, {2.49, 4});
    CHECK_EQ_INT(grade_full(LOINC_POTASSIUM, 6.8, 3.5, 5.1, NAN, NAN, NAN, &t), 3);
    CHECK_EQ_INT(t, CTCAE_HYPERKALEMIA);
    CHECK_EQ_STR(ctcae_term_name(t), "Hyperkalemia");
    CHECK_EQ_INT(grade_full(LOINC_POTASSIUM, 3.2, 3.5, 5.1, NAN, NAN, NAN, &t), 1);
    CHECK_EQ_INT(t, CTCAE_HYPOKALEMIA);
    CHECK_EQ_INT(grade_full(LOINC_POTASSIUM, 4.0, 3.5, 5.1, NAN, NAN, NAN, &t), 0);
    CHECK_EQ_INT(t, CTCAE_NONE);
    /* Without a range only the absolute grades apply. */
    CHECK_EQ_INT(grade(LOINC_POTASSIUM, 5.4, NAN, NAN), 0);
    CHECK_EQ_INT(grade(LOINC_POTASSIUM, 5.6, NAN, NAN), 2);
    CHECK_EQ_INT(grade(LOINC_POTASSIUM, 2.9, NAN, NAN), 3);

    /* Sodium 135-145 mmol/L: 125-129 asymptomatic is G2. */
    POINTS(LOINC_SODIUM, 135, 145, NAN, NAN, {145, 0}, {146, 1}, {150, 1}, {151, 2}, {155, 2},
           {156, 3}, {160, 3}, {161, 4});
    POINTS(LOINC_SODIUM, 135, 145, NAN, NAN, {135, 0}, {134, 1}, {130, 1}, {129.5, 2}, {129, 2},
           {125, 2}, {124, 3}, {120, 3}, {119, 4});
    CHECK_EQ_INT(grade_full(LOINC_SODIUM, 129, 135, 145, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_HYPONATREMIA);
    CHECK_EQ_INT(grade_full(LOINC_SODIUM, 151, 135, 145, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_HYPERNATREMIA);
}

static void test_decreases(void)
{
    /* Glucose 3.9-5.5 mmol/L: only hypoglycemia is graded. */
    POINTS(LOINC_GLUCOSE, 3.9, 5.5, NAN, NAN, {3.9, 0}, {3.8, 1}, {3.0, 1}, {2.99, 2}, {2.2, 2},
           {2.19, 3}, {1.7, 3}, {1.69, 4}, {20.0, 0});
    /* Haemoglobin 120-160 g/L: no G4 from the value. */
    POINTS(LOINC_HAEMOGLOBIN, 120, 160, NAN, NAN, {120, 0}, {119, 1}, {100, 1}, {99, 2}, {80, 2},
           {79, 3}, {40, 3});
    /* Neutrophils 2.0-7.5 x10^9/L. */
    POINTS(LOINC_NEUTROPHILS, 2.0, 7.5, NAN, NAN, {2.0, 0}, {1.9, 1}, {1.5, 1}, {1.49, 2},
           {1.0, 2}, {0.99, 3}, {0.5, 3}, {0.49, 4});
    /* Platelets 150-400 x10^9/L. */
    POINTS(LOINC_PLATELETS, 150, 400, NAN, NAN, {150, 0}, {149, 1}, {75, 1}, {74.9, 2}, {50, 2},
           {49.9, 3}, {25, 3}, {24.9, 4});
    enum ctcae_term t;
    CHECK_EQ_INT(grade_full(LOINC_PLATELETS, 74.9, 150, 400, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_PLATELETS_DECREASED);
    CHECK_EQ_INT(grade_full(LOINC_HAEMOGLOBIN, 99, 120, 160, NAN, NAN, NAN, &t), 2);
    CHECK_EQ_INT(t, CTCAE_ANEMIA);
}

static void test_qtc(void)
{
    POINTS(LOINC_QTC, NAN, NAN, NAN, NAN, {449, 0}, {450, 1}, {480, 1}, {481, 2}, {500, 2},
           {501, 3}, {600, 3});
    /* More than 60 ms over the baseline is G3 whatever the value. */
    POINTS(LOINC_QTC, NAN, NAN, 400, NAN, {440, 0}, {460, 1}, {461, 3});
}

static void test_table(void)
{
    enum ctcae_term t = CTCAE_HYPERKALEMIA;
    CHECK_EQ_INT(grade_full("0000-0", 1e9, 0, 1, NAN, NAN, NAN, &t), 0);
    CHECK_EQ_INT(t, CTCAE_NONE);
    CHECK_EQ_INT(ctcae_lab_count(), 12);
    CHECK_EQ_INT(ctcae_lab_index(LOINC_ALT), 0);
    CHECK_EQ_INT(ctcae_lab_index("nope"), -1);
    CHECK_EQ_STR(ctcae_analyte_name(LOINC_POTASSIUM), "potassium");
    CHECK(ctcae_analyte_name("nope") == NULL);
    CHECK_EQ_STR(ctcae_term_name(CTCAE_NONE), "");
    /* Every lab in the table has a canonical unit in the cleaning table. */
    static const char *const all[] = {LOINC_ALT,        LOINC_AST,         LOINC_ALP,
                                      LOINC_BILIRUBIN,  LOINC_CREATININE,  LOINC_POTASSIUM,
                                      LOINC_SODIUM,     LOINC_GLUCOSE,     LOINC_HAEMOGLOBIN,
                                      LOINC_NEUTROPHILS, LOINC_PLATELETS,  LOINC_QTC};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        CHECK(ctcae_lab_index(all[i]) >= 0);
        CHECK(clean_canonical_unit(all[i]) != NULL);
    }
}

int main(void)
{
    test_liver();
    test_creatinine();
    test_electrolytes();
    test_decreases();
    test_qtc();
    test_table();
    return testlib_done();
}
