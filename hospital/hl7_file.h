/*
 * hl7_file: an HL7 v2 file (one message, many, or an FHS/BHS batch:
 * hl7_batch.h) through the same parser and mapping as `vigil mllp`, for
 * `vigil produce --format hl7 FILE`. Each message is mapped with the
 * facility mapping and the enrolment table exactly as the listener maps
 * it (hl7_map.h), so a file replayed from an interface engine's archive
 * gives the same observation ids as the live feed did.
 *
 * Thread-safety: one call reads one file on the caller's thread.
 */
#ifndef VIGIL_HL7_FILE_H
#define VIGIL_HL7_FILE_H

#include <stddef.h>

#include "hl7_enrol.h"
#include "hl7_facility.h"
#include "observation.h"

#define HL7_FILE_MAX (64 * 1024 * 1024)

struct hl7_file_stats {
    unsigned long messages;     /* messages read */
    unsigned long not_enrolled; /* no enrolled patient: dropped */
    unsigned long refused;      /* answered AE or AR (reported) */
    unsigned long observations; /* handed to EMIT */
};

/* Returns 0 to go on, non-zero to stop reading. */
typedef int (*hl7_file_emit)(void *arg, const struct observation *obs);

/* Called with "NAME:LINE: MSH-10 ID: reason" for each refused message. */
typedef void (*hl7_file_report)(void *arg, const char *msg);

/* Reads PATH ("-": stdin; at most HL7_FILE_MAX bytes), maps every message
 * and calls EMIT for each observation (also those of a message refused
 * for another OBX, as the listener forwards them) and REPORT for each
 * refused message. PROCESSING_IDS as hl7_map_options. Returns 0 (stats
 * in *ST), or -1 with errstr when the file cannot be read. */
int hl7_file_read(const char *path, const struct hl7_facilities *fac, const struct hl7_enrol *en,
                  const char *processing_ids, hl7_file_emit emit, hl7_file_report report,
                  void *arg, struct hl7_file_stats *st, char *errstr, size_t errstr_size);

#endif
