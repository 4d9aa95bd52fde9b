#include "send.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedupe.h"
#include "hash.h"
#include "kafka.h"
#include "log.h"
#include "notice.h"
#include "pg.h"
#include "retry.h"
#include "sem.h"

#define TICK_MS 50
#define OWNED_BUCKETS 4096
#define CLAIM_RECHECK_MS 500
#define PG_RETRY_MS 1000
#define RATE_KEYS 8192
/* Rows per batched statement (claims, starts, outcomes): a batch is one
 * round trip, whatever its size; the bound keeps each parameter to some
 * tens of kilobytes. */
#define BATCH_ROWS 512
/* Messages started per batch: each holds up to NOTICE_MAX_ALERTS rows. */
#define START_BATCH (BATCH_ROWS / NOTICE_MAX_ALERTS)

/* D_CLAIMING: queued for the next batched claim; already in the owned set,
 * so a second copy of the same alert waits instead of joining the batch. */
enum dstate { D_NEW = 0, D_CLAIM_WAIT, D_CLAIMING, D_OWNED, D_FINAL };

struct delivery {
    struct job *job;
    struct recipient to;
    bool escalation;
    enum dstate st;
    int64_t wake_ms;        /* D_CLAIM_WAIT: when to claim again */
    struct delivery *hnext; /* owned-set chain */
    struct delivery *wnext; /* claim-wait list, or the claim queue */
    struct outmsg *msg;     /* D_OWNED: the message carrying it */
};

struct job {
    struct alert alert;
    int32_t partition;
    int64_t offset;
    uint32_t epoch;
    int step;    /* 0: the alert's first page; N: escalation step N (escalate.c) */
    bool preset; /* escalation page: recipients given, not routed */
    bool fired;  /* deferred page fired at the end of quiet hours (escalate.c):
                  * recipients given and their rows already ours (pending
                  * under our lease), so no claim */
    int remaining; /* deliveries not final, +1 while the job is starting */
    struct delivery **d;
    int nd, capd;
    bool collected; /* abandon(): already on its list */
    int64_t wake_ms; /* a start that hit a PostgreSQL error retries then */
    struct job *next;
};

enum mstate { M_GROUPING = 0, M_WAITING, M_READY, M_ACTIVE, M_RECORD };

struct outmsg {
    enum channel ch;
    char researcher[RESEARCHER_ID_MAX + 1];
    char address[ADDRESS_MAX + 1];
    char group_key[3 * (OBS_ID_MAX + 1) + 8];
    struct delivery *m[NOTICE_MAX_ALERTS];
    int n;
    bool critical;
    int attempts;
    int64_t first_attempt_ms; /* 0 until the first attempt starts */
    int64_t renewed_ms;       /* when its rows' lease was last renewed (made: claimed) */
    int64_t due_ms;
    enum mstate st;
    /* M_RECORD: the outcome still to be written to the log */
    enum retry_outcome outcome;
    char provider_id[320]; /* SMS sid or our Message-ID */
    char error[512];
    /* M_ACTIVE */
    CURL *easy;
    char *payload;
    struct email_upload up;
    struct sms_request req;
    char curl_err[CURL_ERROR_SIZE];
    struct outmsg *next;
};

struct chmetrics {
    struct metric *sent, *failed, *retried, *suppressed, *skipped, *active, *deferred;
};

struct sender {
    struct sender_config cfg;
    struct route_cache *routes;
    sender_done_fn done;
    void *done_arg;
    struct chan *intake;
    pthread_t thread;
    bool started;
    atomic_size_t jobs; /* queued + in progress */
    atomic_bool healthy;
    atomic_bool closing;
    _Atomic deadline_t close_deadline;

    /* Below: the sender thread's alone. */
    CURLM *multi;
    PGconn *pg;
    int64_t pg_retry_ms;
    struct vsem *sem[CHANNEL_COUNT];
    struct ratelimit *rl;
    unsigned seed;
    bool intake_done;
    int njobs;
    struct job *starting; /* jobs whose start must be retried */
    struct delivery *owned[OWNED_BUCKETS];
    struct delivery *claim_wait;
    struct delivery *claim_head, *claim_tail; /* D_CLAIMING, in arrival order */
    struct dedupe_batch *batch;
    struct dedupe_key keys[BATCH_ROWS];         /* batch scratch */
    struct dedupe_outcome outs[BATCH_ROWS];     /* ... */
    struct delivery *claiming[BATCH_ROWS];      /* ... */
    enum dedupe_claim claimed[BATCH_ROWS];      /* ... */
    bool taken[BATCH_ROWS];                     /* ... */
    bool mine[BATCH_ROWS];                      /* ... */
    bool defer[BATCH_ROWS];                     /* ... */
    struct outmsg *waiting;  /* M_GROUPING, M_WAITING and M_RECORD waiting to retry */
    struct outmsg *outcomes; /* M_RECORD: to record at the end of this loop turn */
    struct outmsg *ready_head[CHANNEL_COUNT], *ready_tail[CHANNEL_COUNT];
    int active;

    struct route_result rr;     /* job_start's scratch */
    struct route_result rr_esc; /* escalate's scratch */
    char body[EMAIL_MAX];       /* msg_begin's scratch */
    struct job *finished;       /* done, reported at the end of a loop turn */

    struct chmetrics cm[CHANNEL_COUNT];
    struct metric *m_unroutable, *m_escalated, *m_latency, *m_jobs, *m_takeover, *m_alerts, *m_elsewhere;
};

static int64_t mono_ms(void)
{
    return deadline_now() / 1000000;
}

/* ---- PostgreSQL ------------------------------------------------------- */

/* Returns the connection, reconnecting at most once per PG_RETRY_MS; NULL
 * while PostgreSQL is unreachable. */
static PGconn *pg(struct sender *s)
{
    if (s->pg != NULL && PQstatus(s->pg) == CONNECTION_OK)
        return s->pg;
    if (s->pg != NULL) {
        PQfinish(s->pg);
        s->pg = NULL;
    }
    int64_t now = mono_ms();
    if (now < s->pg_retry_ms)
        return NULL;
    char err[512];
    s->pg = pg_connect(s->cfg.conninfo, err, sizeof err);
    if (s->pg == NULL) {
        s->pg_retry_ms = now + PG_RETRY_MS;
        atomic_store(&s->healthy, false);
        log_msg(LOG_WARN, "notifier", "sender: %s", err);
        return NULL;
    }
    /* Claims and the pending/sending steps need not wait for the WAL
     * flush: losing one in a PostgreSQL crash leaves a row pending (sent
     * again, never lost). The outcome that prevents a second page --
     * sent -- is committed synchronously (dedupe_record_outcomes). */
    if (pg_command(s->pg, "SET synchronous_commit = off", 0, NULL, err, sizeof err) != 0)
        log_msg(LOG_WARN, "notifier", "sender: %s", err);
    atomic_store(&s->healthy, true);
    return s->pg;
}

/* After a failed statement: a broken connection is dropped (reconnected
 * on next use); the error is logged either way. */
static void pg_failed(struct sender *s, const char *what, const char *err)
{
    log_msg(LOG_WARN, "notifier", "could not %s in PostgreSQL: %s", what, err);
    if (s->pg != NULL && PQstatus(s->pg) != CONNECTION_OK) {
        PQfinish(s->pg);
        s->pg = NULL;
        atomic_store(&s->healthy, false);
    }
}

/* ---- owned set: deliveries whose row this process holds --------------- */

static size_t key_hash(const char *alert_id, const char *researcher, enum channel ch, int step)
{
    unsigned char sep = 0x1f, c = (unsigned char)ch;
    uint64_t h = hash_str(alert_id, HASH_SEED);
    h = hash_bytes(&sep, 1, h);
    h = hash_str(researcher, h);
    h = hash_bytes(&c, 1, h);
    h = hash_bytes(&step, sizeof step, h);
    return (size_t)(h % OWNED_BUCKETS);
}

static struct delivery *owned_find(struct sender *s, const char *alert_id,
                                   const char *researcher, enum channel ch, int step)
{
    for (struct delivery *d = s->owned[key_hash(alert_id, researcher, ch, step)]; d;
         d = d->hnext)
        if (d->to.channel == ch && d->job->step == step &&
            strcmp(d->job->alert.alert_id, alert_id) == 0 &&
            strcmp(d->to.researcher_id, researcher) == 0)
            return d;
    return NULL;
}

static void owned_add(struct sender *s, struct delivery *d)
{
    size_t h = key_hash(d->job->alert.alert_id, d->to.researcher_id, d->to.channel,
                        d->job->step);
    d->hnext = s->owned[h];
    s->owned[h] = d;
}

static void owned_remove(struct sender *s, struct delivery *d)
{
    size_t h = key_hash(d->job->alert.alert_id, d->to.researcher_id, d->to.channel,
                        d->job->step);
    for (struct delivery **pp = &s->owned[h]; *pp; pp = &(*pp)->hnext)
        if (*pp == d) {
            *pp = d->hnext;
            d->hnext = NULL;
            return;
        }
}

/* ---- jobs ------------------------------------------------------------- */

struct job *sender_job_new(const struct alert *a, int32_t partition, int64_t offset,
                           uint32_t epoch)
{
    struct job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->alert = *a;
    j->partition = partition;
    j->offset = offset;
    j->epoch = epoch;
    return j;
}

static struct delivery *job_add(struct job *j, const struct recipient *to, bool escalation);

/* A job of alert A to TO[0..N-1] as given, not routed (escalation pages,
 * fired deferred pages); NULL when out of memory. */
static struct job *job_new_given(const struct alert *a, int step, bool fired,
                                 const struct recipient *to, int n)
{
    struct job *j = sender_job_new(a, -1, -1, 0);
    if (j == NULL)
        return NULL;
    j->step = step;
    j->preset = !fired;
    j->fired = fired;
    for (int i = 0; i < n; i++)
        if (job_add(j, &to[i], false) == NULL) {
            sender_job_free(j);
            return NULL;
        }
    return j;
}

struct job *sender_job_new_page(const struct alert *a, int step, const struct recipient *to,
                                int n)
{
    return job_new_given(a, step, false, to, n);
}

struct job *sender_job_new_fired(const struct alert *a, const struct recipient *to, int n)
{
    return job_new_given(a, 0, true, to, n);
}

void sender_job_free(struct job *j)
{
    if (j == NULL)
        return;
    for (int i = 0; i < j->nd; i++)
        free(j->d[i]);
    free(j->d);
    free(j);
}

static struct delivery *job_add(struct job *j, const struct recipient *to, bool escalation)
{
    if (j->nd == j->capd) {
        int ncap = j->capd ? j->capd * 2 : 4;
        struct delivery **p = realloc(j->d, (size_t)ncap * sizeof *p);
        if (p == NULL)
            return NULL;
        j->d = p;
        j->capd = ncap;
    }
    struct delivery *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->job = j;
    d->to = *to;
    d->escalation = escalation;
    j->d[j->nd++] = d;
    j->remaining++;
    return d;
}

/* Reports the finished jobs and frees them. Called where no delivery
 * pointer is held: freeing a job at the moment its last delivery became
 * final would pull memory from under a caller still walking a list that
 * holds its sibling deliveries. */
static void flush_finished(struct sender *s)
{
    while (s->finished != NULL) {
        struct job *j = s->finished;
        s->finished = j->next;
        if (j->partition >= 0) /* an escalation page has no offset */
            s->done(s->done_arg, j->partition, j->offset, j->epoch);
        sender_job_free(j);
        s->njobs--;
        atomic_fetch_sub(&s->jobs, 1);
        metric_gauge_add(s->m_jobs, -1);
    }
}

static void job_release(struct sender *s, struct job *j)
{
    if (--j->remaining == 0) {
        j->next = s->finished;
        s->finished = j;
    }
}

/* D reached a final state (its row says so, or it never got one). */
static void delivery_final(struct sender *s, struct delivery *d)
{
    if (d->st == D_OWNED || d->st == D_CLAIMING)
        owned_remove(s, d);
    d->st = D_FINAL;
    d->msg = NULL;
    job_release(s, d->job);
}

/* ---- messages --------------------------------------------------------- */

static void list_push(struct outmsg **head, struct outmsg *m)
{
    m->next = *head;
    *head = m;
}

static void list_remove(struct outmsg **head, struct outmsg *m)
{
    for (struct outmsg **pp = head; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            m->next = NULL;
            return;
        }
}

static void ready_push(struct sender *s, struct outmsg *m)
{
    m->st = M_READY;
    m->next = NULL;
    if (s->ready_tail[m->ch])
        s->ready_tail[m->ch]->next = m;
    else
        s->ready_head[m->ch] = m;
    s->ready_tail[m->ch] = m;
}

static struct outmsg *ready_pop(struct sender *s, enum channel ch)
{
    struct outmsg *m = s->ready_head[ch];
    if (m != NULL) {
        s->ready_head[ch] = m->next;
        if (s->ready_head[ch] == NULL)
            s->ready_tail[ch] = NULL;
        m->next = NULL;
    }
    return m;
}

static void msg_free_transfer(struct outmsg *m)
{
    if (m->easy != NULL)
        curl_easy_cleanup(m->easy);
    m->easy = NULL;
    email_upload_free(&m->up);
    sms_request_free(&m->req);
    free(m->payload);
    m->payload = NULL;
}

static void msg_free(struct outmsg *m)
{
    msg_free_transfer(m);
    free(m);
}

static void msg_ids(const struct outmsg *m, const char **ids)
{
    for (int i = 0; i < m->n; i++)
        ids[i] = m->m[i]->job->alert.alert_id;
}

static bool groupable(const struct sender *s, const struct delivery *d)
{
    /* a message carries one step: pages of an escalation never group */
    return s->cfg.group_window_ms > 0 && !d->escalation && !d->job->preset &&
           d->job->alert.kind == ALERT_SIGNAL && d->job->alert.severity != SEV_CRITICAL;
}

static void attach(struct sender *s, struct delivery *d)
{
    const struct alert *a = &d->job->alert;
    char key[sizeof ((struct outmsg *)0)->group_key];
    snprintf(key, sizeof key, "%s\x1f%s\x1f%s", a->study_id, a->subject_id, d->to.researcher_id);
    if (groupable(s, d)) {
        for (struct outmsg *m = s->waiting; m; m = m->next)
            if (m->st == M_GROUPING && m->ch == d->to.channel && m->n < NOTICE_MAX_ALERTS &&
                strcmp(m->group_key, key) == 0) {
                m->m[m->n++] = d;
                d->msg = m;
                if (m->n == NOTICE_MAX_ALERTS)
                    m->due_ms = 0; /* full: goes at the next tick */
                return;
            }
    }
    struct outmsg *m = calloc(1, sizeof *m);
    if (m == NULL) {
        /* Nothing sent, row left pending with our lease: a restart or
         * another notifier takes it over; this job is not finished. */
        log_msg(LOG_ERROR, "notifier", "out of memory: delivery of alert %s left pending",
                a->alert_id);
        return;
    }
    m->ch = d->to.channel;
    snprintf(m->researcher, sizeof m->researcher, "%s", d->to.researcher_id);
    snprintf(m->address, sizeof m->address, "%s", d->to.address);
    snprintf(m->group_key, sizeof m->group_key, "%s", key);
    m->m[0] = d;
    m->n = 1;
    m->renewed_ms = mono_ms();
    d->msg = m;
    if (groupable(s, d)) {
        m->st = M_GROUPING;
        m->due_ms = mono_ms() + s->cfg.group_window_ms;
        list_push(&s->waiting, m);
    } else {
        ready_push(s, m);
    }
}

static void claim_later(struct sender *s, struct delivery *d, int64_t delay_ms)
{
    d->st = D_CLAIM_WAIT;
    d->wake_ms = mono_ms() + delay_ms;
    d->wnext = s->claim_wait;
    s->claim_wait = d;
}

/* Queues D for the next batched claim (claim_flush). */
static void claim(struct sender *s, struct delivery *d)
{
    if (owned_find(s, d->job->alert.alert_id, d->to.researcher_id, d->to.channel,
                   d->job->step) != NULL) {
        /* the same alert read twice (a replay while the first copy is still
         * in progress here): wait for the first to finish */
        claim_later(s, d, CLAIM_RECHECK_MS);
        return;
    }
    d->st = D_CLAIMING;
    owned_add(s, d);
    d->wnext = NULL;
    if (s->claim_tail != NULL)
        s->claim_tail->wnext = d;
    else
        s->claim_head = d;
    s->claim_tail = d;
}

static void claim_result(struct sender *s, struct delivery *d, enum dedupe_claim res,
                         bool taken)
{
    const char *alert_id = d->job->alert.alert_id;
    switch (res) {
    case DEDUPE_OWNED:
        if (taken) {
            metric_add(s->m_takeover, 1);
            log_msg(LOG_INFO, "notifier",
                    "took over the abandoned %s notification of alert %s to researcher %s",
                    channel_name(d->to.channel), alert_id, d->to.researcher_id);
        }
        d->st = D_OWNED;
        attach(s, d);
        break;
    case DEDUPE_DONE:
        metric_add(s->cm[d->to.channel].skipped, 1);
        delivery_final(s, d);
        break;
    case DEDUPE_DEFERRED:
        /* durable as a deferred row: final for this job, so the alert's
         * offset commits; the escalation thread fires it when the
         * researcher's quiet window ends */
        metric_add(s->cm[d->to.channel].deferred, 1);
        log_msg(LOG_INFO, "notifier",
                "%s notification of alert %s to researcher %s deferred: quiet hours",
                channel_name(d->to.channel), alert_id, d->to.researcher_id);
        delivery_final(s, d);
        break;
    case DEDUPE_BUSY:
        owned_remove(s, d);
        claim_later(s, d, CLAIM_RECHECK_MS);
        break;
    }
}

/* Quiet hours (migration 0064) may hold D: a warning or info signal
 * routed from Kafka. Never a critical alert, an escalation page (critical
 * by construction), the email that stands in for a failed critical SMS,
 * a retraction, or a page that was deferred once already. */
static bool deferrable(const struct delivery *d)
{
    const struct job *j = d->job;
    return !j->preset && !j->fired && !d->escalation && j->alert.kind == ALERT_SIGNAL &&
           j->alert.severity != SEV_CRITICAL;
}

/* Claims every queued delivery, BATCH_ROWS to a statement. If PostgreSQL
 * fails, the batch waits PG_RETRY_MS and is queued again. */
static void claim_flush(struct sender *s)
{
    while (s->claim_head != NULL) {
        int n = 0;
        while (s->claim_head != NULL && n < BATCH_ROWS) {
            struct delivery *d = s->claim_head;
            s->claim_head = d->wnext;
            d->wnext = NULL;
            s->claiming[n] = d;
            s->keys[n] = (struct dedupe_key){d->job->alert.alert_id, d->to.researcher_id,
                                             d->to.channel, d->job->step};
            s->defer[n] = deferrable(d);
            n++;
        }
        if (s->claim_head == NULL)
            s->claim_tail = NULL;
        char err[512];
        PGconn *c = pg(s);
        if (c == NULL || dedupe_claim_many(c, s->batch, s->keys, s->defer, n, s->cfg.lease_s, s->claimed,
                                           s->taken, err, sizeof err) != 0) {
            if (c != NULL)
                pg_failed(s, "claim notifications", err);
            for (int i = 0; i < n; i++) {
                owned_remove(s, s->claiming[i]);
                claim_later(s, s->claiming[i], PG_RETRY_MS);
            }
            continue;
        }
        for (int i = 0; i < n; i++)
            claim_result(s, s->claiming[i], s->claimed[i], s->taken[i]);
    }
}

/* A retraction arrived: deliveries of the withdrawn alert that have not
 * started yet are suppressed instead of sent. */
static void suppress_pending(struct sender *s, const char *alert_id)
{
    for (size_t b = 0; b < OWNED_BUCKETS; b++) {
        struct delivery *d = s->owned[b];
        while (d != NULL) {
            struct delivery *next = d->hnext;
            struct outmsg *m = d->msg;
            if (m != NULL && strcmp(d->job->alert.alert_id, alert_id) == 0 &&
                (m->st == M_GROUPING || m->st == M_WAITING)) {
                char err[512];
                const char *ids[1] = {alert_id};
                PGconn *c = pg(s);
                if (c == NULL || dedupe_mark_suppressed(c, ids, 1, d->to.researcher_id,
                                                        d->to.channel, d->job->step,
                                                        "retracted before sending",
                                                        err, sizeof err) != 0) {
                    if (c != NULL)
                        pg_failed(s, "suppress a notification", err);
                    d = next;
                    continue; /* sent after all: the retraction follows it */
                }
                int k = 0;
                for (int i = 0; i < m->n; i++)
                    if (m->m[i] != d)
                        m->m[k++] = m->m[i];
                m->n = k;
                if (m->n == 0) {
                    list_remove(&s->waiting, m);
                    msg_free(m);
                }
                metric_add(s->cm[d->to.channel].suppressed, 1);
                delivery_final(s, d);
            }
            d = next;
        }
    }
}

/* A deferred page fired by vigil_deferred_fire: its rows are ours already
 * (pending, our lease), so each goes straight to a message. One the
 * directory can no longer reach is suppressed, saying why. */
static void job_start_fired(struct sender *s, struct job *j)
{
    for (int i = 0; i < j->nd; i++) {
        struct delivery *d = j->d[i];
        const char *alert_id = j->alert.alert_id;
        if (!route_cache_address(s->routes, d->to.researcher_id, d->to.channel, d->to.address,
                                 sizeof d->to.address)) {
            char err[512], why[64];
            const char *ids[1] = {alert_id};
            snprintf(why, sizeof why, "no %s address after quiet hours",
                     channel_name(d->to.channel));
            PGconn *c = pg(s);
            if (c == NULL || dedupe_mark_suppressed(c, ids, 1, d->to.researcher_id,
                                                    d->to.channel, 0, why, err,
                                                    sizeof err) != 0) {
                /* left pending: vigil_deferred_fire takes it back after the lease */
                if (c != NULL)
                    pg_failed(s, "suppress a deferred notification", err);
            } else {
                metric_add(s->cm[d->to.channel].suppressed, 1);
            }
            d->st = D_FINAL;
            job_release(s, j);
            continue;
        }
        if (owned_find(s, alert_id, d->to.researcher_id, d->to.channel, j->step) != NULL) {
            claim_later(s, d, CLAIM_RECHECK_MS); /* a copy in progress here: claim normally */
            continue;
        }
        d->st = D_OWNED;
        owned_add(s, d);
        attach(s, d);
    }
}

/* Routes and claims J. Returns false if PostgreSQL failed before anything
 * was claimed, or J's recipients are given and the directory is not loaded
 * yet (the caller retries the start later). */
static bool job_start(struct sender *s, struct job *j)
{
    struct route_result *rr = &s->rr;
    const struct alert *a = &j->alert;
    char err[512];
    rr->n = 0;
    rr->dropped = 0;
    rr->how = ROUTE_SUBSCRIBERS;
    /* Pages with given recipients take only addresses from the directory:
     * before its first load (the escalation thread runs from the start,
     * the Kafka path waits for the directory) every address would look
     * missing -- an escalation page skipped until its lease, a deferred
     * page suppressed for good. Start them once it is loaded. */
    if ((j->fired || j->preset) && !route_cache_ready(s->routes))
        return false;
    if (j->fired) {
        job_start_fired(s, j);
        return true;
    }
    if (j->preset) {
        /* An escalation page (escalate.c): the recipients were chosen and
         * recorded by the step's transaction; only addresses come from the
         * directory. One the directory cannot reach (inactive, no phone)
         * is final at once; the step's audit event names them all. */
        int n = j->nd;
        for (int i = 0; i < n; i++) {
            struct delivery *d = j->d[i];
            if (!route_cache_address(s->routes, d->to.researcher_id, d->to.channel,
                                     d->to.address, sizeof d->to.address)) {
                log_msg(LOG_WARN, "notifier",
                        "escalation step %d of alert %s: researcher %s has no %s address",
                        j->step, a->alert_id, d->to.researcher_id, channel_name(d->to.channel));
                metric_add(s->cm[d->to.channel].skipped, 1);
                d->st = D_FINAL;
                job_release(s, j);
            }
        }
        for (int i = 0; i < n; i++)
            if (j->d[i]->st != D_FINAL)
                claim(s, j->d[i]);
        return true;
    }
    if (a->kind == ALERT_RETRACTION && a->retracts_alert_id[0] != '\0') {
        suppress_pending(s, a->retracts_alert_id);
        PGconn *c = pg(s);
        if (c == NULL)
            return false;
        if (dedupe_recipients(c, a->retracts_alert_id, rr, err, sizeof err) < 0) {
            pg_failed(s, "look up who was sent the retracted alert", err);
            return false;
        }
        int k = 0;
        for (int i = 0; i < rr->n; i++)
            if (route_cache_address(s->routes, rr->r[i].researcher_id, rr->r[i].channel,
                                    rr->r[i].address, sizeof rr->r[i].address))
                rr->r[k++] = rr->r[i];
        rr->n = k;
        /* Nobody was told of the original (routed nowhere, or before this
         * log existed): route the retraction like a signal, so whoever
         * would have been told learns it is void. Unless its pages wait
         * for quiet hours to end: those will be suppressed then, and a
         * withdrawal of something never received would wake them now. */
        if (rr->n == 0) {
            int held = dedupe_deferred_count(c, a->retracts_alert_id, err, sizeof err);
            if (held < 0) {
                pg_failed(s, "look up deferred notifications of the retracted alert", err);
                return false;
            }
            if (held > 0) {
                log_msg(LOG_INFO, "notifier",
                        "retraction %s: the %d notifications of alert %s wait for quiet hours "
                        "and will be suppressed; nobody to tell now",
                        a->alert_id, held, a->retracts_alert_id);
                return true;
            }
            route_cache_route(s->routes, a, rr);
        }
    } else {
        route_cache_route(s->routes, a, rr);
    }
    char masked[LOG_MASK_SIZE];
    if (rr->dropped > 0)
        log_msg(LOG_ERROR, "notifier",
                "alert %s of study %s has %d recipients beyond the %d allowed: not notified",
                a->alert_id, a->study_id, rr->dropped, ROUTE_MAX_RECIPIENTS);
    if (rr->n == 0) {
        PGconn *c = pg(s);
        if (c == NULL)
            return false;
        int rec = dedupe_record_unroutable(c, a, "no subscriber and no safety contact", err,
                                           sizeof err);
        if (rec < 0) {
            pg_failed(s, "record an unroutable alert", err);
            return false;
        }
        if (rec == 0)
            return true; /* a replay: recorded, counted and logged the first time */
        metric_add(s->m_unroutable, 1);
        log_msg(LOG_WARN, "notifier",
                "alert %s (%s, study %s, site %s, subject %s) is unroutable: no subscriber and "
                "no safety contact; recorded",
                a->alert_id, alert_severity_name(a->severity), a->study_id, a->site_id,
                log_mask_subject(a->subject_id, masked, sizeof masked));
        return true;
    }
    if (rr->how == ROUTE_SAFETY_CONTACT)
        log_msg(LOG_INFO, "notifier", "alert %s has no subscriber: sent to the safety contact",
                a->alert_id);
    /* Add them all before claiming any: a claim that finishes a delivery
     * at once must not see remaining drop to zero early. */
    int first = j->nd;
    for (int i = 0; i < rr->n; i++)
        if (job_add(j, &rr->r[i], false) == NULL)
            log_msg(LOG_ERROR, "notifier", "out of memory: alert %s not sent to %s",
                    a->alert_id, rr->r[i].researcher_id);
    for (int i = first; i < j->nd; i++)
        claim(s, j->d[i]);
    return true;
}

static void intake(struct sender *s)
{
    int64_t now = mono_ms();
    /* earlier starts that hit PostgreSQL trouble first, in order */
    struct job **pp = &s->starting;
    while (*pp != NULL) {
        struct job *j = *pp;
        if (now < j->wake_ms) {
            pp = &j->next;
            continue;
        }
        if (job_start(s, j)) {
            *pp = j->next;
            j->next = NULL;
            job_release(s, j);
        } else {
            j->wake_ms = now + PG_RETRY_MS;
            pp = &j->next;
        }
    }
    while (!s->intake_done && s->njobs < s->cfg.max_jobs) {
        void *item;
        enum chan_status st = chan_try_recv(s->intake, &item);
        if (st == CHAN_END) {
            s->intake_done = true;
            break;
        }
        if (st != CHAN_OK)
            break;
        struct job *j = item;
        s->njobs++;
        metric_gauge_add(s->m_jobs, 1);
        metric_add(s->m_alerts, 1);
        /* held by the start itself, plus an escalation page's preset deliveries */
        j->remaining = 1 + (j->preset || j->fired ? j->nd : 0);
        if (job_start(s, j)) {
            job_release(s, j);
        } else {
            j->wake_ms = now + PG_RETRY_MS;
            j->next = NULL;
            struct job **tail = &s->starting;
            while (*tail)
                tail = &(*tail)->next;
            *tail = j;
        }
    }
}

/* ---- sending ---------------------------------------------------------- */

static void escalate(struct sender *s, struct delivery *d)
{
    struct route_result *rr = &s->rr_esc;
    rr->n = 0;
    rr->dropped = 0;
    struct job *j = d->job;
    route_cache_escalation(s->routes, j->alert.study_id, d->to.researcher_id, rr);
    int first = j->nd;
    for (int i = 0; i < rr->n; i++)
        if (job_add(j, &rr->r[i], true) == NULL)
            log_msg(LOG_ERROR, "notifier", "out of memory: escalation of alert %s dropped",
                    j->alert.alert_id);
    if (j->nd > first)
        metric_add(s->m_escalated, 1);
    log_msg(LOG_WARN, "notifier",
            "critical alert %s: SMS to researcher %s failed; escalating by email to %d "
            "recipient(s)",
            j->alert.alert_id, d->to.researcher_id, j->nd - first);
    for (int i = first; i < j->nd; i++)
        claim(s, j->d[i]);
}

/* Adds M's rows to the outcome batch at s->outs[*N]. */
static void outcome_rows(struct sender *s, const struct outmsg *m, int *n)
{
    for (int i = 0; i < m->n; i++)
        s->outs[(*n)++] = (struct dedupe_outcome){
            {m->m[i]->job->alert.alert_id, m->researcher, m->ch, m->m[i]->job->step},
            m->outcome == RETRY_SENT,
            m->provider_id[0] ? m->provider_id : NULL,
            m->error};
}

/* Writes M's outcome to the log on C. Returns false if PostgreSQL failed
 * (the caller keeps M in M_RECORD and tries again later). */
static bool record(struct sender *s, PGconn *c, struct outmsg *m)
{
    int n = 0;
    outcome_rows(s, m, &n);
    char err[512];
    if (dedupe_record_outcomes(c, s->batch, s->outs, n, err, sizeof err) != 0) {
        log_msg(LOG_WARN, "notifier", "could not record a notification's outcome: %s", err);
        return false;
    }
    return true;
}

/* M reached sent or failed and it is recorded: finish its deliveries. */
static void msg_finish(struct sender *s, struct outmsg *m)
{
    int64_t wall = kafka_now_ms();
    for (int i = 0; i < m->n; i++) {
        struct delivery *d = m->m[i];
        if (m->outcome == RETRY_SENT) {
            metric_add(s->cm[m->ch].sent, 1);
            double lat = (double)(wall - d->job->alert.detected_ms) / 1000.0;
            metric_observe(s->m_latency, lat < 0 ? 0 : lat);
        } else {
            metric_add(s->cm[m->ch].failed, 1);
            if (m->ch == CHANNEL_SMS && d->job->alert.severity == SEV_CRITICAL &&
                d->job->alert.kind == ALERT_SIGNAL)
                escalate(s, d); /* before final: the job must not finish first */
        }
        delivery_final(s, d);
    }
    msg_free(m);
}

/* M is sent or failed for good: queue its outcome for the next
 * flush_outcomes (one durable transaction for all of a loop turn's). */
static void msg_outcome(struct sender *s, struct outmsg *m)
{
    m->st = M_RECORD;
    list_push(&s->outcomes, m);
}

/* Records the queued outcomes, a batch per durable transaction -- one
 * round trip and one disk flush for many messages -- then finishes their
 * deliveries. If PostgreSQL fails, they wait in M_RECORD and are tried
 * again (nothing is reported done before it is recorded). */
static void flush_outcomes(struct sender *s)
{
    while (s->outcomes != NULL) {
        struct outmsg *chunk = NULL;
        int n = 0;
        while (s->outcomes != NULL && n + s->outcomes->n <= BATCH_ROWS) {
            struct outmsg *m = s->outcomes;
            s->outcomes = m->next;
            outcome_rows(s, m, &n);
            list_push(&chunk, m);
        }
        char err[512];
        PGconn *c = pg(s);
        bool ok = c != NULL && dedupe_record_outcomes(c, s->batch, s->outs, n, err,
                                                      sizeof err) == 0;
        if (!ok && c != NULL)
            pg_failed(s, "record notification outcomes", err);
        if (!ok) {
            /* the rest too: PostgreSQL is failing */
            while (s->outcomes != NULL) {
                struct outmsg *m = s->outcomes;
                s->outcomes = m->next;
                list_push(&chunk, m);
            }
        }
        int64_t due = mono_ms() + PG_RETRY_MS;
        while (chunk != NULL) {
            struct outmsg *m = chunk;
            chunk = m->next;
            m->next = NULL;
            if (ok) {
                msg_finish(s, m);
            } else {
                m->due_ms = due;
                list_push(&s->waiting, m);
            }
        }
    }
}

static void msg_retry_or_fail(struct sender *s, struct outmsg *m, const char *why)
{
    int64_t now = mono_ms();
    int64_t delay = retry_backoff_ms(m->attempts - 1, s->cfg.backoff_base_ms,
                                     s->cfg.backoff_max_ms, (double)rand_r(&s->seed) /
                                                                ((double)RAND_MAX + 1.0));
    snprintf(m->error, sizeof m->error, "%s", why);
    if (now + delay - m->first_attempt_ms > s->cfg.give_up_ms) {
        char masked[64];
        log_msg(LOG_ERROR, "notifier", "giving up on %s to %s after %d attempts: %s",
                channel_name(m->ch), contact_mask(m->address, masked, sizeof masked),
                m->attempts, why);
        m->outcome = RETRY_PERMANENT;
        msg_outcome(s, m);
        return;
    }
    metric_add(s->cm[m->ch].retried, 1);
    const char *ids[NOTICE_MAX_ALERTS];
    msg_ids(m, ids);
    char err[512];
    PGconn *c = pg(s);
    if (c != NULL &&
        dedupe_mark_retry(c, ids, m->n, m->researcher, m->ch, m->m[0]->job->step, (long)delay, why, err, sizeof err))
        pg_failed(s, "schedule a retry", err);
    else if (c != NULL)
        m->renewed_ms = now;
    m->st = M_WAITING;
    m->due_ms = now + delay;
    list_push(&s->waiting, m);
}

/* Builds M's request and hands it to the multi handle. Returns false on
 * a local failure (logged; M is then failed). */
static bool msg_begin(struct sender *s, struct outmsg *m)
{
    const struct alert *alerts[NOTICE_MAX_ALERTS];
    for (int i = 0; i < m->n; i++)
        alerts[i] = &m->m[i]->job->alert;
    char err[512];
    m->easy = curl_easy_init();
    if (m->easy == NULL)
        return false;
    if (m->ch == CHANNEL_EMAIL) {
        char subject[512], ids[NOTICE_MAX_ALERTS * (ALERT_ID_MAX + 1) + 1], key[1024], msgid[300];
        char *body = s->body;
        int step = m->m[0]->job->step;
        /* an escalation page says so first: its reader was not the first
         * one paged, and nobody has acknowledged */
        size_t ps = notice_escalation(alerts[0], step, 1, subject, sizeof subject);
        notice_subject(alerts, m->n, subject + ps, sizeof subject - ps);
        size_t pb = notice_escalation(alerts[0], step, 0, body, sizeof s->body);
        notice_body(alerts, m->n, body + pb, sizeof s->body - pb);
        ackmsg_email(&s->cfg.ack, alerts, m->n, m->researcher, kafka_now_ms() / 1000, body,
                     sizeof s->body);
        size_t o = 0;
        for (int i = 0; i < m->n; i++)
            o += (size_t)snprintf(ids + o, sizeof ids - o, "%s%s", i ? " " : "",
                                  alerts[i]->alert_id);
        /* a repeated escalation page is a new message: a mail client that
         * saw the last one must not hide it as a duplicate */
        if (step > 0)
            snprintf(key, sizeof key, "%s|%s|email|step %d", ids, m->researcher, step);
        else
            snprintf(key, sizeof key, "%s|%s|email", ids, m->researcher);
        email_message_id(key, s->cfg.email.from, msgid, sizeof msgid);
        snprintf(m->provider_id, sizeof m->provider_id, "%s", msgid);
        struct email_headers h = {s->cfg.email.from, m->address, subject, msgid,
                                  kafka_now_ms(), ids};
        m->payload = malloc(EMAIL_MAX + 1024);
        if (m->payload == NULL)
            return false;
        size_t len = email_format(&h, body, m->payload, EMAIL_MAX + 1024);
        if (len == 0 || email_easy_setup(m->easy, &s->cfg.email, m->address, m->payload, len,
                                         &m->up, err, sizeof err) != 0)
            return false;
    } else {
        char text[NOTICE_SMS_MAX + 1], ack[NOTICE_SMS_MAX / 2];
        size_t al = ackmsg_sms(&s->cfg.ack, pg(s), alerts, m->n, m->researcher, m->address,
                               kafka_now_ms() / 1000, ack, sizeof ack);
        size_t pe = notice_escalation(alerts[0], m->m[0]->job->step, 1, text, sizeof text);
        notice_sms(alerts, m->n, text + pe, sizeof text - al - pe); /* room kept: never cut off */
        ackmsg_sms_insert(text, sizeof text, ack);
        m->provider_id[0] = '\0';
        if (sms_easy_setup(m->easy, &s->cfg.sms, m->address, text, &m->req, err, sizeof err))
            return false;
    }
    curl_easy_setopt(m->easy, CURLOPT_PRIVATE, m);
    curl_easy_setopt(m->easy, CURLOPT_ERRORBUFFER, m->curl_err);
    m->curl_err[0] = '\0';
    if (curl_multi_add_handle(s->multi, m->easy) != CURLM_OK)
        return false;
    return true;
}

static bool channel_enabled(const struct sender *s, enum channel ch)
{
    const char *url = ch == CHANNEL_EMAIL ? s->cfg.email.url : s->cfg.sms.url;
    return url != NULL && url[0] != '\0';
}

/* Puts M back at the head of its ready queue. */
static void ready_push_front(struct sender *s, struct outmsg *m)
{
    m->st = M_READY;
    m->next = s->ready_head[m->ch];
    s->ready_head[m->ch] = m;
    if (s->ready_tail[m->ch] == NULL)
        s->ready_tail[m->ch] = m;
}

/* Drops from M the deliveries whose rows were not started (MINE[i] false,
 * one flag per member, *USED advanced past them): another notifier took
 * them over while our lease had run out and settled them, so they are
 * final here without a second message or an outcome of ours. Returns the
 * members left. */
static int msg_keep_mine(struct sender *s, struct outmsg *m, const bool *mine, int *used)
{
    int kept = 0, n = m->n;
    for (int i = 0; i < n; i++) {
        struct delivery *d = m->m[i];
        if (mine[i]) {
            m->m[kept++] = d;
            continue;
        }
        log_msg(LOG_WARN, "notifier",
                "alert %s: %s to %s was settled by another notifier after our lease ran "
                "out; not sent again",
                d->job->alert.alert_id, channel_name(m->ch), m->researcher);
        metric_add(s->m_elsewhere, 1);
        delivery_final(s, d);
    }
    m->n = kept;
    *used += n;
    return kept;
}

/* M waits for the rate limit, which does not touch its rows: renew their
 * lease once half of it has gone by, or another notifier (a Kafka replay,
 * vigil_deferred_fire's take-back of fired quiet-hours pages) would take
 * them over and send them a second time. */
static void lease_renew(struct sender *s, struct outmsg *m, int64_t now)
{
    if (now - m->renewed_ms < (int64_t)s->cfg.lease_s * 500)
        return;
    const char *ids[NOTICE_MAX_ALERTS];
    msg_ids(m, ids);
    char err[512];
    PGconn *c = pg(s);
    if (c == NULL)
        return;
    if (dedupe_renew(c, ids, m->n, m->researcher, m->ch, m->m[0]->job->step, err, sizeof err) != 0)
        pg_failed(s, "renew a waiting notification's lease", err);
    else
        m->renewed_ms = now;
}

/* Takes the ready messages CH has permits for (rate limit permitting),
 * marks all their rows sending in one statement, and starts them. */
static void start_ready(struct sender *s, enum channel ch)
{
    for (;;) {
        struct outmsg *batch[START_BATCH];
        int nb = 0, nk = 0;
        while (s->ready_head[ch] != NULL && nb < START_BATCH) {
            struct outmsg *m = s->ready_head[ch];
            if (!channel_enabled(s, ch)) {
                ready_pop(s, ch);
                m->outcome = RETRY_PERMANENT;
                snprintf(m->error, sizeof m->error, "%s is not configured", channel_name(ch));
                msg_outcome(s, m);
                continue;
            }
            /* Timed acquire with a deadline of now: this loop is the only
             * sender thread, so waiting here would only stall the transfers
             * that would free a permit. */
            if (vsem_acquire(s->sem[ch], deadline_now()) != VSEM_OK)
                break;
            int64_t now = mono_ms();
            bool critical = false;
            for (int i = 0; i < m->n; i++)
                critical |= m->m[i]->job->alert.severity == SEV_CRITICAL;
            m->critical = critical;
            if (!critical && m->attempts == 0) {
                char key[RESEARCHER_ID_MAX + 8];
                snprintf(key, sizeof key, "%s/%s", m->researcher, channel_name(ch));
                int64_t wait = ratelimit_take(s->rl, key, now);
                if (wait > 0) {
                    vsem_release(s->sem[ch]);
                    lease_renew(s, m, now);
                    ready_pop(s, ch);
                    m->st = M_WAITING;
                    m->due_ms = now + wait;
                    list_push(&s->waiting, m);
                    continue;
                }
            }
            ready_pop(s, ch);
            batch[nb++] = m;
            for (int i = 0; i < m->n; i++)
                s->keys[nk++] = (struct dedupe_key){m->m[i]->job->alert.alert_id, m->researcher,
                                                    ch, m->m[i]->job->step};
        }
        if (nb == 0)
            return;
        char err[512];
        PGconn *c = pg(s);
        if (c == NULL ||
            dedupe_mark_sending_many(c, s->batch, s->keys, nk, s->mine, err, sizeof err) != 0) {
            if (c != NULL)
                pg_failed(s, "mark notifications sending", err);
            for (int i = nb - 1; i >= 0; i--) {
                vsem_release(s->sem[ch]);
                ready_push_front(s, batch[i]);
            }
            return; /* PostgreSQL is down: nothing can start */
        }
        int64_t now = mono_ms();
        int k = 0;
        for (int b = 0; b < nb; b++) {
            struct outmsg *m = batch[b];
            if (msg_keep_mine(s, m, s->mine + k, &k) == 0) {
                vsem_release(s->sem[ch]);
                msg_free(m);
                continue;
            }
            m->attempts++;
            if (m->first_attempt_ms == 0)
                m->first_attempt_ms = now;
            if (!msg_begin(s, m)) {
                vsem_release(s->sem[ch]);
                msg_free_transfer(m);
                m->outcome = RETRY_PERMANENT;
                snprintf(m->error, sizeof m->error, "could not build the request");
                msg_outcome(s, m);
                continue;
            }
            m->st = M_ACTIVE;
            s->active++;
            metric_gauge_add(s->cm[ch].active, 1);
        }
    }
}

static void transfer_done(struct sender *s, CURL *easy, CURLcode result)
{
    struct outmsg *m = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&m);
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(s->multi, easy);
    vsem_release(s->sem[m->ch]);
    s->active--;
    metric_gauge_add(s->cm[m->ch].active, -1);
    enum retry_outcome oc;
    char why[512];
    if (m->ch == CHANNEL_EMAIL) {
        oc = retry_classify_smtp(result, code);
        snprintf(why, sizeof why, "SMTP: %s (reply %ld)",
                 m->curl_err[0] ? m->curl_err : curl_easy_strerror(result), code);
    } else {
        oc = retry_classify_http(result, code);
        if (result != CURLE_OK)
            snprintf(why, sizeof why, "SMS gateway: %s",
                     m->curl_err[0] ? m->curl_err : curl_easy_strerror(result));
        else
            snprintf(why, sizeof why, "SMS gateway answered HTTP %ld", code);
        if (oc == RETRY_SENT &&
            !sms_parse_sid(m->req.response, m->req.response_len, m->provider_id,
                           sizeof m->provider_id))
            m->provider_id[0] = '\0';
    }
    msg_free_transfer(m);
    if (oc == RETRY_SENT) {
        m->outcome = RETRY_SENT;
        msg_outcome(s, m);
    } else if (oc == RETRY_AGAIN) {
        msg_retry_or_fail(s, m, why);
    } else {
        char masked[64];
        log_msg(LOG_ERROR, "notifier", "%s to %s failed for good: %s", channel_name(m->ch),
                contact_mask(m->address, masked, sizeof masked), why);
        snprintf(m->error, sizeof m->error, "%s", why);
        m->outcome = RETRY_PERMANENT;
        msg_outcome(s, m);
    }
}

/* Moves due messages on and re-claims due deliveries. */
static void tick(struct sender *s)
{
    int64_t now = mono_ms();
    struct outmsg **pp = &s->waiting;
    while (*pp != NULL) {
        struct outmsg *m = *pp;
        if (m->due_ms > now) {
            /* A retry's wait may be longer than the lease (retry_max_ms
             * against lease): keep the rows ours meanwhile. */
            if (m->st == M_WAITING || m->st == M_GROUPING)
                lease_renew(s, m, now);
            pp = &m->next;
            continue;
        }
        *pp = m->next;
        m->next = NULL;
        if (m->st == M_RECORD) {
            list_push(&s->outcomes, m);
        } else {
            ready_push(s, m);
        }
    }
    struct delivery *due = NULL;
    struct delivery **dp = &s->claim_wait;
    while (*dp != NULL) {
        struct delivery *d = *dp;
        if (d->wake_ms <= now) {
            *dp = d->wnext;
            d->wnext = due;
            due = d;
        } else {
            dp = &d->wnext;
        }
    }
    while (due != NULL) {
        struct delivery *d = due;
        due = d->wnext;
        d->wnext = NULL;
        claim(s, d);
    }
}

/* ---- shutdown --------------------------------------------------------- */

static void release_msg(struct sender *s, struct outmsg *m)
{
    const char *ids[NOTICE_MAX_ALERTS];
    msg_ids(m, ids);
    char err[512];
    PGconn *c = pg(s);
    if (c != NULL && dedupe_release(c, ids, m->n, m->researcher, m->ch, m->m[0]->job->step, err,
                                   sizeof err) != 0)
        pg_failed(s, "hand a notification back", err);
    msg_free(m);
}

/* At the deadline: abort transfers, hand every unfinished row back, free
 * every job without reporting it done. Returns the jobs left. */
static size_t abandon(struct sender *s)
{
    size_t left = 0;
    for (size_t b = 0; b < OWNED_BUCKETS; b++) {
        for (struct delivery *d = s->owned[b]; d; d = d->hnext) {
            struct outmsg *m = d->msg;
            if (m == NULL)
                continue;
            /* detach every member so each message is released once */
            for (int i = 0; i < m->n; i++)
                m->m[i]->msg = NULL;
            if (m->st == M_ACTIVE) {
                curl_multi_remove_handle(s->multi, m->easy);
                s->active--;
            } else if (m->st != M_READY) {
                /* the ready queues are dropped whole below */
                list_remove(&s->waiting, m);
            }
            PGconn *c = m->st == M_RECORD ? pg(s) : NULL;
            if (c != NULL && PQtransactionStatus(c) == PQTRANS_IDLE && record(s, c, m)) {
                msg_free(m); /* outcome saved; the job stays unreported */
                continue;
            }
            release_msg(s, m);
        }
    }
    /* jobs: every delivery belongs to exactly one job; free them via the
     * delivery lists (owned and claim-wait) and the starting list. A job
     * is found through any of its deliveries, so collect distinct jobs. */
    struct job *jobs = NULL;
    for (size_t b = 0; b < OWNED_BUCKETS; b++)
        for (struct delivery *d = s->owned[b]; d; d = d->hnext)
            if (!d->job->collected) {
                d->job->collected = true;
                d->job->next = jobs;
                jobs = d->job;
            }
    for (struct delivery *d = s->claim_wait; d; d = d->wnext)
        if (!d->job->collected) {
            d->job->collected = true;
            d->job->next = jobs;
            jobs = d->job;
        }
    while (s->starting != NULL) {
        struct job *j = s->starting;
        s->starting = j->next;
        j->next = jobs;
        jobs = j;
    }
    while (jobs != NULL) {
        struct job *j = jobs;
        jobs = j->next;
        sender_job_free(j);
        left++;
    }
    memset(s->owned, 0, sizeof s->owned);
    s->claim_wait = NULL;
    s->claim_head = s->claim_tail = NULL;
    s->outcomes = NULL;
    s->ready_head[0] = s->ready_head[1] = NULL;
    s->ready_tail[0] = s->ready_tail[1] = NULL;
    void *item;
    while (chan_try_recv(s->intake, &item) == CHAN_OK) {
        sender_job_free(item);
        left++;
    }
    return left;
}

/* ---- the thread ------------------------------------------------------- */

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    int64_t next_tick = 0;
    for (;;) {
        if (atomic_load(&s->closing)) {
            if (s->intake_done && s->njobs == 0)
                break;
            if (deadline_expired(atomic_load(&s->close_deadline)))
                break;
        }
        intake(s);
        int64_t now = mono_ms();
        if (now >= next_tick) {
            tick(s);
            next_tick = now + TICK_MS;
        }
        claim_flush(s);
        for (int ch = 0; ch < CHANNEL_COUNT; ch++)
            start_ready(s, (enum channel)ch);
        int running = 0;
        curl_multi_perform(s->multi, &running);
        CURLMsg *msg;
        int q;
        while ((msg = curl_multi_info_read(s->multi, &q)) != NULL)
            if (msg->msg == CURLMSG_DONE)
                transfer_done(s, msg->easy_handle, msg->data.result);
        flush_outcomes(s);
        flush_finished(s);
        /* an escalation queued claims just now: no sleeping on them */
        curl_multi_poll(s->multi, NULL, 0, s->claim_head != NULL ? 0 : TICK_MS, NULL);
    }
    flush_finished(s);
    return NULL;
}

struct sender *sender_new(const struct sender_config *cfg, struct route_cache *routes,
                          struct metrics *m, sender_done_fn done, void *arg, char *errstr,
                          size_t errstr_size)
{
    struct sender *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->routes = routes;
    s->done = done;
    s->done_arg = arg;
    s->seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
    atomic_init(&s->jobs, 0);
    atomic_init(&s->healthy, true);
    atomic_init(&s->closing, false);
    atomic_init(&s->close_deadline, DEADLINE_FOREVER);
    s->intake = chan_new(cfg->queue_cap > 0 ? cfg->queue_cap : 256);
    s->multi = curl_multi_init();
    s->rl = ratelimit_new(cfg->rate_per_min, cfg->rate_burst, RATE_KEYS);
    s->batch = dedupe_batch_new();
    for (int ch = 0; ch < CHANNEL_COUNT; ch++)
        s->sem[ch] = vsem_new(cfg->concurrency > 0 ? (unsigned)cfg->concurrency : 1);
    if (s->intake == NULL || s->multi == NULL || s->rl == NULL || s->batch == NULL ||
        s->sem[0] == NULL ||
        s->sem[1] == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    /* libcurl keeps up to this many connections per host alive for reuse */
    curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, (long)(cfg->concurrency * 2 + 4));
    for (int ch = 0; ch < CHANNEL_COUNT; ch++) {
        char labels[32];
        snprintf(labels, sizeof labels, "channel=\"%s\"", channel_name((enum channel)ch));
        struct chmetrics *c = &s->cm[ch];
        c->sent = metrics_counter(m, "vigil_notifications_sent_total",
                                  "Notifications the provider accepted", labels);
        c->failed = metrics_counter(m, "vigil_notifications_failed_total",
                                    "Notifications given up on", labels);
        c->retried = metrics_counter(m, "vigil_notifications_retried_total",
                                     "Send attempts that will be retried", labels);
        c->suppressed = metrics_counter(m, "vigil_notifications_suppressed_total",
                                        "Notifications deliberately not sent", labels);
        c->skipped = metrics_counter(m, "vigil_notifications_duplicate_total",
                                     "Notifications already final in the log (replays)", labels);
        c->active = metrics_gauge(m, "vigil_notifier_sends_in_flight",
                                  "Transfers in progress", labels);
        c->deferred = metrics_counter(m, "vigil_notifications_deferred_total",
                                      "Notifications held for the researcher's quiet hours",
                                      labels);
    }
    static const double lat[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900};
    s->m_latency = metrics_histogram(m, "vigil_notify_latency_seconds",
                                     "From the alert's detection to the provider's acceptance",
                                     NULL, lat, sizeof lat / sizeof lat[0]);
    s->m_unroutable = metrics_counter(m, "vigil_notifier_unroutable_total",
                                      "Alerts with no subscriber and no safety contact", NULL);
    s->m_escalated = metrics_counter(m, "vigil_notifier_escalations_total",
                                     "Critical alerts escalated to email after SMS failed", NULL);
    s->m_jobs = metrics_gauge(m, "vigil_notifier_alerts_in_progress",
                              "Alerts taken by the sender and not yet final", NULL);
    s->m_elsewhere = metrics_counter(m, "vigil_notifications_settled_elsewhere_total",
                                     "Claimed notifications another notifier settled after "
                                     "taking them over: not sent again",
                                     NULL);
    s->m_takeover = metrics_counter(m, "vigil_notifications_taken_over_total",
                                    "Abandoned notifications taken over after their lease",
                                    NULL);
    s->m_alerts = metrics_counter(m, "vigil_notifier_alerts_total",
                                  "Alerts taken by the sender", NULL);
    if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
        snprintf(errstr, errstr_size, "could not start the sender thread");
        goto err;
    }
    s->started = true;
    return s;
err:
    chan_destroy(s->intake);
    if (s->multi)
        curl_multi_cleanup(s->multi);
    ratelimit_destroy(s->rl);
    dedupe_batch_destroy(s->batch);
    vsem_destroy(s->sem[0]);
    vsem_destroy(s->sem[1]);
    free(s);
    return NULL;
}

enum chan_status sender_submit(struct sender *s, struct job *j)
{
    if (atomic_load(&s->closing))
        return CHAN_CLOSED;
    atomic_fetch_add(&s->jobs, 1);
    enum chan_status st = chan_try_send(s->intake, j);
    if (st != CHAN_OK)
        atomic_fetch_sub(&s->jobs, 1);
    else
        curl_multi_wakeup(s->multi);
    return st;
}

bool sender_healthy(struct sender *s)
{
    return atomic_load(&s->healthy);
}

size_t sender_close(struct sender *s, deadline_t deadline)
{
    if (s == NULL)
        return 0;
    atomic_store(&s->close_deadline, deadline);
    atomic_store(&s->closing, true);
    chan_close(s->intake);
    curl_multi_wakeup(s->multi);
    if (s->started)
        pthread_join(s->thread, NULL);
    size_t left = abandon(s);
    PQfinish(s->pg);
    chan_destroy(s->intake);
    curl_multi_cleanup(s->multi);
    ratelimit_destroy(s->rl);
    dedupe_batch_destroy(s->batch);
    vsem_destroy(s->sem[0]);
    vsem_destroy(s->sem[1]);
    free(s);
    return left;
}
