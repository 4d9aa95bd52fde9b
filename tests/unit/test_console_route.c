/* The console's route table: longest prefix, exact vs subtree prefixes, 405
 * with Allow for a known path under another method, 0 (404) for unknown. */
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "testlib.h"

static void h_a(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    (void)arg;
    (void)req;
    httpd_response_set(resp, 200, NULL, "a");
}

static void h_b(void *arg, const struct httpd_request *req, struct httpd_response *resp)
{
    (void)arg;
    (void)req;
    httpd_response_set(resp, 201, NULL, "b");
}

static unsigned run(struct route_table *t, const char *method, const char *path, char *body,
                    char *allow)
{
    struct httpd_request req = {.method = method, .path = path, .body = "", .client = "x"};
    struct httpd_response resp = {0};
    route_dispatch(t, &req, &resp);
    body[0] = '\0';
    allow[0] = '\0';
    if (resp.body != NULL)
        strcpy(body, resp.body);
    for (int i = 0; i < resp.nheaders; i++)
        if (strcmp(resp.header_name[i], "Allow") == 0)
            strcpy(allow, resp.header_value[i]);
    free(resp.body);
    return resp.status;
}

int main(void)
{
    char err[256], body[64], allow[256];
    struct route_table *t = route_table_new();
    CHECK(t != NULL);
    CHECK(route_add(t, "GET", "/ack/", h_a, NULL, err, sizeof err) == 0);
    CHECK(route_add(t, "POST", "/ack/", h_b, NULL, err, sizeof err) == 0);
    CHECK(route_add(t, "POST", "/sms/inbound", h_b, NULL, err, sizeof err) == 0);
    CHECK(route_add(t, "GET", "/ack/special/", h_b, NULL, err, sizeof err) == 0);
    CHECK(route_add(t, "GET", "/ack/", h_a, NULL, err, sizeof err) != 0); /* duplicate */
    CHECK(route_add(t, "GET", "nope", h_a, NULL, err, sizeof err) != 0);  /* no '/' */

    CHECK_EQ_INT(run(t, "GET", "/ack/abc", body, allow), 200);
    CHECK(strcmp(body, "a") == 0);
    CHECK_EQ_INT(run(t, "HEAD", "/ack/abc", body, allow), 200);
    CHECK_EQ_INT(run(t, "POST", "/ack/abc", body, allow), 201);
    CHECK_EQ_INT(run(t, "GET", "/ack/special/x", body, allow), 201); /* longest prefix */
    CHECK_EQ_INT(run(t, "POST", "/sms/inbound", body, allow), 201);
    CHECK_EQ_INT(run(t, "GET", "/sms/inbound", body, allow), 405);
    CHECK(strcmp(allow, "POST") == 0);
    CHECK_EQ_INT(run(t, "POST", "/sms/inboundx", body, allow), 0); /* exact, not a prefix */
    CHECK_EQ_INT(run(t, "GET", "/elsewhere", body, allow), 0);
    CHECK_EQ_INT(run(t, "DELETE", "/ack/abc", body, allow), 405);
    route_table_destroy(t);
    return testlib_done();
}
