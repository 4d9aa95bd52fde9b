/*
 * mllp: the framer's state machine (contract in mllp.h). Written by hand:
 * MLLP is three bytes of framing and no Debian library offers it in C.
 *
 * States: OUTSIDE (waiting for VT), INSIDE (collecting), AFTER_FS (the FS
 * came; a CR is expected and swallowed), DISCARD (past the maximum: drop
 * until FS). The buffer is kept between frames and grows by doubling up to
 * the maximum, so a long-lived connection allocates only while its
 * messages grow.
 */
#include "mllp.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum state { OUTSIDE, INSIDE, AFTER_FS, DISCARD };

struct mllp_framer {
    enum state st;
    size_t max;
    char *buf;
    size_t len, cap;
    size_t frame_len; /* of the frame last reported */
    uint64_t junk, abandoned;
};

struct mllp_framer *mllp_framer_new(size_t max)
{
    if (max < 16)
        return NULL;
    struct mllp_framer *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    f->max = max;
    return f;
}

void mllp_framer_destroy(struct mllp_framer *f)
{
    if (f == NULL)
        return;
    free(f->buf);
    free(f);
}

/* Makes room for N more bytes. False when at the maximum or out of memory. */
static bool reserve(struct mllp_framer *f, size_t n)
{
    if (f->len + n <= f->cap)
        return true;
    if (f->len + n > f->max)
        return false;
    size_t cap = f->cap ? f->cap : 4096;
    while (cap < f->len + n)
        cap *= 2;
    if (cap > f->max)
        cap = f->max;
    char *p = realloc(f->buf, cap);
    if (p == NULL)
        return false;
    f->buf = p;
    f->cap = cap;
    return true;
}

enum mllp_event mllp_framer_feed(struct mllp_framer *f, const uint8_t *buf, size_t len,
                                 size_t *consumed)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = buf[i];
        switch (f->st) {
        case AFTER_FS:
            f->st = OUTSIDE;
            if (c == MLLP_CR) {
                i++;
                continue;
            }
            continue; /* no CR: read this byte as outside a frame */
        case OUTSIDE:
            i++;
            if (c == MLLP_VT) {
                f->st = INSIDE;
                f->len = 0;
            } else {
                f->junk++;
            }
            continue;
        case INSIDE: {
            /* Copy a run up to the next control byte in one go. */
            size_t j = i;
            while (j < len && buf[j] != MLLP_FS && buf[j] != MLLP_VT)
                j++;
            size_t run = j - i;
            if (run > 0) {
                size_t room = f->max - f->len;
                size_t take = run < room ? run : room;
                if (take > 0 && !reserve(f, take))
                    take = 0; /* out of memory: cut here, as if oversize */
                if (take > 0) {
                    memcpy(f->buf + f->len, buf + i, take);
                    f->len += take;
                }
                i += run;
                if (take < run) {
                    f->st = DISCARD;
                    continue;
                }
            }
            if (i == len)
                break;
            if (buf[i] == MLLP_VT) {
                f->abandoned++;
                f->len = 0;
                i++;
                continue;
            }
            /* FS */
            i++;
            f->st = AFTER_FS;
            f->frame_len = f->len;
            *consumed = i;
            return MLLP_FRAME;
        }
        case DISCARD: {
            const void *fs = memchr(buf + i, MLLP_FS, len - i);
            if (fs == NULL) {
                i = len;
                break;
            }
            i = (size_t)((const uint8_t *)fs - buf) + 1;
            f->st = AFTER_FS;
            f->frame_len = f->len;
            *consumed = i;
            return MLLP_OVERSIZE;
        }
        }
    }
    *consumed = len;
    return MLLP_NEED_MORE;
}

const char *mllp_framer_frame(const struct mllp_framer *f, size_t *len)
{
    *len = f->frame_len;
    return f->buf != NULL ? f->buf : "";
}

int mllp_framer_in_frame(const struct mllp_framer *f)
{
    return f->st == INSIDE || f->st == DISCARD;
}

uint64_t mllp_framer_junk(const struct mllp_framer *f)
{
    return f->junk;
}

uint64_t mllp_framer_abandoned(const struct mllp_framer *f)
{
    return f->abandoned;
}

size_t mllp_wrap(const char *msg, size_t len, char *out, size_t outsz)
{
    if (outsz < len + 3)
        return 0;
    out[0] = MLLP_VT;
    memcpy(out + 1, msg, len);
    out[len + 1] = MLLP_FS;
    out[len + 2] = MLLP_CR;
    return len + 3;
}
