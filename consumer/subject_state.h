/*
 * subject_state: everything an analysis thread remembers about one subject
 * between observations — the baseline result per LOINC and the recent liver
 * results the rules match against (rules.h), and the alerts the subject
 * raised that no later result withdrew (what retract.h may withdraw).
 * Loaded from PostgreSQL by store_load.h, kept per thread by subject_cache.h.
 *
 * Interface routines:
 *   subject_state_new / _destroy
 *   subject_state_reset      forget everything (a rebalance: reload)
 *   subject_state_add        record (or replace) one observation
 *   subject_state_remove     forget one observation (entered-in-error)
 *   subject_state_baseline   the subject's baseline result for a LOINC
 *   subject_state_results    the kept results for a liver LOINC, by time
 *   subject_state_alert_add     remember an alert the subject raised
 *   subject_state_alerts        the remembered alerts, oldest first
 *   subject_state_alert_forget  forget one (it was withdrawn)
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
 * 4 x 64 liver results (about 26 KiB worst case) plus SUBJECT_STATE_ALERTS_MAX
 * remembered alerts (about 26 KiB worst case). Results for more than
 * SUBJECT_STATE_LOINCS different LOINCs are ignored (the cleaning table has
 * 12 codes, the only ones that can be usable).
 *
 * Raised alerts: at most SUBJECT_STATE_ALERTS_MAX, oldest first; when full
 * the oldest is forgotten. A forgotten alert can no longer be withdrawn from
 * this memory, but its row stays in PostgreSQL (and is loaded again, newest
 * first, when the subject is next loaded).
 *
 * Thread-safety: none inside. One analysis thread owns a subject's state;
 * different states may be used from different threads.
 */
#ifndef VIGIL_SUBJECT_STATE_H
#define VIGIL_SUBJECT_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "alert.h"
#include "clean.h"
#include "observation.h"

#define SUBJECT_STATE_LOINCS 16
#define SUBJECT_STATE_BASELINE_KEEP 4
#define SUBJECT_STATE_RECENT_MAX 64
#define SUBJECT_STATE_ALERTS_MAX 64 /* raised alerts remembered */

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

/* An alert the subject raised (a signal) and no later result withdrew:
 * enough to decide whether a withdrawn or amended result takes it back and
 * to write the retraction (retract.h). */
struct subject_alert {
    char alert_id[ALERT_ID_MAX + 1];
    char rule_id[ALERT_RULE_MAX + 1];
    int32_t rule_version;
    enum alert_severity severity;
    int nobs; /* evidence observations, at most ALERT_EVIDENCE_MAX */
    char obs_ids[ALERT_EVIDENCE_MAX][OBS_ID_MAX + 1];
};

struct subject_state;

/* Returns a new empty state, or NULL if out of memory. Free with
 * subject_state_destroy(). */
struct subject_state *subject_state_new(void);

/* Frees ST and everything it holds. NULL is a no-op. */
void subject_state_destroy(struct subject_state *st);

/* Empties ST as if new (results and raised alerts), keeping the storage of
 * the alert list. Cannot fail. */
void subject_state_reset(struct subject_state *st);

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

/* Remembers the alert AL (its id, rule, severity and evidence ids) as
 * raised by the subject, after the ones remembered before; an alert id
 * already remembered is not added twice. When SUBJECT_STATE_ALERTS_MAX are
 * remembered the oldest is forgotten first. Out of memory, AL is not
 * remembered (as if forgotten at once). Copies what it keeps. */
void subject_state_alert_add(struct subject_state *st, const struct alert *al);

/* Points *OUT at the remembered alerts, oldest first, and returns their
 * number (*OUT may be NULL when 0). Valid until ST is next changed. Does
 * not change ST. */
int subject_state_alerts(const struct subject_state *st, const struct subject_alert **out);

/* Forgets the remembered alert ALERT_ID (it was withdrawn); the others keep
 * their order. Returns whether it was remembered. Cannot fail. */
bool subject_state_alert_forget(struct subject_state *st, const char *alert_id);

#endif
