/*
 * ctcae: CTCAE v5.0 grading of the laboratory results vigil knows
 * (/work/shared/clinical/ctcae-v5-labs.md is the reference this follows).
 *
 * Interface routines:
 *   ctcae_grade()          grade 0..4 and the term of one normalised result
 *   ctcae_lab_index()      position of a LOINC in the graded-lab table
 *   ctcae_lab_count()      size of that table
 *   ctcae_analyte_name()   short analyte name for messages ("potassium", "ALT")
 *   ctcae_term_name()      CTCAE term ("Hyperkalemia")
 *
 * Values are in the canonical unit of consumer/clean.h; ULN/LLN are the
 * result's own reference range, converted with the value.
 *
 * Boundaries: CTCAE writes ranges such as "G2 >3.0-5.0 x ULN", so a value of
 * exactly 3.0 x ULN is G1. A value within one part in 10^9 of a boundary is
 * treated as on it (boundary.h, shared with the rules).
 * Integer ranges (sodium 125-129, QTc 481-500) are read as half-open on the
 * side of the more severe grade: Na 129.5 is G2, QTc 500.5 is G3.
 * Where a grade needs symptoms (G2 hypokalemia, G3 hyponatremia 125-129) the
 * value alone gives the lower grade; G4 anemia and G4 QTc are clinical only.
 *
 * Pure functions over caller-owned memory: thread-safe, allocate nothing.
 */
#ifndef VIGIL_CTCAE_H
#define VIGIL_CTCAE_H

#include "clean.h"
#include "subject_state.h"

enum ctcae_term {
    CTCAE_NONE = 0,
    CTCAE_ALT_INCREASED,
    CTCAE_AST_INCREASED,
    CTCAE_ALP_INCREASED,
    CTCAE_BILIRUBIN_INCREASED,
    CTCAE_CREATININE_INCREASED,
    CTCAE_HYPERKALEMIA,
    CTCAE_HYPOKALEMIA,
    CTCAE_HYPERNATREMIA,
    CTCAE_HYPONATREMIA,
    CTCAE_HYPOGLYCEMIA,
    CTCAE_ANEMIA,
    CTCAE_NEUTROPHILS_DECREASED,
    CTCAE_PLATELETS_DECREASED,
    CTCAE_QTC_PROLONGED,
};

/* LOINC codes the rules engine refers to by name. */
#define LOINC_ALT "1742-6"
#define LOINC_AST "1920-8"
#define LOINC_ALP "6768-6"
#define LOINC_BILIRUBIN "1975-2"
#define LOINC_CREATININE "2160-0"
#define LOINC_POTASSIUM "2823-3"
#define LOINC_SODIUM "2951-2"
#define LOINC_GLUCOSE "2345-7"
#define LOINC_HAEMOGLOBIN "718-7"
#define LOINC_NEUTROPHILS "751-8"
#define LOINC_PLATELETS "777-3"
#define LOINC_QTC "8636-3"

/*
 * Grades VALUE (normalised, in the canonical unit of LOINC) against the
 * reference range in C (c->value is not read: the caller passes the value)
 * and, where CTCAE says so, against the subject's BASELINE result for the
 * same test (NULL if there is none, or if this result is the baseline).
 *
 * The abnormal-baseline branch (ALT, AST, ALP, bilirubin) is used when the
 * baseline value was above its own ULN (the baseline's range, else C's);
 * creatinine takes the higher of its ULN- and baseline-based grades; QTc is
 * G3 when more than 60 ms over the baseline.
 *
 * Returns 0..4 (0: normal, not gradable for lack of a reference range, or a
 * LOINC CTCAE does not grade) and stores the term in *TERM when TERM is not
 * NULL (CTCAE_NONE with grade 0). Cannot fail.
 */
int ctcae_grade(const char *loinc, double value, const struct clean_result *c,
                const struct subject_result *baseline, enum ctcae_term *term);

/* Returns the index (0 .. ctcae_lab_count()-1) of LOINC in the table of
 * graded labs, or -1 if CTCAE grading does not cover it. Cannot fail. */
int ctcae_lab_index(const char *loinc);

/* Returns the number of labs in the graded-lab table (fits in 32 bits). */
int ctcae_lab_count(void);

/* Returns a short static analyte name for messages ("potassium", "ALT",
 * "total bilirubin"), or NULL for a LOINC not in the table. */
const char *ctcae_analyte_name(const char *loinc);

/* Returns the static CTCAE term name ("Hyperkalemia"); "" for CTCAE_NONE. */
const char *ctcae_term_name(enum ctcae_term term);

#endif
