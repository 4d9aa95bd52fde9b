/*
 * libFuzzer target for the MLLP framer. The first byte of the input picks
 * how the rest is cut into reads (as a socket would deliver it); every
 * frame reported must hold neither a start (VT) nor an end (FS) byte, be at
 * most the maximum long, and the framer must consume every byte it is fed
 * (no stall, no loop). The same stream fed in one piece must give the same
 * frames as fed in pieces.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mllp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX 256

struct tally {
    size_t frames, oversize, bytes;
    uint64_t hash;
};

static void feed(struct mllp_framer *f, const uint8_t *buf, size_t len, struct tally *t)
{
    size_t off = 0;
    int guard = 0;
    while (off < len) {
        size_t used = 0;
        enum mllp_event ev = mllp_framer_feed(f, buf + off, len - off, &used);
        if (used == 0 || used > len - off || ++guard > 1000000)
            abort();
        off += used;
        if (ev == MLLP_NEED_MORE) {
            if (off != len)
                abort();
            break;
        }
        size_t flen;
        const char *fr = mllp_framer_frame(f, &flen);
        if (flen > MAX || memchr(fr, MLLP_VT, flen) != NULL || memchr(fr, MLLP_FS, flen) != NULL)
            abort();
        if (ev == MLLP_OVERSIZE)
            t->oversize++;
        t->frames++;
        t->bytes += flen;
        for (size_t i = 0; i < flen; i++)
            t->hash = (t->hash ^ (uint8_t)fr[i]) * 1099511628211ull;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = (size_t)data[0] % 17 + 1;
    data++;
    size--;
    struct mllp_framer *a = mllp_framer_new(MAX), *b = mllp_framer_new(MAX);
    if (a == NULL || b == NULL)
        abort();
    struct tally ta = {0, 0, 0, 14695981039346656037ull}, tb = ta;
    feed(a, data, size, &ta);
    for (size_t off = 0; off < size; off += step)
        feed(b, data + off, off + step <= size ? step : size - off, &tb);
    if (ta.frames != tb.frames || ta.oversize != tb.oversize || ta.bytes != tb.bytes ||
        ta.hash != tb.hash || mllp_framer_junk(a) != mllp_framer_junk(b) ||
        mllp_framer_abandoned(a) != mllp_framer_abandoned(b))
        abort();
    char w[MAX + 3];
    if (size <= MAX && mllp_wrap((const char *)data, size, w, sizeof w) != size + 3)
        abort();
    mllp_framer_destroy(a);
    mllp_framer_destroy(b);
    return 0;
}
