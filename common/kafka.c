#include "kafka.h"

#include <openssl/evp.h>
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

void kafka_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    /* EVP_Digest fails only when out of memory inside OpenSSL: an all-zero
     * digest then matches nothing, which the reader sees. */
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        memset(md, 0, 32);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

/* Copies ORIG's headers into H; when BOUNDED (a truncated dead letter)
 * only while their names and values fit in BUDGET bytes, so a record whose
 * headers are what made it too large still gets a dead letter. Returns how
 * many were left out. */
static int copy_headers(rd_kafka_headers_t *h, const rd_kafka_headers_t *orig, bool bounded,
                        size_t budget)
{
    int dropped = 0;
    size_t used = 0;
    const char *name;
    const void *value;
    size_t size;
    for (size_t i = 0; rd_kafka_header_get_all(orig, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        size_t cost = strlen(name) + size;
        if (bounded && used + cost > budget) {
            dropped++;
            continue;
        }
        used += cost;
        rd_kafka_header_add(h, name, -1, value, (ssize_t)size);
    }
    return dropped;
}

rd_kafka_headers_t *kafka_dead_letter_headers(const rd_kafka_message_t *m,
                                              const struct kafka_dead_letter *d)
{
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(12);
    bool truncated = d->truncated;
    int dropped = 0;
    /* rd_kafka_message_headers parses lazily into the message: not const
     * in librdkafka's API, but it does not change what the message says */
    if (rd_kafka_message_headers((rd_kafka_message_t *)m, &orig) ==
            RD_KAFKA_RESP_ERR_NO_ERROR &&
        orig != NULL)
        dropped = copy_headers(h, orig, truncated, d->header_budget);
    char num[32];
    rd_kafka_header_add(h, "vigil.error.class", -1, d->error_class, -1);
    rd_kafka_header_add(h, "vigil.error.message", -1, d->error_message, -1);
    rd_kafka_header_add(h, "vigil.source.topic", -1, d->source_topic, -1);
    snprintf(num, sizeof num, "%d", (int)m->partition);
    rd_kafka_header_add(h, "vigil.source.partition", -1, num, -1);
    snprintf(num, sizeof num, "%lld", (long long)m->offset);
    rd_kafka_header_add(h, "vigil.source.offset", -1, num, -1);
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    if (ts >= 0) {
        snprintf(num, sizeof num, "%lld", (long long)ts);
        rd_kafka_header_add(h, "vigil.source.timestamp", -1, num, -1);
    }
    snprintf(num, sizeof num, "%zu", m->payload != NULL ? m->len : 0);
    rd_kafka_header_add(h, "vigil.original.size", -1, num, -1);
    rd_kafka_header_add(h, "vigil.original.sha256", -1, d->sha256, -1);
    if (truncated) {
        rd_kafka_header_add(h, "vigil.truncated", -1, "true", -1);
        if (d->publish_error != NULL)
            rd_kafka_header_add(h, "vigil.publish.error", -1, d->publish_error, -1);
        if (dropped > 0) {
            snprintf(num, sizeof num, "%d", dropped);
            rd_kafka_header_add(h, "vigil.headers.dropped", -1, num, -1);
        }
    }
    return h;
}
