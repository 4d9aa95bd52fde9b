/*
 * import: the resumable import pipeline (contract in import.h).
 *
 * DESIGN
 *
 *   reader thread ──chan (bounded)──► import_run's thread ──► obs_producer ──► Kafka
 *   (read, map, number records)        (dispatch in order, track acks,
 *                                        progress, stop)
 *
 * Records are numbered in input order (invalid ones included, see
 * obs_input.h) and dispatched in that order. Deliveries complete out of
 * order across partitions, so the dispatching thread keeps a window of
 * done flags over the records since the first one not yet done; `base`,
 * the start of that window, is the resume point: every record before it is
 * acknowledged (or was invalid and reported). The window is bounded:
 * dispatch waits when it is full.
 *
 * Stopping (the caller's cancel: signals, --timeout; --strict on a bad
 * record; a failed delivery; a fatal producer error): dispatch stops, the
 * channel is closed (the reader's next send fails and it returns), the
 * reader is joined, and every delivery report is waited for. Since nothing
 * after the last dispatched record was sent, once all reports are in, the
 * acknowledged records are exactly the valid records before `base` when
 * nothing failed; the count reported is what is on the topic, and `--skip
 * base` resumes with no record missing or sent twice. A failed delivery
 * stops the import at that record.
 */
#include "import.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "log.h"
#include "obs_producer.h"
#include "waitgroup.h"

/* Records read ahead of dispatch, at most. */
#define QUEUE_CAP 4096

/* One record on its way from the reader to the dispatching thread. */
struct item {
    uint64_t seq;
    uint64_t end_bytes; /* input bytes read up to the end of this record */
    bool valid;
    struct observation obs;
    char err[1024]; /* when !valid */
};

struct reader {
    struct obs_input *in;
    struct chan *ch;
    struct ctx *stop;
    uint64_t skip;
    const char *name; /* of the input, for the log */
    /* Set by the reader before it closes the channel; read after join. */
    bool failed;
    char err[1024];
    uint64_t skipped;
};

/* Hands IT to the dispatching thread. Returns false (IT freed) when the
 * channel was closed: the import is stopping. */
static bool reader_send(struct reader *rd, struct item *it)
{
    enum chan_status cs;
    /* The dispatching thread closes the channel when it stops: that is
     * what ends the reader on a cancel, even while the channel is full. */
    while ((cs = chan_send(rd->ch, it, deadline_after_ms(200))) == CHAN_TIMEOUT)
        if (ctx_done(rd->stop))
            break;
    if (cs != CHAN_OK) {
        free(it);
        return false;
    }
    return true;
}

static void reader_run(void *arg)
{
    struct reader *rd = arg;
    struct observation obs;
    char why[1024];
    bool told = false;
    for (;;) {
        enum obs_input_status st = obs_input_next(rd->in, &obs, why, sizeof why);
        if (st == OBS_INPUT_EOF)
            break;
        if (st == OBS_INPUT_ERROR) {
            rd->failed = true;
            snprintf(rd->err, sizeof rd->err, "%s", why);
            break;
        }
        if (!told) { /* the format is known (guessed) once a record is read */
            log_msg(LOG_INFO, "import", "reading %s as %s", rd->name,
                    obs_format_name(obs_input_format(rd->in)));
            told = true;
        }
        uint64_t seq = obs_input_records(rd->in) - 1;
        if (seq < rd->skip) {
            rd->skipped++;
            continue;
        }
        struct item *it = malloc(sizeof *it);
        if (it == NULL) {
            rd->failed = true;
            snprintf(rd->err, sizeof rd->err, "out of memory");
            break;
        }
        it->seq = seq;
        it->end_bytes = obs_input_bytes(rd->in);
        it->valid = st == OBS_INPUT_RECORD;
        if (it->valid)
            it->obs = obs;
        else
            snprintf(it->err, sizeof it->err, "%s", why);
        if (!reader_send(rd, it))
            break;
    }
    chan_close(rd->ch);
}

/* Done flags for records [base, base + cap): a ring indexed by seq % cap. */
struct window {
    bool *done;
    uint64_t cap;
    uint64_t base; /* every record before it is done */
};

static void window_mark(struct window *w, uint64_t seq)
{
    if (seq < w->base || seq >= w->base + w->cap)
        return;
    w->done[seq % w->cap] = true;
    while (w->done[w->base % w->cap]) {
        w->done[w->base % w->cap] = false;
        w->base++;
    }
}

struct import {
    const struct import_options *opt;
    struct ctx *stop; /* child of the caller's cancel: ours to cancel too */
    struct chan *ch;
    struct wg *wg;
    struct obs_producer *producer;
    struct reader rd;
    struct window win;
    struct import_stats st;
    uint64_t failed;     /* deliveries reported failed */
    uint64_t dispatched; /* records sent (for pacing) */
    bool strict_stop, fatal;
    char fatal_msg[1024];
    char first_failure[512];
};

/* Runs inside obs_producer calls, on the dispatching thread. */
static void on_delivery(void *arg, uint64_t token, bool ok, const char *err)
{
    struct import *im = arg;
    if (ok) {
        im->st.imported++;
        window_mark(&im->win, token);
        return;
    }
    /* A record that failed stays not done, so base stops before it and a
     * resume sends it again. */
    if (im->failed++ == 0)
        snprintf(im->first_failure, sizeof im->first_failure, "record %" PRIu64 ": %s", token,
                 err);
    ctx_cancel(im->stop);
}

static void drain(struct chan *ch)
{
    void *p;
    while (chan_try_recv(ch, &p) == CHAN_OK)
        free(p);
}

/* Stops and joins the reader if it runs, then frees everything: the
 * producer first, since its purge reports into the window. NULL is a
 * no-op. */
static void import_destroy(struct import *im)
{
    if (im == NULL)
        return;
    if (im->ch != NULL && im->wg != NULL) {
        chan_close(im->ch);
        wg_wait(im->wg);
    }
    obs_producer_destroy(im->producer);
    if (im->ch != NULL)
        drain(im->ch);
    wg_destroy(im->wg);
    chan_destroy(im->ch);
    obs_input_destroy(im->rd.in);
    free(im->win.done);
    ctx_destroy(im->stop);
    free(im);
}

static struct import *import_new(const struct import_options *opt, struct ctx *cancel,
                                 char *errstr, size_t errstr_size)
{
    struct import *im = calloc(1, sizeof *im);
    if (im == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    im->opt = opt;
    im->stop = ctx_new(cancel);
    im->win.cap = (uint64_t)opt->max_in_flight * 4;
    im->win.base = opt->skip;
    im->win.done = calloc(im->win.cap, sizeof *im->win.done);
    const char *name = strcmp(opt->path, "-") == 0 ? "<stdin>" : opt->path;
    im->ch = chan_new(QUEUE_CAP);
    im->rd = (struct reader){
        .in = obs_input_new(opt->input, name, opt->format, NULL),
        .ch = im->ch,
        .stop = im->stop,
        .skip = opt->skip,
        .name = name,
    };
    im->wg = wg_new();
    if (im->stop == NULL || im->win.done == NULL || im->rd.in == NULL || im->ch == NULL ||
        im->wg == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        goto err;
    }
    struct obs_producer_options po = {
        .cfg = opt->cfg,
        .bootstrap = opt->bootstrap,
        .topic = opt->topic,
        .client_id = "vigil-import",
        .max_in_flight = opt->max_in_flight,
        .on_delivery = on_delivery,
        .arg = im,
    };
    im->producer = obs_producer_new(&po, errstr, errstr_size);
    if (im->producer == NULL)
        goto err;
    return im;
err:
    import_destroy(im);
    return NULL;
}

/* Reports an invalid record (LINE) and either stops (--strict) or counts
 * it done, so the resume point passes it. */
static void note_invalid(struct import *im, uint64_t seq, const char *line)
{
    const struct import_observer *ob = &im->opt->observer;
    if (ob->invalid != NULL)
        ob->invalid(ob->arg, line);
    im->st.invalid++;
    if (im->opt->strict) {
        im->strict_stop = true;
        ctx_cancel(im->stop);
    } else {
        window_mark(&im->win, seq);
    }
}

/* Waits until the next record may go at opt.rate (serving delivery
 * reports meanwhile), or the import stops. */
static void pace(struct import *im)
{
    if (im->opt->rate <= 0)
        return;
    deadline_t due = im->st.started + (deadline_t)((double)im->dispatched / im->opt->rate * 1e9);
    while (!deadline_expired(due) && !ctx_done(im->stop)) {
        deadline_t step = deadline_min(due, deadline_after_ms(100));
        obs_producer_poll(im->producer, (int)deadline_remaining_ms(step));
    }
}

/* Sends the valid record IT. Returns false when dispatch must end now. */
static bool send_one(struct import *im, const struct item *it)
{
    pace(im);
    char why[1024];
    switch (obs_producer_send(im->producer, &it->obs, it->seq, im->stop, why, sizeof why)) {
    case OBS_SEND_OK:
        im->dispatched++;
        return true;
    case OBS_SEND_INVALID: {
        char line[sizeof why + 4200];
        snprintf(line, sizeof line, "%s: record %" PRIu64 ": %s", im->opt->path, it->seq, why);
        note_invalid(im, it->seq, line);
        return true;
    }
    case OBS_SEND_FATAL:
        snprintf(im->fatal_msg, sizeof im->fatal_msg, "%s", why);
        im->fatal = true;
        ctx_cancel(im->stop);
        return true;
    case OBS_SEND_CANCELLED:
        break;
    }
    return false;
}

/* Dispatches IT (and frees it). Returns false when dispatch must end now. */
static bool dispatch_one(struct import *im, struct item *it)
{
    im->st.bytes = it->end_bytes;
    /* Keep the window bounded: wait for the oldest record's report. */
    while (it->seq >= im->win.base + im->win.cap && !ctx_done(im->stop))
        obs_producer_poll(im->producer, 20);
    bool go;
    if (ctx_done(im->stop)) {
        go = false;
    } else if (!it->valid) {
        note_invalid(im, it->seq, it->err);
        go = !im->strict_stop;
    } else {
        go = send_one(im, it);
    }
    free(it);
    return go;
}

static void dispatch(struct import *im)
{
    const struct import_observer *ob = &im->opt->observer;
    im->st.started = deadline_now();
    for (;;) {
        if (ob->progress != NULL)
            ob->progress(ob->arg, &im->st);
        if (ctx_done(im->stop))
            break;
        void *p;
        enum chan_status cs = chan_recv(im->ch, &p, deadline_after_ms(100));
        if (cs == CHAN_END)
            break;
        if (cs != CHAN_OK) {
            obs_producer_poll(im->producer, 0);
            continue;
        }
        if (!dispatch_one(im, p))
            break;
    }
}

/* Ends the reader, waits for every delivery report (up to the flush
 * timeout) and fills RES. */
static void finish(struct import *im, struct import_result *res)
{
    enum ctx_err why_stop = ctx_err(im->stop);
    chan_close(im->ch);
    drain(im->ch);
    wg_wait(im->wg);
    drain(im->ch);
    deadline_t flush_by = deadline_after_ms((int64_t)im->opt->flush_timeout_s * 1000);
    res->flushed = obs_producer_flush(im->producer, flush_by) == 0;
    struct obs_producer_stats ps;
    obs_producer_stats(im->producer, &ps);

    res->stats = im->st;
    res->skipped = im->rd.skipped;
    res->resume = im->win.base;
    res->unreported = res->flushed ? 0 : ps.in_flight;
    res->failed = im->failed + res->unreported;
    res->delivery_failures = im->failed;
    res->strict_stop = im->strict_stop;
    snprintf(res->first_failure, sizeof res->first_failure, "%s", im->first_failure);
    if (im->rd.failed)
        snprintf(res->read_error, sizeof res->read_error, "%s", im->rd.err);
    if (im->fatal || im->rd.failed || im->failed > 0 || im->strict_stop || !res->flushed) {
        res->status = IMPORT_FAILED;
        /* A fatal error after the last send shows only as failed
         * deliveries: its reason is the producer's. */
        snprintf(res->producer_error, sizeof res->producer_error, "%s",
                 im->fatal ? im->fatal_msg : obs_producer_fatal(im->producer));
    } else if (why_stop != CTX_ERR_NONE) {
        res->status = IMPORT_PARTIAL;
        res->stopped = why_stop;
    } else {
        res->status = IMPORT_COMPLETE;
    }
}

int import_run(const struct import_options *opt, struct ctx *cancel, struct import_result *res,
               char *errstr, size_t errstr_size)
{
    memset(res, 0, sizeof *res);
    struct import *im = import_new(opt, cancel, errstr, errstr_size);
    if (im == NULL)
        return -1;
    if (wg_go(im->wg, reader_run, &im->rd, errstr, errstr_size) != 0) {
        import_destroy(im);
        return -1;
    }
    dispatch(im);
    finish(im, res);
    import_destroy(im);
    return 0;
}
