/*
 * webhook: the third channel, for systems that subscribe to a study's
 * alerts (an EHR, a CTMS, a chat tool): an HTTP(S) POST of the alert as
 * JSON, signed per the Standard Webhooks convention
 * (https://www.standardwebhooks.com/):
 *
 *   webhook-id:        msg_<32 hex>, stable per (alert, subscriber): the
 *                      receiver's idempotency key, the same on every retry
 *   webhook-timestamp: Unix seconds of this attempt
 *   webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">,
 *                      keyed with the base64-decoded part of the
 *                      subscriber's "whsec_..." secret
 *
 * Body: {"type": "alert.raised" | "alert.retracted", "timestamp": ...,
 * "data": {the alert}}.
 *
 * Delivery is driven by PostgreSQL, not by the Kafka stream: one thread per
 * notifier (1) enters a 'webhook' row in the notification log for every new
 * alert of a subscribed study (ON CONFLICT DO NOTHING: deduplicated like
 * email and SMS, whichever replica gets there first), (2) claims due rows
 * with FOR UPDATE SKIP LOCKED (a lease: a replica that dies mid-send leaves
 * the row to be taken over after lease_s), (3) POSTs, and (4) records sent,
 * or schedules a retry with exponential backoff and jitter, or, after
 * max_attempts, failed. Any replica may do any step; a row is sent by one
 * at a time.
 *
 * Thread-safety: webhook_sign is reentrant; a sender is started and stopped
 * by one thread.
 */
#ifndef VIGIL_WEBHOOK_H
#define VIGIL_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "metrics.h"

struct webhook_config {
    const char *conninfo;
    int poll_ms;            /* between scans when idle */
    long timeout_ms;        /* one POST, connect included */
    int64_t backoff_base_ms;
    int64_t backoff_max_ms;
    int max_attempts;       /* then failed */
    int lookback_s;         /* at start, alerts this old are still considered */
    int lease_s;            /* a claimed row unchanged this long may be taken over */
    const char *ca_file;    /* PEM CA bundle for https; NULL: the system's */
};

struct webhook_sender;

/* Starts the thread. CFG is copied (strings borrowed). NULL with errstr on
 * failure to start (PostgreSQL being down is not one: it retries). */
struct webhook_sender *webhook_sender_start(const struct webhook_config *cfg, struct metrics *m,
                                            char *errstr, size_t errstr_size);

/* Stops and joins the thread (a POST in flight finishes or times out; its
 * row is retried by whoever comes next). NULL is a no-op. */
void webhook_sender_stop(struct webhook_sender *w);

/* Writes "v1,<base64 signature>" for (ID, TS, BODY) under SECRET
 * ("whsec_<base64>", or bare base64) into OUT. Returns its length, or 0
 * for a secret that is not base64 or too small an OUT. */
size_t webhook_sign(const char *secret, const char *id, int64_t ts, const char *body,
                    size_t len, char *out, size_t outsz);

#endif
