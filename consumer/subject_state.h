/*
 * subject_state: what the rules engine remembers about one subject between
 * observations — the baseline result per LOINC and the recent liver results
 * composite rules (Hy's law) match against.
 *
 * Interface routines:
 *   subject_state_new / _destroy
 *   subject_state_add        record (or replace) one observation
 *   subject_state_remove     forget one observation (entered-in-error)
 *   subject_state_baseline   the subject's baseline result for a LOINC
 *   subject_state_results    the kept results for a liver LOINC, by time
 *
 * Usable results: status final/amended/corrected, cleaned to CLEAN_OK with a
 * value. Anything else never counts; adding it removes an earlier version
 * with the same observation id (an amendment that became unusable).
 *
 * Baseline: the usable result with the earliest effective time (ties broken
 * by observation id), whatever order results arrive in: a late arrival with
 * an earlier effective time takes over. The SUBJECT_STATE_BASELINE_KEEP
 * earliest results per LOINC are kept, so retracting the baseline promotes
 * the next one; if every kept one is retracted the next arrival becomes the
 * baseline (results dropped earlier are not known any more).
 *
 * Recent results: kept for ALT, AST, ALP and total bilirubin only, at most
 * SUBJECT_STATE_RECENT_MAX per LOINC; when full, the one with the oldest
 * effective time is dropped (a new result older than all kept ones is not
 * kept). Storage grows on demand, so a subject with few liver results costs
 * little.
 *
 * Memory bound per subject: SUBJECT_STATE_LOINCS slots of
 * SUBJECT_STATE_BASELINE_KEEP results (about 6 KiB when all are used) plus
 * 4 x 64 liver results (about 26 KiB worst case). Results for more than
 * SUBJECT_STATE_LOINCS different LOINCs are ignored (the cleaning table has
 * 12 codes, the only ones that can be usable).
 *
 * Thread-safety: none inside. One analysis thread owns a subject's state;
 * different states may be used from different threads.
 */
#ifndef VIGIL_SUBJECT_STATE_H
#define VIGIL_SUBJECT_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "clean.h"
#include "observation.h"

#define SUBJECT_STATE_LOINCS 16
#define SUBJECT_STATE_BASELINE_KEEP 4
#define SUBJECT_STATE_RECENT_MAX 64

/* One kept result, normalised to its LOINC's canonical unit. */
struct subject_result {
    char observation_id[OBS_ID_MAX + 1];
    uint64_t id_hash; /* FNV-1a of observation_id: compared before the string */
    int64_t effective_ms;
    double value;
    bool has_ref_low;
    double ref_low;
    bool has_ref_high;
    double ref_high;
};

struct subject_state;

/* Returns a new empty state, or NULL if out of memory. Free with
 * subject_state_destroy(). */
struct subject_state *subject_state_new(void);

/* Frees ST and everything it holds. NULL is a no-op. */
void subject_state_destroy(struct subject_state *st);

/*
 * Records OBS (cleaned as C) for the subject: used for live results after
 * rules_eval() and to warm up from stored rows after a restart, in any order.
 * Any earlier version with the same observation id is replaced; a cancelled,
 * entered-in-error or otherwise unusable result only removes it.
 * Returns 0, or -1 if out of memory (then ST is unchanged). Copies what it
 * keeps: OBS and C stay the caller's.
 */
int subject_state_add(struct subject_state *st, const struct observation *obs,
                      const struct clean_result *c);

/* Forgets every kept result with OBSERVATION_ID (a retraction); a retracted
 * baseline is replaced by the next kept result. Returns how many entries
 * were removed (0 if none). Cannot fail. */
int subject_state_remove(struct subject_state *st, const char *observation_id);

/* Returns the subject's baseline result for LOINC, or NULL if none. The
 * pointer is into ST: valid until ST is next changed. Does not change ST. */
const struct subject_result *subject_state_baseline(const struct subject_state *st,
                                                    const char *loinc);

/* Points *OUT at the kept recent results for LOINC (ALT, AST, ALP or total
 * bilirubin), sorted by effective time, oldest first, and returns their
 * number (0 for other LOINCs, *OUT then NULL). Valid until ST is next
 * changed. Does not change ST. */
int subject_state_results(const struct subject_state *st, const char *loinc,
                          const struct subject_result **out);

#endif
