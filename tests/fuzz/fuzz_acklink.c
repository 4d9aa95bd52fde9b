/*
 * libFuzzer target for the acknowledgement link's token parser and the
 * link key file parser (alerting/acklink.c): the bytes after /ack/ in a URL
 * anyone can type, and a key file.
 *
 * Checks: acklink_parse and acklink_verify never read past the input (an
 * exactly sized copy) and agree (verify's answer is never OK for input the
 * parser rejects, and never OK at all: the fuzzer cannot know the key);
 * parsed claims are bounded, printable, NUL-terminated; claims that parse
 * survive a round trip: signed again with a test key they verify OK, with
 * the same alert, researcher and expiry. The key parser bounds its keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acklink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t max, const char *what)
{
    const char *end = memchr(s, '\0', max + 1);
    if (end == NULL) {
        fprintf(stderr, "fuzz_acklink: %s not NUL-terminated\n", what);
        abort();
    }
    for (const char *p = s; p < end; p++)
        if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e) {
            fprintf(stderr, "fuzz_acklink: %s holds a non-printable byte\n", what);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        abort();
    if (size)
        memcpy(buf, data, size);

    struct acklink_keys keys;
    char err[256];
    /* not the key the seed tokens were signed with */
    static const char keytext[] = "k1 fuzz-only-key-not-in-any-seed-42\n";
    if (acklink_keys_parse(keytext, sizeof keytext - 1, &keys, err, sizeof err) != 0)
        abort();

    struct acklink_claims c, v;
    enum acklink_status ps = acklink_parse(buf, size, &c);
    enum acklink_status vs = acklink_verify(&keys, buf, size, 0, &v);
    if (vs == ACKLINK_OK) {
        fprintf(stderr, "fuzz_acklink: a token verified without the key\n");
        abort();
    }
    if (ps != ACKLINK_OK && vs != ps) {
        fprintf(stderr, "fuzz_acklink: parse says %d, verify %d\n", ps, vs);
        abort();
    }
    if (ps == ACKLINK_OK) {
        check_str(c.alert_id, ACKLINK_ID_MAX, "alert id");
        check_str(c.researcher_id, ACKLINK_ID_MAX, "researcher id");
        check_str(c.kid, ACKLINK_KID_MAX, "kid");
        char tok[ACKLINK_TOKEN_MAX + 1];
        size_t n = acklink_sign(&keys, c.alert_id, c.researcher_id, c.expires_s, tok, sizeof tok);
        if (n == 0 || acklink_verify(&keys, tok, n, c.expires_s - 1, &v) != ACKLINK_OK ||
            strcmp(v.alert_id, c.alert_id) != 0 || strcmp(v.researcher_id, c.researcher_id) != 0 ||
            v.expires_s != c.expires_s) {
            fprintf(stderr, "fuzz_acklink: parsed claims do not round-trip\n");
            abort();
        }
    }
    struct acklink_keys k2;
    if (acklink_keys_parse(buf, size, &k2, err, sizeof err) == 0) {
        if (k2.n < 1 || k2.n > ACKLINK_KEYS_MAX)
            abort();
        for (int i = 0; i < k2.n; i++)
            if (k2.secret_len[i] < 16 || k2.secret_len[i] > ACKLINK_SECRET_MAX ||
                strlen(k2.kid[i]) == 0)
                abort();
    }
    free(buf);
    return 0;
}
