/*
 * libFuzzer target for the SMS gateway's inbound webhook body (console/
 * form.c, console/sms_inbound.c): form fields From and Body, the reply text
 * "ACK 4821", and the signature header. All of it arrives from the network.
 *
 * Checks: form_field never writes past its buffer (guard bytes) and
 * returns either -1/-2 or the length of a NUL-terminated value without
 * NUL bytes inside; form_sms_ack yields 4-8 digits or nothing; form_e164
 * accepts only '+' and 3-16 digits; the signature check never accepts a
 * header for a body the fuzzer cannot have signed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "form.h"
#include "sms_inbound.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GUARD 16

static void field(const char *body, size_t len, const char *name, size_t outsz)
{
    char out[256 + GUARD];
    memset(out, 0xa5, sizeof out);
    long n = form_field(body, len, name, out, outsz);
    for (size_t i = outsz; i < outsz + GUARD; i++)
        if ((unsigned char)out[i] != 0xa5)
            abort();
    if (n >= 0) {
        if ((size_t)n >= outsz || out[n] != '\0' || strlen(out) != (size_t)n)
            abort();
        char code[16];
        if (form_sms_ack(out, code, sizeof code)) {
            size_t cl = strlen(code);
            if (cl < 4 || cl > 8 || strspn(code, "0123456789") != cl)
                abort();
        }
        if (form_e164(out) && (out[0] != '+' || strlen(out) < 3 || strlen(out) > 16 ||
                               strspn(out + 1, "0123456789") != strlen(out) - 1))
            abort();
    } else if (n != -1 && n != -2) {
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
    static const size_t sizes[] = {256, 32, 5, 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        field(buf, size, "From", sizes[k]);
        field(buf, size, "Body", sizes[k]);
        field(buf, size, "note", sizes[k]);
    }
    /* first line: a signature header; the rest: the body it claims */
    const char *nl = memchr(buf, '\n', size);
    if (nl != NULL && (size_t)(nl - buf) < 200) {
        char hdr[200];
        memcpy(hdr, buf, (size_t)(nl - buf));
        hdr[nl - buf] = '\0';
        if (sms_inbound_signature_ok("fuzz-secret-0123456789", nl + 1, size - (size_t)(nl - buf) - 1,
                                     hdr) &&
            strstr(hdr, "sha256=") != hdr)
            abort();
    }
    free(buf);
    return 0;
}
