/*
 * dlq: the worker's dead letters. A message that cannot be processed goes
 * to the dead-letter topic through common/deadletter.h: whole with its
 * original key, value and headers plus headers in the Kafka Connect
 * convention (vigil.error.*, vigil.source.*, vigil.original.size and
 * .sha256); truncated when the topic or the producer refuses it whole;
 * recorded in PostgreSQL's dead_letters and skipped, or retried until
 * written, when even that is refused (dlq_policy). This file ties that to
 * the work item: the item is held until the dead letter's outcome is known.
 */
#ifndef VIGIL_DLQ_H
#define VIGIL_DLQ_H

#include "deadletter.h"
#include "work.h"

/* Dead-letters W's original message through D. W gains a hold, released
 * when the outcome is known: written, truncated or skipped (W's offset then
 * finishes), or abandoned at shutdown (W is then abandoned: read again by
 * the partition's next owner). W's row is not stored. Returns 0, or -1 if
 * the dead letters or their publisher are closing (W unchanged). Any
 * thread. */
int dlq_send(struct deadletter *d, struct work *w, const char *error_class,
             const char *error_message);

#endif
