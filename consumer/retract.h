/*
 * retract: withdrawing an alert -- the retraction alert that says so, and
 * the ids of both the retraction and of a signal raised again after its
 * withdrawal.
 *
 * Interface routines:
 *   retract_make           the retraction of one standing alert
 *   retract_alert_id       the id of the retraction of an alert
 *   retract_reinstated_id  the id a signal takes when it holds again
 *
 * Which alerts a result withdraws is reconcile.h's: every standing alert
 * within the reach of the result that its rule no longer raises.
 *
 * Ids: a retraction's id is a hash of the withdrawn alert's id only
 * (common/hash.h, FNV-1a), so replays and other workers write the same one.
 * A signal that holds again after it was withdrawn (a Hy's law case whose
 * suppressing ALP is entered in error) is a new alert: its id is
 * retract_reinstated_id() of the withdrawn one, so it pages again and can
 * be withdrawn again under its own retraction id, while the withdrawn row
 * stays withdrawn. The recipes must not change: stored rows and delivered
 * notifications name these ids.
 *
 * Pure: no I/O, no allocation, no state; thread-safe.
 */
#ifndef VIGIL_RETRACT_H
#define VIGIL_RETRACT_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "observation.h"
#include "subject_state.h"

/*
 * Writes to OUT the retraction of the standing alert WITHDRAWN, caused by
 * the result CAUSE (FINDING: the data-quality finding of CAUSE, or NULL):
 * kind ALERT_RETRACTION, id retract_alert_id() of the withdrawn alert (also
 * in retracts_alert_id), the withdrawn alert's rule, version and severity,
 * CAUSE's study, site and subject, CAUSE as the one evidence, observed at
 * CAUSE's effective time, detected at NOW_MS, and a message naming the
 * alert, its rule, CAUSE and why: entered in error, cancelled, amended,
 * replaced by a version that is not analysed, or a result that arrived and
 * changes the verdict. Cannot fail.
 */
void retract_make(const struct subject_alert *withdrawn, const struct observation *cause,
                  const char *finding, int64_t now_ms, struct alert *out);

/* Writes the id of the retraction of alert TARGET_ID (32 lowercase hex
 * digits) to OUT (OUTSZ bytes, ALERT_ID_MAX + 1 is enough). Cannot fail. */
void retract_alert_id(const char *target_id, char *out, size_t outsz);

/* Writes the id of the signal that holds again after alert WITHDRAWN_ID was
 * withdrawn (32 lowercase hex digits) to OUT. Cannot fail. */
void retract_reinstated_id(const char *withdrawn_id, char *out, size_t outsz);

#endif
