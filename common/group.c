#include "group.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "kafka.h"
#include "log.h"
#include "offsets.h"

/* A message waiting for room, in its partition's stash (offset order). */
struct stashed {
    void *item;
    bool tracked; /* its offset is tracked (t is valid) */
    struct group_ticket t;
    struct stashed *next;
};

/* The poll thread's view of one partition. */
struct partition {
    bool assigned;
    bool paused;
    struct stashed *head, *tail;
    struct metric *m_lag;    /* created on first use */
    struct metric *m_oldest; /* created on first use */
};

struct group {
    struct group_config c; /* defaults filled in */
    struct group_role role;
    struct metrics *metrics;
    rd_kafka_t *rk;
    bool cooperative;
    atomic_bool consuming; /* subscribed and not yet stopping (read by group_ready) */
    bool stopped; /* group_stop: no message is taken any more */
    bool closing; /* group_close: revokes wait for nothing */
    bool closed;
    bool left_unfinished; /* group_close left some partition unfinished */

    /* group_arm_exit's thread */
    pthread_mutex_t exit_lock;
    pthread_cond_t exit_cond;
    bool exit_armed;
    bool exit_disarmed;
    deadline_t exit_deadline;
    pthread_t exit_thread;
    struct offsets *offsets;
    struct partition *parts;
    size_t stashed; /* messages in all stashes */
    int npaused;
    deadline_t next_commit;
    deadline_t next_refresh;
    deadline_t next_tick;

    struct metric *m_consumed;
    struct metric *m_done;
    struct metric *m_abandoned;
    struct metric *m_paused;
    struct metric *m_assigned;
};

/* ---- partitions: pause, stash ------------------------------------------ */

static void pause_partition(struct group *g, int32_t p, bool pause)
{
    struct partition *pt = &g->parts[p];
    if (pt->paused == pause)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, g->c.topic, p);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(g->rk, l) : rd_kafka_resume_partitions(g->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        /* keep our flag as it was: the next turn tries again */
        log_msg(LOG_WARN, g->c.component, "could not %s partition %d: %s",
                pause ? "pause" : "resume", (int)p, rd_kafka_err2str(err));
        return;
    }
    pt->paused = pause;
    g->npaused += pause ? 1 : -1;
    metric_gauge_add(g->m_paused, pause ? 1 : -1);
}

/* Appends ITEM (its message at T's partition and offset; T's epoch valid
 * when TRACKED) to the partition's stash and pauses the partition. */
static void stash(struct group *g, void *item, const struct group_ticket *t, bool tracked)
{
    int32_t p = t->partition;
    struct stashed *s = malloc(sizeof *s);
    if (s == NULL) {
        /* Cannot keep it: give it up. A tracked offset stays unfinished, so
         * nothing is committed past it; the message comes back after a
         * restart or a rebalance. */
        log_msg(LOG_ERROR, g->c.component,
                "out of memory: a message of partition %d left for the partition's next owner",
                (int)p);
        if (tracked && offsets_abandon(g->offsets, t->partition, t->offset, t->epoch))
            metric_add(g->m_abandoned, 1);
        g->role.discard(g->role.arg, item);
        return;
    }
    s->item = item;
    s->tracked = tracked;
    s->t = *t;
    s->next = NULL;
    struct partition *pt = &g->parts[p];
    if (pt->tail != NULL)
        pt->tail->next = s;
    else
        pt->head = s;
    pt->tail = s;
    g->stashed++;
    pause_partition(g, p, true);
}

static void unstash_head(struct group *g, struct partition *pt)
{
    struct stashed *s = pt->head;
    pt->head = s->next;
    if (pt->head == NULL)
        pt->tail = NULL;
    g->stashed--;
    free(s);
}

/* Drops partition P's stash: items are discarded, tracked offsets given up
 * (never committed past; the partition's next owner reads them again). */
static void discard_stash(struct group *g, int32_t p)
{
    struct partition *pt = &g->parts[p];
    while (pt->head != NULL) {
        struct stashed *s = pt->head;
        if (s->tracked &&
            offsets_abandon(g->offsets, s->t.partition, s->t.offset, s->t.epoch))
            metric_add(g->m_abandoned, 1);
        g->role.discard(g->role.arg, s->item);
        unstash_head(g, pt);
    }
}

enum admit { ADMIT_OK, ADMIT_FULL, ADMIT_REPLAY };

/* Tracks OFFSET of partition P into T. FULL: the tracker holds its
 * maximum for P; the message must wait (never drop it, or a later commit
 * would pass over it). REPLAY: a second delivery of an offset already
 * tracked (after a seek): the first delivery stands. */
static enum admit admit(struct group *g, int32_t p, int64_t offset, struct group_ticket *t)
{
    enum offsets_status st = offsets_track(g->offsets, p, offset, &t->epoch);
    if (st == OFFSETS_FULL)
        return ADMIT_FULL;
    if (st != OFFSETS_OK) {
        log_msg(LOG_WARN, g->c.component, "partition %d offset %lld delivered again, skipped",
                (int)p, (long long)offset);
        return ADMIT_REPLAY;
    }
    t->partition = p;
    t->offset = offset;
    return ADMIT_OK;
}

/* Moves stashed messages on while the role has room; resumes a partition
 * whose stash is empty. */
static void drain_stashes(struct group *g)
{
    if (g->stashed == 0 && g->npaused == 0)
        return;
    for (int32_t p = 0; p < g->c.max_partitions; p++) {
        struct partition *pt = &g->parts[p];
        while (pt->head != NULL) {
            struct stashed *s = pt->head;
            if (!s->tracked) {
                enum admit a = admit(g, p, s->t.offset, &s->t);
                if (a == ADMIT_FULL)
                    break;
                if (a == ADMIT_REPLAY) {
                    g->role.discard(g->role.arg, s->item);
                    unstash_head(g, pt);
                    continue;
                }
                s->tracked = true;
            }
            if (!g->role.offer(g->role.arg, s->item, &s->t, 0))
                break;
            unstash_head(g, pt);
        }
        if (pt->paused && pt->head == NULL && pt->assigned)
            pause_partition(g, p, false);
    }
}

/* ---- commits ------------------------------------------------------------ */

static void commit(struct group *g, bool sync)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < g->c.max_partitions; p++) {
        int64_t off = offsets_committable(g->offsets, p);
        if (off >= 0)
            rd_kafka_topic_partition_list_add(l, g->c.topic, p)->offset = off;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(g->rk, l, sync ? 0 : 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            log_msg(LOG_WARN, g->c.component, "could not commit offsets: %s",
                    rd_kafka_err2str(err));
            if (sync) /* no commit callback reports it: hand the positions back */
                for (int i = 0; i < l->cnt; i++)
                    offsets_commit_failed(g->offsets, l->elems[i].partition,
                                          l->elems[i].offset);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Commit results, served on the poll thread: a failed position goes back
 * to the tracker to be committed again (without this the group stays
 * behind until the partition gets new messages). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
                      void *opaque)
{
    (void)rk;
    struct group *g = opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || l == NULL)
        return;
    for (int i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        rd_kafka_resp_err_t perr = e->err != RD_KAFKA_RESP_ERR_NO_ERROR ? e->err : err;
        if (perr == RD_KAFKA_RESP_ERR_NO_ERROR || strcmp(e->topic, g->c.topic) != 0)
            continue;
        offsets_commit_failed(g->offsets, e->partition, e->offset);
        log_msg(LOG_WARN, g->c.component, "commit of partition %d at %lld failed, will retry: %s",
                (int)e->partition, (long long)e->offset, rd_kafka_err2str(perr));
    }
}

/* ---- rebalance ---------------------------------------------------------- */

static bool in_range(const struct group *g, int32_t p)
{
    return p >= 0 && p < g->c.max_partitions;
}

static size_t pending_of(struct group *g, const rd_kafka_topic_partition_list_t *l)
{
    size_t n = 0;
    for (int i = 0; i < l->cnt; i++)
        if (in_range(g, l->elems[i].partition))
            n += offsets_pending(g->offsets, l->elems[i].partition);
    return n;
}

/* Inside the rebalance callback, so the group waits for us (within
 * max.poll.interval.ms): drop the revoked partitions' stashes, give their
 * accepted messages a bounded time to finish, commit, forget them. What is
 * still in flight goes on; its completion changes nothing here and the
 * partitions' next owner reads those messages again. While closing, the
 * role has already drained within the shutdown grace: wait for nothing. */
static void revoke(struct group *g, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++)
        if (in_range(g, l->elems[i].partition))
            discard_stash(g, l->elems[i].partition);
    deadline_t until = deadline_after_ms(g->closing ? 0 : g->c.revoke_drain_ms);
    size_t left;
    while ((left = pending_of(g, l)) > 0 && !deadline_expired(until))
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    if (left > 0)
        log_msg(LOG_WARN, g->c.component,
                "revoke: %zu messages still in flight; the partitions' next owner will read "
                "them again",
                left);
    commit(g, true);
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (!in_range(g, p))
            continue;
        offsets_forget(g->offsets, p);
        struct partition *pt = &g->parts[p];
        /* Resumed in librdkafka, not only in our flags: librdkafka keeps a
         * partition's pause across unassign and assign, so a partition
         * paused for backpressure and later given back to this consumer
         * would never be fetched again while we believe it runs (the churn
         * storm of tests/fault/test_churn.py stalled on it; test_group
         * shows it deterministically). Resumed here, while still assigned:
         * a resume right after a new assign can outdate the assign's start
         * offset (librdkafka #2190). Should the resume fail, the flag stays
         * set and drain_stashes() resumes the partition once it is assigned
         * here again. */
        if (pt->paused)
            pause_partition(g, p, false);
        if (pt->assigned)
            metric_gauge_add(g->m_assigned, -1);
        pt->assigned = false;
        if (pt->m_oldest != NULL)
            metric_set(pt->m_oldest, 0);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *l, void *opaque)
{
    struct group *g = opaque;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < l->cnt; i++) {
            int32_t p = l->elems[i].partition;
            if (!in_range(g, p)) {
                log_msg(LOG_ERROR, g->c.component,
                        "partition %d is beyond the %d this process handles: it will not be "
                        "consumed here",
                        (int)p, (int)g->c.max_partitions);
                continue;
            }
            if (!g->parts[p].assigned) {
                g->parts[p].assigned = true;
                metric_gauge_add(g->m_assigned, 1);
            }
        }
        log_msg(LOG_INFO, g->c.component, "assigned %d partitions", l->cnt);
        if (g->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, l);
            if (e != NULL) {
                log_msg(LOG_ERROR, g->c.component, "could not assign: %s",
                        rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
            }
        } else {
            rd_kafka_resp_err_t r = rd_kafka_assign(rk, l);
            if (r != RD_KAFKA_RESP_ERR_NO_ERROR)
                log_msg(LOG_ERROR, g->c.component, "could not assign: %s", rd_kafka_err2str(r));
        }
        if (g->role.rebalanced != NULL)
            g->role.rebalanced(g->role.arg, true);
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_msg(LOG_INFO, g->c.component, "revoking %d partitions: draining", l->cnt);
        if (rd_kafka_assignment_lost(rk))
            log_msg(LOG_WARN, g->c.component,
                    "assignment lost: uncommitted work will be redone by the next owner");
        revoke(g, l);
        if (g->cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, l);
            if (e != NULL)
                rd_kafka_error_destroy(e);
        } else {
            rd_kafka_assign(rk, NULL);
        }
        if (g->role.rebalanced != NULL)
            g->role.rebalanced(g->role.arg, false);
        return;
    }
    log_msg(LOG_ERROR, g->c.component, "rebalance error: %s", rd_kafka_err2str(err));
    rd_kafka_assign(rk, NULL);
}

/* ---- messages ----------------------------------------------------------- */

static void on_message(struct group *g, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_msg(LOG_WARN, g->c.component, "consumer error (partition %d, offset %lld): %s",
                    (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    int32_t p = m->partition;
    int64_t offset = m->offset;
    if (!in_range(g, p)) {
        log_msg(LOG_ERROR, g->c.component, "partition %d is beyond the %d this process handles",
                (int)p, (int)g->c.max_partitions);
        rd_kafka_message_destroy(m);
        return;
    }
    metric_add(g->m_consumed, 1);
    void *item = g->role.wrap(g->role.arg, m);
    if (item == NULL) {
        /* Not tracked, so never committed past: it comes back after a
         * restart. Say so loudly. */
        log_msg(LOG_ERROR, g->c.component,
                "out of memory: partition %d offset %lld skipped for now", (int)p,
                (long long)offset);
        rd_kafka_message_destroy(m);
        return;
    }
    struct group_ticket t = {.partition = p, .offset = offset};
    /* Behind a stash, in order: a stashed message is tracked only when it
     * leaves the stash, so tracking order stays offset order. */
    if (g->parts[p].head != NULL) {
        stash(g, item, &t, false);
        return;
    }
    enum admit a = admit(g, p, offset, &t);
    if (a == ADMIT_REPLAY) {
        g->role.discard(g->role.arg, item);
        return;
    }
    if (a == ADMIT_FULL) {
        stash(g, item, &t, false);
        return;
    }
    /* A short wait for room absorbs ordinary bursts; pausing is kept for a
     * stage that stays full, such as PostgreSQL away. */
    if (!g->role.offer(g->role.arg, item, &t, g->c.offer_wait_ms))
        stash(g, item, &t, true);
}

/* ---- gauges ------------------------------------------------------------- */

static void partition_labels(int32_t p, char *out, size_t outsz)
{
    snprintf(out, outsz, "partition=\"%d\"", (int)p);
}

static void update_gauges(struct group *g)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < g->c.max_partitions; p++) {
        struct partition *pt = &g->parts[p];
        if (!pt->assigned)
            continue;
        rd_kafka_topic_partition_list_add(l, g->c.topic, p);
        int64_t age_ms = 0;
        if (offsets_oldest(g->offsets, p, &age_ms) < 0)
            age_ms = 0;
        if (pt->m_oldest == NULL) {
            char labels[64];
            partition_labels(p, labels, sizeof labels);
            pt->m_oldest = metrics_gauge(g->metrics, "vigil_oldest_unfinished_seconds",
                                         "Age of the oldest message not yet finished (what "
                                         "the committed offset waits for)",
                                         labels);
        }
        metric_set(pt->m_oldest, (double)age_ms / 1000.0);
    }
    if (l->cnt > 0 && rd_kafka_position(g->rk, l) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            int64_t lo, hi;
            int32_t p = l->elems[i].partition;
            int64_t pos = l->elems[i].offset;
            if (pos < 0 || rd_kafka_get_watermark_offsets(g->rk, g->c.topic, p, &lo, &hi) !=
                               RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            struct partition *pt = &g->parts[p];
            if (pt->m_lag == NULL) {
                char labels[64];
                partition_labels(p, labels, sizeof labels);
                pt->m_lag = metrics_gauge(g->metrics, "vigil_consumer_lag",
                                          "Messages behind the end of the partition", labels);
            }
            metric_set(pt->m_lag, (double)(hi > pos ? hi - pos : 0));
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- life cycle --------------------------------------------------------- */

/* A fetch response holds at most fetch.max.bytes, or one record batch
 * larger than that (KIP-74), plus framing; librdkafka drops a connection
 * whose response exceeds receive.message.max.bytes and fetches the same
 * thing again, for ever. So it must exceed both the largest record and
 * fetch.max.bytes; 1 MiB covers the framing of any number of partitions.
 * Only ever raised: an operator's larger value stands. */
static int raise_receive_max(rd_kafka_conf_t *conf, size_t max_record, char *errstr, size_t errsz)
{
    char cur[32], fetch[32];
    size_t curlen = sizeof cur, fetchlen = sizeof fetch;
    long long have = 0, fetch_max = 0;
    if (rd_kafka_conf_get(conf, "receive.message.max.bytes", cur, &curlen) == RD_KAFKA_CONF_OK)
        have = strtoll(cur, NULL, 10);
    if (rd_kafka_conf_get(conf, "fetch.max.bytes", fetch, &fetchlen) == RD_KAFKA_CONF_OK)
        fetch_max = strtoll(fetch, NULL, 10);
    long long margin = 1024 * 1024;
    long long want = (long long)max_record + margin;
    if (fetch_max + margin > want)
        want = fetch_max + margin;
    if (have > want)
        want = have;
    if (want > INT_MAX)
        want = INT_MAX;
    if (have > 0 && have < want && have != 100000000) /* not librdkafka's default */
        log_msg(LOG_WARN, "group",
                "receive.message.max.bytes raised from %lld to %lld: records of up to "
                "max_record_bytes (%zu) must be fetchable, or their partition stops",
                have, want, max_record);
    char v[32];
    snprintf(v, sizeof v, "%lld", want);
    return kafka_conf_set(conf, "receive.message.max.bytes", v, errstr, errsz);
}

static rd_kafka_t *consumer_new(struct group *g, char *errstr, size_t errsz)
{
    const struct group_config *c = &g->c;
    rd_kafka_conf_t *conf = kafka_conf_new(NULL, c->bootstrap, c->client_id, errstr, errsz);
    if (conf == NULL)
        return NULL;
    char prefetch[32];
    snprintf(prefetch, sizeof prefetch, "%d", c->prefetch_kbytes);
    if (kafka_conf_set(conf, "group.id", c->group, errstr, errsz) != 0 ||
        kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "partition.assignment.strategy", c->assignor, errstr, errsz) != 0 ||
        /* Prefetch bound: messages of a paused partition already fetched
         * are still delivered and wait in its stash; this caps them. */
        kafka_conf_set(conf, "queued.max.messages.kbytes", prefetch, errstr, errsz) != 0 ||
        kafka_conf_apply(conf, c->cfg, errstr, errsz) != 0 ||
        /* Offsets are committed by hand, only past finished messages: not
         * something a pass-through property may change. */
        kafka_conf_set(conf, "enable.auto.commit", "false", errstr, errsz) != 0 ||
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errsz) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (c->max_record_bytes > 0 && raise_receive_max(conf, c->max_record_bytes, errstr, errsz) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_opaque(conf, g);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, errsz);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

struct group *group_new(const struct group_config *cfg, const struct group_role *role,
                        struct metrics *metrics, char *errstr, size_t errstr_size)
{
    struct group *g = calloc(1, sizeof *g);
    if (g == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    g->c = *cfg;
    if (g->c.max_partitions <= 0)
        g->c.max_partitions = 1024;
    if (g->c.inflight_per_partition == 0)
        g->c.inflight_per_partition = 20000;
    if (g->c.commit_interval_ms <= 0)
        g->c.commit_interval_ms = 500;
    if (g->c.commit_refresh_ms <= 0)
        g->c.commit_refresh_ms = 5000;
    if (g->c.revoke_drain_ms <= 0)
        g->c.revoke_drain_ms = 30000;
    if (g->c.offer_wait_ms < 0)
        g->c.offer_wait_ms = 0;
    if (g->c.prefetch_kbytes <= 0)
        g->c.prefetch_kbytes = 4096;
    if (g->c.component == NULL)
        g->c.component = "group";
    if (g->c.client_id == NULL)
        g->c.client_id = "vigil";
    if (g->c.assignor == NULL)
        g->c.assignor = "range";
    if (g->c.bootstrap == NULL || g->c.group == NULL || g->c.topic == NULL) {
        snprintf(errstr, errstr_size, "the consumer needs bootstrap servers, a group and a topic");
        free(g);
        return NULL;
    }
    g->role = *role;
    g->metrics = metrics;
    pthread_mutex_init(&g->exit_lock, NULL);
    deadline_cond_init(&g->exit_cond);
    g->cooperative = strstr(g->c.assignor, "cooperative") != NULL;
    g->offsets = offsets_new(g->c.max_partitions, g->c.inflight_per_partition);
    g->parts = calloc((size_t)g->c.max_partitions, sizeof *g->parts);
    if (g->offsets == NULL || g->parts == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    g->m_consumed = metrics_counter(metrics, "vigil_consumed_total", "Messages consumed", NULL);
    g->m_done = metrics_counter(metrics, "vigil_processed_total",
                                "Messages whose every effect is durable", NULL);
    g->m_abandoned = metrics_counter(metrics, "vigil_abandoned_total",
                                     "Messages left unfinished (processed again later)", NULL);
    g->m_paused = metrics_gauge(metrics, "vigil_paused_partitions",
                                "Partitions paused (backpressure)", NULL);
    g->m_assigned = metrics_gauge(metrics, "vigil_assigned_partitions", "Partitions assigned",
                                  NULL);
    g->rk = consumer_new(g, errstr, errstr_size);
    if (g->rk == NULL)
        goto err;
    return g;
err:
    offsets_destroy(g->offsets);
    free(g->parts);
    pthread_mutex_destroy(&g->exit_lock);
    pthread_cond_destroy(&g->exit_cond);
    free(g);
    return NULL;
}

int group_subscribe(struct group *g, char *errstr, size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(sub, g->c.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(g->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(errstr, errstr_size, "could not subscribe to %s: %s", g->c.topic,
                 rd_kafka_err2str(err));
        return -1;
    }
    atomic_store(&g->consuming, true);
    g->next_commit = deadline_after_ms(g->c.commit_interval_ms);
    g->next_refresh = deadline_after_ms(g->c.commit_refresh_ms);
    g->next_tick = deadline_after_ms(1000);
    log_msg(LOG_INFO, g->c.component, "joined group %s on %s (%s assignor)", g->c.group,
            g->c.topic, g->c.assignor);
    return 0;
}

void group_poll(struct group *g, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(g->rk, timeout_ms);
    if (m != NULL) {
        if (g->stopped) /* not tracked: read again by whoever owns it next */
            rd_kafka_message_destroy(m);
        else
            on_message(g, m);
    }
    drain_stashes(g);
    if (deadline_expired(g->next_refresh)) {
        /* An async commit librdkafka retried can land after a newer one
         * and move the group back without any callback saying so (the
         * mock-cluster fault test's notifier stayed 3 behind for a
         * minute): the current positions go out again. A Kafka consumer's
         * auto-commit does the same every interval. */
        for (int32_t p = 0; p < g->c.max_partitions; p++)
            if (g->parts[p].assigned)
                offsets_recommit(g->offsets, p);
        g->next_refresh = deadline_after_ms(g->c.commit_refresh_ms);
        g->next_commit = deadline_after_ms(0);
    }
    if (deadline_expired(g->next_commit)) {
        commit(g, false);
        g->next_commit = deadline_after_ms(g->c.commit_interval_ms);
    }
    if (deadline_expired(g->next_tick)) {
        update_gauges(g);
        g->next_tick = deadline_after_ms(1000);
    }
}

void group_done(struct group *g, const struct group_ticket *t)
{
    if (offsets_done(g->offsets, t->partition, t->offset, t->epoch))
        metric_add(g->m_done, 1);
}

void group_abandon(struct group *g, const struct group_ticket *t)
{
    if (offsets_abandon(g->offsets, t->partition, t->offset, t->epoch))
        metric_add(g->m_abandoned, 1);
}

bool group_ready(struct group *g, char *why, size_t whysz)
{
    if (g == NULL || !atomic_load(&g->consuming)) {
        snprintf(why, whysz, g == NULL ? "not consuming yet" : "stopping");
        return false;
    }
    if (g->c.stall_ms <= 0)
        return true;
    for (int32_t p = 0; p < g->c.max_partitions; p++) {
        int64_t age_ms = 0;
        int64_t off = offsets_oldest(g->offsets, p, &age_ms);
        if (off >= 0 && age_ms > g->c.stall_ms) {
            snprintf(why, whysz, "partition %d stalled: offset %lld unfinished for %lld s",
                     (int)p, (long long)off, (long long)(age_ms / 1000));
            return false;
        }
    }
    return true;
}

size_t group_pending(struct group *g)
{
    size_t n = 0;
    for (int32_t p = 0; p < g->c.max_partitions; p++)
        n += offsets_pending(g->offsets, p);
    return n;
}

size_t group_flush_stashes(struct group *g, deadline_t deadline)
{
    while (g->stashed > 0 && !g->stopped) {
        drain_stashes(g);
        if (g->stashed == 0 || deadline_expired(deadline))
            break;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    if (g->stashed > 0)
        log_msg(LOG_WARN, g->c.component, "%zu fetched messages found no room before the stop",
                g->stashed);
    return g->stashed;
}

void group_stop(struct group *g)
{
    if (g->stopped)
        return;
    g->stopped = true;
    atomic_store(&g->consuming, false);
    for (int32_t p = 0; p < g->c.max_partitions; p++)
        discard_stash(g, p);
}

/* Logs, per partition, what is left unfinished and where its next owner
 * starts. Returns true if anything was. Any thread (offsets is locked). */
static bool log_unfinished(struct group *g)
{
    bool any = false;
    for (int32_t p = 0; p < g->c.max_partitions; p++) {
        int64_t oldest = offsets_oldest(g->offsets, p, NULL);
        if (oldest < 0)
            continue;
        any = true;
        log_msg(LOG_WARN, g->c.component,
                "partition %d left unfinished: %zu messages from offset %lld on will be "
                "read again by its next owner",
                (int)p, offsets_inflight(g->offsets, p), (long long)oldest);
    }
    return any;
}

void group_close(struct group *g)
{
    if (g == NULL || g->closed)
        return;
    group_stop(g);
    g->closing = true;
    commit(g, true);
    g->left_unfinished = log_unfinished(g);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(g->rk);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_msg(LOG_WARN, g->c.component, "could not leave the group cleanly: %s",
                rd_kafka_err2str(err));
    g->closed = true;
}

int group_exit_status(const struct group *g)
{
    return g != NULL && g->left_unfinished ? GROUP_EXIT_UNFINISHED : GROUP_EXIT_CLEAN;
}

static void *exit_guard(void *arg)
{
    struct group *g = arg;
    pthread_mutex_lock(&g->exit_lock);
    while (!g->exit_disarmed && !deadline_expired(g->exit_deadline))
        deadline_cond_wait(&g->exit_cond, &g->exit_lock, g->exit_deadline);
    bool disarmed = g->exit_disarmed;
    pthread_mutex_unlock(&g->exit_lock);
    if (disarmed)
        return NULL;
    /* Something hangs past the grace (PostgreSQL, the broker, a stage):
     * what is not committed is read again by the next owner, so ending
     * here loses nothing; waiting longer would only get us SIGKILLed with
     * nothing said. */
    log_msg(LOG_ERROR, g->c.component,
            "the shutdown grace ran out before the stop finished: exiting now (status %d)",
            GROUP_EXIT_FORCED);
    log_unfinished(g);
    _Exit(GROUP_EXIT_FORCED);
}

int group_arm_exit(struct group *g, deadline_t deadline)
{
    if (g->exit_armed)
        return 0;
    g->exit_deadline = deadline;
    g->exit_disarmed = false;
    if (pthread_create(&g->exit_thread, NULL, exit_guard, g) != 0) {
        log_msg(LOG_ERROR, g->c.component,
                "could not start the shutdown guard: this stop is not bounded by the grace");
        return -1;
    }
    g->exit_armed = true;
    return 0;
}

void group_disarm_exit(struct group *g)
{
    if (g == NULL || !g->exit_armed)
        return;
    pthread_mutex_lock(&g->exit_lock);
    g->exit_disarmed = true;
    pthread_cond_broadcast(&g->exit_cond);
    pthread_mutex_unlock(&g->exit_lock);
    pthread_join(g->exit_thread, NULL);
    g->exit_armed = false;
}

void group_destroy(struct group *g)
{
    if (g == NULL)
        return;
    if (!g->closed)
        group_close(g);
    rd_kafka_destroy(g->rk); /* still under the guard: it can hang too */
    group_disarm_exit(g);
    for (int32_t p = 0; p < g->c.max_partitions; p++)
        discard_stash(g, p);
    offsets_destroy(g->offsets);
    free(g->parts);
    pthread_mutex_destroy(&g->exit_lock);
    pthread_cond_destroy(&g->exit_cond);
    free(g);
}

rd_kafka_t *group_kafka(struct group *g)
{
    return g->rk;
}
