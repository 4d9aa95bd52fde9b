/*
 * ackmsg: what a notification adds so the researcher can acknowledge from
 * where they are -- a signed link per alert in an email (acklink.h), and in
 * an SMS a link and a short reply code ("Reply ACK 4821"), issued once per
 * SMS delivery in PostgreSQL (vigil_sms_code_issue, migration 0020) so a
 * retried SMS carries the same code.
 *
 * Retractions get neither: there is nothing left to acknowledge.
 * Thread-safety: reentrant; the PGconn is the caller's.
 */
#ifndef VIGIL_ACKMSG_H
#define VIGIL_ACKMSG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "acklink.h"
#include "alert.h"

struct ackmsg_config {
    const char *public_url;          /* the console, no trailing '/'; NULL: no links */
    const struct acklink_keys *keys; /* NULL: no links */
    int64_t link_ttl_s;              /* a link's lifetime */
    int code_ttl_s;                  /* an SMS reply code's lifetime; 0: no codes */
};

/* One acknowledgement link, PUBLIC_URL/ack/TOKEN, for ALERT_ID and
 * RESEARCHER into OUT (for messages built elsewhere, e.g. the warning
 * digest). Returns its length, or 0 when links are off or it does not fit. */
size_t ackmsg_link(const struct ackmsg_config *cfg, const char *alert_id, const char *researcher,
                   int64_t now_s, char *out, size_t outsz);

/* Inserts, before BODY's signature ("\n-- \n"; at the end if none), a
 * section with one acknowledgement link per alert of A[0..N-1] for
 * RESEARCHER. BODY is NUL-terminated in BODYSZ bytes; a section that does
 * not fit is left out whole. Returns the bytes added (0: none). */
size_t ackmsg_email(const struct ackmsg_config *cfg, const struct alert *const *a, int n,
                    const char *researcher, int64_t now_s, char *body, size_t bodysz);

/* Writes the SMS suffix for this delivery into OUT: " Reply ACK 4821" when
 * C (may be NULL) issued a code for PHONE, and " Ack: URL" when N == 1 and
 * links are on. Returns its length (0: nothing to add). */
size_t ackmsg_sms(const struct ackmsg_config *cfg, PGconn *c, const struct alert *const *a,
                  int n, const char *researcher, const char *phone, int64_t now_s, char *out,
                  size_t outsz);

/* Inserts ACK (from ackmsg_sms) into the SMS TEXT before its " refs "
 * tail (which stays last: readers and tests take the ids from the end), or
 * at the end. TEXT must have room (notice_sms given TEXTSZ - strlen(ACK)). */
void ackmsg_sms_insert(char *text, size_t textsz, const char *ack);

#endif
