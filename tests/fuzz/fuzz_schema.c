/*
 * libFuzzer target for writer schemas as a Schema Registry hands them out:
 * a hostile or broken registry controls the schema text, and then the
 * message bodies written "with" it.
 *
 * Input layout: SCHEMA-JSON [ NUL BODY ]. The bytes before the first NUL
 * are the writer schema's JSON (a registry's "schema" string, unescaped);
 * the bytes after it, if any, are one Avro binary body (no framing). An
 * input without a NUL is a schema with an empty body. A NUL cannot occur
 * in a schema (JSON text never holds a raw NUL), so nothing is lost.
 *
 * For each input:
 *   - avro_canon_fingerprint64() must agree with a table-driven CRC-64-AVRO
 *     written here from the spec;
 *   - if avro_canon_form() accepts the schema, the form (spec and
 *     python3-avro 1.11 flavours) must be NUL-terminated at its reported
 *     length, the spec form must be accepted again and be a fixed point
 *     (see canon_is_stable for the one case the spec itself cannot
 *     express), and the fingerprint must agree with the reference;
 *   - a fresh codec learns the schema (avro-c parses it and resolves it
 *     against both embedded readers); if it takes it, the body is decoded
 *     as a single-object message as an Observation and as an Alert (the
 *     bounds walk, then avro-c's avro_value_read and resolved readers).
 *     Every failure must have a class and a message; every success must
 *     leave NUL-terminated fields and re-encode (avro-c's writer) to a
 *     message that decodes to the same record.
 * Any crash, leak, sanitizer report or abort() is a finding.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_canon.h"
#include "codec.h"
#include "embedded.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t crc_table[256];
static bool trace; /* FUZZ_SCHEMA_TRACE set: say what each input did (corpus upkeep) */

/* ---- reference CRC-64-AVRO (the spec's table-driven form) -------------- */

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (AVRO_CANON_FP_EMPTY & (0 - (fp & 1)));
        crc_table[i] = fp;
    }
}

static uint64_t crc_ref(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t fp = AVRO_CANON_FP_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ---- canonical form --------------------------------------------------------- */

/* Named types of a canonical form: whether some full names are dotted and
 * some are not. */
static void scan_names(json_t *j, bool *dotted, bool *plain)
{
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            scan_names(json_array_get(j, i), dotted, plain);
        return;
    }
    if (!json_is_object(j))
        return;
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *name = json_string_value(json_object_get(j, "name"));
    if (type && name &&
        (strcmp(type, "record") == 0 || strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0))
        *(strchr(name, '.') ? dotted : plain) = true;
    const char *key;
    json_t *value;
    json_object_foreach(j, key, value) scan_names(value, dotted, plain);
}

/* Whether the canonical form can be expected to read back as itself. The
 * spec's form writes full names and drops "namespace", so a type in the
 * null namespace defined inside a namespaced record reads back as a member
 * of that namespace: a limit of the spec, not of avro_canon.c. Checked only
 * when no name is dotted or every name is. */
static bool canon_is_stable(const char *canon, size_t len)
{
    json_t *j = json_loadb(canon, len, JSON_DECODE_ANY, NULL);
    if (!j)
        return false;
    bool dotted = false, plain = false;
    scan_names(j, &dotted, &plain);
    json_decref(j);
    return !(dotted && plain);
}

static bool check_canonical(const char *text, size_t text_len, uint64_t *fp)
{
    char err[320] = "";
    size_t len = 0, len_py = 0;
    char *canon = avro_canon_form(text, text_len, 0, &len, err, sizeof err);
    if (!canon) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        if (trace)
            fprintf(stderr, "fuzz_schema: canon: %s\n", err);
        return false;
    }
    char *py = avro_canon_form(text, text_len, AVRO_CANON_PY111, &len_py, err, sizeof err);
    if (!py || strlen(canon) != len || strlen(py) != len_py) {
        fprintf(stderr, "fuzz_schema: canonical form missing or its length wrong\n");
        abort();
    }
    *fp = avro_canon_fingerprint64(canon, len);
    if (*fp != crc_ref(canon, len) || avro_canon_fingerprint64(py, len_py) != crc_ref(py, len_py)) {
        fprintf(stderr, "fuzz_schema: fingerprint differs from the spec's CRC-64-AVRO\n");
        abort();
    }
    if (canon_is_stable(canon, len)) {
        size_t len2 = 0;
        char *canon2 = avro_canon_form(canon, len, 0, &len2, err, sizeof err);
        if (!canon2 || len2 != len || memcmp(canon, canon2, len) != 0) {
            fprintf(stderr, "fuzz_schema: canonical form is not a fixed point:\n%s\n%s\n%s\n",
                    canon, canon2 ? canon2 : "(null)", canon2 ? "" : err);
            abort();
        }
        free(canon2);
    }
    free(py);
    free(canon);
    return true;
}

/* ---- the codec path ------------------------------------------------------ */

static void check_failure(enum codec_status st, const char *err)
{
    if ((unsigned)st > CODEC_ETRANSIENT || err[0] == '\0') {
        fprintf(stderr, "fuzz_schema: codec failure without class or message\n");
        abort();
    }
}

static void decode_both(struct codec *c, const uint8_t *msg, size_t n)
{
    char err[512];
    struct observation o, back;
    struct alert a, aback;
    uint8_t buf[CODEC_ALERT_MAX_ENCODED];
    size_t len;

    err[0] = '\0';
    enum codec_status st = codec_decode_observation(c, msg, n, &o, err, sizeof err);
    if (trace)
        fprintf(stderr, "fuzz_schema: observation: %s %s\n", codec_error_class_name(st),
                st == CODEC_OK ? "" : err);
    if (st != CODEC_OK) {
        check_failure(st, err);
    } else {
        if (!memchr(o.observation_id, '\0', sizeof o.observation_id) ||
            !memchr(o.unit, '\0', sizeof o.unit) || !memchr(o.visit, '\0', sizeof o.visit))
            abort();
        if (codec_encode_observation(c, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                     sizeof err) != CODEC_OK ||
            codec_decode_observation(c, buf, len, &back, err, sizeof err) != CODEC_OK ||
            strcmp(back.observation_id, o.observation_id) != 0 ||
            strcmp(back.visit, o.visit) != 0 || back.status != o.status ||
            back.effective_ms != o.effective_ms) {
            fprintf(stderr, "fuzz_schema: observation does not round-trip: %s\n", err);
            abort();
        }
    }

    err[0] = '\0';
    st = codec_decode_alert(c, msg, n, &a, err, sizeof err);
    if (trace)
        fprintf(stderr, "fuzz_schema: alert: %s %s\n", codec_error_class_name(st),
                st == CODEC_OK ? "" : err);
    if (st != CODEC_OK) {
        check_failure(st, err);
    } else {
        if (a.n_evidence < 0 || a.n_evidence > ALERT_EVIDENCE_MAX ||
            !memchr(a.message, '\0', sizeof a.message))
            abort();
        if (codec_encode_alert(c, &a, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                               sizeof err) != CODEC_OK ||
            codec_decode_alert(c, buf, len, &aback, err, sizeof err) != CODEC_OK ||
            aback.n_evidence != a.n_evidence || strcmp(aback.alert_id, a.alert_id) != 0) {
            fprintf(stderr, "fuzz_schema: alert does not round-trip: %s\n", err);
            abort();
        }
    }
}

/* ---- entry points ------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    crc_init();
    trace = getenv("FUZZ_SCHEMA_TRACE") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *body = nul ? nul + 1 : data + size;
    size_t body_len = (size_t)(data + size - body);
    char err[512];

    if (avro_canon_fingerprint64(data, size) != crc_ref(data, size))
        abort();

    char *text = malloc(text_len + 1);
    if (!text)
        abort();
    memcpy(text, data, text_len);
    text[text_len] = '\0';
    uint64_t fp = 0;
    bool canon_ok = check_canonical(text, text_len, &fp);

    struct codec *c = codec_new(NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fuzz_schema: codec_new: %s\n", err);
        abort();
    }
    err[0] = '\0';
    enum codec_status st = codec_add_writer_schema(c, text, err, sizeof err);
    if (trace)
        fprintf(stderr, "fuzz_schema: add: %s %s\n", codec_error_class_name(st), err);
    if (st != CODEC_OK) {
        check_failure(st, err);
    } else {
        if (!canon_ok) {
            fprintf(stderr, "fuzz_schema: the codec took a schema the canonical form refused\n");
            abort();
        }
        uint8_t *msg = malloc(body_len + 10);
        if (!msg)
            abort();
        msg[0] = 0xc3;
        msg[1] = 0x01;
        for (int i = 0; i < 8; i++)
            msg[2 + i] = (uint8_t)(fp >> (8 * i));
        if (body_len)
            memcpy(msg + 10, body, body_len);
        decode_both(c, msg, body_len + 10);
        free(msg);
    }
    codec_destroy(c);
    free(text);
    return 0;
}
