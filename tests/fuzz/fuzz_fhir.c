/*
 * libFuzzer target for the text input mappers: every input goes through
 * the FHIR JSON mapper (fhir_parse, fhir_map_observation), the NDJSON
 * mapper (obs_json_parse) and the CSV splitter and mapper (the first
 * record as the header, the rest as data). Whatever maps must format back
 * to NDJSON within OBS_JSON_MAX, and that line is parsed again.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fhir.h"
#include "obs_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const struct observation *o)
{
    char line[OBS_JSON_MAX];
    char err[512];
    struct observation back;
    size_t n = obs_json_format(o, line, sizeof line);
    if (n == 0 || n >= sizeof line)
        abort(); /* OBS_JSON_MAX is promised to suffice */
    /* Not asserted: the mappers may accept what NDJSON refuses (an empty
     * site from a FHIR resource), but parsing our own output must not crash. */
    (void)obs_json_parse(line, n, &back, err, sizeof err);
}

static int sink(void *arg, long entry, const struct observation *obs, const char *err)
{
    long *calls = arg;
    (*calls)++;
    if ((obs == NULL) == (err == NULL) || entry < -1)
        abort(); /* exactly one of the two */
    if (obs)
        roundtrip(obs);
    return 0;
}

static void fuzz_csv(const uint8_t *data, size_t size)
{
    /* Split on newlines outside quotes, as the importer does. */
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return;
    char err[512];
    char *fields[OBS_CSV_MAX_FIELDS];
    struct obs_csv_columns cols;
    bool have_cols = false;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        size_t len = i - start;
        if (i < size && obs_csv_open_quote((const char *)data + start, len))
            continue; /* the record goes on past this newline */
        memcpy(buf, data + start, len);
        buf[len] = '\0';
        start = i + 1;
        int n = obs_csv_split(buf, len, fields, err, sizeof err);
        if (n < 0 || n > OBS_CSV_MAX_FIELDS)
            continue;
        if (!have_cols) {
            if (obs_csv_columns_init(&cols, fields, n, err, sizeof err) != 0)
                break;
            have_cols = true;
            continue;
        }
        struct observation o;
        if (obs_csv_map(&cols, fields, n, &o, err, sizeof err) == 0)
            roundtrip(&o);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    struct observation o;
    long calls = 0;
    const char *text = (const char *)data;

    long n = fhir_parse(text, size, NULL, sink, &calls, err, sizeof err);
    if (n != -1 && n != calls)
        abort(); /* the count returned is the number of sink calls */
    if (fhir_map_observation(text, size, NULL, &o, err, sizeof err) == 0)
        roundtrip(&o);
    if (obs_json_parse(text, size, &o, err, sizeof err) == 0)
        roundtrip(&o);
    fuzz_csv(data, size);
    return 0;
}
