#include "dlq.h"

#include <stdio.h>
#include <string.h>

int dlq_send(struct publisher *p, const char *dlq_topic, const char *source_topic,
             struct work *w, const char *error_class, const char *error_message)
{
    rd_kafka_headers_t *orig = NULL;
    rd_kafka_headers_t *h;
    if (rd_kafka_message_headers(w->rkm, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig != NULL)
        h = rd_kafka_headers_copy(orig);
    else
        h = rd_kafka_headers_new(6);
    char part[16], off[32];
    snprintf(part, sizeof part, "%d", (int)w->partition);
    snprintf(off, sizeof off, "%lld", (long long)w->offset);
    rd_kafka_header_add(h, "vigil.error.class", -1, error_class, -1);
    rd_kafka_header_add(h, "vigil.error.message", -1, error_message, -1);
    rd_kafka_header_add(h, "vigil.source.topic", -1, source_topic, -1);
    rd_kafka_header_add(h, "vigil.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "vigil.source.offset", -1, off, -1);
    w->store_row = false;
    work_hold(w);
    if (publisher_send(p, dlq_topic, w->rkm->key, w->rkm->key_len, w->rkm->payload, w->rkm->len,
                       h, work_release_cb, w) != 0) {
        work_release(w);
        return -1;
    }
    return 0;
}
