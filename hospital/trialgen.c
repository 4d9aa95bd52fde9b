/*
 * trialgen: the synthetic trial (what it contains is described in
 * trialgen.h).
 *
 * DESIGN
 *
 * Counter-based randomness: every random number is a hash (splitmix64's
 * finaliser) of the seed and the coordinates it belongs to -- subject,
 * visit, test and a "purpose" tag -- never the next output of a stateful
 * generator. So a subject's baseline is the same whichever record asks for
 * it, an amendment can recompute the value it corrects, records can be
 * generated in any order or in parallel, and nothing has to be remembered
 * per subject. A stateful PRNG would have needed a table of subjects and a
 * fixed generation order for the same determinism.
 *
 * Values are made in the canonical unit (consumer/clean.h), then converted
 * to the site's unit and rounded to the decimals a lab prints. The factors
 * are those of /work/shared/clinical/ctcae-v5-labs.md, so the worker's
 * normalisation takes them back to (almost exactly) the canonical value.
 */
#include "trialgen.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "proctcae.h"

/* Purpose tags: one per kind of random draw. */
enum tag {
    T_SITE_PROFILE = 1,
    T_HYS,
    T_BASELINE,
    T_WITHIN,
    T_KIND,
    T_ABNORMAL,
    T_DIRECTION,
    T_CRITICAL,
    T_TIME_OF_DAY,
    T_ISSUE_DELAY,
    T_HYS_LEVEL,
    T_AMEND,
    T_CRIT_SPREAD,
    T_SYMPTOM_BASE,
    T_SYMPTOM_VISIT,
    T_SYMPTOM_WORSE,
};

/* The symptom report: six PRO-CTCAE items a chemotherapy trial asks. */
static const char *const symptom_items[TRIALGEN_SYMPTOMS] = {
    "PRO-NAUSEA-FRQ",  "PRO-NAUSEA-SEV",   "PRO-FATIGUE-SEV",
    "PRO-FATIGUE-INT", "PRO-DIARRHEA-FRQ", "PRO-PAIN-SEV",
};

struct analyte {
    const char *loinc;
    double mean, sd_between, sd_within; /* canonical unit */
    double ref_low, ref_high;           /* canonical unit; ref_low < 0: none */
    int high_side;                      /* abnormal direction: 1 high, -1 low, 0 either */
    double critical_high, critical_low; /* 0: none on that side */
};

/* Canonical units: mmol/L, mmol/L, mmol/L, umol/L, U/L, U/L, U/L, umol/L,
 * g/L, 10*9/L, 10*9/L, ms (clean.h). Order is the panel order. */
static const struct analyte analytes[TRIALGEN_TESTS] = {
    {"2823-3", 4.2, 0.25, 0.2, 3.5, 5.1, 0, 6.8, 2.4},     /* potassium */
    {"2951-2", 140, 2.0, 1.5, 136, 145, 0, 162, 118},      /* sodium */
    {"2345-7", 5.3, 0.5, 0.5, 3.9, 5.6, 0, 0, 2.0},        /* glucose */
    {"2160-0", 80, 15, 6, 60, 110, 1, 620, 0},             /* creatinine */
    {"1742-6", 22, 6, 5, 7, 40, 1, 950, 0},                /* ALT */
    {"1920-8", 24, 5, 5, 8, 40, 1, 880, 0},                /* AST */
    {"6768-6", 75, 15, 8, 40, 130, 1, 700, 0},             /* ALP */
    {"1975-2", 10, 3, 2, 3, 21, 1, 120, 0},                /* total bilirubin */
    {"718-7", 138, 10, 5, 120, 170, -1, 0, 65},            /* haemoglobin */
    {"751-8", 4.0, 1.0, 0.7, 1.8, 7.5, -1, 0, 0.3},        /* neutrophils */
    {"777-3", 250, 40, 20, 150, 400, -1, 0, 15},           /* platelets */
    {"8636-3", 415, 12, 8, -1, 450, 1, 525, 0},            /* QTc */
};

enum { I_ALT = 4, I_AST = 5, I_ALP = 6, I_BILI = 7 };

struct unit {
    const char *ucum;
    double factor; /* canonical = site value * factor */
    int decimals;
};

/* Per profile (SI, US conventional, Nordic), per analyte. */
static const struct unit units[3][TRIALGEN_TESTS] = {
    {{"mmol/L", 1, 1}, {"mmol/L", 1, 0}, {"mmol/L", 1, 1}, {"umol/L", 1, 0},
     {"U/L", 1, 0}, {"U/L", 1, 0}, {"U/L", 1, 0}, {"umol/L", 1, 0},
     {"g/L", 1, 0}, {"10*9/L", 1, 2}, {"10*9/L", 1, 0}, {"ms", 1, 0}},
    {{"mEq/L", 1, 1}, {"mEq/L", 1, 0}, {"mg/dL", 1.0 / 18.016, 0}, {"mg/dL", 88.42, 2},
     {"U/L", 1, 0}, {"U/L", 1, 0}, {"U/L", 1, 0}, {"mg/dL", 17.104, 1},
     {"g/dL", 10, 1}, {"10*3/uL", 1, 2}, {"10*3/uL", 1, 0}, {"ms", 1, 0}},
    {{"mmol/L", 1, 1}, {"mmol/L", 1, 0}, {"mmol/L", 1, 1}, {"umol/L", 1, 0},
     {"ukat/L", 60, 2}, {"ukat/L", 60, 2}, {"ukat/L", 60, 2}, {"umol/L", 1, 0},
     {"mmol/L", 10.0 / 0.6206, 1}, {"10*9/L", 1, 2}, {"10*9/L", 1, 0}, {"ms", 1, 0}},
};

#define DAY_MS (86400LL * 1000)
/* After a visit day's midnight, every record of the visit is dated within
 * this: draws 07:00-12:00, the ECG half an hour later, issued up to 8 h
 * after, an amendment re-issued 2 days later. */
#define VISIT_SPAN_MS    (3 * DAY_MS)
#define VISITS_UNBOUNDED 20 /* the visits trialgen_start_for() fits for N = 0 */
/* A trial longer than three years (W156) grows by enrolment waves instead:
 * results older than that would reach the worker's horizon sooner or later,
 * and no trial follows the same few subjects for a decade. */
#define VISITS_MAX 43

static uint64_t mix(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t hash(const struct trialgen *g, enum tag tag, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix(g->seed ^ ((uint64_t)tag << 56));
    h = mix(h ^ a);
    h = mix(h ^ (b * 0x100000001B3ULL));
    return mix(h ^ (c * 0xC2B2AE3D27D4EB4FULL));
}

/* Uniform in [0, 1). */
static double u01(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller on two hashes). */
static double normal(const struct trialgen *g, enum tag tag, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = hash(g, tag, a, b, c);
    double u1 = u01(h) + 1e-12, u2 = u01(mix(h ^ 0xA5A5A5A5A5A5A5A5ULL));
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void trialgen_init(struct trialgen *g)
{
    memset(g, 0, sizeof *g);
    g->seed = 1;
    g->studies = 2;
    g->sites_per_study = 3;
    g->subjects_per_site = 20;
    g->start_ms = 1736121600000LL; /* 2025-01-06T00:00:00Z, a Monday */
}

static int tests_per_visit(const struct trialgen *g)
{
    return TRIALGEN_TESTS + (g->symptoms ? TRIALGEN_SYMPTOMS : 0);
}

uint64_t trialgen_per_visit(const struct trialgen *g)
{
    return trialgen_subjects(g) * (uint64_t)tests_per_visit(g);
}

static int visit_day(uint64_t v);

/* Midnight of the last site's visit day V, less day 0: when its records
 * start, counted from start_ms. */
static int64_t visit_offset(const struct trialgen *g, uint64_t v)
{
    return (int64_t)(g->studies - 1) * 7 * DAY_MS + (int64_t)(g->sites_per_study - 1) * DAY_MS +
           (int64_t)visit_day(v) * DAY_MS;
}

uint64_t trialgen_visits(const struct trialgen *g)
{
    if (g->end_ms == 0)
        return UINT64_MAX;
    uint64_t v = 0;
    /* the schedule is every 4 weeks after W12: bounded by the span */
    while (v < 100000 && g->start_ms + visit_offset(g, v) + VISIT_SPAN_MS <= g->end_ms)
        v++;
    return v;
}

int64_t trialgen_start_for(const struct trialgen *g, uint64_t n, int64_t end_ms)
{
    uint64_t per = trialgen_per_visit(g);
    uint64_t visits = n == 0 ? VISITS_UNBOUNDED : (n + per - 1) / per;
    if (visits == 0)
        visits = 1;
    if (visits > VISITS_MAX)
        visits = VISITS_MAX;
    int64_t start = end_ms - VISIT_SPAN_MS - visit_offset(g, visits - 1);
    start -= ((start % DAY_MS) + DAY_MS) % DAY_MS; /* midnight UTC, before */
    return start;
}

uint64_t trialgen_subjects(const struct trialgen *g)
{
    return (uint64_t)g->studies * (uint64_t)g->sites_per_study * (uint64_t)g->subjects_per_site;
}

bool trialgen_is_hys_subject(const struct trialgen *g, uint64_t subject)
{
    if (subject == g->seed % trialgen_subjects(g))
        return true;
    return hash(g, T_HYS, subject, 0, 0) % 64 == 0;
}

static void visit_of(uint64_t v, char *label, size_t cap, int *day);

static int visit_day(uint64_t v)
{
    char label[16];
    int day;
    visit_of(v, label, sizeof label, &day);
    return day;
}

static void visit_of(uint64_t v, char *label, size_t cap, int *day)
{
    static const char *const early[] = {"SCR", "C1D1", "W2", "W4", "W6", "W8", "W12"};
    static const int early_day[] = {-14, 0, 14, 28, 42, 56, 84};
    if (v < 7) {
        snprintf(label, cap, "%s", early[v]);
        *day = early_day[v];
        return;
    }
    uint64_t week = 12 + 4 * (v - 6);
    snprintf(label, cap, "W%" PRIu64, week);
    *day = (int)(week * 7);
}

static double round_to(double v, int decimals)
{
    static const double p10[] = {1, 10, 100, 1000};
    return round(v * p10[decimals]) / p10[decimals];
}

/* The canonical value of test T for SUBJECT at visit V, as first issued,
 * and whether it is abnormal or critical by construction. */
static double canonical_value(const struct trialgen *g, uint64_t subject, uint64_t v, int t)
{
    const struct analyte *a = &analytes[t];
    double base = a->mean + a->sd_between * normal(g, T_BASELINE, subject, 0, (uint64_t)t);
    double val = base + a->sd_within * normal(g, T_WITHIN, subject, v, (uint64_t)t);
    if (val < a->mean * 0.2)
        val = a->mean * 0.2;

    /* Hy's law: from W4 (visit 3), the liver tests of a few subjects climb
     * past the thresholds while ALP stays normal (hepatocellular, not
     * cholestatic injury). */
    if (v >= 3 && trialgen_is_hys_subject(g, subject)) {
        double k = u01(hash(g, T_HYS_LEVEL, subject, v, (uint64_t)t));
        if (t == I_ALT)
            return a->ref_high * (3.5 + 4.5 * k);
        if (t == I_AST)
            return a->ref_high * (3.2 + 3.0 * k);
        if (t == I_BILI)
            return a->ref_high * (2.3 + 1.7 * k);
        if (t == I_ALP)
            return a->mean * (0.8 + 0.3 * k);
    }

    double r = u01(hash(g, T_KIND, subject, v, (uint64_t)t));
    if (r < 0.003) {
        /* Critical: around the analyte's critical value. */
        int side = a->critical_high > 0 && a->critical_low > 0
                       ? (hash(g, T_DIRECTION, subject, v, (uint64_t)t) & 1 ? 1 : -1)
                       : (a->critical_high > 0 ? 1 : -1);
        double c = side > 0 ? a->critical_high : a->critical_low;
        return c * (0.97 + 0.06 * u01(hash(g, T_CRIT_SPREAD, subject, v, (uint64_t)t)));
    }
    if (r < 0.043) {
        /* Abnormal: mildly outside the reference range. */
        int side = a->high_side;
        if (a->ref_low < 0)
            side = 1; /* no lower limit to fall below */
        else if (side == 0)
            side = hash(g, T_DIRECTION, subject, v, (uint64_t)t) & 1 ? 1 : -1;
        double k = u01(hash(g, T_ABNORMAL, subject, v, (uint64_t)t));
        return side > 0 ? a->ref_high * (1.1 + 0.5 * k) : a->ref_low * (0.95 - 0.25 * k);
    }
    return val;
}

/* Symptom item K's score for SUBJECT at visit V: each subject has its own
 * level per item (mostly none or mild), varies a point now and then, and
 * one subject in 16 gets worse by a point a visit from W4 on. */
static int symptom_score(const struct trialgen *g, uint64_t subject, uint64_t v, int k)
{
    double level = u01(hash(g, T_SYMPTOM_BASE, subject, 0, (uint64_t)k));
    int score = level < 0.55 ? 0 : level < 0.85 ? 1 : 2;
    double r = u01(hash(g, T_SYMPTOM_VISIT, subject, v, (uint64_t)k));
    if (r < 0.10)
        score += 1;
    else if (r < 0.18 && score > 0)
        score -= 1;
    else if (r > 0.995)
        score = 4;
    if (v >= 3 && hash(g, T_SYMPTOM_WORSE, subject, 0, 0) % 16 == 0)
        score += (int)(v - 2);
    return score > PROCTCAE_SCORE_MAX ? PROCTCAE_SCORE_MAX : score;
}

/* Record T >= TRIALGEN_TESTS of a visit: a symptom item, answered on a
 * tablet in the waiting room an hour before the draw. */
static void symptom_record(const struct trialgen *g, uint64_t subject, uint64_t v, int k,
                           int64_t draw, struct observation *o)
{
    snprintf(o->loinc, sizeof o->loinc, "%s", symptom_items[k]);
    snprintf(o->unit, sizeof o->unit, "%s", PROCTCAE_UNIT);
    o->status = OBS_FINAL;
    o->effective_ms = draw - 3600000LL;
    o->issued_ms = o->effective_ms + 5 * 60000LL;
    o->has_value = true;
    o->value = symptom_score(g, subject, v, k);
}

void trialgen_get(const struct trialgen *g, uint64_t index, struct observation *o)
{
    assert(g->studies >= 1 && g->studies <= TRIALGEN_MAX_STUDIES);
    assert(g->sites_per_study >= 1 && g->sites_per_study <= TRIALGEN_MAX_SITES);
    assert(g->subjects_per_site >= 1 && g->subjects_per_site <= TRIALGEN_MAX_SUBJECTS);
    memset(o, 0, sizeof *o);

    uint64_t nsubj = trialgen_subjects(g);
    int tests = tests_per_visit(g);
    uint64_t per_visit = nsubj * (uint64_t)tests;
    uint64_t visits = trialgen_visits(g);
    assert(visits > 0);
    /* past the visits that fit, the next wave of subjects */
    uint64_t wave = visits == UINT64_MAX ? 0 : index / (visits * per_visit);
    uint64_t within = visits == UINT64_MAX ? index : index % (visits * per_visit);
    uint64_t v = within / per_visit;
    uint64_t local = within % per_visit / (uint64_t)tests;
    uint64_t subject = local + wave * nsubj; /* whose values: every wave its own */
    int t = (int)(within % (uint64_t)tests);
    uint64_t per_study = (uint64_t)g->sites_per_study * (uint64_t)g->subjects_per_site;
    int study = (int)(local / per_study);
    int site = (int)(local % per_study / (uint64_t)g->subjects_per_site);
    uint64_t subj_no =
        local % (uint64_t)g->subjects_per_site + wave * (uint64_t)g->subjects_per_site;
    int site_code = (study + 1) * 100 + site + 1;

    snprintf(o->study_id, sizeof o->study_id, "STUDY-%03d", study + 1);
    snprintf(o->site_id, sizeof o->site_id, "SITE-%d", site_code);
    snprintf(o->subject_id, sizeof o->subject_id, "S-%d-%04" PRIu64, site_code, subj_no + 1);
    if (t >= TRIALGEN_TESTS) {
        snprintf(o->observation_id, sizeof o->observation_id, "OBS-%" PRIx64 "-%" PRIu64, g->seed,
                 index);
        int day;
        visit_of(v, o->visit, sizeof o->visit, &day);
        int64_t draw = g->start_ms + (int64_t)study * 7 * DAY_MS + (int64_t)site * DAY_MS +
                       (int64_t)day * DAY_MS + 7 * 3600000LL +
                       (int64_t)(u01(hash(g, T_TIME_OF_DAY, subject, v, 0)) * 5 * 3600000.0);
        draw -= draw % 60000;
        symptom_record(g, subject, v, t - TRIALGEN_TESTS, draw, o);
        return;
    }
    snprintf(o->loinc, sizeof o->loinc, "%s", analytes[t].loinc);

    /* Amendments and withdrawals re-issue the previous visit's result under
     * its id, as a lab's correction does; they need a previous visit. */
    uint64_t ref_visit = v, ref_index = index;
    double r = u01(hash(g, T_AMEND, subject, v, (uint64_t)t));
    o->status = OBS_FINAL;
    if (v >= 1 && r < 0.008) {
        ref_visit = v - 1;
        ref_index = index - per_visit;
        o->status = r < 0.005 ? OBS_AMENDED : r < 0.007 ? OBS_ENTERED_IN_ERROR : OBS_CANCELLED;
    }
    snprintf(o->observation_id, sizeof o->observation_id, "OBS-%" PRIx64 "-%" PRIu64, g->seed,
             ref_index);

    int day;
    visit_of(ref_visit, o->visit, sizeof o->visit, &day);
    /* Studies start a week apart, sites a day apart; the panel is drawn
     * between 07:00 and 12:00, the ECG half an hour later. */
    int64_t draw = g->start_ms + (int64_t)study * 7 * DAY_MS + (int64_t)site * DAY_MS +
                   (int64_t)day * DAY_MS + 7 * 3600000LL +
                   (int64_t)(u01(hash(g, T_TIME_OF_DAY, subject, ref_visit, 0)) * 5 * 3600000.0);
    draw -= draw % 60000;
    o->effective_ms = draw + (t == TRIALGEN_TESTS - 1 ? 30 * 60000LL : 0);
    o->issued_ms = o->effective_ms + 3600000LL +
                   (int64_t)(u01(hash(g, T_ISSUE_DELAY, subject, ref_visit, (uint64_t)t)) *
                             7 * 3600000.0);
    if (o->status != OBS_FINAL)
        o->issued_ms += (int64_t)(v - ref_visit) * 2 * DAY_MS;

    int profile = (int)(hash(g, T_SITE_PROFILE, (uint64_t)site_code, 0, 0) % 3);
    const struct unit *u = &units[profile][t];
    const struct analyte *a = &analytes[t];
    snprintf(o->unit, sizeof o->unit, "%s", u->ucum);
    if (a->ref_low >= 0) {
        o->has_ref_low = true;
        o->ref_low = round_to(a->ref_low / u->factor, u->decimals);
    }
    o->has_ref_high = true;
    o->ref_high = round_to(a->ref_high / u->factor, u->decimals);

    if (o->status == OBS_CANCELLED)
        return;
    double canon = canonical_value(g, subject, ref_visit, t);
    if (o->status == OBS_AMENDED)
        canon *= 0.9 + 0.2 * u01(hash(g, T_AMEND, subject, v, (uint64_t)t + 100));
    double val = round_to(canon / u->factor, u->decimals);
    /* Rounding must not turn a tiny value into 0 where 0 is not a result. */
    if (val <= 0.0)
        val = u->decimals > 0 ? pow(10.0, -u->decimals) : 1.0;
    o->has_value = true;
    o->value = val;
}
