/* hospital/obs_json and hospital/obs_input: NDJSON and CSV records to struct
 * observation, with precise reasons and line numbers. No services. */
#include <stdio.h>
#include <string.h>

#include "obs_input.h"
#include "obs_json.h"
#include "testlib.h"

static const char *good =
    "{\"observation_id\":\"OBS-1\",\"study_id\":\"STUDY-001\",\"site_id\":\"SITE-101\","
    "\"subject_id\":\"S-101-0001\",\"loinc\":\"2823-3\",\"value\":6.8,\"unit\":\"mmol/L\","
    "\"ref_low\":3.5,\"ref_high\":5.1,\"effective_time\":\"2025-01-06T08:30:00.123+01:00\","
    "\"issued_time\":1736152200000,\"status\":\"entered-in-error\",\"visit\":\"C1D1\"}";

/* Reads every record of TEXT as NAME; writes "R" per record and "E" per
 * invalid one into SHAPE, and keeps the last error. */
struct run {
    char shape[64];
    char last_err[1024];
    struct observation obs[16];
    int nobs;
    enum obs_input_status end;
};

static void read_all(const char *name, const char *text, enum obs_format fmt, struct run *r)
{
    memset(r, 0, sizeof *r);
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    struct obs_input *in = obs_input_new(f, name, fmt, NULL);
    char err[1024];
    struct observation o;
    for (size_t i = 0; i + 1 < sizeof r->shape; i++) {
        enum obs_input_status st = obs_input_next(in, &o, err, sizeof err);
        if (st == OBS_INPUT_RECORD) {
            r->shape[i] = 'R';
            if (r->nobs < 16)
                r->obs[r->nobs++] = o;
        } else if (st == OBS_INPUT_INVALID) {
            r->shape[i] = 'E';
            snprintf(r->last_err, sizeof r->last_err, "%s", err);
        } else {
            r->end = st;
            if (st == OBS_INPUT_ERROR)
                snprintf(r->last_err, sizeof r->last_err, "%s", err);
            break;
        }
    }
    obs_input_destroy(in);
    fclose(f);
}

static void test_times(void)
{
    char err[256];
    int64_t ms = 0;
    CHECK_EQ_INT(obs_time_parse("2025-01-06T00:00:00Z", false, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736121600000LL);
    CHECK_EQ_INT(obs_time_parse("2025-01-06T08:30:00.123+01:00", false, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736121600000LL + 7 * 3600000LL + 30 * 60000LL + 123);
    CHECK_EQ_INT(obs_time_parse("1736121600000", false, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(ms, 1736121600000LL);
    CHECK_EQ_INT(obs_time_parse("2024-02-29", true, &ms, err, sizeof err), 0);
    CHECK_EQ_INT(obs_time_parse("2024-02-29", false, &ms, err, sizeof err), -1);
    CHECK(strstr(err, "no time of day") != NULL);
    CHECK_EQ_INT(obs_time_parse("2025-02-29T00:00:00Z", false, &ms, err, sizeof err), -1);
    CHECK(strstr(err, "no such date") != NULL);
    CHECK_EQ_INT(obs_time_parse("2025-01-06T08:30:00", false, &ms, err, sizeof err), -1);
    CHECK(strstr(err, "no time zone") != NULL);
    CHECK_EQ_INT(obs_time_parse("yesterday", false, &ms, err, sizeof err), -1);
    CHECK(strstr(err, "not RFC 3339") != NULL);
    char buf[32];
    CHECK_EQ_STR(obs_time_format(1736121600123LL, buf, sizeof buf), "2025-01-06T00:00:00.123Z");
}

static void test_ndjson(void)
{
    struct observation o;
    char err[512];
    CHECK_EQ_INT(obs_json_parse(good, strlen(good), &o, err, sizeof err), 0);
    CHECK_EQ_STR(o.observation_id, "OBS-1");
    CHECK_EQ_STR(o.subject_id, "S-101-0001");
    CHECK_EQ_STR(o.loinc, "2823-3");
    CHECK(o.has_value && o.value == 6.8);
    CHECK(o.has_ref_low && o.ref_low == 3.5 && o.has_ref_high && o.ref_high == 5.1);
    CHECK_EQ_INT(o.effective_ms, 1736148600123LL); /* 08:30+01:00 is 07:30Z */
    CHECK_EQ_INT(o.issued_ms, 1736152200000LL);
    CHECK_EQ_INT(o.status, OBS_ENTERED_IN_ERROR);
    CHECK_EQ_STR(o.visit, "C1D1");

    /* Round trip through the formatter. */
    char line[OBS_JSON_MAX];
    size_t n = obs_json_format(&o, line, sizeof line);
    CHECK(n > 0);
    struct observation back;
    CHECK_EQ_INT(obs_json_parse(line, n, &back, err, sizeof err), 0);
    CHECK(memcmp(&o, &back, sizeof o) == 0);

    const char *nullv = "{\"observation_id\":\"a\",\"study_id\":\"s\",\"site_id\":\"x\","
                        "\"subject_id\":\"p\",\"loinc\":\"2823-3\",\"value\":null,"
                        "\"effective_time\":0,\"status\":\"cancelled\"}";
    CHECK_EQ_INT(obs_json_parse(nullv, strlen(nullv), &o, err, sizeof err), 0);
    CHECK(!o.has_value && o.unit[0] == '\0' && o.issued_ms == 0);

    struct {
        const char *text;
        const char *reason;
    } bad[] = {
        {"{\"observation_id\":\"a\",\"study_id\":\"s\",\"site_id\":\"x\",\"loinc\":\"1\","
         "\"effective_time\":0,\"status\":\"final\"}",
         "missing field subject_id"},
        {"{\"observation_id\":\"a\",\"study_id\":\"s\",\"site_id\":\"x\",\"subject_id\":\"p\","
         "\"loinc\":\"1\",\"value\":\"4.2\",\"effective_time\":0,\"status\":\"final\"}",
         "value must be a number or null, not a string"},
        {"{\"observation_id\":\"a\",\"study_id\":\"s\",\"site_id\":\"x\",\"subject_id\":\"p\","
         "\"loinc\":\"1\",\"effective_time\":\"2025-13-01T00:00:00Z\",\"status\":\"final\"}",
         "effective_time: time '2025-13-01T00:00:00Z' has no such date"},
        {"{\"observation_id\":\"a\",\"study_id\":\"s\",\"site_id\":\"x\",\"subject_id\":\"p\","
         "\"loinc\":\"1\",\"effective_time\":0,\"status\":\"preliminary\"}",
         "status 'preliminary' is not"},
        {"{\"observation_id\":\"0123456789012345678901234567890123456789012345678901234567890"
         "1234\",\"study_id\":\"s\",\"site_id\":\"x\",\"subject_id\":\"p\",\"loinc\":\"1\","
         "\"effective_time\":0,\"status\":\"final\"}",
         "observation_id is 65 bytes, longer than 64"},
        {"{\"observation_id\":\"a\"", "not JSON:"},
        {"[1,2]", "must be a JSON object, not an array"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = obs_json_parse(bad[i].text, strlen(bad[i].text), &o, err, sizeof err);
        CHECK_EQ_INT(rc, -1);
        if (strstr(err, bad[i].reason) == NULL)
            fprintf(stderr, "case %zu: got '%s', want '%s'\n", i, err, bad[i].reason);
        CHECK(strstr(err, bad[i].reason) != NULL);
    }
}

static void test_ndjson_lines(void)
{
    char text[4096];
    snprintf(text, sizeof text,
             "%s\n\n{\"observation_id\":\"b\"}\n%s\r\nnot json\n", good, good);
    struct run r;
    read_all("in.ndjson", text, OBS_FORMAT_AUTO, &r);
    CHECK_EQ_STR(r.shape, "RERE");
    CHECK_EQ_STR(r.last_err, "in.ndjson:5: not JSON: '[' or '{' expected near 'not' (column 3)");
    CHECK_EQ_INT(r.end, OBS_INPUT_EOF);
    /* The error on line 3 (after a blank line) names its line. */
    read_all("x", "{\"observation_id\":\"b\"}\n", OBS_FORMAT_NDJSON, &r);
    CHECK_EQ_STR(r.last_err, "x:1: missing field study_id");
}

static const char *csv_header =
    "observation_id,study_id,site_id,subject_id,loinc,value,unit,ref_low,ref_high,"
    "effective_time,issued_time,status,visit,comment\n";

static void test_csv(void)
{
    char text[4096];
    snprintf(text, sizeof text,
             "%s"
             "OBS-1,STUDY-001,SITE-101,S-101-0001,2823-3,4.2,mmol/L,3.5,5.1,"
             "2025-01-06T08:30:00Z,,final,\"C1D1, morning\",ok\n"
             "OBS-2,STUDY-001,SITE-101,S-101-0001,2345-7,,mg/dL,,,1736152200000,,cancelled,"
             "\"W2\",\"a \"\"quoted\"\"\nmulti-line comment\"\n"
             "OBS-3,STUDY-001,SITE-101,S-101-0001,2345-7,abc,mg/dL,,,1736152200000,,final,,\n"
             "OBS-4,STUDY-001,SITE-101,,2345-7,1,mg/dL,,,1736152200000,,final,,\n"
             "OBS-5,STUDY-001,SITE-101,S-1,2345-7,1,mg/dL,,,1736152200000,,final,,\"x\"y\n"
             "OBS-6,STUDY-001,SITE-101,S-1,2345-7,1,mg/dL,,,2025-01-06,,final,,\n"
             "OBS-7,STUDY-001\n"
             "OBS-8,STUDY-001,SITE-101,S-1,2345-7,1,mg/dL,,,1736152200000,,final,,\"never closed\n",
             csv_header);
    struct run r;
    read_all("export.csv", text, OBS_FORMAT_AUTO, &r);
    CHECK_EQ_STR(r.shape, "RREEEEEE");
    CHECK_EQ_INT(r.nobs, 2);
    CHECK_EQ_STR(r.obs[0].visit, "C1D1, morning");
    CHECK(r.obs[0].has_value && r.obs[0].value == 4.2 && r.obs[0].issued_ms == 0);
    CHECK_EQ_INT(r.obs[0].effective_ms, 1736152200000LL);
    CHECK(!r.obs[1].has_value && !r.obs[1].has_ref_low);
    CHECK_EQ_INT(r.obs[1].status, OBS_CANCELLED);
    CHECK_EQ_STR(r.last_err, "export.csv:10: unterminated quoted field (the file ends inside it)");

    /* Each error with the line its record starts on: record 2 spans lines
     * 3-4, so record 3 is on line 5. */
    const char *want[] = {
        "export.csv:5: value 'abc' is not a number",
        "export.csv:6: missing field subject_id",
        "export.csv:7: field 14: text after the closing quote",
        ("export.csv:8: effective_time: time '2025-01-06' has no time of day (RFC 3339 date-time "
         "wanted)"),
        "export.csv:9: 2 fields, the header has 14",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        /* Re-read with only lines up to the error, to see each message. */
        char part[4096];
        const char *p = text;
        long line = 0;
        long stop = 0;
        sscanf(want[i] + strlen("export.csv:"), "%ld", &stop);
        while (*p && line < stop) {
            const char *nl = strchr(p, '\n');
            line++;
            p = nl ? nl + 1 : p + strlen(p);
        }
        snprintf(part, sizeof part, "%.*s", (int)(p - text), text);
        read_all("export.csv", part, OBS_FORMAT_CSV, &r);
        if (strcmp(r.last_err, want[i]) != 0)
            fprintf(stderr, "got '%s'\n", r.last_err);
        CHECK_EQ_STR(r.last_err, want[i]);
    }

    /* A header without a required column stops the file. */
    read_all("h.csv", "observation_id,study_id\nA,B\n", OBS_FORMAT_CSV, &r);
    CHECK_EQ_INT(r.end, OBS_INPUT_ERROR);
    CHECK_EQ_STR(r.last_err, "h.csv:1: CSV header has no column site_id");

    /* A stray quote in an unquoted field, and Latin-1 bytes. */
    snprintf(text, sizeof text,
             "%sOBS-1,STUDY-001,SITE-101,S-1\"x,2823-3,4,mmol/L,,,0,,final,,\n"
             "OBS-2,STUDY-001,SITE-101,S-\xe9,2823-3,4,mmol/L,,,0,,final,,\n",
             csv_header);
    read_all("q.csv", text, OBS_FORMAT_CSV, &r);
    CHECK_EQ_STR(r.shape, "EE");
    CHECK_EQ_STR(r.last_err, "q.csv:3: subject_id is not valid UTF-8");
}

static void test_split_bounds(void)
{
    char rec[256], err[128];
    char *fields[OBS_CSV_MAX_FIELDS];
    memset(rec, ',', 100);
    CHECK_EQ_INT(obs_csv_split(rec, 100, fields, err, sizeof err), -1);
    CHECK(strstr(err, "more than 64 fields") != NULL);
    snprintf(rec, sizeof rec, "a,\"b,c\",\"\"\"\"");
    CHECK_EQ_INT(obs_csv_split(rec, strlen(rec), fields, err, sizeof err), 3);
    CHECK_EQ_STR(fields[1], "b,c");
    CHECK_EQ_STR(fields[2], "\"");
    CHECK(obs_csv_open_quote("a,\"b", 4));
    CHECK(!obs_csv_open_quote("a,\"b\"", 5));
}

int main(void)
{
    test_times();
    test_ndjson();
    test_ndjson_lines();
    test_csv();
    test_split_bounds();
    return testlib_done();
}
