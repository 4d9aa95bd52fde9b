/*
 * retract: the retraction policy — which of a subject's alerts a withdrawn
 * or amended result takes back, and the retraction alerts that say so.
 *
 * Interface routines:
 *   retract_alerts     the retractions one result causes
 *   retract_alert_id   the id of the retraction of an alert
 *
 * Policy: a result with status entered-in-error, cancelled, amended or
 * corrected (anything but final) withdraws each remembered alert that cites
 * it as evidence, unless the alert still stands: the result itself raised
 * it again (an amendment with the same verdict), or its rule raises it again
 * from the alert's other evidence (the caller's STILL_STANDS, which asks
 * rules_reconfirm(): a Hy's law case outlives the supporting ALP entered in
 * error). A final result withdraws nothing.
 *
 * Ids: a retraction's id is a hash of the withdrawn alert's id only
 * (common/hash.h, FNV-1a), so replays and other workers write the same one.
 * The recipe must not change: stored rows and delivered notifications name
 * these ids.
 *
 * Pure: no I/O, no allocation, no state; thread-safe.
 */
#ifndef VIGIL_RETRACT_H
#define VIGIL_RETRACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "observation.h"
#include "subject_state.h"

/* Whether the remembered alert RAISED, which cites the withdrawn or amended
 * result, is still raised by its rule from the subject's state as it is
 * now (the result already applied). ARG is retract_alerts()'s. */
typedef bool (*retract_still_fn)(void *arg, const struct subject_alert *raised);

/*
 * Writes to OUT (room for MAX_OUT) a retraction alert for each alert of
 * RAISED[0..NRAISED-1] (the subject's remembered alerts, oldest first)
 * that the result OBS withdraws, in that order, and returns how many.
 * NOW[0..NNOW-1] are the alerts OBS itself raised (rules_eval()); an alert
 * among them is not withdrawn. STILL_STANDS(ARG, r) is asked only for an
 * alert that cites OBS and is not among NOW. Past MAX_OUT the rest are not
 * withdrawn (the caller sizes OUT so that never happens).
 *
 * Each retraction: kind ALERT_RETRACTION, id retract_alert_id() of the
 * withdrawn alert (also in retracts_alert_id), the withdrawn alert's rule,
 * version and severity, OBS's study, site and subject, OBS as the one
 * evidence, observed at OBS's effective time, detected at NOW_MS, and a
 * message naming the alert, its rule, OBS and why.
 *
 * The caller forgets each withdrawn alert (subject_state_alert_forget on
 * every OUT[i].retracts_alert_id). Cannot fail.
 */
int retract_alerts(const struct subject_alert *raised, int nraised, const struct observation *obs,
                   const struct alert *now, int nnow, retract_still_fn still_stands, void *arg,
                   int64_t now_ms, struct alert *out, int max_out);

/* Writes the id of the retraction of alert TARGET_ID (32 lowercase hex
 * digits) to OUT (OUTSZ bytes, ALERT_ID_MAX + 1 is enough). Cannot fail. */
void retract_alert_id(const char *target_id, char *out, size_t outsz);

#endif
