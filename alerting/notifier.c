#include "notifier.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "deadletter.h"
#include "group.h"
#include "httpd.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "publish.h"
#include "route.h"

#define DECODE_TRIES 3
/* What a whole dead letter adds to its record: vigil's headers. */

struct notifier {
    const struct notifier_options *opt;
    struct group *group;
    struct metrics *metrics;
    struct httpd *httpd;
    struct codec *codec;
    struct route_cache *routes;
    struct sender *sender;
    struct escalator *escalator; /* NULL when escalation is off */
    char *actor;                 /* the escalator's name in the audit trail */
    struct publisher *dlq_pub; /* NULL when dlq_topic is empty */
    struct deadletter *dlq;
    struct metric *m_invalid;
    struct webhook_sender *webhooks; /* NULL: webhooks off */
};

/* A message from vigil.alerts on its way to the sender: decoded once, when
 * polled; the job is made when the alert is offered (it needs the ticket). */
struct incoming {
    rd_kafka_message_t *m;
    enum codec_status st;
    char err[512];
    struct alert a;
};

/* A dead letter on its way: whose offset its outcome finishes. */
struct dead_letter {
    struct notifier *n;
    struct group_ticket t;
};

/* Sender thread: every notification of the alert is final. */
static void on_done(void *arg, int32_t partition, int64_t offset, uint32_t epoch)
{
    struct notifier *n = arg;
    struct group_ticket t = {partition, offset, epoch};
    group_done(n->group, &t);
}

/* The dead letter's outcome (deadletter.h): written whole or truncated, or
 * recorded in dead_letters, finishes the undecodable alert's offset;
 * abandoned at shutdown leaves it for the partition's next owner. */
static void dead_letter_done(void *arg, enum deadletter_outcome outcome)
{
    struct dead_letter *dl = arg;
    if (outcome == DEADLETTER_ABANDONED) {
        log_msg(LOG_WARN, "notifier", "partition %d offset %lld: left unfinished at shutdown",
                (int)dl->t.partition, (long long)dl->t.offset);
        group_abandon(dl->n->group, &dl->t);
    } else {
        if (outcome != DEADLETTER_SKIPPED)
            log_msg(LOG_WARN, "notifier", "partition %d offset %lld: dead-lettered to %s%s",
                    (int)dl->t.partition, (long long)dl->t.offset, dl->n->opt->dead_letters.topic,
                    outcome == DEADLETTER_TRUNCATED ? " (truncated)" : "");
        group_done(dl->n->group, &dl->t);
    }
    free(dl);
}

/* Sends M (an alert that does not decode) to the dead-letter topic; its
 * offset T finishes with the dead letter's outcome (dead_letter_done).
 * Without a dead-letter topic the alert is recorded in dead_letters,
 * logged, counted and skipped. */
static void dead_letter(struct notifier *n, const rd_kafka_message_t *m,
                        const struct group_ticket *t, const char *error_class,
                        const char *error_message)
{
    metric_add(n->m_invalid, 1);
    log_msg(LOG_ERROR, "notifier", "partition %d offset %lld: could not decode the alert (%s): %s",
            (int)m->partition, (long long)m->offset, error_class, error_message);
    struct dead_letter *dl = malloc(sizeof *dl);
    if (dl == NULL) {
        log_msg(LOG_ERROR, "notifier", "out of memory: partition %d offset %lld left unfinished",
                (int)m->partition, (long long)m->offset);
        group_abandon(n->group, t);
        return;
    }
    *dl = (struct dead_letter){n, *t};
    if (deadletter_send(n->dlq, m, error_class, error_message, dead_letter_done, dl) != 0) {
        /* closing: not finished, read again after a restart */
        log_msg(LOG_WARN, "notifier", "partition %d offset %lld: left unfinished at shutdown",
                (int)m->partition, (long long)m->offset);
        group_abandon(n->group, t);
        free(dl);
    }
}

/* ---- the engine's role: decode, hand the alert to the sender ----------- */

static void *role_wrap(void *arg, rd_kafka_message_t *m)
{
    struct notifier *n = arg;
    struct incoming *in = malloc(sizeof *in);
    if (in == NULL)
        return NULL;
    in->m = m;
    in->st = CODEC_ETRANSIENT;
    in->err[0] = '\0';
    /* A transient failure is a schema registry that did not answer. */
    for (int i = 0; i < DECODE_TRIES && in->st == CODEC_ETRANSIENT; i++) {
        if (i > 0)
            nanosleep(&(struct timespec){1, 0}, NULL);
        if (m->payload == NULL) {
            in->st = CODEC_ETRUNCATED;
            snprintf(in->err, sizeof in->err, "empty message");
        } else {
            in->st = codec_decode_alert(n->codec, m->payload, m->len, &in->a, in->err,
                                        sizeof in->err);
        }
    }
    return in;
}

static void role_discard(void *arg, void *item)
{
    (void)arg;
    struct incoming *in = item;
    rd_kafka_message_destroy(in->m);
    free(in);
}

static bool role_offer(void *arg, void *item, const struct group_ticket *t, int wait_ms)
{
    (void)wait_ms; /* the sender's queue is offered without waiting */
    struct notifier *n = arg;
    struct incoming *in = item;
    if (in->st != CODEC_OK) {
        /* Nothing can be sent from bytes that do not decode; the worker
         * produced them, so this is a bug or a foreign producer. They are
         * kept on the dead-letter topic, and the partition moves on. */
        dead_letter(n, in->m, t, codec_error_class_name(in->st), in->err);
        role_discard(n, in);
        return true;
    }
    struct job *j = sender_job_new(&in->a, t->partition, t->offset, t->epoch);
    if (j == NULL)
        return false; /* out of memory: offered again later */
    if (sender_submit(n->sender, j) != CHAN_OK) {
        sender_job_free(j);
        return false;
    }
    role_discard(n, in);
    return true;
}

static bool ready(void *arg, char *why, size_t whysz)
{
    struct notifier *n = arg;
    const struct httpd_check checks[] = {
        {route_cache_ready(n->routes), "directory not loaded yet"},
        {sender_healthy(n->sender), "PostgreSQL unreachable"},
    };
    return group_ready(n->group, why, whysz) &&
           httpd_checks(checks, sizeof checks / sizeof checks[0], why, whysz);
}

int notifier_run(const struct notifier_options *opt, struct ctx *stop, atomic_bool *reload,
                 char *errstr, size_t errstr_size)
{
    int rc = -1;
    struct notifier *n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    n->opt = opt;
    n->metrics = metrics_new();
    if (n->metrics == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto out;
    }
    n->m_invalid = metrics_counter(n->metrics, "vigil_notifier_invalid_total",
                                   "Alert messages that could not be decoded", NULL);

    struct codec_config cc;
    codec_config_init(&cc);
    cc.registry_url = opt->registry_url;
    n->codec = codec_new(&cc, errstr, errstr_size);
    if (n->codec == NULL)
        goto out;
    n->routes = route_cache_new(opt->conninfo, opt->directory_refresh_s, n->metrics, errstr,
                                errstr_size);
    if (n->routes == NULL)
        goto out;
    struct sender_config sc = opt->send;
    sc.conninfo = opt->conninfo;
    n->sender = sender_new(&sc, n->routes, n->metrics, on_done, n, errstr, errstr_size);
    if (n->sender == NULL)
        goto out;
    if (opt->escalation) {
        struct escalate_config ec = opt->escalate;
        char actor[128], host[64] = "?";
        gethostname(host, sizeof host - 1);
        snprintf(actor, sizeof actor, "notifier:%s:%ld", host, (long)getpid());
        ec.conninfo = opt->conninfo;
        ec.email = &opt->send.email;
        ec.ack = &opt->send.ack;
        n->actor = strdup(actor); /* escalate keeps the pointer */
        if (n->actor == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            goto out;
        }
        ec.actor = n->actor;
        n->escalator = escalate_new(&ec, n->sender, n->metrics, errstr, errstr_size);
        if (n->escalator == NULL)
            goto out;
    }
    const char *dlq_topic = opt->dead_letters.topic;
    if (dlq_topic != NULL && dlq_topic[0] != '\0') {
        const char *dlq_topics[] = {dlq_topic, NULL};
        n->dlq_pub = publisher_new(opt->consumer.cfg, opt->consumer.bootstrap,
                                   "vigil-notifier-dlq", dlq_topics,
                                   deadletter_message_max(opt->consumer.max_record_bytes),
                                   n->metrics, errstr, errstr_size);
        if (n->dlq_pub == NULL)
            goto out;
    }
    n->dlq = deadletter_new(&opt->dead_letters, n->dlq_pub, n->metrics, errstr, errstr_size);
    if (n->dlq == NULL)
        goto out;
    /* Made before the HTTP server (its readiness reads it); it joins the
     * group only once the directory is loaded. */
    struct group_config gc = opt->consumer;
    gc.client_id = "vigil-notifier";
    gc.component = "notifier";
    gc.revoke_drain_ms = 10000; /* unfinished sends are the next owner's, deduped */
    gc.offer_wait_ms = 0;
    struct group_role role = {n, role_wrap, role_offer, role_discard, NULL};
    n->group = group_new(&gc, &role, n->metrics, errstr, errstr_size);
    if (n->group == NULL)
        goto out;
    if (opt->webhook.poll_ms > 0) {
        struct webhook_config wc = opt->webhook;
        wc.conninfo = opt->conninfo;
        n->webhooks = webhook_sender_start(&wc, n->metrics, errstr, errstr_size);
        if (n->webhooks == NULL)
            goto out;
    }
    if (opt->http_addr != NULL && opt->http_addr[0] != '\0') {
        n->httpd = httpd_start(opt->http_addr, n->metrics, ready, n, errstr, errstr_size);
        if (n->httpd == NULL)
            goto out;
        log_msg(LOG_INFO, "notifier", "serving /metrics, /healthz, /readyz on port %d",
                httpd_port(n->httpd));
    }

    /* Routing needs the directory: read no alert before it is loaded. */
    deadline_t next_note = deadline_after_ms(5000);
    while (!route_cache_ready(n->routes) && !ctx_done(stop)) {
        ctx_wait(stop, deadline_after_ms(50));
        if (deadline_expired(next_note)) {
            log_msg(LOG_WARN, "notifier", "waiting for the directory (PostgreSQL)");
            next_note = deadline_after_ms(5000);
        }
    }

    if (!ctx_done(stop) && group_subscribe(n->group, errstr, errstr_size) != 0)
        goto out;

    while (!ctx_done(stop)) {
        group_poll(n->group, 50);
        if (atomic_exchange(reload, false)) {
            log_msg(LOG_INFO, "notifier", "SIGHUP: reloading the directory");
            route_cache_poke(n->routes);
        }
    }

    log_msg(LOG_INFO, "notifier", "stopping: finishing in-flight notifications");
    int grace_ms = opt->grace_s * 1000;
    /* Whatever hangs, the process ends within the grace (exit 4). */
    group_arm_exit(n->group, deadline_after_ms(grace_ms >= 2000 ? grace_ms - 1000
                                                                : grace_ms * 3 / 4));
    httpd_stop(n->httpd); /* its readiness callback reads the sender */
    n->httpd = NULL;
    int drain_ms = grace_ms > 4000 ? grace_ms - 3000 : grace_ms / 2;
    /* what was fetched but set aside for want of room: to the sender (at
     * most half the drain time), finished with the rest */
    group_flush_stashes(n->group, deadline_after_ms(drain_ms / 2));
    group_stop(n->group);
    escalate_close(n->escalator); /* before the sender it hands pages to */
    n->escalator = NULL;
    deadline_t deadline = deadline_after_ms(drain_ms);
    size_t left = sender_close(n->sender, deadline);
    n->sender = NULL;
    if (left > 0)
        log_msg(LOG_WARN, "notifier", "%zu alerts unfinished at exit: handed back, they will be "
                                      "read again",
                left);
    /* Dead letters get what is left of the grace, not more. */
    deadline_t dl_deadline = deadline_expired(deadline) ? deadline_after_ms(500) : deadline;
    size_t undelivered = publisher_close(n->dlq_pub, dl_deadline);
    n->dlq_pub = NULL;
    if (undelivered > 0)
        log_msg(LOG_WARN, "notifier", "%zu dead letters unacknowledged at exit: their alerts "
                                      "will be read again",
                undelivered);
    deadletter_close(n->dlq, dl_deadline);
    n->dlq = NULL;
    group_close(n->group);
    rc = group_exit_status(n->group);
    log_msg(LOG_INFO, "notifier", "stopped: offsets committed, group left (exit status %d)", rc);
out:
    webhook_sender_stop(n->webhooks);
    httpd_stop(n->httpd); /* its readiness callback reads the sender */
    if (n->group != NULL)
        group_stop(n->group);
    escalate_close(n->escalator);
    sender_close(n->sender, deadline_now());
    free(n->actor);
    /* unacknowledged dead letters: their offsets were not finished */
    publisher_close(n->dlq_pub, deadline_now());
    deadletter_close(n->dlq, deadline_now());
    group_destroy(n->group); /* after the sender: its completions reach it */
    route_cache_destroy(n->routes);
    codec_destroy(n->codec);
    metrics_destroy(n->metrics);
    free(n);
    return rc;
}
