/*
 * Withdrawing alerts (consumer/retract.c: retraction alerts, their ids and
 * the ids of signals raised again) and the subject memory around it: the
 * standing and withdrawn alert lists of consumer/subject_state.c and the
 * per-thread subject cache (consumer/subject_cache.c). Pure modules, no
 * services. Which alerts a result withdraws is test_reconcile's.
 *
 * Retraction ids are pinned to values written down before the policy left
 * analyse.c (the recipe in retract.h, recomputed independently in Python):
 * stored rows and delivered notifications name them, so they must never
 * change.
 */
#include <stdio.h>
#include <string.h>

#include "retract.h"
#include "subject_cache.h"
#include "subject_state.h"
#include "testlib.h"

#define NOW_MS 1780000000000LL
#define MAXOUT 16

static struct observation result(const char *id, enum obs_status status)
{
    struct observation o = {0};
    snprintf(o.observation_id, sizeof o.observation_id, "%s", id);
    snprintf(o.study_id, sizeof o.study_id, "STUDY-1");
    snprintf(o.site_id, sizeof o.site_id, "SITE-7");
    snprintf(o.subject_id, sizeof o.subject_id, "SUBJ-0042");
    snprintf(o.loinc, sizeof o.loinc, "2823-3");
    o.has_value = true;
    o.value = 6.8;
    snprintf(o.unit, sizeof o.unit, "mmol/L");
    o.effective_ms = 1772323200000LL;
    o.status = status;
    return o;
}

/* A signal raised by RULE from the evidence IDS (NULL-terminated). */
static struct alert signal(const char *alert_id, const char *rule, const char *const *ids)
{
    struct alert a = {0};
    snprintf(a.alert_id, sizeof a.alert_id, "%s", alert_id);
    a.kind = ALERT_SIGNAL;
    snprintf(a.rule_id, sizeof a.rule_id, "%s", rule);
    a.rule_version = 3;
    a.severity = SEV_CRITICAL;
    for (; *ids != NULL && a.n_evidence < ALERT_EVIDENCE_MAX; ids++)
        snprintf(a.evidence[a.n_evidence++].observation_id, OBS_ID_MAX + 1, "%s", *ids);
    return a;
}

/* A subject state that has raised: A1 (k-critical, from obs-k), A2 (ctcae,
 * from obs-k), A3 (hys-law, from obs-alt, obs-bili, obs-alp), A4 (from
 * obs-other), in that order. */
static struct subject_state *subject_with_alerts(void)
{
    struct subject_state *st = subject_state_new();
    CHECK(st != NULL);
    const char *k[] = {"obs-k", NULL};
    const char *hy[] = {"obs-alt", "obs-bili", "obs-alp", NULL};
    const char *other[] = {"obs-other", NULL};
    struct alert a1 = signal("a1", "k-critical", k), a2 = signal("a2", "ctcae", k),
                 a3 = signal("a3", "hys-law", hy), a4 = signal("a4", "k-high", other);
    subject_state_alert_add(st, &a1);
    subject_state_alert_add(st, &a2);
    subject_state_alert_add(st, &a3);
    subject_state_alert_add(st, &a4);
    return st;
}

static void test_ids_pinned(void)
{
    char id[ALERT_ID_MAX + 1];
    retract_alert_id("0123456789abcdef0123456789abcdef", id, sizeof id);
    CHECK_EQ_STR(id, "eed7e590dbf51c8e430ada0347ae37d1");
    retract_alert_id("", id, sizeof id);
    CHECK_EQ_STR(id, "b80bff3396d5fffef3650319c2547ab1");
    /* a signal raised again: another id, and another again after that */
    char again[ALERT_ID_MAX + 1], third[ALERT_ID_MAX + 1];
    retract_reinstated_id("0123456789abcdef0123456789abcdef", again, sizeof again);
    CHECK_EQ_INT(strlen(again), 32);
    CHECK(strcmp(again, "0123456789abcdef0123456789abcdef") != 0);
    CHECK(strcmp(again, id) != 0);
    retract_reinstated_id(again, third, sizeof third);
    CHECK(strcmp(third, again) != 0);
    char again2[ALERT_ID_MAX + 1];
    retract_reinstated_id("0123456789abcdef0123456789abcdef", again2, sizeof again2);
    CHECK_EQ_STR(again2, again); /* deterministic */
}

static void test_retraction_alert(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-k", OBS_ENTERED_IN_ERROR);
    const struct subject_alert *raised;
    CHECK_EQ_INT(subject_state_alerts(st, &raised), 4);
    struct alert out[1];
    retract_make(&raised[0], &obs, NULL, NOW_MS, &out[0]);

    const struct alert *r = &out[0];
    char want[ALERT_ID_MAX + 1];
    retract_alert_id("a1", want, sizeof want);
    CHECK_EQ_STR(r->alert_id, want);
    CHECK_EQ_STR(r->retracts_alert_id, "a1");
    CHECK_EQ_INT(r->kind, ALERT_RETRACTION);
    CHECK_EQ_STR(r->rule_id, "k-critical");
    CHECK_EQ_INT(r->rule_version, 3);
    CHECK_EQ_INT(r->severity, SEV_CRITICAL);
    CHECK_EQ_INT(r->ctcae_grade, 0);
    CHECK_EQ_STR(r->study_id, "STUDY-1");
    CHECK_EQ_STR(r->site_id, "SITE-7");
    CHECK_EQ_STR(r->subject_id, "SUBJ-0042");
    CHECK_EQ_INT(r->n_evidence, 1);
    CHECK_EQ_STR(r->evidence[0].observation_id, "obs-k");
    CHECK_EQ_STR(r->evidence[0].loinc, "2823-3");
    CHECK(r->evidence[0].value == 6.8);
    CHECK_EQ_STR(r->evidence[0].unit, "mmol/L");
    CHECK_EQ_INT(r->evidence[0].effective_ms, obs.effective_ms);
    CHECK_EQ_INT(r->observed_ms, obs.effective_ms);
    CHECK_EQ_INT(r->detected_ms, NOW_MS);
    CHECK_EQ_STR(r->message, "Withdrawn: alert a1 (rule k-critical) no longer stands: result "
                             "obs-k was entered in error");
    subject_state_destroy(st);
}

/* The reason names what the result did. */
static void test_retraction_reasons(void)
{
    struct subject_state *st = subject_with_alerts();
    const struct subject_alert *raised;
    subject_state_alerts(st, &raised);
    struct alert out;
    struct observation obs = result("obs-k", OBS_AMENDED);
    retract_make(&raised[0], &obs, NULL, NOW_MS, &out);
    CHECK(strstr(out.message, "result obs-k was amended") != NULL);
    obs.status = OBS_CORRECTED; /* reads as an amendment */
    retract_make(&raised[0], &obs, NULL, NOW_MS, &out);
    CHECK(strstr(out.message, "was amended") != NULL);
    obs.status = OBS_CANCELLED;
    retract_make(&raised[0], &obs, NULL, NOW_MS, &out);
    CHECK(strstr(out.message, "was cancelled") != NULL);
    obs.status = OBS_AMENDED;
    retract_make(&raised[0], &obs, "future_effective_time", NOW_MS, &out);
    CHECK(strstr(out.message, "replaced by a version that is not analysed "
                              "(future_effective_time)") != NULL);
    struct observation alp = result("obs-alp", OBS_FINAL);
    snprintf(alp.loinc, sizeof alp.loinc, "6768-6");
    retract_make(&raised[2], &alp, NULL, NOW_MS, &out);
    CHECK_EQ_STR(out.message, "Withdrawn: alert a3 (rule hys-law) no longer stands: result "
                              "obs-alp (6768-6, dated 2026-03-01) arrived and changes the verdict");
    CHECK_EQ_STR(out.evidence[0].observation_id, "obs-alp");
    subject_state_destroy(st);
}

/* The raised-alert memory: no duplicates, oldest first, bounded (oldest
 * forgotten), forget keeps the order, reset empties. */
static void test_alert_memory(void)
{
    struct subject_state *st = subject_with_alerts();
    const struct subject_alert *r;
    const char *k[] = {"obs-k", NULL};
    struct alert again = signal("a2", "ctcae", k);
    subject_state_alert_add(st, &again);
    CHECK_EQ_INT(subject_state_alerts(st, &r), 4);
    CHECK_EQ_INT(r[2].nobs, 3); /* counted; the first SUBJECT_ALERT_IDS kept */
    CHECK_EQ_STR(r[2].obs_ids[0], "obs-alt");
    CHECK_EQ_STR(r[2].obs_ids[1], "obs-bili");

    CHECK(subject_state_alert_forget(st, "a2"));
    CHECK(!subject_state_alert_forget(st, "a2"));
    CHECK_EQ_INT(subject_state_alerts(st, &r), 3);
    CHECK_EQ_STR(r[0].alert_id, "a1");
    CHECK_EQ_STR(r[1].alert_id, "a3");
    CHECK_EQ_STR(r[2].alert_id, "a4");

    for (int i = 0; i < SUBJECT_STATE_ALERTS_MAX; i++) {
        char id[16];
        snprintf(id, sizeof id, "b%02d", i);
        struct alert b = signal(id, "k-high", k);
        subject_state_alert_add(st, &b);
    }
    CHECK_EQ_INT(subject_state_alerts(st, &r), SUBJECT_STATE_ALERTS_MAX);
    CHECK_EQ_STR(r[0].alert_id, "b00"); /* a1, a3, a4 forgotten, oldest first */
    CHECK_EQ_STR(r[SUBJECT_STATE_ALERTS_MAX - 1].alert_id, "b63");

    subject_state_reset(st);
    CHECK_EQ_INT(subject_state_alerts(st, &r), 0);
    subject_state_alert_add(st, &again);
    CHECK_EQ_INT(subject_state_alerts(st, &r), 1);
    subject_state_destroy(st);
}

/* Withdrawn alerts: retiring moves a standing alert to the withdrawn list
 * (once), raising it again takes it off; bounded, oldest forgotten; reset
 * empties both. */
static void test_withdrawn_memory(void)
{
    struct subject_state *st = subject_with_alerts();
    const struct subject_alert *r;
    CHECK(subject_state_alert_retire(st, "a3"));
    CHECK(!subject_state_alert_retire(st, "a3"));
    CHECK(!subject_state_is_standing(st, "a3"));
    CHECK(subject_state_is_retired(st, "a3"));
    CHECK_EQ_INT(subject_state_alerts(st, &r), 3);
    CHECK_EQ_INT(subject_state_retired(st, &r), 1);
    CHECK_EQ_STR(r[0].obs_ids[1], "obs-bili");

    const char *k[] = {"obs-k", NULL};
    struct alert back = signal("a3", "hys-law", k);
    subject_state_alert_add(st, &back);
    CHECK(subject_state_is_standing(st, "a3"));
    CHECK(!subject_state_is_retired(st, "a3"));

    for (int i = 0; i < SUBJECT_STATE_RETIRED_MAX + 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%02d", i);
        struct alert w = signal(id, "k-high", k);
        subject_state_retired_add(st, &w);
    }
    CHECK_EQ_INT(subject_state_retired(st, &r), SUBJECT_STATE_RETIRED_MAX);
    CHECK_EQ_STR(r[0].alert_id, "w03");
    CHECK(!subject_state_is_retired(st, "w00"));
    subject_state_reset(st);
    CHECK_EQ_INT(subject_state_retired(st, &r), 0);
    CHECK_EQ_INT(subject_state_alerts(st, &r), 0);
    subject_state_destroy(st);
}

/* The cache: fresh on first sight and after a rebalance (state emptied),
 * known only in its generation, least recently used evicted, drop. */
static void test_cache(void)
{
    struct subject_cache *c = subject_cache_new(2, 0);
    CHECK(c != NULL);
    bool fresh = false;
    struct subject_state *a = subject_cache_get(c, "S/1", 1, &fresh);
    CHECK(a != NULL && fresh);
    CHECK(subject_cache_known(c, "S/1", 1));
    CHECK(!subject_cache_known(c, "S/1", 2));
    CHECK(!subject_cache_known(c, "S/2", 1));
    const char *k[] = {"obs-k", NULL};
    struct alert al = signal("a1", "k-critical", k);
    subject_state_alert_add(a, &al);

    CHECK(subject_cache_get(c, "S/1", 1, &fresh) == a && !fresh);
    const struct subject_alert *r;
    CHECK_EQ_INT(subject_state_alerts(a, &r), 1);
    CHECK(subject_cache_get(c, "S/1", 2, &fresh) == a && fresh); /* rebalance */
    CHECK_EQ_INT(subject_state_alerts(a, &r), 0);
    CHECK(subject_cache_known(c, "S/1", 2));

    struct subject_state *b = subject_cache_get(c, "S/2", 2, &fresh);
    CHECK(b != NULL && fresh);
    CHECK(subject_cache_get(c, "S/1", 2, &fresh) == a && !fresh); /* S/1 most recent */
    CHECK(subject_cache_get(c, "S/3", 2, &fresh) != NULL && fresh);
    CHECK(!subject_cache_known(c, "S/2", 2)); /* least recently used, evicted */
    CHECK(subject_cache_known(c, "S/1", 2));
    CHECK(subject_cache_known(c, "S/3", 2));

    subject_cache_drop(c, "S/1");
    subject_cache_drop(c, "S/9"); /* not there: no-op */
    CHECK(!subject_cache_known(c, "S/1", 2));
    CHECK(subject_cache_get(c, "S/1", 2, &fresh) != NULL && fresh);
    subject_cache_destroy(c);
    subject_cache_destroy(NULL);
}

/* The cache's memory budget: a subject whose state grew is measured at
 * settle, and the least recently used are evicted while over the budget,
 * never the most recent; bytes go down with evictions and drops. */
static void test_cache_budget(void)
{
    bool fresh;
    struct subject_cache *c = subject_cache_new(1000, 40000);
    struct subject_state *a = subject_cache_get(c, "S/1", 1, &fresh);
    subject_cache_settle(c);
    size_t small = subject_cache_bytes(c);
    CHECK(small > 0 && small < 40000);
    for (int i = 0; i < 60; i++) { /* 60 alerts remembered: a state of several KiB */
        char id[32];
        snprintf(id, sizeof id, "a%d", i);
        const char *k[] = {"obs-k", NULL};
        struct alert al = signal(id, "k-critical", k);
        subject_state_alert_add(a, &al);
    }
    subject_cache_settle(c);
    size_t grown = subject_cache_bytes(c);
    CHECK(grown > small + 10000);
    CHECK(subject_cache_known(c, "S/1", 1)); /* the most recent is never evicted */
    /* More subjects, each grown the same way, until S/1 no longer fits. */
    int n = 2;
    for (; n < 20 && subject_cache_known(c, "S/1", 1); n++) {
        char key[16];
        snprintf(key, sizeof key, "S/%d", n);
        struct subject_state *b = subject_cache_get(c, key, 1, &fresh);
        for (int i = 0; i < 60; i++) {
            char id[32];
            snprintf(id, sizeof id, "b%d", i);
            const char *k[] = {"obs-k", NULL};
            struct alert al = signal(id, "k-critical", k);
            subject_state_alert_add(b, &al);
        }
        subject_cache_settle(c);
        CHECK(subject_cache_bytes(c) <= 40000 || n == 2);
    }
    printf("budget 40000 bytes: a grown state is %zu bytes; S/1 evicted after %d more\n",
           grown, n - 2);
    CHECK(!subject_cache_known(c, "S/1", 1)); /* the least recently used went first */
    CHECK(subject_cache_bytes(c) <= 40000);
    size_t before = subject_cache_bytes(c);
    char last[16];
    snprintf(last, sizeof last, "S/%d", n - 1);
    subject_cache_drop(c, last);
    CHECK(subject_cache_bytes(c) < before);
    subject_cache_destroy(c);
}

int main(void)
{
    test_cache_budget();
    test_ids_pinned();
    test_retraction_alert();
    test_retraction_reasons();
    test_alert_memory();
    test_withdrawn_memory();
    test_cache();
    return testlib_done();
}
