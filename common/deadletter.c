#include "deadletter.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "log.h"
#include "pg.h"

/* Retry delays of a dead_letters row PostgreSQL did not take. */
#define RECORD_BACKOFF_MS     500
#define RECORD_BACKOFF_MAX_MS 10000

/* One record on its way; owned by whichever step is running. */
struct letter {
    struct letter *next; /* recorder queue */
    struct deadletter *d;
    deadletter_done_fn done;
    void *arg;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* -1: none */
    size_t size;          /* bytes of the record's value */
    char sha256[65];
    char *key; /* cut to truncate_bytes */
    size_t klen;
    char *head; /* the value's first truncate_bytes */
    size_t hlen;
    rd_kafka_headers_t *trunc; /* the truncated letter's headers (kept for the row) */
    char error_class[64];
    char error_message[512];
    char publish_error[256];
    bool stalled; /* counted in vigil_dead_letters_stalled */
};

struct deadletter {
    struct deadletter_config c;
    struct publisher *pub;

    pthread_mutex_t lock; /* guards the queue and the flags below */
    pthread_cond_t wake;
    struct letter *head, *tail; /* rows for PostgreSQL, in order */
    bool draining;              /* deadletter_close: finish the queue until the deadline */
    bool quit;                  /* stop now */
    bool closed;                /* no new letters */
    bool busy;                  /* the recorder holds a letter */
    pthread_t thread;

    struct metric *m_written;
    struct metric *m_truncated;
    struct metric *m_skipped;
    struct metric *m_stalled;
};

int deadletter_policy_parse(const char *s, enum deadletter_policy *out)
{
    if (s != NULL && strcmp(s, "skip") == 0)
        *out = DEADLETTER_SKIP;
    else if (s != NULL && strcmp(s, "stall") == 0)
        *out = DEADLETTER_STALL;
    else
        return -1;
    return 0;
}

static void letter_free(struct letter *l)
{
    if (l == NULL)
        return;
    free(l->key);
    free(l->head);
    if (l->trunc != NULL)
        rd_kafka_headers_destroy(l->trunc);
    free(l);
}

/* The letter is over: tell its owner once, free it. */
static void conclude(struct letter *l, enum deadletter_outcome o)
{
    struct deadletter *d = l->d;
    if (l->stalled)
        metric_gauge_add(d->m_stalled, -1);
    deadletter_done_fn done = l->done;
    void *arg = l->arg;
    letter_free(l);
    done(arg, o);
}

/* Texts that reach PostgreSQL and the log as text: printable ASCII only
 * (error messages may quote bytes of the record). */
static void copy_text(char *out, size_t outsz, const char *in)
{
    size_t i = 0;
    for (; in != NULL && in[i] != '\0' && i + 1 < outsz; i++) {
        unsigned char c = (unsigned char)in[i];
        out[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[i] = '\0';
}

/* ---- step 3, skip: the dead_letters row --------------------------------- */

static void record(struct letter *l)
{
    struct deadletter *d = l->d;
    pthread_mutex_lock(&d->lock);
    if (d->quit) { /* too late: only deadletter_close's thread could see it */
        pthread_mutex_unlock(&d->lock);
        conclude(l, DEADLETTER_ABANDONED);
        return;
    }
    l->next = NULL;
    if (d->tail != NULL)
        d->tail->next = l;
    else
        d->head = l;
    d->tail = l;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
}

/* BYTES as a JSON string when they are UTF-8, else {"hex": "..."}. */
static json_t *json_bytes(const void *bytes, size_t n)
{
    json_t *s = json_stringn(bytes, n);
    if (s != NULL)
        return s;
    static const char hex[] = "0123456789abcdef";
    char *buf = malloc(2 * n + 1);
    if (buf == NULL)
        return json_null();
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = hex[((const unsigned char *)bytes)[i] >> 4];
        buf[2 * i + 1] = hex[((const unsigned char *)bytes)[i] & 15];
    }
    buf[2 * n] = '\0';
    json_t *o = json_pack("{s:s}", "hex", buf);
    free(buf);
    return o;
}

/* "\x..." : a bytea literal passed as a text parameter. NULL if out of
 * memory. */
static char *bytea_hex(const char *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *out = malloc(2 * n + 3);
    if (out == NULL)
        return NULL;
    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = hex[(unsigned char)bytes[i] >> 4];
        out[3 + 2 * i] = hex[(unsigned char)bytes[i] & 15];
    }
    out[2 * n + 2] = '\0';
    return out;
}

static const char INSERT_SQL[] =
    "INSERT INTO dead_letters (consumer_group, source_topic, source_partition, "
    "source_offset, source_timestamp, dead_letter_topic, error_class, error_message, "
    "publish_error, original_size, original_sha256, head, record_key, headers) "
    "VALUES ($1, $2, $3::integer, $4::bigint, "
    "to_timestamp($5::bigint / 1000.0), $6, $7, $8, $9, $10::bigint, $11, $12::bytea, "
    "$13::bytea, $14::jsonb) "
    "ON CONFLICT (consumer_group, source_topic, source_partition, source_offset) DO UPDATE "
    "SET error_class = EXCLUDED.error_class, error_message = EXCLUDED.error_message, "
    "publish_error = EXCLUDED.publish_error, recorded_at = now(), "
    "times_recorded = dead_letters.times_recorded + 1";

/* Writes L's row. Returns 0, or -1 with errstr. */
static int insert_row(PGconn *conn, const struct deadletter *d, const struct letter *l,
                      char *errstr, size_t errsz)
{
    char part[16], off[32], ts[32], size[32];
    snprintf(part, sizeof part, "%d", (int)l->partition);
    snprintf(off, sizeof off, "%lld", (long long)l->offset);
    snprintf(ts, sizeof ts, "%lld", (long long)l->timestamp_ms);
    snprintf(size, sizeof size, "%zu", l->size);
    json_t *hdrs = json_array();
    const char *name;
    const void *value;
    size_t vsize;
    for (size_t i = 0;
         hdrs != NULL &&
         rd_kafka_header_get_all(l->trunc, i, &name, &value, &vsize) == RD_KAFKA_RESP_ERR_NO_ERROR;
         i++)
        json_array_append_new(
            hdrs, json_pack("{s:o,s:o}", "name", json_bytes(name, strlen(name)), "value",
                            value != NULL ? json_bytes(value, vsize) : json_null()));
    char *hjson = hdrs != NULL ? json_dumps(hdrs, JSON_COMPACT) : NULL;
    json_decref(hdrs);
    char *head = bytea_hex(l->head, l->hlen);
    char *key = l->key != NULL ? bytea_hex(l->key, l->klen) : NULL;
    int rc = -1;
    if (hjson == NULL || head == NULL || (l->key != NULL && key == NULL)) {
        snprintf(errstr, errsz, "out of memory");
        goto out;
    }
    const char *params[14] = {d->c.group,
                              d->c.source_topic,
                              part,
                              off,
                              l->timestamp_ms >= 0 ? ts : NULL,
                              d->c.topic != NULL ? d->c.topic : "",
                              l->error_class,
                              l->error_message,
                              l->publish_error,
                              size,
                              l->sha256,
                              head,
                              key,
                              hjson};
    rc = pg_command(conn, INSERT_SQL, 14, params, errstr, errsz);
out:
    free(hjson);
    free(head);
    free(key);
    return rc;
}

/* Takes the next row to write, waiting for one; NULL when it is time to
 * stop (D->quit, or draining with nothing left). */
static struct letter *next_row(struct deadletter *d)
{
    pthread_mutex_lock(&d->lock);
    while (d->head == NULL && !d->quit && !d->draining)
        pthread_cond_wait(&d->wake, &d->lock);
    struct letter *l = NULL;
    if (!d->quit && d->head != NULL) {
        l = d->head;
        d->head = l->next;
        if (d->head == NULL)
            d->tail = NULL;
        d->busy = true;
    }
    pthread_mutex_unlock(&d->lock);
    return l;
}

/* The recorder: one PostgreSQL connection, made when a row needs it; a
 * row that fails is retried (a fresh connection each time) until it is
 * written or the recorder is told to quit. */
static void *recorder(void *arg)
{
    struct deadletter *d = arg;
    PGconn *conn = NULL;
    struct letter *l;
    while ((l = next_row(d)) != NULL) {
        int64_t backoff = RECORD_BACKOFF_MS;
        bool written = false;
        for (;;) {
            char err[512];
            if (conn == NULL)
                conn = pg_connect(d->c.conninfo, err, sizeof err);
            if (conn != NULL && insert_row(conn, d, l, err, sizeof err) == 0) {
                written = true;
                break;
            }
            log_msg(LOG_WARN, d->c.component,
                    "could not record the skipped dead letter of partition %d offset %lld in "
                    "dead_letters, will retry in %lld ms: %s",
                    (int)l->partition, (long long)l->offset, (long long)backoff, err);
            PQfinish(conn);
            conn = NULL;
            pthread_mutex_lock(&d->lock);
            deadline_t until = deadline_after_ms(backoff);
            while (!d->quit && !deadline_expired(until))
                deadline_cond_wait(&d->wake, &d->lock, until);
            bool quit = d->quit;
            pthread_mutex_unlock(&d->lock);
            if (quit)
                break;
            backoff = backoff * 2 > RECORD_BACKOFF_MAX_MS ? RECORD_BACKOFF_MAX_MS : backoff * 2;
        }
        if (written) {
            metric_add(d->m_skipped, 1);
            log_msg(LOG_ERROR, d->c.component,
                    "partition %d offset %lld: dead letter skipped (%s: %s; %s could not take "
                    "it: %s); recorded in dead_letters with its size %zu and SHA-256 %s; the "
                    "record stays at its source offset while retention keeps it",
                    (int)l->partition, (long long)l->offset, l->error_class, l->error_message,
                    d->c.topic != NULL && d->c.topic[0] != '\0' ? d->c.topic
                                                                : "no dead-letter topic",
                    l->publish_error, l->size, l->sha256);
        }
        conclude(l, written ? DEADLETTER_SKIPPED : DEADLETTER_ABANDONED);
        pthread_mutex_lock(&d->lock);
        d->busy = false;
        pthread_cond_broadcast(&d->wake);
        pthread_mutex_unlock(&d->lock);
    }
    PQfinish(conn);
    return NULL;
}

/* ---- steps 1 and 2 ---------------------------------------------------------- */

static void on_truncated(void *arg, rd_kafka_resp_err_t err);

/* Produces the truncated letter (its headers are copied: L keeps them for
 * a row). UNTIL_ACKED: publisher_send (stall) rather than
 * publisher_send_or_fail. Returns 0, or -1 if the publisher is closing. */
static int send_truncated(struct letter *l, bool until_acked)
{
    struct deadletter *d = l->d;
    rd_kafka_headers_t *h = rd_kafka_headers_copy(l->trunc);
    if (until_acked)
        return publisher_send(d->pub, d->c.topic, l->key, l->klen, l->head, l->hlen, h,
                              on_truncated, l);
    return publisher_send_or_fail(d->pub, d->c.topic, l->key, l->klen, l->head, l->hlen, h,
                                  on_truncated, l);
}

/* Step 3: neither could be written. */
static void unwritable(struct letter *l)
{
    struct deadletter *d = l->d;
    bool no_topic = d->c.topic == NULL || d->c.topic[0] == '\0';
    if (d->c.policy == DEADLETTER_SKIP || no_topic) {
        record(l);
        return;
    }
    l->stalled = true;
    metric_gauge_add(d->m_stalled, 1);
    log_msg(LOG_ERROR, d->c.component,
            "partition %d offset %lld: %s refused even the truncated dead letter (%s); "
            "dlq_policy=stall: retrying until it is taken, the partition waits",
            (int)l->partition, (long long)l->offset, d->c.topic, l->publish_error);
    if (send_truncated(l, true) != 0)
        conclude(l, DEADLETTER_ABANDONED);
}

static void on_truncated(void *arg, rd_kafka_resp_err_t err)
{
    struct letter *l = arg;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        metric_add(l->d->m_written, 1);
        metric_add(l->d->m_truncated, 1);
        log_msg(LOG_WARN, l->d->c.component,
                "partition %d offset %lld: dead letter truncated to %zu of %zu bytes on %s",
                (int)l->partition, (long long)l->offset, l->hlen, l->size, l->d->c.topic);
        conclude(l, DEADLETTER_TRUNCATED);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__DESTROY) {
        conclude(l, DEADLETTER_ABANDONED);
        return;
    }
    char why[sizeof l->publish_error + 128];
    snprintf(why, sizeof why, "%s; truncated: %s", l->publish_error, rd_kafka_err2str(err));
    copy_text(l->publish_error, sizeof l->publish_error, why);
    unwritable(l);
}

static void on_whole(void *arg, rd_kafka_resp_err_t err)
{
    struct letter *l = arg;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        metric_add(l->d->m_written, 1);
        conclude(l, DEADLETTER_WRITTEN);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__DESTROY) {
        conclude(l, DEADLETTER_ABANDONED);
        return;
    }
    copy_text(l->publish_error, sizeof l->publish_error, rd_kafka_err2str(err));
    rd_kafka_header_add(l->trunc, "vigil.publish.error", -1, l->publish_error, -1);
    log_msg(LOG_WARN, l->d->c.component,
            "partition %d offset %lld: %s refused the dead letter of %zu bytes (%s): sending "
            "its first %zu bytes",
            (int)l->partition, (long long)l->offset, l->d->c.topic, l->size, l->publish_error,
            l->hlen);
    if (send_truncated(l, false) != 0)
        conclude(l, DEADLETTER_ABANDONED);
}

/* ---- interface -------------------------------------------------------------- */

int deadletter_send(struct deadletter *d, const rd_kafka_message_t *m, const char *error_class,
                    const char *error_message, deadletter_done_fn done, void *arg)
{
    pthread_mutex_lock(&d->lock);
    bool closed = d->closed;
    pthread_mutex_unlock(&d->lock);
    if (closed)
        return -1;
    struct letter *l = calloc(1, sizeof *l);
    if (l == NULL)
        return -1;
    l->d = d;
    l->done = done;
    l->arg = arg;
    l->partition = m->partition;
    l->offset = m->offset;
    rd_kafka_timestamp_type_t tstype;
    l->timestamp_ms = rd_kafka_message_timestamp(m, &tstype);
    const char *value = m->payload != NULL ? m->payload : "";
    l->size = m->payload != NULL ? m->len : 0;
    kafka_sha256_hex(value, l->size, l->sha256);
    size_t k = d->c.truncate_bytes;
    l->hlen = l->size < k ? l->size : k;
    l->head = malloc(l->hlen ? l->hlen : 1);
    if (m->key != NULL) {
        l->klen = m->key_len < k ? m->key_len : k;
        l->key = malloc(l->klen ? l->klen : 1);
    }
    if (l->head == NULL || (m->key != NULL && l->key == NULL)) {
        letter_free(l);
        return -1;
    }
    memcpy(l->head, value, l->hlen);
    if (l->key != NULL)
        memcpy(l->key, m->key, l->klen);
    copy_text(l->error_class, sizeof l->error_class, error_class);
    copy_text(l->error_message, sizeof l->error_message, error_message);
    struct kafka_dead_letter facts = {
        .source_topic = d->c.source_topic,
        .error_class = l->error_class,
        .error_message = l->error_message,
        .sha256 = l->sha256,
        .truncated = true,
        .header_budget = k,
    };
    l->trunc = kafka_dead_letter_headers(m, &facts);

    if (d->c.topic == NULL || d->c.topic[0] == '\0') {
        snprintf(l->publish_error, sizeof l->publish_error, "no dead-letter topic configured");
        rd_kafka_header_add(l->trunc, "vigil.publish.error", -1, l->publish_error, -1);
        unwritable(l);
        return 0;
    }
    facts.truncated = false;
    rd_kafka_headers_t *whole = kafka_dead_letter_headers(m, &facts);
    if (publisher_send_or_fail(d->pub, d->c.topic, m->key, m->key != NULL ? m->key_len : 0, value,
                               l->size, whole, on_whole, l) != 0) {
        letter_free(l);
        return -1;
    }
    return 0;
}

struct deadletter *deadletter_new(const struct deadletter_config *c, struct publisher *pub,
                                  struct metrics *m, char *errstr, size_t errstr_size)
{
    struct deadletter *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    d->c = *c;
    if (d->c.truncate_bytes == 0)
        d->c.truncate_bytes = DEADLETTER_TRUNCATE_DEFAULT;
    if (d->c.component == NULL)
        d->c.component = "deadletter";
    if (d->c.group == NULL)
        d->c.group = "";
    if (d->c.source_topic == NULL)
        d->c.source_topic = "";
    d->pub = pub;
    pthread_mutex_init(&d->lock, NULL);
    deadline_cond_init(&d->wake);
    d->m_written = metrics_counter(m, "vigil_dead_letters_total",
                                   "Dead letters acknowledged on the dead-letter topic (whole "
                                   "or truncated)",
                                   NULL);
    d->m_truncated = metrics_counter(m, "vigil_dead_letters_truncated_total",
                                     "Dead letters the topic took only truncated (first "
                                     "dlq_truncate_bytes, size and SHA-256 in headers)",
                                     NULL);
    d->m_skipped = metrics_counter(m, "vigil_dead_letters_skipped_total",
                                   "Records no dead letter could be written for, recorded in "
                                   "PostgreSQL's dead_letters and skipped (dlq_policy=skip)",
                                   NULL);
    d->m_stalled = metrics_gauge(m, "vigil_dead_letters_stalled",
                                 "Dead letters retried until the topic takes them "
                                 "(dlq_policy=stall): their partitions wait",
                                 NULL);
    if (pthread_create(&d->thread, NULL, recorder, d) != 0) {
        snprintf(errstr, errstr_size, "could not start the dead-letter recorder thread");
        pthread_mutex_destroy(&d->lock);
        pthread_cond_destroy(&d->wake);
        free(d);
        return NULL;
    }
    return d;
}

void deadletter_close(struct deadletter *d, deadline_t deadline)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->closed = true;
    d->draining = true;
    pthread_cond_broadcast(&d->wake);
    while ((d->head != NULL || d->busy) && !deadline_expired(deadline))
        deadline_cond_wait(&d->wake, &d->lock, deadline_min(deadline, deadline_after_ms(50)));
    d->quit = true;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    struct letter *l = d->head;
    d->head = d->tail = NULL;
    while (l != NULL) {
        struct letter *n = l->next;
        conclude(l, DEADLETTER_ABANDONED);
        l = n;
    }
    pthread_mutex_destroy(&d->lock);
    pthread_cond_destroy(&d->wake);
    free(d);
}

size_t deadletter_message_max(size_t max_record_bytes)
{
    return max_record_bytes > 0 ? max_record_bytes + DEADLETTER_HEADROOM : 0;
}
