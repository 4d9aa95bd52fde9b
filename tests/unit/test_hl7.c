/* hospital/hl7*, mllp: the ER7 parser, the MLLP framer, HL7 times, the
 * facility mapping, ORU^R01 mapping of vendor-shaped messages
 * (tests/hl7/messages), ACKs, redaction and batch files. No services. */
#include <math.h>
#include <stdio.h>
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
#include "mllp.h"
#include "testlib.h"

static char *slurp(const char *name, bool cr)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/hl7/%s", VIGIL_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        CHECK(!"test file missing");
        return strdup("");
    }
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (cr)
        for (char *p = buf; *p; p++)
            if (*p == '\n')
                *p = '\r';
    return buf;
}

static char v[1024];

static const char *get(struct hl7_msg *m, const char *seg, int nth, int field, int rep, int comp,
                       int sub)
{
    long s = -1;
    for (int i = 0; i < nth; i++)
        s = hl7_segment_find(m, seg, (size_t)(s + 1));
    v[0] = '\0';
    if (s < 0)
        return "(no segment)";
    if (hl7_get(m, (size_t)s, field, rep, comp, sub, v, sizeof v) < 0)
        return "(error)";
    return v;
}

static void test_parser(void)
{
    char err[256];
    struct hl7_msg *m = hl7_msg_new();
    char *text = slurp("messages/epic_cbc.hl7", true);
    CHECK_EQ_INT(hl7_parse(m, text, strlen(text), err, sizeof err), 0);
    CHECK_EQ_INT(hl7_segment_count(m), 11);
    CHECK_EQ_STR(hl7_segment_name(m, 1), "PID");
    CHECK_EQ_STR(get(m, "MSH", 1, 1, 1, 1, 1), "|");
    CHECK_EQ_STR(get(m, "MSH", 1, 2, 1, 1, 1), "^~\\&");
    CHECK_EQ_STR(get(m, "MSH", 1, 4, 1, 1, 1), "GENHOSP");
    CHECK_EQ_STR(get(m, "MSH", 1, 4, 1, 3, 1), "ISO");
    CHECK_EQ_STR(get(m, "MSH", 1, 9, 1, 3, 1), "ORU_R01");
    CHECK_EQ_STR(get(m, "MSH", 1, 10, 1, 1, 1), "MSG00001");
    CHECK_EQ_INT(hl7_repetitions(m, 1, 3), 2);
    CHECK_EQ_STR(get(m, "PID", 1, 3, 2, 1, 1), "999456789");
    CHECK_EQ_STR(get(m, "PID", 1, 3, 2, 5, 1), "SS");
    CHECK_EQ_STR(get(m, "PID", 1, 5, 1, 2, 1), "JANE");
    CHECK_EQ_STR(get(m, "OBX", 4, 11, 1, 1, 1), "F");
    CHECK_EQ_STR(get(m, "OBX", 4, 14, 1, 1, 1), ""); /* trailing fields left out */
    CHECK_EQ_STR(get(m, "OBX", 4, 99, 1, 1, 1), "");
    CHECK_EQ_INT(hl7_field_count(m, (size_t)hl7_segment_find(m, "MSH", 0)), 16);
    free(text);

    /* Other delimiters, escapes. */
    text = slurp("messages/custom_delims.hl7", true);
    CHECK_EQ_INT(hl7_parse(m, text, strlen(text), err, sizeof err), 0);
    CHECK_EQ_INT(hl7_delims(m)->field, '#');
    CHECK_EQ_INT(hl7_delims(m)->comp, '$');
    CHECK_EQ_INT(hl7_delims(m)->sub, '*');
    CHECK_EQ_STR(get(m, "OBX", 1, 3, 1, 2, 1), "Potassium $ serum");
    CHECK_EQ_STR(get(m, "OBX", 2, 5, 1, 1, 1), "Ward #3 A bed\nnext");
    CHECK_EQ_STR(get(m, "PID", 1, 3, 1, 4, 1), "MTHOSP");
    free(text);

    /* Terminators: \n, \r\n, blank lines; "" is null. */
    const char *lf = "MSH|^~\\&|A|B\nPID|1||X\r\n\r\nOBX|1|ST|c||\"\"\n";
    CHECK_EQ_INT(hl7_parse(m, lf, strlen(lf), err, sizeof err), 0);
    CHECK_EQ_INT(hl7_segment_count(m), 3);
    CHECK_EQ_STR(get(m, "OBX", 1, 5, 1, 1, 1), "");
    CHECK_EQ_STR(get(m, "PID", 1, 3, 1, 1, 1), "X");

    /* Escapes: hex, unknown and formatting sequences, a lone escape. */
    const char *esc = "MSH|^~\\&|A\rNTE|1|x\\X4142\\y\\H\\z\\N\\\\Zfoo\\|a\\b|\\X00\\\r";
    CHECK_EQ_INT(hl7_parse(m, esc, strlen(esc), err, sizeof err), 0);
    CHECK_EQ_STR(get(m, "NTE", 1, 2, 1, 1, 1), "xAByz");
    CHECK_EQ_STR(get(m, "NTE", 1, 3, 1, 1, 1), "a\\b");
    CHECK_EQ_STR(get(m, "NTE", 1, 4, 1, 1, 1), "(error)"); /* decodes to NUL */
    char small[4];
    CHECK_EQ_INT(hl7_get(m, 1, 2, 1, 1, 1, small, sizeof small), -1);
    /* A second MSH of three bytes at the very end (found by fuzz_hl7): its
     * MSH-1 is absent, not the byte after the buffer. Copied to the heap at
     * its exact size so ASan sees a read past it. */
    const char bare[] = "MSH|^~\\&|A\rMSH";
    char *exact = malloc(sizeof bare - 1);
    memcpy(exact, bare, sizeof bare - 1);
    CHECK_EQ_INT(hl7_parse(m, exact, sizeof bare - 1, err, sizeof err), 0);
    CHECK_EQ_INT(hl7_segment_count(m), 2);
    CHECK_EQ_INT(hl7_get(m, 1, 1, 1, 1, 1, v, sizeof v), 0);
    CHECK_EQ_INT(hl7_repetitions(m, 1, 1), 0);
    free(exact);
    /* A NUL in MSH-2 (found by fuzz_hl7): refused like a NUL anywhere else,
     * not returned with a length strlen() disagrees with. */
    const char nul[] = "MSH|^~\\&\0X|A\rPID|1\r";
    CHECK_EQ_INT(hl7_parse(m, nul, sizeof nul - 1, err, sizeof err), 0);
    CHECK_EQ_INT(hl7_get(m, 0, 2, 1, 1, 1, v, sizeof v), -1);
    CHECK_EQ_STR(v, "");

    /* Refusals. */
    const char *bad[] = {
        "PID|1\rMSH|^~\\&\r",          /* not MSH first */
        "MSH|^^\\&|A\r",               /* a delimiter twice */
        "MSH|^~\\",                    /* too short */
        "MSH|^~\\&|A\rpid|1\r",        /* lower-case segment id */
        "MSH|^~\\&|A\rPIDX|1\r",       /* four-letter id */
        "MSHa^~\\&|A\r",               /* alphanumeric delimiter */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CHECK_EQ_INT(hl7_parse(m, bad[i], strlen(bad[i]), err, sizeof err), -1);
        CHECK(err[0] != '\0');
        CHECK_EQ_INT(hl7_segment_count(m), 0);
    }

    char out[128];
    CHECK_EQ_INT(hl7_escape("a|b^c~d\\e&f\rg", &hl7_default_delims, out, sizeof out), 27);
    CHECK_EQ_STR(out, "a\\F\\b\\S\\c\\R\\d\\E\\e\\T\\f\\X0D\\g");
    hl7_msg_destroy(m);
}

static void test_framer(void)
{
    struct mllp_framer *f = mllp_framer_new(32);
    size_t used, len;
    const uint8_t two[] = "\x0b" "AB" "\x1c\x0d" "\r\n" "\x0b" "CD\x1c\x0d";
    enum mllp_event ev = mllp_framer_feed(f, two, sizeof two - 1, &used);
    CHECK_EQ_INT(ev, MLLP_FRAME);
    const char *fr = mllp_framer_frame(f, &len);
    CHECK(len == 2 && memcmp(fr, "AB", 2) == 0);
    size_t off = used;
    ev = mllp_framer_feed(f, two + off, sizeof two - 1 - off, &used);
    CHECK_EQ_INT(ev, MLLP_FRAME);
    fr = mllp_framer_frame(f, &len);
    CHECK(len == 2 && memcmp(fr, "CD", 2) == 0);
    CHECK_EQ_INT(mllp_framer_junk(f), 2); /* the \r\n between frames */

    /* Byte by byte. */
    const char *one = "\x0bMSH|x\x1c\x0d";
    int frames = 0;
    for (size_t i = 0; i < strlen(one); i++) {
        ev = mllp_framer_feed(f, (const uint8_t *)one + i, 1, &used);
        CHECK_EQ_INT(used, 1);
        if (ev == MLLP_FRAME) {
            frames++;
            fr = mllp_framer_frame(f, &len);
            CHECK(len == 5 && memcmp(fr, "MSH|x", 5) == 0);
        }
    }
    CHECK_EQ_INT(frames, 1);

    /* A second VT restarts; an FS without CR still ends the frame. */
    const char *restart = "\x0bhalf\x0bwhole\x1cX";
    ev = mllp_framer_feed(f, (const uint8_t *)restart, strlen(restart), &used);
    CHECK_EQ_INT(ev, MLLP_FRAME);
    fr = mllp_framer_frame(f, &len);
    CHECK(len == 5 && memcmp(fr, "whole", 5) == 0);
    CHECK_EQ_INT(mllp_framer_abandoned(f), 1);
    ev = mllp_framer_feed(f, (const uint8_t *)restart + used, strlen(restart) - used, &used);
    CHECK_EQ_INT(ev, MLLP_NEED_MORE);
    CHECK_EQ_INT(mllp_framer_junk(f), 3); /* the X */

    /* Oversize: the first 32 bytes kept, the rest up to FS dropped. */
    char big[100];
    big[0] = 0x0b;
    memset(big + 1, 'Z', 90);
    big[91] = 0x1c;
    big[92] = 0x0d;
    ev = mllp_framer_feed(f, (const uint8_t *)big, 93, &used);
    CHECK_EQ_INT(ev, MLLP_OVERSIZE);
    CHECK_EQ_INT(used, 92);
    mllp_framer_frame(f, &len);
    CHECK_EQ_INT(len, 32);
    CHECK(!mllp_framer_in_frame(f));

    char w[16];
    CHECK_EQ_INT(mllp_wrap("AB", 2, w, sizeof w), 5);
    CHECK(memcmp(w, "\x0b" "AB\x1c\x0d", 5) == 0);
    CHECK_EQ_INT(mllp_wrap("AB", 2, w, 4), 0);
    mllp_framer_destroy(f);
}

static void test_time(void)
{
    char err[256];
    int64_t ms;
    CHECK_EQ_INT(hl7_time_parse("20250106081500-0600", NULL, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736172900000LL); /* 14:15 UTC */
    CHECK_EQ_INT(hl7_time_parse("202501061415", NULL, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736172900000LL);
    CHECK_EQ_INT(hl7_time_parse("20250106141500.25+0000", NULL, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736172900250LL);
    CHECK_EQ_INT(hl7_time_parse("20250106", NULL, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736121600000LL);
    struct hl7_tz *berlin = hl7_tz_new("Europe/Berlin", err, sizeof err);
    CHECK(berlin != NULL);
    CHECK_EQ_INT(hl7_time_parse("202501070930", berlin, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736238600000LL); /* 08:30Z in winter */
    CHECK_EQ_INT(hl7_time_parse("202507070930", berlin, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1751873400000LL); /* 07:30Z in summer */
    /* An offset wins over the zone. */
    CHECK_EQ_INT(hl7_time_parse("202507070930+0000", berlin, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1751880600000LL);
    /* 02:30 on 2025-10-26 happened twice: the first (CEST, 00:30Z). */
    CHECK_EQ_INT(hl7_time_parse("202510260230", berlin, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1761438600000LL);
    /* 02:30 on 2025-03-30 never happened: read as the jump, 03:00 CEST = 01:00Z. */
    CHECK_EQ_INT(hl7_time_parse("202503300230", berlin, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1743296400000LL);
    const char *bad[] = {"2025010", "20250230", "202501061460", "20250106-06", "2025-01-06",
                         "20250106141500.", "20250106x", "", "202501061415.5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(hl7_time_parse(bad[i], NULL, &ms, err, sizeof err), -1);
    CHECK_EQ_INT(hl7_time_parse("20240229", NULL, &ms, err, sizeof err), 0);
    CHECK(hl7_tz_new("Mars/Olympus_Mons", err, sizeof err) == NULL);
    CHECK(strstr(err, "Mars/Olympus_Mons") != NULL);
    hl7_tz_destroy(berlin);
}

static void test_facilities(void)
{
    char err[512], path[1024];
    snprintf(path, sizeof path, "%s/tests/hl7/facilities.yaml", VIGIL_SOURCE_DIR);
    struct hl7_facilities *f = hl7_facilities_load(path, err, sizeof err);
    CHECK(f != NULL);
    if (f == NULL) {
        printf("%s\n", err);
        return;
    }
    CHECK_EQ_INT(hl7_facilities_count(f), 4);
    const struct hl7_facility *c = hl7_facilities_find(f, "CERNHOSP");
    const char *unit;
    CHECK_EQ_STR(hl7_facility_loinc(c, "K", "99CRN", &unit), "2823-3");
    CHECK(hl7_facility_loinc(c, "K", "OTHER", &unit) == NULL);
    CHECK_EQ_STR(hl7_facility_loinc(c, "NA", "ANY", &unit), "2951-2");
    CHECK(hl7_facility_loinc(c, "GLU", "99CRN", &unit) == NULL);
    CHECK_EQ_STR(hl7_facilities_unit(f, c, "K/uL"), "10*3/uL");
    CHECK_EQ_STR(hl7_facilities_unit(f, NULL, "mmol/L"), "mmol/L");
    CHECK_EQ_STR(hl7_tz_name(hl7_facilities_zone(f, c)), "Europe/Berlin");
    CHECK(hl7_facilities_zone(f, NULL) == NULL);
    hl7_facilities_destroy(f);

    struct {
        const char *yaml, *want;
    } bad[] = {
        {"facilities: {A: {codes: [{code: K, loinc: 2823-4}]}}", "not a LOINC"},
        {"facilities: {A: {time_zone: Nowhere/City}}", "unknown time zone"},
        {"facilities: {A: {timezone: UTC}}", "unknown or repeated key 'timezone'"},
        {"facilities: {A: {codes: [{code: K, loinc: 2823-3}, {code: K, loinc: 2951-2}]}}",
         "listed twice"},
        {"units: {\"K/uL\": \"this unit is much longer than thirty-two bytes\"}", "1 to 32"},
        {"default_time_zone: UTC\nfoo: 1", "unknown or repeated key 'foo'"},
        {"facilities: [1, 2]", "must be a mapping"},
        {"facilities: {A: {codes: [{code: K}]}}", "needs both code and loinc"},
        {"facilities: {A: {codes: [{code: K, loinc: 2823-3, unit: mmol/L, extra: 1}]}}",
         "unknown or repeated key 'extra'"},
        {"a: [", "test.yaml:"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        f = hl7_facilities_parse(bad[i].yaml, strlen(bad[i].yaml), "test.yaml", err, sizeof err);
        CHECK(f == NULL);
        if (strstr(err, bad[i].want) == NULL)
            printf("FAIL: facilities case %zu: want '%s' in '%s'\n", i, bad[i].want, err);
        CHECK(strstr(err, bad[i].want) != NULL);
        hl7_facilities_destroy(f);
    }
    f = hl7_facilities_parse("", 0, "empty", err, sizeof err);
    CHECK(f != NULL && hl7_facilities_count(f) == 0);
    hl7_facilities_destroy(f);

    CHECK(hl7_loinc_valid("2823-3"));
    CHECK(hl7_loinc_valid("718-7"));
    CHECK(hl7_loinc_valid("58410-2"));
    CHECK(hl7_loinc_valid("8251-1"));
    CHECK(!hl7_loinc_valid("2823-4"));
    CHECK(!hl7_loinc_valid("2823"));
    CHECK(!hl7_loinc_valid("-3"));
    CHECK(!hl7_loinc_valid("28a3-3"));
    CHECK(!hl7_loinc_valid("2823-33"));
}

struct fixture {
    struct hl7_facilities *fac;
    struct hl7_enrol *en;
    struct hl7_msg *m;
    struct hl7_mapped *r;
};

static enum hl7_ack_code map_file(struct fixture *x, const char *file)
{
    char err[256];
    char *text = slurp(file, true);
    static char keep[1 << 16];
    snprintf(keep, sizeof keep, "%s", text); /* M points into it */
    free(text);
    if (hl7_parse(x->m, keep, strlen(keep), err, sizeof err) != 0) {
        printf("FAIL: %s does not parse: %s\n", file, err);
        CHECK(false);
        return HL7_AR;
    }
    struct hl7_map_options opt = {"P"};
    return hl7_map_message(x->m, x->fac, x->en, &opt, x->r);
}

static const struct observation *obs_of(const struct hl7_mapped *r, const char *loinc)
{
    for (size_t i = 0; i < r->n_obs; i++)
        if (strcmp(r->obs[i].loinc, loinc) == 0)
            return &r->obs[i];
    return NULL;
}

static void test_map(void)
{
    char err[512], path[1024];
    struct fixture x;
    snprintf(path, sizeof path, "%s/tests/hl7/facilities.yaml", VIGIL_SOURCE_DIR);
    x.fac = hl7_facilities_load(path, err, sizeof err);
    x.en = hl7_enrol_new();
    x.m = hl7_msg_new();
    x.r = hl7_mapped_new();
    CHECK(x.fac != NULL);
    if (x.fac == NULL)
        return;
    CHECK_EQ_INT(hl7_enrol_add(x.en, "GENHOSP", "E1234567", "GENHOSP", "STUDY-001", "SITE-101",
                               "S-101-0001", err, sizeof err), 0);
    CHECK_EQ_INT(hl7_enrol_add(x.en, "CERNHOSP", "0043223", "", "STUDY-002", "SITE-201",
                               "S-201-0007", err, sizeof err), 0);
    CHECK_EQ_INT(hl7_enrol_add(x.en, "SQLAB", "SQ556677", "", "STUDY-001", "SITE-102",
                               "S-102-0003", err, sizeof err), 0);
    CHECK_EQ_INT(hl7_enrol_add(x.en, "MTHOSP", "M000777", "", "STUDY-001", "SITE-103",
                               "S-103-0001", err, sizeof err), 0);
    CHECK(hl7_enrol_find(x.en, "GENHOSP", "E1234567", "OTHER") == NULL); /* authority named */

    /* Epic CBC: four LOINC results, facility unit spellings, OBR-7 for the last. */
    CHECK_EQ_INT(map_file(&x, "messages/epic_cbc.hl7"), HL7_AA);
    CHECK_EQ_INT(x.r->n_obs, 4);
    CHECK_EQ_STR(x.r->facility, "GENHOSP");
    const struct observation *o = obs_of(x.r, "777-3");
    CHECK(o && o->has_value && o->value == 152 && strcmp(o->unit, "10*3/uL") == 0);
    CHECK(o && o->has_ref_low && o->ref_low == 150 && o->has_ref_high && o->ref_high == 400);
    CHECK(o && strcmp(o->study_id, "STUDY-001") == 0 && strcmp(o->subject_id, "S-101-0001") == 0);
    CHECK(o && o->effective_ms == 1736172900000LL && o->issued_ms == 1736177340000LL);
    o = obs_of(x.r, "751-8");
    CHECK(o && strcmp(o->unit, "10*9/L") == 0 && o->effective_ms == 1736172900000LL);
    o = obs_of(x.r, "6690-2");
    CHECK(o && o->status == OBS_FINAL && strncmp(o->observation_id, "h7-", 3) == 0 &&
          strlen(o->observation_id) == 43);
    char first_id[OBS_ID_MAX + 1];
    snprintf(first_id, sizeof first_id, "%s", o ? o->observation_id : "");
    for (size_t i = 0; i < x.r->n_obs; i++)
        for (size_t j = i + 1; j < x.r->n_obs; j++)
            CHECK(strcmp(x.r->obs[i].observation_id, x.r->obs[j].observation_id) != 0);
    /* A resend maps to the same ids. */
    CHECK_EQ_INT(map_file(&x, "messages/epic_cbc.hl7"), HL7_AA);
    CHECK_EQ_STR(obs_of(x.r, "6690-2")->observation_id, first_id);

    /* Cerner BMP: local codes, times in Europe/Berlin, unmapped GLU skipped. */
    CHECK_EQ_INT(map_file(&x, "messages/cerner_bmp.hl7"), HL7_AA);
    CHECK_EQ_INT(x.r->n_obs, 3);
    CHECK_EQ_INT(x.r->skipped_unmapped, 1);
    o = obs_of(x.r, "2823-3");
    CHECK(o && o->value == 6.8 && o->effective_ms == 1736238600000LL);
    CHECK(o && o->issued_ms == 1736241000000LL); /* OBR-22 10:10 Berlin */
    o = obs_of(x.r, "2951-2");
    CHECK(o && strcmp(o->unit, "mEq/L") == 0 && strcmp(o->subject_id, "S-201-0007") == 0);

    /* Sunquest LFT: alternate LOINC, SN censored, ST censored, TX, C and P. */
    CHECK_EQ_INT(map_file(&x, "messages/sunquest_lft.hl7"), HL7_AA);
    CHECK_EQ_INT(x.r->n_obs, 4);
    CHECK_EQ_INT(x.r->skipped_not_final, 1);
    o = obs_of(x.r, "1742-6");
    CHECK(o && o->status == OBS_CORRECTED && o->value == 187);
    o = obs_of(x.r, "1920-8");
    CHECK(o && o->has_value && o->value > 300 && o->value == nextafter(300, INFINITY));
    o = obs_of(x.r, "1975-2");
    CHECK(o && o->has_value && o->value < 0.5 && o->value == nextafter(0.5, -INFINITY));
    o = obs_of(x.r, "8251-1");
    CHECK(o && !o->has_value && o->status == OBS_FINAL);
    CHECK(obs_of(x.r, "6768-6") == NULL);

    /* Custom delimiters. */
    CHECK_EQ_INT(map_file(&x, "messages/custom_delims.hl7"), HL7_AA);
    CHECK_EQ_INT(x.r->n_obs, 2);
    o = obs_of(x.r, "2823-3");
    CHECK(o && o->value == 4.1 && o->effective_ms == 1736413200000LL);

    /* Sub-IDs and repeats without: four distinct ids. */
    CHECK_EQ_INT(map_file(&x, "messages/repeats.hl7"), HL7_AA);
    CHECK_EQ_INT(x.r->n_obs, 4);
    for (size_t i = 0; i < x.r->n_obs; i++)
        for (size_t j = i + 1; j < x.r->n_obs; j++)
            CHECK(strcmp(x.r->obs[i].observation_id, x.r->obs[j].observation_id) != 0);

    /* Not enrolled: AA, nothing forwarded. */
    CHECK_EQ_INT(map_file(&x, "messages/not_enrolled.hl7"), HL7_AA);
    CHECK(!x.r->enrolled);
    CHECK_EQ_INT(x.r->n_obs, 0);

    /* ADT: AR 200. */
    CHECK_EQ_INT(map_file(&x, "messages/adt_a01.hl7"), HL7_AR);
    CHECK_EQ_INT(x.r->n_err, 1);
    CHECK_EQ_INT(x.r->err[0].code, 200);
    CHECK_EQ_STR(x.r->err[0].cls, "unsupported_message_type");

    /* A bad NM next to a good one: AE 102 at OBX-5, the good one forwarded. */
    CHECK_EQ_INT(map_file(&x, "messages/bad_value.hl7"), HL7_AE);
    CHECK_EQ_INT(x.r->n_obs, 1);
    CHECK(obs_of(x.r, "2823-3") != NULL);
    CHECK_EQ_INT(x.r->n_err, 1);
    CHECK(x.r->err[0].code == 102 && x.r->err[0].field == 5 && x.r->err[0].seq == 2);
    CHECK(strstr(x.r->err[0].text, "HEMOLYZED") == NULL); /* never a value */

    /* Header refusals and odd messages, built from the Epic message. */
    struct {
        const char *from, *to;
        enum hl7_ack_code ack;
        int code;
    } cases[] = {
        {"|P|2.5.1|", "|T|2.5.1|", HL7_AR, 202},
        {"|P|2.5.1|", "|P|2.2|", HL7_AR, 203},
        {"|MSG00001|", "||", HL7_AR, 101},
        {"ORU^R01^ORU_R01", "ORU^R03", HL7_AR, 201},
        {"F|||20250106081500-0600||||||20250106092500-0600", "Q|||20250106081500-0600", HL7_AE,
         103},
        {"|13.1|g/dL|", "|13.1|g/dL|", HL7_AA, 0},
        {"|20250106081500-0600||||||20250106092500-0600", "|2025010608150", HL7_AE, 102},
    };
    char *base = slurp("messages/epic_cbc.hl7", true);
    static char buf[1 << 16];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *at = strstr(base, cases[i].from);
        CHECK(at != NULL);
        if (at == NULL)
            continue;
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - base), base, cases[i].to,
                 at + strlen(cases[i].from));
        CHECK_EQ_INT(hl7_parse(x.m, buf, strlen(buf), err, sizeof err), 0);
        struct hl7_map_options opt = {"P"};
        enum hl7_ack_code got = hl7_map_message(x.m, x.fac, x.en, &opt, x.r);
        if (got != cases[i].ack || (cases[i].code && x.r->err[0].code != cases[i].code))
            printf("FAIL: case %zu: ack %d code %d (%s)\n", i, got, x.r->err[0].code,
                   x.r->err[0].text);
        CHECK_EQ_INT(got, cases[i].ack);
        if (cases[i].code)
            CHECK_EQ_INT(x.r->err[0].code, cases[i].code);
    }

    /* No time zone for a facility whose times have no offset. */
    const char *nozone =
        "MSH|^~\\&|X|NOZONE|V|V|202501061200||ORU^R01|Z1|P|2.5\r"
        "PID|1||P1\rOBR|1||F1|2823-3^K^LN|||202501061100\r"
        "OBX|1|NM|2823-3^K^LN||4.0|mmol/L|||||F\r";
    CHECK_EQ_INT(hl7_enrol_add(x.en, "NOZONE", "P1", "", "S", "T", "U", err, sizeof err), 0);
    CHECK_EQ_INT(hl7_parse(x.m, nozone, strlen(nozone), err, sizeof err), 0);
    struct hl7_map_options opt = {"P"};
    CHECK_EQ_INT(hl7_map_message(x.m, x.fac, x.en, &opt, x.r), HL7_AE);
    CHECK_EQ_STR(x.r->err[0].cls, "no_time_zone");

    /* Every OBX unmapped: AE "no usable OBX". */
    const char *unmapped =
        "MSH|^~\\&|X|CERNHOSP|V|V|202501061200||ORU^R01|Z2|P|2.3\r"
        "PID|1||0043223\rOBR|1||F2|U^Urinalysis^99CRN|||202501061100\r"
        "OBX|1|ST|UCOL^Colour^99CRN||Yellow|||||F\r";
    CHECK_EQ_INT(hl7_parse(x.m, unmapped, strlen(unmapped), err, sizeof err), 0);
    CHECK_EQ_INT(hl7_map_message(x.m, x.fac, x.en, &opt, x.r), HL7_AE);
    CHECK_EQ_STR(x.r->err[0].cls, "no_usable_obx");

    /* ACKs. */
    char ack[HL7_ACK_MAX];
    CHECK_EQ_INT(map_file(&x, "messages/bad_value.hl7"), HL7_AE);
    size_t n = hl7_ack_write(x.m, x.r->ack, x.r->err, x.r->n_err, "ACK1", 1736172900000LL, ack,
                             sizeof ack);
    CHECK(n == strlen(ack));
    CHECK(strncmp(ack, "MSH|^~\\&|VIGIL|VIGIL|Beaker|GENHOSP|20250106141500+0000||ACK^R01^ACK|ACK1|P|2.5.1\r", 80) == 0);
    CHECK(strstr(ack, "\rMSA|AE|MSG00950|OBX-5 is not a number (OBX-2 NM)\r") != NULL);
    CHECK(strstr(ack, "\rERR|OBX^2^5^102&Data type error&HL70357|OBX^2^5^1^|102^Data type "
                      "error^HL70357|E||||OBX-5 is not a number (OBX-2 NM)\r") != NULL);
    CHECK(strstr(ack, "HEMOLYZED") == NULL);
    CHECK_EQ_INT(map_file(&x, "messages/custom_delims.hl7"), HL7_AA);
    n = hl7_ack_write(x.m, HL7_AA, NULL, 0, "ACK2", 0, ack, sizeof ack);
    CHECK(strncmp(ack, "MSH#$%\\*#VIGIL#VIGIL#MT#MTHOSP#", 30) == 0);
    CHECK(strstr(ack, "\rMSA#AA#MT-0009\r") != NULL);
    n = hl7_ack_write(NULL, HL7_AR, NULL, 0, "ACK3", 0, ack, sizeof ack);
    CHECK(strstr(ack, "|2.5.1\rMSA|AR|\r") != NULL);
    char tiny[40];
    n = hl7_ack_write(x.m, HL7_AA, NULL, 0, "ACK2", 0, tiny, sizeof tiny);
    CHECK(n == sizeof tiny - 1 && strlen(tiny) == n);

    /* Redaction: nothing of the patient, Z-segments, NK1 or NTE remains. */
    char red[1 << 16];
    CHECK_EQ_INT(map_file(&x, "messages/epic_cbc.hl7"), HL7_AA);
    n = hl7_redact(x.m, red, sizeof red);
    const char *phi[] = {"DOE", "JANE", "19560412", "MAIN ST", "E1234567", "999456789",
                         "555-0134", "ACCT0001", "WELBY", "NK1", "NTE", "ORD448811", "LAB9911"};
    for (size_t i = 0; i < sizeof phi / sizeof phi[0]; i++) {
        if (strstr(red, phi[i]) != NULL)
            printf("FAIL: redacted copy holds %s\n", phi[i]);
        CHECK(strstr(red, phi[i]) == NULL);
    }
    CHECK(strstr(red, "\rPID|1\r") != NULL);
    CHECK(strstr(red, "OBX|3|NM|777-3^Platelets [#/volume] in Blood by Automated count^LN||152|K/uL|150-400||||F|||20250106081500-0600\r") != NULL);
    CHECK(strncmp(red, "MSH|^~\\&|Beaker|GENHOSP^", 24) == 0);
    CHECK_EQ_INT(map_file(&x, "messages/cerner_bmp.hl7"), HL7_AA);
    hl7_redact(x.m, red, sizeof red);
    CHECK(strstr(red, "MUSTERMANN") == NULL && strstr(red, "19640812") == NULL &&
          strstr(red, "ZDS") == NULL);
    CHECK_EQ_INT(map_file(&x, "messages/sunquest_lft.hl7"), HL7_AA);
    hl7_redact(x.m, red, sizeof red);
    CHECK(strstr(red, "Interpret") == NULL); /* TX values are dropped */
    CHECK(strstr(red, "||>^300|U/L|") != NULL);
    CHECK_EQ_INT(hl7_redact(x.m, red, 20), 0); /* MSH alone does not fit: nothing */

    free(base);
    hl7_mapped_destroy(x.r);
    hl7_msg_destroy(x.m);
    hl7_enrol_destroy(x.en);
    hl7_facilities_destroy(x.fac);
}

static void test_batch(void)
{
    char *text = slurp("messages/batch.hl7", false);
    struct hl7_batch b;
    hl7_batch_init(&b, text, strlen(text));
    const char *msg;
    size_t len;
    long line;
    CHECK_EQ_INT(hl7_batch_next(&b, &msg, &len, &line), 1);
    CHECK_EQ_INT(line, 3);
    CHECK(strncmp(msg, "MSH|", 4) == 0 && strstr(msg, "B0001") != NULL);
    CHECK(len < strlen(msg) && memmem(msg, len, "B0002", 5) == NULL);
    CHECK_EQ_INT(hl7_batch_next(&b, &msg, &len, &line), 1);
    CHECK_EQ_INT(line, 7);
    CHECK(memmem(msg, len, "NA^Sodium", 9) != NULL && memmem(msg, len, "BTS", 3) == NULL);
    CHECK_EQ_INT(hl7_batch_next(&b, &msg, &len, &line), 0);
    CHECK_EQ_INT(b.bts_mismatches, 0);
    char *wrong = strstr(text, "BTS|2");
    wrong[4] = '3';
    hl7_batch_init(&b, text, strlen(text));
    while (hl7_batch_next(&b, &msg, &len, &line) == 1)
        ;
    CHECK_EQ_INT(b.bts_mismatches, 1);
    free(text);
}

int main(void)
{
    test_parser();
    test_framer();
    test_time();
    test_facilities();
    test_map();
    test_batch();
    return testlib_done();
}
