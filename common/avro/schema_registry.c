/*
 * schema_registry: Confluent Schema Registry client (GET by id). See
 * schema_registry.h.
 *
 * A fresh easy handle per request rather than one shared handle behind a
 * lock: fetches are rare (once per id, then cached by the codec) and a
 * shared handle would serialise threads behind a slow registry.
 */
#include "schema_registry.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct registry {
    char *url; /* without a trailing '/' */
    long timeout_ms;
};

struct body {
    char *p;
    size_t len;
    size_t cap;
    bool too_big;
};

static size_t on_data(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > REGISTRY_MAX_RESPONSE) {
        b->too_big = true;
        return 0; /* makes curl fail with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown)
            return 0;
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
    return n;
}

struct registry *registry_new(const char *url, long timeout_ms, char *errstr,
                              size_t errstr_size)
{
    struct registry *reg = NULL;
    if (!url || strncmp(url, "http", 4) != 0) {
        snprintf(errstr, errstr_size, "schema registry URL \"%s\" is not http(s)",
                 url ? url : "");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errstr_size, "could not initialise libcurl");
        return NULL;
    }
    reg = calloc(1, sizeof *reg);
    if (!reg || !(reg->url = strdup(url))) {
        snprintf(errstr, errstr_size, "could not create schema registry client: out of memory");
        goto err;
    }
    size_t n = strlen(reg->url);
    while (n > 0 && reg->url[n - 1] == '/')
        reg->url[--n] = '\0';
    reg->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    return reg;
err:
    registry_destroy(reg);
    return NULL;
}

void registry_destroy(struct registry *reg)
{
    if (!reg)
        return;
    free(reg->url);
    free(reg);
}

/* Copies the registry's own error message ({"error_code":..,"message":..})
 * if the body has one, so the operator sees it. */
static const char *registry_message(json_t *root)
{
    const char *msg = json_string_value(json_object_get(root, "message"));
    return msg ? msg : "no message";
}

enum registry_status registry_fetch_schema(struct registry *reg, uint32_t id, char **schema_json,
                                           char *errstr, size_t errstr_size)
{
    enum registry_status st = REGISTRY_TRANSIENT;
    struct body b = {0};
    struct curl_slist *headers = NULL;
    json_t *root = NULL;
    char url[2048];
    *schema_json = NULL;
    if ((size_t)snprintf(url, sizeof url, "%s/schemas/ids/%u", reg->url, (unsigned)id) >=
        sizeof url) {
        snprintf(errstr, errstr_size, "schema registry URL is too long");
        return REGISTRY_TRANSIENT;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(errstr, errstr_size, "could not fetch schema id %u: curl_easy_init failed",
                 (unsigned)id);
        return REGISTRY_TRANSIENT;
    }
    headers = curl_slist_append(NULL, "Accept: application/vnd.schemaregistry.v1+json, "
                                      "application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a threaded worker */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, reg->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);

    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        snprintf(errstr, errstr_size, "could not fetch schema id %u from %s: %s", (unsigned)id,
                 reg->url,
                 b.too_big ? "response too large" : curl_err[0] ? curl_err : curl_easy_strerror(rc));
        goto done;
    }
    if (b.p)
        root = json_loadb(b.p, b.len, 0, NULL);
    if (code == 404) {
        snprintf(errstr, errstr_size, "schema registry %s has no schema id %u: %s", reg->url,
                 (unsigned)id, registry_message(root));
        st = REGISTRY_NOT_FOUND;
        goto done;
    }
    if (code != 200) {
        snprintf(errstr, errstr_size, "could not fetch schema id %u from %s: HTTP %ld: %s",
                 (unsigned)id, reg->url, code, registry_message(root));
        goto done;
    }
    const char *text = json_string_value(json_object_get(root, "schema"));
    if (!text) {
        snprintf(errstr, errstr_size,
                 "could not fetch schema id %u from %s: the answer has no \"schema\" string",
                 (unsigned)id, reg->url);
        goto done;
    }
    const char *type = json_string_value(json_object_get(root, "schemaType"));
    if (type && strcmp(type, "AVRO") != 0) {
        snprintf(errstr, errstr_size, "schema id %u is a %s schema, not Avro", (unsigned)id, type);
        st = REGISTRY_NOT_AVRO;
        goto done;
    }
    *schema_json = strdup(text);
    if (!*schema_json) {
        snprintf(errstr, errstr_size, "could not fetch schema id %u: out of memory",
                 (unsigned)id);
        goto done;
    }
    st = REGISTRY_OK;
done:
    json_decref(root);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    free(b.p);
    return st;
}
