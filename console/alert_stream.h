/*
 * alert_stream: the live open-alert queue as Server-Sent Events,
 * GET /api/v1/alerts/stream (api_http.c authenticates and hands over).
 *
 *   alert_stream_hub_new()/_destroy()  the bound on concurrent streams
 *   alert_stream_open()                a stream for one caller, or NULL (full)
 *   alert_stream_read()/_free()        httpd_response's stream callbacks
 *
 * Each stream polls PostgreSQL once a second (a pooled connection borrowed
 * for the query only, never held by an idle stream) for open alerts of the
 * caller's studies, filtered in SQL by console_study_roles like every API
 * query, opened since the stream began. Lifecycle rows become visible in
 * commit order, not in opened_at order, so each poll looks back a few
 * seconds and skips the ids it already sent. It also polls the audit
 * trail (alert_events) for acknowledgements, resolutions and retractions
 * of the caller's studies' alerts, keyed on event_id ("change" events), so
 * another user's acknowledgement reaches an open queue. Between events a comment
 * (": keep-alive") every few seconds keeps proxies and the server's idle
 * timeout from closing it. A stream ends when the console stops, after
 * ALERT_STREAM_LIFE_S (the client's EventSource reconnects and is
 * authenticated again, so a signed-out session stops receiving), or when
 * the client goes away.
 *
 * Thread-safety: the hub is shared (an atomic count); a stream is used by
 * its connection's thread only.
 */
#ifndef VIGIL_CONSOLE_ALERT_STREAM_H
#define VIGIL_CONSOLE_ALERT_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include "auth.h"
#include "ctx.h"
#include "metrics.h"
#include "pgpool.h"

#define ALERT_STREAM_PATH "/api/v1/alerts/stream"
#define ALERT_STREAM_POLL_MS 1000
#define ALERT_STREAM_HEARTBEAT_MS 5000 /* below httpd's 10 s idle timeout */
#define ALERT_STREAM_LOOKBACK_MS 10000
#define ALERT_STREAM_LIFE_S 900
#define ALERT_STREAM_DEFAULT_MAX 32

struct alert_stream_hub;
struct alert_stream;

/* MAX concurrent streams (0: ALERT_STREAM_DEFAULT_MAX); POOL, STOP and M are
 * borrowed for the hub's life. NULL: out of memory. */
struct alert_stream_hub *alert_stream_hub_new(int max, struct pgpool *pool, struct ctx *stop,
                                              struct metrics *m);
void alert_stream_hub_destroy(struct alert_stream_hub *hub);

/* A stream for WHO starting at START (the database's now(), RFC 3339 UTC
 * as api_alerts_opened answers) and, for lifecycle changes, after audit
 * event START_EVENT (alert_events_head's at the same moment), or NULL when MAX streams are open (the
 * caller answers 503) or out of memory. */
struct alert_stream *alert_stream_open(struct alert_stream_hub *hub,
                                       const struct auth_principal *who, const char *start,
                                       long long start_event);

/* httpd_response.stream: the next bytes of the event stream; blocks until
 * there are some (at most a heartbeat's interval); -1 at the end. */
ssize_t alert_stream_read(void *stream, char *buf, size_t max);

/* httpd_response.stream_free: frees the stream and releases its place. */
void alert_stream_free(void *stream);

#endif
