/*
 * rules: the analysis stage's rule set — parsed and validated from YAML
 * (schemas/rules.example.yaml), then evaluated against each cleaned
 * observation and the subject's state.
 *
 * Interface routines:
 *   rules_parse / rules_load_file   validate a whole rules file into a set
 *   rules_destroy
 *   rules_count / rules_id          what the set holds (for `vigil rules check`)
 *   rules_max_alerts                room rules_eval() may need
 *   rules_eval                      the alerts one observation raises
 *   rules_eval_deps                 ... from the rules of some dependency classes
 *   rules_dep / rules_deps          what a rule's (the set's) verdicts depend on
 *   rules_pair_window_ms            the widest window of the pair rules
 *
 * A set is immutable once built, so one set can be published as a snapshot
 * and read by every analysis thread at once; a file that does not validate
 * yields no set, so a reload keeps the old one.
 *
 * Rule kinds (values are compared in the LOINC's canonical unit, see clean.h):
 *   threshold        value OP limit (> >= < <=)
 *   ref_multiple     value > multiple x ULN (bound high) or < multiple x LLN
 *                    (bound low) of the result's own reference range
 *   ctcae            CTCAE v5 grade >= min_grade (ctcae.h)
 *   baseline_change  against the subject's baseline for the LOINC: fires when
 *                    value >= ratio x baseline (ratio > 1) or <= ratio x
 *                    baseline (ratio < 1), or when value - baseline >= delta
 *                    (delta > 0) or <= delta (delta < 0); with both ratio and
 *                    delta, either one fires (as KDIGO's creatinine criteria)
 *   hys_law          ALT or AST >= 3 x ULN and total bilirubin > 2 x ULN with
 *                    effective times within window_days of each other, unless
 *                    an ALP result within window_days of both is >= 2 x ULN
 *   pro_ctcae        a patient-reported symptom item (common/proctcae.h) of
 *                    the listed attributes (default frequency, severity,
 *                    interference) and symptoms (default all) scoring at
 *                    least min_score; severity, or severity_by_score per score
 *   pro_ctcae_worsening  the same item's score up by min_increase (default 2)
 *                    or more from the subject's previous report of it (the
 *                    latest earlier one by effective time)
 *
 * What a verdict depends on (rules_dep): the result alone (threshold,
 * ref_multiple, pro_ctcae), the result and its code's baseline (ctcae,
 * baseline_change), the result and the previous result of its code
 * (pro_ctcae_worsening), pairs of results within a window (hys_law). The
 * reconciliation of late results (reconcile.h) re-judges by these classes.
 *
 * Alert ids are deterministic (see rules_eval()).
 */
#ifndef VIGIL_RULES_H
#define VIGIL_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "clean.h"
#include "observation.h"
#include "subject_state.h"

#define RULES_FILE_MAX (1024 * 1024) /* bytes */
#define RULES_MAX 256                /* rules per file */
#define RULES_HYS_PAIRS_MAX 8        /* Hy's law alerts one observation can raise */

/* What a rule's verdict on a result depends on, besides the result. */
enum rules_dep {
    RULES_DEP_SINGLE = 1 << 0,   /* nothing else */
    RULES_DEP_BASELINE = 1 << 1, /* the baseline of the result's code */
    RULES_DEP_PREVIOUS = 1 << 2, /* the previous result of the result's code */
    RULES_DEP_PAIR = 1 << 3,     /* other results within a window (Hy's law) */
};
#define RULES_DEP_ALL 0xfu

struct rules;

/*
 * Parses and validates the rules file TEXT (LEN bytes, need not be
 * NUL-terminated); FILENAME is only used in messages.
 * Returns a new rule set (free with rules_destroy()), or NULL with every
 * problem found (up to a limit) written to ERRSTR, one per line, each as
 * "FILENAME:LINE:COLUMN: message" — the first line is the first problem.
 * Thread-safe.
 */
struct rules *rules_parse(const char *text, size_t len, const char *filename, char *errstr,
                          size_t errsz);

/* Reads the file at PATH (at most RULES_FILE_MAX bytes) and parses it as
 * rules_parse() does. Returns the set, or NULL with the reason in ERRSTR. */
struct rules *rules_load_file(const char *path, char *errstr, size_t errsz);

/* Frees R. NULL is a no-op. */
void rules_destroy(struct rules *r);

/* Returns the number of rules in R. Cannot fail. */
int rules_count(const struct rules *r);

/* Returns the id of rule I (0 <= I < rules_count()), owned by R. */
const char *rules_id(const struct rules *r, int i);

/* Returns how many alerts one rules_eval() call on R can write at most:
 * size its OUT array with this and none is ever dropped. */
int rules_max_alerts(const struct rules *r);

/*
 * Evaluates every rule of R against OBS (cleaned as C) and the subject's
 * state ST, writing up to MAX_OUT alerts to OUT; returns how many.
 *
 * Only results with status final/amended/corrected, a value and
 * c->status == CLEAN_OK raise alerts. ST is read, never changed; OBS may or
 * may not be among ST's kept results already (a kept result is never its
 * own baseline, previous report or partner). Every alert's observed_ms is
 * obs->effective_ms and detected_ms is NOW_MS.
 *
 * Alert ids: 32 lowercase hex digits, a 128-bit hash of (rule id, rule
 * version, observation id, verdict) with verdict = CTCAE grade for ctcae
 * rules, the score for pro_ctcae rules, else 0; for Hy's law, of (rule id,
 * rule version, study, subject, the sorted ids of the transaminase and
 * bilirubin results) -- ALP evidence is context and not hashed, so the
 * same pair has the same id whatever arrived last; likewise the baseline
 * or previous report an alert cites is context. Exact recipe, so other
 * tools can recompute an id: the input is the domain ("observation" or
 * "hys_law") then the fields above in order, each string as its byte
 * length (8 bytes little-endian) and bytes, each integer as 8 bytes
 * little-endian; the id is FNV-1a-64 of "vigil/a/" + input, then FNV-1a-64
 * of "vigil/b/" + input, each %016x.
 *
 * Hy's law pairs the result (ALT/AST or bilirubin) with every qualifying
 * partner in ST (nearest in time first, at most RULES_HYS_PAIRS_MAX), so
 * the pairs a subject's results make do not depend on the order the
 * results arrived in.
 *
 * Allocates nothing. Thread-safe for concurrent calls on the same R with
 * different ST.
 */
int rules_eval(const struct rules *r, const struct subject_state *st,
               const struct observation *obs, const struct clean_result *c, int64_t now_ms,
               struct alert *out, int max_out);

/* rules_eval() with only the rules whose rules_dep() is in DEPS (a mask of
 * enum rules_dep). */
int rules_eval_deps(const struct rules *r, const struct subject_state *st,
                    const struct observation *obs, const struct clean_result *c, int64_t now_ms,
                    unsigned deps, struct alert *out, int max_out);

/* Returns the dependency class of the rule RULE_ID at version VERSION, or
 * 0 if R has no such rule at that version (a rule reloaded since raised
 * the alert in hand). Cannot fail. */
unsigned rules_dep(const struct rules *r, const char *rule_id, int32_t version);

/* Returns the union of the dependency classes of R's rules. */
unsigned rules_deps(const struct rules *r);

/* Returns the widest window of R's pair rules (Hy's law) in ms, or -1 if R
 * has none. */
int64_t rules_pair_window_ms(const struct rules *r);

#endif
