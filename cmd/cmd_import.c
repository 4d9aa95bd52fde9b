/*
 * vigil import: bulk import of a historical EDC export (NDJSON or CSV) into
 * the observations topic, resumable.
 *
 * DESIGN
 *
 *   reader thread ──chan (bounded)──► main thread ──► obs_producer ──► Kafka
 *   (read, map, number records)        (dispatch in order, track acks,
 *                                        progress, cancel)
 *
 * Records are numbered in input order (invalid ones included, see
 * obs_input.h) and dispatched in that order. Deliveries complete out of
 * order across partitions, so the main thread keeps a window of done flags
 * over the records since the first one not yet done; `base`, the start of
 * that window, is the resume point: every record before it is acknowledged
 * (or was invalid and reported). The window is bounded: dispatch waits when
 * it is full.
 *
 * Stopping (SIGINT, SIGTERM, --timeout, --strict on a bad line, a failed
 * delivery): the main thread stops dispatching, closes the channel (the
 * reader's next send fails and it returns), joins the reader, and waits for
 * every delivery report. Since nothing after the last dispatched record was
 * sent, once all reports are in, the acknowledged records are exactly the
 * valid records before `base` when nothing failed; the count printed is
 * what is on the topic, and `--skip base` resumes with no record missing or
 * sent twice. A failed delivery stops the import at that record (exit 1).
 *
 * Exit status: 0 complete, 3 partial (stopped; resume with --skip), 1
 * failure, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chan.h"
#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "deadline.h"
#include "log.h"
#include "settings.h"
#include "obs_input.h"
#include "obs_producer.h"
#include "sigwatch.h"
#include "waitgroup.h"

#define EXIT_PARTIAL 3
#define QUEUE_CAP 4096

static const struct config_item items[] = {
    {"bootstrap", "VIGIL_KAFKA_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"topic", "VIGIL_TOPIC", "vigil.observations", "observations topic", false},
    {"max_in_flight", "VIGIL_MAX_IN_FLIGHT", "20000",
     "messages sent but not yet acknowledged, at most", false},
    {"flush_timeout", "VIGIL_FLUSH_TIMEOUT", "60",
     "seconds to wait for outstanding delivery reports when stopping", false},
    {"progress_interval", "VIGIL_PROGRESS_INTERVAL", "5",
     "seconds between progress lines when stderr is not a terminal", false},
    {"log_level", "VIGIL_LOG_LEVEL", "warn", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil import [OPTIONS] FILE\n\n"
            "Bulk import of a historical EDC export (NDJSON or CSV with the Avro field\n"
            "names; FILE may be '-' for stdin) into vigil.observations, with the\n"
            "idempotent producer and a bounded number of messages in flight.\n\n"
            "Progress: a bar (records, rate, ETA) when stderr is a terminal, else a line\n"
            "every --progress-interval seconds. Ctrl-C (SIGINT), SIGTERM or --timeout\n"
            "stop it cleanly: it waits for every message already sent, then prints how\n"
            "many records the broker acknowledged and the exact --skip N that resumes\n"
            "the import with no record missing or sent twice.\n\n"
            "options:\n"
            "  -f, --format FMT       ndjson or csv (default: from the file name, else\n"
            "                         from the first line)\n"
            "      --skip N           skip the first N records (as printed on a stop)\n"
            "      --strict           stop at the first invalid record (default: report\n"
            "                         it with its line number and go on)\n"
            "      --timeout S        stop after S seconds\n"
            "  -r, --rate R           at most R records per second\n"
            "      --progress-interval S  seconds between progress lines (no terminal)\n"
            "  -c, --config FILE      YAML settings file (also VIGIL_CONFIG)\n"
            "  -b, --bootstrap HOSTS  Kafka bootstrap servers\n"
            "  -t, --topic NAME       topic\n"
            "  -X PROP=VALUE          any librdkafka property\n"
            "      --max-in-flight N  unacknowledged messages at most\n"
            "      --log-level LEVEL  debug, info, warn, error\n"
            "  -h, --help             this help\n\n"
            "The last line on stderr is machine-readable:\n"
            "  import: status=complete|partial|failed imported=N invalid=K failed=F "
            "skip=P\n"
            "exit status: 0 complete, 3 partial (resume with --skip P), 1 failure,\n"
            "2 bad usage.\n\n");
    config_print_help(items, out);
}

/* One record on its way from the reader to the main thread. */
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
    /* Set by the reader before it closes the channel; read after join. */
    bool failed;
    char err[1024];
    uint64_t skipped;
};

static void reader_run(void *arg)
{
    struct reader *rd = arg;
    struct observation obs;
    char why[1024];
    for (;;) {
        enum obs_input_status st = obs_input_next(rd->in, &obs, why, sizeof why);
        if (st == OBS_INPUT_EOF)
            break;
        if (st == OBS_INPUT_ERROR) {
            rd->failed = true;
            snprintf(rd->err, sizeof rd->err, "%s", why);
            break;
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
        enum chan_status cs;
        /* The main thread closes the channel when it stops: that is what
         * ends this loop on a cancel, even while the channel is full. */
        while ((cs = chan_send(rd->ch, it, deadline_after_ms(200))) == CHAN_TIMEOUT)
            if (ctx_done(rd->stop))
                break;
        if (cs != CHAN_OK) {
            free(it);
            break;
        }
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
    struct window win;
    struct ctx *stop;
    uint64_t delivered, failed, invalid;
    char first_failure[512];
};

static void on_delivery(void *arg, uint64_t token, bool ok, const char *err)
{
    struct import *im = arg;
    if (ok) {
        im->delivered++;
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

struct progress {
    bool tty;
    double interval_s;
    deadline_t started, next;
    uint64_t total_bytes; /* 0: unknown (stdin, pipe) */
    bool drawn;
};

static void progress_show(struct progress *pg, const struct import *im, uint64_t bytes,
                          bool final)
{
    if (!final && !deadline_expired(pg->next))
        return;
    pg->next = deadline_after_ms(pg->tty ? 200 : (int64_t)(pg->interval_s * 1000));
    double elapsed = (double)(deadline_now() - pg->started) / 1e9;
    double rate = elapsed > 0 ? (double)im->delivered / elapsed : 0;
    char pct[64] = "", eta[64] = "";
    double frac = 0;
    if (pg->total_bytes > 0) {
        frac = (double)bytes / (double)pg->total_bytes;
        if (frac > 1)
            frac = 1;
        snprintf(pct, sizeof pct, " %.1f%%", frac * 100);
        if (bytes > 0 && elapsed > 0.5) {
            /* The rate so far in bytes, applied to the bytes left. */
            double left = elapsed * (1 - frac) / frac;
            snprintf(eta, sizeof eta, " ETA %.0fs", left);
        }
    }
    if (pg->tty) {
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s]%s %" PRIu64 " records %.0f/s%s\033[K", pg->total_bytes ? bar : "",
                pct, im->delivered, rate, eta);
        pg->drawn = !final;
        if (final)
            fputc('\n', stderr);
    } else if (!final) {
        fprintf(stderr, "import: progress%s imported %" PRIu64 " records, %.0f records/s%s\n",
                pct, im->delivered, rate, eta);
    }
    fflush(stderr);
}

/* Clears the bar before a message line on a terminal. */
static void progress_clear(struct progress *pg)
{
    if (pg->tty && pg->drawn) {
        fputs("\r\033[K", stderr);
        pg->drawn = false;
    }
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0)
        return -1;
    *out = v;
    return 0;
}

int cmd_import(int argc, char **argv)
{
    enum { O_SKIP = 256, O_STRICT, O_TIMEOUT, O_PROGRESS, O_MAX_IN_FLIGHT, O_LOG_LEVEL };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"format", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'r'},
        {"skip", required_argument, NULL, O_SKIP},
        {"strict", no_argument, NULL, O_STRICT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"progress-interval", required_argument, NULL, O_PROGRESS},
        {"max-in-flight", required_argument, NULL, O_MAX_IN_FLIGHT},
        {"log-level", required_argument, NULL, O_LOG_LEVEL},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct cli_settings set;
    cli_settings_init(&set);
    enum obs_format fmt = OBS_FORMAT_AUTO;
    uint64_t skip = 0;
    bool strict = false;
    double rate = 0, timeout_s = 0;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "c:b:t:f:r:X:h", opts, NULL)) != -1) {
        const char *key = NULL;
        char *end;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case 'c':
            set.config_file = optarg;
            continue;
        case 'b': key = "bootstrap"; break;
        case 't': key = "topic"; break;
        case O_PROGRESS: key = "progress_interval"; break;
        case O_MAX_IN_FLIGHT: key = "max_in_flight"; break;
        case O_LOG_LEVEL: key = "log_level"; break;
        case 'f': {
            int f = obs_format_parse(optarg);
            if (f != OBS_FORMAT_NDJSON && f != OBS_FORMAT_CSV && f != OBS_FORMAT_AUTO)
                return cli_bad_usage("import", usage, "--format wants ndjson or csv, not '%s'",
                                     optarg);
            fmt = (enum obs_format)f;
            continue;
        }
        case O_SKIP:
            if (parse_u64(optarg, &skip) != 0)
                return cli_bad_usage("import", usage, "--skip wants a record count, not '%s'",
                                     optarg);
            continue;
        case O_STRICT:
            strict = true;
            continue;
        case O_TIMEOUT:
            timeout_s = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(timeout_s > 0) || timeout_s > 1e7)
                return cli_bad_usage("import", usage, "--timeout wants seconds (> 0), not '%s'",
                                     optarg);
            continue;
        case 'r':
            rate = strtod(optarg, &end);
            if (end == optarg || *end != '\0' || !(rate > 0) || rate > 1e9)
                return cli_bad_usage("import", usage,
                                     "--rate wants records per second (> 0), not '%s'", optarg);
            continue;
        case 'X':
            if (cli_settings_add_pair(&set, "kafka.", optarg) != 0)
                return cli_bad_usage("import", usage, "-X wants PROP=VALUE, not '%s'", optarg);
            continue;
        default:
            return cli_bad_option("import", usage, argv);
        }
        if (cli_settings_add(&set, key, optarg) != 0)
            return cli_bad_usage("import", usage, "too many options");
    }
    if (optind == argc)
        return cli_bad_usage("import", usage, "which file? (use - for stdin)");
    if (optind + 1 < argc)
        return cli_bad_usage("import", usage, "one file at a time, not '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    char err[2048];
    int rc = 1;
    struct ctx *root = NULL, *stop = NULL;
    struct sigwatch *sw = NULL;
    struct wg *wg = NULL;
    struct obs_producer *producer = NULL;
    FILE *f = NULL;
    struct reader rd = {0};
    struct import im = {0};
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        goto fail;
    long max_in_flight, flush_timeout;
    double progress_interval;
    if (config_get_long(cfg, "max_in_flight", 1, 1000000, &max_in_flight, err, sizeof err) != 0 ||
        config_get_long(cfg, "flush_timeout", 1, 3600, &flush_timeout, err, sizeof err) != 0 ||
        config_get_double(cfg, "progress_interval", 0.05, 3600, &progress_interval, err,
                          sizeof err) != 0)
        goto fail;

    f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        snprintf(err, sizeof err, "could not open %s: %s", path, strerror(errno));
        goto fail;
    }
    struct progress pg = {.tty = isatty(STDERR_FILENO) == 1, .interval_s = progress_interval};
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
        pg.total_bytes = (uint64_t)sb.st_size;

    /* Signals are blocked before any thread starts (librdkafka's too). */
    root = ctx_new(NULL);
    static atomic_bool reload;
    sw = root ? sigwatch_start(root, &reload) : NULL;
    if (sw == NULL) {
        snprintf(err, sizeof err, "could not start the signal thread");
        goto fail;
    }
    stop = timeout_s > 0 ? ctx_new_deadline(root, deadline_after_ms((int64_t)(timeout_s * 1000)))
                         : ctx_new(root);
    im.stop = stop;
    im.win.cap = (uint64_t)max_in_flight * 4;
    im.win.base = skip;
    im.win.done = calloc(im.win.cap, sizeof *im.win.done);
    rd.in = obs_input_new(f, strcmp(path, "-") == 0 ? "<stdin>" : path, fmt, NULL);
    rd.ch = chan_new(QUEUE_CAP);
    rd.stop = stop;
    rd.skip = skip;
    wg = wg_new();
    if (stop == NULL || im.win.done == NULL || rd.in == NULL || rd.ch == NULL || wg == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    struct obs_producer_options po = {
        .cfg = cfg,
        .bootstrap = config_get(cfg, "bootstrap"),
        .topic = config_get(cfg, "topic"),
        .client_id = "vigil-import",
        .max_in_flight = (size_t)max_in_flight,
        .on_delivery = on_delivery,
        .arg = &im,
    };
    producer = obs_producer_new(&po, err, sizeof err);
    if (producer == NULL)
        goto fail;
    if (wg_go(wg, reader_run, &rd, err, sizeof err) != 0)
        goto fail;

    pg.started = deadline_now();
    pg.next = deadline_after_ms(pg.tty ? 200 : (int64_t)(progress_interval * 1000));
    bool strict_stop = false, fatal = false;
    /* Progress counts input bytes up to the last record handed to the
     * producer, not what the reader has buffered ahead. */
    uint64_t dispatched = 0, bytes_done = 0;
    char why[1024];
    for (;;) {
        progress_show(&pg, &im, bytes_done, false);
        if (ctx_done(stop))
            break;
        void *p;
        enum chan_status cs = chan_recv(rd.ch, &p, deadline_after_ms(100));
        if (cs == CHAN_END)
            break;
        if (cs != CHAN_OK) {
            obs_producer_poll(producer, 0);
            continue;
        }
        struct item *it = p;
        bytes_done = it->end_bytes;
        /* Keep the window bounded: wait for the oldest record's report. */
        while (it->seq >= im.win.base + im.win.cap && !ctx_done(stop))
            obs_producer_poll(producer, 20);
        if (ctx_done(stop)) {
            free(it);
            break;
        }
        if (!it->valid) {
            progress_clear(&pg);
            fprintf(stderr, "%s\n", it->err);
            im.invalid++;
            if (strict) {
                strict_stop = true;
                free(it);
                ctx_cancel(stop);
                break;
            }
            window_mark(&im.win, it->seq);
            free(it);
            continue;
        }
        if (rate > 0) {
            deadline_t due = pg.started + (deadline_t)((double)dispatched / rate * 1e9);
            while (!deadline_expired(due) && !ctx_done(stop)) {
                deadline_t step = deadline_min(due, deadline_after_ms(100));
                obs_producer_poll(producer, (int)deadline_remaining_ms(step));
            }
        }
        enum obs_send_status ss =
            obs_producer_send(producer, &it->obs, it->seq, stop, why, sizeof why);
        if (ss == OBS_SEND_INVALID) {
            progress_clear(&pg);
            fprintf(stderr, "%s: record %" PRIu64 ": %s\n", path, it->seq, why);
            im.invalid++;
            if (strict) {
                strict_stop = true;
                ctx_cancel(stop);
            } else {
                window_mark(&im.win, it->seq);
            }
        } else if (ss == OBS_SEND_FATAL) {
            snprintf(err, sizeof err, "%s", why);
            fatal = true;
            ctx_cancel(stop);
        } else if (ss == OBS_SEND_OK) {
            dispatched++;
        }
        free(it);
        if (ss == OBS_SEND_CANCELLED)
            break;
    }

    /* Stop: no more dispatch; end the reader, then wait for every report. */
    enum ctx_err why_stop = ctx_err(stop);
    chan_close(rd.ch);
    void *p;
    while (chan_try_recv(rd.ch, &p) == CHAN_OK)
        free(p);
    wg_wait(wg);
    while (chan_try_recv(rd.ch, &p) == CHAN_OK)
        free(p);
    bool flushed = obs_producer_flush(producer, deadline_after_ms(flush_timeout * 1000)) == 0;
    progress_show(&pg, &im, bytes_done, true);
    progress_clear(&pg);
    struct obs_producer_stats st;
    obs_producer_stats(producer, &st);

    const char *status;
    if (fatal || rd.failed || im.failed > 0 || strict_stop || !flushed) {
        status = "failed";
        rc = 1;
        if (rd.failed)
            fprintf(stderr, "vigil import: %s\n", rd.err);
        if (fatal)
            fprintf(stderr, "vigil import: %s\n", err);
        if (im.failed > 0)
            fprintf(stderr, "vigil import: %" PRIu64 " deliveries failed; first: %s\n", im.failed,
                    im.first_failure);
        if (strict_stop)
            fprintf(stderr, "vigil import: stopped at the first invalid record (--strict)\n");
        if (!flushed)
            fprintf(stderr,
                    "vigil import: %" PRIu64 " deliveries still unreported after %lds: they "
                    "may or may not be on the topic\n",
                    st.in_flight, flush_timeout);
    } else if (why_stop != CTX_ERR_NONE) {
        status = "partial";
        rc = EXIT_PARTIAL;
        fprintf(stderr,
                "vigil import: %s: imported %" PRIu64 " records (acknowledged by Kafka), %" PRIu64
                " invalid; the first %" PRIu64 " records of %s are done; resume with: vigil "
                "import --skip %" PRIu64 " %s\n",
                why_stop == CTX_ERR_DEADLINE_EXCEEDED ? "timed out" : "interrupted",
                im.delivered, im.invalid, im.win.base, path, im.win.base, path);
    } else {
        status = "complete";
        rc = 0;
        fprintf(stderr,
                "vigil import: imported %" PRIu64 " records (acknowledged by Kafka), %" PRIu64
                " invalid, %" PRIu64 " skipped\n",
                im.delivered, im.invalid, rd.skipped);
    }
    fprintf(stderr,
            "import: status=%s imported=%" PRIu64 " invalid=%" PRIu64 " failed=%" PRIu64
            " skip=%" PRIu64 "\n",
            status, im.delivered, im.invalid, im.failed + (flushed ? 0 : st.in_flight),
            im.win.base);
    goto out;
fail:
    fprintf(stderr, "vigil import: %s\n", err);
    if (wg != NULL && rd.ch != NULL) {
        chan_close(rd.ch);
        wg_wait(wg);
    }
out:
    obs_producer_destroy(producer);
    if (rd.ch != NULL) {
        void *q;
        while (chan_try_recv(rd.ch, &q) == CHAN_OK)
            free(q);
    }
    wg_destroy(wg);
    chan_destroy(rd.ch);
    obs_input_destroy(rd.in);
    free(im.win.done);
    if (f != NULL && f != stdin)
        fclose(f);
    ctx_destroy(stop);
    sigwatch_stop(sw);
    ctx_destroy(root);
    config_destroy(cfg);
    return rc;
}
