/*
 * secret: the console's random bearer values and their digests.
 *
 *   secret_token()    32 random bytes as 43 base64url characters (no padding)
 *   secret_digest()   the lower-case hex SHA-256 of a string (64 characters)
 *   secret_equal()    constant-time comparison of two digests
 *
 * Session ids, CSRF tokens and API tokens are secret_token()s handed to the
 * client once; PostgreSQL keeps only secret_digest() of each, so a copy of
 * the tables cannot be replayed. A plain digest (no salt, no stretching) is
 * right here: the values are 256 random bits, not passwords.
 *
 * Thread-safety: every function may be called from any thread (libsodium is
 * initialised by secret_init, once, before threads start).
 */
#ifndef VIGIL_CONSOLE_SECRET_H
#define VIGIL_CONSOLE_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_TOKEN_LEN 43  /* base64url of 32 bytes, no padding */
#define SECRET_DIGEST_LEN 64 /* hex SHA-256 */

/* Initialises libsodium. Returns 0, or -1 with errstr set when the system
 * offers no randomness. Safe to call more than once. */
int secret_init(char *errstr, size_t errstr_size);

/* Writes a fresh random token into out (at least SECRET_TOKEN_LEN + 1 bytes).
 * Cannot fail once secret_init succeeded. */
void secret_token(char out[SECRET_TOKEN_LEN + 1]);

/* Writes the hex SHA-256 of S into out (SECRET_DIGEST_LEN + 1 bytes). */
void secret_digest(const char *s, char out[SECRET_DIGEST_LEN + 1]);

/* True when A and B (both SECRET_DIGEST_LEN characters) are equal, in time
 * independent of where they differ. False when either is NULL. */
bool secret_equal(const char *a, const char *b);

/* True when S looks like a token this module made (43 base64url
 * characters): anything else is refused before it reaches SQL. */
bool secret_token_valid(const char *s);

#endif
