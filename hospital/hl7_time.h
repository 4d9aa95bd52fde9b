/*
 * hl7_time: HL7 v2 date/time values (DTM, and TS's first component) to
 * milliseconds since the Unix epoch, UTC.
 *
 *   YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
 *
 * Missing parts read as their start (a date alone is its midnight). A
 * value with an offset is exact. A value without one is read in the
 * sending facility's time zone (an IANA name such as Europe/Berlin, from
 * the facility mapping), through GLib's GTimeZone, which is immutable and
 * thread-safe. libc is not used for this on purpose: mktime() reads the
 * process-global TZ, and setenv("TZ") + tzset() from one connection thread
 * would change the zone under every other thread (and setenv itself is not
 * thread-safe). Local times that a clock change makes ambiguous (the
 * repeated hour in autumn) read as their first occurrence (daylight time);
 * local times in the spring gap, which never happened, read as the moment
 * the clock jumped (02:30 on a Berlin spring-forward day is 03:00 CEST).
 *
 * Thread-safety: a struct hl7_tz is immutable once made; any thread may
 * use it. hl7_time_parse is pure.
 */
#ifndef VIGIL_HL7_TIME_H
#define VIGIL_HL7_TIME_H

#include <stddef.h>
#include <stdint.h>

struct hl7_tz;

/* Returns the zone NAME ("UTC", "Europe/Berlin", from the system's tzdata),
 * or NULL with errstr when the name is unknown. The caller owns it. */
struct hl7_tz *hl7_tz_new(const char *name, char *errstr, size_t errstr_size);

/* Frees TZ. NULL is a no-op. */
void hl7_tz_destroy(struct hl7_tz *tz);

/* The zone's name as given to hl7_tz_new. */
const char *hl7_tz_name(const struct hl7_tz *tz);

/* Parses S (NUL-terminated, surrounding blanks not allowed) into *OUT_MS.
 * TZ (NULL: UTC) is used when S has no offset. Returns 0, or -1 with errstr
 * naming what is wrong (never quoting more than S itself). */
int hl7_time_parse(const char *s, const struct hl7_tz *tz, int64_t *out_ms, char *errstr,
                   size_t errstr_size);

#endif
