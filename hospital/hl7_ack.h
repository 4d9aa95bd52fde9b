/*
 * hl7_ack: the original-mode acknowledgement (HL7 v2 chapter 2) vigil
 * answers every message with:
 *
 *   MSH|^~\&|<MSH-5>|<MSH-6>|<MSH-3>|<MSH-4>|<now, UTC>||ACK^R01[^ACK]|<id>|<MSH-11>|<MSH-12>
 *   MSA|<AA, AE or AR>|<MSH-10>[|<first error's text>]
 *   ERR|...   one per error: ERR-1 (v2.3/2.4 style segment^sequence^field^code)
 *             and, for v2.5 and later, ERR-2 location, ERR-3 code (HL7
 *             table 0357), ERR-4 severity E, ERR-8 text
 *
 * The ACK uses the message's own delimiters, and copies the application and
 * facility fields as sent (they are already escaped for those delimiters).
 * A message that could not be parsed at all is answered with the standard
 * delimiters, MSH-12 2.5.1 and an empty MSA-2.
 *
 * Thread-safety: pure; writes only OUT.
 */
#ifndef VIGIL_HL7_ACK_H
#define VIGIL_HL7_ACK_H

#include <stddef.h>
#include <stdint.h>

#include "hl7.h"
#include "hl7_map.h"

#define HL7_ACK_MAX 8192

/* Writes the ACK to message M (NULL: unparsed) with CODE and the N errors
 * ERR into OUT, segments ended with \r, no MLLP framing. CONTROL_ID is the
 * ACK's own MSH-10; NOW_MS its MSH-7. Returns the length (texts that do not
 * fit are shortened; with OUTSZ >= HL7_ACK_MAX everything fits). */
size_t hl7_ack_write(const struct hl7_msg *m, enum hl7_ack_code code, const struct hl7_error *err,
                     int n, const char *control_id, int64_t now_ms, char *out, size_t outsz);

/* The name HL7 table 0357 gives error CODE ("Required field missing"). */
const char *hl7_error_name(int code);

#endif
