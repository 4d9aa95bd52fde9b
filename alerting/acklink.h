/*
 * acklink: the signed, single-use acknowledgement links in alert emails and
 * SMS, and the keys that sign them.
 *
 * A token names an alert, a researcher, an expiry, the key that signed it
 * and a random nonce, and carries an HMAC-SHA256 over all of them:
 *
 *   v1.KID.B64(alert_id).B64(researcher_id).EXPIRES.NONCE.SIG
 *
 * B64 is unpadded base64url (ids may hold any printable byte but '.'
 * separates fields), EXPIRES Unix seconds, NONCE 32 hex digits (16 random
 * bytes), SIG the unpadded base64url HMAC-SHA256, keyed with KID's secret,
 * of everything before the last '.'. The subject's pseudonym is not in it:
 * a link that leaks (a forwarded mail, a proxy log) names an alert id only.
 * Single use is the console's job (the nonce is recorded when the link is
 * used: table ack_link_uses); expiry and signature are checked here.
 *
 * Keys: a file of lines "KID SECRET" ('#' comments, blank lines ignored).
 * The first key signs; every key verifies, so a key is rotated by putting
 * a new line first and removing the old one after the longest link
 * lifetime. KID is [A-Za-z0-9_-]{1,32}; SECRET at least 16 bytes.
 *
 * Thread-safety: keys are immutable once loaded; every function is
 * reentrant.
 */
#ifndef VIGIL_ACKLINK_H
#define VIGIL_ACKLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACKLINK_KEYS_MAX 16
#define ACKLINK_KID_MAX 32
#define ACKLINK_SECRET_MAX 256
#define ACKLINK_ID_MAX 64    /* alert and researcher ids */
#define ACKLINK_TOKEN_MAX 400 /* longest token accepted or made */

struct acklink_keys {
    int n;
    char kid[ACKLINK_KEYS_MAX][ACKLINK_KID_MAX + 1];
    unsigned char secret[ACKLINK_KEYS_MAX][ACKLINK_SECRET_MAX];
    size_t secret_len[ACKLINK_KEYS_MAX];
};

/* Parses key-file TEXT (LEN bytes) into K. Returns 0, or -1 with errstr
 * naming the line (never the secret). */
int acklink_keys_parse(const char *text, size_t len, struct acklink_keys *k, char *errstr,
                       size_t errstr_size);

/* Reads and parses the key file PATH. Returns 0, or -1 with errstr. */
int acklink_keys_load(const char *path, struct acklink_keys *k, char *errstr,
                      size_t errstr_size);

struct acklink_claims {
    char kid[ACKLINK_KID_MAX + 1];
    char alert_id[ACKLINK_ID_MAX + 1];
    char researcher_id[ACKLINK_ID_MAX + 1];
    int64_t expires_s;
    char nonce[33];
};

enum acklink_status {
    ACKLINK_OK = 0,
    ACKLINK_MALFORMED,   /* not a token at all (or a field out of bounds) */
    ACKLINK_UNKNOWN_KEY, /* KID is not among the keys */
    ACKLINK_BAD_SIGNATURE,
    ACKLINK_EXPIRED,
};

/* A word for logs and the audit trail: "ok", "malformed", ... */
const char *acklink_status_name(enum acklink_status st);

/* Makes a token for (ALERT_ID, RESEARCHER_ID) valid until EXPIRES_S,
 * signed with K's first key and a fresh random nonce, into OUT. Returns its
 * length, or 0 (ids too long or empty, no key, no randomness, OUT too
 * small). */
size_t acklink_sign(const struct acklink_keys *k, const char *alert_id,
                    const char *researcher_id, int64_t expires_s, char *out, size_t outsz);

/* Splits TOKEN into C without checking key or signature (the syntax alone:
 * the fuzz target's entry). */
enum acklink_status acklink_parse(const char *token, size_t len, struct acklink_claims *c);

/* Parses TOKEN and checks its key, signature (constant time) and expiry
 * against NOW_S. C is filled as far as parsing got (for the audit entry of
 * a refusal), whatever the answer. */
enum acklink_status acklink_verify(const struct acklink_keys *k, const char *token, size_t len,
                                   int64_t now_s, struct acklink_claims *c);

/* Unpadded base64url of IN into OUT (NUL-terminated). Returns the length
 * or 0 when OUT is too small. Decode: returns the decoded length, or -1 on
 * a character outside the alphabet, a bad length, non-zero unused bits in
 * the last character (a second spelling of the same bytes), or no room. */
size_t acklink_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outsz);
long acklink_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outsz);

#endif
