/*
 * libFuzzer target for the console's request parsing: the input is split
 * at 0x00 bytes into a query string, a Cookie header, a JSON body and a
 * path; each goes through the parser the API runs it through
 * (reqparse_query_parse and its lookups, reqparse_cookie_get,
 * reqparse_json_object, reqparse_time_valid/reqparse_id_valid on every
 * value, api_route_find on the path). They must neither crash, leak nor
 * read out of bounds (ASan, UBSan), and every value they accept must meet
 * the bounds they promise.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "reqparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *part[4] = {"", "", "", ""};
    size_t plen[4] = {0, 0, 0, 0};
    size_t start = 0;
    int k = 0;
    for (size_t i = 0; i <= size && k < 4; i++) {
        if (i == size || buf[i] == '\0') {
            part[k] = buf + start;
            plen[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    char err[256];
    struct reqparse_query q;
    if (reqparse_query_parse(&q, part[0], err, sizeof err) == 0) {
        for (size_t i = 0; i < q.n; i++) {
            if (strlen(q.value[i]) > REQPARSE_VALUE_MAX)
                abort();
            (void)reqparse_time_valid(q.value[i]);
            (void)reqparse_id_valid(q.value[i]);
            if (reqparse_query_get(&q, q.name[i]) != q.value[i])
                abort();
        }
        static const char *const allowed[] = {"study", "site", "limit", NULL};
        (void)reqparse_query_only(&q, allowed, err, sizeof err);
    }
    reqparse_query_free(&q);
    char v[64];
    if (reqparse_cookie_get(part[1], "__Host-vigil_session", v, sizeof v) == 1 && strlen(v) >= sizeof v)
        abort();
    json_t *j = reqparse_json_object(part[2], plen[2], err, sizeof err);
    if (j != NULL && !json_is_object(j))
        abort();
    json_decref(j);
    char values[API_PATH_VALUES][REQPARSE_ID_MAX + 1];
    int status;
    const struct api_route *r = api_route_find("GET", part[3], values, &status);
    if (r == NULL && status != 404 && status != 405)
        abort();
    free(buf);
    return 0;
}
