#include "dlq.h"

#include "kafka.h"

int dlq_send(struct publisher *p, const char *dlq_topic, const char *source_topic,
             struct work *w, const char *error_class, const char *error_message)
{
    rd_kafka_headers_t *h =
        kafka_dead_letter_headers(w->rkm, source_topic, error_class, error_message);
    w->store_row = false;
    work_hold(w);
    if (publisher_send(p, dlq_topic, w->rkm->key, w->rkm->key_len, w->rkm->payload, w->rkm->len,
                       h, work_release_cb, w) != 0) {
        work_release(w);
        return -1;
    }
    return 0;
}
