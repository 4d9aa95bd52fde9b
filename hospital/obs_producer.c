/*
 * obs_producer: the idempotent observations producer (contract in
 * obs_producer.h).
 *
 * DESIGN
 *
 * The bound on messages in flight is ours, not only librdkafka's queue
 * limit: librdkafka's queue.buffering.max.messages refuses a produce call
 * when full, while we want a caller to block and serve delivery reports,
 * and we want the bound to cover messages the broker has not yet
 * acknowledged, which is what a resumable import must reason about.
 *
 * Counters are atomics because a progress display may read them from
 * another thread; they are written only by the thread that sends (delivery
 * callbacks run inside rd_kafka_poll/flush on that thread).
 *
 * librdkafka 2.0.2 (Debian) can raise a fatal idempotence error
 * (DESIGN.md); a long-running role would rebuild the producer, but a
 * command-line producer stops, reports it, and lets the caller resume
 * (`vigil import --skip`), which keeps the accounting exact.
 */
#include "obs_producer.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "codec.h"
#include "kafka.h"
#include "log.h"

struct obs_producer {
    rd_kafka_t *rk;
    struct codec *codec;
    char *topic;
    size_t max_in_flight;
    obs_delivery_fn on_delivery;
    void *arg;
    atomic_uint_fast64_t sent, delivered, failed;
    atomic_bool fatal;
    char fatal_msg[512];
};

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct obs_producer *p = opaque;
    uint64_t token = (uint64_t)(uintptr_t)m->_private;
    bool ok = m->err == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (ok)
        atomic_fetch_add(&p->delivered, 1);
    else
        atomic_fetch_add(&p->failed, 1);
    if (p->on_delivery != NULL)
        p->on_delivery(p->arg, token, ok, ok ? NULL : rd_kafka_err2str(m->err));
}

/* Runs on a librdkafka thread: touch only what is safe there. fatal_msg is
 * written once, before the flag is published. */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct obs_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[400];
        rd_kafka_fatal_error(rk, why, sizeof why);
        bool was = atomic_load(&p->fatal);
        if (!was) {
            snprintf(p->fatal_msg, sizeof p->fatal_msg, "fatal Kafka producer error: %s", why);
            atomic_store(&p->fatal, true);
        }
        log_msg(LOG_ERROR, "produce", "fatal Kafka producer error: %s", why);
        return;
    }
    log_msg(LOG_WARN, "produce", "Kafka: %s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err),
            reason);
}

struct obs_producer *obs_producer_new(const struct obs_producer_options *opt, char *errstr,
                                      size_t errstr_size)
{
    struct obs_producer *p = calloc(1, sizeof *p);
    rd_kafka_conf_t *conf = NULL;
    if (p == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->max_in_flight = opt->max_in_flight > 0 ? opt->max_in_flight : 1;
    p->on_delivery = opt->on_delivery;
    p->arg = opt->arg;
    p->topic = strdup(opt->topic);
    if (p->topic == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    p->codec = codec_new(NULL, errstr, errstr_size);
    if (p->codec == NULL)
        goto err;

    /* vigil's defaults first, then the user's properties, which win. */
    conf = kafka_conf_new(NULL, opt->bootstrap, opt->client_id, errstr, errstr_size);
    if (conf == NULL)
        goto err;
    char qmax[32];
    snprintf(qmax, sizeof qmax, "%zu", p->max_in_flight + 1000);
    if (kafka_conf_set(conf, "enable.idempotence", "true", errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "acks", "all", errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "linger.ms", "5", errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "compression.type", "lz4", errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "message.timeout.ms", "60000", errstr, errstr_size) != 0 ||
        kafka_conf_set(conf, "queue.buffering.max.messages", qmax, errstr, errstr_size) != 0 ||
        kafka_conf_apply(conf, opt->cfg, errstr, errstr_size) != 0)
        goto err;
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, p);

    char why[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof why);
    if (p->rk == NULL) {
        snprintf(errstr, errstr_size, "could not create the Kafka producer: %s", why);
        goto err;
    }
    return p; /* rd_kafka_new took conf */
err:
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    codec_destroy(p->codec);
    free(p->topic);
    free(p);
    return NULL;
}

void obs_producer_destroy(struct obs_producer *p)
{
    if (p == NULL)
        return;
    if (p->rk != NULL) {
        /* Purged messages get their reports (as failed) from the flush. */
        rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(p->rk, 5000);
        rd_kafka_destroy(p->rk);
    }
    codec_destroy(p->codec);
    free(p->topic);
    free(p);
}

static uint64_t in_flight(const struct obs_producer *p)
{
    return atomic_load(&p->sent) - atomic_load(&p->delivered) - atomic_load(&p->failed);
}

size_t obs_producer_key(const struct observation *obs, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s", obs->study_id, obs->subject_id);
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

enum obs_send_status obs_producer_send(struct obs_producer *p, const struct observation *obs,
                                       uint64_t token, struct ctx *cancel, char *errstr,
                                       size_t errstr_size)
{
    uint8_t value[CODEC_OBSERVATION_MAX_ENCODED];
    char key[2 * OBS_ID_MAX + 2];
    size_t vlen = 0;
    if (codec_encode_observation(p->codec, obs, CODEC_SINGLE_OBJECT, 0, value, sizeof value,
                                 &vlen, errstr, errstr_size) != CODEC_OK)
        return OBS_SEND_INVALID;
    size_t klen = obs_producer_key(obs, key, sizeof key);

    for (;;) {
        if (atomic_load(&p->fatal)) {
            snprintf(errstr, errstr_size, "%s", p->fatal_msg);
            return OBS_SEND_FATAL;
        }
        if (in_flight(p) >= p->max_in_flight) {
            if (ctx_done(cancel))
                return OBS_SEND_CANCELLED;
            rd_kafka_poll(p->rk, 20);
            continue;
        }
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(p->topic), RD_KAFKA_V_KEY(key, klen),
            RD_KAFKA_V_VALUE(value, vlen), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)token), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            if (ctx_done(cancel))
                return OBS_SEND_CANCELLED;
            rd_kafka_poll(p->rk, 20);
            continue;
        }
        snprintf(errstr, errstr_size, "could not produce to topic %s: %s", p->topic,
                 rd_kafka_err2str(err));
        return OBS_SEND_FATAL;
    }
    atomic_fetch_add(&p->sent, 1);
    rd_kafka_poll(p->rk, 0);
    return OBS_SEND_OK;
}

void obs_producer_poll(struct obs_producer *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

int obs_producer_flush(struct obs_producer *p, deadline_t deadline)
{
    while (in_flight(p) > 0) {
        int64_t left = deadline_remaining_ms(deadline);
        if (left <= 0)
            return -1;
        rd_kafka_flush(p->rk, (int)(left < 100 ? left : 100));
    }
    return 0;
}

void obs_producer_stats(const struct obs_producer *p, struct obs_producer_stats *out)
{
    /* Read the completions before sent, so in_flight is never negative. */
    out->delivered = atomic_load(&p->delivered);
    out->failed = atomic_load(&p->failed);
    out->sent = atomic_load(&p->sent);
    out->in_flight = out->sent - out->delivered - out->failed;
}

const char *obs_producer_fatal(const struct obs_producer *p)
{
    return atomic_load(&p->fatal) ? p->fatal_msg : "";
}
