/*
 * Rules file parsing and validation: the documented format parses, every
 * class of mistake is reported at the right file:line:column, and the
 * limits hold. A set is built only when the whole file is valid.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rules.h"
#include "testlib.h"

static const char example[] =
    "version: 1\n"
    "rules:\n"
    "  - id: potassium-critical-high      # unique\n"
    "    version: 1\n"
    "    kind: threshold\n"
    "    loinc: \"2823-3\"\n"
    "    op: \">=\"\n"
    "    value: 6.5\n"
    "    unit: mmol/L\n"
    "    severity: critical\n"
    "  - id: alt-5x-uln\n"
    "    version: 1\n"
    "    kind: ref_multiple\n"
    "    loinc: \"1742-6\"\n"
    "    bound: high\n"
    "    multiple: 5\n"
    "    severity: warning\n"
    "  - id: ctcae\n"
    "    version: 1\n"
    "    kind: ctcae\n"
    "    min_grade: 2\n"
    "    loincs: [\"1742-6\", \"2823-3\"]\n"
    "    severity_by_grade: {1: info, 2: warning, 3: critical, 4: critical}\n"
    "  - id: creatinine-rise\n"
    "    version: 1\n"
    "    kind: baseline_change\n"
    "    loinc: \"2160-0\"\n"
    "    ratio: 1.5\n"
    "    # delta: 26.5\n"
    "    severity: warning\n"
    "  - id: hys-law\n"
    "    version: 1\n"
    "    kind: hys_law\n"
    "    window_days: 30\n"
    "    severity: critical\n";

/* Parses TEXT expecting failure whose message starts with PREFIX. */
static void expect_error(int line, const char *text, const char *prefix)
{
    char err[2048];
    struct rules *r = rules_parse(text, strlen(text), "t.yaml", err, sizeof err);
    bool ok = r == NULL && strncmp(err, prefix, strlen(prefix)) == 0;
    testlib_checkf(ok, __FILE__, line, "expected error starting\n    %s\n  got %s\n    %s", prefix,
                   r ? "a rule set, error" : "", err);
    rules_destroy(r);
}
#define EXPECT_ERROR(text, prefix) expect_error(__LINE__, text, prefix)

/* A one-rule file: the rule body is indented by 4 and starts on line 3. */
#define HEAD "version: 1\nrules:\n"

static void test_example(void)
{
    char err[1024] = "";
    struct rules *r = rules_parse(example, strlen(example), "example.yaml", err, sizeof err);
    CHECK(r != NULL);
    if (r == NULL) {
        fprintf(stderr, "%s\n", err);
        return;
    }
    CHECK_EQ_INT(rules_count(r), 5);
    CHECK_EQ_STR(rules_id(r, 0), "potassium-critical-high");
    CHECK_EQ_STR(rules_id(r, 4), "hys-law");
    CHECK_EQ_INT(rules_max_alerts(r), 4 + RULES_HYS_PAIRS_MAX);
    CHECK_EQ_STR(err, "");
    rules_destroy(r);
    rules_destroy(NULL);

    /* The defaults: ctcae without loincs/severity_by_grade, hys_law without
     * a window, baseline_change with delta only, an empty rule list. */
    const char *minimal = HEAD "  - {id: c, version: 1, kind: ctcae, min_grade: 3}\n"
                               "  - {id: h, version: 2, kind: hys_law, severity: critical}\n"
                               "  - {id: d, version: 1, kind: baseline_change, loinc: \"2160-0\","
                               " delta: -26.5, severity: info}\n";
    r = rules_parse(minimal, strlen(minimal), "m.yaml", err, sizeof err);
    CHECK(r != NULL);
    CHECK(r != NULL && rules_count(r) == 3);
    rules_destroy(r);
    const char *empty = "version: 1\nrules: []\n";
    r = rules_parse(empty, strlen(empty), "e.yaml", err, sizeof err);
    CHECK(r != NULL && rules_count(r) == 0);
    rules_destroy(r);
}

static void test_errors(void)
{
    /* Unknown kind: at the value. */
    EXPECT_ERROR(HEAD "  - id: alt-5x-uln\n"
                      "    version: 1\n"
                      "    kind: ref_mult\n",
                 "t.yaml:5:11: rule \"alt-5x-uln\": unknown kind \"ref_mult\"");
    /* Unknown key: at the key. */
    EXPECT_ERROR(HEAD "  - id: a\n"
                      "    version: 1\n"
                      "    kind: hys_law\n"
                      "    severity: critical\n"
                      "    colour: red\n",
                 "t.yaml:7:5: rule \"a\": unknown key \"colour\"");
    /* A key of another kind is as unknown. */
    EXPECT_ERROR(HEAD "  - id: a\n"
                      "    version: 1\n"
                      "    kind: ctcae\n"
                      "    min_grade: 2\n"
                      "    op: \">\"\n",
                 "t.yaml:7:5: rule \"a\": key \"op\" does not apply to kind \"ctcae\"");
    /* Duplicate key inside a rule. */
    EXPECT_ERROR(HEAD "  - id: a\n"
                      "    version: 1\n"
                      "    version: 2\n",
                 "t.yaml:5:5: rule \"a\": duplicate key \"version\"");
    /* Duplicate rule id: at the second rule. */
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: hys_law, severity: critical}\n"
                      "  - {id: b, version: 1, kind: hys_law, severity: critical}\n"
                      "  - {id: a, version: 1, kind: ctcae, min_grade: 2}\n",
                 "t.yaml:5:5: duplicate rule id \"a\" (first at line 3)");
    /* Missing required key: at the rule. */
    EXPECT_ERROR(HEAD "  - id: k\n"
                      "    version: 1\n"
                      "    kind: threshold\n"
                      "    op: \">\"\n"
                      "    value: 6\n"
                      "    unit: mmol/L\n"
                      "    severity: info\n",
                 "t.yaml:3:5: rule \"k\": missing required key \"loinc\"");
    EXPECT_ERROR(HEAD "  - version: 1\n"
                      "    kind: hys_law\n"
                      "    severity: info\n",
                 "t.yaml:3:5: rule #1: missing required key \"id\"");
    /* Wrong types. */
    EXPECT_ERROR(HEAD "  - id: k\n"
                      "    version: 1\n"
                      "    kind: threshold\n"
                      "    loinc: \"2823-3\"\n"
                      "    op: \">\"\n"
                      "    value: high\n"
                      "    unit: mmol/L\n"
                      "    severity: info\n",
                 "t.yaml:8:12: rule \"k\": \"value\" must be a number, got \"high\"");
    EXPECT_ERROR(HEAD "  - {id: k, version: 1, kind: threshold, loinc: \"2823-3\", op: \">\","
                      " value: \"6.5\", unit: mmol/L, severity: info}\n",
                 "t.yaml:3:75: rule \"k\": \"value\" must be a number, got \"6.5\"");
    EXPECT_ERROR(HEAD "  - {id: k, version: 1.5, kind: hys_law, severity: info}\n",
                 "t.yaml:3:22: rule \"k\": \"version\" must be an integer from 1 to");
    EXPECT_ERROR(HEAD "  - {id: k, version: 0, kind: hys_law, severity: info}\n",
                 "t.yaml:3:22: rule \"k\": \"version\" must be an integer from 1 to");
    EXPECT_ERROR(HEAD "  - {id: [k], version: 1, kind: hys_law, severity: info}\n",
                 "t.yaml:3:10: rule #1: \"id\" must be a string");
    EXPECT_ERROR(HEAD "  - {id: Big_Id, version: 1, kind: hys_law, severity: info}\n",
                 "t.yaml:3:10: rule #1: \"id\" must be 1 to 64 characters");
    EXPECT_ERROR(HEAD "  - {id: k, version: 1, kind: hys_law, severity: urgent}\n",
                 "t.yaml:3:50: rule \"k\": unknown severity \"urgent\"");
    /* Bad op. */
    EXPECT_ERROR(HEAD "  - id: k\n"
                      "    version: 1\n"
                      "    kind: threshold\n"
                      "    loinc: \"2823-3\"\n"
                      "    op: \"=>\"\n"
                      "    value: 6.5\n"
                      "    unit: mmol/L\n"
                      "    severity: info\n",
                 "t.yaml:7:9: rule \"k\": unknown op \"=>\"");
    /* Negative multiple. */
    EXPECT_ERROR(HEAD "  - id: m\n"
                      "    version: 1\n"
                      "    kind: ref_multiple\n"
                      "    loinc: \"1742-6\"\n"
                      "    bound: high\n"
                      "    multiple: -5\n"
                      "    severity: warning\n",
                 "t.yaml:8:15: rule \"m\": \"multiple\" must be a positive number, got -5");
    EXPECT_ERROR(HEAD "  - {id: m, version: 1, kind: ref_multiple, loinc: \"1742-6\", bound: up,"
                      " multiple: 5, severity: info}\n",
                 "t.yaml:3:69: rule \"m\": \"bound\" must be high or low");
    /* Unit mismatch, unknown LOINC. */
    EXPECT_ERROR(HEAD "  - id: k\n"
                      "    version: 1\n"
                      "    kind: threshold\n"
                      "    loinc: \"2823-3\"\n"
                      "    op: \">=\"\n"
                      "    value: 6.5\n"
                      "    unit: mg/dL\n"
                      "    severity: info\n",
                 "t.yaml:9:11: rule \"k\": unit \"mg/dL\" is not the canonical unit \"mmol/L\" "
                 "of LOINC 2823-3");
    EXPECT_ERROR(HEAD "  - {id: k, version: 1, kind: baseline_change, loinc: \"9999-9\","
                      " ratio: 2, severity: info}\n",
                 "t.yaml:3:55: rule \"k\": unknown LOINC \"9999-9\" (not in the cleaning table)");
    /* Kind-specific values. */
    EXPECT_ERROR(HEAD "  - {id: c, version: 1, kind: ctcae, min_grade: 5}\n",
                 "t.yaml:3:49: rule \"c\": \"min_grade\" must be an integer from 1 to 4");
    EXPECT_ERROR(HEAD "  - {id: c, version: 1, kind: ctcae, min_grade: 2, loincs: [\"1742-6\","
                      " \"1234-5\"]}\n",
                 "t.yaml:3:71: rule \"c\": LOINC \"1234-5\" is not graded by CTCAE");
    EXPECT_ERROR(HEAD "  - {id: c, version: 1, kind: ctcae, min_grade: 2,"
                      " severity_by_grade: {5: info}}\n",
                 "t.yaml:3:72: rule \"c\": \"severity_by_grade\" must be an integer from 1 to 4");
    EXPECT_ERROR(HEAD "  - {id: b, version: 1, kind: baseline_change, loinc: \"2160-0\","
                      " severity: info}\n",
                 "t.yaml:3:5: rule \"b\": kind \"baseline_change\" needs \"ratio\" or \"delta\"");
    EXPECT_ERROR(HEAD "  - {id: b, version: 1, kind: baseline_change, loinc: \"2160-0\","
                      " ratio: -1.5, severity: info}\n",
                 "t.yaml:3:72: rule \"b\": \"ratio\" must be a positive number other than 1");
    EXPECT_ERROR(HEAD "  - {id: h, version: 1, kind: hys_law, severity: info, window_days: 0}\n",
                 "t.yaml:3:69: rule \"h\": \"window_days\" must be more than 0");
    /* File version missing or not 1; unknown top-level key; no rules. */
    EXPECT_ERROR("rules: []\n", "t.yaml:1:1: missing required key \"version\"");
    EXPECT_ERROR("version: 2\nrules: []\n",
                 "t.yaml:1:10: unsupported rules file version \"2\" (this build reads version 1)");
    EXPECT_ERROR("version: 1\nrules: []\nextra: 1\n", "t.yaml:3:1: unknown key \"extra\"");
    EXPECT_ERROR("version: 1\n", "t.yaml:1:1: missing required key \"rules\"");
    EXPECT_ERROR("version: 1\nrules: {}\n", "t.yaml:2:8: \"rules\" must be a list of rules");
    EXPECT_ERROR("", "t.yaml:1:1: empty rules file");
    EXPECT_ERROR("- 1\n", "t.yaml:1:1: a rules file must be a mapping");
    EXPECT_ERROR("version: 1\nrules: []\n---\nversion: 1\nrules: []\n",
                 "t.yaml:4:1: more than one YAML document");
    /* Not YAML at all: libyaml's own position and words. */
    EXPECT_ERROR("version: 1\n\trules: []\n",
                 "t.yaml:2:1: could not parse YAML: found a tab character that violates indentation");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1\n",
                 "t.yaml:4:1: could not parse YAML: did not find expected ',' or '}'");
    EXPECT_ERROR("version: 1\nrules: [\xff]\n", "t.yaml:2:9: could not parse YAML: invalid");
}

static void test_all_errors_listed(void)
{
    /* Three mistakes in three rules: all three reported, one per line, and
     * no set built. */
    const char *text = HEAD "  - {id: a, version: 1, kind: nope}\n"
                            "  - {id: b, version: 1, kind: hys_law, severity: loud}\n"
                            "  - {id: c, version: 1, kind: ctcae, min_grade: 9}\n";
    char err[2048];
    struct rules *r = rules_parse(text, strlen(text), "t.yaml", err, sizeof err);
    CHECK(r == NULL);
    int lines = 1;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    CHECK_EQ_INT(lines, 3);
    CHECK(strstr(err, "t.yaml:3:") == err);
    CHECK(strstr(err, "\nt.yaml:4:") != NULL);
    CHECK(strstr(err, "\nt.yaml:5:") != NULL);

    /* A tiny error buffer is filled, terminated, never overrun. */
    char small[12];
    memset(small, 'x', sizeof small);
    r = rules_parse(text, strlen(text), "t.yaml", small, 8);
    CHECK(r == NULL);
    CHECK_EQ_INT(strlen(small), 7);
    CHECK(small[8] == 'x');
}

static void test_limits(void)
{
    /* RULES_MAX rules are fine, one more is refused at the extra rule. */
    size_t cap = 64 * (RULES_MAX + 2) + 32;
    char *text = malloc(cap);
    CHECK(text != NULL);
    if (text == NULL)
        return;
    size_t len = (size_t)snprintf(text, cap, HEAD);
    for (int i = 0; i < RULES_MAX; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - {id: r%d, version: 1, kind: ctcae, min_grade: 2}\n", i);
    char err[1024];
    struct rules *r = rules_parse(text, len, "t.yaml", err, sizeof err);
    CHECK(r != NULL && rules_count(r) == RULES_MAX);
    rules_destroy(r);
    len += (size_t)snprintf(text + len, cap - len,
                            "  - {id: extra, version: 1, kind: ctcae, min_grade: 2}\n");
    char expect[64];
    snprintf(expect, sizeof expect, "t.yaml:%d:5: more than %d rules", RULES_MAX + 3, RULES_MAX);
    EXPECT_ERROR(text, expect);
    free(text);

    /* Size: refused before parsing, in memory and from a file. */
    size_t big = RULES_FILE_MAX + 1;
    char *huge = malloc(big);
    CHECK(huge != NULL);
    if (huge == NULL)
        return;
    memset(huge, '#', big);
    memcpy(huge, example, strlen(example));
    r = rules_parse(huge, big, "big.yaml", err, sizeof err);
    CHECK(r == NULL);
    CHECK(strncmp(err, "big.yaml:1:1: rules file is 1048577 bytes, more than the limit", 60) == 0);

    char path[] = "/tmp/vigil-rules-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        free(huge);
        return;
    }
    CHECK(write(fd, huge, big) == (ssize_t)big);
    r = rules_load_file(path, err, sizeof err);
    CHECK(r == NULL);
    CHECK(strstr(err, "rules file is more than the limit of 1048576 bytes") != NULL);
    /* Exactly the example: loads. */
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, example, strlen(example), 0) == (ssize_t)strlen(example));
    r = rules_load_file(path, err, sizeof err);
    CHECK(r != NULL && rules_count(r) == 5);
    rules_destroy(r);
    close(fd);
    unlink(path);

    /* Deep nesting is refused before libyaml's scanner, whose cost grows
     * with depth for every token, can spend minutes on it: a whole file of
     * "[" fails at the 17th level, in well under the test's timeout. */
    const char *lead = "version: 1\nrules: ";
    memcpy(huge, lead, strlen(lead));
    memset(huge + strlen(lead), '[', RULES_FILE_MAX - strlen(lead));
    double t = testlib_now();
    r = rules_parse(huge, RULES_FILE_MAX, "t.yaml", err, sizeof err);
    CHECK(r == NULL);
    CHECK_EQ_STR(err, "t.yaml:2:23: nested deeper than 16 levels");
    CHECK(testlib_now() - t < 5.0 * VIGIL_TIMEOUT_SCALE);
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: ctcae, min_grade: 2, loincs: [[[[[[[[[[[[[[[[[["
                      "]]]]]]]]]]]]]]]]]]}\n",
                 "t.yaml:3:73: nested deeper than 16 levels");
    free(huge);

    r = rules_load_file("/nonexistent/rules.yaml", err, sizeof err);
    CHECK(r == NULL);
    CHECK_EQ_STR(err, "could not open rules file /nonexistent/rules.yaml: No such file or directory");
}

/* The shipped example, once schemas/rules.example.yaml exists, must load. */
static void test_shipped_example(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/schemas/rules.example.yaml", VIGIL_SOURCE_DIR);
    if (access(path, R_OK) != 0) {
        printf("skip: %s not present yet\n", path);
        return;
    }
    char err[2048] = "";
    struct rules *r = rules_load_file(path, err, sizeof err);
    testlib_checkf(r != NULL, __FILE__, __LINE__, "%s: %s", path, err);
    rules_destroy(r);
}

/* Symptom rules: what they accept, and each refusal named. */
static void test_symptom_rules(void)
{
    const char *ok = HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 3,"
                          " attributes: [severity, interference], symptoms: [NAUSEA, FATIGUE],"
                          " severity_by_score: {3: warning, 4: critical}}\n"
                          "  - {id: b, version: 1, kind: pro_ctcae, min_score: 4, severity: info}\n"
                          "  - {id: c, version: 1, kind: pro_ctcae_worsening, severity: warning}\n"
                          "  - {id: d, version: 1, kind: pro_ctcae_worsening, min_increase: 1,"
                          " attributes: [frequency], severity: critical}\n";
    char err[2048];
    struct rules *r = rules_parse(ok, strlen(ok), "t.yaml", err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "%s\n", err);
    CHECK(r != NULL);
    if (r != NULL) {
        CHECK_EQ_INT(rules_count(r), 4);
        CHECK_EQ_INT(rules_dep(r, "a", 1), RULES_DEP_SINGLE);
        CHECK_EQ_INT(rules_dep(r, "c", 1), RULES_DEP_PREVIOUS);
        CHECK_EQ_INT(rules_dep(r, "c", 2), 0);
        CHECK_EQ_INT(rules_deps(r), RULES_DEP_SINGLE | RULES_DEP_PREVIOUS);
        CHECK(rules_pair_window_ms(r) < 0);
    }
    rules_destroy(r);
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, severity: info}\n",
                 "t.yaml:3:5: rule \"a\": missing required key \"min_score\"");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 5, severity: info}\n",
                 "t.yaml:3:53: rule \"a\": \"min_score\" must be an integer from 1 to 4");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 3}\n",
                 "t.yaml:3:5: rule \"a\": kind \"pro_ctcae\" needs \"severity\" or "
                 "\"severity_by_score\"");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 3, severity: info,"
                      " attributes: [loudness]}\n",
                 "t.yaml:3:85: rule \"a\": unknown attribute \"loudness\"");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 3, severity: info,"
                      " symptoms: [HICCUPS]}\n",
                 "t.yaml:3:83: rule \"a\": unknown PRO-CTCAE term \"HICCUPS\"");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae, min_score: 3, severity: info,"
                      " attributes: [presence], symptoms: [NAUSEA]}\n",
                 "t.yaml:3:");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae_worsening, severity: info,"
                      " min_increase: 0}\n",
                 "t.yaml:3:82: rule \"a\": \"min_increase\" must be an integer from 1 to 4");
    EXPECT_ERROR(HEAD "  - {id: a, version: 1, kind: pro_ctcae_worsening, min_increase: 2}\n",
                 "t.yaml:3:5: rule \"a\": missing required key \"severity\"");
}

int main(void)
{
    test_example();
    test_symptom_rules();
    test_errors();
    test_all_errors_listed();
    test_limits();
    test_shipped_example();
    return testlib_done();
}
