/*
 * vigil dq report: a study's data-quality findings for its data manager --
 * results vigil stored but did not analyse (malformed or unknown codes,
 * unknown units, implausible values, impossible times), by kind, by site
 * and by week, with the codes and units that cause most of them.
 *
 * Read-only: it queries `observations` (dq_finding, set by the worker's
 * cleaning stage, consumer/clean.h) and nothing else; the partial index of
 * migration 0050 makes it cheap on a big table. Weeks are those in which
 * vigil received the results (created_at): the effective time of a result
 * with an impossible time is exactly what cannot be trusted.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "config.h"
#include "obs_json.h"
#include "pg.h"

#define TOP_DEFAULT 10
#define TOP_MAX     1000

/* $1 study, $2 since (timestamptz), $3 site ('' for every site). */
#define DQ_WHERE                                                                                   \
    " FROM observations WHERE study_id = $1 AND created_at >= $2::timestamptz"                     \
    " AND ($3 = '' OR site_id = $3)"

static const char totals_sql[] = "SELECT count(*), count(dq_finding)" DQ_WHERE;
static const char by_kind_sql[] =
    "SELECT dq_finding, count(*), min(created_at)::date::text, max(created_at)::date::text" DQ_WHERE
    " AND dq_finding IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1";
static const char by_site_sql[] = "SELECT site_id, dq_finding, count(*)" DQ_WHERE
                                  " AND dq_finding IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2";
static const char by_week_sql[] =
    "SELECT date_trunc('week', created_at AT TIME ZONE 'UTC')::date::text, dq_finding,"
    " count(*)" DQ_WHERE " AND dq_finding IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2";
/* $4: how many rows */
static const char top_codes_sql[] =
    "SELECT loinc, dq_finding, count(*), count(DISTINCT site_id)" DQ_WHERE
    " AND dq_finding IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $4::integer";
static const char top_units_sql[] =
    "SELECT loinc, coalesce(unit, ''), count(*), count(DISTINCT site_id)" DQ_WHERE
    " AND dq_finding = 'unknown_unit' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT $4::integer";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil dq report --study STUDY [OPTIONS]\n\n"
            "A study's data-quality findings: results stored but not analysed because\n"
            "their code is malformed (wrong LOINC check digit) or unknown, their unit\n"
            "unknown, their value implausible or their time impossible (from the future,\n"
            "taken after it was issued, older than the horizon). By kind, by site and by\n"
            "week received, with the codes and units behind most of them.\n\n"
            "options:\n"
            "  --study ID         the study (required)\n"
            "  --since TIME       only results received since TIME: RFC 3339, a date,\n"
            "                     or Nd for N days ago (default: all)\n"
            "  --site ID          one site only\n"
            "  --top N            codes and units listed (default %d)\n"
            "  --format FMT       text (default) or json\n"
            "  --conninfo STR     libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                     then VIGIL_PG_CONNINFO, then libpq's PG* variables)\n"
            "  -h, --help         this help\n\n"
            "exit status: 0 report printed, 1 failure (PostgreSQL), 2 bad usage\n",
            TOP_DEFAULT);
}

/* "--since": RFC 3339 / a date, or "Nd" days before now; into an ISO UTC
 * timestamp PostgreSQL reads. */
static int parse_since(const char *s, char *out, size_t outsz, char *why, size_t whysz)
{
    int64_t ms;
    size_t n = strlen(s);
    if (n >= 2 && s[n - 1] == 'd' && strspn(s, "0123456789") == n - 1) {
        errno = 0;
        long days = strtol(s, NULL, 10);
        if (errno != 0 || days > 36500) {
            snprintf(why, whysz, "'%s' is too many days", s);
            return -1;
        }
        ms = (int64_t)time(NULL) * 1000 - (int64_t)days * 86400000;
    } else if (obs_time_parse(s, true, &ms, why, whysz) != 0) {
        return -1;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        snprintf(why, whysz, "'%s' is out of range", s);
        return -1;
    }
    return 0;
}

struct report {
    PGconn *conn;
    const char *params[4];
    json_t *json; /* NULL: text */
    FILE *out;
};

static PGresult *report_query(struct report *r, const char *sql, int nparams, char *err,
                              size_t errsz)
{
    return pg_query(r->conn, sql, nparams, r->params, err, errsz);
}

/* A section: SQL's rows as a JSON array of objects named by NAMES, or a
 * text table under TITLE with column headings NAMES. */
static int report_section(struct report *r, const char *key, const char *title, const char *sql,
                          int nparams, const char *const *names, int ncols, char *err, size_t errsz)
{
    PGresult *res = report_query(r, sql, nparams, err, errsz);
    if (res == NULL)
        return -1;
    int rows = PQntuples(res);
    if (r->json != NULL) {
        json_t *arr = json_array();
        for (int i = 0; i < rows; i++) {
            json_t *o = json_object();
            for (int c = 0; c < ncols; c++) {
                const char *v = PQgetvalue(res, i, c);
                bool count = strcmp(names[c], "results") == 0 || strcmp(names[c], "sites") == 0;
                json_object_set_new(o, names[c],
                                    count ? json_integer(strtoll(v, NULL, 10)) : json_string(v));
            }
            json_array_append_new(arr, o);
        }
        json_object_set_new(r->json, key, arr);
        PQclear(res);
        return 0;
    }
    fprintf(r->out, "\n%s\n", title);
    if (rows == 0)
        fprintf(r->out, "  (none)\n");
    else {
        fprintf(r->out, " ");
        for (int c = 0; c < ncols; c++)
            fprintf(r->out, c + 1 < ncols ? " %-22s" : " %s", names[c]);
        fprintf(r->out, "\n");
    }
    for (int i = 0; i < rows; i++) {
        fprintf(r->out, " ");
        for (int c = 0; c < ncols; c++)
            fprintf(r->out, c + 1 < ncols ? " %-22s" : " %s", PQgetvalue(res, i, c));
        fprintf(r->out, "\n");
    }
    PQclear(res);
    return 0;
}

static int report(struct report *r, const char *study, const char *since_text, char *err,
                  size_t errsz)
{
    PGresult *res = report_query(r, totals_sql, 3, err, errsz);
    if (res == NULL)
        return -1;
    long long total = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long flagged = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    if (r->json != NULL) {
        json_object_set_new(r->json, "study", json_string(study));
        json_object_set_new(r->json, "since", json_string(since_text));
        json_object_set_new(r->json, "results", json_integer(total));
        json_object_set_new(r->json, "with_finding", json_integer(flagged));
    } else {
        fprintf(r->out, "data-quality report: study %s, results received since %s\n", study,
                since_text);
        fprintf(r->out, "results %lld, with a data-quality finding %lld (%.1f%%)\n", total, flagged,
                total > 0 ? 100.0 * (double)flagged / (double)total : 0.0);
    }
    static const char *const kind[] = {"finding", "results", "first", "last"};
    static const char *const site[] = {"site", "finding", "results"};
    static const char *const week[] = {"week", "finding", "results"};
    static const char *const code[] = {"code", "finding", "results", "sites"};
    static const char *const unit[] = {"code", "unit", "results", "sites"};
    int rc =
        report_section(r, "by_finding", "findings by kind", by_kind_sql, 3, kind, 4, err, errsz);
    if (rc == 0)
        rc = report_section(r, "by_site", "by site", by_site_sql, 3, site, 3, err, errsz);
    if (rc == 0)
        rc = report_section(r, "by_week", "by week received (weeks start on Monday, UTC)",
                            by_week_sql, 3, week, 3, err, errsz);
    if (rc == 0)
        rc = report_section(r, "top_codes", "codes behind the most findings", top_codes_sql, 4,
                            code, 4, err, errsz);
    if (rc == 0)
        rc = report_section(r, "top_units", "unknown units, most frequent first", top_units_sql, 4,
                            unit, 4, err, errsz);
    return rc;
}

int cmd_dq(int argc, char **argv)
{
    enum { OPT_STUDY = 256, OPT_SINCE, OPT_SITE, OPT_TOP, OPT_FORMAT, OPT_CONNINFO };
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"study", required_argument, NULL, OPT_STUDY},
                                         {"since", required_argument, NULL, OPT_SINCE},
                                         {"site", required_argument, NULL, OPT_SITE},
                                         {"top", required_argument, NULL, OPT_TOP},
                                         {"format", required_argument, NULL, OPT_FORMAT},
                                         {"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {0}};
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "report") != 0)
        return cli_bad_usage("dq", usage, "unknown dq command '%s' (expected report)", argv[1]);
    argc--;
    argv++;
    const char *study = NULL, *site = "", *conninfo_flag = NULL;
    char since[64] = "-infinity", since_text[64] = "the start";
    char top[16];
    snprintf(top, sizeof top, "%d", TOP_DEFAULT);
    bool json = false;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char why[256];
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_STUDY:
            study = optarg;
            break;
        case OPT_SITE:
            site = optarg;
            break;
        case OPT_SINCE:
            if (parse_since(optarg, since, sizeof since, why, sizeof why) != 0)
                return cli_bad_usage("dq", usage, "--since: %s", why);
            snprintf(since_text, sizeof since_text, "%s", since);
            break;
        case OPT_TOP: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || n < 1 || n > TOP_MAX)
                return cli_bad_usage("dq", usage, "--top wants 1-%d, not '%s'", TOP_MAX, optarg);
            snprintf(top, sizeof top, "%ld", n);
            break;
        }
        case OPT_FORMAT:
            if (strcmp(optarg, "json") != 0 && strcmp(optarg, "text") != 0)
                return cli_bad_usage("dq", usage, "--format wants text or json, not '%s'", optarg);
            json = strcmp(optarg, "json") == 0;
            break;
        case OPT_CONNINFO:
            conninfo_flag = optarg;
            break;
        default:
            return cli_bad_option("dq", usage, argv);
        }
    }
    if (optind < argc)
        return cli_bad_usage("dq", usage, "unexpected argument '%s'", argv[optind]);
    if (study == NULL || *study == '\0')
        return cli_bad_usage("dq", usage, "which study? (--study ID)");

    char err[1024];
    char *conninfo_env = NULL;
    const char *conninfo = conninfo_flag;
    if (conninfo == NULL) {
        if (config_env_or_file("VIGIL_PG_CONNINFO", &conninfo_env, err, sizeof err) != 0) {
            fprintf(stderr, "vigil dq: %s\n", err);
            return 2;
        }
        conninfo = conninfo_env != NULL ? conninfo_env : "";
    }
    struct report r = {.params = {study, since, site, top}, .out = stdout};
    int rc = 1;
    r.conn = pg_connect(conninfo, err, sizeof err);
    if (r.conn == NULL)
        goto out;
    if (json && (r.json = json_object()) == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (report(&r, study, since_text, err, sizeof err) != 0)
        goto out;
    if (r.json != NULL) {
        if (json_dumpf(r.json, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            snprintf(err, sizeof err, "could not write the report");
            goto out;
        }
        fputc('\n', stdout);
    }
    rc = fflush(stdout) == 0 ? 0 : 1;
    if (rc != 0)
        snprintf(err, sizeof err, "could not write the report");
out:
    if (rc != 0)
        fprintf(stderr, "vigil dq: %s\n", err);
    json_decref(r.json);
    PQfinish(r.conn);
    free(conninfo_env);
    return rc;
}
