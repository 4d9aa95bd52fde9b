/*
 * email: a notification as an Internet message (RFC 5322 + MIME) and the
 * libcurl SMTP transfer that delivers it.
 *
 *   email_format()          headers + body, CRLF line ends
 *   email_encode_subject()  RFC 2047 "=?UTF-8?B?...?=" words, folded
 *   email_date()            RFC 5322 date in UTC
 *   email_message_id()      a stable Message-ID per (alerts, recipient)
 *   email_easy_setup()      configure a CURL easy handle for one message
 *
 * The message is text/plain; charset=UTF-8 with 8bit transfer encoding
 * (our lines are far below SMTP's 998-byte limit). Lines that begin with
 * "." are left alone: libcurl's SMTP upload doubles them itself (RFC 5321
 * 4.5.2 transparency), so stuffing here would deliver ".." to the reader.
 *
 * Thread-safety: all functions are reentrant; an easy handle belongs to
 * whoever drives it.
 */
#ifndef VIGIL_EMAIL_H
#define VIGIL_EMAIL_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound of a formatted message: headers + a body from notice_body. */
#define EMAIL_MAX 16384

struct email_config {
    const char *url;      /* smtp://host:port or smtps://host:port (implicit TLS) */
    const char *from;     /* envelope sender and From: */
    const char *user;     /* AUTH; NULL or "": none */
    const char *password; /* secret */
    const char *tls;      /* "off", "try" (STARTTLS if offered) or "require" */
    long timeout_ms;      /* whole transfer, connect included */
    const char *ca_file;  /* PEM CA bundle to verify the server; NULL or "": libcurl's default */
};

struct email_headers {
    const char *from;
    const char *to;
    const char *subject;    /* UTF-8, unencoded */
    const char *message_id; /* with the angle brackets */
    int64_t date_ms;
    const char *alert_ids;  /* space separated; goes into X-Vigil-Alert-Ids */
};

/* Writes the complete message into out (outsz bytes) with CRLF line ends
 * (any LF, CR or CRLF in BODY becomes CRLF). Returns its length, or 0 if it
 * does not fit (out then holds nothing useful). Header values must not
 * contain CR or LF (the directory's checks guarantee it for addresses). */
size_t email_format(const struct email_headers *h, const char *body, char *out, size_t outsz);

/* Encodes SUBJECT as RFC 2047 B-encoded UTF-8 words of at most 75 bytes,
 * never splitting a UTF-8 character, joined by CRLF SPACE (folding) and
 * sized so the first line, after "Subject: ", stays within 78 columns.
 * Pure printable ASCII is encoded too: one rule, no edge cases. Returns the
 * length, or 0 if it does not fit in outsz. */
size_t email_encode_subject(const char *subject, char *out, size_t outsz);

/* Writes "Tue, 04 Feb 2025 10:02:03 +0000" for MS (epoch milliseconds). */
size_t email_date(int64_t ms, char *out, size_t outsz);

/* Writes "<vigil.HHHHHHHHHHHHHHHH.HHHHHHHHHHHHHHHH@DOMAIN>" derived from KEY
 * (alert ids + recipient + channel), DOMAIN being FROM's domain: the same
 * notification retried keeps its Message-ID, so a mail system that saw the
 * first attempt can drop the second. */
size_t email_message_id(const char *key, const char *from, char *out, size_t outsz);

/* One message in flight: the bytes libcurl reads, and what it needs kept
 * alive until the transfer is done. Owned by the caller. */
struct email_upload {
    const char *data;
    size_t len, pos;
    struct curl_slist *rcpt;
    char from[300];
};

/* Configures EASY to send DATA (LEN bytes, from email_format) to RCPT
 * through CFG's server. UP is filled and must live until the transfer ends
 * (then email_upload_free). Returns 0, or -1 with errstr on allocation
 * failure. */
int email_easy_setup(CURL *easy, const struct email_config *cfg, const char *rcpt,
                     const char *data, size_t len, struct email_upload *up, char *errstr,
                     size_t errstr_size);

/* Frees what email_easy_setup allocated in UP. Safe on a zeroed UP. */
void email_upload_free(struct email_upload *up);

#endif
