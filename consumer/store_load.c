/*
 * store_load: loading subjects' states from PostgreSQL (see store_load.h).
 *
 * DESIGN: one statement per table for a whole batch of subjects: the
 * (study, subject) pairs travel as two text[] parameters, unnested WITH
 * ORDINALITY so each row comes back tagged with its request's index, and a
 * LATERAL subquery applies the per-subject limit. After a rebalance every
 * subject is new, and two round trips per subject add up with a database
 * across a network (the rejected alternative: a pair of queries per
 * subject). store_load_subject() is a batch of one, for the subject whose
 * batch load failed.
 */
#include "store_load.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "clean.h"
#include "pg.h"

/* Results with a normalised value, oldest first (the state keeps them in
 * any order, but a subject past the limit keeps its first 5,000). */
static const char load_obs_sql[] =
    "SELECT k.i, o.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
    " AS k(st, su, i) CROSS JOIN LATERAL ("
    "SELECT observation_id, loinc, value, unit, ref_low, ref_high,"
    " (extract(epoch from effective_at) * 1000)::bigint, status"
    " FROM observations WHERE study_id = k.st AND subject_id = k.su"
    " AND value_norm IS NOT NULL"
    " ORDER BY effective_at, observation_id LIMIT 5000) o ORDER BY k.i";

/* Active signals, newest first: the state remembers 64 at most. */
static const char load_alerts_sql[] =
    "SELECT k.i, al.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY"
    " AS k(st, su, i) CROSS JOIN LATERAL ("
    "SELECT alert_id, rule_id, rule_version, severity, evidence::text,"
    " detected_at FROM alerts"
    " WHERE study_id = k.st AND subject_id = k.su AND kind = 'signal'"
    " AND NOT retracted ORDER BY detected_at DESC, alert_id LIMIT 64) al"
    " ORDER BY k.i, al.detected_at DESC, al.alert_id";

struct store_load {
    const char *conninfo;
    PGconn *pg;
    struct metric *m_loads;
    struct metric *m_batches;
};

struct store_load *store_load_new(const char *conninfo, struct metrics *m)
{
    struct store_load *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->conninfo = conninfo;
    l->m_loads = metrics_counter(m, "vigil_subject_state_loads_total",
                                 "Subject states loaded from PostgreSQL", NULL);
    l->m_batches = metrics_counter(m, "vigil_subject_state_load_batches_total",
                                   "Batches of subject states loaded together", NULL);
    return l;
}

void store_load_destroy(struct store_load *l)
{
    if (l == NULL)
        return;
    PQfinish(l->pg);
    free(l);
}

static bool pg_ready(struct store_load *l, char *err, size_t errsz)
{
    if (l->pg != NULL && PQstatus(l->pg) == CONNECTION_OK)
        return true;
    PQfinish(l->pg);
    l->pg = pg_connect(l->conninfo, err, errsz);
    return l->pg != NULL;
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Request index of row I (column 0, 1-based in SQL), or -1 if out of range. */
static long row_req(const PGresult *r, int i, int n)
{
    long k = strtol(PQgetvalue(r, i, 0), NULL, 10) - 1;
    return k < 0 || k >= n ? -1 : k;
}

static void add_observations(const PGresult *r, const struct store_load_req *req, int n)
{
    for (int i = 0; i < PQntuples(r); i++) {
        long k = row_req(r, i, n);
        if (k < 0)
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
        subject_state_add(req[k].st, &o, &c);
    }
}

static void add_alerts(const PGresult *r, const struct store_load_req *req, int n)
{
    /* newest first per subject: walk backwards so each remembers oldest first */
    for (int i = PQntuples(r) - 1; i >= 0; i--) {
        long k = row_req(r, i, n);
        if (k < 0)
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
        subject_state_alert_add(req[k].st, &al);
    }
}

int store_load_subjects(struct store_load *l, const struct store_load_req *req, int n, char *err,
                        size_t errsz)
{
    if (!pg_ready(l, err, errsz))
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
    r = pg_query(l->pg, load_obs_sql, 2, params, err, errsz);
    if (r == NULL)
        goto out;
    add_observations(r, req, n);
    PQclear(r);

    r = pg_query(l->pg, load_alerts_sql, 2, params, err, errsz);
    if (r == NULL)
        goto out;
    add_alerts(r, req, n);
    metric_add(l->m_loads, (uint64_t)n);
    metric_add(l->m_batches, 1);
    rc = 0;
out:
    PQclear(r);
    pg_textarray_destroy(studies);
    pg_textarray_destroy(subjects);
    return rc;
}

int store_load_subject(struct store_load *l, struct subject_state *st,
                       const struct observation *obs, char *errstr, size_t errstr_size)
{
    const struct store_load_req req = {st, obs};
    return store_load_subjects(l, &req, 1, errstr, errstr_size);
}
