/*
 * Regression tests for sms_parse_sid() found by fuzz_sms: an id that does
 * not fit in the caller's buffer is refused, never cut short and reported
 * as read; the buffer is never written past outsz. Also the answer shapes
 * the fuzzer's seeds cover (non-string, nested, truncated, not ASCII).
 */
#include <string.h>

#include "sms.h"
#include "testlib.h"

static bool parse(const char *body, char *out, size_t outsz)
{
    return sms_parse_sid(body, strlen(body), out, outsz);
}

/* fuzz_sms: {"sid":"S"} with a 1-byte buffer returned true with "". */
static void test_too_small_is_refused(void)
{
    char buf[16];
    memset(buf, 'x', sizeof buf);
    CHECK(!parse("{\"sid\":\"S\"}", buf, 1));
    CHECK(buf[1] == 'x'); /* nothing past outsz */
    CHECK(!parse("{\"sid\":\"SM123456\"}", buf, 8)); /* 8 bytes need 9 */
    CHECK(buf[8] == 'x');
    CHECK(parse("{\"sid\":\"SM12345\"}", buf, 8)); /* 7 bytes + NUL fit exactly */
    CHECK_EQ_STR(buf, "SM12345");
    CHECK(!parse("{\"sid\":\"SM1\"}", buf, 0));
}

static void test_limits(void)
{
    char buf[320];
    char body[128];
    char sid[SMS_SID_MAX + 2];
    memset(sid, 'A', sizeof sid);
    sid[SMS_SID_MAX] = '\0';
    snprintf(body, sizeof body, "{\"sid\":\"%s\"}", sid);
    CHECK(parse(body, buf, sizeof buf));
    CHECK_EQ_INT(strlen(buf), SMS_SID_MAX);
    CHECK(!parse(body, buf, SMS_SID_MAX)); /* one byte short of the NUL */
    sid[SMS_SID_MAX] = 'A';
    sid[SMS_SID_MAX + 1] = '\0';
    snprintf(body, sizeof body, "{\"sid\":\"%s\"}", sid);
    CHECK(!parse(body, buf, sizeof buf)); /* longer than SMS_SID_MAX */
}

static void test_shapes(void)
{
    char buf[320];
    CHECK(!parse("{\"sid\":12345}", buf, sizeof buf));
    CHECK(!parse("{\"sid\":null}", buf, sizeof buf));
    CHECK(!parse("{\"sid\":\"\"}", buf, sizeof buf));
    CHECK(!parse("{\"message\":{\"sid\":\"SMnested\"}}", buf, sizeof buf));
    CHECK(!parse("[{\"sid\":\"SM1\"}]", buf, sizeof buf));
    CHECK(!parse("{\"sid\":\"SM1f0e8ae6", buf, sizeof buf));
    CHECK(!parse("{\"sid\":\"SMa\",\"sid\":\"SMb\"}", buf, sizeof buf));
    CHECK(!parse("{\"sid\":\"SM\xc3\xa9\"}", buf, sizeof buf));
    CHECK(!parse("{\"sid\":\"SM\xff\"}", buf, sizeof buf));
    CHECK(parse("{\"sid\":\"SM\\u0041\\/x\"}", buf, sizeof buf));
    CHECK_EQ_STR(buf, "SMA/x");
}

int main(void)
{
    test_too_small_is_refused();
    test_limits();
    test_shapes();
    return testlib_done();
}
