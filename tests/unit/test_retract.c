/*
 * The retraction policy (consumer/retract.c) and the subject memory it
 * works on: the raised-alert list of consumer/subject_state.c and the
 * per-thread subject cache (consumer/subject_cache.c). Pure modules, no
 * services.
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

/* still_stands double: answers STANDS for alert ids listed in it, and
 * records every alert it was asked about. */
struct oracle {
    const char *stands[4];
    int nasked;
    char asked[8][ALERT_ID_MAX + 1];
};

static bool oracle_ask(void *arg, const struct subject_alert *r)
{
    struct oracle *o = arg;
    if (o->nasked < 8)
        snprintf(o->asked[o->nasked++], ALERT_ID_MAX + 1, "%s", r->alert_id);
    for (int i = 0; i < 4 && o->stands[i] != NULL; i++)
        if (strcmp(o->stands[i], r->alert_id) == 0)
            return true;
    return false;
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

static int plan(const struct subject_state *st, const struct observation *obs,
                const struct alert *now, int nnow, struct oracle *o, struct alert *out, int max_out)
{
    const struct subject_alert *raised;
    int n = subject_state_alerts(st, &raised);
    return retract_alerts(raised, n, obs, now, nnow, oracle_ask, o, NOW_MS, out, max_out);
}

static void test_ids_pinned(void)
{
    char id[ALERT_ID_MAX + 1];
    retract_alert_id("0123456789abcdef0123456789abcdef", id, sizeof id);
    CHECK_EQ_STR(id, "eed7e590dbf51c8e430ada0347ae37d1");
    retract_alert_id("", id, sizeof id);
    CHECK_EQ_STR(id, "b80bff3396d5fffef3650319c2547ab1");
}

static void test_entered_in_error_withdraws_what_cites_it(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-k", OBS_ENTERED_IN_ERROR);
    struct oracle o = {{NULL}, 0, {{0}}};
    struct alert out[MAXOUT];
    int n = plan(st, &obs, NULL, 0, &o, out, MAXOUT);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(out[0].retracts_alert_id, "a1"); /* oldest first */
    CHECK_EQ_STR(out[1].retracts_alert_id, "a2");
    CHECK_EQ_INT(o.nasked, 2); /* asked only about the alerts citing obs-k */

    const struct alert *r = &out[0];
    char want[ALERT_ID_MAX + 1];
    retract_alert_id("a1", want, sizeof want);
    CHECK_EQ_STR(r->alert_id, want);
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

static void test_final_withdraws_nothing(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-k", OBS_FINAL);
    struct oracle o = {{NULL}, 0, {{0}}};
    struct alert out[MAXOUT];
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &o, out, MAXOUT), 0);
    CHECK_EQ_INT(o.nasked, 0);
    subject_state_destroy(st);
}

/* An amendment that raises the same alert again keeps it (without asking
 * the rules); one that does not, withdraws it, with the reason named. */
static void test_amended_keeps_what_it_raises_again(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-k", OBS_AMENDED);
    const char *k[] = {"obs-k", NULL};
    struct alert now[1] = {signal("a2", "ctcae", k)};
    struct oracle o = {{NULL}, 0, {{0}}};
    struct alert out[MAXOUT];
    int n = plan(st, &obs, now, 1, &o, out, MAXOUT);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_STR(out[0].retracts_alert_id, "a1");
    CHECK(strstr(out[0].message, "was amended") != NULL);
    CHECK_EQ_INT(o.nasked, 1);
    CHECK_EQ_STR(o.asked[0], "a1");

    obs.status = OBS_CORRECTED; /* reads as an amendment */
    CHECK_EQ_INT(plan(st, &obs, now, 1, &o, out, MAXOUT), 1);
    CHECK(strstr(out[0].message, "was amended") != NULL);
    obs.status = OBS_CANCELLED;
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &o, out, MAXOUT), 2);
    CHECK(strstr(out[0].message, "was cancelled") != NULL);
    subject_state_destroy(st);
}

/* Hy's law outlives the supporting ALP entered in error when its rule
 * reconfirms it; withdrawn when it does not. */
static void test_reconfirmed_alert_stands(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-alp", OBS_ENTERED_IN_ERROR);
    struct oracle o = {{"a3", NULL}, 0, {{0}}};
    struct alert out[MAXOUT];
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &o, out, MAXOUT), 0);
    CHECK_EQ_INT(o.nasked, 1);
    CHECK_EQ_STR(o.asked[0], "a3");

    struct oracle no = {{NULL}, 0, {{0}}};
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &no, out, MAXOUT), 1);
    CHECK_EQ_STR(out[0].retracts_alert_id, "a3");
    CHECK_EQ_STR(out[0].rule_id, "hys-law");
    subject_state_destroy(st);
}

static void test_bounded_by_room(void)
{
    struct subject_state *st = subject_with_alerts();
    struct observation obs = result("obs-k", OBS_ENTERED_IN_ERROR);
    struct oracle o = {{NULL}, 0, {{0}}};
    struct alert out[MAXOUT];
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &o, out, 1), 1);
    CHECK_EQ_STR(out[0].retracts_alert_id, "a1");
    CHECK_EQ_INT(plan(st, &obs, NULL, 0, &o, out, 0), 0);
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
    CHECK_EQ_INT(r[2].nobs, 3);
    CHECK_EQ_STR(r[2].obs_ids[2], "obs-alp");

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

/* The cache: fresh on first sight and after a rebalance (state emptied),
 * known only in its generation, least recently used evicted, drop. */
static void test_cache(void)
{
    struct subject_cache *c = subject_cache_new(2);
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

int main(void)
{
    test_ids_pinned();
    test_entered_in_error_withdraws_what_cites_it();
    test_final_withdraws_nothing();
    test_amended_keeps_what_it_raises_again();
    test_reconfirmed_alert_stands();
    test_bounded_by_room();
    test_alert_memory();
    test_cache();
    return testlib_done();
}
