/*
 * password: Argon2id hashing and verification (password.h).
 */
#include "password.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int password_check(const char *pw, size_t len, char *errstr, size_t errstr_size)
{
    if (len < PASSWORD_MIN) {
        snprintf(errstr, errstr_size, "password too short: at least %d characters", PASSWORD_MIN);
        return -1;
    }
    if (len > PASSWORD_MAX) {
        snprintf(errstr, errstr_size, "password too long: at most %d characters", PASSWORD_MAX);
        return -1;
    }
    if (memchr(pw, '\0', len) || memchr(pw, '\n', len) || memchr(pw, '\r', len)) {
        snprintf(errstr, errstr_size, "password contains a NUL or a line break");
        return -1;
    }
    return 0;
}

int password_hash(const char *pw, size_t len, char out[PASSWORD_HASH_MAX], char *errstr,
                  size_t errstr_size)
{
    _Static_assert(PASSWORD_HASH_MAX >= crypto_pwhash_STRBYTES, "hash buffer too small");
    if (crypto_pwhash_str_alg(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        snprintf(errstr, errstr_size, "could not hash the password: out of memory");
        return -1;
    }
    return 0;
}

bool password_verify(const char *stored, const char *pw, size_t len)
{
    if (stored == NULL || len > PASSWORD_MAX || strncmp(stored, "$argon2id$", 10) != 0)
        return false;
    return crypto_pwhash_str_verify(stored, pw, len) == 0;
}

const char *password_dummy_hash(void)
{
    /* Hash of 32 random bytes thrown away at build time; same parameters as
     * password_hash() so it costs the same. */
    return "$argon2id$v=19$m=65536,t=2,p=1$Vtk0PXRtLVvC6dJUk3OdNg$"
           "8wvEvZB2NQnqLpUpzzWcy4DjrVaGv0zvB7Yq2nF3n1Q";
}
