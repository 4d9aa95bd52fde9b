/*
 * libFuzzer target for the SMS gateway's answer body: the whole input is
 * what the gateway sent back, handed to sms_parse_sid() (from an exactly
 * sized copy, so a read past the body is an ASan report) with output
 * buffers of 1, 8 and 320 bytes (320 is what the notifier passes).
 *
 * Checks, for every size: no byte after out[outsz-1] is written (guard
 * bytes); a true result leaves out NUL-terminated inside outsz, non-empty,
 * printable ASCII, at most SMS_SID_MAX bytes; and it is the same id the
 * 320-byte call read: a buffer too small for the id must give false, never
 * a cut id that would be recorded as the provider's. A false result must
 * not depend on outsz except for that reason. The body is never modified.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sms.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 16
#define GUARD_BYTE 0xa5

static const size_t sizes[] = {320, 8, 1}; /* 320 first: the reference */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > SMS_RESPONSE_MAX)
        return 0; /* the notifier never keeps more than this */
    char *body = malloc(size ? size : 1);
    if (!body)
        abort();
    if (size)
        memcpy(body, data, size);

    char ref[320 + GUARD];
    bool ref_ok = false;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t outsz = sizes[k];
        char buf[320 + GUARD];
        memset(buf, GUARD_BYTE, sizeof buf);
        bool ok = sms_parse_sid(body, size, buf, outsz);
        for (size_t i = outsz; i < outsz + GUARD; i++)
            if ((unsigned char)buf[i] != GUARD_BYTE) {
                fprintf(stderr, "fuzz_sms: wrote byte %zu of a %zu-byte buffer\n", i, outsz);
                abort();
            }
        if (ok) {
            const char *end = memchr(buf, '\0', outsz);
            if (!end) {
                fprintf(stderr, "fuzz_sms: no NUL within %zu bytes\n", outsz);
                abort();
            }
            size_t n = (size_t)(end - buf);
            if (n == 0 || n > SMS_SID_MAX) {
                fprintf(stderr, "fuzz_sms: sid of %zu bytes accepted\n", n);
                abort();
            }
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)buf[i] <= 0x20 || (unsigned char)buf[i] >= 0x7f) {
                    fprintf(stderr, "fuzz_sms: byte 0x%02x in the sid\n", (unsigned char)buf[i]);
                    abort();
                }
        }
        if (k == 0) {
            ref_ok = ok;
            if (ok)
                memcpy(ref, buf, sizeof ref);
        } else if (ok && (!ref_ok || strcmp(buf, ref) != 0)) {
            fprintf(stderr, "fuzz_sms: %zu-byte buffer gave \"%s\", 320 bytes gave \"%s\"\n",
                    outsz, buf, ref_ok ? ref : "(false)");
            abort();
        } else if (!ok && ref_ok && strlen(ref) < outsz) {
            fprintf(stderr, "fuzz_sms: \"%s\" fits in %zu bytes but was refused\n", ref, outsz);
            abort();
        }
    }
    if (size && memcmp(body, data, size) != 0)
        abort();
    free(body);
    return 0;
}
