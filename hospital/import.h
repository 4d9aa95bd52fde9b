/*
 * import: the pipeline of `vigil import` -- reads an EDC export (NDJSON or
 * CSV, obs_input.h), publishes its records in input order through
 * obs_producer, and keeps the exact point from which a stopped import
 * resumes with no record missing or sent twice.
 *
 *   import_run   runs one import to its end (complete, stopped, or failed)
 *                and fills a result with the counts and the resume point
 *
 * The caller keeps the user interface: it opens the input, turns signals
 * and --timeout into the CANCEL context, draws progress from the stats the
 * observer is given, and prints the outcome from the result.
 */
#ifndef VIGIL_IMPORT_H
#define VIGIL_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "ctx.h"
#include "deadline.h"
#include "obs_input.h"

/* Where an import stands. */
struct import_stats {
    deadline_t started; /* when dispatch began */
    uint64_t imported;  /* records the broker acknowledged */
    uint64_t invalid;   /* records reported invalid */
    uint64_t bytes;     /* input bytes up to the last record handed to the
                         * producer (not what the reader has read ahead) */
};

/* How the caller hears about an import while it runs. Both callbacks run
 * on the thread that called import_run; either may be NULL. */
struct import_observer {
    /* Called between records, often (several times a second at least):
     * the callee decides how often to draw. */
    void (*progress)(void *arg, const struct import_stats *st);
    /* An invalid record, as one line without a newline: "NAME:LINE:
     * reason" from the reader, or "PATH: record N: reason" when the record
     * does not encode. */
    void (*invalid)(void *arg, const char *line);
    void *arg;
};

struct import_options {
    FILE *input;               /* borrowed; read by the reader thread only */
    const char *path;          /* as given ("-" for stdin), for messages */
    enum obs_format format;    /* OBS_FORMAT_AUTO, _NDJSON or _CSV */
    const struct config *cfg;  /* "kafka.*" properties; may be NULL */
    const char *bootstrap;
    const char *topic;
    size_t max_in_flight;      /* >= 1: unacknowledged messages at most */
    long flush_timeout_s;      /* wait for outstanding reports when stopping */
    uint64_t skip;             /* records to pass over first (--skip) */
    bool strict;               /* stop at the first invalid record */
    double rate;               /* records per second at most; 0: no limit */
    struct import_observer observer;
};

enum import_status {
    IMPORT_COMPLETE = 0, /* every record after skip acknowledged or reported invalid */
    IMPORT_PARTIAL,      /* CANCEL stopped it cleanly: resume from `resume` */
    IMPORT_FAILED,       /* see the failure fields */
};

struct import_result {
    enum import_status status;
    struct import_stats stats;
    uint64_t skipped; /* records passed over for opt.skip */
    /* Every record before it is acknowledged (or was invalid and reported):
     * what --skip takes to resume. */
    uint64_t resume;
    enum ctx_err stopped; /* PARTIAL: why CANCEL ended (deadline or cancel) */
    /* Deliveries that failed, plus those with no report when the flush
     * gave up (nobody can say they arrived). */
    uint64_t failed;

    /* Why it failed; each empty, zero or false when not the case. */
    char read_error[1024];     /* the input could not be read on */
    char producer_error[1024]; /* the producer could not go on (fatal error) */
    uint64_t delivery_failures;
    char first_failure[512];   /* "record N: reason" of the first failed delivery */
    bool strict_stop;          /* stopped at an invalid record (opt.strict) */
    bool flushed;              /* false: `unreported` reports never came */
    uint64_t unreported;
};

/* Imports OPT->input until its end, CANCEL (borrowed; cancelled by the
 * caller on a signal or by its deadline), an invalid record with
 * opt.strict, a failed delivery, or a fatal producer error; then waits up
 * to opt.flush_timeout_s for every delivery report and fills *RES. Starts
 * one reader thread and librdkafka's threads (block signals first) and
 * joins them all before returning. Returns 0 with *RES filled (whatever
 * its status), or -1 with errstr ("out of memory", "could not create the
 * Kafka producer: ...") when the import could not start: then nothing was
 * sent. Not thread-safe: one import per calling thread. */
int import_run(const struct import_options *opt, struct ctx *cancel, struct import_result *res,
               char *errstr, size_t errstr_size);

#endif
