/*
 * obs_producer: publishes observations to the observations topic the way
 * vigil's contract wants them, for `vigil produce` and `vigil import`:
 *
 *   key    "study_id/subject_id" (the worker dead-letters a message whose
 *          key does not match its value, and the key keeps each subject on
 *          one partition, in order)
 *   value  Avro single-object encoding of vigil.Observation (common/avro/codec.h)
 *   conf   enable.idempotence=true, acks=all, linger.ms=5,
 *          compression.type=lz4, message.timeout.ms=60000 -- each may be
 *          overridden by a librdkafka property in the config (-X)
 *
 * Every message gets a delivery report: counted (delivered / failed) and
 * passed to the caller's callback with the caller's token, so a caller can
 * tell exactly which records the broker acknowledged. At most
 * max_in_flight messages are between send and their report; a send beyond
 * that serves reports until there is room (or the context is cancelled).
 *
 * Thread-safety: send, poll and flush must be called from one thread at a
 * time (the delivery callback runs inside them, on that thread);
 * obs_producer_stats may be called from any thread.
 */
#ifndef VIGIL_OBS_PRODUCER_H
#define VIGIL_OBS_PRODUCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "ctx.h"
#include "deadline.h"
#include "observation.h"

/* Called once per message from send/poll/flush/destroy: TOKEN as given to
 * obs_producer_send; OK true if the broker acknowledged it (acks=all);
 * else ERR says why (a static or librdkafka string, valid during the call). */
typedef void (*obs_delivery_fn)(void *arg, uint64_t token, bool ok, const char *err);

struct obs_producer_options {
    const struct config *cfg; /* "kafka.*" properties passed through; may be NULL */
    const char *bootstrap;    /* bootstrap.servers */
    const char *topic;
    const char *client_id;    /* e.g. "vigil-produce" */
    size_t max_in_flight;     /* >= 1 */
    obs_delivery_fn on_delivery; /* may be NULL */
    void *arg;
};

struct obs_producer;

/* Creates the producer (librdkafka's threads start here: block signals
 * first). OPT's strings are copied or used only during the call, except
 * cfg, which is read only here. Returns NULL with errstr ("could not set
 * Kafka property ...", "could not create the Kafka producer: ...") on
 * failure. */
struct obs_producer *obs_producer_new(const struct obs_producer_options *opt, char *errstr,
                                      size_t errstr_size);

/* Purges whatever is still queued or in flight (each reported as failed
 * through the callback), then frees P. Call obs_producer_flush first to
 * wait for deliveries. NULL is a no-op. */
void obs_producer_destroy(struct obs_producer *p);

enum obs_send_status {
    OBS_SEND_OK = 0,     /* queued; its delivery report will come */
    OBS_SEND_INVALID,    /* OBS does not encode (errstr says which field); nothing sent */
    OBS_SEND_CANCELLED,  /* CANCEL was cancelled while waiting for room; nothing sent */
    OBS_SEND_FATAL,      /* the producer cannot go on (errstr); nothing sent */
};

/* Encodes OBS and queues it with key study_id/subject_id, waiting (serving
 * delivery reports) while max_in_flight messages are outstanding. CANCEL
 * may be NULL (wait as long as it takes). */
enum obs_send_status obs_producer_send(struct obs_producer *p, const struct observation *obs,
                                       uint64_t token, struct ctx *cancel, char *errstr,
                                       size_t errstr_size);

/* Serves delivery reports, waiting up to TIMEOUT_MS for the first. */
void obs_producer_poll(struct obs_producer *p, int timeout_ms);

/* Waits until every message sent has its delivery report, or DEADLINE.
 * Returns 0 when none is outstanding, -1 if DEADLINE came first. */
int obs_producer_flush(struct obs_producer *p, deadline_t deadline);

struct obs_producer_stats {
    uint64_t sent;      /* queued by send */
    uint64_t delivered; /* acknowledged by the broker */
    uint64_t failed;    /* reported failed */
    uint64_t in_flight; /* sent - delivered - failed */
};

/* Snapshot of the counters. Thread-safe. */
void obs_producer_stats(const struct obs_producer *p, struct obs_producer_stats *out);

/* Returns the first fatal error librdkafka reported ("" if none): after
 * one, the producer sends nothing more. */
const char *obs_producer_fatal(const struct obs_producer *p);

/* Writes "STUDY/SUBJECT" for OBS into BUF (at least 2 * OBS_ID_MAX + 2
 * bytes). Returns its length. The key contract, shared with the worker. */
size_t obs_producer_key(const struct observation *obs, char *buf, size_t cap);

#endif
