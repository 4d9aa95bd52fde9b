#include "testkafka.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

/* ThreadSanitizer (GCC 12's) intercepts POSIX threads but not C11's, and
 * librdkafka runs on C11 threads, mutexes and condition variables: its
 * threads crash in TSan's allocator, and its locking (how it hands our
 * messages from thread to thread) is invisible, so every message looks
 * raced. These definitions, exported from the test program, win over
 * glibc's for librdkafka and do the same with the POSIX calls TSan sees.
 * glibc's mtx_t and cnd_t are its pthread_mutex_t and pthread_cond_t. */
struct thrd_start {
    thrd_start_t fn;
    void *arg;
};

static void *thrd_trampoline(void *p)
{
    struct thrd_start s = *(struct thrd_start *)p;
    free(p);
    return (void *)(intptr_t)s.fn(s.arg);
}

static int c11(int rc)
{
    return rc == 0 ? thrd_success : rc == ETIMEDOUT ? thrd_timedout
                                  : rc == EBUSY      ? thrd_busy
                                  : rc == ENOMEM     ? thrd_nomem
                                                     : thrd_error;
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    struct thrd_start *s = malloc(sizeof *s);
    if (s == NULL)
        return thrd_nomem;
    s->fn = func;
    s->arg = arg;
    int rc = pthread_create(thr, NULL, thrd_trampoline, s);
    if (rc != 0)
        free(s);
    return c11(rc);
}

int thrd_join(thrd_t thr, int *res)
{
    void *r = NULL;
    int rc = pthread_join(thr, &r);
    if (rc == 0 && res != NULL)
        *res = (int)(intptr_t)r;
    return c11(rc);
}

int mtx_init(mtx_t *m, int type)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    if (type & mtx_recursive)
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    int rc = pthread_mutex_init((pthread_mutex_t *)m, &a);
    pthread_mutexattr_destroy(&a);
    return c11(rc);
}

void mtx_destroy(mtx_t *m)
{
    pthread_mutex_destroy((pthread_mutex_t *)m);
}

int mtx_lock(mtx_t *m)
{
    return c11(pthread_mutex_lock((pthread_mutex_t *)m));
}

int mtx_unlock(mtx_t *m)
{
    return c11(pthread_mutex_unlock((pthread_mutex_t *)m));
}

int cnd_init(cnd_t *c)
{
    return c11(pthread_cond_init((pthread_cond_t *)c, NULL));
}

void cnd_destroy(cnd_t *c)
{
    pthread_cond_destroy((pthread_cond_t *)c);
}

int cnd_signal(cnd_t *c)
{
    return c11(pthread_cond_signal((pthread_cond_t *)c));
}

int cnd_broadcast(cnd_t *c)
{
    return c11(pthread_cond_broadcast((pthread_cond_t *)c));
}

int cnd_wait(cnd_t *c, mtx_t *m)
{
    return c11(pthread_cond_wait((pthread_cond_t *)c, (pthread_mutex_t *)m));
}

int cnd_timedwait(cnd_t *restrict c, mtx_t *restrict m, const struct timespec *restrict ts)
{
    return c11(pthread_cond_timedwait((pthread_cond_t *)c, (pthread_mutex_t *)m, ts));
}
#endif

rd_kafka_t *testkafka_client(rd_kafka_type_t type, const char *bootstraps, const char *group)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) != 0 ||
        rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != 0)
        goto err;
    if (type == RD_KAFKA_PRODUCER &&
        (rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr) != 0 ||
         /* A request caught by a broker going down waits this long for its
          * answer before it is retried (default 60 s). */
         rd_kafka_conf_set(conf, "socket.timeout.ms", "10000", errstr, sizeof errstr) != 0))
        goto err;
    if (group != NULL &&
        (rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) != 0 ||
         rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof errstr) != 0))
        goto err;
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == NULL)
        goto err;
    return rk;
err:
    fprintf(stderr, "could not make a Kafka client: %s\n", errstr);
    rd_kafka_conf_destroy(conf);
    return NULL;
}

void testkafka_observation(const char *study, int i, int alert_every, struct observation *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->observation_id, sizeof o->observation_id, "%s-o%06d", study, i % 1000000);
    snprintf(o->study_id, sizeof o->study_id, "%s", study);
    snprintf(o->site_id, sizeof o->site_id, "SITE-1");
    snprintf(o->subject_id, sizeof o->subject_id, "S-%03d", i % 200);
    snprintf(o->loinc, sizeof o->loinc, "2823-3");
    o->has_value = true;
    o->value = alert_every > 0 && i % alert_every == 0 ? 6.9 : 4.0 + (i % 10) / 10.0;
    snprintf(o->unit, sizeof o->unit, "mmol/L");
    o->has_ref_low = o->has_ref_high = true;
    o->ref_low = 3.5;
    o->ref_high = 5.1;
    o->effective_ms = 1767225600000LL + (int64_t)i * 1000;
    o->issued_ms = o->effective_ms + 500;
    o->status = OBS_FINAL;
    snprintf(o->visit, sizeof o->visit, "W1");
}

int testkafka_produce(rd_kafka_t *p, struct codec *codec, const char *topic, const char *study,
                      int from, int to, int alert_every)
{
    int queued = 0;
    for (int i = from; i < to; i++) {
        struct observation o;
        testkafka_observation(study, i, alert_every, &o);
        unsigned char buf[CODEC_OBSERVATION_MAX_ENCODED];
        size_t len = 0;
        char err[256];
        if (codec_encode_observation(codec, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                     sizeof err) != CODEC_OK) {
            fprintf(stderr, "encode %d: %s\n", i, err);
            continue;
        }
        char key[160];
        int klen = snprintf(key, sizeof key, "%s/%s", o.study_id, o.subject_id);
        for (;;) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)klen),
                RD_KAFKA_V_VALUE(buf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
                queued++;
                break;
            }
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                fprintf(stderr, "produce %d: %s\n", i, rd_kafka_err2str(e));
                break;
            }
            rd_kafka_poll(p, 50);
        }
        rd_kafka_poll(p, 0);
    }
    return queued;
}

int64_t testkafka_end(rd_kafka_t *rk, const char *topic, int32_t part)
{
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t lo = -1, hi = -1;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic, part, &lo, &hi, 5000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return hi;
        fprintf(stderr, "watermarks of %s [%d]: %s (attempt %d)\n", topic, (int)part,
                rd_kafka_err2str(err), attempt + 1);
    }
    return -1;
}

bool testkafka_committed_at_end(const char *bootstraps, const char *group, const char *topic,
                                int32_t nparts, char *seen, size_t seensz)
{
    rd_kafka_t *c = testkafka_client(RD_KAFKA_CONSUMER, bootstraps, group);
    if (c == NULL)
        return false;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int32_t p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    bool ok = rd_kafka_committed(c, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t used = 0;
    if (seen != NULL && seensz > 0)
        seen[0] = '\0';
    for (int i = 0; i < l->cnt; i++) {
        int64_t end = testkafka_end(c, topic, l->elems[i].partition);
        ok = ok && l->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && l->elems[i].offset == end;
        if (seen != NULL && used < seensz)
            used += (size_t)snprintf(seen + used, seensz - used, "%s[%d] %lld/%lld",
                                     i ? ", " : "", (int)l->elems[i].partition,
                                     (long long)l->elems[i].offset, (long long)end);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return ok;
}
