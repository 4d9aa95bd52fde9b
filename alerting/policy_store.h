/*
 * policy_store: escalation policies (policy.h) against the directory and
 * into the tables of migration 0010 -- what `vigil policy set` and the
 * console's PUT /api/v1/studies/{study}/policies both do, written once;
 * and the removal of one (the console's DELETE).
 */
#ifndef VIGIL_POLICY_STORE_H
#define VIGIL_POLICY_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/* Checks POL[0..N-1] against the directory on C: the study and site exist,
 * every target reaches somebody today (an active researcher, or a holder
 * of the role at that study/site). Appends each problem to PROBLEMS as a
 * "policy K: ..." line (NUL-terminated, PROBLEMS_SIZE bytes; the caller
 * starts it empty). Returns the number of problems (0: all fit). */
int policy_store_check(PGconn *c, const struct policy *pol, int n, char *problems,
                       size_t problems_size);

/* Replaces the policies of POL[0..N-1]'s (study, site, severity) with
 * them inside the caller's open transaction (taking the audit chain's
 * lock first), each change an audit event 'policy_set' by ACTOR. With
 * SKIP_SAME a policy the tables already hold exactly is left alone (no
 * write, no event: an import run twice changes nothing). Adds the number
 * written to *CHANGED (may be NULL). Returns 0, or -1 with errstr (the
 * caller rolls back). */
int policy_store_write(PGconn *c, const struct policy *pol, int n, const char *actor,
                       bool skip_same, int *changed, char *errstr, size_t errstr_size);

/* Replaces, in one transaction, the policies of POL[0..N-1]'s (study,
 * site, severity) with them, each change an audit event 'policy_set' by
 * ACTOR. Returns 0, or -1 with errstr (the transaction rolled back). */
int policy_store_set(PGconn *c, const struct policy *pol, int n, const char *actor, char *errstr,
                     size_t errstr_size);

/* Removes, in one transaction, the policy of (STUDY, SITE -- NULL: the
 * study-wide one --, SEVERITY): its alerts fall back to the next policy
 * that applies (study-wide, then the built-in one) from their next step.
 * Audited as 'policy_removed' by ACTOR, with the policy as it was. Sets
 * *REMOVED to 1, or 0 when there was none (nothing written). Returns 0, or
 * -1 with errstr (rolled back). */
int policy_store_remove(PGconn *c, const char *study, const char *site, const char *severity,
                        const char *actor, int *removed, char *errstr, size_t errstr_size);

#endif
