/*
 * libFuzzer target for the HL7 v2 parser and everything that reads a
 * parsed message: every input is parsed as one ER7 message (hl7_parse) and,
 * when it parses, every field of every segment is read through hl7_get,
 * mapped as ORU^R01 (hl7_map_message, with a facility mapping and an
 * enrolment that match the seed corpus), answered (hl7_ack_write) and
 * redacted (hl7_redact); the input is also split as a batch file
 * (hl7_batch) and read as an HL7 date/time. Invariants checked:
 *   - hl7_get never returns more than it was given room for, and its
 *     result is NUL-terminated at the length it reports;
 *   - every mapped observation has an id "h7-" + 40 hex digits and finite
 *     numbers; the ACK always fits HL7_ACK_MAX and starts with MSH;
 *   - the redacted copy parses again and keeps no PID field beyond PID-1.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hl7.h"
#include "hl7_ack.h"
#include "hl7_batch.h"
#include "hl7_enrol.h"
#include "hl7_facility.h"
#include "hl7_map.h"
#include "hl7_redact.h"
#include "hl7_time.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char facilities[] = "default_time_zone: Europe/Berlin\n"
                                 "units: {\"K/uL\": \"10*3/uL\"}\n"
                                 "facilities:\n"
                                 "  CERNHOSP:\n"
                                 "    time_zone: Europe/Berlin\n"
                                 "    codes: [{code: K, system: 99CRN, loinc: 2823-3}]\n";

static struct hl7_facilities *fac;
static struct hl7_enrol *en;
static struct hl7_msg *m, *m2;
static struct hl7_mapped *r;

static void setup(void)
{
    char err[256];
    fac = hl7_facilities_parse(facilities, sizeof facilities - 1, "fuzz", err, sizeof err);
    en = hl7_enrol_new();
    m = hl7_msg_new();
    m2 = hl7_msg_new();
    r = hl7_mapped_new();
    if (fac == NULL || en == NULL || m == NULL || m2 == NULL || r == NULL)
        abort();
    static const char *ids[][2] = {{"GENHOSP", "E1234567"}, {"CERNHOSP", "0043223"},
                                   {"SQLAB", "SQ556677"},   {"MTHOSP", "M000777"},
                                   {"GENHOSP", "P1"},       {"A", "1"}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (hl7_enrol_add(en, ids[i][0], ids[i][1], "", "S", "T", "U", err, sizeof err) != 0)
            abort();
}

static void read_all_fields(void)
{
    char out[64];
    for (size_t s = 0; s < hl7_segment_count(m); s++) {
        int nf = hl7_field_count(m, s);
        for (int f = 0; f <= nf + 1 && f < 64; f++) {
            int reps = hl7_repetitions(m, s, f);
            for (int rep = 1; rep <= reps + 1 && rep < 4; rep++)
                for (int c = 1; c < 4; c++) {
                    long n = hl7_get(m, s, f, rep, c, 1, out, sizeof out);
                    if (n >= (long)sizeof out || (n >= 0 && strlen(out) != (size_t)n) ||
                        (n < 0 && out[0] != '\0'))
                        abort();
                }
        }
    }
}

static void check_mapped(void)
{
    for (size_t i = 0; i < r->n_obs; i++) {
        const struct observation *o = &r->obs[i];
        if (strncmp(o->observation_id, "h7-", 3) != 0 || strlen(o->observation_id) != 43)
            abort();
        if ((o->has_value && !isfinite(o->value)) || (o->has_ref_low && !isfinite(o->ref_low)) ||
            (o->has_ref_high && !isfinite(o->ref_high)))
            abort();
    }
    if (r->n_err > HL7_MAX_ERRORS)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    char err[512];
    const char *text = (const char *)data;
    if (hl7_parse(m, text, size, err, sizeof err) == 0) {
        read_all_fields();
        struct hl7_map_options opt = {"PTD"};
        enum hl7_ack_code code = hl7_map_message(m, fac, en, &opt, r);
        check_mapped();
        static char ack[HL7_ACK_MAX];
        size_t n = hl7_ack_write(m, code, r->err, r->n_err, "FUZZ", 0, ack, sizeof ack);
        if (n >= sizeof ack || strncmp(ack, "MSH", 3) != 0)
            abort();
        static char red[1 << 20];
        n = hl7_redact(m, red, sizeof red);
        if (n > 0) {
            if (hl7_parse(m2, red, n, err, sizeof err) != 0)
                abort();
            for (size_t s = 0; s < hl7_segment_count(m2); s++)
                if (strcmp(hl7_segment_name(m2, s), "PID") == 0 && hl7_field_count(m2, s) > 1)
                    abort();
        }
    }
    struct hl7_batch b;
    hl7_batch_init(&b, text, size);
    const char *msg;
    size_t mlen;
    long line;
    int guard = 0;
    while (hl7_batch_next(&b, &msg, &mlen, &line) == 1) {
        if (msg < text || msg + mlen > text + size || ++guard > 100000)
            abort();
    }
    if (size < 64) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t ms;
        hl7_time_parse(s, NULL, &ms, err, sizeof err);
    }
    return 0;
}
