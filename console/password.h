/*
 * password: Argon2id password hashes (libsodium's crypto_pwhash_str).
 *
 *   password_hash()     a new "$argon2id$v=19$m=...,t=...,p=1$salt$hash" string
 *   password_verify()   does a password match a stored string
 *   password_check()    is a new password acceptable (length bounds)
 *
 * The cost is libsodium's "interactive" level (64 MiB, 2 passes): about
 * 0.1 s of one core. A server therefore verifies a bounded number at once
 * (the console's sign-in limiter), or memory would grow with the number of
 * attackers. Parameters travel inside the string, so raising them later
 * leaves old hashes verifiable.
 *
 * Thread-safety: any thread; secret_init() must have run first.
 */
#ifndef VIGIL_CONSOLE_PASSWORD_H
#define VIGIL_CONSOLE_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

#define PASSWORD_MIN 12   /* characters (bytes): NIST SP 800-63B asks for 8 at least */
#define PASSWORD_MAX 256  /* longer is refused rather than hashed: bounded work */
#define PASSWORD_HASH_MAX 128

/* Returns 0 when PW is acceptable as a new password, else -1 with errstr
 * saying why (too short, too long, contains a NUL or a newline). */
int password_check(const char *pw, size_t len, char *errstr, size_t errstr_size);

/* Writes the Argon2id string of PW (LEN bytes) into out (PASSWORD_HASH_MAX
 * bytes). Returns 0, or -1 with errstr set (out of memory). */
int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_MAX], char *errstr,
                  size_t errstr_size);

/* True when PW matches STORED. False for a mismatch, a malformed STORED,
 * or PW longer than PASSWORD_MAX. Takes the hash's full cost either way. */
bool password_verify(const char *stored, const char *pw, size_t len);

/* A valid hash of a password nobody knows: verified against when the
 * account does not exist, so an unknown e-mail costs as much time as a
 * wrong password. */
const char *password_dummy_hash(void);

#endif
