/*
 * vigil users: console sign-in accounts for researchers of the directory.
 *
 *   vigil users create --researcher ID [--email E] [--password-file F]
 *   vigil users reset --researcher ID [--password-file F]
 *   vigil users disable --researcher ID
 *   vigil users enable --researcher ID
 *   vigil users grant --researcher ID --role ROLE [--study S]
 *   vigil users revoke --researcher ID [--study S]
 *   vigil users token --researcher ID --study S[,S...] --role ROLE [--days N] [--name N]
 *
 * A password is read from --password-file or standard input (first line),
 * never from the command line, where `ps` and shell history would show it.
 * reset sets a new password, clears the lockout and ends every session of
 * the account; disable ends every session and refuses sign-in and API
 * tokens from then on. token prints a new API token once (only its digest
 * is kept).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "auth.h"
#include "commands.h"
#include "config.h"
#include "password.h"
#include "pg.h"
#include "secret.h"
#include "settings.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil users ACTION --researcher ID [OPTIONS]\n\n"
            "Console accounts (sign-in with e-mail and password) of researchers in the\n"
            "directory, their per-study roles, and API tokens for scripts.\n\n"
            "actions:\n"
            "  create    give a researcher a password (--email, default the directory's)\n"
            "  reset     set a new password, clear the lockout, end every session\n"
            "  disable   refuse sign-in and tokens, end every session\n"
            "  enable    undo disable\n"
            "  grant     --role viewer|responder|study_admin --study S, or --role admin\n"
            "  revoke    remove the role at --study S (or the global admin role)\n"
            "  token     print a new API token for --study S[,S...] --role R [--days N]\n\n"
            "options:\n"
            "  --researcher ID      the researcher (required)\n"
            "  --email ADDR         sign-in e-mail (create)\n"
            "  --password-file F    read the password from F (default: standard input);\n"
            "                       never given on the command line\n"
            "  --role R --study S   (grant, revoke, token)\n"
            "  --days N             token lifetime (default 90, at most 366)\n"
            "  --name NAME          token label (default \"cli\")\n"
            "  --conninfo STR       libpq connection string (else VIGIL_PG_CONNINFO_FILE,\n"
            "                       then VIGIL_PG_CONNINFO, then libpq's PG* variables)\n"
            "  -h, --help           this help\n\n"
            "exit status: 0 done, 1 failure (PostgreSQL, no such researcher), 2 bad usage\n");
}

/* Reads the first line of F (or stdin) into pw (PASSWORD_MAX + 2 bytes).
 * Returns its length, or -1 with errstr set. */
static long read_password(const char *file, char *pw, size_t pwsz, char *errstr, size_t errstr_size)
{
    FILE *f = file ? fopen(file, "r") : stdin;
    if (f == NULL) {
        snprintf(errstr, errstr_size, "could not open %s: %m", file);
        return -1;
    }
    char *line = fgets(pw, (int)pwsz, f);
    if (file)
        fclose(f);
    if (line == NULL) {
        snprintf(errstr, errstr_size, "no password given (read from %s)", file ? file : "standard input");
        return -1;
    }
    size_t n = strlen(pw);
    if (n > 0 && pw[n - 1] == '\n')
        pw[--n] = '\0';
    if (n > 0 && pw[n - 1] == '\r')
        pw[--n] = '\0';
    if (password_check(pw, n, errstr, errstr_size) < 0)
        return -1;
    return (long)n;
}

static int exec1(PGconn *c, const char *sql, int n, const char *const *p, const char *what,
                 char *err, size_t errsz)
{
    PGresult *r = pg_query(c, sql, n, p, err, errsz);
    if (r == NULL)
        return -1;
    long rows = strtol(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    if (rows == 0) {
        snprintf(err, errsz, "%s", what);
        return -1;
    }
    return 0;
}

enum { OPT_RESEARCHER = 1000, OPT_EMAIL, OPT_PWFILE, OPT_ROLE, OPT_STUDY, OPT_DAYS, OPT_NAME, OPT_CONNINFO };

int cmd_users(int argc, char **argv)
{
    static const struct option opts[] = {
        {"researcher", required_argument, NULL, OPT_RESEARCHER},
        {"email", required_argument, NULL, OPT_EMAIL},
        {"password-file", required_argument, NULL, OPT_PWFILE},
        {"role", required_argument, NULL, OPT_ROLE},
        {"study", required_argument, NULL, OPT_STUDY},
        {"days", required_argument, NULL, OPT_DAYS},
        {"name", required_argument, NULL, OPT_NAME},
        {"conninfo", required_argument, NULL, OPT_CONNINFO},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-')
        return cli_bad_usage("users", usage, "missing action");
    const char *action = argv[1];
    const char *researcher = NULL, *email = NULL, *pwfile = NULL, *role = NULL, *study = NULL;
    const char *name = "cli", *conninfo_flag = NULL;
    long days = 90;
    opterr = 0;
    optind = 2;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_RESEARCHER: researcher = optarg; break;
        case OPT_EMAIL: email = optarg; break;
        case OPT_PWFILE: pwfile = optarg; break;
        case OPT_ROLE: role = optarg; break;
        case OPT_STUDY: study = optarg; break;
        case OPT_NAME: name = optarg; break;
        case OPT_CONNINFO: conninfo_flag = optarg; break;
        case OPT_DAYS: {
            char *end;
            days = strtol(optarg, &end, 10);
            if (*end != '\0' || days < 1 || days > 366)
                return cli_bad_usage("users", usage, "--days takes 1 to 366");
            break;
        }
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("users", usage, argv);
        }
    }
    if (optind < argc)
        return cli_bad_usage("users", usage, "unexpected argument '%s'", argv[optind]);
    if (researcher == NULL)
        return cli_bad_usage("users", usage, "--researcher is required");
    bool is_create = strcmp(action, "create") == 0, is_reset = strcmp(action, "reset") == 0;
    bool known = is_create || is_reset || strcmp(action, "disable") == 0 ||
                 strcmp(action, "enable") == 0 || strcmp(action, "grant") == 0 ||
                 strcmp(action, "revoke") == 0 || strcmp(action, "token") == 0;
    if (!known)
        return cli_bad_usage("users", usage, "unknown action '%s'", action);
    if (strcmp(action, "grant") == 0 &&
        (role == NULL || (strcmp(role, "admin") == 0) != (study == NULL)))
        return cli_bad_usage("users", usage, "grant needs --role admin, or --role R --study S");
    if (strcmp(action, "token") == 0 && (role == NULL || study == NULL))
        return cli_bad_usage("users", usage, "token needs --study and --role");

    char err[1024];
    if (secret_init(err, sizeof err) < 0)
        return cli_fail("users", err);
    char pw[PASSWORD_MAX + 2];
    long pwlen = 0;
    char hash[PASSWORD_HASH_MAX];
    if (is_create || is_reset) {
        if ((pwlen = read_password(pwfile, pw, sizeof pw, err, sizeof err)) < 0)
            return cli_fail("users", err);
        int hr = password_hash(pw, (size_t)pwlen, hash, err, sizeof err);
        memset(pw, 0, sizeof pw);
        if (hr < 0)
            return cli_fail("users", err);
    }
    char *conninfo_env = NULL;
    const char *conninfo = conninfo_flag;
    if (conninfo == NULL) {
        if (config_env_or_file("VIGIL_PG_CONNINFO", &conninfo_env, err, sizeof err) != 0)
            return cli_fail("users", err);
        conninfo = conninfo_env != NULL ? conninfo_env : "";
    }
    PGconn *conn = pg_connect(conninfo, err, sizeof err);
    free(conninfo_env);
    if (conn == NULL)
        return cli_fail("users", err);
    int rc = -1;
    /* Audited (0065) with the operator as the actor. */
    char origin[300], actor[310];
    cli_origin(origin, sizeof origin);
    snprintf(actor, sizeof actor, "cli:%s", origin);
    if (is_create) {
        const char *p[] = {researcher, email, hash, actor};
        rc = exec1(conn,
                   "WITH " AUDIT_CTX_SQL("$4")
                   "INSERT INTO console_credentials (researcher_id, email, password_hash) "
                   "SELECT researcher_id, lower(coalesce($2, email)), $3 FROM audit_ctx, researchers "
                   "WHERE researcher_id = $1 AND coalesce($2, email) IS NOT NULL",
                   4, p, "no such researcher, or no e-mail (give --email)", err, sizeof err);
    } else if (is_reset) {
        const char *p[] = {researcher, hash, actor};
        rc = exec1(conn,
                   "WITH " AUDIT_CTX_SQL("$3") ", u AS (UPDATE console_credentials SET password_hash = $2, "
                   "failed_count = 0, locked_until = NULL, password_changed_at = now() FROM audit_ctx "
                   "WHERE researcher_id = $1 RETURNING researcher_id), "
                   "d AS (DELETE FROM console_sessions WHERE researcher_id IN (SELECT researcher_id FROM u)) "
                   "SELECT 1 FROM u",
                   3, p, "no console account for this researcher (create one)", err, sizeof err);
    } else if (strcmp(action, "disable") == 0 || strcmp(action, "enable") == 0) {
        const char *p[] = {researcher, strcmp(action, "disable") == 0 ? "true" : "false", actor};
        rc = exec1(conn,
                   "WITH " AUDIT_CTX_SQL("$3") ", u AS (UPDATE console_credentials SET disabled = $2::boolean "
                   "FROM audit_ctx WHERE researcher_id = $1 RETURNING researcher_id, disabled), "
                   "d AS (DELETE FROM console_sessions WHERE researcher_id IN "
                   "(SELECT researcher_id FROM u WHERE disabled)) SELECT 1 FROM u",
                   3, p, "no console account for this researcher", err, sizeof err);
    } else if (strcmp(action, "grant") == 0) {
        const char *p[] = {researcher, study, role, actor};
        rc = exec1(conn,
                   "WITH " AUDIT_CTX_SQL("$4")
                   "INSERT INTO console_grants (researcher_id, study_id, role) SELECT $1, $2, $3 "
                   "FROM audit_ctx ON CONFLICT (researcher_id, coalesce(study_id, '')) DO UPDATE "
                   "SET role = EXCLUDED.role, granted_at = now()",
                   4, p, "grant not recorded", err, sizeof err);
    } else if (strcmp(action, "revoke") == 0) {
        const char *p[] = {researcher, study, actor};
        rc = exec1(conn,
                   "WITH " AUDIT_CTX_SQL("$3") "DELETE FROM console_grants g USING audit_ctx "
                   "WHERE g.researcher_id = $1 AND coalesce(g.study_id, '') = coalesce($2, '')",
                   3, p, "no such grant", err, sizeof err);
    } else {
        struct pg_textarray *a = pg_textarray_new();
        char list[1024];
        snprintf(list, sizeof list, "%s", study);
        for (char *s = list, *comma; a && s; s = comma ? comma + 1 : NULL) {
            comma = strchr(s, ',');
            if (comma)
                *comma = '\0';
            pg_textarray_add(a, s);
        }
        char tok[48];
        if (a != NULL &&
            auth_token_create(conn, researcher, name, pg_textarray_str(a), role, (int)days, tok, err,
                              sizeof err) == 0) {
            printf("%s\n", tok);
            rc = 0;
        } else if (a == NULL) {
            snprintf(err, sizeof err, "out of memory");
        }
        pg_textarray_destroy(a);
    }
    PQfinish(conn);
    if (rc != 0)
        return cli_fail("users", err);
    if (strcmp(action, "token") != 0)
        printf("users %s %s: done\n", action, researcher);
    return 0;
}
