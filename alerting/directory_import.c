/*
 * directory_import: directory records into PostgreSQL (directory_import.h).
 */
#include "directory_import.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "pg.h"
#include "policy_store.h"

/* Each upsert writes only when something differs, so PQcmdTuples counts
 * real changes. */
static const char researcher_sql[] =
    "INSERT INTO researchers (researcher_id, name, email, phone) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (researcher_id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email, "
    "phone = EXCLUDED.phone, updated_at = now() "
    "WHERE (researchers.name, researchers.email, researchers.phone) IS DISTINCT FROM "
    "(EXCLUDED.name, EXCLUDED.email, EXCLUDED.phone)";
static const char study_sql[] =
    "INSERT INTO studies (study_id, name) VALUES ($1, $2) "
    "ON CONFLICT (study_id) DO UPDATE SET name = EXCLUDED.name WHERE studies.name <> EXCLUDED.name";
static const char site_sql[] =
    "INSERT INTO sites (study_id, site_id, name) VALUES ($2, $1, $3) "
    "ON CONFLICT (study_id, site_id) DO UPDATE SET name = EXCLUDED.name WHERE sites.name <> EXCLUDED.name";
static const char subscription_sql[] =
    "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity, channels) "
    "VALUES ($1, $2, $3, $4, $5::text[]) "
    "ON CONFLICT (researcher_id, study_id, (coalesce(site_id, ''))) DO UPDATE "
    "SET min_severity = EXCLUDED.min_severity, channels = EXCLUDED.channels "
    "WHERE (subscriptions.min_severity, subscriptions.channels) IS DISTINCT FROM "
    "(EXCLUDED.min_severity, EXCLUDED.channels)";

static const char quiet_set_sql[] =
    "INSERT INTO researcher_quiet_hours (researcher_id, start_local, end_local, time_zone) "
    "VALUES ($1, $2::time, $3::time, $4) "
    "ON CONFLICT (researcher_id) DO UPDATE SET start_local = EXCLUDED.start_local, "
    "end_local = EXCLUDED.end_local, time_zone = EXCLUDED.time_zone, updated_at = now() "
    "WHERE (researcher_quiet_hours.start_local, researcher_quiet_hours.end_local, "
    "researcher_quiet_hours.time_zone) IS DISTINCT FROM "
    "(EXCLUDED.start_local, EXCLUDED.end_local, EXCLUDED.time_zone)";
static const char quiet_remove_sql[] = "DELETE FROM researcher_quiet_hours WHERE researcher_id = $1";

/* A researcher record's quiet hours (0064), after its row. Returns the
 * rows changed, or -1 with E. */
static long quiet(PGconn *c, const struct directory_record *r, char *e, size_t esz)
{
    if (r->quiet == DIRECTORY_QUIET_KEEP)
        return 0;
    const char *p[] = {r->id, r->quiet_start, r->quiet_end, r->quiet_zone};
    PGresult *res = r->quiet == DIRECTORY_QUIET_SET ? pg_query(c, quiet_set_sql, 4, p, e, esz)
                                                    : pg_query(c, quiet_remove_sql, 1, p, e, esz);
    if (res == NULL)
        return -1;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

/* One record of the tables of 0003. Returns the rows changed, or -1 with E. */
static long upsert(PGconn *c, const struct directory_record *r, char *e, size_t esz)
{
    PGresult *res = NULL;
    switch (r->kind) {
    case DIRECTORY_STUDY: {
        const char *p[] = {r->id, r->name};
        res = pg_query(c, study_sql, 2, p, e, esz);
        break;
    }
    case DIRECTORY_SITE: {
        const char *p[] = {r->id, r->study, r->name};
        res = pg_query(c, site_sql, 3, p, e, esz);
        break;
    }
    case DIRECTORY_RESEARCHER: {
        const char *p[] = {r->id, r->name, r->email, r->phone};
        res = pg_query(c, researcher_sql, 4, p, e, esz);
        break;
    }
    case DIRECTORY_SUBSCRIPTION: {
        const char *p[] = {r->id, r->study, r->site, r->min_severity, r->channels};
        res = pg_query(c, subscription_sql, 5, p, e, esz);
        break;
    }
    default:
        snprintf(e, esz, "not a directory row");
        return -1;
    }
    if (res == NULL)
        return -1;
    long n = strtol(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return n;
}

/* A policy: checked against the directory as it stands inside this
 * transaction (the file's own studies, sites and researchers count), then
 * written unless the tables hold it already. Returns 0 or -1 with E. */
static int policy(PGconn *c, const struct directory_record *r, const char *actor, long *changed,
                  char *e, size_t esz)
{
    char problems[2048] = "";
    if (policy_store_check(c, r->policy, 1, problems, sizeof problems) > 0) {
        /* policy_store_check says "policy 1: ..." per line: one policy here */
        char *p = problems;
        size_t used = 0;
        e[0] = '\0';
        while (p != NULL && *p != '\0' && used + 1 < esz) {
            char *nl = strchr(p, '\n');
            if (nl != NULL)
                *nl = '\0';
            if (strncmp(p, "policy 1: ", 10) == 0)
                p += 10;
            int k = snprintf(e + used, esz - used, "%sline %ld: policy: %s", used ? "\n" : "",
                             r->line, p);
            used += k > 0 && (size_t)k < esz - used ? (size_t)k : esz - used - 1;
            p = nl != NULL ? nl + 1 : NULL;
        }
        return -1;
    }
    int n = 0;
    char why[512];
    if (policy_store_write(c, r->policy, 1, actor, true, &n, why, sizeof why) != 0) {
        snprintf(e, esz, "line %ld: policy: %s", r->line, why);
        return -1;
    }
    *changed += n;
    return 0;
}

int directory_import_apply(PGconn *c, const struct directory_file *f, const char *actor,
                           long changed[DIRECTORY_KINDS], char *errstr, size_t errstr_size)
{
    char why[1024];
    for (int k = 0; k < DIRECTORY_KINDS; k++)
        changed[k] = 0;
    if (pg_command(c, "BEGIN", 0, NULL, errstr, errstr_size) != 0)
        return -1;
    /* Every change appends to the audit chain (0065's triggers, policy
     * events), whose head every appender locks first (0014): take it
     * before any directory row, and name ACTOR for the triggers. */
    const char *ap[] = {actor};
    if (pg_command(c, "" AUDIT_BEGIN_SQL, 1, ap, errstr, errstr_size) != 0)
        goto fail;
    for (int kind = 0; kind < DIRECTORY_KINDS; kind++)
        for (int i = 0; i < directory_file_count(f); i++) {
            const struct directory_record *r = directory_file_record(f, i);
            if ((int)r->kind != kind)
                continue;
            if (r->kind == DIRECTORY_POLICY) {
                if (policy(c, r, actor, &changed[kind], errstr, errstr_size) != 0)
                    goto fail;
                continue;
            }
            long n = upsert(c, r, why, sizeof why);
            long nq = n >= 0 && r->kind == DIRECTORY_RESEARCHER ? quiet(c, r, why, sizeof why) : 0;
            n = nq < 0 ? -1 : n + nq;
            if (n < 0) {
                snprintf(errstr, errstr_size, "line %ld: %s", r->line, why);
                goto fail;
            }
            changed[kind] += n;
        }
    if (pg_command(c, "COMMIT", 0, NULL, errstr, errstr_size) != 0)
        goto fail;
    return 0;
fail:
    pg_command(c, "ROLLBACK", 0, NULL, why, sizeof why);
    return -1;
}
