#include "kafka.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

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

