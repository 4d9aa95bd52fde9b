#include "acklink.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t acklink_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
    size_t need = (len / 3) * 4 + (len % 3 ? len % 3 + 1 : 0);
    if (need + 1 > outsz)
        return 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = B64URL[(v >> 18) & 63];
        out[o++] = B64URL[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = B64URL[(v >> 6) & 63];
        if (i + 2 < len)
            out[o++] = B64URL[v & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long acklink_b64url_decode(const char *in, size_t len, unsigned char *out, size_t outsz)
{
    if (len % 4 == 1)
        return -1;
    size_t need = (len / 4) * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > outsz)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        size_t k = 0;
        for (; k < 4 && i + k < len; k++) {
            int x = b64url_value(in[i + k]);
            if (x < 0)
                return -1;
            v |= (uint32_t)x << (18 - 6 * k);
        }
        /* the unused low bits of a last partial group must be zero: one
         * encoding per value, so no two strings are the same token */
        if ((k == 2 && (v & 0xffff) != 0) || (k == 3 && (v & 0xff) != 0))
            return -1;
        out[o++] = (unsigned char)(v >> 16);
        if (k > 2)
            out[o++] = (unsigned char)(v >> 8);
        if (k > 3)
            out[o++] = (unsigned char)v;
    }
    return (long)o;
}

static bool kid_ok(const char *s, size_t n)
{
    if (n == 0 || n > ACKLINK_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

int acklink_keys_parse(const char *text, size_t len, struct acklink_keys *k, char *errstr,
                       size_t errstr_size)
{
    memset(k, 0, sizeof *k);
    size_t pos = 0;
    int line = 0;
    while (pos < len) {
        line++;
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t a = pos, b = end;
        pos = end + 1;
        while (a < b && (text[a] == ' ' || text[a] == '\t'))
            a++;
        while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t' || text[b - 1] == '\r'))
            b--;
        if (a == b || text[a] == '#')
            continue;
        size_t sp = a;
        while (sp < b && text[sp] != ' ' && text[sp] != '\t')
            sp++;
        size_t s = sp;
        while (s < b && (text[s] == ' ' || text[s] == '\t'))
            s++;
        if (!kid_ok(text + a, sp - a)) {
            snprintf(errstr, errstr_size,
                     "key file line %d: the key id must be 1-%d of [A-Za-z0-9_-]", line,
                     ACKLINK_KID_MAX);
            return -1;
        }
        if (b - s < 16 || b - s > ACKLINK_SECRET_MAX) {
            snprintf(errstr, errstr_size,
                     "key file line %d: want 'KID SECRET' with a secret of 16 to %d bytes", line,
                     ACKLINK_SECRET_MAX);
            return -1;
        }
        for (int i = 0; i < k->n; i++)
            if (strlen(k->kid[i]) == sp - a && memcmp(k->kid[i], text + a, sp - a) == 0) {
                snprintf(errstr, errstr_size, "key file line %d: key id '%.*s' given twice",
                         line, (int)(sp - a), text + a);
                return -1;
            }
        if (k->n >= ACKLINK_KEYS_MAX) {
            snprintf(errstr, errstr_size, "key file: more than %d keys", ACKLINK_KEYS_MAX);
            return -1;
        }
        memcpy(k->kid[k->n], text + a, sp - a);
        k->kid[k->n][sp - a] = '\0';
        memcpy(k->secret[k->n], text + s, b - s);
        k->secret_len[k->n] = b - s;
        k->n++;
    }
    if (k->n == 0) {
        snprintf(errstr, errstr_size, "key file holds no key (want lines 'KID SECRET')");
        return -1;
    }
    return 0;
}

int acklink_keys_load(const char *path, struct acklink_keys *k, char *errstr,
                      size_t errstr_size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "could not open link key file %s", path);
        return -1;
    }
    char buf[ACKLINK_KEYS_MAX * (ACKLINK_SECRET_MAX + ACKLINK_KID_MAX + 8) + 4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    bool more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        snprintf(errstr, errstr_size, "link key file %s is too large", path);
        return -1;
    }
    char err[256];
    int rc = acklink_keys_parse(buf, n, k, err, sizeof err);
    OPENSSL_cleanse(buf, sizeof buf);
    if (rc != 0)
        snprintf(errstr, errstr_size, "%s: %s", path, err);
    return rc;
}

const char *acklink_status_name(enum acklink_status st)
{
    switch (st) {
    case ACKLINK_OK:
        return "ok";
    case ACKLINK_MALFORMED:
        return "malformed";
    case ACKLINK_UNKNOWN_KEY:
        return "unknown_key";
    case ACKLINK_BAD_SIGNATURE:
        return "bad_signature";
    case ACKLINK_EXPIRED:
        return "expired";
    }
    return "unknown";
}

static bool hmac(const unsigned char *key, size_t keylen, const char *msg, size_t len,
                 unsigned char md[32])
{
    unsigned int mdlen = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, len, md, &mdlen) !=
               NULL &&
           mdlen == 32;
}

size_t acklink_sign(const struct acklink_keys *k, const char *alert_id,
                    const char *researcher_id, int64_t expires_s, char *out, size_t outsz)
{
    size_t al = strlen(alert_id), rl = strlen(researcher_id);
    if (k->n == 0 || al == 0 || rl == 0 || al > ACKLINK_ID_MAX || rl > ACKLINK_ID_MAX)
        return 0;
    unsigned char nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return 0;
    char a64[ACKLINK_ID_MAX * 2], r64[ACKLINK_ID_MAX * 2], hex[33];
    acklink_b64url_encode((const unsigned char *)alert_id, al, a64, sizeof a64);
    acklink_b64url_encode((const unsigned char *)researcher_id, rl, r64, sizeof r64);
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", nonce[i]);
    char buf[ACKLINK_TOKEN_MAX + 1];
    int n = snprintf(buf, sizeof buf, "v1.%s.%s.%s.%lld.%s", k->kid[0], a64, r64,
                     (long long)expires_s, hex);
    if (n < 0 || (size_t)n + 45 > sizeof buf)
        return 0;
    unsigned char md[32];
    if (!hmac(k->secret[0], k->secret_len[0], buf, (size_t)n, md))
        return 0;
    buf[n++] = '.';
    size_t sl = acklink_b64url_encode(md, sizeof md, buf + n, sizeof buf - (size_t)n);
    if (sl == 0 || (size_t)n + sl + 1 > outsz)
        return 0;
    memcpy(out, buf, (size_t)n + sl + 1);
    return (size_t)n + sl;
}

/* Decodes the base64url id in [S, S+N) into OUT as a printable string. */
static bool decode_id(const char *s, size_t n, char *out)
{
    if (n == 0 || n > (ACKLINK_ID_MAX * 4 + 2) / 3)
        return false;
    unsigned char raw[ACKLINK_ID_MAX + 3];
    long len = acklink_b64url_decode(s, n, raw, sizeof raw);
    if (len <= 0 || len > ACKLINK_ID_MAX)
        return false;
    for (long i = 0; i < len; i++)
        if (raw[i] < 0x21 || raw[i] > 0x7e)
            return false;
    memcpy(out, raw, (size_t)len);
    out[len] = '\0';
    return true;
}

enum acklink_status acklink_parse(const char *token, size_t len, struct acklink_claims *c)
{
    memset(c, 0, sizeof *c);
    if (len > ACKLINK_TOKEN_MAX || len < 3 || memcmp(token, "v1.", 3) != 0)
        return ACKLINK_MALFORMED;
    const char *f[7];
    size_t fl[7];
    int nf = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || token[i] == '.') {
            if (nf == 7)
                return ACKLINK_MALFORMED;
            f[nf] = token + start;
            fl[nf] = i - start;
            nf++;
            start = i + 1;
        } else if (token[i] == '\0') {
            return ACKLINK_MALFORMED;
        }
    }
    if (nf != 7 || !kid_ok(f[1], fl[1]))
        return ACKLINK_MALFORMED;
    memcpy(c->kid, f[1], fl[1]);
    c->kid[fl[1]] = '\0';
    if (!decode_id(f[2], fl[2], c->alert_id) || !decode_id(f[3], fl[3], c->researcher_id))
        return ACKLINK_MALFORMED;
    if (fl[4] == 0 || fl[4] > 12)
        return ACKLINK_MALFORMED;
    int64_t exp = 0;
    for (size_t i = 0; i < fl[4]; i++) {
        if (f[4][i] < '0' || f[4][i] > '9')
            return ACKLINK_MALFORMED;
        exp = exp * 10 + (f[4][i] - '0');
    }
    c->expires_s = exp;
    if (fl[5] != 32)
        return ACKLINK_MALFORMED;
    for (size_t i = 0; i < 32; i++) {
        char x = f[5][i];
        if (!((x >= '0' && x <= '9') || (x >= 'a' && x <= 'f')))
            return ACKLINK_MALFORMED;
    }
    memcpy(c->nonce, f[5], 32);
    c->nonce[32] = '\0';
    if (fl[6] != 43)
        return ACKLINK_MALFORMED;
    unsigned char sig[33];
    if (acklink_b64url_decode(f[6], fl[6], sig, sizeof sig) != 32)
        return ACKLINK_MALFORMED;
    return ACKLINK_OK;
}

enum acklink_status acklink_verify(const struct acklink_keys *k, const char *token, size_t len,
                                   int64_t now_s, struct acklink_claims *c)
{
    enum acklink_status st = acklink_parse(token, len, c);
    if (st != ACKLINK_OK)
        return st;
    int key = -1;
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->kid[i], c->kid) == 0)
            key = i;
    if (key < 0)
        return ACKLINK_UNKNOWN_KEY;
    const char *dot = memrchr(token, '.', len);
    size_t signed_len = (size_t)(dot - token);
    unsigned char want[32], got[33];
    if (!hmac(k->secret[key], k->secret_len[key], token, signed_len, want))
        return ACKLINK_BAD_SIGNATURE;
    if (acklink_b64url_decode(dot + 1, len - signed_len - 1, got, sizeof got) != 32 ||
        CRYPTO_memcmp(want, got, 32) != 0)
        return ACKLINK_BAD_SIGNATURE;
    if (c->expires_s <= now_s)
        return ACKLINK_EXPIRED;
    return ACKLINK_OK;
}
