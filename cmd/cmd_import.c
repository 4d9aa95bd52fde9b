/*
 * vigil import: bulk import of a historical EDC export (NDJSON or CSV) into
 * the observations topic, resumable. This file is the command: flags and
 * settings, the input file, the progress display and the final lines;
 * hospital/import.c is the pipeline (reader thread, in-order dispatch, the
 * window of acknowledged records that gives the resume point, stop and
 * flush).
 *
 * Exit status: 0 complete, 3 partial (stopped; resume with --skip), 1
 * failure, 2 bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "deadline.h"
#include "import.h"
#include "obs_input.h"
#include "settings.h"
#include "sigwatch.h"

#define EXIT_PARTIAL 3

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
            "  -s, --set KEY=VALUE    any setting below by its key\n"
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

struct progress {
    bool tty;
    double interval_s;
    bool begun;
    deadline_t next;
    uint64_t total_bytes; /* 0: unknown (stdin, pipe) */
    bool drawn;
};

static void progress_show(struct progress *pg, const struct import_stats *st, bool final)
{
    if (!pg->begun) { /* the first call comes as dispatch begins */
        pg->begun = true;
        pg->next = deadline_after_ms(pg->tty ? 200 : (int64_t)(pg->interval_s * 1000));
    }
    if (!final && !deadline_expired(pg->next))
        return;
    pg->next = deadline_after_ms(pg->tty ? 200 : (int64_t)(pg->interval_s * 1000));
    double elapsed = (double)(deadline_now() - st->started) / 1e9;
    double rate = elapsed > 0 ? (double)st->imported / elapsed : 0;
    char pct[64] = "", eta[64] = "";
    double frac = 0;
    if (pg->total_bytes > 0) {
        frac = (double)st->bytes / (double)pg->total_bytes;
        if (frac > 1)
            frac = 1;
        snprintf(pct, sizeof pct, " %.1f%%", frac * 100);
        if (st->bytes > 0 && elapsed > 0.5) {
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
                pct, st->imported, rate, eta);
        pg->drawn = !final;
        if (final)
            fputc('\n', stderr);
    } else if (!final) {
        fprintf(stderr, "import: progress%s imported %" PRIu64 " records, %.0f records/s%s\n",
                pct, st->imported, rate, eta);
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

static void on_progress(void *arg, const struct import_stats *st)
{
    progress_show(arg, st, false);
}

static void on_invalid(void *arg, const char *line)
{
    progress_clear(arg);
    fprintf(stderr, "%s\n", line);
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

/* What the command line asks for, besides the settings in SET. */
struct import_args {
    struct cli_settings set;
    enum obs_format fmt;
    uint64_t skip;
    bool strict;
    double rate, timeout_s;
    const char *path;
};

enum { F_FORMAT = 1, F_RATE, F_SKIP, F_STRICT, F_TIMEOUT };

/* Takes the command's own flag ID with argument ARG. Returns 0, or the
 * exit status (2) after reporting bad usage. */
static int take_flag(struct import_args *a, int id, const char *arg)
{
    char *end;
    switch (id) {
    case F_FORMAT: {
        int f = obs_format_parse(arg);
        if (f != OBS_FORMAT_NDJSON && f != OBS_FORMAT_CSV && f != OBS_FORMAT_AUTO)
            return cli_bad_usage("import", usage, "--format wants ndjson or csv, not '%s'", arg);
        a->fmt = (enum obs_format)f;
        return 0;
    }
    case F_SKIP:
        if (parse_u64(arg, &a->skip) != 0)
            return cli_bad_usage("import", usage, "--skip wants a record count, not '%s'", arg);
        return 0;
    case F_STRICT:
        a->strict = true;
        return 0;
    case F_TIMEOUT:
        a->timeout_s = strtod(arg, &end);
        if (end == arg || *end != '\0' || !(a->timeout_s > 0) || a->timeout_s > 1e7)
            return cli_bad_usage("import", usage, "--timeout wants seconds (> 0), not '%s'", arg);
        return 0;
    case F_RATE:
        a->rate = strtod(arg, &end);
        if (end == arg || *end != '\0' || !(a->rate > 0) || a->rate > 1e9)
            return cli_bad_usage("import", usage,
                                 "--rate wants records per second (> 0), not '%s'", arg);
        return 0;
    }
    return 0;
}

/* Fills A from ARGV. Returns true, or false with the exit status in
 * *STATUS (0 after --help, 2 after bad usage). */
static bool parse_args(int argc, char **argv, struct import_args *a, int *status)
{
    static const struct cli_flag flags[] = {
        {"bootstrap", 'b', "bootstrap", 0, true},
        {"topic", 't', "topic", 0, true},
        {"progress-interval", 0, "progress_interval", 0, true},
        {"max-in-flight", 0, "max_in_flight", 0, true},
        {"format", 'f', NULL, F_FORMAT, true},
        {"rate", 'r', NULL, F_RATE, true},
        {"skip", 0, NULL, F_SKIP, true},
        {"strict", 0, NULL, F_STRICT, false},
        {"timeout", 0, NULL, F_TIMEOUT, true},
        {0},
    };
    *a = (struct import_args){.fmt = OBS_FORMAT_AUTO};
    cli_settings_init(&a->set);
    const char *arg;
    int next;
    for (;;) {
        int id = cli_settings_next(&a->set, "import", usage, flags, argc, argv, &arg, &next,
                                   status);
        if (id < 0)
            return false;
        if (id == 0)
            break;
        *status = take_flag(a, id, arg);
        if (*status != 0)
            return false;
    }
    if (next == argc)
        *status = cli_bad_usage("import", usage, "which file? (use - for stdin)");
    else if (next + 1 < argc)
        *status = cli_bad_usage("import", usage, "one file at a time, not '%s'", argv[next + 1]);
    else
        a->path = argv[next];
    return a->path != NULL;
}

static void report_failure(const struct import_result *r, long flush_timeout)
{
    if (r->read_error[0] != '\0')
        fprintf(stderr, "vigil import: %s\n", r->read_error);
    if (r->producer_error[0] != '\0')
        fprintf(stderr, "vigil import: %s\n", r->producer_error);
    if (r->delivery_failures > 0)
        fprintf(stderr, "vigil import: %" PRIu64 " deliveries failed; first: %s\n",
                r->delivery_failures, r->first_failure);
    if (r->strict_stop)
        fprintf(stderr, "vigil import: stopped at the first invalid record (--strict)\n");
    if (!r->flushed)
        fprintf(stderr,
                "vigil import: %" PRIu64 " deliveries still unreported after %lds: they "
                "may or may not be on the topic\n",
                r->unreported, flush_timeout);
}

/* Prints the outcome, ending with the machine-readable line. Returns the
 * exit status. */
static int report(const struct import_result *r, const char *path, long flush_timeout)
{
    const char *status = "failed";
    int rc = 1;
    if (r->status == IMPORT_FAILED) {
        report_failure(r, flush_timeout);
    } else if (r->status == IMPORT_PARTIAL) {
        status = "partial";
        rc = EXIT_PARTIAL;
        fprintf(stderr,
                "vigil import: %s: imported %" PRIu64 " records (acknowledged by Kafka), %" PRIu64
                " invalid; the first %" PRIu64 " records of %s are done; resume with: vigil "
                "import --skip %" PRIu64 " %s\n",
                r->stopped == CTX_ERR_DEADLINE_EXCEEDED ? "timed out" : "interrupted",
                r->stats.imported, r->stats.invalid, r->resume, path, r->resume, path);
    } else {
        status = "complete";
        rc = 0;
        fprintf(stderr,
                "vigil import: imported %" PRIu64 " records (acknowledged by Kafka), %" PRIu64
                " invalid, %" PRIu64 " skipped\n",
                r->stats.imported, r->stats.invalid, r->skipped);
    }
    fprintf(stderr,
            "import: status=%s imported=%" PRIu64 " invalid=%" PRIu64 " failed=%" PRIu64
            " skip=%" PRIu64 "\n",
            status, r->stats.imported, r->stats.invalid, r->failed, r->resume);
    return rc;
}

int cmd_import(int argc, char **argv)
{
    struct import_args a;
    int rc;
    if (!parse_args(argc, argv, &a, &rc))
        return rc;
    rc = 1;
    char err[2048];
    struct ctx *root = NULL, *stop = NULL;
    struct sigwatch *sw = NULL;
    FILE *f = NULL;
    struct config *cfg = cli_settings_load(&a.set, items, err, sizeof err);
    if (cfg == NULL)
        goto fail;
    long max_in_flight, flush_timeout;
    double progress_interval;
    if (config_get_long(cfg, "max_in_flight", 1, 1000000, &max_in_flight, err, sizeof err) != 0 ||
        config_get_long(cfg, "flush_timeout", 1, 3600, &flush_timeout, err, sizeof err) != 0 ||
        config_get_double(cfg, "progress_interval", 0.05, 3600, &progress_interval, err,
                          sizeof err) != 0)
        goto fail;

    f = strcmp(a.path, "-") == 0 ? stdin : fopen(a.path, "r");
    if (f == NULL) {
        snprintf(err, sizeof err, "could not open %s: %s", a.path, strerror(errno));
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
    stop = a.timeout_s > 0
               ? ctx_new_deadline(root, deadline_after_ms((int64_t)(a.timeout_s * 1000)))
               : ctx_new(root);
    if (stop == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    struct import_options opt = {
        .input = f,
        .path = a.path,
        .format = a.fmt,
        .cfg = cfg,
        .bootstrap = config_get(cfg, "bootstrap"),
        .topic = config_get(cfg, "topic"),
        .max_in_flight = (size_t)max_in_flight,
        .flush_timeout_s = flush_timeout,
        .skip = a.skip,
        .strict = a.strict,
        .rate = a.rate,
        .observer = {.progress = on_progress, .invalid = on_invalid, .arg = &pg},
    };
    struct import_result res;
    if (import_run(&opt, stop, &res, err, sizeof err) != 0)
        goto fail;
    progress_show(&pg, &res.stats, true);
    progress_clear(&pg);
    rc = report(&res, a.path, flush_timeout);
    goto out;
fail:
    fprintf(stderr, "vigil import: %s\n", err);
out:
    if (f != NULL && f != stdin)
        fclose(f);
    ctx_destroy(stop);
    sigwatch_stop(sw);
    ctx_destroy(root);
    config_destroy(cfg);
    return rc;
}
