/*
 * dedupe: the notification log (table notifications, migration 0004) --
 * what makes a replayed alert not page twice.
 *
 * One row per (alert id, researcher, channel), states
 *   pending -> sending -> sent | failed | suppressed
 * The sender claims a row BEFORE it sends (dedupe_claim), marks it sending
 * as the request starts, and final when it ends. A grouped message (several
 * alerts of one subject, one recipient, one channel) moves all its rows
 * together: the *_many functions take the alert ids as an array.
 *
 * Ownership of a row between notifiers (or a notifier and its own earlier,
 * crashed run) is a lease on updated_at: a row in pending or sending whose
 * updated_at is older than the lease may be taken over. Every state change
 * renews it. A taken-over row that was 'sending' may have reached the
 * recipient already: the possible duplicate the design accepts over a
 * lost page.
 *
 * Every function runs one parameterised statement on CONN (the caller's
 * connection, used by one thread) in autocommit and returns 0, or -1 with
 * errstr filled (the row is then unchanged).
 */
#ifndef VIGIL_DEDUPE_H
#define VIGIL_DEDUPE_H

#include <stdbool.h>
#include <stddef.h>

#include "alert.h"
#include "directory.h"
#include "pg.h"

enum dedupe_claim {
    DEDUPE_OWNED = 0, /* ours now (new, or taken over after the lease) */
    DEDUPE_DONE,      /* already sent, failed or suppressed: nothing to do */
    DEDUPE_BUSY,      /* someone holds a live lease: look again later */
};

/* Claims (ALERT_ID, RESEARCHER, CHANNEL). *OUT gets the result; *TAKEN_OVER
 * (may be NULL) is set when an abandoned row was taken over. */
int dedupe_claim(PGconn *conn, const char *alert_id, const char *researcher, enum channel ch,
                 int lease_s, enum dedupe_claim *out, bool *taken_over, char *errstr,
                 size_t errstr_size);

/* The rows of ALERT_IDS[0..N-1] for RESEARCHER/CH: */
/* ... start an attempt: state sending, attempts + 1, lease renewed. */
int dedupe_mark_sending(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                        enum channel ch, char *errstr, size_t errstr_size);
/* ... delivered: state sent, sent_at, provider_message_id (may be NULL). */
int dedupe_mark_sent(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                     enum channel ch, const char *provider_id, char *errstr, size_t errstr_size);
/* ... gave up: state failed with REASON. */
int dedupe_mark_failed(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                       enum channel ch, const char *reason, char *errstr, size_t errstr_size);
/* ... deliberately not sent: state suppressed with REASON. */
int dedupe_mark_suppressed(PGconn *conn, const char *const *alert_ids, int n,
                           const char *researcher, enum channel ch, const char *reason,
                           char *errstr, size_t errstr_size);
/* ... will retry in DELAY_MS: state pending, next_attempt_at, last_error. */
int dedupe_mark_retry(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                      enum channel ch, long delay_ms, const char *reason, char *errstr,
                      size_t errstr_size);
/* ... handed back unfinished at shutdown: state pending with an expired
 * lease, so the next owner (a restart, another notifier) takes it at once. */
int dedupe_release(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                   enum channel ch, char *errstr, size_t errstr_size);

/* A transaction whose COMMIT waits for the WAL flush whatever the
 * session's synchronous_commit: outcomes (sent, failed) are written in one,
 * batched, because the sent row is what stops a replay paging twice.
 * begin: 0 or -1 (nothing open); commit: 0, or -1 after rolling back;
 * rollback: cannot fail visibly, a no-op outside a transaction. */
int dedupe_durable_begin(PGconn *conn, char *errstr, size_t errstr_size);
int dedupe_commit(PGconn *conn, char *errstr, size_t errstr_size);
void dedupe_rollback(PGconn *conn);

/* Appends to *OUT the (researcher, channel) pairs ALERT_ID was sent to, or
 * is being sent to (states sent and sending), without addresses (the
 * caller fills them from the directory). Returns the number found or -1. */
int dedupe_recipients(PGconn *conn, const char *alert_id, struct route_result *out,
                      char *errstr, size_t errstr_size);

/* Records A as unroutable with REASON (once; a replay changes nothing).
 * Returns 1 if recorded now, 0 if it was already, -1 on error. */
int dedupe_record_unroutable(PGconn *conn, const struct alert *a, const char *reason,
                             char *errstr, size_t errstr_size);

/* Writes ALERT_IDS[0..N-1] as a PostgreSQL text[] literal ({"a","b"}) into
 * out. Returns the length, or 0 if it does not fit. Exposed for tests. */
size_t dedupe_array_literal(const char *const *ids, int n, char *out, size_t outsz);

#endif
