#include "sms.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct sms_request *req = arg;
    size_t n = size * nmemb;
    size_t room = SMS_RESPONSE_MAX - req->response_len;
    size_t take = n < room ? n : room; /* the rest is read and dropped */
    memcpy(req->response + req->response_len, ptr, take);
    req->response_len += take;
    req->response[req->response_len] = '\0';
    return n;
}

/* Appends NAME=escaped(VALUE) to the form. Returns 0 or -1. */
static int form_add(CURL *easy, char **form, size_t *len, const char *name, const char *value)
{
    char *esc = curl_easy_escape(easy, value, 0);
    if (esc == NULL)
        return -1;
    size_t need = *len + strlen(name) + strlen(esc) + 3;
    char *p = realloc(*form, need);
    if (p == NULL) {
        curl_free(esc);
        return -1;
    }
    int n = snprintf(p + *len, need - *len, "%s%s=%s", *len ? "&" : "", name, esc);
    curl_free(esc);
    *form = p;
    *len += (size_t)n;
    return 0;
}

int sms_easy_setup(CURL *easy, const struct sms_config *cfg, const char *to, const char *text,
                   struct sms_request *req, char *errstr, size_t errstr_size)
{
    size_t len = 0;
    req->form = NULL;
    req->response_len = 0;
    req->response[0] = '\0';
    if (form_add(easy, &req->form, &len, "To", to) != 0 ||
        form_add(easy, &req->form, &len, "From", cfg->from) != 0 ||
        form_add(easy, &req->form, &len, "Body", text) != 0) {
        sms_request_free(req);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    curl_easy_setopt(easy, CURLOPT_URL, cfg->url);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->form);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_USERNAME, cfg->user ? cfg->user : "");
    curl_easy_setopt(easy, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    /* A gateway that redirects is misconfigured; following would resend
     * the credentials somewhere else. */
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     cfg->timeout_ms < 10000 ? cfg->timeout_ms : 10000L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

void sms_request_free(struct sms_request *req)
{
    free(req->form);
    req->form = NULL;
}

bool sms_parse_sid(const char *body, size_t len, char *out, size_t outsz)
{
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return false;
    const char *sid = json_string_value(json_object_get(j, "sid"));
    /* An id that does not fit in out is refused, not cut: a cut id would be
     * recorded as the provider's (fuzz_sms found "S" read as "" with outsz 1). */
    bool ok = sid != NULL && sid[0] != '\0' && strlen(sid) <= SMS_SID_MAX && strlen(sid) < outsz;
    for (const char *p = sid; ok && *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            ok = false;
    if (ok)
        snprintf(out, outsz, "%s", sid);
    json_decref(j);
    return ok;
}
