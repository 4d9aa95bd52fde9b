/*
 * reconcile: a result's effect on its subject's standing alerts (see
 * reconcile.h for what is kept true and how far a result reaches).
 *
 * DESIGN: apply, then judge the reach again from the state, then diff.
 * The alternative -- work out incrementally which alerts a change adds or
 * removes, per rule kind -- needs a second implementation of every rule's
 * logic (what does a new baseline do to a grade?) that can drift from the
 * first. Judging again reuses rules_eval_deps() as it is, so a reconciled
 * verdict is by construction the verdict the same results give in time
 * order, and the diff is the one place that knows about standing alerts.
 *
 * The reach is kept small so that the usual case -- the latest result of a
 * subject, in order -- judges that result alone (and, for the liver tests,
 * the few within the Hy's law window): a baseline changes only when an
 * earlier result arrives late or the baseline is withdrawn, a previous
 * report only when a report arrives out of order.
 *
 * Scratch: the truth (alerts judged), the reach (result ids) and the
 * output grow on demand and are kept for the next call; bounded by the
 * state's bounds (codes x kept results x rules).
 */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctcae.h"
#include "hash.h"
#include "retract.h"

/* Both sets are searched for every standing alert and every kept pair
 * result, so an id's hash is compared before its text (ids share long
 * prefixes; strcmp was 3 % of the worker's CPU samples). */
struct reach {
    char id[OBS_ID_MAX + 1];
    uint64_t h;
    unsigned deps; /* enum rules_dep classes it is judged again by */
    /* the kept result and its code, as found when it joined the reach:
     * the state does not change while the reach is judged, and looking
     * each one up again scanned every kept result of the subject */
    const struct subject_result *res;
    const char *code;
};

struct touch {
    char id[OBS_ID_MAX + 1];
    uint64_t h;
};

struct reconcile {
    struct alert *truth; /* alerts the rules raise within the reach */
    bool *own;           /* truth[i] was raised by the arriving result itself */
    int ntruth, cap_truth;
    struct alert *eval; /* one rules_eval_deps() call */
    int cap_eval;
    struct reach *reach;
    int nreach, cap_reach;
    struct touch *touch; /* results a pair alert must involve to be within reach */
    int ntouch, cap_touch;
    struct alert *out;
    int nout, cap_out;
};

struct reconcile *reconcile_new(void)
{
    return calloc(1, sizeof(struct reconcile));
}

void reconcile_destroy(struct reconcile *rc)
{
    if (rc == NULL)
        return;
    free(rc->truth);
    free(rc->own);
    free(rc->eval);
    free(rc->reach);
    free(rc->touch);
    free(rc->out);
    free(rc);
}

/* Grows *P (elements of SIZE bytes, *CAP of them) to hold at least NEED. */
static bool grow(void **p, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return true;
    int n = *cap > 0 ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (q == NULL)
        return false;
    *p = q;
    *cap = n;
    return true;
}

static bool usable(const struct observation *obs, const struct clean_result *c)
{
    return (obs->status == OBS_FINAL || obs->status == OBS_AMENDED ||
            obs->status == OBS_CORRECTED) &&
           obs->has_value && c->status == CLEAN_OK;
}

static bool is_pair_code(const char *code)
{
    return strcmp(code, LOINC_ALT) == 0 || strcmp(code, LOINC_AST) == 0 ||
           strcmp(code, LOINC_BILIRUBIN) == 0 || strcmp(code, LOINC_ALP) == 0;
}

/* ---- the reach ---------------------------------------------------------- */

static uint64_t id_hash(const char *id)
{
    return hash_str(id, HASH_SEED);
}

static bool reach_add(struct reconcile *rc, const struct subject_result *res, const char *code,
                      unsigned deps)
{
    const char *id = subject_result_id(res);
    uint64_t h = id_hash(id);
    for (int i = 0; i < rc->nreach; i++) {
        if (rc->reach[i].h == h && strcmp(rc->reach[i].id, id) == 0) {
            rc->reach[i].deps |= deps;
            return true;
        }
    }
    if (!grow((void **)&rc->reach, &rc->cap_reach, rc->nreach + 1, sizeof rc->reach[0]))
        return false;
    struct reach *r = &rc->reach[rc->nreach++];
    snprintf(r->id, sizeof r->id, "%s", id);
    r->h = h;
    r->deps = deps;
    r->res = res;
    r->code = code;
    return true;
}

static unsigned reach_deps(const struct reconcile *rc, const char *id)
{
    if (rc->nreach == 0)
        return 0;
    uint64_t h = id_hash(id);
    for (int i = 0; i < rc->nreach; i++)
        if (rc->reach[i].h == h && strcmp(rc->reach[i].id, id) == 0)
            return rc->reach[i].deps;
    return 0;
}

static bool touch_add(struct reconcile *rc, const char *id)
{
    uint64_t h = id_hash(id);
    for (int i = 0; i < rc->ntouch; i++)
        if (rc->touch[i].h == h && strcmp(rc->touch[i].id, id) == 0)
            return true;
    if (!grow((void **)&rc->touch, &rc->cap_touch, rc->ntouch + 1, sizeof rc->touch[0]))
        return false;
    snprintf(rc->touch[rc->ntouch].id, OBS_ID_MAX + 1, "%s", id);
    rc->touch[rc->ntouch++].h = h;
    return true;
}

static bool touched(const struct reconcile *rc, const char *id)
{
    if (rc->ntouch == 0)
        return false;
    uint64_t h = id_hash(id);
    for (int i = 0; i < rc->ntouch; i++)
        if (rc->touch[i].h == h && strcmp(rc->touch[i].id, id) == 0)
            return true;
    return false;
}

/* A code's baseline as it was before the change, to tell whether it moved. */
struct base_seen {
    bool have;
    struct subject_result r; /* its id is not read: the change may have freed it */
    char id[OBS_ID_MAX + 1];
};

static void base_note(const struct subject_state *st, const char *code, struct base_seen *b)
{
    const struct subject_result *r = subject_state_baseline(st, code);
    b->have = r != NULL;
    if (r != NULL) {
        b->r = *r;
        snprintf(b->id, sizeof b->id, "%s", subject_result_id(r));
    }
}

static bool base_moved(const struct subject_state *st, const char *code, const struct base_seen *b)
{
    const struct subject_result *r = subject_state_baseline(st, code);
    if ((r != NULL) != b->have)
        return true;
    if (r == NULL)
        return false;
    return strcmp(subject_result_id(r), b->id) != 0 ||
           r->effective_ms != b->r.effective_ms || r->value != b->r.value ||
           r->has_ref_low != b->r.has_ref_low || r->ref_low != b->r.ref_low ||
           r->has_ref_high != b->r.has_ref_high || r->ref_high != b->r.ref_high;
}

/* The kept result of CODE right after (T, ID) in time order, not ID. */
static const struct subject_result *next_after(const struct subject_state *st, const char *code,
                                               int64_t t, const char *id)
{
    const struct subject_result *res;
    int n = subject_state_results(st, code, &res);
    for (int i = 0; i < n; i++) {
        if (res[i].effective_ms < t ||
            (res[i].effective_ms == t && strcmp(subject_result_id(&res[i]), id) <= 0))
            continue;
        return &res[i];
    }
    return NULL;
}

static int64_t distance(int64_t a, int64_t b)
{
    return a > b ? a - b : b - a;
}

/* The transaminase and bilirubin results near the times AT[0..NAT-1]: those
 * within W join the touch set, those within 2W the reach (a pair with a
 * member within W may have its other member W further). */
static bool reach_pairs(struct reconcile *rc, const struct subject_state *st, const char *self,
                        const int64_t *at, int nat, int64_t w)
{
    static const char *const codes[] = {LOINC_ALT, LOINC_AST, LOINC_BILIRUBIN};
    for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
        const struct subject_result *res;
        int n = subject_state_results(st, codes[k], &res);
        for (int i = 0; i < n; i++) {
            int64_t d = INT64_MAX;
            for (int j = 0; j < nat; j++)
                if (distance(res[i].effective_ms, at[j]) < d)
                    d = distance(res[i].effective_ms, at[j]);
            if (d > 2 * w)
                continue;
            if (d <= w && !touch_add(rc, subject_result_id(&res[i])))
                return false;
            if (strcmp(subject_result_id(&res[i]), self) != 0 &&
                !reach_add(rc, &res[i], codes[k], RULES_DEP_PAIR))
                return false;
        }
    }
    return true;
}

/* ---- judging ------------------------------------------------------------ */

static bool truth_add(struct reconcile *rc, const struct alert *a, bool own)
{
    for (int i = 0; i < rc->ntruth; i++) {
        if (strcmp(rc->truth[i].alert_id, a->alert_id) == 0) {
            rc->own[i] = rc->own[i] || own;
            return true;
        }
    }
    int cap = rc->cap_truth;
    if (!grow((void **)&rc->truth, &rc->cap_truth, rc->ntruth + 1, sizeof rc->truth[0]))
        return false;
    if (rc->cap_truth != cap) {
        bool *o = realloc(rc->own, (size_t)rc->cap_truth * sizeof *o);
        if (o == NULL)
            return false;
        rc->own = o;
    }
    rc->truth[rc->ntruth] = *a;
    rc->own[rc->ntruth] = own;
    rc->ntruth++;
    return true;
}

/* A pair alert is within reach if one of its pair is touched. */
static bool pair_touched(const struct reconcile *rc, int nobs, const char (*ids)[OBS_ID_MAX + 1])
{
    return (nobs > 0 && touched(rc, ids[0])) || (nobs > 1 && touched(rc, ids[1]));
}

/* Judges the kept result X of CODE again by the rules of classes DEPS, as
 * if it arrived now from OBS's subject. */
static bool judge_kept(struct reconcile *rc, const struct rules *r, const struct subject_state *st,
                       const struct observation *subj, const struct subject_result *x,
                       const char *code, unsigned deps, int64_t now_ms)
{
    struct observation o;
    memset(&o, 0, sizeof o);
    snprintf(o.observation_id, sizeof o.observation_id, "%s", subject_result_id(x));
    snprintf(o.study_id, sizeof o.study_id, "%s", subj->study_id);
    snprintf(o.site_id, sizeof o.site_id, "%s", subj->site_id);
    snprintf(o.subject_id, sizeof o.subject_id, "%s", subj->subject_id);
    snprintf(o.loinc, sizeof o.loinc, "%s", code);
    o.has_value = true;
    o.value = x->value;
    const char *unit = clean_canonical_unit(code);
    snprintf(o.unit, sizeof o.unit, "%s", unit != NULL ? unit : "");
    o.has_ref_low = x->has_ref_low;
    o.ref_low = x->ref_low;
    o.has_ref_high = x->has_ref_high;
    o.ref_high = x->ref_high;
    o.effective_ms = x->effective_ms;
    o.status = OBS_FINAL;
    struct clean_result c = {.status = CLEAN_OK,
                             .value = x->value,
                             .unit = unit,
                             .has_ref_low = x->has_ref_low,
                             .ref_low = x->ref_low,
                             .has_ref_high = x->has_ref_high,
                             .ref_high = x->ref_high};
    int n = rules_eval_deps(r, st, &o, &c, now_ms, deps, rc->eval, rc->cap_eval);
    for (int i = 0; i < n; i++) {
        const struct alert *a = &rc->eval[i];
        unsigned d = rules_dep(r, a->rule_id, a->rule_version);
        if (d == RULES_DEP_PAIR) {
            char ids[2][OBS_ID_MAX + 1];
            for (int k = 0; k < 2 && k < a->n_evidence; k++)
                snprintf(ids[k], sizeof ids[k], "%s", a->evidence[k].observation_id);
            if (!pair_touched(rc, a->n_evidence < 2 ? a->n_evidence : 2, ids))
                continue;
        }
        if (!truth_add(rc, a, false))
            return false;
    }
    return true;
}

static bool cites(const struct subject_alert *a, const char *self)
{
    return (a->nobs > 0 && strcmp(a->obs_ids[0], self) == 0) ||
           (a->nobs > 1 && strcmp(a->obs_ids[1], self) == 0);
}

/* Is the standing (or withdrawn) alert A within the reach of result SELF?
 * An alert of a rule no longer loaded at its version is, only when it is
 * about SELF and SELF is a new version (not a replay): the result changed,
 * and the rules as they are now judge it. */
static bool within_reach(const struct reconcile *rc, const struct rules *r,
                         const struct subject_alert *a, const char *self, bool replay)
{
    unsigned d = rules_dep(r, a->rule_id, a->rule_version);
    if (a->nobs == 0)
        return false;
    if (d == 0)
        return !replay && cites(a, self);
    if (d == RULES_DEP_PAIR)
        return strcmp(a->obs_ids[0], self) == 0 ||
               (a->nobs > 1 && strcmp(a->obs_ids[1], self) == 0) ||
               pair_touched(rc, a->nobs < 2 ? a->nobs : 2, a->obs_ids);
    if (strcmp(a->obs_ids[0], self) == 0)
        return true;
    return (reach_deps(rc, a->obs_ids[0]) & d) != 0;
}

/* The id alert ID goes by now: after each withdrawal, the next id of the
 * chain (retract_reinstated_id). */
static void resolve_id(const struct subject_state *st, char *id)
{
    for (int guard = 0; guard <= SUBJECT_STATE_RETIRED_MAX && subject_state_is_retired(st, id);
         guard++) {
        char next[ALERT_ID_MAX + 1];
        retract_reinstated_id(id, next, sizeof next);
        snprintf(id, ALERT_ID_MAX + 1, "%s", next);
    }
}

static bool in_truth(const struct reconcile *rc, const char *alert_id)
{
    for (int i = 0; i < rc->ntruth; i++)
        if (strcmp(rc->truth[i].alert_id, alert_id) == 0)
            return true;
    return false;
}

/* Whether a standing alert of the same rule at another version is about
 * the same result as T and stays (within_reach() says it is not judged
 * now): T is then left to that version, so a reload does not page again
 * for what was already paged. */
static bool held_by_other_version(const struct subject_state *st, const struct alert *t,
                                  const char *self, bool replay)
{
    const struct subject_alert *sa;
    int n = subject_state_alerts(st, &sa);
    for (int i = 0; i < n; i++) {
        if (strcmp(sa[i].rule_id, t->rule_id) != 0 || sa[i].rule_version == t->rule_version ||
            sa[i].nobs == 0 || t->n_evidence == 0)
            continue;
        if (strcmp(sa[i].obs_ids[0], t->evidence[0].observation_id) == 0 &&
            (replay || !cites(&sa[i], self)))
            return true;
    }
    return false;
}

static struct alert *out_next(struct reconcile *rc)
{
    if (!grow((void **)&rc->out, &rc->cap_out, rc->nout + 1, sizeof rc->out[0]))
        return NULL;
    return &rc->out[rc->nout++];
}

/* ---- one result --------------------------------------------------------- */

/* Steps 3 (the reach) and 3's judging: fills rc->reach, rc->touch and
 * rc->truth. */
static bool judge(struct reconcile *rc, const struct rules *r, const struct subject_state *st,
                  const struct observation *obs, const struct clean_result *c, bool use,
                  const char *const *codes, const struct base_seen *bases, int ncodes, bool had_old,
                  int64_t old_t, int64_t now_ms)
{
    unsigned deps = rules_deps(r);
    const char *self = obs->observation_id;
    for (int k = 0; k < ncodes; k++) {
        if ((deps & RULES_DEP_BASELINE) && base_moved(st, codes[k], &bases[k])) {
            const struct subject_result *res;
            int n = subject_state_results(st, codes[k], &res);
            for (int i = 0; i < n; i++)
                if (strcmp(subject_result_id(&res[i]), self) != 0 &&
                    !reach_add(rc, &res[i], codes[k], RULES_DEP_BASELINE))
                    return false;
        }
        if (deps & RULES_DEP_PREVIOUS) {
            const struct subject_result *nx[2] = {
                use ? next_after(st, codes[k], obs->effective_ms, self) : NULL,
                had_old ? next_after(st, codes[k], old_t, self) : NULL};
            for (int j = 0; j < 2; j++)
                if (nx[j] != NULL && !reach_add(rc, nx[j], codes[k], RULES_DEP_PREVIOUS))
                    return false;
        }
    }
    int64_t w = rules_pair_window_ms(r);
    bool pair = false;
    for (int k = 0; k < ncodes; k++)
        pair = pair || is_pair_code(codes[k]);
    if ((deps & RULES_DEP_PAIR) && w >= 0 && pair) {
        int64_t at[2];
        int nat = 0;
        if (use)
            at[nat++] = obs->effective_ms;
        if (had_old)
            at[nat++] = old_t;
        if (!touch_add(rc, self) || (nat > 0 && !reach_pairs(rc, st, self, at, nat, w)))
            return false;
    }

    if (!grow((void **)&rc->eval, &rc->cap_eval, rules_max_alerts(r), sizeof rc->eval[0]))
        return false;
    if (use) {
        int n = rules_eval(r, st, obs, c, now_ms, rc->eval, rc->cap_eval);
        for (int i = 0; i < n; i++)
            if (!truth_add(rc, &rc->eval[i], true))
                return false;
    }
    for (int i = 0; i < rc->nreach; i++)
        if (!judge_kept(rc, r, st, obs, rc->reach[i].res, rc->reach[i].code, rc->reach[i].deps,
                        now_ms))
            return false;
    return true;
}

int reconcile_apply(struct reconcile *rc, const struct rules *r, struct subject_state *st,
                    const struct observation *obs, const struct clean_result *c, int64_t revision,
                    int64_t now_ms, const struct alert **out, struct reconcile_outcome *res)
{
    memset(res, 0, sizeof *res);
    rc->ntruth = rc->nreach = rc->ntouch = rc->nout = 0;
    *out = rc->out;
    const char *self = obs->observation_id;

    /* 1. stale or replay */
    int64_t known;
    if (subject_state_version(st, self, &known)) {
        if (revision < known) {
            res->stale = true;
            return 0;
        }
        res->replay = revision == known;
    }

    /* 2. what the change may move: the codes of the old and new version
     * and their baselines before it */
    const char *old_code = NULL;
    const struct subject_result *old = subject_state_find(st, self, &old_code);
    bool had_old = old != NULL;
    int64_t old_t = had_old ? old->effective_ms : 0;
    char codes_buf[2][OBS_LOINC_MAX + 1];
    const char *codes[2];
    int ncodes = 0;
    snprintf(codes_buf[ncodes], sizeof codes_buf[0], "%s", obs->loinc);
    codes[ncodes] = codes_buf[ncodes];
    ncodes++;
    if (had_old && strcmp(old_code, obs->loinc) != 0) {
        snprintf(codes_buf[ncodes], sizeof codes_buf[0], "%s", old_code);
        codes[ncodes] = codes_buf[ncodes];
        ncodes++;
    }
    struct base_seen bases[2];
    for (int k = 0; k < ncodes; k++)
        base_note(st, codes[k], &bases[k]);

    /* 2b. the state takes the result */
    if (obs->status == OBS_ENTERED_IN_ERROR || obs->status == OBS_CANCELLED)
        subject_state_remove(st, self);
    else if (subject_state_add(st, obs, c) != 0)
        return -1;
    subject_state_version_set(st, self, revision); /* best effort: bounded, see .h */
    bool use = usable(obs, c);

    /* 3. judge the reach again */
    if (!judge(rc, r, st, obs, c, use, codes, bases, ncodes, had_old, old_t, now_ms))
        return -1;
    res->rejudged = rc->nreach;
    for (int i = 0; i < rc->ntruth; i++)
        resolve_id(st, rc->truth[i].alert_id);

    /* 4a. signals: new ones raised, standing ones republished when the
     * result raised them itself or this is a replay */
    const char *finding = use ? NULL : c->finding;
    for (int i = 0; i < rc->ntruth; i++) {
        const struct alert *t = &rc->truth[i];
        if (subject_state_is_standing(st, t->alert_id)) {
            if (!rc->own[i] && !res->replay)
                continue;
        } else if (held_by_other_version(st, t, self, res->replay)) {
            continue;
        } else {
            subject_state_alert_add(st, t);
            res->raised++;
        }
        struct alert *o = out_next(rc);
        if (o == NULL)
            return -1;
        *o = *t;
    }

    /* 4b. a replay republishes the withdrawals within the reach (before
     * this call withdraws more) */
    if (res->replay) {
        const struct subject_alert *ra;
        int nra = subject_state_retired(st, &ra);
        for (int i = 0; i < nra; i++) {
            if (!within_reach(rc, r, &ra[i], self, true) || in_truth(rc, ra[i].alert_id))
                continue;
            struct alert *o = out_next(rc);
            if (o == NULL)
                return -1;
            retract_make(&ra[i], obs, finding, now_ms, o);
        }
    }
    /* 4c. standing alerts within the reach that no longer hold */
    const struct subject_alert *sa;
    int nsa = subject_state_alerts(st, &sa);
    for (int i = 0; i < nsa;) {
        if (!within_reach(rc, r, &sa[i], self, res->replay) || in_truth(rc, sa[i].alert_id)) {
            i++;
            continue;
        }
        struct alert *o = out_next(rc);
        if (o == NULL)
            return -1;
        retract_make(&sa[i], obs, finding, now_ms, o);
        res->retracted++;
        subject_state_alert_retire(st, sa[i].alert_id); /* shifts sa[i+1..] down */
        nsa = subject_state_alerts(st, &sa);
    }

    *out = rc->out;
    return rc->nout;
}
