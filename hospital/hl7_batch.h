/*
 * hl7_batch: the messages of an HL7 v2 batch file, for
 * `vigil produce --format hl7 FILE`:
 *
 *   [FHS ...]  [BHS ...]  MSH ... MSH ...  [BTS|count]  [FTS|count]
 *
 * A message runs from an MSH segment to the next MSH, BHS, BTS, FHS or FTS
 * (or the end). Segments may end with \r, \n or \r\n. Envelope segments
 * are not messages and are skipped; MLLP framing bytes (VT, FS) left in a
 * file are read as segment ends. A file of bare messages (no envelope) is
 * a batch too. BTS-1, when present, must equal the number of messages
 * since its BHS (hl7_batch_check).
 *
 * Thread-safety: a reader is one thread's.
 */
#ifndef VIGIL_HL7_BATCH_H
#define VIGIL_HL7_BATCH_H

#include <stddef.h>

struct hl7_batch {
    const char *buf; /* borrowed */
    size_t len, pos;
    long line;               /* 1-based line of the next segment */
    long batch_msgs;         /* messages since the last BHS */
    long bts_mismatches;     /* BTS-1 counts that did not match */
};

/* Starts reading BUF (LEN bytes, borrowed for the reader's life). */
void hl7_batch_init(struct hl7_batch *b, const char *buf, size_t len);

/* Finds the next message: *MSG and *MLEN get its bytes (inside BUF), *LINE
 * the line its MSH starts on. Returns 1, or 0 at the end. Text before the
 * first MSH that is not an envelope segment is skipped. */
int hl7_batch_next(struct hl7_batch *b, const char **msg, size_t *mlen, long *line);

#endif
