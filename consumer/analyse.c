#include "analyse.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clean.h"
#include "dlq.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "pg.h"
#include "rules.h"
#include "subject_state.h"

#define RAISED_MAX 64 /* active alerts remembered per subject */
#define WARM_ROWS_MAX 5000
#define BACKOFF_MAX_MS 5000
/* Queued items taken at once, their new subjects loaded in one batch */
#define WARM_BATCH 128

struct warm_req;

/* An alert this subject has raised and not retracted: what a later
 * entered-in-error or amended result may need to withdraw. */
struct raised {
    char alert_id[ALERT_ID_MAX + 1];
    char rule_id[ALERT_RULE_MAX + 1];
    int32_t rule_version;
    enum alert_severity severity;
    int nobs;
    char obs_ids[ALERT_EVIDENCE_MAX][OBS_ID_MAX + 1];
};

struct subject {
    struct subject *hnext;
    struct subject *lru_prev, *lru_next; /* most recent at head */
    uint64_t hash;
    int gen;
    struct subject_state *st;
    struct raised *raised;
    int nraised, capraised;
    char key[2 * OBS_ID_MAX + 2];
};

struct analyser {
    const struct analyse_env *env;
    int index;
    struct chan *in;
    pthread_t thread;
    PGconn *pg;

    struct subject **buckets;
    size_t nbuckets;
    size_t nsubjects;
    struct subject *lru_head, *lru_tail;

    struct rules *rules;
    uint64_t rules_gen;
    struct alert *scratch; /* rules_max_alerts entries */
    int scratch_cap;

    struct metric *m_invalid_other;
    struct metric *m_warm;
    struct metric *m_warm_queries;
    struct metric *m_retractions;

    /* prewarm's scratch (WARM_BATCH each) */
    struct observation *prewarm_obs;
    struct warm_req *prewarm_req;
};

/* ---- subject table ---------------------------------------------------- */

static void lru_unlink(struct analyser *a, struct subject *s)
{
    if (s->lru_prev)
        s->lru_prev->lru_next = s->lru_next;
    else
        a->lru_head = s->lru_next;
    if (s->lru_next)
        s->lru_next->lru_prev = s->lru_prev;
    else
        a->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
}

static void lru_push(struct analyser *a, struct subject *s)
{
    s->lru_next = a->lru_head;
    s->lru_prev = NULL;
    if (a->lru_head)
        a->lru_head->lru_prev = s;
    a->lru_head = s;
    if (a->lru_tail == NULL)
        a->lru_tail = s;
}

static void subject_free(struct subject *s)
{
    subject_state_destroy(s->st);
    free(s->raised);
    free(s);
}

static void subject_evict(struct analyser *a, struct subject *s)
{
    struct subject **pp = &a->buckets[s->hash % a->nbuckets];
    while (*pp != s)
        pp = &(*pp)->hnext;
    *pp = s->hnext;
    lru_unlink(a, s);
    subject_free(s);
    a->nsubjects--;
}

/* The subject KEY (hash H) if it is in memory, else NULL. Changes nothing. */
static struct subject *subject_lookup(const struct analyser *a, const char *key, uint64_t h)
{
    for (struct subject *s = a->buckets[h % a->nbuckets]; s; s = s->hnext)
        if (s->hash == h && strcmp(s->key, key) == 0)
            return s;
    return NULL;
}

/* Whether the subject KEY is in memory with a state that is current (read
 * since the last rebalance). Changes nothing. */
static bool subject_known(const struct analyser *a, const char *key)
{
    const struct subject *s = subject_lookup(a, key, hash_str(key, HASH_SEED));
    return s != NULL && s->gen == atomic_load(a->env->assign_gen);
}

/* Finds or creates the subject KEY; *fresh tells whether its state must be
 * loaded. NULL if out of memory. */
static struct subject *subject_get(struct analyser *a, const char *key, bool *fresh)
{
    uint64_t h = hash_str(key, HASH_SEED);
    int gen = atomic_load(a->env->assign_gen);
    struct subject *s = subject_lookup(a, key, h);
    if (s != NULL) {
        lru_unlink(a, s);
        lru_push(a, s);
        if (s->gen != gen) {
            /* A rebalance happened since: another worker may have
             * moved this subject on. Start again from PostgreSQL. */
            subject_state_destroy(s->st);
            s->st = subject_state_new();
            s->nraised = 0;
            s->gen = gen;
            *fresh = true;
            return s->st ? s : NULL;
        }
        *fresh = false;
        return s;
    }
    while (a->nsubjects >= a->env->max_subjects && a->lru_tail != NULL)
        subject_evict(a, a->lru_tail);
    s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->st = subject_state_new();
    if (s->st == NULL) {
        free(s);
        return NULL;
    }
    snprintf(s->key, sizeof s->key, "%s", key);
    s->hash = h;
    s->gen = gen;
    s->hnext = a->buckets[h % a->nbuckets];
    a->buckets[h % a->nbuckets] = s;
    lru_push(a, s);
    a->nsubjects++;
    *fresh = true;
    return s;
}

static void raised_remember(struct subject *s, const struct alert *al)
{
    for (int i = 0; i < s->nraised; i++)
        if (strcmp(s->raised[i].alert_id, al->alert_id) == 0)
            return;
    if (s->nraised == s->capraised) {
        if (s->capraised == RAISED_MAX) {
            /* Full: forget the oldest. It can no longer be retracted by
             * this worker's memory, but its row stays in PostgreSQL. */
            memmove(&s->raised[0], &s->raised[1], sizeof s->raised[0] * (RAISED_MAX - 1));
            s->nraised--;
        } else {
            int ncap = s->capraised ? s->capraised * 2 : 4;
            if (ncap > RAISED_MAX)
                ncap = RAISED_MAX;
            struct raised *nr = realloc(s->raised, sizeof *nr * (size_t)ncap);
            if (nr == NULL)
                return;
            s->raised = nr;
            s->capraised = ncap;
        }
    }
    struct raised *r = &s->raised[s->nraised++];
    memset(r, 0, sizeof *r);
    snprintf(r->alert_id, sizeof r->alert_id, "%s", al->alert_id);
    snprintf(r->rule_id, sizeof r->rule_id, "%s", al->rule_id);
    r->rule_version = al->rule_version;
    r->severity = al->severity;
    r->nobs = al->n_evidence;
    for (int i = 0; i < al->n_evidence && i < ALERT_EVIDENCE_MAX; i++)
        snprintf(r->obs_ids[i], sizeof r->obs_ids[i], "%s", al->evidence[i].observation_id);
}

static bool raised_mentions(const struct raised *r, const char *obs_id)
{
    for (int i = 0; i < r->nobs; i++)
        if (strcmp(r->obs_ids[i], obs_id) == 0)
            return true;
    return false;
}

/* ---- PostgreSQL: warming a subject's state ---------------------------- */

static void backoff_sleep(int *ms)
{
    struct timespec ts = {*ms / 1000, (long)(*ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    *ms = *ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *ms * 2;
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* A subject whose state is to be loaded, and the result that brought it
 * (its study, site and subject fill the loaded observations). */
struct warm_req {
    struct subject *s;
    const struct observation *obs;
};

static bool pg_ready(struct analyser *a, char *err, size_t errsz)
{
    if (a->pg != NULL && PQstatus(a->pg) == CONNECTION_OK)
        return true;
    PQfinish(a->pg);
    a->pg = pg_connect(a->env->conninfo, err, errsz);
    return a->pg != NULL;
}

/* Loads the stored results and active alerts of every subject of REQ in
 * two statements, whatever N: after a rebalance every subject is new, and
 * two round trips each add up with a database across a network. Returns 0, or -1
 * with errstr (PostgreSQL unreachable or failing: the caller retries;
 * the states may then be half filled and must be loaded again). */
static int warm_many(struct analyser *a, const struct warm_req *req, int n, char *err,
                     size_t errsz)
{
    if (!pg_ready(a, err, errsz))
        return -1;
    struct pg_textarray *studies = pg_textarray_new(), *subjects = pg_textarray_new();
    int rc = -1;
    PGresult *r = NULL;
    if (studies == NULL || subjects == NULL) {
        snprintf(err, errsz, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (pg_textarray_add(studies, req[i].obs->study_id) != 0 ||
            pg_textarray_add(subjects, req[i].obs->subject_id) != 0) {
            snprintf(err, errsz, "out of memory");
            goto out;
        }
    const char *params[2] = {pg_textarray_str(studies), pg_textarray_str(subjects)};
    r = pg_query(a->pg,
                 "SELECT k.i, o.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
                 " AS k(st, su, i) CROSS JOIN LATERAL ("
                 "SELECT observation_id, loinc, value, unit, ref_low, ref_high,"
                 " (extract(epoch from effective_at) * 1000)::bigint, status"
                 " FROM observations WHERE study_id = k.st AND subject_id = k.su"
                 " AND value_norm IS NOT NULL"
                 " ORDER BY effective_at, observation_id LIMIT 5000) o ORDER BY k.i",
                 2, params, err, errsz);
    if (r == NULL)
        goto out;
    for (int i = 0; i < PQntuples(r); i++) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 1;
        if (k < 0 || k >= n)
            continue;
        const struct observation *obs = req[k].obs;
        struct observation o;
        memset(&o, 0, sizeof o);
        copy_field(o.observation_id, sizeof o.observation_id, PQgetvalue(r, i, 1));
        copy_field(o.study_id, sizeof o.study_id, obs->study_id);
        copy_field(o.site_id, sizeof o.site_id, obs->site_id);
        copy_field(o.subject_id, sizeof o.subject_id, obs->subject_id);
        copy_field(o.loinc, sizeof o.loinc, PQgetvalue(r, i, 2));
        o.has_value = !PQgetisnull(r, i, 3);
        o.value = o.has_value ? strtod(PQgetvalue(r, i, 3), NULL) : 0;
        copy_field(o.unit, sizeof o.unit, PQgetvalue(r, i, 4));
        o.has_ref_low = !PQgetisnull(r, i, 5);
        o.ref_low = o.has_ref_low ? strtod(PQgetvalue(r, i, 5), NULL) : 0;
        o.has_ref_high = !PQgetisnull(r, i, 6);
        o.ref_high = o.has_ref_high ? strtod(PQgetvalue(r, i, 6), NULL) : 0;
        o.effective_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
        int st = obs_status_parse(PQgetvalue(r, i, 8));
        o.status = st < 0 ? OBS_FINAL : (enum obs_status)st;
        struct clean_result c;
        clean_observation(&o, &c);
        subject_state_add(req[k].s->st, &o, &c);
    }
    PQclear(r);

    r = pg_query(a->pg,
                 "SELECT k.i, al.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
                 " AS k(st, su, i) CROSS JOIN LATERAL ("
                 "SELECT alert_id, rule_id, rule_version, severity, evidence::text,"
                 " detected_at FROM alerts"
                 " WHERE study_id = k.st AND subject_id = k.su AND kind = 'signal'"
                 " AND NOT retracted ORDER BY detected_at DESC, alert_id LIMIT 64) al"
                 " ORDER BY k.i, al.detected_at DESC, al.alert_id",
                 2, params, err, errsz);
    if (r == NULL)
        goto out;
    /* newest first per subject: walk backwards so each remembers oldest first */
    for (int i = PQntuples(r) - 1; i >= 0; i--) {
        long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 1;
        if (k < 0 || k >= n)
            continue;
        struct alert al;
        memset(&al, 0, sizeof al);
        copy_field(al.alert_id, sizeof al.alert_id, PQgetvalue(r, i, 1));
        copy_field(al.rule_id, sizeof al.rule_id, PQgetvalue(r, i, 2));
        al.rule_version = (int32_t)strtol(PQgetvalue(r, i, 3), NULL, 10);
        int sev = alert_severity_parse(PQgetvalue(r, i, 4));
        al.severity = sev < 0 ? SEV_INFO : (enum alert_severity)sev;
        json_t *ev = json_loads(PQgetvalue(r, i, 5), 0, NULL);
        size_t j;
        json_t *e;
        json_array_foreach(ev, j, e)
        {
            if (al.n_evidence == ALERT_EVIDENCE_MAX)
                break;
            const char *id = json_string_value(json_object_get(e, "observation_id"));
            if (id != NULL)
                copy_field(al.evidence[al.n_evidence++].observation_id, OBS_ID_MAX + 1, id);
        }
        json_decref(ev);
        raised_remember(req[k].s, &al);
    }
    metric_add(a->m_warm, (uint64_t)n);
    metric_add(a->m_warm_queries, 1);
    rc = 0;
out:
    PQclear(r);
    pg_textarray_destroy(studies);
    pg_textarray_destroy(subjects);
    return rc;
}

static int warm(struct analyser *a, struct subject *s, const struct observation *obs,
                char *err, size_t errsz)
{
    const struct warm_req req = {s, obs};
    return warm_many(a, &req, 1, err, errsz);
}

/* Before a run of queued items is processed: loads, together, the state
 * of every subject among them that is not in memory yet. Best effort --
 * what it cannot load (a decode error, PostgreSQL failing) is loaded by
 * process() one subject at a time, with its retries. */
static void prewarm(struct analyser *a, struct work **items, int n)
{
    struct observation *obs = a->prewarm_obs;
    struct warm_req *req = a->prewarm_req;
    /* Fewer fresh subjects than the table holds: creating them must not
     * evict one created a moment before (the newest are evicted last). */
    int cap = (int)(a->env->max_subjects / 2);
    int nreq = 0;
    char err[512];
    for (int i = 0; i < n && nreq < cap && nreq < WARM_BATCH; i++) {
        const rd_kafka_message_t *m = items[i]->rkm;
        /* The message key names the subject: decode only the new ones (in
         * the steady state, almost none), and only when the record agrees
         * with its key -- process() dead-letters the others. */
        char key[2 * OBS_ID_MAX + 2];
        if (m->key == NULL || m->key_len >= sizeof key)
            continue;
        memcpy(key, m->key, m->key_len);
        key[m->key_len] = '\0';
        if (subject_known(a, key))
            continue;
        if (codec_decode_observation(a->env->codec, m->payload, m->len, &obs[nreq], err,
                                     sizeof err) != CODEC_OK)
            continue;
        char rec[2 * OBS_ID_MAX + 2];
        snprintf(rec, sizeof rec, "%s/%s", obs[nreq].study_id, obs[nreq].subject_id);
        if (strcmp(rec, key) != 0)
            continue;
        bool fresh = false;
        struct subject *s = subject_get(a, key, &fresh);
        if (s == NULL || !fresh)
            continue;
        req[nreq].s = s;
        req[nreq].obs = &obs[nreq];
        nreq++;
    }
    if (nreq == 0)
        return;
    if (warm_many(a, req, nreq, err, sizeof err) != 0) {
        /* half-loaded states must not be used: process() starts them again */
        for (int i = 0; i < nreq; i++)
            subject_evict(a, req[i].s);
        log_msg(LOG_WARN, "analyse", "could not load %d subject states together: %s", nreq,
                err);
    }
}

/* ---- one work item ---------------------------------------------------- */

static void alert_id_for_retraction(const char *target, char *out, size_t outsz)
{
    uint64_t h1 = hash_str(target, hash_str("vigil-retraction", HASH_SEED));
    uint64_t h2 = hash_str(target, hash_str("vigil-retraction-2", 0x9e3779b97f4a7c15ull));
    snprintf(out, outsz, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

static void make_retraction(const struct raised *r, const struct observation *obs,
                            const char *why, int64_t now_ms, struct alert *out)
{
    memset(out, 0, sizeof *out);
    alert_id_for_retraction(r->alert_id, out->alert_id, sizeof out->alert_id);
    out->kind = ALERT_RETRACTION;
    snprintf(out->rule_id, sizeof out->rule_id, "%s", r->rule_id);
    out->rule_version = r->rule_version;
    out->severity = r->severity;
    snprintf(out->study_id, sizeof out->study_id, "%s", obs->study_id);
    snprintf(out->site_id, sizeof out->site_id, "%s", obs->site_id);
    snprintf(out->subject_id, sizeof out->subject_id, "%s", obs->subject_id);
    out->n_evidence = 1;
    struct alert_evidence *e = &out->evidence[0];
    snprintf(e->observation_id, sizeof e->observation_id, "%s", obs->observation_id);
    snprintf(e->loinc, sizeof e->loinc, "%s", obs->loinc);
    e->value = obs->has_value ? obs->value : 0;
    snprintf(e->unit, sizeof e->unit, "%s", obs->unit);
    e->effective_ms = obs->effective_ms;
    snprintf(out->message, sizeof out->message,
             "Withdrawn: alert %s (rule %s) no longer stands: result %s was %s", r->alert_id,
             r->rule_id, obs->observation_id, why);
    out->observed_ms = obs->effective_ms;
    out->detected_ms = now_ms;
    snprintf(out->retracts_alert_id, sizeof out->retracts_alert_id, "%s", r->alert_id);
}

static int status_rank(enum obs_status s)
{
    switch (s) {
    case OBS_FINAL:
        return 0;
    case OBS_AMENDED:
    case OBS_CORRECTED:
        return 1;
    default:
        return 2;
    }
}

static void count_invalid(struct analyser *a, const char *reason)
{
    char labels[96];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    metric_add(metrics_counter(a->env->metrics, "vigil_invalid_total",
                               "Messages dead-lettered, by reason", labels),
               1);
}

/* Dead-letters W; if even that is impossible (closing), abandons it. */
static void poison(struct analyser *a, struct work *w, const char *cls, const char *msg)
{
    count_invalid(a, cls);
    if (dlq_send(a->env->dlq, w, cls, msg) != 0)
        work_abandon(w);
}

static bool rules_refresh(struct analyser *a)
{
    if (a->rules != NULL && snapshot_generation(a->env->rules) == a->rules_gen)
        return true;
    if (a->rules != NULL)
        snapshot_release(a->env->rules, a->rules);
    a->rules = snapshot_acquire(a->env->rules, &a->rules_gen);
    int need = rules_max_alerts(a->rules) + RAISED_MAX;
    if (need > a->scratch_cap) {
        struct alert *n = realloc(a->scratch, sizeof *n * (size_t)need);
        if (n == NULL)
            return false;
        a->scratch = n;
        a->scratch_cap = need;
    }
    return true;
}

static void process(struct analyser *a, struct work *w)
{
    char err[512];
    const struct analyse_env *env = a->env;
    const rd_kafka_message_t *m = w->rkm;

    /* 1. decode */
    enum codec_status cs;
    int backoff = 100;
    for (;;) {
        cs = codec_decode_observation(env->codec, m->payload, m->len, &w->obs, err, sizeof err);
        if (cs != CODEC_ETRANSIENT)
            break;
        log_msg(LOG_WARN, "analyse", "schema registry unavailable, retrying: %s", err);
        if (ctx_done(env->ctx)) {
            work_abandon(w);
            return;
        }
        backoff_sleep(&backoff);
    }
    if (cs != CODEC_OK) {
        poison(a, w, codec_error_class_name(cs), err);
        return;
    }
    struct observation *obs = &w->obs;

    /* 2. the key is the contract that keeps a subject on one thread */
    char key[2 * OBS_ID_MAX + 2];
    int klen = snprintf(key, sizeof key, "%s/%s", obs->study_id, obs->subject_id);
    if (m->key == NULL || m->key_len != (size_t)klen || memcmp(m->key, key, (size_t)klen) != 0) {
        poison(a, w, "invalid",
               "message key does not match the record's study_id/subject_id");
        return;
    }
    if (obs->has_ref_low && obs->has_ref_high && obs->ref_low > obs->ref_high) {
        poison(a, w, "invalid", "ref_low is greater than ref_high");
        return;
    }

    /* 3. clean */
    clean_observation(obs, &w->clean);
    if (w->clean.finding != NULL) {
        char labels[96];
        snprintf(labels, sizeof labels, "finding=\"%s\"", w->clean.finding);
        metric_add(metrics_counter(env->metrics, "vigil_data_quality_findings_total",
                                   "Observations stored with a data-quality finding", labels),
                   1);
    }
    w->revision = (obs->issued_ms > 0 ? obs->issued_ms : 0) * 4 + status_rank(obs->status);
    w->store_row = true;

    /* 4. analyse: only results that can raise or withdraw alerts need the
     * subject's state. */
    bool usable = w->clean.status == CLEAN_OK &&
                  (obs->status == OBS_FINAL || obs->status == OBS_AMENDED ||
                   obs->status == OBS_CORRECTED);
    bool withdraws = obs->status != OBS_FINAL;
    int n = 0;
    if (usable || withdraws) {
        bool fresh = false;
        struct subject *s = subject_get(a, key, &fresh);
        if (s == NULL) {
            work_abandon(w); /* out of memory: consumed again later */
            return;
        }
        backoff = 100;
        while (fresh && warm(a, s, obs, err, sizeof err) != 0) {
            log_msg(LOG_WARN, "analyse", "could not load subject state, retrying: %s", err);
            if (ctx_done(env->ctx)) {
                subject_evict(a, s);
                work_abandon(w);
                return;
            }
            backoff_sleep(&backoff);
        }
        if (!rules_refresh(a)) {
            work_abandon(w);
            return;
        }
        int64_t now = kafka_now_ms();
        if (usable)
            n = rules_eval(a->rules, s->st, obs, &w->clean, now, a->scratch, a->scratch_cap);
        /* The state learns the result (or forgets it) before the
         * withdrawal check, so an alert re-evaluated there sees the subject
         * as it now is. */
        if (obs->status == OBS_ENTERED_IN_ERROR || obs->status == OBS_CANCELLED)
            subject_state_remove(s->st, obs->observation_id);
        else
            subject_state_add(s->st, obs, &w->clean);
        /* Withdraw what this result was evidence for and no longer gives:
         * not raised again by the result itself, and not by its rule from
         * the alert's other evidence (rules_reconfirm: a Hy's law case
         * outlives the supporting ALP entered in error). */
        if (withdraws) {
            const char *why = obs->status == OBS_ENTERED_IN_ERROR ? "entered in error"
                              : obs->status == OBS_CANCELLED      ? "cancelled"
                                                                  : "amended";
            for (int i = 0; i < s->nraised;) {
                struct raised *r = &s->raised[i];
                bool still = false;
                for (int j = 0; j < n; j++)
                    if (strcmp(a->scratch[j].alert_id, r->alert_id) == 0)
                        still = true;
                if (!still && raised_mentions(r, obs->observation_id)) {
                    const char *ids[ALERT_EVIDENCE_MAX];
                    for (int k = 0; k < r->nobs; k++)
                        ids[k] = r->obs_ids[k];
                    still = rules_reconfirm(a->rules, s->st, obs, r->rule_id, r->alert_id, ids,
                                            r->nobs, now);
                }
                if (raised_mentions(r, obs->observation_id) && !still && n < a->scratch_cap) {
                    make_retraction(r, obs, why, now, &a->scratch[n++]);
                    metric_add(a->m_retractions, 1);
                    memmove(r, r + 1, sizeof *r * (size_t)(s->nraised - i - 1));
                    s->nraised--;
                    continue;
                }
                i++;
            }
        }
        for (int j = 0; j < n; j++) {
            if (a->scratch[j].kind != ALERT_SIGNAL)
                continue;
            char labels[160], esc[2 * ALERT_RULE_MAX + 1];
            snprintf(labels, sizeof labels, "rule=\"%s\",severity=\"%s\"",
                     metrics_label_escape(a->scratch[j].rule_id, esc, sizeof esc),
                     alert_severity_name(a->scratch[j].severity));
            metric_add(metrics_counter(env->metrics, "vigil_alerts_total",
                                       "Alerts raised, by rule and severity", labels),
                       1);
            raised_remember(s, &a->scratch[j]);
        }
    }

    if (n > 0) {
        w->alerts = malloc(sizeof *w->alerts * (size_t)n);
        if (w->alerts == NULL) {
            work_abandon(w);
            return;
        }
        memcpy(w->alerts, a->scratch, sizeof *w->alerts * (size_t)n);
        w->nalerts = n;
    }

    /* 5. effects: alerts to Kafka, the row (and alert rows) to PostgreSQL */
    for (int j = 0; j < w->nalerts; j++) {
        unsigned char buf[CODEC_ALERT_MAX_ENCODED];
        size_t len = 0;
        if (codec_encode_alert(env->codec, &w->alerts[j], CODEC_SINGLE_OBJECT, 0, buf, sizeof buf,
                               &len, err, sizeof err) != CODEC_OK) {
            log_msg(LOG_ERROR, "analyse", "could not encode alert %s: %s", w->alerts[j].alert_id,
                    err);
            work_abandon(w);
            continue;
        }
        work_hold(w);
        if (publisher_send(env->pub, env->alerts_topic, key, (size_t)klen, buf, len, NULL,
                           work_release_cb, w) != 0) {
            work_abandon(w);
            work_release(w);
        }
    }
    work_hold(w);
    if (store_put(env->store, w, env->ctx) != 0) {
        work_abandon(w);
        work_release(w);
    }
}

static void *run(void *arg)
{
    struct analyser *a = arg;
    struct work *items[WARM_BATCH];
    for (;;) {
        void *item;
        if (chan_recv(a->in, &item, DEADLINE_FOREVER) != CHAN_OK)
            break;
        /* what is queued already, in order: its subjects load together */
        int n = 0;
        items[n++] = item;
        while (n < WARM_BATCH && chan_try_recv(a->in, &item) == CHAN_OK)
            items[n++] = item;
        if (!ctx_done(a->env->ctx))
            prewarm(a, items, n);
        for (int i = 0; i < n; i++) {
            struct work *w = items[i];
            if (ctx_done(a->env->ctx))
                work_abandon(w);
            else
                process(a, w);
            work_release(w);
        }
    }
    return NULL;
}

struct analyser *analyser_new(const struct analyse_env *env, int index, size_t queue_cap,
                              char *errstr, size_t errstr_size)
{
    struct analyser *a = calloc(1, sizeof *a);
    if (a == NULL)
        goto oom;
    a->env = env;
    a->index = index;
    a->nbuckets = 65536;
    a->buckets = calloc(a->nbuckets, sizeof *a->buckets);
    a->in = chan_new(queue_cap);
    if (a->buckets == NULL || a->in == NULL)
        goto oom;
    a->m_invalid_other = NULL;
    a->m_warm = metrics_counter(env->metrics, "vigil_subject_state_loads_total",
                                "Subject states loaded from PostgreSQL", NULL);
    a->m_warm_queries = metrics_counter(env->metrics, "vigil_subject_state_load_batches_total",
                                        "Batches of subject states loaded together", NULL);
    a->prewarm_obs = calloc(WARM_BATCH, sizeof *a->prewarm_obs);
    a->prewarm_req = calloc(WARM_BATCH, sizeof *a->prewarm_req);
    if (a->prewarm_obs == NULL || a->prewarm_req == NULL)
        goto oom;
    a->m_retractions = metrics_counter(env->metrics, "vigil_retractions_total",
                                       "Alerts withdrawn by a later result", NULL);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        snprintf(errstr, errstr_size, "could not start analysis thread %d", index);
        goto fail;
    }
    return a;
oom:
    snprintf(errstr, errstr_size, "out of memory");
fail:
    if (a != NULL) {
        chan_destroy(a->in);
        free(a->buckets);
        free(a->prewarm_obs);
        free(a->prewarm_req);
        free(a);
    }
    return NULL;
}

enum chan_status analyser_try_put(struct analyser *a, struct work *w)
{
    return chan_try_send(a->in, w);
}

enum chan_status analyser_put(struct analyser *a, struct work *w, deadline_t deadline)
{
    return chan_send(a->in, w, deadline);
}

size_t analyser_depth(struct analyser *a)
{
    return chan_len(a->in);
}

void analyser_close(struct analyser *a)
{
    if (a == NULL)
        return;
    chan_close(a->in);
    pthread_join(a->thread, NULL);
    while (a->lru_head != NULL)
        subject_evict(a, a->lru_head);
    if (a->rules != NULL)
        snapshot_release(a->env->rules, a->rules);
    PQfinish(a->pg);
    free(a->scratch);
    free(a->prewarm_obs);
    free(a->prewarm_req);
    chan_destroy(a->in);
    free(a->buckets);
    free(a);
}
