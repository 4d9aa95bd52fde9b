/*
 * ctcae: CTCAE v5.0 lab grading (see ctcae.h for the contract and
 * /work/shared/clinical/ctcae-v5-lab_table.md for the table it encodes).
 *
 * Each grader walks its grades from the most severe down, so the first
 * boundary crossed decides; "above" means strictly above a boundary, which
 * is how CTCAE's ">3.0-5.0 x ULN" ranges read.
 */
#include "ctcae.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "boundary.h"

struct lab {
    const char *loinc;
    const char *name; /* for messages */
};

/* Order is the index ctcae_lab_index() returns; rules store it in a bitmask. */
static const struct lab lab_table[] = {
    {LOINC_ALT, "ALT"},
    {LOINC_AST, "AST"},
    {LOINC_ALP, "ALP"},
    {LOINC_BILIRUBIN, "total bilirubin"},
    {LOINC_CREATININE, "creatinine"},
    {LOINC_POTASSIUM, "potassium"},
    {LOINC_SODIUM, "sodium"},
    {LOINC_GLUCOSE, "glucose"},
    {LOINC_HAEMOGLOBIN, "haemoglobin"},
    {LOINC_NEUTROPHILS, "neutrophils"},
    {LOINC_PLATELETS, "platelets"},
    {LOINC_QTC, "QTc"},
};

#define NLABS ((int)(sizeof lab_table / sizeof lab_table[0]))

static const char *const term_names[] = {
    [CTCAE_NONE] = "",
    [CTCAE_ALT_INCREASED] = "Alanine aminotransferase increased",
    [CTCAE_AST_INCREASED] = "Aspartate aminotransferase increased",
    [CTCAE_ALP_INCREASED] = "Alkaline phosphatase increased",
    [CTCAE_BILIRUBIN_INCREASED] = "Blood bilirubin increased",
    [CTCAE_CREATININE_INCREASED] = "Creatinine increased",
    [CTCAE_HYPERKALEMIA] = "Hyperkalemia",
    [CTCAE_HYPOKALEMIA] = "Hypokalemia",
    [CTCAE_HYPERNATREMIA] = "Hypernatremia",
    [CTCAE_HYPONATREMIA] = "Hyponatremia",
    [CTCAE_HYPOGLYCEMIA] = "Hypoglycemia",
    [CTCAE_ANEMIA] = "Anemia",
    [CTCAE_NEUTROPHILS_DECREASED] = "Neutrophil count decreased",
    [CTCAE_PLATELETS_DECREASED] = "Platelet count decreased",
    [CTCAE_QTC_PROLONGED] = "Electrocardiogram QT corrected interval prolonged",
};

/* Grades an increase as multiples m[0] (G1) .. m[3] (G4) of REF, each grade
 * starting strictly above its multiple, except G1 when g1_inclusive. */
static int grade_multiples(double v, double ref, const double m[4], bool g1_inclusive)
{
    for (int g = 4; g >= 2; g--)
        if (boundary_above(v, m[g - 1] * ref))
            return g;
    if (g1_inclusive ? boundary_at_least(v, m[0] * ref) : boundary_above(v, m[0] * ref))
        return 1;
    return 0;
}

/* The baseline was above its own ULN (the current ULN when it had none). */
static bool baseline_high(const struct subject_result *b, const struct clean_result *c)
{
    if (b == NULL || b->value <= 0.0)
        return false;
    if (b->has_ref_high)
        return boundary_above(b->value, b->ref_high);
    return c->has_ref_high && boundary_above(b->value, c->ref_high);
}

/* ALT, AST, ALP, bilirubin: ULN multiples, or baseline multiples when the
 * baseline was abnormal. */
static int grade_liver(double v, const struct clean_result *c, const struct subject_result *b,
                       const double uln_m[4], const double base_m[4], bool base_g1_inclusive)
{
    if (baseline_high(b, c))
        return grade_multiples(v, b->value, base_m, base_g1_inclusive);
    if (!c->has_ref_high || c->ref_high <= 0.0)
        return 0;
    return grade_multiples(v, c->ref_high, uln_m, false);
}

static int grade_creatinine(double v, const struct clean_result *c,
                            const struct subject_result *b)
{
    int g = 0;
    if (c->has_ref_high && c->ref_high > 0.0) {
        static const double m[4] = {1.0, 1.5, 3.0, 6.0};
        g = grade_multiples(v, c->ref_high, m, false);
    }
    if (b != NULL && b->value > 0.0) {
        int gb = 0;
        if (boundary_above(v, 3.0 * b->value))
            gb = 3;
        else if (boundary_above(v, 1.5 * b->value))
            gb = 2;
        if (gb > g)
            g = gb;
    }
    return g;
}

/* An absolute-value increase: G1 above ULN, G2..G4 above t[0..2]. */
static int grade_high_abs(double v, const struct clean_result *c, const double t[3])
{
    for (int g = 4; g >= 2; g--)
        if (boundary_above(v, t[g - 2]))
            return g;
    if (c->has_ref_high && boundary_above(v, c->ref_high))
        return 1;
    return 0;
}

/* An absolute-value decrease: G1 below LLN, G2..G4 below t[0..2] (a NaN
 * threshold means the grade is clinical only). */
static int grade_low_abs(double v, const struct clean_result *c, const double t[3])
{
    for (int g = 4; g >= 2; g--)
        if (!isnan(t[g - 2]) && boundary_below(v, t[g - 2]))
            return g;
    if (c->has_ref_low && boundary_below(v, c->ref_low))
        return 1;
    return 0;
}

int ctcae_grade(const char *loinc, double value, const struct clean_result *c,
                const struct subject_result *baseline, enum ctcae_term *term)
{
    /* ALT/AST: G1 >ULN or 1.5-3.0 x abnormal baseline, then >3, >5, >20. */
    static const double transaminase_uln[4] = {1.0, 3.0, 5.0, 20.0};
    static const double transaminase_base[4] = {1.5, 3.0, 5.0, 20.0};
    static const double alp_uln[4] = {1.0, 2.5, 5.0, 20.0};
    static const double alp_base[4] = {2.0, 2.5, 5.0, 20.0};
    static const double bili_m[4] = {1.0, 1.5, 3.0, 10.0};

    enum ctcae_term t = CTCAE_NONE;
    int g = 0;

    if (strcmp(loinc, LOINC_ALT) == 0 || strcmp(loinc, LOINC_AST) == 0) {
        t = strcmp(loinc, LOINC_ALT) == 0 ? CTCAE_ALT_INCREASED : CTCAE_AST_INCREASED;
        g = grade_liver(value, c, baseline, transaminase_uln, transaminase_base, true);
    } else if (strcmp(loinc, LOINC_ALP) == 0) {
        t = CTCAE_ALP_INCREASED;
        g = grade_liver(value, c, baseline, alp_uln, alp_base, true);
    } else if (strcmp(loinc, LOINC_BILIRUBIN) == 0) {
        t = CTCAE_BILIRUBIN_INCREASED;
        g = grade_liver(value, c, baseline, bili_m, bili_m, false);
    } else if (strcmp(loinc, LOINC_CREATININE) == 0) {
        t = CTCAE_CREATININE_INCREASED;
        g = grade_creatinine(value, c, baseline);
    } else if (strcmp(loinc, LOINC_POTASSIUM) == 0) {
        static const double hi[3] = {5.5, 6.0, 7.0};
        /* G2 hypokalemia needs symptoms: the value alone gives G1. */
        static const double lo[3] = {NAN, 3.0, 2.5};
        g = grade_high_abs(value, c, hi);
        t = CTCAE_HYPERKALEMIA;
        if (g == 0) {
            g = grade_low_abs(value, c, lo);
            t = CTCAE_HYPOKALEMIA;
        }
    } else if (strcmp(loinc, LOINC_SODIUM) == 0) {
        static const double hi[3] = {150.0, 155.0, 160.0};
        /* 125-129 is G2 when asymptomatic, G3 only with symptoms. */
        static const double lo[3] = {130.0, 125.0, 120.0};
        g = grade_high_abs(value, c, hi);
        t = CTCAE_HYPERNATREMIA;
        if (g == 0) {
            g = grade_low_abs(value, c, lo);
            t = CTCAE_HYPONATREMIA;
        }
    } else if (strcmp(loinc, LOINC_GLUCOSE) == 0) {
        static const double lo[3] = {3.0, 2.2, 1.7};
        t = CTCAE_HYPOGLYCEMIA;
        g = grade_low_abs(value, c, lo);
    } else if (strcmp(loinc, LOINC_HAEMOGLOBIN) == 0) {
        static const double lo[3] = {100.0, 80.0, NAN};
        t = CTCAE_ANEMIA;
        g = grade_low_abs(value, c, lo);
    } else if (strcmp(loinc, LOINC_NEUTROPHILS) == 0) {
        static const double lo[3] = {1.5, 1.0, 0.5};
        t = CTCAE_NEUTROPHILS_DECREASED;
        g = grade_low_abs(value, c, lo);
    } else if (strcmp(loinc, LOINC_PLATELETS) == 0) {
        static const double lo[3] = {75.0, 50.0, 25.0};
        t = CTCAE_PLATELETS_DECREASED;
        g = grade_low_abs(value, c, lo);
    } else if (strcmp(loinc, LOINC_QTC) == 0) {
        t = CTCAE_QTC_PROLONGED;
        if (boundary_above(value, 500.0) ||
            (baseline != NULL && boundary_above(value - baseline->value, 60.0)))
            g = 3;
        else if (boundary_above(value, 480.0))
            g = 2;
        else if (boundary_at_least(value, 450.0))
            g = 1;
    }

    if (g == 0)
        t = CTCAE_NONE;
    if (term != NULL)
        *term = t;
    return g;
}

int ctcae_lab_index(const char *loinc)
{
    for (int i = 0; i < NLABS; i++)
        if (strcmp(loinc, lab_table[i].loinc) == 0)
            return i;
    return -1;
}

int ctcae_lab_count(void)
{
    return NLABS;
}

const char *ctcae_analyte_name(const char *loinc)
{
    int i = ctcae_lab_index(loinc);
    return i < 0 ? NULL : lab_table[i].name;
}

const char *ctcae_term_name(enum ctcae_term term)
{
    if ((int)term < 0 || (size_t)term >= sizeof term_names / sizeof term_names[0])
        return "";
    return term_names[term];
}
