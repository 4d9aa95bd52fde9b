/*
 * Unit tests of the Avro codec (common/avro/codec.h) and its parts
 * (avro_canon.h: canonical form and fingerprint). No services.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>

#include "avro_canon.h"
#include "codec.h"
#include "embedded.h"
#include "testlib.h"

/* ---- a byte builder for hand-made messages ---- */

struct bb {
    uint8_t b[1 << 20];
    size_t n;
};

static void bb_raw(struct bb *b, const void *p, size_t n)
{
    memcpy(b->b + b->n, p, n);
    b->n += n;
}

static void bb_long(struct bb *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        b->b[b->n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    b->b[b->n++] = (uint8_t)z;
}

static void bb_str(struct bb *b, const char *s)
{
    bb_long(b, (int64_t)strlen(s));
    bb_raw(b, s, strlen(s));
}

static void bb_double(struct bb *b, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, 8);
    for (int i = 0; i < 8; i++)
        b->b[b->n++] = (uint8_t)(bits >> (8 * i));
}

static void bb_float(struct bb *b, float f)
{
    uint32_t bits;
    memcpy(&bits, &f, 4);
    for (int i = 0; i < 4; i++)
        b->b[b->n++] = (uint8_t)(bits >> (8 * i));
}

static void bb_so_header(struct bb *b, uint64_t fp)
{
    b->b[b->n++] = 0xc3;
    b->b[b->n++] = 0x01;
    for (int i = 0; i < 8; i++)
        b->b[b->n++] = (uint8_t)(fp >> (8 * i));
}

/* The five leading strings of an Observation. */
static void bb_ids(struct bb *b)
{
    bb_str(b, "obs-1");
    bb_str(b, "STUDY-A");
    bb_str(b, "SITE-01");
    bb_str(b, "SUBJ-0001");
    bb_str(b, "2823-3");
}

static uint64_t fingerprint_of(const char *json, int flags)
{
    char err[256];
    size_t len;
    char *canon = avro_canon_form(json, strlen(json), flags, &len, err, sizeof err);
    if (!canon) {
        fprintf(stderr, "parse failed: %s\n", err);
        return 0;
    }
    uint64_t fp = avro_canon_fingerprint64(canon, len);
    free(canon);
    return fp;
}

static char *read_source_file(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", VIGIL_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static struct observation sample_obs(void)
{
    struct observation o;
    memset(&o, 0, sizeof o);
    snprintf(o.observation_id, sizeof o.observation_id, "obs-0001");
    snprintf(o.study_id, sizeof o.study_id, "STUDY-A");
    snprintf(o.site_id, sizeof o.site_id, "SITE-01");
    snprintf(o.subject_id, sizeof o.subject_id, "SUBJ-0001");
    snprintf(o.loinc, sizeof o.loinc, "2823-3");
    o.has_value = true;
    o.value = 6.3;
    snprintf(o.unit, sizeof o.unit, "mmol/L");
    o.has_ref_low = true;
    o.ref_low = 3.5;
    o.has_ref_high = true;
    o.ref_high = 5.1;
    o.effective_ms = 1764115200123LL;
    o.issued_ms = 1764118800456LL;
    o.status = OBS_CORRECTED;
    snprintf(o.visit, sizeof o.visit, "C1D1 é"); /* UTF-8 passes */
    return o;
}

static struct alert sample_alert(void)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.alert_id, sizeof a.alert_id, "al-9f2c");
    a.kind = ALERT_SIGNAL;
    snprintf(a.rule_id, sizeof a.rule_id, "hys-law");
    a.rule_version = 3;
    a.severity = SEV_CRITICAL;
    a.ctcae_grade = 3;
    snprintf(a.study_id, sizeof a.study_id, "STUDY-A");
    snprintf(a.site_id, sizeof a.site_id, "SITE-01");
    snprintf(a.subject_id, sizeof a.subject_id, "SUBJ-0001");
    a.n_evidence = 2;
    snprintf(a.evidence[0].observation_id, OBS_ID_MAX + 1, "obs-alt");
    snprintf(a.evidence[0].loinc, OBS_LOINC_MAX + 1, "1742-6");
    a.evidence[0].value = 190.5;
    snprintf(a.evidence[0].unit, OBS_UNIT_MAX + 1, "U/L");
    a.evidence[0].effective_ms = 1764115200000LL;
    snprintf(a.evidence[1].observation_id, OBS_ID_MAX + 1, "obs-bili");
    snprintf(a.evidence[1].loinc, OBS_LOINC_MAX + 1, "1975-2");
    a.evidence[1].value = 45.0;
    snprintf(a.evidence[1].unit, OBS_UNIT_MAX + 1, "umol/L");
    a.evidence[1].effective_ms = 1764115200001LL;
    snprintf(a.message, sizeof a.message, "Hy's law: ALT 190.5 U/L > 3xULN, bilirubin > 2xULN");
    a.observed_ms = 1764115200001LL;
    a.detected_ms = 1764115260000LL;
    return a;
}

static bool obs_equal(const struct observation *a, const struct observation *b)
{
    return strcmp(a->observation_id, b->observation_id) == 0 &&
           strcmp(a->study_id, b->study_id) == 0 && strcmp(a->site_id, b->site_id) == 0 &&
           strcmp(a->subject_id, b->subject_id) == 0 && strcmp(a->loinc, b->loinc) == 0 &&
           a->has_value == b->has_value && (!a->has_value || a->value == b->value) &&
           strcmp(a->unit, b->unit) == 0 && a->has_ref_low == b->has_ref_low &&
           (!a->has_ref_low || a->ref_low == b->ref_low) && a->has_ref_high == b->has_ref_high &&
           (!a->has_ref_high || a->ref_high == b->ref_high) &&
           a->effective_ms == b->effective_ms && a->issued_ms == b->issued_ms &&
           a->status == b->status && strcmp(a->visit, b->visit) == 0;
}

static bool alert_equal(const struct alert *a, const struct alert *b)
{
    if (strcmp(a->alert_id, b->alert_id) || a->kind != b->kind || strcmp(a->rule_id, b->rule_id) ||
        a->rule_version != b->rule_version || a->severity != b->severity ||
        a->ctcae_grade != b->ctcae_grade || strcmp(a->study_id, b->study_id) ||
        strcmp(a->site_id, b->site_id) || strcmp(a->subject_id, b->subject_id) ||
        a->n_evidence != b->n_evidence || strcmp(a->message, b->message) ||
        a->observed_ms != b->observed_ms || a->detected_ms != b->detected_ms ||
        strcmp(a->retracts_alert_id, b->retracts_alert_id))
        return false;
    for (int i = 0; i < a->n_evidence; i++) {
        const struct alert_evidence *x = &a->evidence[i], *y = &b->evidence[i];
        if (strcmp(x->observation_id, y->observation_id) || strcmp(x->loinc, y->loinc) ||
            x->value != y->value || strcmp(x->unit, y->unit) || x->effective_ms != y->effective_ms)
            return false;
    }
    return true;
}

/* ---- tests ---- */

static void test_fingerprint(void)
{
    CHECK(avro_canon_fingerprint64("", 0) == AVRO_CANON_FP_EMPTY);
    CHECK(avro_canon_fingerprint64("", 0) == UINT64_C(0xc15d213aa4d7a795));
    /* Values from the Avro project's share/test/data/schema-tests.txt
     * (printed there as signed decimals), also what the spec's table
     * algorithm gives in python. */
    CHECK(fingerprint_of("\"null\"", 0) == UINT64_C(7195948357588979594));
    CHECK(fingerprint_of("{\"type\":\"int\"}", 0) == UINT64_C(8247732601305521295));
    CHECK(fingerprint_of("\"long\"", 0) == (uint64_t)INT64_C(-3434872931120570953));
    CHECK(fingerprint_of("\"string\"", 0) == (uint64_t)INT64_C(-8142146995180207161));
    CHECK(fingerprint_of("{\"type\":\"array\",\"items\":\"int\"}", 0) ==
          UINT64_C(5920968314789803198));
}

static void check_canon(const char *json, int flags, const char *want)
{
    char err[256] = "";
    char *canon = avro_canon_form(json, strlen(json), flags, NULL, err, sizeof err);
    CHECK(canon != NULL);
    if (!canon) {
        fprintf(stderr, "  %s: %s\n", json, err);
        return;
    }
    CHECK_EQ_STR(canon, want);
    free(canon);
    /* avro-c parses what the form was written for. */
    avro_schema_t parsed = NULL;
    CHECK_EQ_INT(avro_schema_from_json_length(json, strlen(json), &parsed), 0);
    if (parsed)
        avro_schema_decref(parsed);
}

static void test_canonical_form(void)
{
    check_canon("{\"type\":\"int\"}", 0, "\"int\"");
    check_canon("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", 0, "\"long\"");
    check_canon("{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", AVRO_CANON_PY111,
                "{\"type\":\"long\"}");
    check_canon("[\"null\", {\"type\":\"map\",\"values\":\"string\",\"doc\":\"x\"}]", 0,
                "[\"null\",{\"type\":\"map\",\"values\":\"string\"}]");
    check_canon("{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"doc\":\"d\","
                "\"aliases\":[\"Q\"],\"fields\":["
                "{\"name\":\"f\",\"doc\":\"x\",\"default\":\"A\",\"type\":"
                "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}},"
                "{\"name\":\"g\",\"type\":\"E\"},"
                "{\"name\":\"h\",\"type\":{\"size\":16,\"type\":\"fixed\",\"name\":\"c.F\"}},"
                "{\"name\":\"i\",\"type\":{\"type\":\"array\",\"items\":\"a.b.R\"}}]}",
                0,
                "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":["
                "{\"name\":\"f\",\"type\":{\"name\":\"a.b.E\",\"type\":\"enum\","
                "\"symbols\":[\"A\",\"B\"]}},"
                "{\"name\":\"g\",\"type\":\"a.b.E\"},"
                "{\"name\":\"h\",\"type\":{\"name\":\"c.F\",\"type\":\"fixed\",\"size\":16}},"
                "{\"name\":\"i\",\"type\":{\"type\":\"array\",\"items\":\"a.b.R\"}}]}");

    char err[256];
    const char *bad[] = {"", "{", "\"Nope\"", "{\"type\":\"record\",\"name\":\"R\"}",
                         "[[\"int\"]]", "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}",
                         "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}", "42"};
    /* Refused by the canonical form or by avro-c's parser, so by the codec. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        avro_schema_t parsed = NULL;
        char *canon = avro_canon_form(bad[i], strlen(bad[i]), 0, NULL, err, sizeof err);
        bool refused = canon == NULL ||
                       avro_schema_from_json_length(bad[i], strlen(bad[i]), &parsed) != 0;
        CHECK(refused);
        if (!refused)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        free(canon);
        if (parsed)
            avro_schema_decref(parsed);
    }

    /* Nesting beyond the limit is refused, not a stack overflow. */
    char deep[4096] = "";
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(deep + n, sizeof deep - n, "{\"type\":\"array\",\"items\":");
    n += (size_t)snprintf(deep + n, sizeof deep - n, "\"int\"");
    for (int i = 0; i < 100; i++)
        deep[n++] = '}';
    deep[n] = '\0';
    CHECK(avro_canon_form(deep, n, 0, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "deeper") != NULL);
}

static void test_class_names(void)
{
    CHECK_EQ_STR(codec_error_class_name(CODEC_OK), "ok");
    CHECK_EQ_STR(codec_error_class_name(CODEC_ETRUNCATED), "truncated");
    CHECK_EQ_STR(codec_error_class_name(CODEC_ECORRUPT), "corrupt");
    CHECK_EQ_STR(codec_error_class_name(CODEC_EOVERSIZE), "oversize");
    CHECK_EQ_STR(codec_error_class_name(CODEC_EUNKNOWN_SCHEMA), "unknown_schema");
    CHECK_EQ_STR(codec_error_class_name(CODEC_EINCOMPATIBLE), "incompatible_schema");
    CHECK_EQ_STR(codec_error_class_name(CODEC_EINVALID), "invalid");
    CHECK_EQ_STR(codec_error_class_name(CODEC_ETRANSIENT), "transient");
    CHECK(!codec_status_is_poison(CODEC_ETRANSIENT));
    CHECK(codec_status_is_poison(CODEC_EUNKNOWN_SCHEMA));
}

static void test_roundtrip(struct codec *c)
{
    char err[512];
    uint8_t buf[CODEC_ALERT_MAX_ENCODED];
    size_t len = 0;
    for (int framing = 0; framing < 2; framing++) {
        struct observation o = sample_obs(), back;
        CHECK_EQ_INT(codec_encode_observation(c, &o, framing, 1, buf, sizeof buf, &len, err,
                                              sizeof err),
                     CODEC_OK);
        CHECK(framing == CODEC_CONFLUENT ? buf[0] == 0 : (buf[0] == 0xc3 && buf[1] == 0x01));
        enum codec_status st = codec_decode_observation(c, buf, len, &back, err, sizeof err);
        CHECK_EQ_INT(st, CODEC_OK);
        if (st != CODEC_OK)
            fprintf(stderr, "  decode: %s\n", err);
        CHECK(obs_equal(&o, &back));

        /* Absent optionals and the largest fields round-trip too. */
        o.has_value = o.has_ref_low = o.has_ref_high = false;
        o.visit[0] = '\0';
        memset(o.observation_id, 'x', OBS_ID_MAX);
        memset(o.unit, 'u', OBS_UNIT_MAX);
        o.effective_ms = INT64_MIN;
        o.issued_ms = INT64_MAX;
        CHECK_EQ_INT(codec_encode_observation(c, &o, framing, 1, buf, sizeof buf, &len, err,
                                              sizeof err),
                     CODEC_OK);
        CHECK(len <= CODEC_OBSERVATION_MAX_ENCODED);
        CHECK_EQ_INT(codec_decode_observation(c, buf, len, &back, err, sizeof err), CODEC_OK);
        CHECK(obs_equal(&o, &back));

        struct alert a = sample_alert(), ab;
        CHECK_EQ_INT(codec_encode_alert(c, &a, framing, 2, buf, sizeof buf, &len, err, sizeof err),
                     CODEC_OK);
        st = codec_decode_alert(c, buf, len, &ab, err, sizeof err);
        CHECK_EQ_INT(st, CODEC_OK);
        if (st != CODEC_OK)
            fprintf(stderr, "  decode alert: %s\n", err);
        CHECK(alert_equal(&a, &ab));

        a.kind = ALERT_RETRACTION;
        snprintf(a.retracts_alert_id, sizeof a.retracts_alert_id, "al-0001");
        a.ctcae_grade = 0;
        a.n_evidence = ALERT_EVIDENCE_MAX;
        a.evidence[2] = a.evidence[0];
        a.evidence[3] = a.evidence[1];
        memset(a.message, 'm', ALERT_MESSAGE_MAX);
        CHECK_EQ_INT(codec_encode_alert(c, &a, framing, 2, buf, sizeof buf, &len, err, sizeof err),
                     CODEC_OK);
        CHECK(len <= CODEC_ALERT_MAX_ENCODED);
        CHECK_EQ_INT(codec_decode_alert(c, buf, len, &ab, err, sizeof err), CODEC_OK);
        CHECK(alert_equal(&a, &ab));
        a.n_evidence = 0;
        CHECK_EQ_INT(codec_encode_alert(c, &a, framing, 2, buf, sizeof buf, &len, err, sizeof err),
                     CODEC_OK);
        CHECK_EQ_INT(codec_decode_alert(c, buf, len, &ab, err, sizeof err), CODEC_OK);
        CHECK(alert_equal(&a, &ab));

        /* An alert is not an observation: resolution refuses it. */
        CHECK_EQ_INT(codec_decode_observation(c, buf, len, &back, err, sizeof err),
                     CODEC_EINCOMPATIBLE);
    }
    /* Encoding into a small buffer is refused, not overrun. */
    struct observation o = sample_obs();
    CHECK_EQ_INT(codec_encode_observation(c, &o, CODEC_SINGLE_OBJECT, 0, buf, 20, &len, err,
                                          sizeof err),
                 CODEC_EOVERSIZE);
    /* Encoding validates like decoding. */
    o.value = NAN;
    CHECK_EQ_INT(codec_encode_observation(c, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len,
                                          err, sizeof err),
                 CODEC_EINVALID);
    o = sample_obs();
    o.subject_id[0] = '\0';
    CHECK_EQ_INT(codec_encode_observation(c, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len,
                                          err, sizeof err),
                 CODEC_EINVALID);
    struct alert a = sample_alert();
    snprintf(a.retracts_alert_id, sizeof a.retracts_alert_id, "x"); /* a signal may not */
    CHECK_EQ_INT(codec_encode_alert(c, &a, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                    sizeof err),
                 CODEC_EINVALID);
}

/* Every prefix of a valid message is an error (truncated, or a length now
 * beyond the bytes left = oversize), and every single-byte corruption
 * decodes or fails cleanly (ASan checks the "cleanly"). */
static void test_truncation_and_flips(struct codec *c)
{
    char err[512];
    uint8_t buf[CODEC_ALERT_MAX_ENCODED], copy[CODEC_ALERT_MAX_ENCODED];
    size_t len;
    int bad_prefix = 0, bad_flip = 0;
    for (int framing = 0; framing < 2; framing++) {
        for (int kind = 0; kind < 2; kind++) {
            struct observation o = sample_obs(), ob;
            struct alert a = sample_alert(), ab;
            if (kind == 0)
                codec_encode_observation(c, &o, framing, 1, buf, sizeof buf, &len, err, sizeof err);
            else
                codec_encode_alert(c, &a, framing, 2, buf, sizeof buf, &len, err, sizeof err);
            for (size_t cut = 0; cut < len; cut++) {
                /* A fresh heap copy of exactly cut bytes: ASan sees any overread. */
                uint8_t *p = malloc(cut ? cut : 1);
                memcpy(p, buf, cut);
                enum codec_status st = kind == 0
                                           ? codec_decode_observation(c, p, cut, &ob, err, sizeof err)
                                           : codec_decode_alert(c, p, cut, &ab, err, sizeof err);
                if (st != CODEC_ETRUNCATED && st != CODEC_EOVERSIZE) {
                    bad_prefix++;
                    fprintf(stderr, "  prefix %zu/%zu: %s %s\n", cut, len,
                            codec_error_class_name(st), err);
                }
                free(p);
            }
            for (size_t i = 0; i < len; i++) {
                const uint8_t vals[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
                for (size_t v = 0; v < sizeof vals; v++) {
                    memcpy(copy, buf, len);
                    copy[i] = vals[v];
                    uint8_t *p = malloc(len);
                    memcpy(p, copy, len);
                    enum codec_status st =
                        kind == 0 ? codec_decode_observation(c, p, len, &ob, err, sizeof err)
                                  : codec_decode_alert(c, p, len, &ab, err, sizeof err);
                    if ((unsigned)st > CODEC_ETRANSIENT)
                        bad_flip++;
                    free(p);
                }
            }
        }
    }
    CHECK_EQ_INT(bad_prefix, 0);
    CHECK_EQ_INT(bad_flip, 0);
}

static enum codec_status decode_bb(struct codec *c, struct bb *b, char *err, size_t errsz)
{
    struct observation o;
    uint8_t *p = malloc(b->n);
    memcpy(p, b->b, b->n);
    enum codec_status st = codec_decode_observation(c, p, b->n, &o, err, errsz);
    free(p);
    return st;
}

/* A valid v2 body after the ids, with the given status symbol index. */
static void bb_obs_tail(struct bb *b, int64_t status)
{
    bb_long(b, 1);
    bb_double(b, 4.2);
    bb_str(b, "mmol/L");
    bb_long(b, 0);
    bb_long(b, 0);
    bb_long(b, 1000);
    bb_long(b, 2000);
    bb_long(b, status);
    bb_long(b, 0);
}

static void test_corrupt_and_oversize(struct codec *c)
{
    char err[512];
    uint64_t fp = codec_observation_fingerprint(c);
    struct bb b;

    b.n = 0;
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_obs_tail(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_OK);

    b.n = 0; /* status enum index 9 of 5 */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_obs_tail(&b, 9);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "enum") != NULL);

    b.n = 0; /* union index 2 for value */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_long(&b, 2);
    bb_double(&b, 1);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "union index 2") != NULL);

    b.n = 0; /* negative string length */
    bb_so_header(&b, fp);
    bb_long(&b, -3);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "negative length") != NULL);

    b.n = 0; /* a varint of 11 bytes */
    bb_so_header(&b, fp);
    for (int i = 0; i < 11; i++)
        b.b[b.n++] = 0xff;
    b.b[b.n++] = 0x01;
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);

    b.n = 0; /* trailing bytes after the record */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_obs_tail(&b, 0);
    b.b[b.n++] = 0;
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "left after") != NULL);

    b.n = 0; /* unknown framing, bad single-object marker */
    b.b[b.n++] = 0x7b;
    bb_ids(&b);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    b.b[0] = 0xc3;
    b.b[1] = 0x02;
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);

    b.n = 0; /* a string length of 2^40: no allocation, oversize */
    bb_so_header(&b, fp);
    bb_long(&b, INT64_C(1) << 40);
    bb_str(&b, "abc");
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EOVERSIZE);

    /* A message larger than the configured maximum. */
    struct codec_config cfg;
    codec_config_init(&cfg);
    cfg.max_message_bytes = 64;
    struct codec *small = codec_new(&cfg, err, sizeof err);
    CHECK(small != NULL);
    b.n = 0;
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_obs_tail(&b, 0);
    CHECK(b.n > 64);
    if (small)
        CHECK_EQ_INT(decode_bb(small, &b, err, sizeof err), CODEC_EOVERSIZE);
    codec_destroy(small);

    /* An evidence array claiming 2^50 items: oversize before any work. */
    struct alert ab;
    b.n = 0;
    bb_so_header(&b, codec_alert_fingerprint(c));
    bb_str(&b, "al-1");
    bb_long(&b, 0);
    bb_str(&b, "r");
    bb_long(&b, 1);
    bb_long(&b, 0);
    bb_long(&b, 0);
    bb_str(&b, "S");
    bb_str(&b, "T");
    bb_str(&b, "U");
    size_t at_array = b.n;
    bb_long(&b, INT64_C(1) << 50);
    CHECK_EQ_INT(codec_decode_alert(c, b.b, b.n, &ab, err, sizeof err), CODEC_EOVERSIZE);
    /* Five evidence items: more than struct alert holds -> invalid. */
    b.n = at_array;
    bb_long(&b, 5);
    for (int i = 0; i < 5; i++) {
        bb_str(&b, "o");
        bb_str(&b, "l");
        bb_double(&b, 1);
        bb_str(&b, "u");
        bb_long(&b, 1);
    }
    bb_long(&b, 0);
    bb_str(&b, "m");
    bb_long(&b, 1);
    bb_long(&b, 2);
    bb_long(&b, 0);
    CHECK_EQ_INT(codec_decode_alert(c, b.b, b.n, &ab, err, sizeof err), CODEC_EINVALID);
    /* The same with 4 items decodes; a negative block count (with its
     * byte size) is legal Avro and decodes too. */
    b.n = at_array;
    size_t item_start;
    bb_long(&b, -4);
    bb_long(&b, 4 * 15); /* byte size of the block: 4 x (2+2+8+2+1) */
    item_start = b.n;
    for (int i = 0; i < 4; i++) {
        bb_str(&b, "o");
        bb_str(&b, "l");
        bb_double(&b, 1);
        bb_str(&b, "u");
        bb_long(&b, 1);
    }
    CHECK_EQ_INT((int)(b.n - item_start), 60);
    bb_long(&b, 0);
    bb_str(&b, "m");
    bb_long(&b, 1);
    bb_long(&b, 2);
    bb_long(&b, 0);
    CHECK_EQ_INT(codec_decode_alert(c, b.b, b.n, &ab, err, sizeof err), CODEC_OK);
    CHECK_EQ_INT(ab.n_evidence, 4);
}

static void test_validation(struct codec *c)
{
    char err[512];
    uint64_t fp = codec_observation_fingerprint(c);
    struct bb b;

    /* Each message below is whole: the bounds walk checks the structure
     * before avro-c reads it (so a message both cut short and invalid is
     * "truncated"), and validation sees the values after. */
    b.n = 0; /* unit of 40 bytes: longer than struct observation holds */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_long(&b, 0);
    bb_str(&b, "0123456789012345678901234567890123456789");
    bb_long(&b, 0);
    bb_long(&b, 0);
    bb_long(&b, 1000);
    bb_long(&b, 2000);
    bb_long(&b, 0);
    bb_long(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EINVALID);
    CHECK(strstr(err, "unit is 40 bytes") != NULL);

    b.n = 0; /* empty observation id */
    bb_so_header(&b, fp);
    bb_str(&b, "");
    bb_str(&b, "S");
    bb_str(&b, "T");
    bb_str(&b, "U");
    bb_str(&b, "L");
    bb_obs_tail(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EINVALID);
    CHECK(strstr(err, "observation_id is empty") != NULL);

    b.n = 0; /* NaN and infinite values */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_long(&b, 1);
    bb_double(&b, NAN);
    bb_str(&b, "u");
    bb_long(&b, 1);
    bb_double(&b, INFINITY);
    bb_long(&b, 0);
    bb_long(&b, 1);
    bb_long(&b, 2);
    bb_long(&b, 0);
    bb_long(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EINVALID);
    CHECK(strstr(err, "NaN") != NULL);

    for (int nul = 0; nul < 2; nul++) { /* invalid UTF-8, an embedded NUL */
        b.n = 0;
        bb_so_header(&b, fp);
        bb_long(&b, 3);
        bb_raw(&b, nul ? "a\0b" : "a\xc3(", 3);
        bb_str(&b, "S");
        bb_str(&b, "T");
        bb_str(&b, "U");
        bb_str(&b, "L");
        bb_obs_tail(&b, 0);
        CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EINVALID);
        CHECK(strstr(err, nul ? "NUL" : "UTF-8") != NULL);
    }

    /* ctcae_grade 7 */
    struct alert a = sample_alert(), ab;
    a.ctcae_grade = 7;
    uint8_t buf[CODEC_ALERT_MAX_ENCODED];
    size_t len;
    CHECK_EQ_INT(codec_encode_alert(c, &a, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                    sizeof err),
                 CODEC_EINVALID);
    a.ctcae_grade = 3;
    codec_encode_alert(c, &a, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err, sizeof err);
    /* grade is the varint after [alert_id, kind, rule_id, rule_version,
     * severity, union index 1]: find "\x02\x06" (index 1, grade 3). */
    size_t at = 10 + 1 + strlen(a.alert_id) + 1 + 1 + strlen(a.rule_id) + 1 + 1;
    CHECK(buf[at] == 0x02 && buf[at + 1] == 0x06);
    buf[at + 1] = 0x0e; /* 7 */
    CHECK_EQ_INT(codec_decode_alert(c, buf, len, &ab, err, sizeof err), CODEC_EINVALID);
    CHECK(strstr(err, "ctcae_grade") != NULL);
}

static void test_schemas(struct codec *c)
{
    char err[512];
    struct bb b;

    /* Unknown fingerprint / unknown id without a registry. */
    b.n = 0;
    bb_so_header(&b, UINT64_C(0x0123456789abcdef));
    bb_ids(&b);
    bb_obs_tail(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EUNKNOWN_SCHEMA);
    CHECK(strstr(err, "0123456789abcdef") != NULL);
    b.n = 0;
    uint8_t cf[] = {0, 0, 0, 0x30, 0x39};
    bb_raw(&b, cf, sizeof cf);
    bb_ids(&b);
    bb_obs_tail(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EUNKNOWN_SCHEMA);
    CHECK(strstr(err, "12345") != NULL);

    /* v1 writer (no issued_time, no visit) -> current reader, defaults. */
    char *v1 = read_source_file("schemas/history/observation.v1.avsc");
    CHECK(v1 != NULL);
    if (!v1)
        return;
    if (!embedded_find("observation.v1.avsc")) {
        printf("note: observation.v1.avsc is not embedded yet; adding it by hand\n");
        CHECK_EQ_INT(codec_add_writer_schema(c, v1, err, sizeof err), CODEC_OK);
    }
    uint64_t fp1 = fingerprint_of(v1, 0);
    CHECK(fp1 != codec_observation_fingerprint(c));
    for (int quirk = 0; quirk < 2; quirk++) {
        b.n = 0;
        bb_so_header(&b, quirk ? fingerprint_of(v1, AVRO_CANON_PY111) : fp1);
        bb_ids(&b);
        bb_long(&b, 1);
        bb_double(&b, 4.2);
        bb_str(&b, "mmol/L");
        bb_long(&b, 1);
        bb_double(&b, 3.5);
        bb_long(&b, 0);
        bb_long(&b, 1764115200123LL);
        bb_long(&b, 4); /* entered_in_error */
        struct observation o;
        memset(&o, 0x55, sizeof o); /* decoding must overwrite everything */
        enum codec_status st = codec_decode_observation(c, b.b, b.n, &o, err, sizeof err);
        CHECK_EQ_INT(st, CODEC_OK);
        if (st != CODEC_OK)
            fprintf(stderr, "  v1: %s\n", err);
        CHECK_EQ_STR(o.observation_id, "obs-1");
        CHECK_EQ_STR(o.loinc, "2823-3");
        CHECK(o.has_value && o.value == 4.2);
        CHECK(o.has_ref_low && o.ref_low == 3.5 && !o.has_ref_high);
        CHECK_EQ_INT(o.effective_ms, 1764115200123LL);
        CHECK_EQ_INT(o.issued_ms, 0); /* default: unknown */
        CHECK_EQ_STR(o.visit, "");    /* default: null */
        CHECK_EQ_INT(o.status, OBS_ENTERED_IN_ERROR);
    }

    /* A writer that reorders fields, adds fields the reader lacks (map of
     * arrays, skipped), promotes int->long, int->double, float->double,
     * bytes->string, has a different namespace and an extra enum symbol. */
    const char *w2 =
        "{\"type\":\"record\",\"name\":\"Observation\",\"namespace\":\"hospital.lab\","
        "\"fields\":["
        "{\"name\":\"extra\",\"type\":{\"type\":\"map\",\"values\":{\"type\":\"array\","
        "\"items\":\"long\"}}},"
        "{\"name\":\"observation_id\",\"type\":\"bytes\"},"
        "{\"name\":\"study_id\",\"type\":\"string\"},{\"name\":\"site_id\",\"type\":\"string\"},"
        "{\"name\":\"subject_id\",\"type\":\"string\"},{\"name\":\"loinc\",\"type\":\"string\"},"
        "{\"name\":\"value\",\"type\":[\"null\",\"float\"]},"
        "{\"name\":\"unit\",\"type\":\"string\"},"
        "{\"name\":\"ref_low\",\"type\":\"int\"},"
        "{\"name\":\"ref_high\",\"type\":\"null\"},"
        "{\"name\":\"effective_time\",\"type\":\"int\"},"
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ObservationStatus\","
        "\"symbols\":[\"preliminary\",\"final\",\"amended\",\"corrected\",\"cancelled\","
        "\"entered_in_error\"]}},"
        "{\"name\":\"flag\",\"type\":[\"null\",\"boolean\",{\"type\":\"fixed\",\"name\":\"F\","
        "\"size\":3}]},"
        "{\"name\":\"visit\",\"type\":[\"null\",\"string\"]},"
        "{\"name\":\"issued_time\",\"type\":\"long\"}]}";
    CHECK_EQ_INT(codec_add_schema_id(c, 77, w2, err, sizeof err), CODEC_OK);
    for (int sym = 0; sym < 2; sym++) {
        b.n = 0;
        uint8_t h[] = {0, 0, 0, 0, 77};
        bb_raw(&b, h, sizeof h);
        bb_long(&b, 2); /* map block of 2 */
        bb_str(&b, "k1");
        bb_long(&b, 2);
        bb_long(&b, 7);
        bb_long(&b, -8);
        bb_long(&b, 0);
        bb_str(&b, "k2");
        bb_long(&b, 0);
        bb_long(&b, 0);
        bb_ids(&b);
        bb_long(&b, 1);
        bb_float(&b, 2.5f);
        bb_str(&b, "g/dL");
        bb_long(&b, 12);
        bb_long(&b, 1700000000); /* int effective_time */
        bb_long(&b, sym == 0 ? 3 : 0);  /* corrected / preliminary */
        bb_long(&b, 2);
        bb_raw(&b, "xyz", 3);
        bb_long(&b, 1);
        bb_str(&b, "V2");
        bb_long(&b, 99);
        struct observation o;
        enum codec_status st = codec_decode_observation(c, b.b, b.n, &o, err, sizeof err);
        if (sym == 1) {
            /* The reader has no "preliminary" and no enum default. */
            CHECK_EQ_INT(st, CODEC_EINVALID);
            CHECK(strstr(err, "preliminary") != NULL);
            continue;
        }
        CHECK_EQ_INT(st, CODEC_OK);
        if (st != CODEC_OK)
            fprintf(stderr, "  w2: %s\n", err);
        CHECK_EQ_STR(o.observation_id, "obs-1");
        CHECK(o.has_value && o.value == 2.5);
        CHECK(o.has_ref_low && o.ref_low == 12.0);
        CHECK(!o.has_ref_high);
        CHECK_EQ_INT(o.effective_ms, 1700000000);
        CHECK_EQ_INT(o.issued_ms, 99);
        CHECK_EQ_INT(o.status, OBS_CORRECTED);
        CHECK_EQ_STR(o.visit, "V2");
    }

    /* A writer union branch the reader cannot take fails only when used. */
    const char *w3 =
        "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
        "{\"name\":\"observation_id\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"study_id\",\"type\":\"string\"},{\"name\":\"site_id\",\"type\":\"string\"},"
        "{\"name\":\"subject_id\",\"type\":\"string\"},{\"name\":\"loinc\",\"type\":\"string\"},"
        "{\"name\":\"unit\",\"type\":\"string\"},"
        "{\"name\":\"effective_time\",\"type\":\"long\"},"
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ObservationStatus\","
        "\"symbols\":[\"final\"]}}]}";
    /* value, ref_low, ref_high have no defaults in the reader: refused. */
    CHECK_EQ_INT(codec_add_schema_id(c, 78, w3, err, sizeof err), CODEC_EINCOMPATIBLE);
    CHECK(strstr(err, "value") != NULL);

    const char *w4 =
        "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
        "{\"name\":\"observation_id\",\"type\":[\"string\",\"null\"]},"
        "{\"name\":\"study_id\",\"type\":\"string\"},{\"name\":\"site_id\",\"type\":\"string\"},"
        "{\"name\":\"subject_id\",\"type\":\"string\"},{\"name\":\"loinc\",\"type\":\"string\"},"
        "{\"name\":\"value\",\"type\":\"double\"},{\"name\":\"ref_low\",\"type\":\"null\"},"
        "{\"name\":\"ref_high\",\"type\":\"null\"},"
        "{\"name\":\"unit\",\"type\":\"string\"},"
        "{\"name\":\"effective_time\",\"type\":\"long\"},"
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ObservationStatus\","
        "\"symbols\":[\"final\"]}}]}";
    CHECK_EQ_INT(codec_add_schema_id(c, 79, w4, err, sizeof err), CODEC_OK);
    b.n = 0;
    uint8_t h4[] = {0, 0, 0, 0, 79};
    bb_raw(&b, h4, sizeof h4);
    bb_long(&b, 1); /* observation_id: null; the rest whole */
    bb_str(&b, "S");
    bb_str(&b, "T");
    bb_str(&b, "U");
    bb_str(&b, "L");
    bb_double(&b, 1);
    bb_str(&b, "u");
    bb_long(&b, 5);
    bb_long(&b, 0);
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EINVALID);
    CHECK(strstr(err, "observation_id") != NULL);

    /* Unresolvable writers: a string where the reader needs a double, a
     * record of another name, and not a schema at all. */
    CHECK_EQ_INT(codec_add_writer_schema(
                     c,
                     "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
                     "{\"name\":\"value\",\"type\":\"string\"}]}",
                     err, sizeof err),
                 CODEC_EINCOMPATIBLE);
    CHECK_EQ_INT(codec_add_writer_schema(c, "{\"type\":\"record\",\"name\":\"Patient\",\"fields\":[]}",
                                         err, sizeof err),
                 CODEC_EINCOMPATIBLE);
    CHECK_EQ_INT(codec_add_writer_schema(c, "not json", err, sizeof err), CODEC_EINCOMPATIBLE);
    free(v1);
}

/* The inputs tests/unit/codec_avroc_probe.c shows avro-c 1.11 mishandling
 * when it reads them unguarded (README in common/avro: allocations of what
 * a length says, a 614 MB allocation for a 10 KB message, stack overflows,
 * a double free, silently accepted corrupt varints). Through the codec each
 * is an error class: the guard in front of avro-c refuses it. Under ASan
 * any that reached avro-c would abort this test. */
static void test_avroc_findings(struct codec *c)
{
    char err[512];
    uint64_t fp = codec_observation_fingerprint(c);
    static struct bb b;

    b.n = 0; /* string length -1: avro-c asks for 0 bytes and calls it out of memory */
    bb_so_header(&b, fp);
    bb_long(&b, -1);
    bb_str(&b, "abc");
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "negative length") != NULL);

    b.n = 0; /* string length 2^31: avro-c allocates 2 GiB, then finds 3 bytes */
    bb_so_header(&b, fp);
    bb_long(&b, INT64_C(1) << 31);
    bb_str(&b, "abc");
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_EOVERSIZE);
    CHECK(strstr(err, "at byte 10") != NULL);

    b.n = 0; /* a 10-byte varint past 2^64: avro-c takes it silently */
    bb_so_header(&b, fp);
    bb_ids(&b);
    bb_long(&b, 0);
    bb_str(&b, "u");
    bb_long(&b, 0);
    bb_long(&b, 0);
    for (int i = 0; i < 9; i++)
        b.b[b.n++] = 0xff;
    b.b[b.n++] = 0x7f;
    CHECK_EQ_INT(decode_bb(c, &b, err, sizeof err), CODEC_ECORRUPT);
    CHECK(strstr(err, "longer than 64 bits") != NULL);

    /* A writer with hostile-shaped fields before the Observation's own. */
    const char *w =
        "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
        "{\"name\":\"pad\",\"type\":{\"type\":\"array\",\"items\":\"null\"}},"
        "{\"name\":\"keys\",\"type\":{\"type\":\"map\",\"values\":\"null\"}},"
        "{\"name\":\"tree\",\"type\":{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
        "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"}}]}},"
        "{\"name\":\"big\",\"type\":{\"type\":\"array\",\"items\":[\"null\",{\"type\":\"record\","
        "\"name\":\"Big\",\"fields\":[{\"name\":\"b\",\"type\":{\"type\":\"fixed\",\"name\":\"F\","
        "\"size\":60000}}]}]}},"
        "{\"name\":\"observation_id\",\"type\":\"string\"},"
        "{\"name\":\"study_id\",\"type\":\"string\"},{\"name\":\"site_id\",\"type\":\"string\"},"
        "{\"name\":\"subject_id\",\"type\":\"string\"},{\"name\":\"loinc\",\"type\":\"string\"},"
        "{\"name\":\"value\",\"type\":[\"null\",\"double\"]},"
        "{\"name\":\"unit\",\"type\":\"string\"},"
        "{\"name\":\"ref_low\",\"type\":[\"null\",\"double\"]},"
        "{\"name\":\"ref_high\",\"type\":[\"null\",\"double\"]},"
        "{\"name\":\"effective_time\",\"type\":\"long\"},"
        "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ObservationStatus\","
        "\"symbols\":[\"final\",\"amended\",\"corrected\",\"cancelled\",\"entered_in_error\"]}}]}";
    CHECK_EQ_INT(codec_add_schema_id(c, 90, w, err, sizeof err), CODEC_OK);
    static struct bb big; /* 600 KB: too large for the stack */
    uint8_t h[] = {0, 0, 0, 0, 90};
    for (int which = 0; which < 6; which++) {
        struct bb *m = which == 4 ? &big : &b;
        m->n = 0;
        bb_raw(m, h, sizeof h);
        /* pad: 0 honest, 1 a count of 2^40, 2 a count of -2^62 */
        if (which == 1) {
            bb_long(m, INT64_C(1) << 40);
        } else if (which == 2) {
            bb_long(m, -(INT64_C(1) << 62));
            bb_long(m, 0);
        } else {
            bb_long(m, 3);
            bb_long(m, 0);
        }
        /* keys: 3 a key length of 2^31 */
        bb_long(m, 1);
        if (which == 3)
            bb_long(m, INT64_C(1) << 31);
        else
            bb_str(m, "k");
        bb_long(m, 0);
        /* tree: 4 nested 300000 deep (avro-c recurses until the stack ends) */
        size_t levels = which == 4 ? 300000 : 2;
        for (size_t i = 0; i < levels; i++)
            bb_long(m, 1);
        for (size_t i = 0; i < levels + 1; i++)
            bb_long(m, 0);
        /* big: 5 10000 null branches of a 60000-byte union: avro-c would
         * allocate 614 MB for these 10 KB */
        size_t nulls = which == 5 ? 10000 : 2;
        bb_long(m, (int64_t)nulls);
        for (size_t i = 0; i < nulls; i++)
            bb_long(m, 0);
        bb_long(m, 0);
        bb_ids(m);
        bb_long(m, 0);
        bb_str(m, "u");
        bb_long(m, 0);
        bb_long(m, 0);
        bb_long(m, 1000);
        bb_long(m, 0);
        struct observation o;
        enum codec_status st = codec_decode_observation(c, m->b, m->n, &o, err, sizeof err);
        CHECK_EQ_INT(st, which == 0 ? CODEC_OK : CODEC_EOVERSIZE);
        if (st != (which == 0 ? CODEC_OK : CODEC_EOVERSIZE))
            fprintf(stderr, "  hostile writer, case %d: %s\n", which, err);
        if (which == 0)
            CHECK_EQ_STR(o.observation_id, "obs-1");
        if (which == 4)
            CHECK(strstr(err, "nested deeper") != NULL);
        if (which == 5)
            CHECK(strstr(err, "avro-c would allocate") != NULL);
    }

    /* Writer schemas avro-c cannot build values of, or fails to resolve
     * with a double free: refused when learnt, never a crash. */
    CHECK_EQ_INT(codec_add_schema_id(c, 91,
                                     "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
                                     "{\"name\":\"f\",\"type\":{\"type\":\"fixed\",\"name\":\"F\","
                                     "\"size\":1099511627776}}]}",
                                     err, sizeof err),
                 CODEC_EINCOMPATIBLE);
    CHECK(strstr(err, "would take") != NULL);
    CHECK_EQ_INT(codec_add_schema_id(c, 92,
                                     "{\"type\":\"record\",\"name\":\"Observation\",\"fields\":["
                                     "{\"name\":\"self\",\"type\":\"Observation\"}]}",
                                     err, sizeof err),
                 CODEC_EINCOMPATIBLE);
    CHECK(strstr(err, "holds itself") != NULL);
    /* Found by fuzz_schema (inputs kept in its corpus; each is SCHEMA NUL
     * BODY, so the text ends at the NUL): an Observation whose status enum
     * has another name (avro-c: double free), an Alert whose evidence
     * items have another name (avro-c: NULL dereference). */
    const char *found[] = {"avroc_record_double_free", "avroc_array_null_deref"};
    const char *field[] = {"status", "evidence"};
    for (int i = 0; i < 2; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fuzz/corpus/schema/%s", found[i]);
        char *text = read_source_file(rel);
        CHECK(text != NULL);
        if (!text)
            continue;
        CHECK_EQ_INT(codec_add_schema_id(c, (uint32_t)(93 + i), text, err, sizeof err),
                     CODEC_EINCOMPATIBLE);
        CHECK(strstr(err, field[i]) != NULL);
        free(text);
    }
}

int main(void)
{
    char err[512];
    test_fingerprint();
    test_canonical_form();
    test_class_names();
    struct codec *c = codec_new(NULL, err, sizeof err);
    CHECK(c != NULL);
    if (!c) {
        fprintf(stderr, "codec_new: %s\n", err);
        return testlib_done();
    }
    /* Confluent ids 1 and 2 as a registry would have them. */
    CHECK_EQ_INT(codec_add_schema_id(c, 1, embedded_find("observation.avsc"), err, sizeof err),
                 CODEC_OK);
    CHECK_EQ_INT(codec_add_schema_id(c, 2, embedded_find("alert.avsc"), err, sizeof err),
                 CODEC_OK);
    test_roundtrip(c);
    test_truncation_and_flips(c);
    test_corrupt_and_oversize(c);
    test_validation(c);
    test_schemas(c);
    test_avroc_findings(c);
    codec_destroy(c);
    codec_destroy(NULL);
    return testlib_done();
}
