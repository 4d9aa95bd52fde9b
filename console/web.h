/*
 * web: the console's pages, served from the binary (console/web/, compiled
 * in by cmake/Embed.cmake: no CDN, no build step at run time).
 *
 *   GET /console/              console.html: sign-in, the alert queue
 *                              (polled every 15 s), an alert's page with
 *                              acknowledge and resolve
 *   GET /console/console.js    the only script
 *   GET /console/console.css   the only style sheet
 *
 * Every answer carries a Content-Security-Policy without 'unsafe-inline'
 * (scripts, styles and requests from the console's own origin only, no
 * framing, no plugins), and the script writes server values with
 * textContent only, so markup in any field stays text.
 *
 * Thread-safety: the handler only reads constant data.
 */
#ifndef VIGIL_CONSOLE_WEB_H
#define VIGIL_CONSOLE_WEB_H

#include "console.h"

#define WEB_CSP                                                                          \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "          \
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

/* A console_module_fn: registers /console/. */
int web_register(struct console_app *app, void (**cleanup)(void *), void **cleanup_arg,
                 char *errstr, size_t errstr_size);

#endif
