/*
 * audit: verification of the alert audit trail (alert_events, migration
 * 0010). Each row carries sha256(prev_hash || canonical text of the row);
 * the canonical text is recomputed here by an expression in this file's
 * own query (not the database's vigil_audit_canon, which whoever can edit
 * rows could also replace) and hashed with OpenSSL, so the check trusts
 * only the stored column values and this binary.
 *
 * Found, in event order, the first of:
 *   edited    the row's hash does not match its content
 *   deleted   an event_id is missing (ids have no gaps: appends are
 *             serialized) or a row's prev_hash is not its predecessor's hash
 *   inserted  an event_id out of sequence, or a hash that does not chain
 *   truncated the chain head names a later event or another hash than the
 *             last row's (the newest rows were removed)
 * A superuser who rewrites every row after the change and the head can
 * fool any self-contained chain: audit_verify returns the head hash so an
 * operator can record it elsewhere (a ticket, a log shipped off-site) and
 * compare later.
 */
#ifndef VIGIL_AUDIT_H
#define VIGIL_AUDIT_H

#include <stdint.h>

#include "pg.h"

struct audit_result {
    int64_t events;      /* rows checked */
    int64_t bad_event;   /* first bad event_id (or the id expected there); 0: intact */
    char problem[512];   /* what is wrong with it */
    char head_hex[65];   /* the chain head's hash, hex */
};

/* Walks alert_events in event order on CONN (in one REPEATABLE READ
 * transaction, so appends made meanwhile do not confuse it). Returns 0
 * (see OUT->bad_event for the verdict) or -1 with errstr on a database
 * error. */
int audit_verify(PGconn *conn, struct audit_result *out, char *errstr, size_t errstr_size);

/* The first CTE of a statement that changes the directory or console
 * access, whose rows 0065's triggers audit: it takes the audit chain's
 * head before any row (0014's lock order) and names the actor (the text
 * parameter PARAM, "$3") for the transaction. It happens only if the
 * statement reads audit_ctx where its rows come from, before they are
 * locked: "WITH " AUDIT_CTX_SQL("$3") "INSERT ... SELECT ... FROM
 * audit_ctx, ..." or "... USING audit_ctx, ...". (Volatile, so never
 * inlined: evaluated once.) */
#define AUDIT_CTX_SQL(param)                                                                    \
    "audit_ctx AS (SELECT vigil_audit_lock(), set_config('vigil.actor', " param "::text, true)) "

/* The same for a transaction: BEGIN, then this with the actor as $1. */
#define AUDIT_BEGIN_SQL "SELECT vigil_audit_lock(), set_config('vigil.actor', $1::text, true)"

#endif
