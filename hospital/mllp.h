/*
 * mllp: the Minimal Lower Layer Protocol framing of HL7 v2 over TCP (HL7
 * v2.5.1 Implementation Guide, Appendix C, release 2):
 *
 *     <VT 0x0B> message <FS 0x1C><CR 0x0D>
 *
 * The framer is a state machine fed with whatever bytes the socket gave,
 * with no I/O of its own (so the fuzzer drives it directly). It is lenient
 * where senders are known to differ and strict where being lenient could
 * merge or split messages:
 *   - bytes between frames (stray CR/LF, keep-alive blanks) are skipped and
 *     counted as junk;
 *   - a VT inside a frame starts the frame again: the partial message
 *     before it is dropped and counted (MLLP release 2 says a new start
 *     block abandons the old one);
 *   - an FS not followed by CR still ends the frame (the byte after it is
 *     read as the start of whatever comes next);
 *   - a frame longer than the maximum is cut: its first MAX bytes are kept
 *     (enough to read MSH and answer with a reject), the rest up to its FS
 *     is discarded, and the frame is reported as oversize.
 *
 * Thread-safety: a framer is used by one thread at a time.
 */
#ifndef VIGIL_MLLP_H
#define VIGIL_MLLP_H

#include <stddef.h>
#include <stdint.h>

#define MLLP_VT 0x0B
#define MLLP_FS 0x1C
#define MLLP_CR 0x0D

enum mllp_event {
    MLLP_NEED_MORE = 0, /* every byte given was consumed; feed more */
    MLLP_FRAME,         /* a whole frame is ready (mllp_framer_frame) */
    MLLP_OVERSIZE,      /* a frame longer than the maximum ended; its first
                         * max bytes are ready (mllp_framer_frame) */
};

struct mllp_framer;

/* Returns a framer for frames of at most MAX bytes (>= 16), or NULL when
 * out of memory. The buffer grows on demand up to MAX. */
struct mllp_framer *mllp_framer_new(size_t max);

/* Frees F. NULL is a no-op. */
void mllp_framer_destroy(struct mllp_framer *f);

/* Consumes bytes of BUF (LEN) until a frame ends or BUF is used up;
 * *CONSUMED gets how many were taken (the caller feeds the rest again after
 * handling the frame). Returns the event. Out of memory while growing the
 * buffer makes the frame oversize at the size reached. */
enum mllp_event mllp_framer_feed(struct mllp_framer *f, const uint8_t *buf, size_t len,
                                 size_t *consumed);

/* The frame the last MLLP_FRAME or MLLP_OVERSIZE event reported; *LEN gets
 * its length. Valid until the next feed. */
const char *mllp_framer_frame(const struct mllp_framer *f, size_t *len);

/* True while a frame has begun (VT seen) and not ended. */
int mllp_framer_in_frame(const struct mllp_framer *f);

/* Counters since creation: bytes skipped outside frames, and frames
 * abandoned by a second VT. */
uint64_t mllp_framer_junk(const struct mllp_framer *f);
uint64_t mllp_framer_abandoned(const struct mllp_framer *f);

/* Writes <VT> MSG <FS><CR> into OUT. Returns the bytes written, or 0 if
 * OUTSZ < LEN + 3. */
size_t mllp_wrap(const char *msg, size_t len, char *out, size_t outsz);

#endif
