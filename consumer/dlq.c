#include "dlq.h"

static void dlq_done(void *arg, enum deadletter_outcome outcome)
{
    struct work *w = arg;
    if (outcome == DEADLETTER_ABANDONED)
        work_abandon(w);
    work_release(w);
}

int dlq_send(struct deadletter *d, struct work *w, const char *error_class,
             const char *error_message)
{
    w->store_row = false;
    work_hold(w);
    if (deadletter_send(d, w->rkm, error_class, error_message, dlq_done, w) != 0) {
        work_release(w);
        return -1;
    }
    return 0;
}
