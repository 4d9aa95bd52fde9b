/*
 * Order independence, as a property (issue #13): for generated subjects'
 * histories, every arrival order of their messages -- amendments before or
 * after what they amend, withdrawals before their originals, replays, a
 * worker restart half way (the state reloaded from what the store holds)
 * -- ends with the same standing alerts, and those are exactly the alerts
 * the rules raise from the newest version of each result judged in time
 * order (the oracle) -- both as the alert stream says (signals less
 * retractions) and as the store shows them (signal rows not withdrawn).
 *
 * The pipeline is the worker's own: clean_observation + clean_times
 * (consumer/clean.c), reconcile_apply (consumer/reconcile.c over rules.c,
 * subject_state.c, retract.c), with the rules of the clinical table
 * (tests/clinical/rules.yaml: every rule kind). Kafka and PostgreSQL are
 * modelled: arrival is a field of the message, and the store is a table of
 * rows upserted by revision and alerts inserted once (store.c's
 * semantics), read back as store_load.c reads it.
 *
 *   test_order_property [SUBJECTS [SEED]]   default 120 subjects, seed 1
 *
 * Histories of up to 6 messages are run in every order; longer ones in
 * PERMS_SAMPLED random orders. The last lines give the figures (subjects,
 * orders, messages applied); `--figures` prints them as bench figure lines.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clean.h"
#include "reconcile.h"
#include "retract.h"
#include "rules.h"
#include "store.h"
#include "subject_state.h"
#include "testlib.h"

#define DAY           86400000LL
#define T0            1767225600000LL  /* 2026-01-01: day 0 */
#define T_ARRIVE      (T0 + 120 * DAY) /* when the messages reach vigil */
#define NOW_MS        (T0 + 121 * DAY)
#define MSG_MAX       10
#define FULL_UP_TO    6 /* histories this short run in all n! orders */
#define PERMS_SAMPLED 240
#define KEY_MAX       256
#define ALERTS_MAX    256

/* ---- deterministic randomness ------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int rng_int(uint64_t *s, int n)
{
    return (int)(rng_next(s) % (uint64_t)n);
}

static bool rng_chance(uint64_t *s, int percent)
{
    return rng_int(s, 100) < percent;
}

/* ---- histories ---------------------------------------------------------- */

struct msg {
    struct observation obs;
    int64_t arrival_ms;
};

struct history {
    int n;
    struct msg m[MSG_MAX];
};

/* What a result may be: code, canonical unit, range, a normal and an
 * abnormal value (picked to cross the rules' limits). */
struct palette {
    const char *code;
    const char *unit;
    double lo, hi;
    double normal, abnormal[3];
};

static const struct palette liver[] = {
    {"1742-6", "U/L", 7, 40, 22, {150, 200, 300}},   /* ALT: >= 3 x ULN */
    {"1920-8", "U/L", 8, 40, 24, {124, 130, 250}},   /* AST */
    {"1975-2", "umol/L", 3, 21, 10, {45, 50, 60}},   /* bilirubin: > 2 x ULN */
    {"6768-6", "U/L", 40, 120, 80, {250, 260, 300}}, /* ALP: >= 2 x ULN */
};
static const struct palette others[] = {
    {"2160-0", "umol/L", 53, 97, 80, {125, 70, 160}},     /* creatinine: baseline rules */
    {"2823-3", "mmol/L", 3.5, 5.1, 4.4, {6.8, 5.8, 3.0}}, /* potassium: threshold, CTCAE */
    {"PRO-FATIGUE-SEV", "{score}", -1, -1, 0, {2, 3, 4}}, /* symptom: score, worsening */
    {"PRO-NAUSEA-FRQ", "{score}", -1, -1, 1, {2, 4, 3}},
};

static void fill_value(uint64_t *s, const struct palette *p, struct observation *o)
{
    o->has_value = true;
    o->value = rng_chance(s, 40) ? p->normal : p->abnormal[rng_int(s, 3)];
    if (p->lo < 0) /* symptom: any score */
        o->value = rng_int(s, 5);
}

/* One subject's messages in their "natural" order: each result's versions
 * in issue order. A theme (liver, or one of the others) makes results of
 * the same subject interact. */
static void generate(uint64_t seed, int subject, struct history *h)
{
    uint64_t s = seed * 1000003ULL + (uint64_t)subject;
    memset(h, 0, sizeof *h);
    bool is_liver = rng_chance(&s, 50);
    const struct palette *pal = is_liver ? liver : &others[rng_int(&s, 4)];
    int npal = is_liver ? 4 : 1;
    int nres = 2 + rng_int(&s, 3);
    for (int r = 0; r < nres && h->n < MSG_MAX; r++) {
        const struct palette *p = &pal[rng_int(&s, npal)];
        struct msg *m = &h->m[h->n++];
        struct observation *o = &m->obs;
        snprintf(o->observation_id, sizeof o->observation_id, "S%d-r%d", subject, r);
        snprintf(o->study_id, sizeof o->study_id, "STUDY-P");
        snprintf(o->site_id, sizeof o->site_id, "SITE-P");
        snprintf(o->subject_id, sizeof o->subject_id, "P-%05d", subject);
        snprintf(o->loinc, sizeof o->loinc, "%s", p->code);
        snprintf(o->unit, sizeof o->unit, "%s", p->unit);
        o->has_ref_low = p->lo >= 0;
        o->ref_low = p->lo >= 0 ? p->lo : 0;
        o->has_ref_high = p->hi >= 0;
        o->ref_high = p->hi >= 0 ? p->hi : 0;
        /* days 0..40 (the Hy's law window is 30), some on the same day */
        o->effective_ms = T0 + (int64_t)rng_int(&s, 41) * DAY + (rng_chance(&s, 30) ? 0 : 3600000);
        o->issued_ms = o->effective_ms + DAY + r * 60000;
        o->status = OBS_FINAL;
        fill_value(&s, p, o);
        m->arrival_ms = T_ARRIVE;
        /* a result dated after its arrival: a finding, never analysed */
        if (rng_chance(&s, 4))
            o->effective_ms = T_ARRIVE + 2 * DAY;

        /* later versions: amended (maybe twice), withdrawn, cancelled */
        int64_t issued = o->issued_ms;
        for (int v = 0; v < 2 && h->n < MSG_MAX; v++) {
            int kind = rng_int(&s, 100);
            if (kind >= 40)
                break;
            struct msg *a = &h->m[h->n++];
            *a = *m;
            issued += 2 * DAY;
            a->obs.issued_ms = issued;
            if (kind < 22) {
                a->obs.status = rng_chance(&s, 50) ? OBS_AMENDED : OBS_CORRECTED;
                fill_value(&s, p, &a->obs);
                if (rng_chance(&s, 10)) /* the amendment cannot be analysed */
                    a->obs.effective_ms = T_ARRIVE + 3 * DAY;
            } else if (kind < 34) {
                a->obs.status = OBS_ENTERED_IN_ERROR;
            } else {
                a->obs.status = OBS_CANCELLED;
                a->obs.has_value = false;
            }
        }
    }
    /* a replay of one message, exactly as sent */
    if (h->n < MSG_MAX && rng_chance(&s, 35)) {
        int k = rng_int(&s, h->n);
        h->m[h->n] = h->m[k];
        h->n++;
    }
}

/* ---- the modelled store (store.c) and its reader (store_load.c) --------- */

struct row {
    struct observation obs;
    int64_t revision;
};

struct stored_alert {
    struct alert a;
    bool retracted;
};

struct db {
    int nrows;
    struct row rows[MSG_MAX];
    int nalerts;
    struct stored_alert alerts[ALERTS_MAX];
};

static void db_put(struct db *db, const struct observation *o, int64_t rev)
{
    for (int i = 0; i < db->nrows; i++) {
        if (strcmp(db->rows[i].obs.observation_id, o->observation_id) != 0)
            continue;
        if (db->rows[i].revision < rev) { /* upsert only moves forward */
            db->rows[i].obs = *o;
            db->rows[i].revision = rev;
        }
        return;
    }
    db->rows[db->nrows].obs = *o;
    db->rows[db->nrows].revision = rev;
    db->nrows++;
}

static void db_alert(struct db *db, const struct alert *a)
{
    if (a->kind == ALERT_RETRACTION) {
        for (int i = 0; i < db->nalerts; i++)
            if (strcmp(db->alerts[i].a.alert_id, a->retracts_alert_id) == 0)
                db->alerts[i].retracted = true;
    }
    for (int i = 0; i < db->nalerts; i++)
        if (strcmp(db->alerts[i].a.alert_id, a->alert_id) == 0)
            return; /* ON CONFLICT DO NOTHING */
    if (db->nalerts < ALERTS_MAX)
        db->alerts[db->nalerts++] = (struct stored_alert){*a, false};
}

/* A restarted worker's state: what store_load.c reads back. */
static void db_load(const struct db *db, const struct clean_time_limits *lim,
                    struct subject_state *st)
{
    subject_state_reset(st);
    for (int i = 0; i < db->nrows; i++) {
        const struct observation *o = &db->rows[i].obs;
        struct clean_result c;
        clean_observation(o, &c);
        clean_times(o, T_ARRIVE, lim, &c); /* value_norm is stored only for usable rows */
        if (c.status == CLEAN_OK)
            subject_state_add(st, o, &c);
        subject_state_version_set(st, o->observation_id, db->rows[i].revision);
    }
    for (int i = 0; i < db->nalerts; i++) {
        const struct alert *a = &db->alerts[i].a;
        if (a->kind != ALERT_SIGNAL)
            continue;
        if (db->alerts[i].retracted)
            subject_state_retired_add(st, a);
        else
            subject_state_alert_add(st, a);
    }
}

/* ---- standing alerts ---------------------------------------------------- */

/* What an alert says, whatever id it goes by: rule, version, grade, the
 * result(s) it is about (a pair for Hy's law), a symptom score -- the
 * verdict its id hashes (rules.h); a worsening's size, like the baseline a
 * rise is measured from, is context. */
static void alert_key(const struct alert *a, char *key, size_t cap)
{
    bool pair = strncmp(a->rule_id, "hys", 3) == 0;
    bool score = strncmp(a->rule_id, "pro-", 4) == 0 && strstr(a->rule_id, "worsening") == NULL;
    snprintf(key, cap, "%s/v%d/g%d/%s/%s/%g", a->rule_id, (int)a->rule_version, (int)a->ctcae_grade,
             a->n_evidence > 0 ? a->evidence[0].observation_id : "",
             pair && a->n_evidence > 1 ? a->evidence[1].observation_id : "",
             score && a->n_evidence > 0 ? a->evidence[0].value : 0.0);
}

struct standing {
    int n;
    char id[ALERTS_MAX][ALERT_ID_MAX + 1];
    char key[ALERTS_MAX][KEY_MAX];
};

static int key_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void sorted_keys(const struct standing *s, char (*out)[KEY_MAX])
{
    memcpy(out, s->key, sizeof s->key[0] * (size_t)s->n);
    qsort(out, (size_t)s->n, KEY_MAX, key_cmp);
}

struct figures {
    long subjects, orders, applied, reloads, retractions, reinstated, stale, rejudged, nonempty,
        violations;
};

/* Published alerts change what stands; every retraction must name a
 * standing alert (or re-publish one withdrawn before). */
static bool take(struct standing *s, const struct alert *out, int n, struct db *db)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        const struct alert *a = &out[i];
        db_alert(db, a);
        if (a->kind == ALERT_SIGNAL) {
            int j = 0;
            while (j < s->n && strcmp(s->id[j], a->alert_id) != 0)
                j++;
            if (j == s->n && s->n < ALERTS_MAX) {
                snprintf(s->id[s->n], sizeof s->id[0], "%s", a->alert_id);
                alert_key(a, s->key[s->n], KEY_MAX);
                s->n++;
            }
            continue;
        }
        int j = 0;
        while (j < s->n && strcmp(s->id[j], a->retracts_alert_id) != 0)
            j++;
        if (j == s->n) {
            bool known = false;
            for (int k = 0; k < db->nalerts; k++)
                known = known || (strcmp(db->alerts[k].a.alert_id, a->retracts_alert_id) == 0 &&
                                  db->alerts[k].retracted);
            ok = ok && known;
            continue;
        }
        memmove(&s->id[j], &s->id[j + 1], sizeof s->id[0] * (size_t)(s->n - j - 1));
        memmove(&s->key[j], &s->key[j + 1], sizeof s->key[0] * (size_t)(s->n - j - 1));
        s->n--;
    }
    return ok;
}

/* ---- the oracle --------------------------------------------------------- */

/* The alerts the rules raise from the newest version of each result,
 * judged with all of them known: no arrival order at all. */
static void oracle(const struct rules *r, const struct history *h,
                   const struct clean_time_limits *lim, struct standing *want)
{
    /* newest version per id (a replay is the same message) */
    int newest[MSG_MAX];
    int nn = 0;
    for (int i = 0; i < h->n; i++) {
        const struct observation *o = &h->m[i].obs;
        int j = 0;
        while (j < nn && strcmp(h->m[newest[j]].obs.observation_id, o->observation_id) != 0)
            j++;
        if (j == nn)
            newest[nn++] = i;
        else if (store_revision(o) > store_revision(&h->m[newest[j]].obs))
            newest[j] = i;
    }
    struct subject_state *st = subject_state_new();
    struct clean_result cs[MSG_MAX];
    for (int j = 0; j < nn; j++) {
        const struct msg *m = &h->m[newest[j]];
        clean_observation(&m->obs, &cs[j]);
        clean_times(&m->obs, m->arrival_ms, lim, &cs[j]);
        subject_state_add(st, &m->obs, &cs[j]);
    }
    want->n = 0;
    struct alert out[64];
    for (int j = 0; j < nn; j++) {
        const struct msg *m = &h->m[newest[j]];
        int n = rules_eval(r, st, &m->obs, &cs[j], NOW_MS, out, 64);
        for (int k = 0; k < n; k++) {
            char key[KEY_MAX];
            alert_key(&out[k], key, sizeof key);
            bool dup = false;
            for (int q = 0; q < want->n; q++)
                dup = dup || strcmp(want->key[q], key) == 0;
            if (!dup && want->n < ALERTS_MAX)
                snprintf(want->key[want->n++], KEY_MAX, "%s", key);
        }
    }
    subject_state_destroy(st);
}

/* ---- one order ---------------------------------------------------------- */

/* Runs H's messages in ORDER through the pipeline, reloading the state
 * from the modelled store before message RELOAD_AT (-1: never). */
static struct db db;

/* What the modelled store shows as standing: signal rows not withdrawn. */
static void db_standing(struct standing *s)
{
    s->n = 0;
    for (int i = 0; i < db.nalerts && s->n < ALERTS_MAX; i++) {
        if (db.alerts[i].a.kind != ALERT_SIGNAL || db.alerts[i].retracted)
            continue;
        snprintf(s->id[s->n], sizeof s->id[0], "%s", db.alerts[i].a.alert_id);
        alert_key(&db.alerts[i].a, s->key[s->n], KEY_MAX);
        s->n++;
    }
}

static bool run_order(const struct rules *r, const struct history *h, const int *order,
                      int reload_at, const struct clean_time_limits *lim, struct reconcile *rc,
                      struct subject_state *st, struct standing *got, struct figures *f)
{
    memset(&db, 0, sizeof db);
    subject_state_reset(st);
    got->n = 0;
    bool ok = true;
    for (int k = 0; k < h->n; k++) {
        if (k == reload_at) {
            db_load(&db, lim, st);
            f->reloads++;
        }
        const struct msg *m = &h->m[order[k]];
        struct clean_result c;
        clean_observation(&m->obs, &c);
        clean_times(&m->obs, m->arrival_ms, lim, &c);
        int64_t rev = store_revision(&m->obs);
        const struct alert *out;
        struct reconcile_outcome res;
        int n = reconcile_apply(rc, r, st, &m->obs, &c, rev, NOW_MS, &out, &res);
        if (n < 0)
            return false;
        f->applied++;
        f->retractions += res.retracted;
        f->stale += res.stale;
        f->rejudged += res.rejudged;
        db_put(&db, &m->obs, rev);
        for (int i = 0; i < n; i++) {
            if (out[i].kind != ALERT_SIGNAL || !res.raised)
                continue;
            for (int q = 0; q < db.nalerts; q++)
                if (db.alerts[q].retracted) {
                    char next[ALERT_ID_MAX + 1];
                    retract_reinstated_id(db.alerts[q].a.alert_id, next, sizeof next);
                    f->reinstated += strcmp(next, out[i].alert_id) == 0;
                }
        }
        ok = take(got, out, n, &db) && ok;
    }
    return ok;
}

static void print_keys(const char *what, const struct standing *s)
{
    fprintf(stderr, "  %s (%d):\n", what, s->n);
    for (int i = 0; i < s->n; i++)
        fprintf(stderr, "    %s\n", s->key[i]);
}

static void print_history(const struct history *h, const int *order)
{
    for (int k = 0; k < h->n; k++) {
        const struct observation *o = &h->m[order ? order[k] : k].obs;
        fprintf(stderr, "    %s %s %g day %.2f issued %" PRId64 " %s\n", o->observation_id,
                o->loinc, o->has_value ? o->value : -1.0,
                (double)(o->effective_ms - T0) / (double)DAY, o->issued_ms,
                obs_status_name(o->status));
    }
}

/* Next permutation in lexicographic order; false after the last. */
static bool next_perm(int *a, int n)
{
    int i = n - 2;
    while (i >= 0 && a[i] >= a[i + 1])
        i--;
    if (i < 0)
        return false;
    int j = n - 1;
    while (a[j] <= a[i])
        j--;
    int t = a[i];
    a[i] = a[j];
    a[j] = t;
    for (int l = i + 1, rr = n - 1; l < rr; l++, rr--) {
        t = a[l];
        a[l] = a[rr];
        a[rr] = t;
    }
    return true;
}

static bool same(const struct standing *a, const struct standing *b)
{
    if (a->n != b->n)
        return false;
    static char ka[ALERTS_MAX][KEY_MAX], kb[ALERTS_MAX][KEY_MAX];
    sorted_keys(a, ka);
    sorted_keys(b, kb);
    for (int i = 0; i < a->n; i++)
        if (strcmp(ka[i], kb[i]) != 0)
            return false;
    /* no signal stands twice under two ids */
    for (int i = 1; i < a->n; i++)
        if (strcmp(ka[i - 1], ka[i]) == 0)
            return false;
    return true;
}

static void check_subject(const struct rules *r, uint64_t seed, int subject,
                          const struct clean_time_limits *lim, struct reconcile *rc,
                          struct subject_state *st, struct figures *f)
{
    static struct history h;
    static struct standing want, got, stored;
    generate(seed, subject, &h);
    oracle(r, &h, lim, &want);
    f->subjects++;
    f->nonempty += want.n > 0;
    int order[MSG_MAX];
    for (int i = 0; i < h.n; i++)
        order[i] = i;
    uint64_t s = seed ^ ((uint64_t)subject << 20);
    bool all = h.n <= FULL_UP_TO;
    long runs = 0;
    for (;;) {
        /* every other order also restarts the worker part way */
        int reload_at = runs % 2 == 1 ? 1 + (int)(runs / 2 % (uint64_t)h.n) : -1;
        bool ok = run_order(r, &h, order, reload_at, lim, rc, st, &got, f);
        db_standing(&stored);
        f->orders++;
        runs++;
        if (!ok || !same(&want, &got) || !same(&want, &stored)) {
            f->violations++;
            if (f->violations <= 3) {
                fprintf(stderr, "subject %d (seed %" PRIu64 "), reload at %d%s:\n", subject, seed,
                        reload_at, ok ? "" : ", a retraction of no standing alert");
                print_history(&h, order);
                print_keys("oracle", &want);
                print_keys("published", &got);
                print_keys("stored", &stored);
            }
            return;
        }
        if (all) {
            if (!next_perm(order, h.n))
                break;
        } else {
            if (runs == PERMS_SAMPLED)
                break;
            for (int i = h.n - 1; i > 0; i--) { /* Fisher-Yates */
                int j = rng_int(&s, i + 1);
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
        }
    }
}

static struct rules *clinical_rules(void)
{
    char path[1024], err[4096];
    snprintf(path, sizeof path, "%s/tests/clinical/rules.yaml", VIGIL_SOURCE_DIR);
    struct rules *r = rules_load_file(path, err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "%s\n", err);
    return r;
}

int main(int argc, char **argv)
{
    bool figures = argc > 1 && strcmp(argv[1], "--figures") == 0;
    int a0 = figures ? 2 : 1;
    long subjects = argc > a0 ? strtol(argv[a0], NULL, 10) : 120;
    uint64_t seed = argc > a0 + 1 ? strtoull(argv[a0 + 1], NULL, 10) : 1;
    struct rules *r = clinical_rules();
    CHECK(r != NULL);
    if (r == NULL)
        return testlib_done();
    const struct clean_time_limits lim = {5 * 60000, 3650 * DAY};
    struct reconcile *rc = reconcile_new();
    struct subject_state *st = subject_state_new();
    struct figures f = {0};
    double t0 = testlib_now();
    for (long i = 0; i < subjects; i++)
        check_subject(r, seed, (int)i, &lim, rc, st, &f);
    double dt = testlib_now() - t0;

    CHECK_EQ_INT(f.violations, 0);
    /* the histories must exercise what the property is about */
    CHECK(f.nonempty > f.subjects / 3);
    CHECK(f.retractions > 0);
    CHECK(f.reinstated > 0);
    CHECK(f.stale > 0);
    CHECK(f.rejudged > 0);
    CHECK(f.reloads > 0);
    printf("order property: %ld subjects (%ld with standing alerts), %ld arrival orders, "
           "%ld messages applied, %ld restarts, %ld retractions, %ld signals raised again, "
           "%ld stale versions ignored, %ld results re-judged, in %.1f s\n",
           f.subjects, f.nonempty, f.orders, f.applied, f.reloads, f.retractions, f.reinstated,
           f.stale, f.rejudged, dt);
    if (figures) {
        printf("figure order_property_subjects %ld count\n", f.subjects);
        printf("figure order_property_orders %ld count\n", f.orders);
        printf("figure order_property_messages %ld count\n", f.applied);
        printf("figure order_property_violations %ld count\n", f.violations);
        printf("figure order_property_rate %.0f messages/s\n", (double)f.applied / dt);
    }
    subject_state_destroy(st);
    reconcile_destroy(rc);
    rules_destroy(r);
    return testlib_done();
}
