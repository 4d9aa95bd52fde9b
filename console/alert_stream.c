/*
 * alert_stream: Server-Sent Events of the open-alert queue (alert_stream.h).
 */
#include "alert_stream.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "deadline.h"
#include "log.h"

#define SEEN_MAX 1024     /* ids sent within the look-back window */
#define POLL_LIMIT 200    /* alerts per poll */
#define TIME_LEN 40       /* "2026-01-31T12:00:00.000000Z" and room */

struct alert_stream_hub {
    atomic_int open;
    int max;
    struct pgpool *pool;
    struct ctx *stop;
    struct metric *gauge;
};

struct seen {
    char id[REQPARSE_ID_MAX + 1];
    char opened[TIME_LEN];
};

struct alert_stream {
    struct alert_stream_hub *hub;
    struct auth_principal who;
    char start[TIME_LEN];  /* only alerts opened after the stream began */
    char newest[TIME_LEN]; /* the newest opened_at sent (look back from it) */
    long long last_event;  /* lifecycle changes after this audit event id */
    struct seen *seen;     /* ring of recently sent ids */
    int nseen, seen_head;
    char *buf;             /* bytes not yet handed to the server */
    size_t len, off, cap;
    deadline_t next_poll, next_beat, end;
};

struct alert_stream_hub *alert_stream_hub_new(int max, struct pgpool *pool, struct ctx *stop,
                                              struct metrics *m)
{
    struct alert_stream_hub *hub = calloc(1, sizeof *hub);
    if (hub == NULL)
        return NULL;
    hub->max = max > 0 ? max : ALERT_STREAM_DEFAULT_MAX;
    hub->pool = pool;
    hub->stop = stop;
    hub->gauge = metrics_gauge(m, "vigil_console_alert_streams",
                               "open Server-Sent Event streams of the alert queue", NULL);
    atomic_init(&hub->open, 0);
    return hub;
}

void alert_stream_hub_destroy(struct alert_stream_hub *hub)
{
    free(hub);
}

static int append(struct alert_stream *s, const char *text, size_t n)
{
    if (s->off == s->len)
        s->off = s->len = 0;
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        char *b = realloc(s->buf, cap);
        if (b == NULL)
            return -1;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, n);
    s->len += n;
    return 0;
}

static int append_str(struct alert_stream *s, const char *text)
{
    return append(s, text, strlen(text));
}

struct alert_stream *alert_stream_open(struct alert_stream_hub *hub,
                                       const struct auth_principal *who, const char *start,
                                       long long start_event)
{
    int n = atomic_fetch_add(&hub->open, 1);
    if (n >= hub->max) {
        atomic_fetch_sub(&hub->open, 1);
        return NULL;
    }
    struct alert_stream *s = calloc(1, sizeof *s);
    if (s != NULL)
        s->seen = calloc(SEEN_MAX, sizeof *s->seen);
    if (s == NULL || s->seen == NULL ||
        append_str(s, "retry: 3000\n: vigil alert stream\n\n") < 0) {
        if (s != NULL) {
            free(s->seen);
            free(s->buf);
        }
        free(s);
        atomic_fetch_sub(&hub->open, 1);
        return NULL;
    }
    metric_set(hub->gauge, (double)(n + 1));
    s->hub = hub;
    s->who = *who;
    snprintf(s->start, sizeof s->start, "%s", start);
    snprintf(s->newest, sizeof s->newest, "%s", start);
    s->last_event = start_event;
    s->next_poll = deadline_now();
    s->next_beat = deadline_after_ms(ALERT_STREAM_HEARTBEAT_MS);
    s->end = deadline_after_ms((int64_t)ALERT_STREAM_LIFE_S * 1000);
    return s;
}

void alert_stream_free(void *arg)
{
    struct alert_stream *s = arg;
    if (s == NULL)
        return;
    int n = atomic_fetch_sub(&s->hub->open, 1) - 1;
    metric_set(s->hub->gauge, (double)n);
    free(s->seen);
    free(s->buf);
    free(s);
}

static bool was_sent(const struct alert_stream *s, const char *id)
{
    for (int i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].id, id) == 0)
            return true;
    return false;
}

/* Forgets ids opened before the look-back's lower bound LOW (text order is
 * time order for these fixed-width UTC times), then remembers ID. */
static void remember(struct alert_stream *s, const char *id, const char *opened, const char *low)
{
    int w = 0;
    for (int i = 0; i < s->nseen; i++)
        if (strcmp(s->seen[i].opened, low) >= 0)
            s->seen[w++] = s->seen[i];
    s->nseen = w;
    if (s->nseen == SEEN_MAX) { /* full of this window: drop the oldest sent */
        memmove(&s->seen[0], &s->seen[1], (SEEN_MAX - 1) * sizeof s->seen[0]);
        s->nseen--;
    }
    snprintf(s->seen[s->nseen].id, sizeof s->seen[0].id, "%s", id);
    snprintf(s->seen[s->nseen].opened, sizeof s->seen[0].opened, "%s", opened);
    s->nseen++;
}

/* One poll: appends an "alert" event per new open alert. A database
 * failure is logged and retried at the next poll; the stream stays. */
static void poll_once(struct alert_stream *s)
{
    char err[512];
    PGconn *conn = pgpool_get(s->hub->pool, 500, err, sizeof err);
    if (conn == NULL)
        return;
    PGresult *r = api_alerts_opened(conn, &s->who, s->start, s->newest,
                                    ALERT_STREAM_LOOKBACK_MS, POLL_LIMIT, err, sizeof err);
    pgpool_put(s->hub->pool, conn, PQstatus(conn) != CONNECTION_OK);
    if (r == NULL) {
        log_msg(LOG_WARN, "console", "alert stream poll: %s", err);
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *opened = PQgetvalue(r, i, 16);
        if (was_sent(s, id))
            continue;
        json_t *j = api_alert_json(r, i);
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(j);
        if (text == NULL)
            continue;
        /* One line of JSON (jansson escapes newlines), so one data: line. */
        if (append_str(s, "event: alert\ndata: ") == 0 && append_str(s, text) == 0)
            append_str(s, "\n\n");
        free(text);
        remember(s, id, opened, PQgetvalue(r, i, 17));
        if (strcmp(opened, s->newest) > 0)
            snprintf(s->newest, sizeof s->newest, "%s", opened);
    }
    PQclear(r);
}

/* One poll of the audit trail: a "change" event per acknowledgement,
 * resolution or retraction of a visible alert since the last. A failure
 * is logged; the next poll starts from the same event. */
static void poll_changes(struct alert_stream *s)
{
    char err[512];
    PGconn *conn = pgpool_get(s->hub->pool, 500, err, sizeof err);
    if (conn == NULL)
        return;
    PGresult *r = api_alert_changes(conn, &s->who, s->last_event, POLL_LIMIT, err, sizeof err);
    pgpool_put(s->hub->pool, conn, PQstatus(conn) != CONNECTION_OK);
    if (r == NULL) {
        log_msg(LOG_WARN, "console", "alert stream poll: %s", err);
        return;
    }
    int n = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        if (PQgetisnull(r, i, 1))
            continue;
        n++;
        s->last_event = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        json_t *j = json_pack("{s:I, s:s, s:s, s:o, s:s}", "event_id", (json_int_t)s->last_event,
                              "alert_id", PQgetvalue(r, i, 2), "kind", PQgetvalue(r, i, 3),
                              "state",
                              PQgetisnull(r, i, 4) ? json_null() : json_string(PQgetvalue(r, i, 4)),
                              "at", PQgetvalue(r, i, 5));
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
        json_decref(j);
        if (text == NULL)
            continue;
        /* id: lets a reconnecting EventSource say where it was (the page
         * reloads its queue on reconnect instead: see console.js) */
        char id[48];
        snprintf(id, sizeof id, "id: %lld\n", s->last_event);
        if (append_str(s, "event: change\n") == 0 && append_str(s, id) == 0 &&
            append_str(s, "data: ") == 0 && append_str(s, text) == 0)
            append_str(s, "\n\n");
        free(text);
    }
    /* the rest up to the head were other studies' or other kinds' events */
    if (n < POLL_LIMIT && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)) {
        long long head = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        if (head > s->last_event)
            s->last_event = head;
    }
    PQclear(r);
}

ssize_t alert_stream_read(void *arg, char *out, size_t max)
{
    struct alert_stream *s = arg;
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(out, s->buf + s->off, n);
            s->off += n;
            s->next_beat = deadline_after_ms(ALERT_STREAM_HEARTBEAT_MS);
            return (ssize_t)n;
        }
        if (ctx_done(s->hub->stop) || deadline_expired(s->end))
            return -1;
        if (deadline_expired(s->next_poll)) {
            poll_once(s);
            poll_changes(s);
            s->next_poll = deadline_after_ms(ALERT_STREAM_POLL_MS);
            continue;
        }
        if (deadline_expired(s->next_beat)) {
            append_str(s, ": keep-alive\n\n");
            continue;
        }
        /* Wakes at once when the console stops. */
        ctx_wait(s->hub->stop, deadline_min(s->next_poll, deadline_after_ms(100)));
    }
}
