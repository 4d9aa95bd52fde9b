/*
 * secret: random tokens and their digests (secret.h), on libsodium.
 */
#include "secret.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

int secret_init(char *errstr, size_t errstr_size)
{
    if (sodium_init() < 0) {
        snprintf(errstr, errstr_size, "could not initialise libsodium (no system randomness?)");
        return -1;
    }
    return 0;
}

void secret_token(char out[SECRET_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(out, SECRET_TOKEN_LEN + 1, raw, sizeof raw,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

void secret_digest(const char *s, char out[SECRET_DIGEST_LEN + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(out, SECRET_DIGEST_LEN + 1, h, sizeof h);
}

bool secret_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL || strlen(a) != SECRET_DIGEST_LEN || strlen(b) != SECRET_DIGEST_LEN)
        return false;
    return sodium_memcmp(a, b, SECRET_DIGEST_LEN) == 0;
}

bool secret_token_valid(const char *s)
{
    if (s == NULL || strlen(s) != SECRET_TOKEN_LEN)
        return false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}
