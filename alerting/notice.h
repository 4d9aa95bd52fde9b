/*
 * notice: the words of a notification -- email subject and body, SMS text
 * -- for one alert, a group of one subject's alerts, or a retraction.
 *
 * What a notice carries (issue #4): study, site, pseudonymous subject id,
 * what was found (severity, CTCAE grade, the rule's message, the evidence
 * values) and when (observed and detected, UTC), plus the alert ids so a
 * reader can find the alert and a test can match deliveries. Nothing else
 * about the patient exists in struct alert, so nothing else can leak.
 *
 * All functions are pure (no I/O, no allocation), thread-safe, and always
 * NUL-terminate OUT; text that does not fit is cut at a UTF-8 character
 * boundary and ends with "…". They return the length written.
 */
#ifndef VIGIL_NOTICE_H
#define VIGIL_NOTICE_H

#include <stddef.h>
#include <stdint.h>

#include "alert.h"

/* Most alerts one grouped message carries; the sender flushes a group
 * when it is full. */
#define NOTICE_MAX_ALERTS 8

/* Longest SMS text vigil sends (4 concatenated segments of 160 GSM
 * characters); the rule's message is cut first, the alert ids never. */
#define NOTICE_SMS_MAX 640

/* Subject line (UTF-8, not yet RFC 2047 encoded). A[0..N-1] are signals
 * of one subject, or N == 1 and A[0] a retraction. */
size_t notice_subject(const struct alert *const *a, int n, char *out, size_t outsz);

/* Plain-text body, lines ending in "\n" (the MIME layer makes them CRLF). */
size_t notice_body(const struct alert *const *a, int n, char *out, size_t outsz);

/* SMS text, at most NOTICE_SMS_MAX bytes: "vigil CRITICAL S1/SITE/SUBJ ...
 * refs ID[,ID...]". */
size_t notice_sms(const struct alert *const *a, int n, char *out, size_t outsz);

/* The preface of an escalation page (STEP > 0) of signal A, so whoever
 * it reaches knows it was not acknowledged by those paged before them:
 * "ESCALATED (step N): not acknowledged since detected at TIME.\n\n" for
 * an email body, or with SHORT "ESCALATED: " for a subject or an SMS.
 * Returns the length written; 0 (OUT "") when STEP <= 0 or A is a
 * retraction. */
size_t notice_escalation(const struct alert *a, int step, int short_form, char *out,
                         size_t outsz);

/* Formats MS (Unix epoch milliseconds) as "2025-01-31T12:34Z". */
size_t notice_time(int64_t ms, char *out, size_t outsz);

#endif
