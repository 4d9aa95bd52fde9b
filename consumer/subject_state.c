/*
 * subject_state: per-subject memory of the rules engine (see subject_state.h
 * for the contract).
 *
 * DESIGN: one slot per LOINC, created on first use. Each slot keeps its
 * SUBJECT_STATE_BASELINE_KEEP earliest usable results in a fixed array and,
 * for the liver analytes, a growable array capped at SUBJECT_STATE_RECENT_MAX.
 * Both arrays stay sorted by (effective time, observation id), so the
 * baseline is element 0 and the oldest recent result is the one to drop.
 * Sorted arrays rather than a tree or heap: they are tiny, insertion is a
 * memmove, and the evaluator reads them in time order without copying.
 *
 * Raised alerts: an array in arrival order, grown 4, 8, ... up to
 * SUBJECT_STATE_ALERTS_MAX and then shifted (the oldest dropped). Searched
 * linearly: a subject has a handful, and a withdrawal looks at each anyway.
 */
#include "subject_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct slot {
    char loinc[OBS_LOINC_MAX + 1];
    int n_base;
    struct subject_result base[SUBJECT_STATE_BASELINE_KEEP];
    bool keeps_recent;
    int n_recent;
    int cap_recent;
    struct subject_result *recent;
};

struct subject_state {
    int n_slots;
    struct slot *slots[SUBJECT_STATE_LOINCS];
    int n_alerts;
    int cap_alerts;
    struct subject_alert *alerts;
};

/* The analytes Hy's law looks at: ALT, AST, ALP, total bilirubin. */
static const char *const liver_loincs[] = {"1742-6", "1920-8", "6768-6", "1975-2"};

static bool is_liver(const char *loinc)
{
    for (size_t i = 0; i < sizeof liver_loincs / sizeof liver_loincs[0]; i++)
        if (strcmp(loinc, liver_loincs[i]) == 0)
            return true;
    return false;
}

static bool is_usable(const struct observation *obs, const struct clean_result *c)
{
    if (obs->status != OBS_FINAL && obs->status != OBS_AMENDED && obs->status != OBS_CORRECTED)
        return false;
    return obs->has_value && c->status == CLEAN_OK;
}

/* Orders results by effective time, then observation id, so equal times
 * still give one baseline whatever the arrival order. */
static int result_cmp(const struct subject_result *a, const struct subject_result *b)
{
    if (a->effective_ms != b->effective_ms)
        return a->effective_ms < b->effective_ms ? -1 : 1;
    return strcmp(a->observation_id, b->observation_id);
}

/* Inserts R into sorted array ARR of *N elements with room for CAP. When the
 * array is full the last (latest) element falls off, or R itself if it
 * would be last. */
static void insert_keep_earliest(struct subject_result *arr, int *n, int cap,
                                 const struct subject_result *r)
{
    int pos = *n;
    while (pos > 0 && result_cmp(r, &arr[pos - 1]) < 0)
        pos--;
    if (pos == cap)
        return;
    int keep = *n < cap ? *n : cap - 1;
    memmove(&arr[pos + 1], &arr[pos], (size_t)(keep - pos) * sizeof arr[0]);
    arr[pos] = *r;
    if (*n < cap)
        (*n)++;
}

/* Inserts R into sorted array ARR of *N elements with room for CAP. When the
 * array is full the first (oldest) element falls off, or R itself if it is
 * older than everything kept. */
static void insert_keep_latest(struct subject_result *arr, int *n, int cap,
                               const struct subject_result *r)
{
    int pos = *n;
    while (pos > 0 && result_cmp(r, &arr[pos - 1]) < 0)
        pos--;
    if (*n == cap) {
        if (pos == 0)
            return;
        memmove(&arr[0], &arr[1], (size_t)(pos - 1) * sizeof arr[0]);
        arr[pos - 1] = *r;
        return;
    }
    memmove(&arr[pos + 1], &arr[pos], (size_t)(*n - pos) * sizeof arr[0]);
    arr[pos] = *r;
    (*n)++;
}

/* Every add first removes an earlier version of the same id from every
 * kept list, so this scan is on the hot path: compare a hash before the
 * string (ids share long prefixes such as "OBS-2a-"). */
static uint64_t id_hash(const char *id)
{
    return hash_str(id, HASH_SEED);
}

static int remove_id(struct subject_result *arr, int *n, const char *observation_id,
                     uint64_t hash)
{
    int removed = 0;
    for (int i = 0; i < *n;) {
        if (arr[i].id_hash == hash && strcmp(arr[i].observation_id, observation_id) == 0) {
            memmove(&arr[i], &arr[i + 1], (size_t)(*n - i - 1) * sizeof arr[0]);
            (*n)--;
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

static struct slot *slot_find(const struct subject_state *st, const char *loinc)
{
    for (int i = 0; i < st->n_slots; i++)
        if (strcmp(st->slots[i]->loinc, loinc) == 0)
            return st->slots[i];
    return NULL;
}

struct subject_state *subject_state_new(void)
{
    return calloc(1, sizeof(struct subject_state));
}

static void free_slots(struct subject_state *st)
{
    for (int i = 0; i < st->n_slots; i++) {
        free(st->slots[i]->recent);
        free(st->slots[i]);
    }
    st->n_slots = 0;
}

void subject_state_destroy(struct subject_state *st)
{
    if (st == NULL)
        return;
    free_slots(st);
    free(st->alerts);
    free(st);
}

void subject_state_reset(struct subject_state *st)
{
    free_slots(st);
    st->n_alerts = 0;
}

int subject_state_remove(struct subject_state *st, const char *observation_id)
{
    int removed = 0;
    uint64_t hash = id_hash(observation_id);
    for (int i = 0; i < st->n_slots; i++) {
        struct slot *s = st->slots[i];
        removed += remove_id(s->base, &s->n_base, observation_id, hash);
        removed += remove_id(s->recent, &s->n_recent, observation_id, hash);
    }
    return removed;
}

int subject_state_add(struct subject_state *st, const struct observation *obs,
                      const struct clean_result *c)
{
    if (!is_usable(obs, c)) {
        subject_state_remove(st, obs->observation_id);
        return 0;
    }

    /* Allocate everything first, so running out of memory leaves the
     * earlier version of this observation in place. */
    struct slot *s = slot_find(st, obs->loinc);
    if (s == NULL) {
        if (st->n_slots == SUBJECT_STATE_LOINCS) {
            subject_state_remove(st, obs->observation_id);
            return 0;
        }
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        snprintf(s->loinc, sizeof s->loinc, "%s", obs->loinc);
        s->keeps_recent = is_liver(obs->loinc);
        st->slots[st->n_slots++] = s;
    }
    if (s->keeps_recent && s->n_recent == s->cap_recent &&
        s->cap_recent < SUBJECT_STATE_RECENT_MAX) {
        int cap = s->cap_recent == 0 ? 4 : s->cap_recent * 2;
        if (cap > SUBJECT_STATE_RECENT_MAX)
            cap = SUBJECT_STATE_RECENT_MAX;
        struct subject_result *grown = realloc(s->recent, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        s->recent = grown;
        s->cap_recent = cap;
    }

    subject_state_remove(st, obs->observation_id);

    struct subject_result r = {0};
    snprintf(r.observation_id, sizeof r.observation_id, "%s", obs->observation_id);
    r.id_hash = id_hash(r.observation_id);
    r.effective_ms = obs->effective_ms;
    r.value = c->value;
    r.has_ref_low = c->has_ref_low;
    r.ref_low = c->ref_low;
    r.has_ref_high = c->has_ref_high;
    r.ref_high = c->ref_high;

    insert_keep_earliest(s->base, &s->n_base, SUBJECT_STATE_BASELINE_KEEP, &r);
    if (s->keeps_recent)
        insert_keep_latest(s->recent, &s->n_recent, s->cap_recent, &r);
    return 0;
}

const struct subject_result *subject_state_baseline(const struct subject_state *st,
                                                    const char *loinc)
{
    const struct slot *s = slot_find(st, loinc);
    if (s == NULL || s->n_base == 0)
        return NULL;
    return &s->base[0];
}

int subject_state_results(const struct subject_state *st, const char *loinc,
                          const struct subject_result **out)
{
    const struct slot *s = slot_find(st, loinc);
    if (s == NULL || s->n_recent == 0) {
        *out = NULL;
        return 0;
    }
    *out = s->recent;
    return s->n_recent;
}

void subject_state_alert_add(struct subject_state *st, const struct alert *al)
{
    for (int i = 0; i < st->n_alerts; i++)
        if (strcmp(st->alerts[i].alert_id, al->alert_id) == 0)
            return;
    if (st->n_alerts == st->cap_alerts) {
        if (st->cap_alerts == SUBJECT_STATE_ALERTS_MAX) {
            memmove(&st->alerts[0], &st->alerts[1],
                    sizeof st->alerts[0] * (SUBJECT_STATE_ALERTS_MAX - 1));
            st->n_alerts--;
        } else {
            int cap = st->cap_alerts ? st->cap_alerts * 2 : 4;
            if (cap > SUBJECT_STATE_ALERTS_MAX)
                cap = SUBJECT_STATE_ALERTS_MAX;
            struct subject_alert *grown = realloc(st->alerts, sizeof *grown * (size_t)cap);
            if (grown == NULL)
                return;
            st->alerts = grown;
            st->cap_alerts = cap;
        }
    }
    struct subject_alert *r = &st->alerts[st->n_alerts++];
    memset(r, 0, sizeof *r);
    snprintf(r->alert_id, sizeof r->alert_id, "%s", al->alert_id);
    snprintf(r->rule_id, sizeof r->rule_id, "%s", al->rule_id);
    r->rule_version = al->rule_version;
    r->severity = al->severity;
    r->nobs = al->n_evidence;
    for (int i = 0; i < al->n_evidence && i < ALERT_EVIDENCE_MAX; i++)
        snprintf(r->obs_ids[i], sizeof r->obs_ids[i], "%s", al->evidence[i].observation_id);
}

int subject_state_alerts(const struct subject_state *st, const struct subject_alert **out)
{
    *out = st->alerts;
    return st->n_alerts;
}

bool subject_state_alert_forget(struct subject_state *st, const char *alert_id)
{
    for (int i = 0; i < st->n_alerts; i++) {
        if (strcmp(st->alerts[i].alert_id, alert_id) != 0)
            continue;
        memmove(&st->alerts[i], &st->alerts[i + 1],
                sizeof st->alerts[0] * (size_t)(st->n_alerts - i - 1));
        st->n_alerts--;
        return true;
    }
    return false;
}
