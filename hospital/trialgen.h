/*
 * trialgen: a synthetic clinical trial, for demos, tests and benchmarks
 * (`vigil produce --generate N --seed S`).
 *
 * The trial: K studies ("STUDY-001"), each with sites ("SITE-101": study 1,
 * site 01), each with subjects (pseudonyms "S-101-0042"). Every subject
 * follows the same visit schedule -- SCR (day -14), C1D1 (day 0), W2, W4,
 * W6, W8, W12, then every 4 weeks -- and at each visit has a panel of the
 * 12 lab and ECG codes vigil analyses (consumer/clean.h) and, with
 * symptoms on, a patient-reported symptom report of TRIALGEN_SYMPTOMS
 * PRO-CTCAE items (common/proctcae.h: scores 0-4, mostly none or mild; a
 * few subjects' symptoms worsen from W4 on, some to severe). Records come
 * visit by visit (all subjects' screening, then all baselines, ...), so
 * event time moves forward as a real feed's would.
 *
 * Time: nothing is dated after end_ms (when set): every record's effective
 * and issue times (amendments' included) are before it. The trial keeps
 * the visits that fit between start_ms and end_ms; the records after the
 * last of them belong to the next enrolment wave -- new subjects (their
 * pseudonyms numbered on, "S-101-0021" after "S-101-0020") on the same
 * schedule -- so a long run grows the trial, never into the future.
 * trialgen_start_for() picks the start that fits N records before an end.
 *
 * Values: each subject has its own baseline per test (population mean and
 * between-subject spread) and varies around it visit to visit. Each site
 * reports in one of three unit conventions -- SI (mmol/L, umol/L, g/L),
 * US conventional (mg/dL, g/dL, 10*3/uL, mEq/L) or Nordic (ukat/L for
 * enzymes, haemoglobin in mmol/L) -- with the reference range in the same
 * unit. A small share is made abnormal on purpose (about 4%: mildly outside
 * the range; with natural variation about 12% of results fall outside),
 * critical (about 0.3%: e.g. potassium 6.8 mmol/L, platelets 15 x10^9/L),
 * amended (0.5%: a corrected value re-issued under the previous visit's
 * observation id), entered-in-error (0.2%: the previous visit's result
 * withdrawn) or cancelled (0.1%: no value). About 1.5% of subjects, and
 * always at least one, develop a Hy's law pattern from W4 on: ALT and AST
 * above 3x ULN with total bilirubin above 2x ULN and ALP normal.
 *
 * Deterministic: record I of a trial depends only on the options and I
 * (counter-based hashing, no hidden state), so the same seed gives the
 * same records, byte for byte, and any record can be made directly. The
 * observation id "OBS-<seed hex>-<I>" is stable, so re-running is a replay.
 *
 * Thread-safety: a struct trialgen is immutable after trialgen_init; any
 * number of threads may call trialgen_get on it.
 */
#ifndef VIGIL_TRIALGEN_H
#define VIGIL_TRIALGEN_H

#include <stdint.h>

#include "observation.h"

#define TRIALGEN_TESTS        12 /* labs and ECG per visit */
#define TRIALGEN_SYMPTOMS     6  /* symptom items per visit, when on */
#define TRIALGEN_MAX_STUDIES 999
#define TRIALGEN_MAX_SITES 99
#define TRIALGEN_MAX_SUBJECTS 9999

struct trialgen {
    uint64_t seed;
    int studies;           /* 1..TRIALGEN_MAX_STUDIES */
    int sites_per_study;   /* 1..TRIALGEN_MAX_SITES */
    int subjects_per_site; /* 1..TRIALGEN_MAX_SUBJECTS */
    int64_t start_ms;      /* day 0 of study 1, site 01 (ms since the epoch) */
    int64_t end_ms;        /* nothing dated after this; 0: no end (one wave) */
    bool symptoms;         /* add a symptom report to every visit */
};

/* The defaults: seed 1, 2 studies x 3 sites x 20 subjects, day 0 =
 * 2025-01-06T00:00:00Z, no end, no symptoms. Cannot fail. */
void trialgen_init(struct trialgen *g);

/* Returns the records per visit (all subjects' panels and reports). */
uint64_t trialgen_per_visit(const struct trialgen *g);

/* Returns the visits of one enrolment wave: those whose records all fall
 * before end_ms (UINT64_MAX without an end; 0 when start_ms is too late for
 * even the screening visit). */
uint64_t trialgen_visits(const struct trialgen *g);

/* Returns a start (midnight UTC) for G's trial such that its first N
 * records fit before END_MS (N = 0: 20 visits, W68; at most 43 visits, W156,
 * about three years: beyond, the trial grows by enrolment waves). */
int64_t trialgen_start_for(const struct trialgen *g, uint64_t n, int64_t end_ms);

/* Returns the number of subjects in the trial. */
uint64_t trialgen_subjects(const struct trialgen *g);

/* Makes record INDEX (0-based) of the trial into *OUT. Cannot fail (the
 * sizes must be in their ranges and trialgen_visits() not 0: asserted).
 * Thread-safe; allocates nothing. */
void trialgen_get(const struct trialgen *g, uint64_t index, struct observation *out);

/* Returns true if subject number SUBJECT (0-based, in the order records
 * use) is one of the Hy's law subjects. For tests. */
bool trialgen_is_hys_subject(const struct trialgen *g, uint64_t subject);

#endif
