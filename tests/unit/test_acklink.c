/* Acknowledgement links (alerting/acklink.c), the webhook signature
 * (alerting/webhook.c) against the Standard Webhooks reference vector, the
 * message additions (alerting/ackmsg.c) and the inbound parsers
 * (console/form.c, console/sms_inbound.c). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "ackmsg.h"
#include "acklink.h"
#include "form.h"
#include "sms_inbound.h"
#include "testlib.h"
#include "webhook.h"

static void test_tokens(void)
{
    struct acklink_keys k, old;
    char err[256];
    const char *two = "# rotation\nk2 new-secret-0123456789abcdef\n\nk1 old-secret-0123456789abcdef\n";
    CHECK(acklink_keys_parse(two, strlen(two), &k, err, sizeof err) == 0);
    CHECK_EQ_INT(k.n, 2);
    CHECK_EQ_STR(k.kid[0], "k2");
    const char *one = "k1 old-secret-0123456789abcdef\n";
    CHECK(acklink_keys_parse(one, strlen(one), &old, err, sizeof err) == 0);
    CHECK(acklink_keys_parse("k1 short\n", 9, &old, err, sizeof err) != 0);
    CHECK(strstr(err, "short") == NULL); /* never echoes the secret */
    CHECK(acklink_keys_parse("", 0, &old, err, sizeof err) != 0);
    CHECK(acklink_keys_parse("k.1 0123456789abcdef01\n", 23, &old, err, sizeof err) != 0);

    char tok[ACKLINK_TOKEN_MAX + 1];
    size_t n = acklink_sign(&k, "alert-1", "res-ana", 2000, tok, sizeof tok);
    CHECK(n > 0 && strncmp(tok, "v1.k2.", 6) == 0);
    struct acklink_claims c;
    CHECK_EQ_INT(acklink_verify(&k, tok, n, 1999, &c), ACKLINK_OK);
    CHECK_EQ_STR(c.alert_id, "alert-1");
    CHECK_EQ_STR(c.researcher_id, "res-ana");
    CHECK_EQ_INT(acklink_verify(&k, tok, n, 2000, &c), ACKLINK_EXPIRED);
    /* two tokens for the same alert differ (nonce) */
    char tok2[ACKLINK_TOKEN_MAX + 1];
    acklink_sign(&k, "alert-1", "res-ana", 2000, tok2, sizeof tok2);
    CHECK(strcmp(tok, tok2) != 0);
    /* a flipped byte anywhere is refused, the signature's last character
     * included (its unused bits may not vary): every token of many */
    for (int round = 0; round < 200; round++) {
        size_t m = acklink_sign(&k, "alert-1", "res-ana", 2000, tok2, sizeof tok2);
        char t[ACKLINK_TOKEN_MAX + 1];
        memcpy(t, tok2, m + 1);
        t[m - 1] = t[m - 1] == 'A' ? 'B' : (char)(t[m - 1] ^ 1);
        if (acklink_verify(&k, t, m, 1000, &c) == ACKLINK_OK) {
            CHECK(!"a token with its last character changed verified");
            break;
        }
    }
    unsigned char raw[4];
    CHECK_EQ_INT(acklink_b64url_decode("QQ", 2, raw, sizeof raw), 1);  /* "A" */
    CHECK_EQ_INT(acklink_b64url_decode("QR", 2, raw, sizeof raw), -1); /* "A", other spelling */
    int refused = 0;
    for (size_t i = 3; i < n; i++) {
        char t[ACKLINK_TOKEN_MAX + 1];
        memcpy(t, tok, n + 1);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        refused += acklink_verify(&k, t, n, 1000, &c) != ACKLINK_OK;
    }
    CHECK_EQ_INT(refused, (int)(n - 3));
    /* rotation: a token of the old key verifies with both files, a token of
     * the new key not with the old file (unknown key) */
    CHECK(acklink_keys_parse(one, strlen(one), &old, err, sizeof err) == 0);
    n = acklink_sign(&old, "alert-2", "res-ben", 2000, tok, sizeof tok);
    CHECK_EQ_INT(acklink_verify(&k, tok, n, 1000, &c), ACKLINK_OK);
    n = acklink_sign(&k, "alert-2", "res-ben", 2000, tok, sizeof tok);
    CHECK_EQ_INT(acklink_verify(&old, tok, n, 1000, &c), ACKLINK_UNKNOWN_KEY);
    CHECK_EQ_INT(acklink_parse("v1.k1", 5, &c), ACKLINK_MALFORMED);
    CHECK_EQ_INT(acklink_sign(&k, "", "r", 1, tok, sizeof tok), 0);
}

static void test_webhook_vector(void)
{
    /* the Standard Webhooks specification's example */
    char sig[128];
    const char *body = "{\"test\": 2432232314}";
    size_t n = webhook_sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                            1614265330, body, strlen(body), sig, sizeof sig);
    CHECK(n > 0);
    CHECK_EQ_STR(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    CHECK_EQ_INT(webhook_sign("whsec_not base64!", "m", 1, "x", 1, sig, sizeof sig), 0);
}

static void test_messages(void)
{
    struct acklink_keys k;
    char err[256];
    const char *kf = "k1 0123456789abcdef0123456789\n";
    CHECK(acklink_keys_parse(kf, strlen(kf), &k, err, sizeof err) == 0);
    struct ackmsg_config cfg = {"https://vigil.example", &k, 3600, 0};
    struct alert a = {0};
    snprintf(a.alert_id, sizeof a.alert_id, "alert-7");
    snprintf(a.subject_id, sizeof a.subject_id, "SUBJ-0042");
    const struct alert *as[] = {&a};
    char body[4096] = "Study: S\nAlert id: alert-7\n\n-- \nvigil\n";
    CHECK(ackmsg_email(&cfg, as, 1, "res-ana", 100, body, sizeof body) > 0);
    char *link = strstr(body, "https://vigil.example/ack/v1.k1.");
    CHECK(link != NULL);
    CHECK(link != NULL && link < strstr(body, "\n-- \n")); /* before the signature */
    CHECK(strstr(body, "SUBJ-0042") == NULL);
    char one[512];
    CHECK(ackmsg_link(&cfg, "alert-9", "res-ben", 100, one, sizeof one) > 0);
    CHECK(strncmp(one, "https://vigil.example/ack/v1.k1.", 32) == 0);
    struct ackmsg_config off = {NULL, &k, 3600, 0};
    CHECK_EQ_INT(ackmsg_link(&off, "alert-9", "res-ben", 100, one, sizeof one), 0);
    char sms[256];
    CHECK(ackmsg_sms(&cfg, NULL, as, 1, "res-ana", "+4479", 100, sms, sizeof sms) > 0);
    CHECK(strncmp(sms, " Ack: https://vigil.example/ack/", 32) == 0);
    char text[700] = "vigil CRITICAL x refs alert-7";
    ackmsg_sms_insert(text, sizeof text, " Reply ACK 4821");
    CHECK_EQ_STR(text, "vigil CRITICAL x Reply ACK 4821 refs alert-7");
    a.kind = ALERT_RETRACTION; /* nothing to acknowledge */
    char b2[256] = "x\n-- \n";
    CHECK_EQ_INT(ackmsg_email(&cfg, as, 1, "res-ana", 100, b2, sizeof b2), 0);
}

static void test_inbound(void)
{
    char out[64], code[16];
    const char *b = "From=%2B447900123456&To=vigil&Body=ACK+4821";
    CHECK_EQ_INT(form_field(b, strlen(b), "From", out, sizeof out), 13);
    CHECK_EQ_STR(out, "+447900123456");
    CHECK(form_e164(out));
    CHECK_EQ_INT(form_field(b, strlen(b), "Body", out, sizeof out), 8);
    CHECK(form_sms_ack(out, code, sizeof code));
    CHECK_EQ_STR(code, "4821");
    CHECK_EQ_INT(form_field(b, strlen(b), "Nope", out, sizeof out), -1);
    CHECK_EQ_INT(form_field("Body=%4", 7, "Body", out, sizeof out), -2);
    CHECK_EQ_INT(form_field("Body=%00", 8, "Body", out, sizeof out), -2);
    CHECK(!form_sms_ack("ACK", code, sizeof code));
    CHECK(!form_sms_ack("ACK 12", code, sizeof code));
    CHECK(!form_sms_ack("ACK 4821 please", code, sizeof code));
    CHECK(!form_sms_ack("ACKNOWLEDGE 4821", code, sizeof code));
    CHECK(form_sms_ack(" ack\t12345678\n", code, sizeof code));
    CHECK(!form_e164("+0123"));
    CHECK(!form_e164("447900"));
    /* the inbound signature: HMAC-SHA256 of the body, hex */
    const char *secret = "gateway-secret-0123";
    unsigned char md[32];
    unsigned int ml;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)b, strlen(b), md, &ml);
    char hdr[80] = "sha256=";
    for (int i = 0; i < 32; i++)
        snprintf(hdr + 7 + 2 * i, 3, "%02x", md[i]);
    CHECK(sms_inbound_signature_ok(secret, b, strlen(b), hdr));
    CHECK(!sms_inbound_signature_ok(secret, b, strlen(b) - 1, hdr));
    CHECK(!sms_inbound_signature_ok("other-secret-0123456", b, strlen(b), hdr));
    CHECK(!sms_inbound_signature_ok(secret, b, strlen(b), NULL));
    CHECK(!sms_inbound_signature_ok(secret, b, strlen(b), "sha256=zz"));
}

int main(void)
{
    test_tokens();
    test_webhook_vector();
    test_messages();
    test_inbound();
    return testlib_done();
}
