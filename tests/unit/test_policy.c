/* alerting/policy.c: escalation policy files (YAML and JSON), every rule of
 * the validation with the problem named, no database. */
#include <stdio.h>
#include <string.h>

#include "policy.h"
#include "testlib.h"

static struct policy pol[8];
static char err[8192];

static int load(const char *text)
{
    err[0] = '\0';
    return policy_load_text("p.yaml", text, strlen(text), pol, 8, err, sizeof err);
}

/* The load fails and the error names WANT. */
static void refused(const char *text, const char *want)
{
    int n = load(text);
    testlib_checkf(n == -1 && strstr(err, want) != NULL, __FILE__, __LINE__,
                   "refused with '%s': got %d, '%s'", want, n, err);
}

static void test_valid(void)
{
    CHECK_EQ_INT(load("study: S1\n"
                      "severity: critical\n"
                      "repeat_last: 10m\n"
                      "tiers:\n"
                      "  - targets: [subscribers]\n"
                      "    channels: [subscribed]\n"
                      "    ack_deadline: 15m\n"
                      "  - targets: [role:safety_physician, researcher:r-9]\n"
                      "    channels: [email, sms]\n"
                      "    ack_deadline: 900\n"),
                 1);
    CHECK_EQ_STR(pol[0].study, "S1");
    CHECK_EQ_STR(pol[0].site, "");
    CHECK_EQ_INT(pol[0].repeat_last_s, 600);
    CHECK_EQ_INT(pol[0].ntiers, 2);
    CHECK_EQ_INT(pol[0].tiers[0].ack_deadline_s, 900);
    CHECK(pol[0].tiers[0].subscribed && !pol[0].tiers[0].email);
    CHECK(pol[0].tiers[1].email && pol[0].tiers[1].sms);
    CHECK_EQ_STR(pol[0].tiers[1].targets[1], "researcher:r-9");
    /* JSON is YAML; a list of policies; a warning digest policy */
    CHECK_EQ_INT(load("{\"policies\": [{\"study\": \"S1\", \"site\": \"A\", \"severity\": "
                      "\"warning\", \"digest\": true}, {\"study\": \"S1\", \"severity\": "
                      "\"critical\", \"tiers\": [{\"targets\": [\"role:investigator\"], "
                      "\"channels\": [\"sms\"], \"ack_deadline\": \"1h\"}]}]}"),
                 2);
    CHECK_EQ_STR(pol[0].site, "A");
    CHECK(pol[0].digest);
    CHECK_EQ_INT(pol[1].tiers[0].ack_deadline_s, 3600);
    CHECK_EQ_INT(pol[1].repeat_last_s, 900); /* the default */
}

static void test_refused(void)
{
    const char *base = "study: S1\nseverity: critical\ntiers:\n";
    char buf[1024];
    refused("study: S1\nseverity: critical\n", "needs at least one tier");
    snprintf(buf, sizeof buf, "%s  - {targets: [], channels: [email], ack_deadline: 15m}\n",
             base);
    refused(buf, "tier 1 is empty");
    snprintf(buf, sizeof buf, "%s  - {channels: [email], ack_deadline: 15m}\n", base);
    refused(buf, "tier 1 is empty");
    snprintf(buf, sizeof buf, "%s  - {targets: [role:nurse], channels: [email], "
                              "ack_deadline: 15m}\n", base);
    refused(buf, "target 'role:nurse'");
    snprintf(buf, sizeof buf, "%s  - {targets: [subscribers], channels: [fax], "
                              "ack_deadline: 15m}\n", base);
    refused(buf, "channel 'fax'");
    snprintf(buf, sizeof buf, "%s  - {targets: [subscribers], channels: [email], "
                              "ack_deadline: 5s}\n", base);
    refused(buf, "ack_deadline 5 s is out of bounds");
    snprintf(buf, sizeof buf, "%s  - {targets: [subscribers], channels: [email], "
                              "ack_deadline: 2d}\n", base);
    refused(buf, "must be a duration");
    snprintf(buf, sizeof buf, "%s  - {targets: [subscribers], channels: [email], "
                              "ack_deadline: 25h}\n", base);
    refused(buf, "out of bounds");
    /* a cycle: tier 3 pages tier 1's people again */
    snprintf(buf, sizeof buf,
             "%s  - {targets: [role:site_coordinator], channels: [email], ack_deadline: 15m}\n"
             "  - {targets: [role:safety_physician], channels: [email], ack_deadline: 15m}\n"
             "  - {targets: [role:site_coordinator], channels: [sms], ack_deadline: 15m}\n",
             base);
    refused(buf, "tier 3 pages 'role:site_coordinator' again");
    snprintf(buf, sizeof buf, "%s  - {targets: [subscribers, subscribers], channels: [email], "
                              "ack_deadline: 15m}\n", base);
    refused(buf, "twice");
    refused("study: S1\nseverity: warning\ntiers:\n  - {targets: [subscribers], channels: "
            "[email], ack_deadline: 15m}\n",
            "warning alerts do not escalate");
    refused("study: S1\nseverity: info\n", "severity must be critical or warning");
    refused("severity: warning\n", "study must be");
    refused("study: S1\nseverity: warning\ncolour: blue\n", "unknown key 'colour'");
    refused("study: S1\nseverity: warning\nrepeat_last: 10\n", "repeat_last 10 s");
    refused("{\"policies\": [{\"study\": \"S1\", \"severity\": \"warning\"}, {\"study\": "
            "\"S1\", \"severity\": \"warning\"}]}",
            "same study, site and severity as policy 1");
    refused("study: [unclosed\n", "p.yaml:");
    /* an alias bomb (10 levels of 10 references) is refused, not expanded */
    static char bomb[4096];
    size_t o = (size_t)snprintf(bomb, sizeof bomb, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for (int i = 1; i < 10; i++)
        o += (size_t)snprintf(bomb + o, sizeof bomb - o,
                              "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, "
                              "*a%d]\n",
                              i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1,
                              i - 1);
    refused(bomb, "too large");
    /* every problem is reported, not just the first */
    snprintf(buf, sizeof buf, "%s  - {targets: [role:nurse], channels: [fax], "
                              "ack_deadline: 1s}\n", base);
    CHECK_EQ_INT(load(buf), -1);
    CHECK(strstr(err, "role:nurse") && strstr(err, "fax") && strstr(err, "1 s"));
}

int main(void)
{
    test_valid();
    test_refused();
    return testlib_done();
}
