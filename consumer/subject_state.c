/*
 * subject_state: per-subject memory of the rules engine (see subject_state.h
 * for the contract).
 *
 * DESIGN: one slot per code, created on first use, holding a growable
 * array of kept results sorted by (effective time, observation id), so the
 * baseline is element 0 and the oldest of the "latest" part is element
 * SUBJECT_STATE_BASELINE_KEEP, the one to drop when the array is full.
 * Sorted arrays rather than a tree or heap: they are small, insertion is a
 * memmove, and the evaluator reads them in time order without copying.
 *
 * Versions: an open-addressing table (linear probing) of (id hash,
 * revision), grown by doubling while at most half full; entries are never
 * removed (a withdrawn id's revision is exactly what must be remembered).
 *
 * Alerts: two arrays in arrival order, grown 4, 8, ... up to their maximum
 * and then shifted (the oldest dropped). Searched linearly: a subject has
 * a handful, and a reconciliation looks at each anyway.
 */
#include "subject_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct slot {
    char code[OBS_LOINC_MAX + 1];
    int n;
    int cap;
    struct subject_result *res;
};

struct version {
    uint64_t key; /* id hash, 0 = empty slot */
    int64_t revision;
};

struct alert_list {
    int n;
    int cap;
    int max;
    struct subject_alert *a;
};

struct subject_state {
    size_t id_bytes; /* the owned ids' allocations */
    int n_slots;
    struct slot *slots[SUBJECT_STATE_CODES];
    size_t n_versions;
    size_t cap_versions; /* power of two, or 0 */
    struct version *versions;
    struct alert_list standing;
    struct alert_list retired;
};

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
    return strcmp(subject_result_id(a), subject_result_id(b));
}

/* Every add first removes an earlier version of the same id from every
 * kept list, so this scan is on the hot path: compare a hash before the
 * string (ids share long prefixes such as "OBS-2a-"). */
static uint64_t id_hash(const char *id)
{
    return hash_str(id, HASH_SEED);
}

void subject_result_borrow_id(struct subject_result *r, const char *id)
{
    size_t n = strlen(id);
    if (n <= SUBJECT_RESULT_ID_INLINE) {
        memcpy(r->id.in, id, n + 1);
        r->id_where = SUBJECT_ID_INLINE;
    } else {
        r->id.out = id;
        r->id_where = SUBJECT_ID_BORROWED;
    }
    r->id_hash = id_hash(id);
}

/* Gives R (to be kept in ST) its own copy of ID. Returns 0, or -1 when out
 * of memory. */
static int result_own_id(struct subject_state *st, struct subject_result *r, const char *id)
{
    size_t n = strlen(id);
    if (n <= SUBJECT_RESULT_ID_INLINE) {
        subject_result_borrow_id(r, id);
        return 0;
    }
    char *copy = malloc(n + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, id, n + 1);
    r->id.out = copy;
    r->id_where = SUBJECT_ID_OWNED;
    r->id_hash = id_hash(id);
    st->id_bytes += n + 1;
    return 0;
}

/* R leaves ST: frees its id if ST owns it. */
static void result_drop(struct subject_state *st, struct subject_result *r)
{
    if (r->id_where != SUBJECT_ID_OWNED)
        return;
    st->id_bytes -= strlen(r->id.out) + 1;
    free((char *)r->id.out);
    r->id_where = SUBJECT_ID_INLINE;
    r->id.in[0] = '\0';
}

static int remove_id(struct subject_state *st, struct slot *s, const char *observation_id,
                     uint64_t hash)
{
    int removed = 0;
    for (int i = 0; i < s->n;) {
        if (s->res[i].id_hash == hash &&
            strcmp(subject_result_id(&s->res[i]), observation_id) == 0) {
            result_drop(st, &s->res[i]);
            memmove(&s->res[i], &s->res[i + 1], (size_t)(s->n - i - 1) * sizeof s->res[0]);
            s->n--;
            removed++;
        } else {
            i++;
        }
    }
    return removed;
}

/* Inserts R into S (room for one more is there), taking over its id. When
 * S holds SUBJECT_STATE_RESULTS_MAX, the oldest result after the baseline
 * ones falls off, or R itself if it would be that one. */
static void insert_result(struct subject_state *st, struct slot *s, struct subject_result *r)
{
    int pos = s->n;
    while (pos > 0 && result_cmp(r, &s->res[pos - 1]) < 0)
        pos--;
    if (s->n == SUBJECT_STATE_RESULTS_MAX) {
        const int keep = SUBJECT_STATE_BASELINE_KEEP;
        if (pos == keep) {
            result_drop(st, r); /* older than every latest one: beyond the window */
            return;
        }
        result_drop(st, &s->res[keep]);
        if (pos > keep) {
            /* drop element KEEP, shift KEEP+1 .. pos-1 down, R at pos-1 */
            memmove(&s->res[keep], &s->res[keep + 1], (size_t)(pos - 1 - keep) * sizeof s->res[0]);
            s->res[pos - 1] = *r;
            return;
        }
        /* R joins the baseline ones; the old element KEEP-1 becomes the
         * oldest latest one and the old element KEEP drops */
        memmove(&s->res[keep], &s->res[keep + 1], (size_t)(s->n - keep - 1) * sizeof s->res[0]);
        s->n--;
    }
    memmove(&s->res[pos + 1], &s->res[pos], (size_t)(s->n - pos) * sizeof s->res[0]);
    s->res[pos] = *r;
    s->n++;
}

static struct slot *slot_find(const struct subject_state *st, const char *code)
{
    for (int i = 0; i < st->n_slots; i++)
        if (strcmp(st->slots[i]->code, code) == 0)
            return st->slots[i];
    return NULL;
}

struct subject_state *subject_state_new(void)
{
    struct subject_state *st = calloc(1, sizeof(struct subject_state));
    if (st == NULL)
        return NULL;
    st->standing.max = SUBJECT_STATE_ALERTS_MAX;
    st->retired.max = SUBJECT_STATE_RETIRED_MAX;
    return st;
}

static void free_slots(struct subject_state *st)
{
    for (int i = 0; i < st->n_slots; i++) {
        for (int j = 0; j < st->slots[i]->n; j++)
            result_drop(st, &st->slots[i]->res[j]);
        free(st->slots[i]->res);
        free(st->slots[i]);
    }
    st->n_slots = 0;
}

void subject_state_destroy(struct subject_state *st)
{
    if (st == NULL)
        return;
    free_slots(st);
    free(st->versions);
    free(st->standing.a);
    free(st->retired.a);
    free(st);
}

void subject_state_reset(struct subject_state *st)
{
    free_slots(st);
    if (st->versions != NULL)
        memset(st->versions, 0, st->cap_versions * sizeof st->versions[0]);
    st->n_versions = 0;
    st->standing.n = 0;
    st->retired.n = 0;
}

int subject_state_remove(struct subject_state *st, const char *observation_id)
{
    int removed = 0;
    uint64_t hash = id_hash(observation_id);
    for (int i = 0; i < st->n_slots; i++)
        removed += remove_id(st, st->slots[i], observation_id, hash);
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
        if (st->n_slots == SUBJECT_STATE_CODES) {
            subject_state_remove(st, obs->observation_id);
            return 0;
        }
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1;
        snprintf(s->code, sizeof s->code, "%s", obs->loinc);
        st->slots[st->n_slots++] = s;
    }
    if (s->n == s->cap && s->cap < SUBJECT_STATE_RESULTS_MAX) {
        /* by half again: a code's array is mostly full, and these arrays
         * are most of the state */
        int cap = s->cap == 0 ? 4 : s->cap + (s->cap + 1) / 2;
        if (cap > SUBJECT_STATE_RESULTS_MAX)
            cap = SUBJECT_STATE_RESULTS_MAX;
        struct subject_result *grown = realloc(s->res, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        s->res = grown;
        s->cap = cap;
    }

    struct subject_result r = {0};
    if (result_own_id(st, &r, obs->observation_id) != 0)
        return -1;
    subject_state_remove(st, obs->observation_id);

    r.effective_ms = obs->effective_ms;
    r.value = c->value;
    r.has_ref_low = c->has_ref_low;
    r.ref_low = c->ref_low;
    r.has_ref_high = c->has_ref_high;
    r.ref_high = c->ref_high;
    insert_result(st, s, &r);
    return 0;
}

const struct subject_result *subject_state_find(const struct subject_state *st,
                                                const char *observation_id, const char **code)
{
    uint64_t hash = id_hash(observation_id);
    for (int i = 0; i < st->n_slots; i++) {
        const struct slot *s = st->slots[i];
        for (int j = 0; j < s->n; j++) {
            if (s->res[j].id_hash == hash &&
                strcmp(subject_result_id(&s->res[j]), observation_id) == 0) {
                if (code != NULL)
                    *code = s->code;
                return &s->res[j];
            }
        }
    }
    return NULL;
}

const struct subject_result *subject_state_baseline(const struct subject_state *st,
                                                    const char *code)
{
    const struct slot *s = slot_find(st, code);
    if (s == NULL || s->n == 0)
        return NULL;
    return &s->res[0];
}

int subject_state_results(const struct subject_state *st, const char *code,
                          const struct subject_result **out)
{
    const struct slot *s = slot_find(st, code);
    if (s == NULL || s->n == 0) {
        *out = NULL;
        return 0;
    }
    *out = s->res;
    return s->n;
}

int subject_state_count_at(const struct subject_state *st, const char *prefix, int64_t at_ms,
                           const char *except_id)
{
    size_t plen = strlen(prefix);
    int n = 0;
    for (int i = 0; i < st->n_slots; i++) {
        const struct slot *s = st->slots[i];
        if (strncmp(s->code, prefix, plen) != 0)
            continue;
        for (int j = 0; j < s->n; j++)
            if (s->res[j].effective_ms == at_ms &&
                (except_id == NULL || strcmp(subject_result_id(&s->res[j]), except_id) != 0))
                n++;
    }
    return n;
}

/* ---- versions ---------------------------------------------------------- */

static uint64_t version_key(const char *observation_id)
{
    uint64_t k = id_hash(observation_id);
    return k == 0 ? 1 : k; /* 0 marks an empty slot */
}

static struct version *version_slot(struct version *t, size_t cap, uint64_t key)
{
    size_t i = (size_t)key & (cap - 1);
    while (t[i].key != 0 && t[i].key != key)
        i = (i + 1) & (cap - 1);
    return &t[i];
}

bool subject_state_version(const struct subject_state *st, const char *observation_id,
                           int64_t *revision)
{
    if (st->cap_versions == 0)
        return false;
    const struct version *v =
        version_slot(st->versions, st->cap_versions, version_key(observation_id));
    if (v->key == 0)
        return false;
    *revision = v->revision;
    return true;
}

static int versions_grow(struct subject_state *st)
{
    size_t cap = st->cap_versions == 0 ? 16 : st->cap_versions * 2;
    struct version *t = calloc(cap, sizeof *t);
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < st->cap_versions; i++)
        if (st->versions[i].key != 0)
            *version_slot(t, cap, st->versions[i].key) = st->versions[i];
    free(st->versions);
    st->versions = t;
    st->cap_versions = cap;
    return 0;
}

int subject_state_version_set(struct subject_state *st, const char *observation_id,
                              int64_t revision)
{
    uint64_t key = version_key(observation_id);
    if (st->cap_versions > 0) {
        struct version *v = version_slot(st->versions, st->cap_versions, key);
        if (v->key == key) {
            if (revision > v->revision)
                v->revision = revision;
            return 0;
        }
    }
    if (st->n_versions >= SUBJECT_STATE_VERSIONS_MAX)
        return 0;
    if (2 * (st->n_versions + 1) > st->cap_versions && versions_grow(st) != 0)
        return -1;
    struct version *v = version_slot(st->versions, st->cap_versions, key);
    v->key = key;
    v->revision = revision;
    st->n_versions++;
    return 0;
}

/* ---- alerts ------------------------------------------------------------ */

static int list_find(const struct alert_list *l, const char *alert_id)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->a[i].alert_id, alert_id) == 0)
            return i;
    return -1;
}

static void list_remove(struct alert_list *l, int i)
{
    memmove(&l->a[i], &l->a[i + 1], sizeof l->a[0] * (size_t)(l->n - i - 1));
    l->n--;
}

/* Room at the end of L for one more, forgetting the oldest when full.
 * NULL if out of memory. */
static struct subject_alert *list_append(struct alert_list *l)
{
    if (l->n == l->cap) {
        if (l->cap == l->max) {
            list_remove(l, 0);
        } else {
            int cap = l->cap ? l->cap * 2 : 4;
            if (cap > l->max)
                cap = l->max;
            struct subject_alert *grown = realloc(l->a, sizeof *grown * (size_t)cap);
            if (grown == NULL)
                return NULL;
            l->a = grown;
            l->cap = cap;
        }
    }
    struct subject_alert *r = &l->a[l->n++];
    memset(r, 0, sizeof *r);
    return r;
}

static void copy_alert(struct subject_alert *r, const struct alert *al)
{
    snprintf(r->alert_id, sizeof r->alert_id, "%s", al->alert_id);
    snprintf(r->rule_id, sizeof r->rule_id, "%s", al->rule_id);
    r->rule_version = al->rule_version;
    r->severity = al->severity;
    r->nobs = al->n_evidence;
    for (int i = 0; i < al->n_evidence && i < SUBJECT_ALERT_IDS; i++)
        snprintf(r->obs_ids[i], sizeof r->obs_ids[i], "%s", al->evidence[i].observation_id);
}

void subject_state_alert_add(struct subject_state *st, const struct alert *al)
{
    if (list_find(&st->standing, al->alert_id) >= 0)
        return;
    int k = list_find(&st->retired, al->alert_id);
    if (k >= 0)
        list_remove(&st->retired, k);
    struct subject_alert *r = list_append(&st->standing);
    if (r != NULL)
        copy_alert(r, al);
}

int subject_state_alerts(const struct subject_state *st, const struct subject_alert **out)
{
    *out = st->standing.a;
    return st->standing.n;
}

bool subject_state_alert_forget(struct subject_state *st, const char *alert_id)
{
    int i = list_find(&st->standing, alert_id);
    if (i < 0)
        return false;
    list_remove(&st->standing, i);
    return true;
}

bool subject_state_alert_retire(struct subject_state *st, const char *alert_id)
{
    int i = list_find(&st->standing, alert_id);
    if (i < 0)
        return false;
    struct subject_alert gone = st->standing.a[i];
    list_remove(&st->standing, i);
    if (list_find(&st->retired, alert_id) < 0) {
        struct subject_alert *r = list_append(&st->retired);
        if (r != NULL)
            *r = gone;
    }
    return true;
}

void subject_state_retired_add(struct subject_state *st, const struct alert *al)
{
    if (list_find(&st->retired, al->alert_id) >= 0)
        return;
    struct subject_alert *r = list_append(&st->retired);
    if (r != NULL)
        copy_alert(r, al);
}

int subject_state_retired(const struct subject_state *st, const struct subject_alert **out)
{
    *out = st->retired.a;
    return st->retired.n;
}

bool subject_state_is_retired(const struct subject_state *st, const char *alert_id)
{
    return list_find(&st->retired, alert_id) >= 0;
}

bool subject_state_is_standing(const struct subject_state *st, const char *alert_id)
{
    return list_find(&st->standing, alert_id) >= 0;
}

size_t subject_state_bytes(const struct subject_state *st)
{
    size_t n = sizeof *st + st->id_bytes;
    for (int i = 0; i < st->n_slots; i++)
        n += sizeof *st->slots[i] + (size_t)st->slots[i]->cap * sizeof *st->slots[i]->res;
    n += st->cap_versions * sizeof *st->versions;
    n += (size_t)st->standing.cap * sizeof *st->standing.a;
    n += (size_t)st->retired.cap * sizeof *st->retired.a;
    return n;
}
