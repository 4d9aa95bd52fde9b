/*
 * hl7_redact: the allow-list copy for dead letters (contract and the list
 * in hl7_redact.h). Fields are copied as sent (still escaped); removed
 * fields stay as empty positions so the field numbers an ERR names still
 * point at the right place.
 */
#include "hl7_redact.h"

#include <stdbool.h>
#include <string.h>

struct keep {
    const char seg[4];
    int fields[16]; /* 0-terminated; -1: every field */
};

static const struct keep keeps[] = {
    {"MSH", {-1}},
    {"SFT", {-1}},
    {"PID", {1, 0}},
    {"PV1", {1, 2, 0}},
    {"ORC", {1, 5, 9, 0}},
    {"OBR", {1, 4, 7, 8, 22, 24, 25, 0}},
    {"OBX", {1, 2, 3, 4, 5, 6, 7, 8, 11, 14, 19, 0}},
    {"SPM", {1, 2, 4, 17, 0}},
};

static const struct keep *keep_of(const char *seg)
{
    for (size_t i = 0; i < sizeof keeps / sizeof keeps[0]; i++)
        if (strcmp(keeps[i].seg, seg) == 0)
            return &keeps[i];
    return NULL;
}

static bool kept(const struct keep *k, int field)
{
    if (k->fields[0] == -1)
        return true;
    for (int i = 0; k->fields[i] != 0; i++)
        if (k->fields[i] == field)
            return true;
    return false;
}

/* OBX-5 is kept only for numeric types. */
static bool obx5_numeric(const struct hl7_msg *m, size_t seg)
{
    char type[8];
    return hl7_get(m, seg, 2, 1, 1, 1, type, sizeof type) > 0 &&
           (strcmp(type, "NM") == 0 || strcmp(type, "SN") == 0);
}

size_t hl7_redact(const struct hl7_msg *m, char *out, size_t outsz)
{
    size_t n = 0;
    if (outsz == 0)
        return 0;
    out[0] = '\0';
    const struct hl7_delims *d = hl7_delims(m);
    char seg[65536];
    for (size_t s = 0; s < hl7_segment_count(m); s++) {
        const char *name = hl7_segment_name(m, s);
        const struct keep *k = keep_of(name);
        if (k == NULL)
            continue;
        bool msh = strcmp(name, "MSH") == 0;
        size_t len = 0;
        memcpy(seg, name, 3);
        len = 3;
        int nf = hl7_field_count(m, s);
        /* The last kept field bounds what is written: no trailing empties. */
        int last = 0;
        for (int f = 1; f <= nf; f++)
            if (kept(k, f) && (f != 5 || strcmp(name, "OBX") != 0 || obx5_numeric(m, s)))
                last = f;
        bool ok = true;
        for (int f = msh ? 2 : 1; f <= last && ok; f++) {
            size_t flen = 0;
            const char *p = NULL;
            if (kept(k, f) && (f != 5 || strcmp(name, "OBX") != 0 || obx5_numeric(m, s)))
                p = hl7_raw(m, s, f, &flen);
            if (len + 1 + flen + 1 > sizeof seg) {
                ok = false;
                break;
            }
            seg[len++] = d->field;
            if (p != NULL) {
                memcpy(seg + len, p, flen);
                len += flen;
            }
        }
        if (!ok || n + len + 2 > outsz)
            break;
        memcpy(out + n, seg, len);
        n += len;
        out[n++] = '\r';
        out[n] = '\0';
    }
    return n;
}
