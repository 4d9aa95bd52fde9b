#include "kafka.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"

int kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                   size_t errstr_size)
{
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "could not set Kafka property %s: %s", name, why);
        return -1;
    }
    return 0;
}

/* librdkafka logs from its own threads; log_msg is thread-safe. Levels are
 * syslog's: 0-3 error, 4 warning, 5-6 info, 7 debug. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    enum log_level l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO
                                                                                  : LOG_DEBUG;
    log_msg(l, "kafka", "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

struct apply {
    rd_kafka_conf_t *conf;
    char *errstr;
    size_t errsz;
    int failed;
};

static void apply_prop(void *arg, const char *name, const char *value)
{
    struct apply *a = arg;
    if (a->failed)
        return;
    if (kafka_conf_set(a->conf, name, value, a->errstr, a->errsz) != 0)
        a->failed = 1;
}

int kafka_conf_apply(rd_kafka_conf_t *conf, const struct config *cfg, char *errstr,
                     size_t errstr_size)
{
    if (cfg == NULL)
        return 0;
    struct apply a = {conf, errstr, errstr_size, 0};
    config_kafka_foreach(cfg, apply_prop, &a);
    return a.failed ? -1 : 0;
}

rd_kafka_conf_t *kafka_conf_new(const struct config *cfg, const char *bootstrap,
                                const char *client_id, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "client.id", client_id, errstr, errstr_size) != 0)
        goto err;
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (kafka_conf_apply(conf, cfg, errstr, errstr_size) != 0)
        goto err;
    return conf;
err:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int64_t kafka_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void kafka_assign(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, bool cooperative,
                  const char *component)
{
    if (cooperative) {
        rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, l);
        if (e != NULL) {
            log_msg(LOG_ERROR, component, "could not assign: %s", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
        }
        return;
    }
    rd_kafka_resp_err_t r = rd_kafka_assign(rk, l);
    if (r != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_msg(LOG_ERROR, component, "could not assign: %s", rd_kafka_err2str(r));
}

void kafka_unassign(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, bool cooperative)
{
    if (cooperative && l != NULL) {
        rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, l);
        if (e != NULL)
            rd_kafka_error_destroy(e);
        return;
    }
    rd_kafka_assign(rk, NULL);
}

void kafka_commit_offsets(rd_kafka_t *rk, const char *topic, struct offsets *o, int32_t nparts,
                          bool sync, const char *component)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int32_t p = 0; p < nparts; p++) {
        int64_t off = offsets_committable(o, p);
        if (off >= 0)
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = off;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(rk, l, sync ? 0 : 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            log_msg(LOG_WARN, component, "could not commit offsets: %s", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

void kafka_commit_result(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t *l,
                         const char *topic, struct offsets *o, const char *component)
{
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET || l == NULL)
        return;
    for (int i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        rd_kafka_resp_err_t perr = e->err != RD_KAFKA_RESP_ERR_NO_ERROR ? e->err : err;
        if (perr == RD_KAFKA_RESP_ERR_NO_ERROR || strcmp(e->topic, topic) != 0)
            continue;
        offsets_commit_failed(o, e->partition, e->offset);
        log_msg(LOG_WARN, component, "commit of partition %d at %lld failed, will retry: %s",
                (int)e->partition, (long long)e->offset, rd_kafka_err2str(perr));
    }
}

rd_kafka_headers_t *kafka_dead_letter_headers(const rd_kafka_message_t *m,
                                              const char *source_topic, const char *error_class,
                                              const char *error_message)
{
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *h;
    /* rd_kafka_message_headers parses lazily into the message: not const
     * in librdkafka's API, but it does not change what the message says */
    if (rd_kafka_message_headers((rd_kafka_message_t *)m, &orig) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        orig != NULL)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(6);
    char part[16], off[32];
    snprintf(part, sizeof part, "%d", (int)m->partition);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    rd_kafka_header_add(h, "vigil.error.class", -1, error_class, -1);
    rd_kafka_header_add(h, "vigil.error.message", -1, error_message, -1);
    rd_kafka_header_add(h, "vigil.source.topic", -1, source_topic, -1);
    rd_kafka_header_add(h, "vigil.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "vigil.source.offset", -1, off, -1);
    return h;
}

bool kafka_pause(rd_kafka_t *rk, const char *topic, int32_t p, bool pause,
                 const char *component)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t err =
        pause ? rd_kafka_pause_partitions(rk, l) : rd_kafka_resume_partitions(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_msg(LOG_WARN, component, "could not %s partition %d: %s",
                pause ? "pause" : "resume", (int)p, rd_kafka_err2str(err));
        return false;
    }
    return true;
}

size_t kafka_revoke_wait(const rd_kafka_topic_partition_list_t *l, int32_t nparts,
                         size_t (*left)(void *arg, int32_t p), void *arg, int drain_ms,
                         const char *component)
{
    deadline_t until = deadline_after_ms(drain_ms);
    for (;;) {
        size_t n = 0;
        for (int i = 0; i < l->cnt; i++) {
            int32_t p = l->elems[i].partition;
            if (p >= 0 && p < nparts)
                n += left(arg, p);
        }
        if (n == 0)
            return 0;
        if (deadline_expired(until)) {
            log_msg(LOG_WARN, component,
                    "revoke: %zu messages still in flight after %d ms; the partitions' next "
                    "owner will read them again",
                    n, drain_ms);
            return n;
        }
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
}
