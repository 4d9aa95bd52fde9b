/*
 * vigil directory import FILE: the study directory (researchers, studies,
 * sites, subscriptions; from YAML also escalation policies) from one CSV
 * or YAML file, for operators and migrations from spreadsheets.
 *
 * CSV has a header row naming its columns (any order; unknown ones are an
 * error, so a typo is not silently ignored):
 *   kind,id,name,email,phone,study,site,min_severity,channels[,quiet_hours]
 * and one row per thing, by kind:
 *   researcher    id, name [, email, phone, quiet_hours: "22:00-07:00
 *                 Europe/Paris" sets them, "none" removes them, empty
 *                 leaves them as they are]
 *   study         id, name
 *   site          id, name, study
 *   subscription  id (the researcher), study [, site: none = every site],
 *                 min_severity, channels ("email", "sms" or "email;sms")
 * YAML: sections of the same things and policies (alerting/directory_file.h).
 *
 * DESIGN. This file reads CSV into records and picks the format; the YAML
 * reader (alerting/directory_file.c, fuzzed) and the writer
 * (alerting/directory_import.c: idempotent upserts, all or nothing in one
 * transaction, policies through policy_store) are shared machinery. The
 * whole file is read and checked before connecting to PostgreSQL and
 * before anything is written, so every error names its line (reachable
 * database or not) and a bad file changes nothing.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "directory_file.h"
#include "directory_import.h"
#include "obs_json.h"
#include "settings.h"

#define CSV_LINE_MAX 8190

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil directory import FILE [--format csv|yaml] [--conninfo STR]\n\n"
            "Imports researchers, studies, sites and subscriptions from a CSV or YAML file,\n"
            "and escalation policies from YAML. FILE - reads standard input.\n\n"
            "CSV: a header row kind,id,name,email,phone,study,site,min_severity,channels\n"
            "(any order; quiet_hours optional). kind is researcher, study, site or\n"
            "subscription; channels is email, sms or email;sms; a subscription without\n"
            "site covers every site; a researcher's quiet_hours is \"22:00-07:00\n"
            "Europe/Paris\" (non-critical pages wait; none removes; empty: unchanged).\n\n"
            "YAML: sections, each optional:\n"
            "  studies:       [{id: S1, name: Trial one}]\n"
            "  sites:         [{id: SITE-1, study: S1, name: Site one}]\n"
            "  researchers:   [{id: R-1, name: Ann, email: a@example.org, phone: \"+4420...\",\n"
            "                   quiet_hours: {start: \"22:00\", end: \"07:00\",\n"
            "                                 time_zone: Europe/London}}]   # optional;\n"
            "                   null removes them, no key leaves them as they are\n"
            "  subscriptions: [{researcher: R-1, study: S1, site: SITE-1,\n"
            "                   min_severity: critical, channels: [email, sms]}]\n"
            "  policies:      [escalation policies as vigil policy set reads them]\n\n"
            "Idempotent (upserts, unchanged policies left alone; nothing is deleted but\n"
            "quiet hours given as none or null; a second import says nothing changed),\n"
            "all or nothing (one transaction), every error names its line.\n\n"
            "options:\n"
            "  --format F       csv or yaml (default: by the extension .csv, .yaml, .yml,\n"
            "                   else by the first line)\n"
            "  --conninfo STR   libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                   VIGIL_PG_CONNINFO, libpq's PG* variables)\n"
            "  -h, --help       print this help\n\n"
            "exit status: 0 imported, 1 a bad row or PostgreSQL failed (nothing changed),\n"
            "2 bad usage\n");
}

enum col {
    C_KIND, C_ID, C_NAME, C_EMAIL, C_PHONE, C_STUDY, C_SITE, C_SEVERITY, C_CHANNELS, C_QUIET, C_N
};
static const char *const col_names[C_N] = {"kind",  "id",   "name",         "email",
                                           "phone", "study", "site",        "min_severity",
                                           "channels", "quiet_hours"};

/* The value of column C in this row, NULL when the column is absent or
 * the cell empty. */
static const char *cell(const int *map, char **f, int n, enum col c)
{
    int i = map[c];
    if (i < 0 || i >= n || f[i][0] == '\0')
        return NULL;
    return f[i];
}

/* One CSV row as a record: checked for shape here, the rest by the
 * tables. QBUF (QBUFSZ bytes) holds what the quiet hours point into.
 * Returns 0, or -1 with errstr (no line). */
static int csv_record(const int *map, char **f, int n, long line, struct directory_record *rec,
                      char *qbuf, size_t qbufsz, char *err, size_t errsz)
{
    const char *kind = cell(map, f, n, C_KIND), *id = cell(map, f, n, C_ID);
    memset(rec, 0, sizeof *rec);
    rec->line = line;
    rec->id = id;
    rec->name = cell(map, f, n, C_NAME);
    rec->study = cell(map, f, n, C_STUDY);
    rec->site = cell(map, f, n, C_SITE);
    if (kind == NULL || id == NULL) {
        snprintf(err, errsz, "kind and id are required");
        return -1;
    }
    if (strcmp(kind, "researcher") == 0) {
        rec->kind = DIRECTORY_RESEARCHER;
        rec->email = cell(map, f, n, C_EMAIL);
        rec->phone = cell(map, f, n, C_PHONE);
        if (rec->name == NULL) {
            snprintf(err, errsz, "a researcher needs a name");
            return -1;
        }
        const char *q = cell(map, f, n, C_QUIET);
        if (q != NULL && directory_quiet_parse(q, rec, qbuf, qbufsz, err, errsz) != 0)
            return -1;
    } else if (strcmp(kind, "study") == 0) {
        rec->kind = DIRECTORY_STUDY;
        if (rec->name == NULL) {
            snprintf(err, errsz, "a study needs a name");
            return -1;
        }
    } else if (strcmp(kind, "site") == 0) {
        rec->kind = DIRECTORY_SITE;
        if (rec->name == NULL || rec->study == NULL) {
            snprintf(err, errsz, "a site needs a name and a study");
            return -1;
        }
    } else if (strcmp(kind, "subscription") == 0) {
        const char *sev = cell(map, f, n, C_SEVERITY), *ch = cell(map, f, n, C_CHANNELS);
        rec->kind = DIRECTORY_SUBSCRIPTION;
        if (rec->study == NULL || sev == NULL || ch == NULL) {
            snprintf(err, errsz, "a subscription needs study, min_severity and channels");
            return -1;
        }
        if (strcmp(sev, "info") != 0 && strcmp(sev, "warning") != 0 && strcmp(sev, "critical") != 0) {
            snprintf(err, errsz, "min_severity '%s' is not info, warning or critical", sev);
            return -1;
        }
        rec->min_severity = sev;
        rec->channels = strcmp(ch, "email") == 0                                 ? "{email}"
                        : strcmp(ch, "sms") == 0                                 ? "{sms}"
                        : strcmp(ch, "email;sms") == 0 || strcmp(ch, "sms;email") == 0 ? "{email,sms}"
                                                                                 : NULL;
        if (rec->channels == NULL) {
            snprintf(err, errsz, "channels '%s' is not email, sms or email;sms", ch);
            return -1;
        }
    } else {
        snprintf(err, errsz, "kind '%s' is not researcher, study, site or subscription", kind);
        return -1;
    }
    return 0;
}

/* TEXT (LEN bytes, NUL-terminated) as CSV records into DF. Returns 0, or
 * -1 with errstr "line N: ...". */
static int read_csv(struct directory_file *df, char *text, size_t len, char *err, size_t errsz)
{
    char *f[OBS_CSV_MAX_FIELDS];
    int map[C_N];
    long lineno = 0;
    bool header = true;
    char *end = text + len;
    for (char *line = text; line < end;) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        char *next = nl != NULL ? nl + 1 : end;
        size_t n = (size_t)((nl != NULL ? nl : end) - line);
        lineno++;
        if (n > CSV_LINE_MAX) {
            snprintf(err, errsz, "line %ld: longer than %d bytes", lineno, CSV_LINE_MAX);
            return -1;
        }
        line[n] = '\0';
        while (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        char *cur = line;
        line = next;
        if (n == 0 || cur[0] == '#')
            continue;
        if (memchr(cur, '\0', n) != NULL) {
            snprintf(err, errsz, "line %ld: holds a NUL byte", lineno);
            return -1;
        }
        if (obs_csv_open_quote(cur, n)) {
            snprintf(err, errsz, "line %ld: a quoted field runs past the line's end", lineno);
            return -1;
        }
        char why[256];
        int nf = obs_csv_split(cur, n, f, why, sizeof why);
        if (nf < 0) {
            snprintf(err, errsz, "line %ld: %s", lineno, why);
            return -1;
        }
        if (header) {
            for (int c = 0; c < C_N; c++)
                map[c] = -1;
            for (int i = 0; i < nf; i++) {
                int c = 0;
                while (c < C_N && strcmp(f[i], col_names[c]) != 0)
                    c++;
                if (c == C_N || map[c] >= 0) {
                    snprintf(err, errsz, "line %ld: column '%s' is unknown or repeated", lineno, f[i]);
                    return -1;
                }
                map[c] = i;
            }
            if (map[C_KIND] < 0 || map[C_ID] < 0) {
                snprintf(err, errsz, "line %ld: the header needs kind and id columns", lineno);
                return -1;
            }
            header = false;
            continue;
        }
        struct directory_record rec;
        char qbuf[160];
        if (csv_record(map, f, nf, lineno, &rec, qbuf, sizeof qbuf, why, sizeof why) < 0) {
            snprintf(err, errsz, "line %ld: %s", lineno, why);
            return -1;
        }
        if (directory_file_add(df, &rec, err, errsz) != 0)
            return -1;
    }
    return 0;
}

/* csv or yaml: by --format, else by the file's extension, else by its
 * first line (a CSV header starts with one of the column names and a
 * comma; a YAML file with a section name and a colon). */
static const char *format_of(const char *want, const char *path, const char *text)
{
    if (want != NULL)
        return want;
    const char *dot = strrchr(path, '.');
    if (dot != NULL && (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0))
        return "yaml";
    if (dot != NULL && strcmp(dot, ".csv") == 0)
        return "csv";
    const char *p = text;
    while (*p == '#' || *p == '\n' || *p == '\r' || *p == ' ') { /* comments, blank lines */
        if (*p == '#')
            p += strcspn(p, "\n");
        else
            p++;
    }
    for (int c = 0; c < C_N; c++) {
        size_t n = strlen(col_names[c]);
        if (strncmp(p, col_names[c], n) == 0 && p[n] == ',')
            return "csv";
    }
    return "yaml";
}

/* The whole of IN (at most DIRECTORY_FILE_MAX_BYTES), NUL-terminated, in
 * *OUT (the caller frees). Returns the length, or -1 with errstr. */
static long read_all(FILE *in, char **out, char *err, size_t errsz)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        size_t n = fread(buf + len, 1, cap - len, in);
        len += n;
        if (len < cap)
            break;
        if (cap >= DIRECTORY_FILE_MAX_BYTES) {
            free(buf);
            snprintf(err, errsz, "larger than %d MiB", DIRECTORY_FILE_MAX_BYTES >> 20);
            return -1;
        }
        cap *= 2;
        char *b = realloc(buf, cap + 1);
        if (b == NULL)
            free(buf);
        buf = b;
    }
    if (buf == NULL || ferror(in)) {
        free(buf);
        snprintf(err, errsz, "%s", buf == NULL ? "out of memory" : "could not read it");
        return -1;
    }
    buf[len] = '\0';
    *out = buf;
    return (long)len;
}

/* Reads and checks the whole file first, then connects: a bad file names
 * its line whether or not PostgreSQL is reachable. */
static int import_file(const char *conninfo, const char *path, FILE *in, const char *format)
{
    static char err[16384];
    PGconn *conn = NULL;
    char *text = NULL;
    long changed[DIRECTORY_KINDS];
    struct directory_file *df = directory_file_new();
    long len = df != NULL ? read_all(in, &text, err, sizeof err) : -1;
    if (df == NULL)
        snprintf(err, sizeof err, "out of memory");
    if (len < 0)
        goto fail;
    format = format_of(format, path, text);
    int rc = strcmp(format, "csv") == 0
                 ? read_csv(df, text, (size_t)len, err, sizeof err)
                 : directory_file_parse_yaml(df, text, (size_t)len, err, sizeof err);
    if (rc != 0)
        goto fail;
    conn = cli_pg_connect(conninfo, err, sizeof err);
    if (conn == NULL)
        goto fail;
    char origin[300], actor[310];
    cli_origin(origin, sizeof origin);
    snprintf(actor, sizeof actor, "cli:%s", origin);
    if (directory_import_apply(conn, df, actor, changed, err, sizeof err) != 0)
        goto fail;
    long total = 0;
    for (int k = 0; k < DIRECTORY_KINDS; k++)
        total += changed[k];
    printf("directory import %s (%s): %d rows; changed %ld researchers, %ld studies, %ld sites, "
           "%ld subscriptions, %ld policies%s\n",
           path, format, directory_file_count(df), changed[DIRECTORY_RESEARCHER],
           changed[DIRECTORY_STUDY], changed[DIRECTORY_SITE], changed[DIRECTORY_SUBSCRIPTION],
           changed[DIRECTORY_POLICY], total == 0 ? " (nothing changed: already up to date)" : "");
    PQfinish(conn);
    directory_file_destroy(df);
    free(text);
    return 0;
fail:
    fprintf(stderr, "vigil directory: %s: %s\n(nothing imported)\n", path, err);
    if (conn != NULL)
        PQfinish(conn);
    directory_file_destroy(df);
    free(text);
    return 1;
}

enum { OPT_CONNINFO = 256, OPT_FORMAT };

int cmd_directory(int argc, char **argv)
{
    static const struct option opts[] = {{"conninfo", required_argument, NULL, OPT_CONNINFO},
                                         {"format", required_argument, NULL, OPT_FORMAT},
                                         {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *conninfo = NULL, *format = NULL;
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
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "yaml") != 0)
                return cli_bad_usage("directory", usage, "--format is csv or yaml");
            format = optarg;
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
    int rc = import_file(conninfo, path, in, format);
    if (in != stdin)
        fclose(in);
    return rc;
}
