/*
 * sms: a notification as a request to an HTTP SMS gateway, through libcurl.
 *
 * Default shape, as the common commercial APIs take it: POST URL with an
 * application/x-www-form-urlencoded body To=<E.164>&From=<sender>&Body=<text>
 * and HTTP Basic credentials; a 2xx answer is JSON whose "sid" is the
 * provider's message id (recorded in the notification log).
 *
 * Thread-safety: reentrant; an easy handle belongs to whoever drives it.
 */
#ifndef VIGIL_SMS_H
#define VIGIL_SMS_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* The answer body kept (larger answers are cut: we only want "sid"). */
#define SMS_RESPONSE_MAX 4096
#define SMS_SID_MAX 64

struct sms_config {
    const char *url;
    const char *from;
    const char *user;
    const char *password; /* secret */
    long timeout_ms;
};

/* One request in flight: the form body and the answer. Owned by the
 * caller; lives until the transfer ends (then sms_request_free). */
struct sms_request {
    char *form;
    char response[SMS_RESPONSE_MAX + 1];
    size_t response_len;
};

/* Configures EASY to POST TEXT to phone number TO. Returns 0, or -1 with
 * errstr on allocation failure. REQ must live until the transfer ends. */
int sms_easy_setup(CURL *easy, const struct sms_config *cfg, const char *to, const char *text,
                   struct sms_request *req, char *errstr, size_t errstr_size);

/* Frees what sms_easy_setup allocated. Safe on a zeroed REQ. */
void sms_request_free(struct sms_request *req);

/* Extracts the provider message id ("sid", printable ASCII, at most
 * SMS_SID_MAX bytes) from a JSON answer into out. Returns false if there is
 * none, it is malformed, or it does not fit in OUTSZ (never cut short; the
 * message may still have been accepted). */
bool sms_parse_sid(const char *body, size_t len, char *out, size_t outsz);

#endif
