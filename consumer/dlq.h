/*
 * dlq: dead-lettering. A message that cannot be processed goes to the
 * dead-letter topic with its original key, value and headers, plus headers
 * in the Kafka Connect convention so an operator can see why and where it
 * came from:
 *   vigil.error.class      stable class ("truncated", "unknown_schema", ...)
 *   vigil.error.message    what exactly was wrong (no patient data)
 *   vigil.source.topic / vigil.source.partition / vigil.source.offset
 */
#ifndef VIGIL_DLQ_H
#define VIGIL_DLQ_H

#include "publish.h"
#include "work.h"

/* Publishes W's original message to DLQ_TOPIC (borrowed, outlives P) with
 * the headers above. On success W gains a hold, released when the broker
 * acknowledges the dead letter, and W's row is not stored. Returns 0, or -1
 * if the publisher is closing (W unchanged). Thread-safe. */
int dlq_send(struct publisher *p, const char *dlq_topic, const char *source_topic,
             struct work *w, const char *error_class, const char *error_message);

#endif
