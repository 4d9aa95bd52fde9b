/* alerting/directory_file.c: `vigil directory import`'s YAML reader, no
 * database: the records and their lines, and every problem named by the
 * line of the node at fault (policies' by policy.c, through
 * policy_from_yaml). */
#include <stdio.h>
#include <string.h>

#include "directory_file.h"
#include "testlib.h"

static char err[16384];

/* Parses TEXT into a new set; the caller destroys it. RC gets the result. */
static struct directory_file *parse(const char *text, int *rc)
{
    struct directory_file *f = directory_file_new();
    err[0] = '\0';
    *rc = f != NULL ? directory_file_parse_yaml(f, text, strlen(text), err, sizeof err) : -2;
    return f;
}

/* The parse fails and ERR holds WANT (a "line N: ..." text). */
static void refused(const char *text, const char *want)
{
    int rc;
    struct directory_file *f = parse(text, &rc);
    testlib_checkf(rc == -1 && strstr(err, want) != NULL, __FILE__, __LINE__,
                   "refused with '%s': got %d, '%s'", want, rc, err);
    directory_file_destroy(f);
}

static const char good[] = "studies:\n"                                        /* 1 */
                           "  - {id: S1, name: \"Trial <b>one</b>\"}\n"        /* 2 */
                           "sites:\n"                                          /* 3 */
                           "  - id: X\n"                                       /* 4 */
                           "    study: S1\n"                                   /* 5 */
                           "    name: Site X\n"                                /* 6 */
                           "researchers:\n"                                    /* 7 */
                           "  - {id: R1, name: Ann, email: a@example.org, phone: ~}\n" /* 8 */
                           "subscriptions:\n"                                  /* 9 */
                           "  - {researcher: R1, study: S1, min_severity: info, channels: sms}\n"
                           "  - {researcher: R1, study: S1, site: X, min_severity: critical,\n"
                           "     channels: [sms, email]}\n"                    /* 12 */
                           "policies:\n"                                       /* 13 */
                           "  - study: S1\n"                                   /* 14 */
                           "    severity: critical\n"                          /* 15 */
                           "    tiers:\n"                                      /* 16 */
                           "      - {targets: [subscribers], channels: [email], ack_deadline: 2m}\n"
                           "empty_is_fine_for:\n";                             /* 18 */

static void test_good(void)
{
    int rc;
    /* an empty section is allowed; an unknown one is not: drop the last line */
    char text[sizeof good];
    snprintf(text, sizeof text, "%s", good);
    *strstr(text, "empty_is_fine_for:\n") = '\0';
    strcat(text, "sites:\n");
    struct directory_file *f = parse(text, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(directory_file_count(f), 6);
    const struct directory_record *r = directory_file_record(f, 0);
    CHECK(r->kind == DIRECTORY_STUDY && r->line == 2);
    CHECK_EQ_STR(r->name, "Trial <b>one</b>");
    r = directory_file_record(f, 1);
    CHECK(r->kind == DIRECTORY_SITE && r->line == 4);
    CHECK_EQ_STR(r->study, "S1");
    r = directory_file_record(f, 2);
    CHECK(r->kind == DIRECTORY_RESEARCHER && r->line == 8 && r->phone == NULL);
    CHECK_EQ_STR(r->email, "a@example.org");
    r = directory_file_record(f, 3);
    CHECK(r->kind == DIRECTORY_SUBSCRIPTION && r->line == 10 && r->site == NULL);
    CHECK_EQ_STR(r->channels, "{sms}");
    r = directory_file_record(f, 4);
    CHECK(r->line == 11);
    CHECK_EQ_STR(r->channels, "{email,sms}");
    CHECK_EQ_STR(r->site, "X");
    r = directory_file_record(f, 5);
    CHECK(r->kind == DIRECTORY_POLICY && r->line == 14 && r->policy != NULL);
    CHECK_EQ_INT(r->policy->tiers[0].ack_deadline_s, 120);
    directory_file_destroy(f);
}

/* GOOD with the first FROM replaced by TO, refused naming WANT. */
static void refused_edit(const char *from, const char *to, const char *want)
{
    char text[4096];
    const char *at = strstr(good, from);
    if (at == NULL) {
        testlib_checkf(0, __FILE__, __LINE__, "'%s' is not in the good file", from);
        return;
    }
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good), good, to, at + strlen(from));
    refused(text, want);
}

static void test_refused(void)
{
    refused_edit("empty_is_fine_for:", "reseachers:", "line 18: unknown section 'reseachers'");
    refused_edit("    name: Site X", "    nmae: Site X", "line 6: unknown key 'nmae' in sites");
    refused_edit("    name: Site X", "    name: ~", "line 6: name must not be empty");
    refused_edit("  - {id: S1, name: \"Trial <b>one</b>\"}", "  - {id: S1}",
                 "line 2: an entry of studies needs name");
    refused_edit("min_severity: info", "min_severity: loud", "line 10: min_severity 'loud'");
    refused_edit("channels: sms}", "channels: pager}", "line 10: channels must be");
    refused_edit("[sms, email]", "[sms, {x: 1}]", "line 12: channels must be");
    refused_edit("  - {id: S1, name: \"Trial <b>one</b>\"}", "  - S1", "line 2: an entry of studies must be a mapping");
    refused_edit("    study: S1\n    name", "    study: [S1]\n    name", "line 5: study must be text");
    refused_edit("ack_deadline: 2m", "ack_deadline: 2s", "line 17: policy: tier 1 ack_deadline 2 s");
    refused_edit("    severity: critical", "    severity: loud", "line 14: policy: severity must be");
    refused_edit("sites:\n  - id: X\n    study: S1\n    name: Site X\n", "sites: 3\n",
                 "line 3: sites must be a list");
    refused_edit("empty_is_fine_for:", "policies:\n  - {study: S1, severity: critical, tiers: "
                 "[{targets: [subscribers], channels: [sms], ack_deadline: 5m}]}",
                 "line 19: policy: same study, site and severity as the policy of line 14");
    refused("studies: [{id: S1, name: \"open\n", "line ");
    refused("studies: [{id: S1, name: x}\n", "not YAML");
    refused("", "empty");
    refused("- just a list\n", "line 1: the file must be a mapping of sections");
    /* every problem at once, each with its line */
    int rc;
    struct directory_file *f = parse("studies:\n  - {id: S1}\nresearchers:\n  - {id: R1, nam: x}\n", &rc);
    CHECK_EQ_INT(rc, -1);
    CHECK(strstr(err, "line 2: an entry of studies needs name") != NULL);
    CHECK(strstr(err, "line 4: unknown key 'nam'") != NULL);
    directory_file_destroy(f);
    /* an alias bomb under policies is refused, not expanded */
    char bomb[8192];
    size_t o = (size_t)snprintf(bomb, sizeof bomb, "policies:\n  - study: S1\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 8; i++)
        o += (size_t)snprintf(bomb + o, sizeof bomb - o,
                              "    a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    refused(bomb, "line 2: policy: too deep, too large");
}

int main(void)
{
    test_good();
    test_refused();
    return testlib_done();
}
