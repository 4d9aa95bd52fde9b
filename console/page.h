/*
 * page: the console's small HTML pages (acknowledgement confirmation and
 * outcomes) and the audit entries its refusals leave. Reentrant.
 */
#ifndef VIGIL_CONSOLE_PAGE_H
#define VIGIL_CONSOLE_PAGE_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stddef.h>

#include "httpd.h"

/* Writes S HTML-escaped (& < > " ') into OUT. Returns OUT. */
char *page_escape(const char *s, char *out, size_t outsz);

/* Sets RESP to a complete HTML page with STATUS, TITLE (escaped here) and
 * BODY_HTML (already safe HTML). */
void page_html(struct httpd_response *resp, unsigned status, const char *title,
               const char *body_html);

/* Appends an event to the audit trail (vigil_audit_append). ALERT_ID may be
 * NULL (a refusal that names no genuine alert). DETAIL is consumed
 * (json_decref'd). Returns 0, or -1 with errstr. */
int page_audit(PGconn *c, const char *alert_id, const char *kind, const char *actor,
               json_t *detail, char *errstr, size_t errstr_size);

#endif
