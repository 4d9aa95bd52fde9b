/*
 * digest: the daily email of unacknowledged warning alerts, one per
 * researcher subscribed at warning level (migration 0013). Run from the
 * escalation thread (escalate.c) about once a minute: from DIGEST_HOUR
 * (UTC) on, each day's digests are claimed in PostgreSQL (any replica, each
 * once) and sent by SMTP, one synchronous transfer each -- a few hundred a
 * day do not need the sender's multi handle. The outcome is recorded on
 * the claim row and in the audit trail ('digest_sent' / 'digest_failed').
 */
#ifndef VIGIL_DIGEST_H
#define VIGIL_DIGEST_H

#include <stddef.h>

#include "ackmsg.h"
#include "email.h"
#include "pg.h"

struct digest_config {
    const struct email_config *email; /* borrowed; NULL: no digests */
    const struct ackmsg_config *ack;  /* borrowed; NULL or links off: no links */
    const char *actor;                /* audit trail */
    int hour_utc;                     /* from this hour of the UTC day on; -1: off */
    int min_age_s;                    /* warnings younger than this wait for tomorrow */
    int lease_s;                      /* a claim left 'sending' is taken over after this */
};

/* Claims and sends today's due digests on C. Returns the number sent, or
 * -1 with errstr on a database error. */
int digest_run(PGconn *c, const struct digest_config *cfg, char *errstr, size_t errstr_size);

#endif
