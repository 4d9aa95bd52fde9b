/*
 * consumer/reconcile.c by example: what one arriving result publishes and
 * remembers -- the late cholestatic ALP, a withdrawn signal raised
 * again under a new id, a stale version ignored, a replay republishing,
 * an alert of an earlier rule version left alone. The property over every
 * arrival order is test_order_property's. Pure modules, no services.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ctcae.h"
#include "reconcile.h"
#include "retract.h"
#include "rules.h"
#include "store.h"
#include "subject_state.h"
#include "testlib.h"

#define T0  1772323200000LL /* 2026-03-01 */
#define DAY 86400000LL
#define NOW 1780000000000LL

static const char rules_v1[] = "version: 1\nrules:\n"
                               "  - {id: ctcae, version: 1, kind: ctcae, min_grade: 1}\n"
                               "  - {id: hys-law, version: 1, kind: hys_law, severity: critical}\n"
                               "  - {id: creat-rise, version: 1, kind: baseline_change,"
                               " loinc: \"2160-0\", ratio: 1.5, severity: warning}\n";

static struct rules *parse(const char *text)
{
    char err[2048];
    struct rules *r = rules_parse(text, strlen(text), "t.yaml", err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "%s\n", err);
    CHECK(r != NULL);
    return r;
}

static struct observation mk(const char *id, const char *loinc, double v, double hi, int day)
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
    o.has_ref_low = true;
    o.ref_low = hi / 4;
    o.has_ref_high = true;
    o.ref_high = hi;
    o.effective_ms = T0 + day * DAY;
    o.issued_ms = o.effective_ms + DAY;
    o.status = OBS_FINAL;
    return o;
}

struct run {
    struct rules *r;
    struct reconcile *rc;
    struct subject_state *st;
    const struct alert *out;
    struct reconcile_outcome res;
};

static int apply(struct run *x, const struct observation *o)
{
    struct clean_result c;
    clean_observation(o, &c);
    return reconcile_apply(x->rc, x->r, x->st, o, &c, store_revision(o), NOW, &x->out, &x->res);
}

static int count(const struct run *x, int n, enum alert_kind kind, const char *rule)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += x->out[i].kind == kind && strcmp(x->out[i].rule_id, rule) == 0;
    return k;
}

static const struct alert *find(const struct run *x, int n, enum alert_kind kind, const char *rule)
{
    for (int i = 0; i < n; i++)
        if (x->out[i].kind == kind && strcmp(x->out[i].rule_id, rule) == 0)
            return &x->out[i];
    return NULL;
}

static void setup(struct run *x, const char *rules)
{
    x->r = parse(rules);
    x->rc = reconcile_new();
    x->st = subject_state_new();
    CHECK(x->rc != NULL && x->st != NULL);
}

static void teardown(struct run *x)
{
    reconcile_destroy(x->rc);
    subject_state_destroy(x->st);
    rules_destroy(x->r);
}

/* ALT 5xULN day 0, bilirubin 2.1xULN day 10: Hy's law. An ALP 2.2xULN
 * dated day 5 arrives last: the pattern is cholestatic, the case is
 * withdrawn, and the retraction names the ALP. Its withdrawal raises the
 * case again, under a new id; withdrawing the bilirubin takes that back. */
static void test_late_alp(void)
{
    struct run x;
    setup(&x, rules_v1);
    struct observation alt = mk("alt", LOINC_ALT, 200, 40, 0);
    struct observation bili = mk("bili", LOINC_BILIRUBIN, 45, 21, 10);
    struct observation alp = mk("alp", LOINC_ALP, 260, 120, 5);
    apply(&x, &alt);
    int n = apply(&x, &bili);
    CHECK_EQ_INT(count(&x, n, ALERT_SIGNAL, "hys-law"), 1);
    char hys[ALERT_ID_MAX + 1];
    snprintf(hys, sizeof hys, "%s", find(&x, n, ALERT_SIGNAL, "hys-law")->alert_id);
    CHECK(subject_state_is_standing(x.st, hys));

    n = apply(&x, &alp);
    CHECK_EQ_INT(x.res.retracted, 1);
    const struct alert *w = find(&x, n, ALERT_RETRACTION, "hys-law");
    CHECK(w != NULL);
    if (w != NULL) {
        CHECK_EQ_STR(w->retracts_alert_id, hys);
        CHECK_EQ_STR(w->evidence[0].observation_id, "alp");
        CHECK(strstr(w->message, "result alp (6768-6, dated 2026-03-06) arrived and changes "
                                 "the verdict") != NULL);
    }
    CHECK_EQ_INT(count(&x, n, ALERT_SIGNAL, "ctcae"), 1); /* the ALP's own grade */
    CHECK(!subject_state_is_standing(x.st, hys));
    CHECK(subject_state_is_retired(x.st, hys));

    struct observation gone = alp;
    gone.status = OBS_ENTERED_IN_ERROR;
    gone.issued_ms += DAY;
    n = apply(&x, &gone);
    const struct alert *again = find(&x, n, ALERT_SIGNAL, "hys-law");
    CHECK(again != NULL);
    char want[ALERT_ID_MAX + 1];
    retract_reinstated_id(hys, want, sizeof want);
    if (again != NULL) {
        CHECK_EQ_STR(again->alert_id, want);
        CHECK_EQ_STR(again->evidence[0].observation_id, "alt");
        CHECK_EQ_STR(again->evidence[1].observation_id, "bili");
    }
    CHECK_EQ_INT(x.res.raised, 1);
    CHECK_EQ_INT(count(&x, n, ALERT_RETRACTION, "ctcae"), 1); /* the ALP's grade */

    struct observation bili_gone = bili;
    bili_gone.status = OBS_ENTERED_IN_ERROR;
    bili_gone.issued_ms += DAY;
    n = apply(&x, &bili_gone);
    w = find(&x, n, ALERT_RETRACTION, "hys-law");
    CHECK(w != NULL && strcmp(w->retracts_alert_id, want) == 0);
    teardown(&x);
}

/* An older version after a newer one changes nothing and publishes
 * nothing; the same version again is a replay and republishes what the
 * result raises. */
static void test_stale_and_replay(void)
{
    struct run x;
    setup(&x, rules_v1);
    struct observation k = mk("k", LOINC_POTASSIUM, 6.8, 5.1, 0);
    struct observation fixed = k;
    fixed.value = 4.5;
    fixed.status = OBS_AMENDED;
    fixed.issued_ms += DAY;
    CHECK_EQ_INT(apply(&x, &fixed), 0);
    CHECK_EQ_INT(apply(&x, &k), 0);
    CHECK(x.res.stale);
    const struct subject_result *res;
    CHECK_EQ_INT(subject_state_results(x.st, LOINC_POTASSIUM, &res), 1);
    CHECK(res[0].value == 4.5);

    struct observation k2 = mk("k2", LOINC_POTASSIUM, 6.8, 5.1, 1);
    CHECK_EQ_INT(apply(&x, &k2), 1);
    CHECK(!x.res.replay && x.res.raised == 1);
    CHECK_EQ_INT(apply(&x, &k2), 1);
    CHECK(x.res.replay && x.res.raised == 0);
    teardown(&x);
}

/* A late earlier creatinine becomes the baseline: the result sent before it
 * is re-graded (G1 by ULN -> G2 by 1.56x baseline) and rises. */
static void test_late_baseline(void)
{
    struct run x;
    setup(&x, rules_v1);
    struct observation a = mk("a", LOINC_CREATININE, 125, 97, 7);
    struct observation base = mk("base", LOINC_CREATININE, 80, 97, 0);
    int n = apply(&x, &a);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(x.out[0].ctcae_grade, 1);
    n = apply(&x, &base);
    CHECK_EQ_INT(x.res.rejudged, 1);
    CHECK_EQ_INT(x.res.raised, 2);
    CHECK_EQ_INT(x.res.retracted, 1);
    const struct alert *g = find(&x, n, ALERT_SIGNAL, "ctcae");
    CHECK(g != NULL && g->ctcae_grade == 2 && strcmp(g->evidence[0].observation_id, "a") == 0);
    CHECK(find(&x, n, ALERT_SIGNAL, "creat-rise") != NULL);
    teardown(&x);
}

/* Rules reloaded at version 2 since an alert of version 1 stood: a late
 * result that reaches it, or a replay of its own result, neither withdraws
 * it nor raises the version 2 alert about the same result (no second page
 * for the same finding); a new version of the result itself is judged by
 * the rules loaded now. */
static void test_rule_version_left_alone(void)
{
    struct run x;
    setup(&x, rules_v1);
    struct observation a = mk("a", LOINC_CREATININE, 125, 97, 7);
    apply(&x, &a);
    struct rules *v2 = parse("version: 1\nrules:\n"
                             "  - {id: ctcae, version: 2, kind: ctcae, min_grade: 1}\n");
    rules_destroy(x.r);
    x.r = v2;
    struct observation later = mk("later", LOINC_CREATININE, 90, 97, 0); /* a new baseline */
    int n = apply(&x, &later);
    CHECK_EQ_INT(x.res.rejudged, 1);
    CHECK_EQ_INT(n, 0);
    const struct subject_alert *sa;
    CHECK_EQ_INT(subject_state_alerts(x.st, &sa), 1);
    CHECK_EQ_INT(sa[0].rule_version, 1);
    n = apply(&x, &a); /* a replay */
    CHECK(x.res.replay);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(subject_state_alerts(x.st, &sa), 1);
    struct observation fixed = a;
    fixed.value = 60;
    fixed.status = OBS_CORRECTED;
    fixed.issued_ms += DAY;
    n = apply(&x, &fixed);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(x.res.retracted, 1);
    CHECK_EQ_INT(x.out[0].kind, ALERT_RETRACTION);
    CHECK_EQ_INT(x.out[0].rule_version, 1);
    teardown(&x);
}

/* Symptom worsening: a late report in between re-judges the one after. */
static void test_worsening(void)
{
    struct run x;
    setup(&x, "version: 1\nrules:\n"
              "  - {id: worse, version: 1, kind: pro_ctcae_worsening, severity: warning}\n");
    struct observation a = mk("a", "PRO-FATIGUE-SEV", 0, 1, 0);
    struct observation c = mk("c", "PRO-FATIGUE-SEV", 2, 1, 14);
    struct observation b = mk("b", "PRO-FATIGUE-SEV", 1, 1, 7);
    a.has_ref_low = a.has_ref_high = b.has_ref_low = b.has_ref_high = false;
    c.has_ref_low = c.has_ref_high = false;
    apply(&x, &a);
    int n = apply(&x, &c);
    CHECK_EQ_INT(count(&x, n, ALERT_SIGNAL, "worse"), 1);
    CHECK(strstr(x.out[0].message, "worse by 2: moderate (2)") != NULL);
    CHECK_EQ_STR(x.out[0].evidence[1].observation_id, "a");
    n = apply(&x, &b);
    CHECK_EQ_INT(count(&x, n, ALERT_RETRACTION, "worse"), 1);
    CHECK_EQ_INT(count(&x, n, ALERT_SIGNAL, "worse"), 0);
    teardown(&x);
}

int main(void)
{
    test_late_alp();
    test_stale_and_replay();
    test_late_baseline();
    test_rule_version_left_alone();
    test_worsening();
    return testlib_done();
}
