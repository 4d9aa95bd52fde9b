/* hospital/fhir (and FHIR input through hospital/obs_input): FHIR R4
 * Observation resources and Bundles, written after the shapes of the FHIR
 * R4 Observation examples, map to the expected record or a clear error. */
#include <stdio.h>
#include <string.h>

#include "fhir.h"
#include "obs_input.h"
#include "proctcae.h"
#include "testlib.h"

#define STUDY_EXT                                                                     \
    "{\"url\":\"https://vigil.example/fhir/StructureDefinition/study\",\"valueString\":" \
    "\"STUDY-001\"}"
#define SITE_EXT                                                                     \
    "{\"url\":\"https://vigil.example/fhir/StructureDefinition/site\",\"valueString\":" \
    "\"SITE-101\"}"

/* After the R4 example "Observation/f001" (glucose), moved to potassium. */
static const char *potassium =
    "{\"resourceType\":\"Observation\",\"id\":\"k-0001\","
    "\"meta\":{\"profile\":[\"http://hl7.org/fhir/StructureDefinition/vitalsigns\"]},"
    "\"extension\":[" STUDY_EXT "," SITE_EXT ","
    "{\"url\":\"https://vigil.example/fhir/StructureDefinition/visit\",\"valueString\":\"C1D1\"}],"
    "\"identifier\":[{\"use\":\"official\",\"system\":\"http://www.bmc.nl/zorgportal/"
    "identifiers/observations\",\"value\":\"6323\"}],"
    "\"status\":\"final\","
    "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
    "observation-category\",\"code\":\"laboratory\"}]}],"
    "\"code\":{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"88480006\"},"
    "{\"system\":\"http://loinc.org\",\"code\":\"2823-3\",\"display\":\"Potassium\"}]},"
    "\"subject\":{\"reference\":\"Patient/S-101-0001\"},"
    "\"effectiveDateTime\":\"2025-01-06T09:30:00+01:00\","
    "\"issued\":\"2025-01-06T10:00:00.000Z\","
    "\"performer\":[{\"reference\":\"Practitioner/f005\"}],"
    "\"valueQuantity\":{\"value\":6.8,\"unit\":\"mmol/l\",\"system\":\"http://unitsofmeasure."
    "org\",\"code\":\"mmol/L\"},"
    "\"interpretation\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/"
    "v3-ObservationInterpretation\",\"code\":\"HH\"}]}],"
    "\"referenceRange\":[{\"low\":{\"value\":3.5,\"unit\":\"mmol/l\",\"system\":\"http://"
    "unitsofmeasure.org\",\"code\":\"mmol/L\"},\"high\":{\"value\":5.1,\"unit\":\"mmol/l\","
    "\"system\":\"http://unitsofmeasure.org\",\"code\":\"mmol/L\"}}]}";

static void test_single(void)
{
    struct observation o;
    char err[512];
    int rc = fhir_map_observation(potassium, strlen(potassium), NULL, &o, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(o.observation_id, "k-0001");
    CHECK_EQ_STR(o.study_id, "STUDY-001");
    CHECK_EQ_STR(o.site_id, "SITE-101");
    CHECK_EQ_STR(o.subject_id, "S-101-0001");
    CHECK_EQ_STR(o.loinc, "2823-3");
    CHECK(o.has_value && o.value == 6.8);
    CHECK_EQ_STR(o.unit, "mmol/L"); /* the UCUM code, not the display "mmol/l" */
    CHECK(o.has_ref_low && o.ref_low == 3.5 && o.has_ref_high && o.ref_high == 5.1);
    CHECK_EQ_INT(o.effective_ms, 1736152200000LL); /* 08:30Z */
    CHECK_EQ_INT(o.issued_ms, 1736157600000LL);
    CHECK_EQ_INT(o.status, OBS_FINAL);
    CHECK_EQ_STR(o.visit, "C1D1");
}

/* A resource with the given value, status and extras, study/site as
 * extensions. */
static int map(const char *value, const char *extra, struct observation *o, char *err,
               size_t errsz)
{
    char text[4096];
    snprintf(text, sizeof text,
             "{\"resourceType\":\"Observation\",\"id\":\"g1\",\"extension\":[" STUDY_EXT
             "," SITE_EXT "],\"status\":\"final\",\"code\":{\"coding\":[{\"system\":"
             "\"http://loinc.org\",\"code\":\"2345-7\"}]},\"subject\":{\"reference\":"
             "\"Patient/S-1\"},\"effectiveDateTime\":\"2025-01-06\"%s%s%s}",
             value[0] ? "," : "", value, extra);
    return fhir_map_observation(text, strlen(text), NULL, o, err, errsz);
}

static void test_units(void)
{
    struct observation o;
    char err[512];
    CHECK_EQ_INT(map("\"valueQuantity\":{\"value\":95,\"unit\":\"mg/dL\",\"system\":"
                     "\"http://unitsofmeasure.org\",\"code\":\"mg/dL\"}",
                     "", &o, err, sizeof err),
                 0);
    CHECK_EQ_STR(o.unit, "mg/dL");
    CHECK(o.value == 95 && !o.has_ref_low && !o.has_ref_high && o.issued_ms == 0);
    CHECK_EQ_INT(o.effective_ms, 1736121600000LL); /* date only: midnight UTC */
    /* Only a display unit. */
    CHECK_EQ_INT(map("\"valueQuantity\":{\"value\":5.3,\"unit\":\"mmol/L\"}", "", &o, err,
                     sizeof err),
                 0);
    CHECK_EQ_STR(o.unit, "mmol/L");
    /* A code from another system is not UCUM: the display unit is used. */
    CHECK_EQ_INT(map("\"valueQuantity\":{\"value\":5.3,\"unit\":\"mmol/L\",\"system\":"
                     "\"http://example.org/units\",\"code\":\"MMOLL\"}",
                     "", &o, err, sizeof err),
                 0);
    CHECK_EQ_STR(o.unit, "mmol/L");
    /* A UCUM code with no system given. */
    CHECK_EQ_INT(map("\"valueQuantity\":{\"value\":5.3,\"code\":\"mmol/L\"}", "", &o, err,
                     sizeof err),
                 0);
    CHECK_EQ_STR(o.unit, "mmol/L");
}

static void test_errors(void)
{
    struct observation o;
    char err[512];
    struct {
        const char *value, *extra, *reason;
    } cases[] = {
        {"", "", "no valueQuantity (and no dataAbsentReason)"},
        {"\"valueString\":\"positive\"", "", "valueString is not supported"},
        {"\"valueQuantity\":{\"value\":\"5.3\",\"code\":\"mmol/L\"}", "",
         "valueQuantity.value is not a number"},
        {"\"valueQuantity\":{\"value\":5.3}", "", "neither a UCUM code nor a unit"},
        {"\"valueQuantity\":{\"value\":5,\"code\":\"mmol/L\"}",
         ",\"issued\":\"2025-01-06\"", "issued: time '2025-01-06' has no time of day"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(map(cases[i].value, cases[i].extra, &o, err, sizeof err), -1);
        if (strstr(err, cases[i].reason) == NULL)
            fprintf(stderr, "case %zu: got '%s'\n", i, err);
        CHECK(strstr(err, cases[i].reason) != NULL);
    }
    /* dataAbsentReason: no value, no error. */
    CHECK_EQ_INT(map("", ",\"dataAbsentReason\":{\"text\":\"haemolysed\"}", &o, err, sizeof err),
                 0);
    CHECK(!o.has_value);

    struct {
        const char *text, *reason;
    } whole[] = {
        {"{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"preliminary\"}",
         "status 'preliminary' is not one vigil accepts"},
        {"{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"final\",\"code\":"
         "{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"1\"}]}}",
         "code.coding has no code with system http://loinc.org"},
        {"{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"final\",\"code\":"
         "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2823-3\"}]}}",
         "no subject.reference"},
        {"{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"final\",\"code\":"
         "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2823-3\"}]},\"subject\":"
         "{\"reference\":\"Group/g1\"}}",
         "subject.reference 'Group/g1' is not a Patient reference"},
        {"{\"resourceType\":\"Observation\",\"id\":\"a\",\"status\":\"final\",\"code\":"
         "{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"2823-3\"}]},\"subject\":"
         "{\"reference\":\"Patient/p\"}}",
         "no study: neither an extension with url "
         "https://vigil.example/fhir/StructureDefinition/study"},
        {"{\"resourceType\":\"Observation\",\"status\":\"final\"}",
         "no id (and no urn:uuid fullUrl)"},
        {"{\"resourceType\":\"Patient\",\"id\":\"p\"}", "resourceType is 'Patient'"},
    };
    for (size_t i = 0; i < sizeof whole / sizeof whole[0]; i++) {
        CHECK_EQ_INT(fhir_map_observation(whole[i].text, strlen(whole[i].text), NULL, &o, err,
                                          sizeof err),
                     -1);
        if (strstr(err, whole[i].reason) == NULL)
            fprintf(stderr, "whole %zu: got '%s'\n", i, err);
        CHECK(strstr(err, whole[i].reason) != NULL);
    }
}

static void test_identifiers(void)
{
    const char *text =
        "{\"resourceType\":\"Observation\",\"id\":\"h1\",\"identifier\":["
        "{\"system\":\"urn:oid:1.2.3.study\",\"value\":\"ONC-7\"},"
        "{\"system\":\"urn:oid:1.2.3.site\",\"value\":\"AMS-2\"}],"
        "\"status\":\"amended\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\","
        "\"code\":\"718-7\"}]},\"subject\":{\"reference\":\"https://ehr.example/fhir/Patient/"
        "P-9/_history/3\"},\"effectiveDateTime\":\"2025-03-01T07:00:00Z\","
        "\"valueQuantity\":{\"value\":7.4,\"unit\":\"mmol/L\",\"system\":"
        "\"http://unitsofmeasure.org\",\"code\":\"mmol/L\"}}";
    struct fhir_options opt = {"urn:oid:1.2.3.study", "urn:oid:1.2.3.site"};
    struct observation o;
    char err[512];
    CHECK_EQ_INT(fhir_map_observation(text, strlen(text), &opt, &o, err, sizeof err), 0);
    CHECK_EQ_STR(o.study_id, "ONC-7");
    CHECK_EQ_STR(o.site_id, "AMS-2");
    CHECK_EQ_STR(o.subject_id, "P-9");
    CHECK_EQ_INT(o.status, OBS_AMENDED);
    /* With the default URIs the same resource has no study. */
    CHECK_EQ_INT(fhir_map_observation(text, strlen(text), NULL, &o, err, sizeof err), -1);
    CHECK(strstr(err, "no study") != NULL);
}

struct seen {
    int ok, bad;
    long entries[8];
    char errs[8][512];
};

static int sink(void *arg, long entry, const struct observation *obs, const char *err)
{
    struct seen *s = arg;
    int i = s->ok + s->bad;
    if (i < 8) {
        s->entries[i] = entry;
        snprintf(s->errs[i], sizeof s->errs[i], "%s", err ? err : "");
    }
    if (obs != NULL)
        s->ok++;
    else
        s->bad++;
    return 0;
}

static char bundle[16384];

static void make_bundle(void)
{
    /* A searchset Bundle, pretty-printed as servers return it: the
     * potassium result, one without a subject, a Patient, and a
     * transaction-style entry with only a urn:uuid fullUrl. */
    snprintf(bundle, sizeof bundle,
             "{\n  \"resourceType\": \"Bundle\",\n  \"type\": \"searchset\",\n"
             "  \"entry\": [\n"
             "    {\"fullUrl\": \"https://ehr.example/fhir/Observation/k-0001\",\n"
             "     \"resource\": %s},\n"
             "    {\"resource\": {\"resourceType\": \"Observation\", \"id\": \"x\", "
             "\"status\": \"final\", \"code\": {\"coding\": [{\"system\": "
             "\"http://loinc.org\", \"code\": \"2823-3\"}]}}},\n"
             "    {\"resource\": {\"resourceType\": \"Patient\", \"id\": \"S-1\"}},\n"
             "    {\"fullUrl\": \"urn:uuid:7d9f1c1e-2c1b-4d3a-9c55-0f1e2d3c4b5a\",\n"
             "     \"resource\": {\"resourceType\": \"Observation\", \"extension\": [" STUDY_EXT
             "," SITE_EXT "], \"status\": \"cancelled\", \"code\": {\"coding\": [{\"system\": "
             "\"http://loinc.org\", \"code\": \"777-3\"}]}, \"subject\": {\"reference\": "
             "\"Patient/S-1\"}, \"effectiveDateTime\": \"2025-01-07T08:00:00Z\"}}\n"
             "  ]\n}\n",
             potassium);
}

static void test_bundle(void)
{
    struct seen s = {0};
    char err[512];
    long n = fhir_parse(bundle, strlen(bundle), NULL, sink, &s, err, sizeof err);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(s.ok, 2);
    CHECK_EQ_INT(s.bad, 2);
    CHECK_EQ_INT(s.entries[1], 1);
    CHECK(strstr(s.errs[1], "no subject.reference") != NULL);
    CHECK(strstr(s.errs[2], "resourceType is 'Patient', not Observation") != NULL);

    /* Through obs_input, as `vigil produce bundle.json` reads it. */
    FILE *f = fmemopen(bundle, strlen(bundle), "r");
    struct obs_input *in = obs_input_new(f, "bundle.json", OBS_FORMAT_AUTO, NULL);
    struct observation o;
    char e[1024];
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_RECORD);
    CHECK_EQ_STR(o.observation_id, "k-0001");
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_INVALID);
    CHECK_EQ_STR(e, "bundle.json: Bundle.entry[1]: no subject.reference");
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_INVALID);
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_RECORD);
    CHECK_EQ_STR(o.observation_id, "7d9f1c1e-2c1b-4d3a-9c55-0f1e2d3c4b5a");
    CHECK(!o.has_value && o.status == OBS_CANCELLED);
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_EOF);
    CHECK_EQ_INT(obs_input_records(in), 4);
    obs_input_destroy(in);
    fclose(f);
}

static void test_ndjson_resources(void)
{
    /* NDJSON of resources (FHIR bulk data): errors carry the line. */
    char text[8192];
    snprintf(text, sizeof text, "%s\n{\"resourceType\":\"Observation\",\"id\":\"y\"}\n%s\n",
             potassium, potassium);
    FILE *f = fmemopen(text, strlen(text), "r");
    struct obs_input *in = obs_input_new(f, "-", OBS_FORMAT_AUTO, NULL);
    struct observation o;
    char e[1024];
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_RECORD);
    CHECK_EQ_INT(obs_input_format(in), OBS_FORMAT_FHIR);
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_INVALID);
    CHECK_EQ_STR(e, "-:2: no status");
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_RECORD);
    CHECK_EQ_INT(obs_input_next(in, &o, e, sizeof e), OBS_INPUT_EOF);
    obs_input_destroy(in);
    fclose(f);
}

/* A PRO-CTCAE symptom report as an ePRO app sends it: grouped items, the
 * answers in each form FHIR allows, a free-text comment that must stay
 * behind, an unanswered item. */
static const char *report =
    "{\"resourceType\":\"QuestionnaireResponse\",\"id\":\"qr-77\","
    "\"meta\":{\"lastUpdated\":\"2025-02-03T08:05:00Z\"},"
    "\"extension\":[" STUDY_EXT "," SITE_EXT "],"
    "\"questionnaire\":\"https://vigil.example/fhir/Questionnaire/pro-ctcae-weekly\","
    "\"status\":\"completed\",\"subject\":{\"reference\":\"Patient/S-101-0007\"},"
    "\"authored\":\"2025-02-03T08:00:00Z\","
    "\"item\":[{\"linkId\":\"gi\",\"text\":\"Nausea\",\"item\":["
    "{\"linkId\":\"PRO-NAUSEA-FRQ\",\"answer\":[{\"valueCoding\":{\"display\":\"Almost "
    "constantly\"}}]},"
    "{\"linkId\":\"PRO-NAUSEA-SEV\",\"answer\":[{\"valueCoding\":{\"system\":\"" PROCTCAE_SYSTEM
    "\",\"code\":\"3\",\"display\":\"Severe\"}}]}]},"
    "{\"linkId\":\"PRO-FATIGUE-INT\",\"answer\":[{\"valueCoding\":{\"extension\":[{\"url\":"
    "\"http://hl7.org/fhir/StructureDefinition/ordinalValue\",\"valueDecimal\":2}],"
    "\"display\":\"Somewhat\"}}]},"
    "{\"linkId\":\"PRO-RASH-PRS\",\"answer\":[{\"valueBoolean\":true}]},"
    "{\"linkId\":\"PRO-PAIN-SEV\"},"
    "{\"linkId\":\"comments\",\"answer\":[{\"valueString\":\"felt awful on Monday\"}]},"
    "{\"linkId\":\"PRO-DIARRHEA-FRQ\",\"answer\":[{\"valueString\":\"often\"}]},"
    "{\"linkId\":\"PRO-SAD-SEV\",\"answer\":[{\"valueInteger\":1}]}]}";

struct items {
    int ok, bad;
    struct observation o[8];
    char err[4][512];
};

static int collect_items(void *arg, long entry, const struct observation *obs, const char *err)
{
    struct items *s = arg;
    if (obs != NULL && s->ok < 8)
        s->o[s->ok++] = *obs;
    else if (obs == NULL && s->bad < 4)
        snprintf(s->err[s->bad++], sizeof s->err[0], "%s", err);
    return 0;
}

static void test_questionnaire(void)
{
    struct items s;
    memset(&s, 0, sizeof s);
    char err[512];
    long n = fhir_parse(report, strlen(report), NULL, collect_items, &s, err, sizeof err);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(s.ok, 5);
    CHECK_EQ_INT(s.bad, 1);
    CHECK(strstr(s.err[0], "item PRO-DIARRHEA-FRQ: answer has no valueInteger") != NULL);
    static const struct {
        const char *id, *code;
        double score;
    } want[] = {{"qr-77/PRO-NAUSEA-FRQ", "PRO-NAUSEA-FRQ", 4},
                {"qr-77/PRO-NAUSEA-SEV", "PRO-NAUSEA-SEV", 3},
                {"qr-77/PRO-FATIGUE-INT", "PRO-FATIGUE-INT", 2},
                {"qr-77/PRO-RASH-PRS", "PRO-RASH-PRS", 1},
                {"qr-77/PRO-SAD-SEV", "PRO-SAD-SEV", 1}};
    for (int i = 0; i < 5 && i < s.ok; i++) {
        const struct observation *o = &s.o[i];
        CHECK_EQ_STR(o->observation_id, want[i].id);
        CHECK_EQ_STR(o->loinc, want[i].code);
        CHECK(o->has_value && o->value == want[i].score);
        CHECK_EQ_STR(o->unit, "{score}");
        CHECK(!o->has_ref_low && !o->has_ref_high);
        CHECK_EQ_STR(o->study_id, "STUDY-001");
        CHECK_EQ_STR(o->site_id, "SITE-101");
        CHECK_EQ_STR(o->subject_id, "S-101-0007");
        CHECK_EQ_INT(o->effective_ms, 1738569600000LL);
        CHECK_EQ_INT(o->issued_ms, 1738569900000LL);
        CHECK_EQ_INT(o->status, OBS_FINAL);
    }

    /* an amended report re-issues its items under the same ids; one
     * entered in error withdraws them (no answer needed); in progress is
     * not a report */
    char text[8192];
    const char *p = strstr(report, "\"completed\"");
    snprintf(text, sizeof text, "%.*s\"entered-in-error\"%s", (int)(p - report), report,
             p + strlen("\"completed\""));
    memset(&s, 0, sizeof s);
    fhir_parse(text, strlen(text), NULL, collect_items, &s, err, sizeof err);
    CHECK_EQ_INT(s.ok, 6);
    CHECK(s.o[0].status == OBS_ENTERED_IN_ERROR && !s.o[0].has_value);
    snprintf(text, sizeof text, "%.*s\"in-progress\"%s", (int)(p - report), report,
             p + strlen("\"completed\""));
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(fhir_parse(text, strlen(text), NULL, collect_items, &s, err, sizeof err), 1);
    CHECK(strstr(s.err[0], "status 'in-progress' is not a submitted report") != NULL);

    /* no symptom item at all */
    const char *none = "{\"resourceType\":\"QuestionnaireResponse\",\"id\":\"q\","
                       "\"extension\":[" STUDY_EXT "," SITE_EXT "],\"status\":\"completed\","
                       "\"subject\":{\"reference\":\"Patient/S-1\"},\"authored\":\"2025-02-03\","
                       "\"item\":[{\"linkId\":\"q1\",\"answer\":[{\"valueInteger\":3}]}]}";
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(fhir_parse(none, strlen(none), NULL, collect_items, &s, err, sizeof err), 1);
    CHECK(strstr(s.err[0], "no answered PRO-CTCAE item") != NULL);

    /* in a Bundle beside an Observation, through obs_input */
    snprintf(text, sizeof text,
             "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
             "{\"resource\":%s},{\"resource\":%s}]}",
             potassium, report);
    FILE *f = fmemopen(text, strlen(text), "r");
    struct obs_input *in = obs_input_new(f, "epro.json", OBS_FORMAT_AUTO, NULL);
    struct observation o;
    char e[1024];
    int records = 0, invalid = 0;
    enum obs_input_status st;
    while ((st = obs_input_next(in, &o, e, sizeof e)) != OBS_INPUT_EOF && st != OBS_INPUT_ERROR) {
        records += st == OBS_INPUT_RECORD;
        invalid += st == OBS_INPUT_INVALID;
    }
    CHECK_EQ_INT(records, 6);
    CHECK_EQ_INT(invalid, 1);
    obs_input_destroy(in);
    fclose(f);
}

int main(void)
{
    test_single();
    test_units();
    test_errors();
    test_identifiers();
    make_bundle();
    test_bundle();
    test_ndjson_resources();
    test_questionnaire();
    return testlib_done();
}
