/* directory: routing rules (subscribers, site, severity, channels,
 * inactive researchers, safety contact, unroutable), escalation, address
 * checks and masking; dedupe's array literal. */
#include <stdlib.h>
#include <string.h>

#include "dedupe.h"
#include "directory.h"
#include "testlib.h"

#define EMAIL CHANNEL_BIT(CHANNEL_EMAIL)
#define SMS CHANNEL_BIT(CHANNEL_SMS)

static struct directory *build(void)
{
    char err[256];
    struct directory *d = directory_new();
    CHECK(d != NULL);
    CHECK_EQ_INT(directory_add_researcher(d, "r-ana", "ana@h.example", "+4915100000001", true,
                                          err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_researcher(d, "r-ben", "ben@h.example", "+4915100000002", true,
                                          err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_researcher(d, "r-cem", "cem@h.example", NULL, true, err,
                                          sizeof err), 0);
    CHECK_EQ_INT(directory_add_researcher(d, "r-old", "old@h.example", "+4915100000004", false,
                                          err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_researcher(d, "r-safe", "safe@h.example", "+4915100000005", true,
                                          err, sizeof err), 0);
    /* malformed addresses are dropped, the researcher kept */
    CHECK_EQ_INT(directory_add_researcher(d, "r-bad", "bad <x>@h.example", "0049", true, err,
                                          sizeof err), 1);
    CHECK_EQ_INT(directory_add_study(d, "S1", "r-safe", err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_study(d, "S2", "r-safe", err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_study(d, "S3", NULL, err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_study(d, "S4", "r-old", err, sizeof err), 0);
    /* S1: ana all sites warning+ both channels; ben site B only, critical, sms;
     * cem all sites info+ email and sms (has no phone); old inactive */
    CHECK_EQ_INT(directory_add_subscription(d, "r-ana", "S1", NULL, SEV_WARNING, EMAIL | SMS,
                                            err, sizeof err), 0);
    CHECK_EQ_INT(directory_add_subscription(d, "r-ben", "S1", "B", SEV_CRITICAL, SMS, err,
                                            sizeof err), 0);
    CHECK_EQ_INT(directory_add_subscription(d, "r-cem", "S1", NULL, SEV_INFO, EMAIL | SMS, err,
                                            sizeof err), 0);
    CHECK_EQ_INT(directory_add_subscription(d, "r-old", "S1", NULL, SEV_INFO, EMAIL, err,
                                            sizeof err), 0);
    /* ana twice in S2 (all sites + site A): one recipient per channel */
    CHECK_EQ_INT(directory_add_subscription(d, "r-ana", "S2", NULL, SEV_CRITICAL, EMAIL, err,
                                            sizeof err), 0);
    CHECK_EQ_INT(directory_add_subscription(d, "r-ana", "S2", "A", SEV_INFO, EMAIL, err,
                                            sizeof err), 0);
    CHECK_EQ_INT(directory_add_subscription(d, "r-bad", "S2", NULL, SEV_INFO, EMAIL | SMS, err,
                                            sizeof err), 0);
    CHECK_EQ_INT(directory_seal(d), 0);
    return d;
}

static struct alert alert(const char *study, const char *site, enum alert_severity sev)
{
    struct alert a;
    memset(&a, 0, sizeof a);
    snprintf(a.alert_id, sizeof a.alert_id, "a1");
    snprintf(a.study_id, sizeof a.study_id, "%s", study);
    snprintf(a.site_id, sizeof a.site_id, "%s", site);
    snprintf(a.subject_id, sizeof a.subject_id, "P1");
    a.severity = sev;
    return a;
}

static bool has(const struct route_result *r, const char *id, enum channel c, const char *addr)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->r[i].researcher_id, id) == 0 && r->r[i].channel == c)
            return addr == NULL || strcmp(r->r[i].address, addr) == 0;
    return false;
}

static void test_route(void)
{
    struct directory *d = build();
    static struct route_result r;
    struct alert a = alert("S1", "A", SEV_INFO);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_SUBSCRIBERS);
    CHECK_EQ_INT(r.n, 1); /* only cem (info+), by email: no phone */
    CHECK(has(&r, "r-cem", CHANNEL_EMAIL, "cem@h.example"));

    a = alert("S1", "A", SEV_WARNING);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.n, 3);
    CHECK(has(&r, "r-ana", CHANNEL_EMAIL, "ana@h.example"));
    CHECK(has(&r, "r-ana", CHANNEL_SMS, "+4915100000001"));
    CHECK(has(&r, "r-cem", CHANNEL_EMAIL, NULL));
    CHECK(!has(&r, "r-old", CHANNEL_EMAIL, NULL)); /* inactive */

    a = alert("S1", "A", SEV_CRITICAL); /* ben is site B only */
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.n, 3);
    CHECK(!has(&r, "r-ben", CHANNEL_SMS, NULL));
    a = alert("S1", "B", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.n, 4);
    CHECK(has(&r, "r-ben", CHANNEL_SMS, "+4915100000002"));
    CHECK(!has(&r, "r-ben", CHANNEL_EMAIL, NULL)); /* not subscribed by email */

    /* two matching subscriptions: one recipient */
    a = alert("S2", "A", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK(has(&r, "r-ana", CHANNEL_EMAIL, NULL));
    int ana = 0;
    for (int i = 0; i < r.n; i++)
        ana += strcmp(r.r[i].researcher_id, "r-ana") == 0;
    CHECK_EQ_INT(ana, 1);
    /* r-bad has no usable address: not a recipient */
    CHECK(!has(&r, "r-bad", CHANNEL_EMAIL, NULL) && !has(&r, "r-bad", CHANNEL_SMS, NULL));

    /* S2 site C warning: ana's S2 all-sites is critical only -> nobody
     * subscribed -> safety contact by email (not SMS: not critical) */
    a = alert("S2", "C", SEV_WARNING);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_SAFETY_CONTACT);
    CHECK_EQ_INT(r.n, 1);
    CHECK(has(&r, "r-safe", CHANNEL_EMAIL, "safe@h.example"));
    /* critical without subscriber: safety contact by email and SMS */
    struct alert c = alert("S2", "C", SEV_CRITICAL);
    snprintf(c.study_id, sizeof c.study_id, "S2");
    directory_route(d, &c, &r);
    CHECK_EQ_INT(r.how, ROUTE_SUBSCRIBERS); /* ana all sites critical */
    /* S3: no subscriptions, no safety contact -> unroutable */
    a = alert("S3", "A", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_UNROUTABLE);
    CHECK_EQ_INT(r.n, 0);
    /* S4: safety contact inactive -> unroutable; unknown study too */
    a = alert("S4", "A", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_UNROUTABLE);
    a = alert("S9", "A", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_UNROUTABLE);
    /* S1 safety contact, critical, no subscriber at site: not the case */
    directory_destroy(d);
}

static void test_safety_critical_sms(void)
{
    char err[256];
    struct directory *d = directory_new();
    directory_add_researcher(d, "r-safe", "safe@h.example", "+4915100000005", true, err,
                             sizeof err);
    directory_add_study(d, "S5", "r-safe", err, sizeof err);
    directory_seal(d);
    static struct route_result r;
    struct alert a = alert("S5", "A", SEV_CRITICAL);
    directory_route(d, &a, &r);
    CHECK_EQ_INT(r.how, ROUTE_SAFETY_CONTACT);
    CHECK_EQ_INT(r.n, 2);
    CHECK(has(&r, "r-safe", CHANNEL_SMS, "+4915100000005"));
    directory_destroy(d);
}

static void test_escalation_and_address(void)
{
    struct directory *d = build();
    static struct route_result r;
    r.n = 0;
    r.dropped = 0;
    CHECK_EQ_INT(directory_escalation(d, "S1", "r-ben", &r), 2);
    CHECK(has(&r, "r-ben", CHANNEL_EMAIL, "ben@h.example"));
    CHECK(has(&r, "r-safe", CHANNEL_EMAIL, "safe@h.example"));
    /* already listed: not added twice */
    CHECK_EQ_INT(directory_escalation(d, "S1", "r-ben", &r), 0);
    char addr[ADDRESS_MAX + 1];
    CHECK(directory_address(d, "r-ana", CHANNEL_SMS, addr, sizeof addr));
    CHECK_EQ_STR(addr, "+4915100000001");
    CHECK(!directory_address(d, "r-cem", CHANNEL_SMS, addr, sizeof addr));
    CHECK(!directory_address(d, "r-old", CHANNEL_EMAIL, addr, sizeof addr));
    CHECK(!directory_address(d, "nobody", CHANNEL_EMAIL, addr, sizeof addr));
    CHECK_EQ_INT(directory_researchers(d), 6);
    directory_destroy(d);
}

static void test_checks_and_mask(void)
{
    char err[256];
    struct directory *d = directory_new();
    char long_id[100];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    CHECK_EQ_INT(directory_add_researcher(d, long_id, NULL, NULL, true, err, sizeof err), -1);
    CHECK_EQ_INT(directory_add_researcher(d, "", NULL, NULL, true, err, sizeof err), -1);
    CHECK_EQ_INT(directory_add_researcher(d, "r1", "a@b\r\nBcc: x@y", NULL, true, err,
                                          sizeof err), 1);
    CHECK_EQ_INT(directory_add_subscription(d, "r1", "", NULL, SEV_INFO, EMAIL, err, sizeof err),
                 -1);
    directory_destroy(d);
    directory_destroy(NULL);
    char m[64];
    contact_mask("johanna.doe@hospital.example", m, sizeof m);
    CHECK_EQ_STR(m, "jo…@hospital.example");
    contact_mask("+4915112345678", m, sizeof m);
    CHECK_EQ_STR(m, "+49…78");
    CHECK(strstr(m, "12345") == NULL);
}

int main(void)
{
    test_route();
    test_safety_critical_sms();
    test_escalation_and_address();
    test_checks_and_mask();
    return testlib_done();
}
