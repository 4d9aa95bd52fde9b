/*
 * form: application/x-www-form-urlencoded bodies (the acknowledgement
 * page's POST, the SMS gateway's inbound webhook) and the SMS reply text.
 * Untrusted bytes: bounded, no allocation, fuzzed (tests/fuzz/fuzz_inbound.c).
 * Reentrant.
 */
#ifndef VIGIL_CONSOLE_FORM_H
#define VIGIL_CONSOLE_FORM_H

#include <stdbool.h>
#include <stddef.h>

/* Finds field NAME in BODY (LEN bytes) and writes its percent- and
 * '+'-decoded value into OUT (NUL-terminated). Returns the value's length,
 * -1 when the field is absent, -2 when it is malformed (bad escape, a NUL,
 * longer than OUTSZ - 1). The first occurrence wins. */
long form_field(const char *body, size_t len, const char *name, char *out, size_t outsz);

/* Parses an SMS reply "ACK 4821" (case-insensitive "ACK", blanks, 4-8
 * digits, optional blanks around). Returns true with the digits in CODE
 * (at least 9 bytes). */
bool form_sms_ack(const char *text, char *code, size_t codesz);

/* Checks an E.164 number: '+', then 2-15 digits, the first not 0. */
bool form_e164(const char *s);

#endif
