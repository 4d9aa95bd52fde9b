/*
 * sms_inbound: the SMS gateway's inbound webhook, POST /sms/inbound, for
 * replies such as "ACK 4821".
 *
 * Authenticated: X-Vigil-Signature: sha256=HEX, the HMAC-SHA256 of the raw
 * body under the gateway's shared secret (sms_inbound_secret), compared in
 * constant time. Body: application/x-www-form-urlencoded with From (E.164)
 * and Body (the text), as gateways post them.
 *
 * The code is looked up on (From, code) in sms_ack_codes (migration 0020):
 * a code that was sent to another number acknowledges nothing. Every alert
 * of that SMS delivery is acknowledged (vigil_alert_ack, channel
 * 'sms_reply', origin the phone number) for the researcher it was sent to.
 * A bad signature (401), a malformed body or text (400), an unknown code
 * (404), a code from another number (403), an expired code (410): a
 * plain-text answer the gateway may relay, nothing changed, audited
 * ('sms_reply_refused').
 */
#ifndef VIGIL_CONSOLE_SMS_INBOUND_H
#define VIGIL_CONSOLE_SMS_INBOUND_H

#include "console.h"

/* console_module_fn: registers POST /sms/inbound when sms_inbound_secret is set. */
int sms_inbound_register(struct console_app *app, void (**cleanup)(void *),
                         void **cleanup_arg, char *errstr, size_t errstr_size);

/* Checks HEADER ("sha256=HEX") against the HMAC-SHA256 of BODY under
 * SECRET, in constant time. */
bool sms_inbound_signature_ok(const char *secret, const char *body, size_t len,
                              const char *header);

#endif
