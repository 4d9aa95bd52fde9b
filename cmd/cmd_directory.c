/*
 * vigil directory import FILE: the study directory (researchers, studies,
 * sites, subscriptions) from one CSV file, for operators and migrations
 * from spreadsheets. Escalation policies have their own command
 * (`vigil policy set`).
 *
 * The file has a header row naming its columns (any order; unknown ones are
 * an error, so a typo is not silently ignored):
 *   kind,id,name,email,phone,study,site,min_severity,channels
 * and one row per thing, by kind:
 *   researcher    id, name [, email, phone]
 *   study         id, name
 *   site          id, name, study
 *   subscription  id (the researcher), study [, site: none = every site],
 *                 min_severity, channels ("email", "sms" or "email;sms")
 *
 * DESIGN. Idempotent: every row is an upsert keyed as the tables are, so a
 * second import of the same file changes nothing and an edited file updates
 * in place; nothing is deleted (a row missing from the file stays). All or
 * nothing: one transaction, and the first bad row rolls it back and is
 * named by its line number. Values are checked here first (kinds, required
 * columns, severities, channels) and otherwise by the tables' own
 * constraints, reported with the line.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "obs_json.h"
#include "settings.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil directory import FILE [--conninfo STR]\n\n"
            "Imports researchers, studies, sites and subscriptions from a CSV file with a\n"
            "header row: kind,id,name,email,phone,study,site,min_severity,channels (any\n"
            "order). kind is researcher, study, site or subscription; channels is\n"
            "email, sms or email;sms; a subscription without site covers every site.\n"
            "Idempotent (upserts; nothing is deleted), all or nothing (one transaction),\n"
            "errors name the line. Escalation policies: vigil policy set.\n\n"
            "options:\n"
            "  --conninfo STR   libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                   VIGIL_PG_CONNINFO, libpq's PG* variables)\n"
            "  -h, --help       print this help\n\n"
            "exit status: 0 imported, 1 a bad row or PostgreSQL failed (nothing changed),\n"
            "2 bad usage\n");
}

enum col { C_KIND, C_ID, C_NAME, C_EMAIL, C_PHONE, C_STUDY, C_SITE, C_SEVERITY, C_CHANNELS, C_N };
static const char *const col_names[C_N] = {"kind", "id", "name", "email", "phone",
                                           "study", "site", "min_severity", "channels"};

/* The value of column C in this row, NULL when the column is absent or
 * the cell empty. */
static const char *cell(const int *map, char **f, int n, enum col c)
{
    int i = map[c];
    if (i < 0 || i >= n || f[i][0] == '\0')
        return NULL;
    return f[i];
}

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
    "INSERT INTO sites (study_id, site_id, name) VALUES ($3, $1, $2) "
    "ON CONFLICT (study_id, site_id) DO UPDATE SET name = EXCLUDED.name WHERE sites.name <> EXCLUDED.name";
static const char subscription_sql[] =
    "INSERT INTO subscriptions (researcher_id, study_id, site_id, min_severity, channels) "
    "VALUES ($1, $2, $3, $4, $5::text[]) "
    "ON CONFLICT (researcher_id, study_id, (coalesce(site_id, ''))) DO UPDATE "
    "SET min_severity = EXCLUDED.min_severity, channels = EXCLUDED.channels "
    "WHERE (subscriptions.min_severity, subscriptions.channels) IS DISTINCT FROM "
    "(EXCLUDED.min_severity, EXCLUDED.channels)";

/* Checks and upserts one row. Returns 0, or -1 with errstr (no line). */
static int import_row(PGconn *conn, const int *map, char **f, int n, long counts[4], char *err,
                      size_t errsz)
{
    const char *kind = cell(map, f, n, C_KIND), *id = cell(map, f, n, C_ID);
    const char *name = cell(map, f, n, C_NAME), *study = cell(map, f, n, C_STUDY);
    const char *site = cell(map, f, n, C_SITE);
    if (kind == NULL || id == NULL) {
        snprintf(err, errsz, "kind and id are required");
        return -1;
    }
    PGresult *r = NULL;
    int k;
    if (strcmp(kind, "researcher") == 0) {
        if (name == NULL) {
            snprintf(err, errsz, "a researcher needs a name");
            return -1;
        }
        const char *p[] = {id, name, cell(map, f, n, C_EMAIL), cell(map, f, n, C_PHONE)};
        r = pg_query(conn, researcher_sql, 4, p, err, errsz);
        k = 0;
    } else if (strcmp(kind, "study") == 0) {
        if (name == NULL) {
            snprintf(err, errsz, "a study needs a name");
            return -1;
        }
        const char *p[] = {id, name};
        r = pg_query(conn, study_sql, 2, p, err, errsz);
        k = 1;
    } else if (strcmp(kind, "site") == 0) {
        if (name == NULL || study == NULL) {
            snprintf(err, errsz, "a site needs a name and a study");
            return -1;
        }
        const char *p[] = {id, name, study};
        r = pg_query(conn, site_sql, 3, p, err, errsz);
        k = 2;
    } else if (strcmp(kind, "subscription") == 0) {
        const char *sev = cell(map, f, n, C_SEVERITY), *ch = cell(map, f, n, C_CHANNELS);
        if (study == NULL || sev == NULL || ch == NULL) {
            snprintf(err, errsz, "a subscription needs study, min_severity and channels");
            return -1;
        }
        if (strcmp(sev, "info") != 0 && strcmp(sev, "warning") != 0 && strcmp(sev, "critical") != 0) {
            snprintf(err, errsz, "min_severity '%s' is not info, warning or critical", sev);
            return -1;
        }
        const char *arr = strcmp(ch, "email") == 0                                 ? "{email}"
                          : strcmp(ch, "sms") == 0                                 ? "{sms}"
                          : strcmp(ch, "email;sms") == 0 || strcmp(ch, "sms;email") == 0 ? "{email,sms}"
                                                                                   : NULL;
        if (arr == NULL) {
            snprintf(err, errsz, "channels '%s' is not email, sms or email;sms", ch);
            return -1;
        }
        const char *p[] = {id, study, site, sev, arr};
        r = pg_query(conn, subscription_sql, 5, p, err, errsz);
        k = 3;
    } else {
        snprintf(err, errsz, "kind '%s' is not researcher, study, site or subscription", kind);
        return -1;
    }
    if (r == NULL)
        return -1;
    counts[k] += strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

static int import_file(PGconn *conn, const char *path, FILE *in)
{
    char err[1024], line[8192];
    char *f[OBS_CSV_MAX_FIELDS];
    int map[C_N];
    long counts[4] = {0, 0, 0, 0}, rows = 0, lineno = 0;
    bool header = true;
    if (pg_command(conn, "BEGIN", 0, NULL, err, sizeof err) < 0)
        goto fail;
    while (fgets(line, sizeof line, in) != NULL) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            snprintf(err, sizeof err, "line %ld: longer than %zu bytes", lineno, sizeof line - 2);
            goto fail;
        }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (obs_csv_open_quote(line, len)) {
            snprintf(err, sizeof err, "line %ld: a quoted field runs past the line's end", lineno);
            goto fail;
        }
        char why[256];
        int n = obs_csv_split(line, len, f, why, sizeof why);
        if (n < 0) {
            snprintf(err, sizeof err, "line %ld: %s", lineno, why);
            goto fail;
        }
        if (header) {
            for (int c = 0; c < C_N; c++)
                map[c] = -1;
            for (int i = 0; i < n; i++) {
                int c = 0;
                while (c < C_N && strcmp(f[i], col_names[c]) != 0)
                    c++;
                if (c == C_N || map[c] >= 0) {
                    snprintf(err, sizeof err, "line %ld: column '%s' is unknown or repeated", lineno, f[i]);
                    goto fail;
                }
                map[c] = i;
            }
            if (map[C_KIND] < 0 || map[C_ID] < 0) {
                snprintf(err, sizeof err, "line %ld: the header needs kind and id columns", lineno);
                goto fail;
            }
            header = false;
            continue;
        }
        if (import_row(conn, map, f, n, counts, why, sizeof why) < 0) {
            snprintf(err, sizeof err, "line %ld: %s", lineno, why);
            goto fail;
        }
        rows++;
    }
    if (ferror(in)) {
        snprintf(err, sizeof err, "could not read %s", path);
        goto fail;
    }
    if (pg_command(conn, "COMMIT", 0, NULL, err, sizeof err) < 0)
        goto fail;
    printf("directory import %s: %ld rows; changed %ld researchers, %ld studies, %ld sites, "
           "%ld subscriptions\n",
           path, rows, counts[0], counts[1], counts[2], counts[3]);
    return 0;
fail:
    pg_command(conn, "ROLLBACK", 0, NULL, line, sizeof line);
    fprintf(stderr, "vigil directory: %s: %s (nothing imported)\n", path, err);
    return 1;
}

enum { OPT_CONNINFO = 256 };

int cmd_directory(int argc, char **argv)
{
    static const struct option opts[] = {{"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *conninfo = NULL;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case OPT_CONNINFO:
            conninfo = optarg;
            break;
        default:
            return cli_bad_option("directory", usage, argv);
        }
    }
    if (optind >= argc || strcmp(argv[optind], "import") != 0)
        return cli_bad_usage("directory", usage, "missing subcommand (import)");
    if (optind + 2 != argc)
        return cli_bad_usage("directory", usage, "import takes exactly one FILE");
    const char *path = argv[optind + 1];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (in == NULL) {
        fprintf(stderr, "vigil directory: could not open %s: %m\n", path);
        return 1;
    }
    char err[1024];
    PGconn *conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL) {
        fprintf(stderr, "vigil directory: %s\n", err);
        if (in != stdin)
            fclose(in);
        return 1;
    }
    int rc = import_file(conn, path, in);
    PQfinish(conn);
    if (in != stdin)
        fclose(in);
    return rc;
}
