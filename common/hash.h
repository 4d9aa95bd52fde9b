/*
 * hash: the one non-cryptographic hash vigil uses (64-bit FNV-1a), for
 * hash tables, dispatch by key and deterministic ids that must not change
 * between versions (retraction alert ids, email Message-IDs). Not for
 * anything an attacker may choose to collide on purpose where that matters:
 * signatures and audit chains use SHA-256.
 */
#ifndef VIGIL_HASH_H
#define VIGIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_SEED 14695981039346656037ull /* FNV-1a's offset basis */

/* Folds LEN bytes of DATA into H (start from HASH_SEED). */
static inline uint64_t hash_bytes(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Folds the NUL-terminated string S into H. */
static inline uint64_t hash_str(const char *s, uint64_t h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

#endif
