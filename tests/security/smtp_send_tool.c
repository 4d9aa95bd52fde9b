/*
 * smtp_send_tool: sends one vigil-formatted email through the notifier's own
 * transfer setup (email_easy_setup) with a blocking libcurl easy handle, for
 * tests/security/test_smtp_tls.py.
 *
 *   smtp_send_tool URL TLS CA_FILE RCPT
 *
 * TLS is off, try or require (smtp_tls); CA_FILE "" means libcurl's default
 * trust store (smtp_ca_file unset). Prints "sent" or "failed: <libcurl
 * error>" and exits 0 only when the server accepted the message.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "email.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: smtp_send_tool URL off|try|require CA_FILE RCPT\n");
        return 2;
    }
    struct email_config cfg = {argv[1], "vigil@localhost", NULL, NULL, argv[2], 10000, argv[3]};
    struct email_headers h = {cfg.from, argv[4], "vigil TLS test", "<vigil.tls.test@localhost>",
                              1767225600000, "tls-test-alert"};
    char msg[EMAIL_MAX];
    char err[CURL_ERROR_SIZE] = "";
    struct email_upload up = {0};
    int rc = 1;
    CURL *easy = NULL;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "failed: curl_global_init\n");
        return 1;
    }
    size_t len = email_format(&h, "An alert travelled over STARTTLS.\r\n", msg, sizeof msg);
    if (len == 0) {
        fprintf(stderr, "failed: email_format\n");
        goto err;
    }
    easy = curl_easy_init();
    if (easy == NULL || email_easy_setup(easy, &cfg, argv[4], msg, len, &up, err, sizeof err) != 0) {
        fprintf(stderr, "failed: setup: %s\n", err);
        goto err;
    }
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, err);
    CURLcode res = curl_easy_perform(easy);
    if (res != CURLE_OK) {
        printf("failed: %s: %s\n", curl_easy_strerror(res), err);
        goto err;
    }
    printf("sent\n");
    rc = 0;
err:
    email_upload_free(&up);
    curl_easy_cleanup(easy);
    curl_global_cleanup();
    return rc;
}
