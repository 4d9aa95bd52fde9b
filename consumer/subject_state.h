/*
 * subject_state: everything an analysis thread remembers about one subject
 * between observations -- the subject's kept results per code (what the
 * rules and the reconciliation of late results read, rules.h and
 * reconcile.h), the version of every result it has seen, and its alerts:
 * those standing and those withdrawn. Loaded from PostgreSQL by
 * store_load.h, kept per thread by subject_cache.h.
 *
 * Interface routines:
 *   subject_state_new / _destroy
 *   subject_state_reset      forget everything (a rebalance: reload)
 *   subject_state_add        record (or replace) one observation
 *   subject_state_remove     forget one observation (entered-in-error)
 *   subject_state_find       a kept result by observation id, and its code
 *   subject_state_baseline   the subject's baseline result for a code
 *   subject_state_results    the kept results of a code, by time
 *   subject_state_count_at   kept results of a code system at one time
 *   subject_state_version / _version_set   the newest revision seen of an id
 *   subject_state_alert_add     remember an alert as standing
 *   subject_state_alerts        the standing alerts, oldest first
 *   subject_state_alert_forget  forget a standing alert
 *   subject_state_alert_retire  a standing alert was withdrawn
 *   subject_state_retired_add   remember a withdrawn alert (loading)
 *   subject_state_retired       the withdrawn alerts, oldest first
 *   subject_state_is_retired / _is_standing
 *
 * Usable results: status final/amended/corrected, cleaned to CLEAN_OK with a
 * value. Anything else never counts; adding it removes an earlier version
 * with the same observation id (an amendment that became unusable).
 *
 * Kept results, per code (labs and symptom items alike), sorted by
 * (effective time, observation id): the SUBJECT_STATE_BASELINE_KEEP
 * earliest and, up to SUBJECT_STATE_RESULTS_MAX in all, the latest. This is
 * the reconciliation window (reconcile.h): a result that arrives older than
 * every kept result but the earliest few is analysed but not kept.
 *
 * Baseline: the kept usable result with the earliest effective time (ties
 * broken by observation id), whatever order results arrive in: a late
 * arrival with an earlier effective time takes over, and retracting the
 * baseline promotes the next kept one.
 *
 * Versions: the newest revision (store.h's store_revision) seen of every
 * observation id, usable or not -- what tells a stale version arriving
 * after a newer one, or an original after its withdrawal, from news. Kept
 * by a 64-bit hash of the id (a collision, about one in 10^19 for a
 * subject's ids, would treat one result as an old version of another) for
 * up to SUBJECT_STATE_VERSIONS_MAX ids; past that, new ids are not recorded.
 *
 * Alerts: the standing ones (raised, not withdrawn), at most
 * SUBJECT_STATE_ALERTS_MAX, oldest first, the oldest forgotten when full;
 * and the withdrawn ones, at most SUBJECT_STATE_RETIRED_MAX likewise, so a
 * signal that holds again after its withdrawal is raised anew under a new
 * id (reconcile.h). A forgotten alert can no longer be withdrawn from this
 * memory, but its row stays in PostgreSQL (and is loaded again when the
 * subject is next loaded).
 *
 * Memory bound per subject, all grown on demand (by half again, not
 * doubling): SUBJECT_STATE_CODES codes of SUBJECT_STATE_RESULTS_MAX results
 * (72 bytes each, plus the id when longer than SUBJECT_RESULT_ID_INLINE),
 * 16 bytes x 2 per version, about 270 bytes per remembered alert.
 * Results of codes past SUBJECT_STATE_CODES are ignored.
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

#define SUBJECT_STATE_CODES         96
#define SUBJECT_STATE_BASELINE_KEEP 4
#define SUBJECT_STATE_RESULTS_MAX   64 /* kept per code, the baseline ones included */
#define SUBJECT_STATE_ALERTS_MAX    64 /* standing alerts remembered */
#define SUBJECT_STATE_RETIRED_MAX   64 /* withdrawn alerts remembered */
#define SUBJECT_STATE_VERSIONS_MAX  8192
#define SUBJECT_ALERT_IDS           2 /* evidence ids remembered per alert */

/* One kept result, normalised to its code's canonical unit. */
/* Ids up to this many bytes live in the record itself; a longer one (ids
 * are up to OBS_ID_MAX) is a separate allocation the state owns. Sized so
 * a record is 72 bytes, against 128 with every id inline: kept results are
 * most of a worker's memory (consumer/README.md). The generator's ids and
 * short EDC ids fit; the MLLP listener's (43 characters, hl7_map.c) and
 * UUIDs do not, and cost about what they did before (72 + a 44-byte
 * allocation). */
#define SUBJECT_RESULT_ID_INLINE 23

enum subject_result_id_where { SUBJECT_ID_INLINE = 0, SUBJECT_ID_OWNED, SUBJECT_ID_BORROWED };

struct subject_result {
    uint64_t id_hash; /* of the observation id: compared before the string */
    int64_t effective_ms;
    double value;
    double ref_low;
    double ref_high;
    union {
        char in[SUBJECT_RESULT_ID_INLINE + 1];
        const char *out; /* SUBJECT_ID_OWNED (the state's) or _BORROWED */
    } id;
    bool has_ref_low;
    bool has_ref_high;
    uint8_t id_where; /* enum subject_result_id_where */
};

/* R's observation id. Valid as long as R is (a kept result: until its
 * state is next changed). */
static inline const char *subject_result_id(const struct subject_result *r)
{
    return r->id_where == SUBJECT_ID_INLINE ? r->id.in : r->id.out;
}

/* Gives R, a result of the caller's own (not kept in a state), the id ID:
 * copied when short, else borrowed (ID must then outlive R). Sets
 * id_hash too. */
void subject_result_borrow_id(struct subject_result *r, const char *id);

/* An alert the subject raised (a signal): enough to decide whether a
 * result takes it back and to write the retraction (retract.h). */
struct subject_alert {
    char alert_id[ALERT_ID_MAX + 1];
    char rule_id[ALERT_RULE_MAX + 1];
    int32_t rule_version;
    enum alert_severity severity;
    int nobs; /* evidence observations, at most ALERT_EVIDENCE_MAX */
    /* the first SUBJECT_ALERT_IDS of them: all the reconciliation reads */
    char obs_ids[SUBJECT_ALERT_IDS][OBS_ID_MAX + 1];
};

struct subject_state;

/* Returns a new empty state, or NULL if out of memory. Free with
 * subject_state_destroy(). */
struct subject_state *subject_state_new(void);

/* Frees ST and everything it holds. NULL is a no-op. */
void subject_state_destroy(struct subject_state *st);

/* Empties ST as if new (results, versions, alerts), keeping some storage.
 * Cannot fail. */
void subject_state_reset(struct subject_state *st);

/*
 * Records OBS (cleaned as C) for the subject: used for live results and to
 * warm up from stored rows after a restart, in any order. Any earlier
 * version with the same observation id is replaced; a cancelled,
 * entered-in-error or otherwise unusable result only removes it. Does not
 * record the version (subject_state_version_set does). Returns 0, or -1 if
 * out of memory (then ST is unchanged). Copies what it keeps: OBS and C stay
 * the caller's.
 */
int subject_state_add(struct subject_state *st, const struct observation *obs,
                      const struct clean_result *c);

/* Forgets every kept result with OBSERVATION_ID (a retraction); a retracted
 * baseline is replaced by the next kept result. Returns how many entries
 * were removed (0 if none). Cannot fail. */
int subject_state_remove(struct subject_state *st, const char *observation_id);

/* Returns the kept result OBSERVATION_ID, or NULL; when found and CODE is
 * not NULL, *CODE points at its code (owned by ST). Valid until ST is next
 * changed. Does not change ST. */
const struct subject_result *subject_state_find(const struct subject_state *st,
                                                const char *observation_id, const char **code);

/* Returns the subject's baseline result for CODE, or NULL if none. The
 * pointer is into ST: valid until ST is next changed. Does not change ST. */
const struct subject_result *subject_state_baseline(const struct subject_state *st,
                                                    const char *code);

/* Points *OUT at the kept results of CODE, sorted by (effective time,
 * observation id), oldest first, and returns their number (0 and *OUT NULL
 * when none). Valid until ST is next changed. Does not change ST. */
int subject_state_results(const struct subject_state *st, const char *code,
                          const struct subject_result **out);

/* Returns how many kept results of the codes starting with PREFIX have
 * effective time AT_MS, not counting EXCEPT_ID (may be NULL). Cannot fail. */
int subject_state_count_at(const struct subject_state *st, const char *prefix, int64_t at_ms,
                           const char *except_id);

/* Sets *REVISION to the newest revision recorded for OBSERVATION_ID and
 * returns true, or returns false if none is. Cannot fail. */
bool subject_state_version(const struct subject_state *st, const char *observation_id,
                           int64_t *revision);

/* Records REVISION for OBSERVATION_ID if it is newer than the one recorded
 * (or none is). Returns 0, or -1 if out of memory (nothing recorded). Past
 * SUBJECT_STATE_VERSIONS_MAX ids a new id is not recorded (returns 0). */
int subject_state_version_set(struct subject_state *st, const char *observation_id,
                              int64_t revision);

/* Remembers the alert AL (its id, rule, severity and evidence ids) as
 * standing, after the ones remembered before; an alert id already
 * remembered is not added twice, and a withdrawn one is no longer
 * withdrawn. When SUBJECT_STATE_ALERTS_MAX are remembered the oldest is
 * forgotten first. Out of memory, AL is not remembered (as if forgotten at
 * once). Copies what it keeps. */
void subject_state_alert_add(struct subject_state *st, const struct alert *al);

/* Points *OUT at the standing alerts, oldest first, and returns their
 * number (*OUT may be NULL when 0). Valid until ST is next changed. Does
 * not change ST. */
int subject_state_alerts(const struct subject_state *st, const struct subject_alert **out);

/* Forgets the standing alert ALERT_ID; the others keep their order. Returns
 * whether it was remembered. Cannot fail. */
bool subject_state_alert_forget(struct subject_state *st, const char *alert_id);

/* The standing alert ALERT_ID was withdrawn: it is forgotten as standing and
 * remembered as withdrawn (the oldest withdrawn forgotten when
 * SUBJECT_STATE_RETIRED_MAX are). Returns whether it was standing. */
bool subject_state_alert_retire(struct subject_state *st, const char *alert_id);

/* Remembers AL as withdrawn (loading a subject's withdrawn alerts), after
 * the ones remembered before; bounded like subject_state_alert_retire. */
void subject_state_retired_add(struct subject_state *st, const struct alert *al);

/* Points *OUT at the withdrawn alerts, oldest first, and returns their
 * number. Valid until ST is next changed. */
int subject_state_retired(const struct subject_state *st, const struct subject_alert **out);

/* Whether ALERT_ID is remembered as withdrawn / as standing. */
bool subject_state_is_retired(const struct subject_state *st, const char *alert_id);
bool subject_state_is_standing(const struct subject_state *st, const char *alert_id);

/* Bytes of memory ST holds (the struct and every array it grew), for the
 * cache's memory budget. Cannot fail. */
size_t subject_state_bytes(const struct subject_state *st);

#endif
