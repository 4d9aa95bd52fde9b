/*
 * hl7_redact: the copy of a message that may leave the listener, for the
 * dead-letter topic. An allow-list, not a block-list: a segment or field
 * not named below is removed, so a vendor's Z-segment or a field a new
 * HL7 version adds can never carry a name or a birth date out.
 *
 *   MSH  every field (applications, facilities, time, type, control id,
 *        version: no patient data)
 *   SFT  every field (the sending software)
 *   PID  PID-1 only (names, birth date, address, identifiers removed)
 *   PV1  PV1-1, PV1-2 (patient class)
 *   ORC  ORC-1, ORC-5, ORC-9 (order control, status, time)
 *   OBR  OBR-1, 4, 7, 8, 22, 24, 25 (test, times, section, status)
 *   OBX  OBX-1..4, 6, 7, 8, 11, 14, 19; OBX-5 only when OBX-2 is NM or SN
 *        (text and coded values may hold anything)
 *   SPM  SPM-1, 2, 4, 17
 *   everything else (NK1, NTE, PD1, PV2, GT1, IN1, AL1, DG1, Z-segments,
 *   ...) is removed. Order numbers (placer and filler) go too: they are
 *   identifiers; MSH-10 finds the message in the interface engine.
 *
 * Thread-safety: pure.
 */
#ifndef VIGIL_HL7_REDACT_H
#define VIGIL_HL7_REDACT_H

#include <stddef.h>

#include "hl7.h"

/* Writes the redacted copy of M (segments ended with \r) into OUT (OUTSZ
 * bytes). Returns the length; a copy that does not fit is cut at a segment
 * boundary. */
size_t hl7_redact(const struct hl7_msg *m, char *out, size_t outsz);

#endif
