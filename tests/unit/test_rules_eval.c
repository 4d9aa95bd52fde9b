/*
 * Rule evaluation: threshold, ref_multiple, ctcae and baseline_change fire
 * and stay quiet at their edges; Hy's law inside and outside its window, out
 * of order, suppressed by cholestasis, retracted; subject state keeps the
 * right baseline and stays bounded; alert ids are deterministic.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctcae.h"
#include "rules.h"
#include "subject_state.h"
#include "testlib.h"

#define T0 1772323200000LL /* 2026-03-01T00:00:00Z */
#define DAY 86400000LL
#define NOW 1780000000000LL
#define MAXOUT 32

static struct observation mk(const char *id, const char *loinc, double v, double lo, double hi,
                             int64_t day)
{
    struct observation o = {0};
    snprintf(o.observation_id, sizeof o.observation_id, "%s", id);
    snprintf(o.study_id, sizeof o.study_id, "STUDY-1");
    snprintf(o.site_id, sizeof o.site_id, "SITE-7");
    snprintf(o.subject_id, sizeof o.subject_id, "SUBJ-0042");
    snprintf(o.loinc, sizeof o.loinc, "%s", loinc);
    o.has_value = true;
    o.value = v;
    snprintf(o.unit, sizeof o.unit, "%s", clean_canonical_unit(loinc));
    o.has_ref_low = !isnan(lo);
    o.ref_low = o.has_ref_low ? lo : 0.0;
    o.has_ref_high = !isnan(hi);
    o.ref_high = o.has_ref_high ? hi : 0.0;
    o.effective_ms = T0 + day * DAY;
    o.issued_ms = o.effective_ms + 3600000;
    o.status = OBS_FINAL;
    return o;
}

/* The cleaning stage's result for an observation already in canonical
 * units, filled by hand so these tests depend on the rules alone. */
static struct clean_result cl(const struct observation *o)
{
    struct clean_result c = {0};
    c.status = CLEAN_OK;
    c.value = o->value;
    c.unit = clean_canonical_unit(o->loinc);
    c.has_ref_low = o->has_ref_low;
    c.ref_low = o->ref_low;
    c.has_ref_high = o->has_ref_high;
    c.ref_high = o->ref_high;
    return c;
}

static struct rules *parse(const char *text)
{
    char err[2048];
    struct rules *r = rules_parse(text, strlen(text), "t.yaml", err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "rules_parse: %s\n", err);
    CHECK(r != NULL);
    return r;
}

static int ev(const struct rules *r, const struct subject_state *st, const struct observation *o,
              struct alert *out)
{
    struct clean_result c = cl(o);
    return rules_eval(r, st, o, &c, NOW, out, MAXOUT);
}

static void add(struct subject_state *st, const struct observation *o)
{
    struct clean_result c = cl(o);
    CHECK_EQ_INT(subject_state_add(st, o, &c), 0);
}

/* Number of alerts O raises against R with an empty state. */
static int fires(const struct rules *r, const struct observation *o)
{
    struct subject_state *st = subject_state_new();
    struct alert out[MAXOUT];
    int n = ev(r, st, o, out);
    subject_state_destroy(st);
    return n;
}

#define HEAD "version: 1\nrules:\n"

static void test_threshold(void)
{
    struct rules *r = parse(HEAD "  - id: potassium-critical-high\n"
                                 "    version: 3\n"
                                 "    kind: threshold\n"
                                 "    loinc: \"2823-3\"\n"
                                 "    op: \">=\"\n"
                                 "    value: 6.5\n"
                                 "    unit: mmol/L\n"
                                 "    severity: critical\n"
                                 "  - {id: k-gt, version: 1, kind: threshold, loinc: \"2823-3\","
                                 " op: \">\", value: 6.5, unit: mmol/L, severity: info}\n"
                                 "  - {id: glu-lt, version: 1, kind: threshold, loinc: \"2345-7\","
                                 " op: \"<\", value: 3.0, unit: mmol/L, severity: warning}\n"
                                 "  - {id: glu-le, version: 1, kind: threshold, loinc: \"2345-7\","
                                 " op: \"<=\", value: 3.0, unit: mmol/L, severity: warning}\n");
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct subject_state *st = subject_state_new();

    struct observation k = mk("obs-k1", LOINC_POTASSIUM, 6.8, 3.5, 5.1, 0);
    CHECK_EQ_INT(ev(r, st, &k, out), 2);
    struct alert *a = &out[0];
    CHECK_EQ_STR(a->rule_id, "potassium-critical-high");
    CHECK_EQ_INT(a->rule_version, 3);
    CHECK_EQ_INT(a->kind, ALERT_SIGNAL);
    CHECK_EQ_INT(a->severity, SEV_CRITICAL);
    CHECK_EQ_INT(a->ctcae_grade, 0);
    CHECK_EQ_STR(a->study_id, "STUDY-1");
    CHECK_EQ_STR(a->site_id, "SITE-7");
    CHECK_EQ_STR(a->subject_id, "SUBJ-0042");
    CHECK_EQ_INT(a->n_evidence, 1);
    CHECK_EQ_STR(a->evidence[0].observation_id, "obs-k1");
    CHECK_EQ_STR(a->evidence[0].loinc, LOINC_POTASSIUM);
    CHECK(a->evidence[0].value == 6.8);
    CHECK_EQ_STR(a->evidence[0].unit, "mmol/L");
    CHECK(a->evidence[0].effective_ms == T0);
    CHECK(a->observed_ms == T0);
    CHECK(a->detected_ms == NOW);
    CHECK_EQ_STR(a->retracts_alert_id, "");
    CHECK_EQ_STR(a->message, "Potassium 6.8 mmol/L >= 6.5 mmol/L (threshold potassium-critical-high)");
    CHECK_EQ_INT(strlen(a->alert_id), 32);
    CHECK_EQ_INT(strspn(a->alert_id, "0123456789abcdef"), 32);
    CHECK_EQ_STR(out[1].rule_id, "k-gt");

    /* Edges: >= fires at the limit, > does not; below the limit neither. */
    k.value = 6.5;
    CHECK_EQ_INT(ev(r, st, &k, out), 1);
    CHECK_EQ_STR(out[0].rule_id, "potassium-critical-high");
    k.value = 6.49;
    CHECK_EQ_INT(ev(r, st, &k, out), 0);
    k.value = 6.51;
    CHECK_EQ_INT(ev(r, st, &k, out), 2);

    struct observation g = mk("obs-g1", LOINC_GLUCOSE, 3.0, 3.9, 5.5, 0);
    CHECK_EQ_INT(ev(r, st, &g, out), 1);
    CHECK_EQ_STR(out[0].rule_id, "glu-le");
    g.value = 2.99;
    CHECK_EQ_INT(ev(r, st, &g, out), 2);
    g.value = 3.01;
    CHECK_EQ_INT(ev(r, st, &g, out), 0);

    /* Only usable results raise alerts. */
    k.value = 7.0;
    k.status = OBS_AMENDED;
    CHECK_EQ_INT(ev(r, st, &k, out), 2);
    k.status = OBS_CORRECTED;
    CHECK_EQ_INT(ev(r, st, &k, out), 2);
    k.status = OBS_CANCELLED;
    CHECK_EQ_INT(ev(r, st, &k, out), 0);
    k.status = OBS_ENTERED_IN_ERROR;
    CHECK_EQ_INT(ev(r, st, &k, out), 0);
    k.status = OBS_FINAL;
    struct clean_result c = cl(&k);
    c.status = CLEAN_IMPLAUSIBLE;
    CHECK_EQ_INT(rules_eval(r, st, &k, &c, NOW, out, MAXOUT), 0);
    c.status = CLEAN_OK;
    k.has_value = false;
    CHECK_EQ_INT(rules_eval(r, st, &k, &c, NOW, out, MAXOUT), 0);
    k.has_value = true;
    /* max_out is respected. */
    CHECK_EQ_INT(rules_eval(r, st, &k, &c, NOW, out, 1), 1);
    CHECK_EQ_INT(rules_eval(r, st, &k, &c, NOW, out, 0), 0);
    /* Another LOINC: nothing. */
    struct observation na = mk("obs-na", LOINC_SODIUM, 200, 135, 145, 0);
    CHECK_EQ_INT(ev(r, st, &na, out), 0);

    subject_state_destroy(st);
    rules_destroy(r);
}

static void test_ref_multiple(void)
{
    struct rules *r = parse(HEAD "  - {id: alt-5x-uln, version: 1, kind: ref_multiple,"
                                 " loinc: \"1742-6\", bound: high, multiple: 5, severity: warning}\n"
                                 "  - {id: plt-half-lln, version: 1, kind: ref_multiple,"
                                 " loinc: \"777-3\", bound: low, multiple: 0.5, severity: info}\n");
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct observation alt = mk("obs-a", LOINC_ALT, 200, 7, 40, 0);
    CHECK_EQ_INT(fires(r, &alt), 0);
    alt.value = 200.1;
    struct subject_state *st = subject_state_new();
    CHECK_EQ_INT(ev(r, st, &alt, out), 1);
    CHECK_EQ_STR(out[0].message,
                 "ALT 200.1 U/L is 5.00\xc3\x97ULN, above 5\xc3\x97ULN (ref_multiple alt-5x-uln)");
    CHECK_EQ_INT(out[0].severity, SEV_WARNING);
    alt.has_ref_high = false;
    CHECK_EQ_INT(fires(r, &alt), 0);

    struct observation plt = mk("obs-p", LOINC_PLATELETS, 75, 150, 400, 0);
    CHECK_EQ_INT(fires(r, &plt), 0);
    plt.value = 74.9;
    CHECK_EQ_INT(fires(r, &plt), 1);
    plt.has_ref_low = false;
    CHECK_EQ_INT(fires(r, &plt), 0);
    subject_state_destroy(st);
    rules_destroy(r);
}

static void test_ctcae_rule(void)
{
    struct rules *r = parse(HEAD "  - id: ctcae\n"
                                 "    version: 1\n"
                                 "    kind: ctcae\n"
                                 "    min_grade: 2\n"
                                 "    loincs: [\"1742-6\", \"2823-3\"]\n"
                                 "    severity_by_grade: {2: info}\n");
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct subject_state *st = subject_state_new();

    struct observation k = mk("obs-k", LOINC_POTASSIUM, 6.8, 3.5, 5.1, 0);
    CHECK_EQ_INT(ev(r, st, &k, out), 1);
    CHECK_EQ_INT(out[0].ctcae_grade, 3);
    CHECK_EQ_INT(out[0].severity, SEV_CRITICAL); /* the default for 3 */
    CHECK_EQ_STR(out[0].message, "CTCAE grade 3 Hyperkalemia: potassium 6.8 mmol/L");
    k.value = 6.0;
    CHECK_EQ_INT(ev(r, st, &k, out), 1);
    CHECK_EQ_INT(out[0].ctcae_grade, 2);
    CHECK_EQ_INT(out[0].severity, SEV_INFO); /* as configured */
    k.value = 5.5;
    CHECK_EQ_INT(ev(r, st, &k, out), 0); /* G1 < min_grade */
    /* Sodium is not in this rule's loincs. */
    struct observation na = mk("obs-na", LOINC_SODIUM, 119, 135, 145, 0);
    CHECK_EQ_INT(ev(r, st, &na, out), 0);

    /* The state's baseline switches ALT to the abnormal-baseline branch:
     * 130 U/L is 3.25 x ULN (G2) but only 1.6 x an abnormal baseline of 80
     * (G1). */
    struct observation alt = mk("obs-alt2", LOINC_ALT, 130, 7, 40, 10);
    CHECK_EQ_INT(ev(r, st, &alt, out), 1);
    CHECK_EQ_INT(out[0].ctcae_grade, 2);
    struct observation base = mk("obs-alt1", LOINC_ALT, 80, 7, 40, 0);
    add(st, &base);
    CHECK_EQ_INT(ev(r, st, &alt, out), 0);
    alt.value = 241; /* > 3.0 x baseline */
    CHECK_EQ_INT(ev(r, st, &alt, out), 1);
    CHECK_EQ_INT(out[0].ctcae_grade, 2);
    /* A result taken before the baseline is not compared with it. */
    struct observation early = mk("obs-alt0", LOINC_ALT, 130, 7, 40, -5);
    CHECK_EQ_INT(ev(r, st, &early, out), 1);
    CHECK_EQ_INT(out[0].ctcae_grade, 2);
    /* Nor is an amendment of the baseline itself. */
    struct observation amend = base;
    amend.value = 130;
    amend.status = OBS_AMENDED;
    CHECK_EQ_INT(ev(r, st, &amend, out), 1);

    subject_state_destroy(st);
    rules_destroy(r);
}

static void test_baseline_change(void)
{
    struct rules *r = parse(HEAD "  - {id: creatinine-rise, version: 1, kind: baseline_change,"
                                 " loinc: \"2160-0\", ratio: 1.5, severity: warning}\n"
                                 "  - {id: creatinine-up, version: 1, kind: baseline_change,"
                                 " loinc: \"2160-0\", delta: 26.5, severity: info}\n"
                                 "  - {id: hb-drop, version: 1, kind: baseline_change,"
                                 " loinc: \"718-7\", delta: -20, severity: warning}\n"
                                 "  - {id: plt-halved, version: 1, kind: baseline_change,"
                                 " loinc: \"777-3\", ratio: 0.5, severity: warning}\n");
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct subject_state *st = subject_state_new();

    struct observation cr = mk("obs-cr2", LOINC_CREATININE, 200, 60, 110, 10);
    CHECK_EQ_INT(ev(r, st, &cr, out), 0); /* no baseline yet */
    /* Baseline arrives out of order: day 5 first, then day 1 replaces it. */
    struct observation b5 = mk("obs-cr-d5", LOINC_CREATININE, 100, 60, 110, 5);
    struct observation b1 = mk("obs-cr-d1", LOINC_CREATININE, 80, 60, 110, 1);
    add(st, &b5);
    CHECK_EQ_STR(subject_result_id(subject_state_baseline(st, LOINC_CREATININE)), "obs-cr-d5");
    add(st, &b1);
    CHECK_EQ_STR(subject_result_id(subject_state_baseline(st, LOINC_CREATININE)), "obs-cr-d1");

    cr.value = 106.4; /* 1.33 x, +26.4 */
    CHECK_EQ_INT(ev(r, st, &cr, out), 0);
    cr.value = 106.5; /* +26.5 */
    CHECK_EQ_INT(ev(r, st, &cr, out), 1);
    CHECK_EQ_STR(out[0].rule_id, "creatinine-up");
    cr.value = 119.9;
    CHECK_EQ_INT(ev(r, st, &cr, out), 1);
    cr.value = 120; /* 1.5 x 80 */
    CHECK_EQ_INT(ev(r, st, &cr, out), 2);
    CHECK_EQ_STR(out[0].rule_id, "creatinine-rise");
    CHECK_EQ_STR(out[0].message, "Creatinine 120 umol/L vs baseline 80 umol/L on 2026-03-02 "
                                 "(+40 umol/L) (baseline_change creatinine-rise)");

    /* Retracting the baseline promotes the next one (100 on day 5). */
    struct observation wrong = b1;
    wrong.status = OBS_ENTERED_IN_ERROR;
    add(st, &wrong);
    CHECK_EQ_STR(subject_result_id(subject_state_baseline(st, LOINC_CREATININE)), "obs-cr-d5");
    CHECK_EQ_INT(ev(r, st, &cr, out), 0);
    CHECK_EQ_INT(subject_state_remove(st, "obs-cr-d5"), 1);
    CHECK(subject_state_baseline(st, LOINC_CREATININE) == NULL);
    CHECK_EQ_INT(subject_state_remove(st, "obs-cr-d5"), 0);

    /* Unusable results never become the baseline. */
    struct observation bad = mk("obs-cr-bad", LOINC_CREATININE, 50, 60, 110, 0);
    struct clean_result c = cl(&bad);
    c.status = CLEAN_IMPLAUSIBLE;
    CHECK_EQ_INT(subject_state_add(st, &bad, &c), 0);
    bad.status = OBS_CANCELLED;
    add(st, &bad);
    CHECK(subject_state_baseline(st, LOINC_CREATININE) == NULL);

    /* Falls: delta < 0 and ratio < 1. */
    struct observation hb0 = mk("obs-hb0", LOINC_HAEMOGLOBIN, 140, 120, 160, 0);
    add(st, &hb0);
    struct observation hb = mk("obs-hb1", LOINC_HAEMOGLOBIN, 120.1, 120, 160, 7);
    CHECK_EQ_INT(ev(r, st, &hb, out), 0);
    hb.value = 120;
    CHECK_EQ_INT(ev(r, st, &hb, out), 1);
    CHECK_EQ_STR(out[0].rule_id, "hb-drop");
    struct observation p0 = mk("obs-p0", LOINC_PLATELETS, 200, 150, 400, 0);
    add(st, &p0);
    struct observation p = mk("obs-p1", LOINC_PLATELETS, 100.1, 150, 400, 7);
    CHECK_EQ_INT(ev(r, st, &p, out), 0);
    p.value = 100;
    CHECK_EQ_INT(ev(r, st, &p, out), 1);

    subject_state_destroy(st);
    rules_destroy(r);
}

static const char hys_rules[] = HEAD "  - {id: hys-law, version: 1, kind: hys_law,"
                                     " window_days: 30, severity: critical}\n";

/* ALT 5.2 x ULN on day 0, bilirubin 2.6 x ULN on day 3. */
static void test_hys_law_basic(void)
{
    struct rules *r = parse(hys_rules);
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct subject_state *st = subject_state_new();
    struct observation alt = mk("obs-alt", LOINC_ALT, 208, 7, 40, 0);
    struct observation bili = mk("obs-bili", LOINC_BILIRUBIN, 52, 3, 20, 3);

    CHECK_EQ_INT(ev(r, st, &alt, out), 0);
    add(st, &alt);
    CHECK_EQ_INT(ev(r, st, &bili, out), 1);
    struct alert a = out[0];
    CHECK_EQ_STR(a.rule_id, "hys-law");
    CHECK_EQ_INT(a.severity, SEV_CRITICAL);
    CHECK_EQ_INT(a.n_evidence, 2);
    CHECK_EQ_STR(a.evidence[0].observation_id, "obs-alt");
    CHECK_EQ_STR(a.evidence[0].loinc, LOINC_ALT);
    CHECK_EQ_STR(a.evidence[0].unit, "U/L");
    CHECK_EQ_STR(a.evidence[1].observation_id, "obs-bili");
    CHECK_EQ_STR(a.evidence[1].unit, "umol/L");
    CHECK(a.observed_ms == bili.effective_ms);
    CHECK_EQ_STR(a.message, "Potential Hy's law case: ALT 5.2\xc3\x97ULN on 2026-03-01, total "
                            "bilirubin 2.6\xc3\x97ULN on 2026-03-04");
    CHECK_EQ_STR(a.subject_id, "SUBJ-0042");

    /* Out of order: bilirubin first, then the ALT with an earlier effective
     * time. Same case, same id. */
    struct subject_state *st2 = subject_state_new();
    CHECK_EQ_INT(ev(r, st2, &bili, out), 0);
    add(st2, &bili);
    CHECK_EQ_INT(ev(r, st2, &alt, out), 1);
    CHECK_EQ_STR(out[0].alert_id, a.alert_id);
    CHECK_EQ_STR(out[0].evidence[0].observation_id, "obs-alt");
    CHECK_EQ_STR(out[0].evidence[1].observation_id, "obs-bili");
    subject_state_destroy(st2);

    /* Edges of the window: 30 days apart still pairs, 30 days + 1 ms not. */
    struct observation far = bili;
    far.effective_ms = alt.effective_ms + 30 * DAY;
    CHECK_EQ_INT(ev(r, st, &far, out), 1);
    far.effective_ms += 1;
    CHECK_EQ_INT(ev(r, st, &far, out), 0);
    far.effective_ms = alt.effective_ms - 31 * DAY; /* before, too far */
    CHECK_EQ_INT(ev(r, st, &far, out), 0);

    /* Edges of the values: ALT >= 3 x ULN, bilirubin > 2 x ULN. */
    struct observation b2 = bili;
    b2.value = 40;
    CHECK_EQ_INT(ev(r, st, &b2, out), 0);
    b2.value = 40.1;
    CHECK_EQ_INT(ev(r, st, &b2, out), 1);
    struct subject_state *st3 = subject_state_new();
    add(st3, &bili);
    struct observation a3 = alt;
    a3.value = 119.9;
    CHECK_EQ_INT(ev(r, st3, &a3, out), 0);
    a3.value = 120;
    CHECK_EQ_INT(ev(r, st3, &a3, out), 1);
    /* AST instead of ALT. */
    struct observation ast = mk("obs-ast", LOINC_AST, 150, 8, 35, 1);
    CHECK_EQ_INT(ev(r, st3, &ast, out), 1);
    CHECK_EQ_STR(out[0].evidence[0].loinc, LOINC_AST);
    CHECK(strstr(out[0].message, "Potential Hy's law case: AST 4.3\xc3\x97ULN on 2026-03-02") ==
          out[0].message);
    subject_state_destroy(st3);

    subject_state_destroy(st);
    rules_destroy(r);
}

static void test_hys_law_alp_and_retraction(void)
{
    struct rules *r = parse(hys_rules);
    if (r == NULL)
        return;
    struct alert out[MAXOUT];
    struct observation alt = mk("obs-alt", LOINC_ALT, 208, 7, 40, 0);
    struct observation bili = mk("obs-bili", LOINC_BILIRUBIN, 52, 3, 20, 3);

    /* Cholestasis: ALP >= 2 x ULN near both results suppresses. */
    struct subject_state *st = subject_state_new();
    add(st, &alt);
    struct observation alp = mk("obs-alp", LOINC_ALP, 200, 40, 100, 2);
    add(st, &alp);
    CHECK_EQ_INT(ev(r, st, &bili, out), 0);
    /* Below 2 x ULN: alert, with the ALP as context evidence. */
    alp.value = 150;
    alp.status = OBS_CORRECTED;
    add(st, &alp);
    CHECK_EQ_INT(ev(r, st, &bili, out), 1);
    CHECK_EQ_INT(out[0].n_evidence, 3);
    CHECK_EQ_STR(out[0].evidence[2].observation_id, "obs-alp");
    CHECK(strstr(out[0].message, ", ALP 1.5\xc3\x97ULN on 2026-03-03") != NULL);
    char with_alp[ALERT_ID_MAX + 1];
    snprintf(with_alp, sizeof with_alp, "%s", out[0].alert_id);
    subject_state_destroy(st);

    /* An ALP >= 2 x ULN outside the window of the pair does not suppress,
     * and ALP context does not change the id. */
    st = subject_state_new();
    add(st, &alt);
    struct observation old_alp = mk("obs-alp-old", LOINC_ALP, 400, 40, 100, -40);
    add(st, &old_alp);
    CHECK_EQ_INT(ev(r, st, &bili, out), 1);
    CHECK_EQ_INT(out[0].n_evidence, 2);
    CHECK_EQ_STR(out[0].alert_id, with_alp);

    /* Entered-in-error: the ALT is withdrawn, the pattern disappears. */
    add(st, &bili);
    CHECK_EQ_INT(ev(r, st, &bili, out), 1); /* a replay still sees it */
    struct observation wrong = alt;
    wrong.status = OBS_ENTERED_IN_ERROR;
    add(st, &wrong);
    const struct subject_result *res;
    CHECK_EQ_INT(subject_state_results(st, LOINC_ALT, &res), 0);
    struct observation again = bili;
    again.status = OBS_AMENDED;
    CHECK_EQ_INT(ev(r, st, &again, out), 0);
    /* The same through subject_state_remove on a fresh state. */
    subject_state_destroy(st);
    st = subject_state_new();
    add(st, &alt);
    CHECK_EQ_INT(subject_state_remove(st, "obs-alt"), 1);
    CHECK_EQ_INT(ev(r, st, &bili, out), 0);
    subject_state_destroy(st);
    rules_destroy(r);
}

/* Two bilirubins and one ALT in three arrival orders: the same set of
 * alert ids whatever arrived last. */
static void test_hys_law_order(void)
{
    struct rules *r = parse(hys_rules);
    if (r == NULL)
        return;
    struct observation o[3] = {
        mk("obs-alt", LOINC_ALT, 208, 7, 40, 0),
        mk("obs-bili-a", LOINC_BILIRUBIN, 52, 3, 20, 3),
        mk("obs-bili-b", LOINC_BILIRUBIN, 70, 3, 20, 9),
    };
    static const int orders[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 0, 2}};
    char ids[3][2][ALERT_ID_MAX + 1];
    for (int k = 0; k < 3; k++) {
        struct subject_state *st = subject_state_new();
        struct alert out[MAXOUT];
        int total = 0;
        for (int i = 0; i < 3; i++) {
            const struct observation *x = &o[orders[k][i]];
            int n = ev(r, st, x, out);
            for (int j = 0; j < n && total < 2; j++)
                /* same size as alert_id; memcpy keeps -O2's truncation check quiet */
                memcpy(ids[k][total++], out[j].alert_id, ALERT_ID_MAX + 1);
            add(st, x);
        }
        CHECK_EQ_INT(total, 2);
        if (strcmp(ids[k][0], ids[k][1]) > 0) {
            char tmp[ALERT_ID_MAX + 1];
            memcpy(tmp, ids[k][0], sizeof tmp);
            memcpy(ids[k][0], ids[k][1], sizeof tmp);
            memcpy(ids[k][1], tmp, sizeof tmp);
        }
        subject_state_destroy(st);
    }
    CHECK(strcmp(ids[0][0], ids[0][1]) != 0);
    for (int k = 1; k < 3; k++) {
        CHECK_EQ_STR(ids[k][0], ids[0][0]);
        CHECK_EQ_STR(ids[k][1], ids[0][1]);
    }
    rules_destroy(r);
}

static void test_alert_ids(void)
{
    const char *v1 = HEAD "  - {id: ctcae, version: 1, kind: ctcae, min_grade: 1}\n";
    const char *v2 = HEAD "  - {id: ctcae, version: 2, kind: ctcae, min_grade: 1}\n";
    struct rules *r1 = parse(v1);
    struct rules *r2 = parse(v2);
    if (r1 == NULL || r2 == NULL)
        goto done;
    struct subject_state *st = subject_state_new();
    struct alert a[MAXOUT], b[MAXOUT];
    struct observation k = mk("obs-k", LOINC_POTASSIUM, 6.8, 3.5, 5.1, 0);

    /* Same inputs, another time of detection: same id. */
    struct clean_result c = cl(&k);
    CHECK_EQ_INT(rules_eval(r1, st, &k, &c, NOW, a, MAXOUT), 1);
    CHECK_EQ_INT(rules_eval(r1, st, &k, &c, NOW + 5000, b, MAXOUT), 1);
    CHECK_EQ_STR(a[0].alert_id, b[0].alert_id);
    /* Pinned: the id must not change between builds or machines, or
     * replays after an upgrade would page again. */
    CHECK_EQ_STR(a[0].alert_id, "a5bb7abf4c7ea1d614e9bb130526a06b");
    /* A new rule version: new id. */
    CHECK_EQ_INT(ev(r2, st, &k, b), 1);
    CHECK(strcmp(a[0].alert_id, b[0].alert_id) != 0);
    /* Another observation: new id. */
    struct observation k2 = k;
    snprintf(k2.observation_id, sizeof k2.observation_id, "obs-k2");
    CHECK_EQ_INT(ev(r1, st, &k2, b), 1);
    CHECK(strcmp(a[0].alert_id, b[0].alert_id) != 0);
    /* Amended within the same grade: same id (no second page) ... */
    struct observation am = k;
    am.status = OBS_AMENDED;
    am.value = 6.9;
    CHECK_EQ_INT(ev(r1, st, &am, b), 1);
    CHECK_EQ_STR(a[0].alert_id, b[0].alert_id);
    /* ... to another grade: new id. */
    am.value = 7.2;
    CHECK_EQ_INT(ev(r1, st, &am, b), 1);
    CHECK_EQ_INT(b[0].ctcae_grade, 4);
    CHECK(strcmp(a[0].alert_id, b[0].alert_id) != 0);
    subject_state_destroy(st);
done:
    rules_destroy(r1);
    rules_destroy(r2);
}

/* PREFIX + S in BUF (OBS_ID_MAX + 1 bytes). */
static const char *pid_in(char *buf, const char *prefix, const char *s)
{
    snprintf(buf, OBS_ID_MAX + 1, "%s%s", prefix, s);
    return buf;
}
#define pid(prefix, s) pid_in(pbuf, prefix, s)

/* Per code the 4 earliest (the baseline and its successors) and, up to 64
 * in all, the latest results are kept, in time order, for every code.
 * Ids with PREFIX: "" keeps them in the record, a long one makes the state
 * own a copy of each (the sanitizer build checks the frees). */
static void state_bounds(const char *prefix)
{
    struct subject_state *st = subject_state_new();
    CHECK(st != NULL);
    char id[OBS_ID_MAX + 1], tail[16], pbuf[OBS_ID_MAX + 1];
    for (int i = 0; i < 100; i++) {
        snprintf(tail, sizeof tail, "alt-%03d", i);
        snprintf(id, sizeof id, "%s%s", prefix, tail);
        struct observation o = mk(id, LOINC_ALT, 30 + i, 7, 40, i);
        add(st, &o);
    }
    const int keep = SUBJECT_STATE_BASELINE_KEEP, max = SUBJECT_STATE_RESULTS_MAX;
    const struct subject_result *res;
    CHECK_EQ_INT(subject_state_results(st, LOINC_ALT, &res), max);
    CHECK_EQ_STR(subject_result_id(&res[0]), pid(prefix, "alt-000"));
    CHECK_EQ_STR(subject_result_id(&res[keep - 1]), pid(prefix, "alt-003"));
    CHECK_EQ_STR(subject_result_id(&res[keep]), pid(prefix, "alt-040")); /* 004..039 were dropped */
    CHECK_EQ_STR(subject_result_id(&res[max - 1]), pid(prefix, "alt-099"));
    CHECK_EQ_STR(subject_result_id(subject_state_baseline(st, LOINC_ALT)), pid(prefix, "alt-000"));
    /* Older than every latest one and the list full: beyond the window. */
    struct observation old = mk(pid(prefix, "alt-old"), LOINC_ALT, 50, 7, 40, 10);
    add(st, &old);
    CHECK_EQ_INT(subject_state_results(st, LOINC_ALT, &res), max);
    CHECK_EQ_STR(subject_result_id(&res[keep]), pid(prefix, "alt-040"));
    CHECK(subject_state_find(st, pid(prefix, "alt-old"), NULL) == NULL);
    /* A newer one in the middle pushes the oldest latest out, sorted. */
    struct observation mid = mk(pid(prefix, "alt-mid"), LOINC_ALT, 50, 7, 40, 50);
    add(st, &mid);
    CHECK_EQ_INT(subject_state_results(st, LOINC_ALT, &res), max);
    CHECK_EQ_STR(subject_result_id(&res[keep]), pid(prefix, "alt-041"));
    /* An earlier one joins the baseline ones: the 4th earliest becomes
     * the oldest latest, and the oldest latest drops. */
    struct observation early = mk(pid(prefix, "alt-early"), LOINC_ALT, 50, 7, 40, -1);
    add(st, &early);
    CHECK_EQ_INT(subject_state_results(st, LOINC_ALT, &res), max);
    CHECK_EQ_STR(subject_result_id(&res[0]), pid(prefix, "alt-early"));
    CHECK_EQ_STR(subject_result_id(&res[keep]), pid(prefix, "alt-003"));
    CHECK_EQ_STR(subject_result_id(&res[keep + 1]), pid(prefix, "alt-042"));
    bool sorted = true;
    for (int i = 1; i < max; i++)
        sorted = sorted && res[i - 1].effective_ms <= res[i].effective_ms;
    CHECK(sorted);
    /* Amending replaces, never duplicates. */
    mid.value = 60;
    mid.status = OBS_AMENDED;
    add(st, &mid);
    int n = subject_state_results(st, LOINC_ALT, &res);
    int seen = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(subject_result_id(&res[i]), pid(prefix, "alt-mid")) == 0) {
            seen++;
            CHECK(res[i].value == 60);
        }
    CHECK_EQ_INT(seen, 1);
    const char *code = NULL;
    CHECK(subject_state_find(st, pid(prefix, "alt-mid"), &code) != NULL);
    CHECK_EQ_STR(code, LOINC_ALT);
    /* Every code keeps its results, not only the liver tests. */
    struct observation k = mk(pid(prefix, "k"), LOINC_POTASSIUM, 4, 3.5, 5.1, 0);
    add(st, &k);
    CHECK_EQ_INT(subject_state_results(st, LOINC_POTASSIUM, &res), 1);
    CHECK(subject_state_baseline(st, LOINC_POTASSIUM) != NULL);
    CHECK(subject_state_baseline(st, LOINC_SODIUM) == NULL);
    CHECK_EQ_INT(subject_state_results(st, LOINC_SODIUM, &res), 0);
    CHECK(res == NULL);
    subject_state_destroy(st);
    subject_state_destroy(NULL);
}

static void test_state_bounds(void)
{
    state_bounds("");
    state_bounds("urn:oid:2.16.840.1.113883.3.7777/obs/");
}

/* What the state measures of itself counts the ids it owns; a reset gives
 * them back. */
static void test_state_bytes(void)
{
    struct subject_state *s1 = subject_state_new(), *s2 = subject_state_new();
    CHECK(s1 != NULL && s2 != NULL);
    const char *long_prefix = "urn:oid:2.16.840.1.113883.3.7777/obs/";
    char id[OBS_ID_MAX + 1];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "alt-%03d", i);
        struct observation o = mk(id, LOINC_ALT, 30, 7, 40, i);
        add(s1, &o);
        snprintf(id, sizeof id, "%salt-%03d", long_prefix, i);
        o = mk(id, LOINC_ALT, 30, 7, 40, i);
        add(s2, &o);
    }
    size_t b1 = subject_state_bytes(s1), b2 = subject_state_bytes(s2);
    CHECK(b2 >= b1 + 10 * (strlen(long_prefix) + 8));
    CHECK(sizeof(struct subject_result) <= 72);
    subject_state_reset(s2);
    subject_state_reset(s1);
    CHECK_EQ_INT((int)subject_state_bytes(s2), (int)subject_state_bytes(s1));
    subject_state_destroy(s1);
    subject_state_destroy(s2);
}

/* The newest revision of every id, seen usable or not, grown on demand. */
static void test_state_versions(void)
{
    struct subject_state *st = subject_state_new();
    int64_t rev = 0;
    CHECK(!subject_state_version(st, "a", &rev));
    CHECK_EQ_INT(subject_state_version_set(st, "a", 40), 0);
    CHECK(subject_state_version(st, "a", &rev) && rev == 40);
    subject_state_version_set(st, "a", 30); /* older: kept 40 */
    CHECK(subject_state_version(st, "a", &rev) && rev == 40);
    subject_state_version_set(st, "a", 41);
    CHECK(subject_state_version(st, "a", &rev) && rev == 41);
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "obs-%d", i);
        CHECK_EQ_INT(subject_state_version_set(st, id, i), 0);
    }
    int ok = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "obs-%d", i);
        ok += subject_state_version(st, id, &rev) && rev == i;
    }
    CHECK_EQ_INT(ok, 1000);
    CHECK(subject_state_version(st, "a", &rev) && rev == 41);
    subject_state_reset(st);
    CHECK(!subject_state_version(st, "a", &rev));
    subject_state_destroy(st);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reports the cost of one evaluation against 20 rules (informational: a
 * shared, sanitised machine makes a hard limit flaky). */
static void test_speed(void)
{
    char text[8192];
    size_t len = (size_t)snprintf(text, sizeof text, HEAD);
    static const char *const loincs[] = {LOINC_POTASSIUM, LOINC_SODIUM, LOINC_GLUCOSE,
                                         LOINC_CREATININE, LOINC_PLATELETS};
    for (int i = 0; i < 14; i++)
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "  - {id: t%d, version: 1, kind: threshold, loinc: \"%s\","
                                " op: \">\", value: 1000, unit: %s, severity: info}\n",
                                i, loincs[i % 5], clean_canonical_unit(loincs[i % 5]));
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "  - {id: m1, version: 1, kind: ref_multiple, loinc: \"1742-6\","
                            " bound: high, multiple: 5, severity: info}\n"
                            "  - {id: m2, version: 1, kind: ref_multiple, loinc: \"2823-3\","
                            " bound: high, multiple: 5, severity: info}\n"
                            "  - {id: c, version: 1, kind: ctcae, min_grade: 2}\n"
                            "  - {id: b1, version: 1, kind: baseline_change, loinc: \"2823-3\","
                            " ratio: 3, severity: info}\n"
                            "  - {id: b2, version: 1, kind: baseline_change, loinc: \"2160-0\","
                            " ratio: 1.5, severity: info}\n"
                            "  - {id: h, version: 1, kind: hys_law, severity: critical}\n");
    struct rules *r = parse(text);
    if (r == NULL)
        return;
    CHECK_EQ_INT(rules_count(r), 20);
    struct subject_state *st = subject_state_new();
    for (int i = 0; i < 12; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%d", i);
        struct observation o = mk(id, LOINC_POTASSIUM, 4.0, 3.5, 5.1, i);
        add(st, &o);
    }
    struct observation k = mk("k-now", LOINC_POTASSIUM, 4.2, 3.5, 5.1, 20);
    struct clean_result c = cl(&k);
    struct alert out[MAXOUT];
    int iters = 200000;
    int total = 0;
    double t = now_s();
    for (int i = 0; i < iters; i++)
        total += rules_eval(r, st, &k, &c, NOW, out, MAXOUT);
    double ns = (now_s() - t) / iters * 1e9;
    CHECK_EQ_INT(total, 0);
    printf("rules_eval, 20 rules, no alert: %.0f ns per observation\n", ns);
    subject_state_destroy(st);
    rules_destroy(r);
}

int main(void)
{
    test_threshold();
    test_ref_multiple();
    test_ctcae_rule();
    test_baseline_change();
    test_hys_law_basic();
    test_hys_law_alp_and_retraction();
    test_hys_law_order();
    test_alert_ids();
    test_state_bounds();
    test_state_bytes();
    test_state_versions();
    test_speed();
    return testlib_done();
}
