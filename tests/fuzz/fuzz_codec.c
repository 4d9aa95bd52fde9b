/*
 * libFuzzer target for the Avro codec: every input is decoded as an
 * Observation and as an Alert (either framing, told apart by the first
 * byte). No network: Confluent ids 1-4 resolve from a fixed in-memory
 * table (codec_add_schema_id), there is no registry. Inputs that look like
 * JSON are also canonicalised and, within the limits, parsed and resolved
 * by avro-c as a writer schema, since registry schemas are outside input too.
 *
 *   ids 1, 2   the current Observation and Alert schemas
 *   id 3       schemas/history/observation.v1.avsc (also by fingerprint)
 *   id 4       a hostile-shaped writer (recursive record, map, fixed,
 *              unions, promotions) that still resolves to Observation;
 *              also known by fingerprint
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_canon.h"
#include "avro_resolve.h"
#include "codec.h"
#include "embedded.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char hostile[] =
    "{\"type\":\"record\",\"name\":\"Observation\",\"namespace\":\"h\",\"fields\":["
    "{\"name\":\"tree\",\"type\":{\"type\":\"record\",\"name\":\"Node\",\"fields\":["
    "{\"name\":\"kids\",\"type\":{\"type\":\"array\",\"items\":\"Node\"}},"
    "{\"name\":\"tag\",\"type\":[\"null\",{\"type\":\"fixed\",\"name\":\"T\",\"size\":2},"
    "{\"type\":\"map\",\"values\":\"Node\"}]}]}},"
    "{\"name\":\"observation_id\",\"type\":[\"null\",\"bytes\",\"string\"]},"
    "{\"name\":\"study_id\",\"type\":\"string\"},{\"name\":\"site_id\",\"type\":\"string\"},"
    "{\"name\":\"subject_id\",\"type\":\"string\"},{\"name\":\"loinc\",\"type\":\"string\"},"
    "{\"name\":\"value\",\"type\":[\"int\",\"long\",\"float\",\"double\",\"null\",\"string\"]},"
    "{\"name\":\"unit\",\"type\":\"string\"},{\"name\":\"ref_low\",\"type\":\"float\"},"
    "{\"name\":\"ref_high\",\"type\":\"null\"},{\"name\":\"effective_time\",\"type\":\"int\"},"
    "{\"name\":\"flag\",\"type\":\"boolean\"},"
    "{\"name\":\"status\",\"type\":{\"type\":\"enum\",\"name\":\"ObservationStatus\","
    "\"symbols\":[\"x\",\"final\",\"cancelled\"]}}]}";

static struct codec *codec;
static struct avro_resolve_reader *readers[2];

static char *v1_text(void)
{
    const char *text = embedded_find("observation.v1.avsc");
    if (text)
        return strdup(text);
    FILE *f = fopen(VIGIL_SOURCE_DIR "/schemas/history/observation.v1.avsc", "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    codec = codec_new(NULL, err, sizeof err);
    char *v1 = v1_text();
    if (!codec || !v1 ||
        codec_add_schema_id(codec, 1, embedded_find("observation.avsc"), err, sizeof err) ||
        codec_add_schema_id(codec, 2, embedded_find("alert.avsc"), err, sizeof err) ||
        codec_add_schema_id(codec, 3, v1, err, sizeof err) ||
        codec_add_schema_id(codec, 4, hostile, err, sizeof err) ||
        codec_add_writer_schema(codec, hostile, err, sizeof err) ||
        (!embedded_find("observation.v1.avsc") &&
         codec_add_writer_schema(codec, v1, err, sizeof err))) {
        fprintf(stderr, "fuzz_codec: setup failed: %s\n", err);
        abort();
    }
    free(v1);
    const char *names[2] = {"observation.avsc", "alert.avsc"};
    for (int i = 0; i < 2; i++) {
        const char *t = embedded_find(names[i]);
        readers[i] = avro_resolve_reader_new(t, err, sizeof err);
        if (!readers[i])
            abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct observation o;
    struct alert a;
    enum codec_status st = codec_decode_observation(codec, data, size, &o, err, sizeof err);
    if (st == CODEC_OK) {
        /* What decodes must re-encode, and decode to the same again. */
        uint8_t buf[CODEC_OBSERVATION_MAX_ENCODED];
        size_t len;
        struct observation back;
        if (codec_encode_observation(codec, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len,
                                     err, sizeof err) != CODEC_OK ||
            codec_decode_observation(codec, buf, len, &back, err, sizeof err) != CODEC_OK ||
            memcmp(back.observation_id, o.observation_id, sizeof o.observation_id) != 0)
            abort();
    } else if ((unsigned)st > CODEC_ETRANSIENT || err[0] == '\0') {
        abort(); /* every failure has a class and a message */
    }
    st = codec_decode_alert(codec, data, size, &a, err, sizeof err);
    if (st == CODEC_OK) {
        uint8_t buf[CODEC_ALERT_MAX_ENCODED];
        size_t len;
        if (codec_encode_alert(codec, &a, CODEC_CONFLUENT, 2, buf, sizeof buf, &len, err,
                               sizeof err) != CODEC_OK)
            abort();
    }

    if (size > 0 && size < 65536 && (data[0] == '{' || data[0] == '[' || data[0] == '"')) {
        char *text = malloc(size + 1);
        if (!text)
            abort();
        memcpy(text, data, size);
        text[size] = '\0';
        char *canon = avro_canon_form(text, size, 0, NULL, err, sizeof err);
        if (canon && !memchr(data, '\0', size)) /* within the limits: avro-c may see it */
            avro_resolve_writer_destroy(avro_resolve_writer_new(text, readers, 2));
        free(canon);
        free(text);
    }
    return 0;
}
