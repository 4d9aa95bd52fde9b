/*
 * reconcile: what one arriving result does to its subject's standing
 * alerts, so that they are the same whatever order the results arrive in.
 *
 * Interface routines:
 *   reconcile_new / _destroy   a reconciler (scratch space), one per thread
 *   reconcile_apply            apply one result: the alerts to publish
 *
 * The truth it keeps: the standing alerts of a subject are the alerts the
 * rules raise from the subject's current results -- for each observation
 * id its newest version (highest revision, store.h), if usable -- each
 * result judged on event time: against the baseline of its code (the
 * earliest result), the previous report of its item, the partners within
 * the window of its pair rule. Arrival order does not enter.
 *
 * How one result gets there (reconcile_apply):
 *   1. a version older than one already seen is stale: ignored (the store
 *      ignores its row too); the same version again is a replay;
 *   2. the subject's state takes the result (or forgets it: withdrawn,
 *      cancelled, or a version that is not analysed);
 *   3. the reach of the change is re-judged, by what each rule kind's
 *      verdict depends on (rules.h rules_dep):
 *        the result itself            every rule;
 *        its code's baseline changed  every kept result of the code, by the
 *                                     baseline rules (ctcae, baseline_change);
 *        the next report of its item  by the previous-report rules (symptom
 *                                     worsening), at its new and old place;
 *        ALT/AST/bilirubin/ALP        the transaminase and bilirubin results
 *                                     within twice the widest pair window of
 *                                     its time (new and old), by the pair
 *                                     rules (Hy's law), keeping the pairs
 *                                     with a member within one window;
 *   4. every standing alert within that reach that the rules no longer
 *      raise is withdrawn (a retraction, retract.h); every alert they raise
 *      that is not standing is raised -- under a new id if an alert of that
 *      id was withdrawn before (retract_reinstated_id), so it pages again.
 *
 * Published: the new signals and retractions; also, again, the signals
 * the result itself raises that already stand (as before this module: a
 * replay after a crash republishes what may not have reached Kafka; ids
 * make that harmless), and on a replay every standing signal and every
 * withdrawal within the reach.
 *
 * The reconciliation window: what the subject's state keeps
 * (subject_state.h): per code the 4 earliest and, up to 64 in all, the
 * latest results; the newest revision of up to 8,192 ids; 64 standing and
 * 64 withdrawn alerts. A late result within the kept span of its code is
 * reconciled fully. Beyond it -- older than every kept result of its code
 * but the 4 earliest, or an alert no longer remembered -- the result is
 * still judged on its own (and against the baseline and partners that are
 * kept), but results and alerts the state no longer holds are not
 * re-judged: their alerts stand as they were raised. A worker that reloads
 * a subject (restart, rebalance, eviction) reads its state back from
 * PostgreSQL (store_load.h) and the window is the same.
 *
 * An alert raised by a rule since reloaded at another version is left
 * alone -- neither withdrawn nor raised again under the new version, so a
 * reload never pages twice for one finding -- unless a new version of the
 * result it is about arrives: that is judged by the rules loaded now.
 *
 * Thread-safety: a reconciler is used by one thread at a time; the rules
 * may be shared (read only); the state is the caller's, one thread's.
 */
#ifndef VIGIL_RECONCILE_H
#define VIGIL_RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

#include "alert.h"
#include "clean.h"
#include "observation.h"
#include "rules.h"
#include "subject_state.h"

/* What one reconcile_apply() did. */
struct reconcile_outcome {
    bool stale;    /* older than a version already seen: nothing done */
    bool replay;   /* the version already seen, again */
    int raised;    /* signals new to the subject (published and remembered) */
    int retracted; /* standing alerts withdrawn */
    int rejudged;  /* other kept results judged again */
};

struct reconcile;

/* Returns a new reconciler, or NULL if out of memory. Free with
 * reconcile_destroy(). */
struct reconcile *reconcile_new(void);

/* Frees RC. NULL is a no-op. */
void reconcile_destroy(struct reconcile *rc);

/*
 * Applies the result OBS (cleaned as C; REVISION = store_revision(OBS)) to
 * the subject's state ST under rules R, as described above, and points
 * *OUT at the alerts to publish (signals and retractions, owned by RC,
 * valid until its next call). Returns their number, with what happened in
 * *RES; or -1 if out of memory: ST is then unchanged if the result was not
 * taken yet, else it holds the result and its version, and publishing
 * nothing is safe (a later replay of OBS republishes what stands).
 */
int reconcile_apply(struct reconcile *rc, const struct rules *r, struct subject_state *st,
                    const struct observation *obs, const struct clean_result *c, int64_t revision,
                    int64_t now_ms, const struct alert **out, struct reconcile_outcome *res);

#endif
