/* hl7_file: HL7 v2 files for `vigil produce` (contract in hl7_file.h). */
#include "hl7_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl7.h"
#include "hl7_batch.h"
#include "hl7_map.h"

static char *read_all(const char *path, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "could not open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        if (n == cap) {
            if (cap >= HL7_FILE_MAX) {
                snprintf(errstr, errstr_size, "could not read %s: larger than %d bytes", path,
                         HL7_FILE_MAX);
                goto fail;
            }
            char *p = realloc(buf, cap * 2);
            if (p == NULL)
                break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                snprintf(errstr, errstr_size, "could not read %s: %s", path, strerror(errno));
                goto fail;
            }
            if (f != stdin)
                fclose(f);
            *len = n;
            return buf;
        }
    }
    snprintf(errstr, errstr_size, "out of memory");
fail:
    free(buf);
    if (f != stdin)
        fclose(f);
    return NULL;
}

int hl7_file_read(const char *path, const struct hl7_facilities *fac, const struct hl7_enrol *en,
                  const char *processing_ids, hl7_file_emit emit, hl7_file_report report,
                  void *arg, struct hl7_file_stats *st, char *errstr, size_t errstr_size)
{
    memset(st, 0, sizeof *st);
    size_t len;
    char *buf = read_all(path, &len, errstr, errstr_size);
    if (buf == NULL)
        return -1;
    struct hl7_msg *m = hl7_msg_new();
    struct hl7_mapped *r = hl7_mapped_new();
    if (m == NULL || r == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        free(buf);
        hl7_msg_destroy(m);
        hl7_mapped_destroy(r);
        return -1;
    }
    struct hl7_map_options opt = {processing_ids};
    struct hl7_batch b;
    hl7_batch_init(&b, buf, len);
    const char *msg;
    size_t mlen;
    long line;
    char why[512], text[1024], id[128];
    bool stop = false;
    while (!stop && hl7_batch_next(&b, &msg, &mlen, &line) == 1) {
        st->messages++;
        if (hl7_parse(m, msg, mlen, why, sizeof why) != 0) {
            st->refused++;
            snprintf(text, sizeof text, "%s:%ld: %s", path, line, why);
            report(arg, text);
            continue;
        }
        if (hl7_get(m, 0, 10, 1, 1, 1, id, sizeof id) < 0)
            id[0] = '\0';
        enum hl7_ack_code ack = hl7_map_message(m, fac, en, &opt, r);
        if (!r->enrolled && ack == HL7_AA)
            st->not_enrolled++;
        for (size_t i = 0; i < r->n_obs && !stop; i++) {
            st->observations++;
            stop = emit(arg, &r->obs[i]) != 0;
        }
        if (ack != HL7_AA) {
            st->refused++;
            for (int i = 0; i < r->n_err; i++) {
                snprintf(text, sizeof text, "%s:%ld: MSH-10 %s: %s %s", path, line, id,
                         hl7_ack_code_name(ack), r->err[i].text);
                report(arg, text);
            }
        }
    }
    if (b.bts_mismatches > 0) {
        snprintf(text, sizeof text, "%s: %ld batch trailer%s (BTS-1) disagree with the "
                 "messages counted", path, b.bts_mismatches, b.bts_mismatches == 1 ? "" : "s");
        report(arg, text);
    }
    free(buf);
    hl7_msg_destroy(m);
    hl7_mapped_destroy(r);
    return 0;
}
