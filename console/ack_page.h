/*
 * ack_page: the pages behind the acknowledgement links (alerting/acklink.h).
 *
 *   GET  /ack/TOKEN  a confirmation page with a form; changes nothing, so a
 *                    mail scanner that follows every link acknowledges
 *                    nothing
 *   POST /ack/TOKEN  acknowledges (vigil_alert_ack, channel 'link', origin
 *                    the client's address) and records the link's nonce in
 *                    ack_link_uses in the same transaction: single use
 *
 * Refusals (a malformed, forged, unknown-key, expired or replayed link) get
 * a page saying so and a 4xx, change nothing, and are audited
 * ('ack_link_refused'). An alert already acknowledged, resolved or
 * retracted gets a 200 page saying which.
 */
#ifndef VIGIL_CONSOLE_ACK_PAGE_H
#define VIGIL_CONSOLE_ACK_PAGE_H

#include "console.h"

/* console_module_fn: registers /ack/ when link_keys_file is set. */
int ack_page_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                      char *errstr, size_t errstr_size);

#endif
