/*
 * dedupe: the notification log (table notifications, migration 0004) --
 * what makes a replayed alert not page twice.
 *
 * One row per (alert id, researcher, channel), states
 *   pending -> sending -> sent | failed | suppressed
 * The sender claims a row BEFORE it sends, marks it sending as the request
 * starts, and final when it ends. Those three steps happen for every
 * notification, so each takes a whole batch of rows in one statement
 * (arrays passed as parameters and unnested): a round trip per batch, not
 * per notification, is what lets one sender thread keep up. The rarer
 * steps (retry, suppress, release) take one message's rows: a grouped
 * message (several alerts of one subject, one recipient, one channel)
 * moves all its rows together, its alert ids passed as an array.
 *
 * Ownership of a row between notifiers (or a notifier and its own earlier,
 * crashed run) is a lease on updated_at: a row in pending or sending whose
 * updated_at is older than the lease may be taken over. Every state change
 * renews it. A taken-over row that was 'sending' may have reached the
 * recipient already: the possible duplicate the design accepts over a
 * lost page.
 *
 * Every function runs one parameterised statement on CONN (the caller's
 * connection, used by one thread) in autocommit -- dedupe_record_outcomes
 * one transaction -- and returns 0, or -1 with errstr filled (the rows are
 * then unchanged).
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
    DEDUPE_DEFERRED,  /* recorded now as deferred: the researcher's quiet hours
                       * (migration 0064); vigil_deferred_fire sends it later */
};

/* One row's key. step 0 is an alert's first page (the Kafka path, or
 * escalation step 0); step N > 0 the Nth escalation step (migration 0011),
 * so a repeated last tier pages the same person again under a new key. */
struct dedupe_key {
    const char *alert_id;
    const char *researcher;
    enum channel ch;
    int step;
};

/* A message's final outcome for one row: SENT with PROVIDER_ID (may be
 * NULL), or failed with ERROR. */
struct dedupe_outcome {
    struct dedupe_key key;
    bool sent;
    const char *provider_id;
    const char *error;
};

/* Scratch space the batch functions reuse between calls (the array
 * parameters), so a busy sender does not allocate per batch. Owned by
 * the caller; one thread. dedupe_batch_new returns NULL when out of
 * memory; _destroy(NULL) is a no-op. */
struct dedupe_batch;
struct dedupe_batch *dedupe_batch_new(void);
void dedupe_batch_destroy(struct dedupe_batch *b);

/* Claims KEYS[0..N-1] in one statement (one round trip). The keys must be
 * distinct (ON CONFLICT cannot touch a row twice in one statement; the
 * statement then fails). OUT[i] gets each key's result; TAKEN_OVER[i] (the
 * array may be NULL) is set when an abandoned row was taken over. A new
 * key with MAY_DEFER[i] (the array may be NULL: none) -- a non-critical
 * signal on the Kafka path, never a critical alert -- whose researcher is inside their quiet window is
 * inserted as 'deferred' until the window's end (DEDUPE_DEFERRED): the
 * same statement, so the decision and the row are one fact. A key whose
 * row is already deferred is DEDUPE_DONE (a replay). On -1 nothing was
 * claimed. */
int dedupe_claim_many(PGconn *conn, struct dedupe_batch *b, const struct dedupe_key *keys,
                      const bool *may_defer, int n, int lease_s, enum dedupe_claim *out, bool *taken_over, char *errstr,
                      size_t errstr_size);

/* Starts an attempt on every row of KEYS[0..N-1] still pending or sending,
 * in one statement: state sending, attempts + 1, lease renewed. MINE[i]
 * says whether row i was started; a row that is no longer in flight (sent,
 * failed or suppressed by a notifier that took it over after our lease
 * ran out) is left alone and must not be sent. */
int dedupe_mark_sending_many(PGconn *conn, struct dedupe_batch *b, const struct dedupe_key *keys,
                             int n, bool *mine, char *errstr, size_t errstr_size);

/* Records O[0..N-1] (sent: sent_at, provider_message_id; failed:
 * last_error) in one transaction whose commit waits for the WAL flush
 * whatever the session's synchronous_commit: the sent row is what stops a
 * replay paging twice. All or nothing: on -1 (rolled back) no row changed.
 * Only rows still pending or sending are written: a row another notifier
 * settled after a takeover keeps its outcome. Must be called outside a
 * transaction. */
int dedupe_record_outcomes(PGconn *conn, struct dedupe_batch *b,
                           const struct dedupe_outcome *o, int n, char *errstr,
                           size_t errstr_size);

/* The rows of ALERT_IDS[0..N-1] for RESEARCHER/CH/STEP: */
/* ... deliberately not sent: state suppressed with REASON. */
int dedupe_mark_suppressed(PGconn *conn, const char *const *alert_ids, int n,
                           const char *researcher, enum channel ch, int step,
                           const char *reason, char *errstr, size_t errstr_size);
/* ... will retry in DELAY_MS: state pending, next_attempt_at, last_error
 * (rows still pending or sending only). */
int dedupe_mark_retry(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                      enum channel ch, int step, long delay_ms, const char *reason, char *errstr,
                      size_t errstr_size);
/* ... handed back unfinished at shutdown: state pending with an expired
 * lease, so the next owner (a restart, another notifier) takes it at once. */
int dedupe_release(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                   enum channel ch, int step, char *errstr, size_t errstr_size);

/* ... still ours, waiting (the per-recipient rate limit): the lease is
 * renewed, so nobody takes the rows over while they wait their turn -- a
 * burst of pages fired at the end of quiet hours can wait longer than it. */
int dedupe_renew(PGconn *conn, const char *const *alert_ids, int n, const char *researcher,
                 enum channel ch, int step, char *errstr, size_t errstr_size);

/* Appends to *OUT the distinct (researcher, channel) pairs ALERT_ID (any
 * step, escalations included) was sent to, or
 * is being sent to (states sent and sending), without addresses (the
 * caller fills them from the directory). Returns the number found or -1. */
int dedupe_recipients(PGconn *conn, const char *alert_id, struct route_result *out,
                      char *errstr, size_t errstr_size);

/* The number of ALERT_ID's notifications deferred by quiet hours (0064)
 * and not yet fired, or -1. A retraction tells nobody at once for those:
 * the deferred page is suppressed when its window ends. */
int dedupe_deferred_count(PGconn *conn, const char *alert_id, char *errstr, size_t errstr_size);

/* Records A as unroutable with REASON (once; a replay changes nothing).
 * Returns 1 if recorded now, 0 if it was already, -1 on error. */
int dedupe_record_unroutable(PGconn *conn, const struct alert *a, const char *reason,
                             char *errstr, size_t errstr_size);

#endif
