/*
 * mllp_server: the HL7 v2 listener (contract in mllp_server.h).
 *
 * DESIGN
 *
 * A thread per connection, bounded by a semaphore, rather than an event
 * loop: an interface engine holds a few long-lived connections and sends
 * one message at a time on each, waiting for its ACK, so a connection is a
 * sequence of blocking steps (read a frame, map, wait for Kafka, answer) and
 * a thread makes that sequence the code. Hundreds of threads cost stack
 * address space, not CPU.
 *
 * The producer is one thread's (obs_producer.h: send and poll from one
 * thread), so connections hand their observations to the Kafka thread as a
 * job through a bounded channel and wait on the job. A job is reference
 * counted -- the connection and the Kafka thread each hold one -- because a
 * connection that gives up at its ACK deadline must not free what the Kafka
 * thread still reports deliveries into. The job owns a copy of its
 * observations for the same reason. librdkafka's message.timeout.ms is the
 * ACK deadline, so every observation is reported by then, ok or failed, and
 * no job is left waiting for a report that will not come.
 *
 * A fatal idempotent-producer error (librdkafka 2.0.2, DESIGN.md) fails
 * every job in flight (their connections answer AE and the engine resends)
 * and the Kafka thread builds a new producer.
 *
 * Snapshots (common/kit/snapshot.h) carry the facility mapping and the
 * enrolment table; a connection holds one version of each for one
 * message.
 */
#include "mllp_server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "chan.h"
#include "deadline.h"
#include "hl7.h"
#include "hl7_ack.h"
#include "hl7_enrol.h"
#include "hl7_facility.h"
#include "hl7_map.h"
#include "hl7_redact.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "mllp.h"
#include "mllp_io.h"
#include "obs_producer.h"
#include "pg.h"
#include "publish.h"
#include "sem.h"
#include "snapshot.h"
#include "waitgroup.h"

#define COMPONENT "mllp"
#define FAC_METRICS_MAX 256
#define JOBS_CAP 1024
#define READ_CHUNK 65536

/* ---- metrics ------------------------------------------------------------ */

/* The series of one facility, registered once and cached (the hot path
 * must not take the registry's lock per message). */
struct fac_metrics {
    char name[HL7_FACILITY_MAX + 1];
    struct metric *acks[3]; /* AA AE AR */
    struct metric *not_enrolled, *observations, *ack_seconds;
    struct metric *skip_unmapped, *skip_not_final, *skip_specimen;
};

struct server {
    const struct mllp_server_options *opt;
    struct ctx *stop;
    int lfd;
    int wake[2]; /* written once at shutdown: every connection's poll sees it */
    atomic_bool stopping;
    struct vsem *slots;
    struct wg *conns;
    struct wg *inner; /* the Kafka and enrolment threads */
    struct snapshot *fac_snap, *enrol_snap;
    atomic_bool enrol_loaded;
    struct chan *jobs;
    struct publisher *dlq;
    struct metrics *m;
    struct httpd *httpd;
    struct mllp_tls *tls;
    atomic_uint_fast64_t ack_seq;
    int64_t started_ms;
    atomic_bool producer_ok;
    struct obs_producer *first_producer; /* made at start, then the Kafka thread's */
    struct hl7_map_options mopt;

    pthread_mutex_t fm_mu;
    struct fac_metrics *fm[FAC_METRICS_MAX + 1];
    size_t n_fm;

    struct metric *conn_open, *conn_total, *conn_refused, *conn_idle, *frames_oversize,
        *frames_junk, *frames_abandoned, *parse_errors, *reloads_ok, *reloads_failed,
        *enrolments, *enrol_loads_failed, *producer_rebuilds, *dead_letters, *kafka_failures;
};

static const double ack_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5, 10};

static struct fac_metrics *fac_metrics_new(struct server *s, const char *name)
{
    struct fac_metrics *f = calloc(1, sizeof *f);
    if (f == NULL)
        return NULL;
    snprintf(f->name, sizeof f->name, "%s", name);
    char esc[2 * HL7_FACILITY_MAX + 8], l[512];
    metrics_label_escape(name, esc, sizeof esc);
    static const char *const codes[] = {"AA", "AE", "AR"};
    for (int i = 0; i < 3; i++) {
        snprintf(l, sizeof l, "facility=\"%s\",code=\"%s\"", esc, codes[i]);
        f->acks[i] = metrics_counter(s->m, "vigil_mllp_acks_total",
                                     "Messages answered, by facility and ACK code", l);
    }
    snprintf(l, sizeof l, "facility=\"%s\"", esc);
    f->not_enrolled = metrics_counter(s->m, "vigil_mllp_not_enrolled_total",
                                      "Messages of patients not enrolled: dropped", l);
    f->observations = metrics_counter(s->m, "vigil_mllp_observations_total",
                                      "Observations acknowledged by Kafka", l);
    f->ack_seconds = metrics_histogram(s->m, "vigil_mllp_ack_seconds",
                                       "From a whole frame received to its ACK written", l,
                                       ack_bounds, sizeof ack_bounds / sizeof ack_bounds[0]);
    static const char *const reasons[] = {"unmapped_code", "not_final", "specimen"};
    struct metric **skips[] = {&f->skip_unmapped, &f->skip_not_final, &f->skip_specimen};
    for (int i = 0; i < 3; i++) {
        snprintf(l, sizeof l, "facility=\"%s\",reason=\"%s\"", esc, reasons[i]);
        *skips[i] = metrics_counter(s->m, "vigil_mllp_obx_skipped_total",
                                    "OBX not forwarded on purpose, by reason", l);
    }
    return f;
}

/* The series for facility NAME: its own when the facility is known (in
 * the facility mapping or the enrolment table), else "other", so a sender
 * cannot grow the label set. */
static struct fac_metrics *fac_metrics(struct server *s, const char *name, bool known)
{
    if (!known || name[0] == '\0')
        name = "other";
    pthread_mutex_lock(&s->fm_mu);
    struct fac_metrics *f = NULL;
    for (int pass = 0; pass < 2 && f == NULL; pass++) {
        for (size_t i = 0; i < s->n_fm; i++)
            if (strcmp(s->fm[i]->name, name) == 0) {
                f = s->fm[i];
                break;
            }
        /* The last slot is kept for "other". */
        if (f == NULL && (s->n_fm < FAC_METRICS_MAX || strcmp(name, "other") == 0) &&
            s->n_fm < FAC_METRICS_MAX + 1) {
            f = fac_metrics_new(s, name);
            if (f != NULL)
                s->fm[s->n_fm++] = f;
        }
        name = "other";
    }
    pthread_mutex_unlock(&s->fm_mu);
    return f;
}

static void server_metrics(struct server *s)
{
    struct metrics *m = s->m;
    s->conn_open = metrics_gauge(m, "vigil_mllp_connections", "Open MLLP connections", NULL);
    s->conn_total = metrics_counter(m, "vigil_mllp_connections_total", "Connections accepted", NULL);
    s->conn_refused = metrics_counter(m, "vigil_mllp_connections_refused_total",
                                      "Connections closed at once: max_connections reached", NULL);
    s->conn_idle = metrics_counter(m, "vigil_mllp_connections_idle_closed_total",
                                   "Connections closed after idle_timeout", NULL);
    s->frames_oversize = metrics_counter(m, "vigil_mllp_frames_oversize_total",
                                         "Frames longer than max_message_bytes (AR)", NULL);
    s->frames_junk = metrics_counter(m, "vigil_mllp_junk_bytes_total",
                                     "Bytes outside MLLP frames, skipped", NULL);
    s->frames_abandoned = metrics_counter(m, "vigil_mllp_frames_abandoned_total",
                                          "Frames cut short by a new start block", NULL);
    s->parse_errors = metrics_counter(m, "vigil_mllp_parse_errors_total",
                                      "Frames that are not HL7 v2 ER7 (AR)", NULL);
    s->reloads_ok = metrics_counter(m, "vigil_mllp_facilities_reloads_total",
                                    "Facility mapping reloads", "result=\"ok\"");
    s->reloads_failed = metrics_counter(m, "vigil_mllp_facilities_reloads_total",
                                        "Facility mapping reloads", "result=\"refused\"");
    s->enrolments = metrics_gauge(m, "vigil_mllp_enrolments", "Active enrolments loaded", NULL);
    s->enrol_loads_failed = metrics_counter(m, "vigil_mllp_enrolment_loads_failed_total",
                                            "Failed reads of hl7_enrolments", NULL);
    s->producer_rebuilds = metrics_counter(m, "vigil_mllp_producer_rebuilds_total",
                                           "Kafka producers rebuilt after a fatal error", NULL);
    s->dead_letters = metrics_counter(m, "vigil_mllp_dead_letters_total",
                                      "Messages sent to the dead-letter topic", NULL);
    s->kafka_failures = metrics_counter(m, "vigil_mllp_kafka_failures_total",
                                        "Messages answered AE because Kafka did not acknowledge",
                                        NULL);
}

/* ---- jobs: a message's observations on their way to Kafka --------------- */

struct job {
    atomic_int refs;
    atomic_size_t left;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, failed;
    char why[256];
    size_t n;
    struct observation obs[];
};

static struct job *job_new(const struct observation *obs, size_t n)
{
    struct job *j = calloc(1, sizeof *j + n * sizeof *obs);
    if (j == NULL)
        return NULL;
    if (pthread_mutex_init(&j->mu, NULL) != 0) {
        free(j);
        return NULL;
    }
    if (deadline_cond_init(&j->cv) != 0) {
        pthread_mutex_destroy(&j->mu);
        free(j);
        return NULL;
    }
    atomic_init(&j->refs, 2);
    atomic_init(&j->left, n);
    j->n = n;
    memcpy(j->obs, obs, n * sizeof *obs);
    return j;
}

static void job_unref(struct job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

/* One observation of J reported (OK or not). The last report completes
 * the job and drops the Kafka side's reference. */
static void job_report(struct job *j, bool ok, const char *why)
{
    if (!ok) {
        pthread_mutex_lock(&j->mu);
        if (!j->failed) {
            j->failed = true;
            snprintf(j->why, sizeof j->why, "%s", why ? why : "delivery failed");
        }
        pthread_mutex_unlock(&j->mu);
    }
    if (atomic_fetch_sub(&j->left, 1) != 1)
        return;
    pthread_mutex_lock(&j->mu);
    j->done = true;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
}

static void on_delivery(void *arg, uint64_t token, bool ok, const char *err)
{
    (void)arg;
    job_report((struct job *)(uintptr_t)token, ok, err);
}

static struct obs_producer *producer_new(struct server *s, char *errstr, size_t errstr_size)
{
    /* The ACK deadline bounds each delivery, so a job always completes. */
    struct obs_producer_options po = {
        .cfg = s->opt->cfg,
        .bootstrap = s->opt->bootstrap,
        .topic = s->opt->topic,
        .client_id = "vigil-mllp",
        .max_in_flight = s->opt->max_in_flight,
        .on_delivery = on_delivery,
        .arg = s,
    };
    return obs_producer_new(&po, errstr, errstr_size);
}

/* Sends every observation of J. On a fatal producer error the rest of J
 * fails and *FATAL is set. */
static void job_send(struct obs_producer *p, struct job *j, bool *fatal)
{
    char why[512];
    /* The last report may free J (inside a poll of the last send), so the
     * loop reads its length once, before any report can come. */
    size_t n = j->n;
    for (size_t i = 0; i < n; i++) {
        if (*fatal) {
            job_report(j, false, "the Kafka producer failed");
            continue;
        }
        switch (obs_producer_send(p, &j->obs[i], (uint64_t)(uintptr_t)j, NULL, why, sizeof why)) {
        case OBS_SEND_OK: break;
        case OBS_SEND_INVALID: job_report(j, false, why); break;
        case OBS_SEND_CANCELLED:
        case OBS_SEND_FATAL:
            *fatal = true;
            job_report(j, false, why);
            break;
        }
    }
}

/* The Kafka thread: takes jobs, sends, serves delivery reports. */
static void kafka_main(void *arg)
{
    struct server *s = arg;
    char err[1024];
    struct obs_producer *p = s->first_producer;
    s->first_producer = NULL;
    atomic_store(&s->producer_ok, p != NULL);
    for (;;) {
        bool fatal = p == NULL || obs_producer_fatal(p)[0] != '\0';
        if (fatal && p != NULL) {
            log_msg(LOG_ERROR, COMPONENT, "rebuilding the Kafka producer: %s",
                    obs_producer_fatal(p));
            obs_producer_destroy(p); /* reports everything in flight as failed */
            p = NULL;
            metric_add(s->producer_rebuilds, 1);
        }
        if (p == NULL) {
            p = producer_new(s, err, sizeof err);
            atomic_store(&s->producer_ok, p != NULL);
            if (p == NULL) {
                log_msg(LOG_ERROR, COMPONENT, "%s", err);
                ctx_wait(s->stop, deadline_after_ms(1000));
            }
        }
        void *item;
        struct obs_producer_stats st = {0};
        if (p != NULL)
            obs_producer_stats(p, &st);
        enum chan_status cs = st.in_flight > 0 ? chan_try_recv(s->jobs, &item)
                                               : chan_recv(s->jobs, &item, deadline_after_ms(100));
        if (cs == CHAN_OK) {
            bool f = p == NULL;
            job_send(p, item, &f);
            continue;
        }
        if (cs == CHAN_END) {
            if (p != NULL && obs_producer_flush(p, deadline_after_ms(s->opt->ack_timeout_ms + 1000)) != 0)
                log_msg(LOG_WARN, COMPONENT, "Kafka deliveries still outstanding at shutdown");
            obs_producer_destroy(p);
            p = NULL;
            break;
        }
        if (p != NULL)
            obs_producer_poll(p, st.in_flight > 0 ? 1 : 0);
    }
    obs_producer_destroy(p);
}

/* Hands OBS to Kafka and waits for every acknowledgement until DEADLINE.
 * Returns 0, or -1 with the reason in WHY. */
static int publish(struct server *s, const struct observation *obs, size_t n, deadline_t deadline,
                   char *why, size_t whysz)
{
    struct job *j = job_new(obs, n);
    if (j == NULL) {
        snprintf(why, whysz, "out of memory");
        return -1;
    }
    if (chan_send(s->jobs, j, deadline) != CHAN_OK) {
        snprintf(why, whysz, "the Kafka queue stayed full until the ACK deadline");
        job_unref(j);
        job_unref(j);
        return -1;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->done && !deadline_expired(deadline))
        deadline_cond_wait(&j->cv, &j->mu, deadline);
    bool done = j->done, failed = j->failed;
    if (failed)
        snprintf(why, whysz, "%s", j->why);
    pthread_mutex_unlock(&j->mu);
    job_unref(j);
    if (!done) {
        snprintf(why, whysz, "Kafka did not acknowledge within %d ms", s->opt->ack_timeout_ms);
        return -1;
    }
    return failed ? -1 : 0;
}

/* ---- dead letters --------------------------------------------------------- */

struct dlq_wait {
    atomic_int refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    rd_kafka_resp_err_t err;
};

static void dlq_unref(struct dlq_wait *w)
{
    if (atomic_fetch_sub(&w->refs, 1) != 1)
        return;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}

static void dlq_done(void *arg, rd_kafka_resp_err_t err)
{
    struct dlq_wait *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    w->err = err;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    dlq_unref(w);
}

static void header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

/* Sends the redacted copy of the message to the dead-letter topic and
 * waits for its acknowledgement until DEADLINE (best effort: the ACK goes
 * back either way). Transient failures are retried by the publisher; a
 * permanent one (the topic missing or refusing vigil) is logged and the
 * dead letter dropped: the sender still holds the message it was refused. */
static void dead_letter(struct server *s, const char *value, size_t vlen, const char *facility,
                        const char *control_id, enum hl7_ack_code code, const char *cls,
                        const char *msg, const char *peer, deadline_t deadline)
{
    struct dlq_wait *w = calloc(1, sizeof *w);
    if (w == NULL || pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        log_msg(LOG_ERROR, COMPONENT, "could not dead-letter a message: out of memory");
        return;
    }
    deadline_cond_init(&w->cv);
    atomic_init(&w->refs, 2);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    header(h, "vigil.error.class", cls);
    header(h, "vigil.error.message", msg);
    header(h, "vigil.hl7.facility", facility);
    header(h, "vigil.hl7.control_id", control_id);
    header(h, "vigil.hl7.ack", hl7_ack_code_name(code));
    header(h, "vigil.source", "mllp");
    header(h, "vigil.source.peer", peer);
    if (publisher_send_or_fail(s->dlq, s->opt->dlq_topic, facility, strlen(facility), value,
                               vlen, h, dlq_done, w) != 0) {
        dlq_unref(w);
        dlq_unref(w);
        return;
    }
    metric_add(s->dead_letters, 1);
    pthread_mutex_lock(&w->mu);
    while (!w->done && !deadline_expired(deadline))
        deadline_cond_wait(&w->cv, &w->mu, deadline);
    bool done = w->done;
    rd_kafka_resp_err_t err = w->err;
    pthread_mutex_unlock(&w->mu);
    if (!done)
        log_msg(LOG_WARN, COMPONENT,
                "dead letter for facility %s control id %s not acknowledged yet; the publisher "
                "keeps retrying",
                facility, control_id);
    else if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_msg(LOG_ERROR, COMPONENT,
                "could not dead-letter the message of facility %s control id %s to %s: %s",
                facility, control_id, s->opt->dlq_topic, rd_kafka_err2str(err));
    dlq_unref(w);
}

/* ---- one connection ------------------------------------------------------- */

struct conn {
    struct server *s;
    struct mllp_io io;
    char peer[80];
    struct mllp_framer *framer;
    struct hl7_msg *msg;
    struct hl7_mapped *mapped;
    struct fac_metrics *fm;
    char *ack;    /* HL7_ACK_MAX + 3 */
    char *redact; /* max_message_bytes + 1 */
};

/* The answer to one frame. */
struct answer {
    enum hl7_ack_code code;
    struct hl7_error err[HL7_MAX_ERRORS + 1];
    int n_err;
    bool dlq;           /* dead-letter the message */
    bool parsed;
    bool mapped;        /* c->mapped describes this message */
    size_t forwarded;   /* observations Kafka acknowledged */
    const char *facility;
    bool known;         /* facility is in the mapping or the enrolment */
};

static void answer_error(struct answer *a, enum hl7_ack_code code, int hl7code, const char *cls,
                         const char *text)
{
    a->code = code;
    if (a->n_err >= HL7_MAX_ERRORS + 1)
        return;
    struct hl7_error *e = &a->err[a->n_err++];
    memset(e, 0, sizeof *e);
    e->code = hl7code;
    snprintf(e->cls, sizeof e->cls, "%s", cls);
    /* cut to the ERR segment's room on purpose (memcpy: -O3's
     * -Wformat-truncation refuses a snprintf that may cut) */
    size_t n = strnlen(text, sizeof e->text - 1);
    memcpy(e->text, text, n);
    e->text[n] = '\0';
}

/* Maps a parsed message and publishes what it maps to. */
static void process(struct conn *c, struct answer *a, deadline_t deadline)
{
    struct server *s = c->s;
    struct hl7_facilities *fac = snapshot_acquire(s->fac_snap, NULL);
    struct hl7_enrol *en = snapshot_acquire(s->enrol_snap, NULL);
    struct hl7_mapped *r = c->mapped;
    if (!atomic_load(&s->enrol_loaded)) {
        answer_error(a, HL7_AE, 207, "enrolment_unavailable",
                     "the enrolment table is not loaded yet (PostgreSQL unreachable); resend later");
        goto out;
    }
    a->code = hl7_map_message(c->msg, fac, en, &s->mopt, r);
    a->mapped = true;
    a->facility = r->facility;
    a->known = hl7_facilities_find(fac, r->facility) != NULL ||
               hl7_enrol_knows_facility(en, r->facility);
    for (int i = 0; i < r->n_err; i++)
        a->err[a->n_err++] = r->err[i];
    a->dlq = a->code != HL7_AA;
    if (r->n_obs > 0) {
        char why[300];
        if (publish(s, r->obs, r->n_obs, deadline, why, sizeof why) != 0) {
            char text[400];
            snprintf(text, sizeof text, "could not publish to Kafka: %s; resend", why);
            answer_error(a, HL7_AE, 207, "kafka_unavailable", text);
            a->dlq = false; /* the engine holds the message and resends it */
            metric_add(s->kafka_failures, 1);
            log_msg(LOG_WARN, COMPONENT, "facility %s: %s", r->facility, text);
        } else {
            a->forwarded = r->n_obs;
        }
    }
out:
    snapshot_release(s->enrol_snap, en);
    snapshot_release(s->fac_snap, fac);
}

static void count(struct conn *c, const struct answer *a, double seconds)
{
    struct server *s = c->s;
    const char *name = a->known ? a->facility : "other";
    if (c->fm == NULL || strcmp(c->fm->name, name) != 0)
        c->fm = fac_metrics(s, a->facility ? a->facility : "", a->known);
    struct fac_metrics *f = c->fm;
    if (f == NULL)
        return;
    metric_add(f->acks[a->code], 1);
    metric_observe(f->ack_seconds, seconds);
    metric_add(f->observations, a->forwarded);
    if (!a->mapped)
        return;
    const struct hl7_mapped *r = c->mapped;
    if (!r->enrolled && a->code == HL7_AA)
        metric_add(f->not_enrolled, 1);
    metric_add(f->skip_unmapped, r->skipped_unmapped);
    metric_add(f->skip_not_final, r->skipped_not_final);
    metric_add(f->skip_specimen, r->skipped_specimen);
}

/* Handles one frame: parse, map, publish, dead-letter, answer. Returns 0,
 * or -1 when the ACK could not be written (the connection is done). */
static int handle_frame(struct conn *c, const char *data, size_t len, bool oversize)
{
    struct server *s = c->s;
    deadline_t t0 = deadline_now();
    deadline_t deadline = deadline_after_ms(s->opt->ack_timeout_ms);
    struct answer a = {.code = HL7_AA};
    char why[512], text[600];
    if (hl7_parse(c->msg, data, len, why, sizeof why) != 0) {
        snprintf(text, sizeof text, "not an HL7 v2 message: %s", why);
        answer_error(&a, HL7_AR, 100, "not_hl7", text);
        metric_add(s->parse_errors, 1);
        a.dlq = true;
    } else {
        a.parsed = true;
        if (oversize) {
            snprintf(text, sizeof text, "message longer than %zu bytes (max_message_bytes)",
                     s->opt->max_message_bytes);
            answer_error(&a, HL7_AR, 207, "message_too_large", text);
            metric_add(s->frames_oversize, 1);
            a.dlq = true;
            hl7_get(c->msg, 0, 4, 1, 1, 1, c->mapped->facility, sizeof c->mapped->facility);
            a.facility = c->mapped->facility;
        } else {
            process(c, &a, deadline);
        }
    }
    char control_id[200] = "";
    if (a.parsed)
        hl7_get(c->msg, 0, 10, 1, 1, 1, control_id, sizeof control_id);
    if (a.dlq) {
        size_t vlen = 0;
        if (a.parsed)
            vlen = hl7_redact(c->msg, c->redact, s->opt->max_message_bytes + 1);
        dead_letter(s, c->redact, vlen, a.facility ? a.facility : "", control_id, a.code,
                    a.err[0].cls, a.err[0].text, c->peer, deadline);
    }
    char ackid[40];
    snprintf(ackid, sizeof ackid, "V%" PRIx64 "-%" PRIu64, (uint64_t)s->started_ms,
             (uint64_t)atomic_fetch_add(&s->ack_seq, 1));
    /* Written in place between the MLLP start and end bytes. */
    size_t n = hl7_ack_write(a.parsed ? c->msg : NULL, a.code, a.err, a.n_err, ackid,
                             kafka_now_ms(), c->ack + 1, HL7_ACK_MAX);
    c->ack[0] = MLLP_VT;
    c->ack[n + 1] = MLLP_FS;
    c->ack[n + 2] = MLLP_CR;
    int rc = mllp_io_write(&c->io, c->ack, n + 3);
    count(c, &a, (double)(deadline_now() - t0) / 1e9);
    if (a.code != HL7_AA)
        log_msg(LOG_WARN, COMPONENT, "facility %s control id %s from %s: %s (%s, %d error%s)",
                a.facility ? a.facility : "?", control_id, c->peer, hl7_ack_code_name(a.code),
                a.err[0].text, a.n_err, a.n_err == 1 ? "" : "s");
    return rc;
}

static void conn_free(struct conn *c)
{
    if (c == NULL)
        return;
    mllp_io_close(&c->io);
    mllp_framer_destroy(c->framer);
    hl7_msg_destroy(c->msg);
    hl7_mapped_destroy(c->mapped);
    free(c->ack);
    free(c->redact);
    free(c);
}

/* Waits until the connection is readable. Returns 1 readable, 0 idle
 * timeout, -1 shutting down. */
static int wait_readable(struct conn *c)
{
    if (mllp_io_pending(&c->io))
        return 1;
    struct pollfd p[2] = {{c->io.fd, POLLIN, 0}, {c->s->wake[0], POLLIN, 0}};
    int timeout = c->s->opt->idle_timeout_s * 1000;
    for (;;) {
        int r = poll(p, 2, timeout);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        if (p[1].revents != 0 && !mllp_framer_in_frame(c->framer))
            return -1;
        if (p[0].revents != 0)
            return 1;
        if (p[1].revents != 0)
            return -1; /* shutting down mid-frame: the engine resends it */
    }
}

static void conn_main(void *arg)
{
    struct conn *c = arg;
    struct server *s = c->s;
    char errbuf[256];
    uint64_t junk = 0, abandoned = 0;
    if (mllp_io_start(&c->io, c->io.fd, s->tls, errbuf, sizeof errbuf) != 0) {
        log_msg(LOG_WARN, COMPONENT, "connection from %s: %s", c->peer, errbuf);
        goto out;
    }
    log_msg(LOG_INFO, COMPONENT, "connection from %s%s", c->peer, s->tls ? " (TLS)" : "");
    uint8_t *buf = malloc(READ_CHUNK);
    if (buf == NULL)
        goto out;
    for (;;) {
        int w = wait_readable(c);
        if (w == 0) {
            metric_add(s->conn_idle, 1);
            log_msg(LOG_INFO, COMPONENT, "closing idle connection from %s", c->peer);
            break;
        }
        if (w < 0)
            break;
        ssize_t got = mllp_io_read(&c->io, buf, READ_CHUNK);
        if (got <= 0)
            break;
        size_t off = 0;
        bool failed = false;
        while (off < (size_t)got && !failed) {
            size_t used;
            enum mllp_event ev = mllp_framer_feed(c->framer, buf + off, (size_t)got - off, &used);
            off += used;
            if (ev == MLLP_NEED_MORE)
                break;
            size_t flen;
            const char *frame = mllp_framer_frame(c->framer, &flen);
            failed = handle_frame(c, frame, flen, ev == MLLP_OVERSIZE) != 0;
        }
        metric_add(s->frames_junk, mllp_framer_junk(c->framer) - junk);
        junk = mllp_framer_junk(c->framer);
        metric_add(s->frames_abandoned, mllp_framer_abandoned(c->framer) - abandoned);
        abandoned = mllp_framer_abandoned(c->framer);
        if (failed)
            break;
    }
    free(buf);
    log_msg(LOG_INFO, COMPONENT, "connection from %s closed", c->peer);
out:
    conn_free(c);
    metric_gauge_add(s->conn_open, -1);
    vsem_release(s->slots);
}

static struct conn *conn_new(struct server *s, int fd, const char *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->s = s;
    c->io.fd = fd;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->framer = mllp_framer_new(s->opt->max_message_bytes);
    c->msg = hl7_msg_new();
    c->mapped = hl7_mapped_new();
    c->ack = malloc(HL7_ACK_MAX + 3);
    c->redact = malloc(s->opt->max_message_bytes + 1);
    if (c->framer == NULL || c->msg == NULL || c->mapped == NULL || c->ack == NULL ||
        c->redact == NULL) {
        c->io.fd = -1;
        conn_free(c);
        return NULL;
    }
    return c;
}

/* ---- enrolment ------------------------------------------------------------ */

static void enrol_publish(struct server *s, struct hl7_enrol *e)
{
    metric_set(s->enrolments, (double)hl7_enrol_count(e));
    snapshot_publish(s->enrol_snap, e);
    if (!atomic_exchange(&s->enrol_loaded, true))
        log_msg(LOG_INFO, COMPONENT, "enrolment loaded: %zu active enrolments",
                hl7_enrol_count(e));
}

/* Connects, LISTENs and loads. Returns the connection or NULL. */
static PGconn *enrol_connect(struct server *s, char *err, size_t errsz)
{
    PGconn *conn = pg_connect(s->opt->conninfo, err, errsz);
    if (conn == NULL)
        return NULL;
    if (pg_command(conn, "LISTEN vigil_hl7_enrolments", 0, NULL, err, errsz) != 0) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

static int enrol_reload(struct server *s, PGconn *conn, char *err, size_t errsz)
{
    size_t skipped = 0;
    struct hl7_enrol *e = hl7_enrol_load(conn, &skipped, err, errsz);
    if (e == NULL)
        return -1;
    if (skipped > 0)
        log_msg(LOG_WARN, COMPONENT, "hl7_enrolments: %zu rows with unusable values skipped",
                skipped);
    enrol_publish(s, e);
    return 0;
}

static void enrol_main(void *arg)
{
    struct server *s = arg;
    PGconn *conn = NULL;
    char err[512];
    int backoff = 500;
    deadline_t next = 0;
    while (!ctx_done(s->stop)) {
        if (conn == NULL) {
            conn = enrol_connect(s, err, sizeof err);
            if (conn == NULL || enrol_reload(s, conn, err, sizeof err) != 0) {
                log_msg(LOG_WARN, COMPONENT, "enrolment: %s (retrying in %d ms)", err, backoff);
                metric_add(s->enrol_loads_failed, 1);
                PQfinish(conn);
                conn = NULL;
                ctx_wait(s->stop, deadline_after_ms(backoff));
                backoff = backoff < 16000 ? backoff * 2 : 30000;
                continue;
            }
            backoff = 500;
            next = deadline_after_ms((int64_t)s->opt->enrol_refresh_s * 1000);
        }
        struct pollfd p = {PQsocket(conn), POLLIN, 0};
        int r = poll(&p, 1, 250);
        bool reload = deadline_expired(next);
        if (r > 0) {
            if (PQconsumeInput(conn) != 1) {
                log_msg(LOG_WARN, COMPONENT, "enrolment: lost PostgreSQL: %s",
                        PQerrorMessage(conn));
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            PGnotify *n;
            while ((n = PQnotifies(conn)) != NULL) {
                reload = true;
                PQfreemem(n);
            }
        }
        if (reload) {
            if (enrol_reload(s, conn, err, sizeof err) != 0) {
                log_msg(LOG_WARN, COMPONENT, "enrolment: %s", err);
                metric_add(s->enrol_loads_failed, 1);
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            next = deadline_after_ms((int64_t)s->opt->enrol_refresh_s * 1000);
        }
    }
    PQfinish(conn);
}

/* ---- facility mapping ------------------------------------------------------ */

struct file_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

static void file_id_of(const char *path, struct file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof *id);
    if (stat(path, &st) == 0) {
        id->dev = st.st_dev;
        id->ino = st.st_ino;
        id->size = st.st_size;
        id->mtime = st.st_mtim;
    }
}

static bool file_id_eq(const struct file_id *a, const struct file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static void facilities_reload(struct server *s)
{
    char err[1024];
    struct hl7_facilities *f = hl7_facilities_load(s->opt->facilities, err, sizeof err);
    if (f == NULL) {
        metric_add(s->reloads_failed, 1);
        log_msg(LOG_ERROR, COMPONENT, "facility mapping refused, the old one stays: %s", err);
        return;
    }
    metric_add(s->reloads_ok, 1);
    log_msg(LOG_INFO, COMPONENT, "facility mapping reloaded: %zu facilities",
            hl7_facilities_count(f));
    snapshot_publish(s->fac_snap, f);
}

/* ---- listening ------------------------------------------------------------- */

static int listen_on(const char *addr, int *port, char *errstr, size_t errstr_size)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr || (size_t)(colon - addr) >= sizeof host) {
        snprintf(errstr, errstr_size, "listen address '%s' is not HOST:PORT", addr);
        return -1;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *h = host;
    if (h[0] == '[' && h[strlen(h) - 1] == ']') {
        h[strlen(h) - 1] = '\0';
        h++;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(h, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(errstr, errstr_size, "could not resolve listen address %s: %s", addr,
                 gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 256) != 0) {
        snprintf(errstr, errstr_size, "could not listen on %s: %s", addr, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void peer_name(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outsz)
{
    char host[64] = "?", serv[16] = "?";
    getnameinfo((const struct sockaddr *)ss, len, host, sizeof host, serv, sizeof serv,
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, outsz, "%s:%s", host, serv);
}

static void accept_one(struct server *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(s->lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    char peer[80];
    peer_name(&ss, sl, peer, sizeof peer);
    if (!vsem_try_acquire(s->slots)) {
        metric_add(s->conn_refused, 1);
        log_msg(LOG_WARN, COMPONENT, "refusing connection from %s: %d connections open (max)",
                peer, s->opt->max_connections);
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* Reads wait at most the idle timeout (a TLS record cut in the middle);
     * an ACK write waits at most 10 s: a peer that does not read its ACKs
     * for that long is dropped rather than holding a thread, also past the
     * shutdown grace. */
    struct timeval rtv = {.tv_sec = s->opt->idle_timeout_s}, wtv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rtv, sizeof rtv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wtv, sizeof wtv);
    struct conn *c = conn_new(s, fd, peer);
    char err[256];
    if (c == NULL || wg_go(s->conns, conn_main, c, err, sizeof err) != 0) {
        log_msg(LOG_ERROR, COMPONENT, "could not serve connection from %s: %s", peer,
                c == NULL ? "out of memory" : err);
        if (c != NULL)
            conn_free(c);
        else
            close(fd);
        vsem_release(s->slots);
        return;
    }
    metric_add(s->conn_total, 1);
    metric_gauge_add(s->conn_open, 1);
}

static bool ready(void *arg, char *why, size_t whysz)
{
    struct server *s = arg;
    if (atomic_load(&s->stopping)) {
        snprintf(why, whysz, "shutting down");
        return false;
    }
    if (!atomic_load(&s->enrol_loaded)) {
        snprintf(why, whysz, "enrolment table not loaded (PostgreSQL)");
        return false;
    }
    if (!atomic_load(&s->producer_ok)) {
        snprintf(why, whysz, "no Kafka producer");
        return false;
    }
    return true;
}

static void fac_destroy(void *p)
{
    hl7_facilities_destroy(p);
}

static void enrol_destroy(void *p)
{
    hl7_enrol_destroy(p);
}

static void accept_loop(struct server *s, atomic_bool *reload)
{
    struct file_id fid = {0};
    if (s->opt->facilities && s->opt->facilities[0])
        file_id_of(s->opt->facilities, &fid);
    deadline_t next_check = deadline_after_ms(1000);
    while (!ctx_done(s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        int r = poll(&p, 1, 250);
        if (r > 0)
            accept_one(s);
        bool want = reload != NULL && atomic_exchange(reload, false);
        if (s->opt->facilities && s->opt->facilities[0] && (want || deadline_expired(next_check))) {
            struct file_id now;
            file_id_of(s->opt->facilities, &now);
            if (want || !file_id_eq(&now, &fid)) {
                fid = now;
                facilities_reload(s);
            }
            next_check = deadline_after_ms(1000);
        }
    }
}

static int server_start(struct server *s, char *errstr, size_t errstr_size)
{
    const struct mllp_server_options *opt = s->opt;
    struct hl7_facilities *f = opt->facilities && opt->facilities[0]
                                   ? hl7_facilities_load(opt->facilities, errstr, errstr_size)
                                   : hl7_facilities_empty();
    if (f == NULL)
        return -1;
    s->fac_snap = snapshot_new(f, fac_destroy);
    struct hl7_enrol *e = hl7_enrol_new();
    s->enrol_snap = e ? snapshot_new(e, enrol_destroy) : NULL;
    if (s->fac_snap == NULL || s->enrol_snap == NULL) {
        if (s->fac_snap == NULL)
            hl7_facilities_destroy(f);
        if (s->enrol_snap == NULL)
            hl7_enrol_destroy(e);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    if (opt->tls_cert && opt->tls_cert[0]) {
        s->tls = mllp_tls_new(opt->tls_cert, opt->tls_key, opt->tls_client_ca, errstr,
                              errstr_size);
        if (s->tls == NULL)
            return -1;
    }
    s->m = metrics_new();
    s->slots = vsem_new((unsigned)opt->max_connections);
    s->conns = wg_new();
    s->inner = wg_new();
    s->jobs = chan_new(JOBS_CAP);
    if (s->m == NULL || s->slots == NULL || s->conns == NULL || s->inner == NULL ||
        s->jobs == NULL || pipe2(s->wake, O_CLOEXEC) != 0) {
        snprintf(errstr, errstr_size, "could not start: out of memory or descriptors");
        return -1;
    }
    server_metrics(s);
    const char *topics[] = {opt->dlq_topic, NULL};
    /* A redacted copy is never longer than the message; 64 KiB for headers. */
    s->dlq = publisher_new(opt->cfg, opt->bootstrap, "vigil-mllp-dlq", topics,
                           opt->max_message_bytes + 65536, s->m, errstr, errstr_size);
    if (s->dlq == NULL)
        return -1;
    /* Made here, not on the Kafka thread, so a refused property stops the
     * start with its message instead of a retry loop. */
    s->first_producer = producer_new(s, errstr, errstr_size);
    if (s->first_producer == NULL)
        return -1;
    int port;
    s->lfd = listen_on(opt->listen, &port, errstr, errstr_size);
    if (s->lfd < 0)
        return -1;
    log_msg(LOG_INFO, COMPONENT, "MLLP listening on %s (port %d)%s", opt->listen, port,
            s->tls ? " with TLS" : "");
    if (opt->http_addr && opt->http_addr[0]) {
        s->httpd = httpd_start(opt->http_addr, s->m, ready, s, errstr, errstr_size);
        if (s->httpd == NULL)
            return -1;
        log_msg(LOG_INFO, COMPONENT, "serving /metrics, /healthz, /readyz on port %d",
                httpd_port(s->httpd));
    }
    if (wg_go(s->inner, kafka_main, s, errstr, errstr_size) != 0 ||
        wg_go(s->inner, enrol_main, s, errstr, errstr_size) != 0)
        return -1;
    return 0;
}

static void server_stop(struct server *s)
{
    atomic_store(&s->stopping, true);
    if (s->lfd >= 0)
        close(s->lfd);
    if (s->wake[1] >= 0) {
        char c = 1;
        if (write(s->wake[1], &c, 1) != 1)
            log_msg(LOG_WARN, COMPONENT, "could not wake the connections");
    }
    if (s->conns != NULL &&
        !wg_wait_deadline(s->conns, deadline_after_ms((int64_t)s->opt->grace_s * 1000))) {
        log_msg(LOG_WARN, COMPONENT, "connections still busy after %d s; waiting for them",
                s->opt->grace_s);
        wg_wait(s->conns);
    }
    if (s->jobs != NULL)
        chan_close(s->jobs);
    ctx_cancel(s->stop);
    if (s->inner != NULL)
        wg_wait(s->inner);
    httpd_stop(s->httpd);
    obs_producer_destroy(s->first_producer); /* only when the Kafka thread never started */
    size_t left = publisher_close(s->dlq, deadline_after_ms(5000));
    if (left > 0)
        log_msg(LOG_WARN, COMPONENT, "%zu dead letters abandoned unacknowledged", left);
    for (size_t i = 0; i < s->n_fm; i++)
        free(s->fm[i]);
    chan_destroy(s->jobs);
    wg_destroy(s->conns);
    wg_destroy(s->inner);
    vsem_destroy(s->slots);
    snapshot_destroy(s->fac_snap);
    snapshot_destroy(s->enrol_snap);
    mllp_tls_destroy(s->tls);
    metrics_destroy(s->m);
    if (s->wake[0] >= 0)
        close(s->wake[0]);
    if (s->wake[1] >= 0)
        close(s->wake[1]);
    pthread_mutex_destroy(&s->fm_mu);
}

int mllp_server_run(const struct mllp_server_options *opt, struct ctx *stop, atomic_bool *reload,
                    char *errstr, size_t errstr_size)
{
    struct server s = {.opt = opt, .lfd = -1, .wake = {-1, -1}};
    s.mopt.processing_ids = opt->processing_ids;
    s.started_ms = kafka_now_ms();
    pthread_mutex_init(&s.fm_mu, NULL);
    /* A child of STOP: cancelling it stops the inner threads after the
     * connections are done, without touching the caller's context. */
    s.stop = ctx_new(stop);
    if (s.stop == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        pthread_mutex_destroy(&s.fm_mu);
        return -1;
    }
    int rc = server_start(&s, errstr, errstr_size);
    if (rc == 0) {
        accept_loop(&s, reload);
        log_msg(LOG_INFO, COMPONENT, "stopping: finishing messages in progress");
    }
    server_stop(&s);
    ctx_destroy(s.stop);
    return rc;
}
