/*
 * hl7_enrol: the enrolment table (contract in hl7_enrol.h).
 *
 * A chained hash table keyed by (facility, patient_id) with FNV-1a
 * (common/hash.h). Its size is fixed when building ends -- rehashing as
 * rows arrive, then never again: the table is immutable once published.
 * A patient id may appear under several assigning authorities, so a
 * lookup walks the chain and checks the authority too.
 */
#include "hl7_enrol.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "pg.h"

struct entry {
    struct hl7_enrolment e;
    uint64_t h;
    struct entry *next;
    char strings[]; /* facility, patient_id, authority */
};

struct hl7_enrol {
    struct entry **buckets;
    size_t n_buckets, n;
    char **facilities;
    size_t n_fac, cap_fac;
};

static uint64_t key_hash(const char *facility, const char *patient)
{
    uint64_t h = hash_str(facility, HASH_SEED);
    h = hash_bytes("", 1, h);
    return hash_str(patient, h);
}

struct hl7_enrol *hl7_enrol_new(void)
{
    struct hl7_enrol *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->n_buckets = 64;
    e->buckets = calloc(e->n_buckets, sizeof *e->buckets);
    if (e->buckets == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void hl7_enrol_destroy(struct hl7_enrol *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; i < e->n_buckets; i++) {
        struct entry *x = e->buckets[i];
        while (x != NULL) {
            struct entry *next = x->next;
            free(x);
            x = next;
        }
    }
    for (size_t i = 0; i < e->n_fac; i++)
        free(e->facilities[i]);
    free(e->facilities);
    free(e->buckets);
    free(e);
}

static int rehash(struct hl7_enrol *e)
{
    size_t nb = e->n_buckets * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return -1;
    for (size_t i = 0; i < e->n_buckets; i++) {
        struct entry *x = e->buckets[i];
        while (x != NULL) {
            struct entry *next = x->next;
            x->next = b[x->h % nb];
            b[x->h % nb] = x;
            x = next;
        }
    }
    free(e->buckets);
    e->buckets = b;
    e->n_buckets = nb;
    return 0;
}

static int add_facility(struct hl7_enrol *e, const char *facility)
{
    if (hl7_enrol_knows_facility(e, facility))
        return 0;
    if (e->n_fac == e->cap_fac) {
        size_t cap = e->cap_fac ? e->cap_fac * 2 : 8;
        char **p = realloc(e->facilities, cap * sizeof *p);
        if (p == NULL)
            return -1;
        e->facilities = p;
        e->cap_fac = cap;
    }
    if ((e->facilities[e->n_fac] = strdup(facility)) == NULL)
        return -1;
    e->n_fac++;
    return 0;
}

static int check(const char *what, const char *v, bool may_be_empty, char *errstr,
                 size_t errstr_size)
{
    size_t n = v ? strlen(v) : 0;
    if ((n == 0 && !may_be_empty) || n > OBS_ID_MAX) {
        snprintf(errstr, errstr_size, "%s must be 1 to %d bytes", what, OBS_ID_MAX);
        return -1;
    }
    return 0;
}

int hl7_enrol_add(struct hl7_enrol *e, const char *facility, const char *patient_id,
                  const char *authority, const char *study, const char *site,
                  const char *subject, char *errstr, size_t errstr_size)
{
    if (authority == NULL)
        authority = "";
    if (check("facility", facility, false, errstr, errstr_size) != 0 ||
        check("patient_id", patient_id, false, errstr, errstr_size) != 0 ||
        check("assigning_authority", authority, true, errstr, errstr_size) != 0 ||
        check("study_id", study, false, errstr, errstr_size) != 0 ||
        check("site_id", site, false, errstr, errstr_size) != 0 ||
        check("subject_id", subject, false, errstr, errstr_size) != 0)
        return -1;
    size_t lf = strlen(facility) + 1, lp = strlen(patient_id) + 1, la = strlen(authority) + 1;
    struct entry *x = calloc(1, sizeof *x + lf + lp + la);
    if (x == NULL || add_facility(e, facility) != 0 ||
        (e->n + 1 > e->n_buckets && rehash(e) != 0)) {
        free(x);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    memcpy(x->strings, facility, lf);
    memcpy(x->strings + lf, patient_id, lp);
    memcpy(x->strings + lf + lp, authority, la);
    x->e.facility = x->strings;
    x->e.patient_id = x->strings + lf;
    x->e.authority = x->strings + lf + lp;
    snprintf(x->e.study_id, sizeof x->e.study_id, "%s", study);
    snprintf(x->e.site_id, sizeof x->e.site_id, "%s", site);
    snprintf(x->e.subject_id, sizeof x->e.subject_id, "%s", subject);
    x->h = key_hash(facility, patient_id);
    x->next = e->buckets[x->h % e->n_buckets];
    e->buckets[x->h % e->n_buckets] = x;
    e->n++;
    return 0;
}

struct hl7_enrol *hl7_enrol_load(PGconn *conn, size_t *skipped, char *errstr,
                                 size_t errstr_size)
{
    char why[512];
    size_t bad = 0;
    PGresult *r = pg_query(conn,
                           "SELECT facility, patient_id, assigning_authority, study_id, site_id, "
                           "subject_id FROM hl7_enrolments WHERE active",
                           0, NULL, why, sizeof why);
    if (r == NULL) {
        snprintf(errstr, errstr_size, "could not read hl7_enrolments: %s", why);
        return NULL;
    }
    struct hl7_enrol *e = hl7_enrol_new();
    if (e == NULL) {
        PQclear(r);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        if (hl7_enrol_add(e, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                          PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), why,
                          sizeof why) != 0) {
            if (strcmp(why, "out of memory") == 0) {
                PQclear(r);
                hl7_enrol_destroy(e);
                snprintf(errstr, errstr_size, "out of memory");
                return NULL;
            }
            bad++;
        }
    }
    PQclear(r);
    if (skipped != NULL)
        *skipped = bad;
    return e;
}

const struct hl7_enrolment *hl7_enrol_find(const struct hl7_enrol *e, const char *facility,
                                           const char *patient_id, const char *authority)
{
    uint64_t h = key_hash(facility, patient_id);
    for (const struct entry *x = e->buckets[h % e->n_buckets]; x != NULL; x = x->next) {
        if (x->h != h || strcmp(x->e.facility, facility) != 0 ||
            strcmp(x->e.patient_id, patient_id) != 0)
            continue;
        if (x->e.authority[0] == '\0' || strcmp(x->e.authority, authority) == 0)
            return &x->e;
    }
    return NULL;
}

bool hl7_enrol_knows_facility(const struct hl7_enrol *e, const char *facility)
{
    for (size_t i = 0; i < e->n_fac; i++)
        if (strcmp(e->facilities[i], facility) == 0)
            return true;
    return false;
}

size_t hl7_enrol_count(const struct hl7_enrol *e)
{
    return e->n;
}
