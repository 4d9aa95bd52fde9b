/*
 * vigil produce: publishes observations from NDJSON, CSV or FHIR input, or
 * from the synthetic trial generator, to the observations topic
 * (hospital/obs_input, hospital/trialgen, hospital/obs_producer do the work).
 *
 * One thread reads and sends; librdkafka batches and sends in parallel
 * behind it, and obs_producer bounds what is in flight. On SIGINT/SIGTERM
 * it stops reading, waits for every delivery report and prints the summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "ctx.h"
#include "deadline.h"
#include "fhir.h"
#include "hl7_enrol.h"
#include "hl7_facility.h"
#include "hl7_file.h"
#include "kafka.h"
#include "log.h"
#include "settings.h"
#include "obs_input.h"
#include "obs_json.h"
#include "obs_producer.h"
#include "pg.h"
#include "sigwatch.h"
#include "trialgen.h"

static const struct config_item items[] = {
    {"bootstrap", "VIGIL_KAFKA_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"topic", "VIGIL_TOPIC", "vigil.observations", "observations topic", false},
    {"max_in_flight", "VIGIL_MAX_IN_FLIGHT", "10000",
     "messages sent but not yet acknowledged, at most", false},
    {"flush_timeout", "VIGIL_FLUSH_TIMEOUT", "60",
     "seconds to wait for outstanding delivery reports at the end", false},
    {"fhir_study_system", "VIGIL_FHIR_STUDY_SYSTEM", FHIR_STUDY_URI_DEFAULT,
     "FHIR extension url or identifier system holding the study id", false},
    {"fhir_site_system", "VIGIL_FHIR_SITE_SYSTEM", FHIR_SITE_URI_DEFAULT,
     "FHIR extension url or identifier system holding the site id", false},
    {"pg_conninfo", "VIGIL_PG_CONNINFO", "",
     "--format hl7: libpq conninfo of the hl7_enrolments table", true},
    {"facilities", "VIGIL_MLLP_FACILITIES", NULL,
     "--format hl7: facility mapping YAML (as vigil mllp's)", false},
    {"log_level", "VIGIL_LOG_LEVEL", "warn", "debug, info, warn or error", false},
    {NULL, NULL, NULL, NULL, false},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigil produce [OPTIONS] [FILE...]\n"
            "       vigil produce [OPTIONS] --generate N [--seed S] [--rate R]\n\n"
            "Publishes observations to vigil.observations (key study_id/subject_id, Avro\n"
            "single-object encoding, idempotent producer, acks=all) and checks every\n"
            "delivery report. FILE may be '-' for stdin (the default).\n\n"
            "input:\n"
            "  -f, --format FMT       ndjson, csv, fhir or hl7 (default: from the file\n"
            "                         name, .hl7 is hl7, else from the first line)\n"
            "      --fhir-study-system URI  FHIR extension url / identifier system of the\n"
            "                         study id (default " FHIR_STUDY_URI_DEFAULT ")\n"
            "      --fhir-site-system URI   ... of the site id (default\n"
            "                         " FHIR_SITE_URI_DEFAULT ")\n"
            "  NDJSON and CSV use the Avro field names: observation_id study_id site_id\n"
            "  subject_id loinc value unit ref_low ref_high effective_time issued_time\n"
            "  status visit; times are RFC 3339 or epoch milliseconds.\n"
            "  HL7 v2: ORU^R01 messages, alone or in an FHS/BHS batch, mapped as vigil mllp\n"
            "  maps them (hospital/README.md): enrolled patients only, from the table\n"
            "  hl7_enrolments (--pg), local codes and time zones from --facilities FILE.\n"
            "      --pg CONNINFO      PostgreSQL conninfo (hl7)\n"
            "      --facilities FILE  facility mapping (hl7)\n\n"
            "synthetic trial:\n"
            "  -n, --generate N       make N observations (0: until interrupted)\n"
            "  -s, --seed S           seed (default 1): same seed, same records\n"
            "      --studies K        studies (default 2)\n"
            "      --sites-per-study K      sites per study (default 3)\n"
            "      --subjects-per-site K    subjects per site (default 20)\n"
            "      --start TIME       day 0 of the trial, RFC 3339 or 'now'\n"
            "                         (default 2025-01-06T00:00:00Z)\n"
            "  -r, --rate R           at most R observations per second (default: no limit)\n"
            "      --emit-ndjson      print the records as NDJSON on stdout instead of\n"
            "                         producing them (with any input)\n\n"
            "Kafka and settings:\n"
            "  -c, --config FILE      YAML settings file (also VIGIL_CONFIG)\n"
            "      --set KEY=VALUE    any setting below by its key\n"
            "  -b, --bootstrap HOSTS  Kafka bootstrap servers\n"
            "  -t, --topic NAME       topic\n"
            "  -X PROP=VALUE          any librdkafka property (overrides vigil's defaults\n"
            "                         enable.idempotence=true acks=all linger.ms=5\n"
            "                         compression.type=lz4 message.timeout.ms=60000)\n"
            "      --max-in-flight N  unacknowledged messages at most\n"
            "      --log-level LEVEL  debug, info, warn, error\n"
            "  -h, --help             this help\n\n"
            "A record that cannot be mapped is reported on stderr as FILE:LINE: reason\n"
            "(FILE: Bundle.entry[i]: reason for a FHIR Bundle) and skipped. The last line\n"
            "on stderr is \"produced N, failed M, invalid K\" (\"emitted N, invalid K\"\n"
            "with --emit-ndjson); the exit status is 0 only if M and K are 0 (SIGINT stops\n"
            "early, waits for the delivery reports and still reports), 1 otherwise, 2 for\n"
            "bad usage.\n\n");
    config_print_help(items, out);
}

struct run {
    struct ctx *stop;
    const struct config *cfg;
    struct hl7_facilities *hl7_fac; /* loaded with the first HL7 file */
    struct hl7_enrol *hl7_enrol;
    struct obs_producer *producer; /* NULL with --emit-ndjson */
    double rate;                   /* 0: unpaced */
    deadline_t started;
    uint64_t count;     /* records handed out (for pacing) */
    uint64_t invalid;
    uint64_t emitted;
    bool fatal;
    char err[2048];
    char first_failure[512]; /* reason of the first failed delivery */
};

static void on_delivery(void *arg, uint64_t token, bool ok, const char *err)
{
    struct run *r = arg;
    if (!ok && r->first_failure[0] == '\0')
        snprintf(r->first_failure, sizeof r->first_failure, "record %" PRIu64 ": %s", token, err);
}

/* Waits until record run->count may go at the configured rate. Returns
 * false if stopped meanwhile. */
static bool pace(struct run *r)
{
    if (r->rate <= 0)
        return !ctx_done(r->stop);
    deadline_t due = r->started + (deadline_t)((double)r->count / r->rate * 1e9);
    while (!deadline_expired(due)) {
        if (ctx_done(r->stop))
            return false;
        deadline_t step = deadline_min(due, deadline_after_ms(100));
        if (r->producer != NULL)
            obs_producer_poll(r->producer, (int)deadline_remaining_ms(step));
        else
            ctx_wait(r->stop, step);
    }
    return !ctx_done(r->stop);
}

/* Sends or prints one record. Returns false to stop. */
static bool emit(struct run *r, const struct observation *obs)
{
    char why[512];
    r->count++;
    if (r->producer == NULL) {
        char line[OBS_JSON_MAX + 1];
        size_t n = obs_json_format(obs, line, sizeof line - 1);
        line[n] = '\n';
        if (fwrite(line, 1, n + 1, stdout) != n + 1) {
            snprintf(r->err, sizeof r->err, "could not write to stdout");
            r->fatal = true;
            return false;
        }
        r->emitted++;
        return true;
    }
    switch (obs_producer_send(r->producer, obs, r->count, r->stop, why, sizeof why)) {
    case OBS_SEND_OK: return true;
    case OBS_SEND_INVALID:
        r->invalid++;
        fprintf(stderr, "observation %s: %s\n", obs->observation_id, why);
        return true;
    case OBS_SEND_CANCELLED: return false;
    case OBS_SEND_FATAL:
        snprintf(r->err, sizeof r->err, "%s", why);
        r->fatal = true;
        return false;
    }
    return false;
}

static void run_file(struct run *r, const char *path, enum obs_format fmt,
                     const struct fhir_options *fopt)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        snprintf(r->err, sizeof r->err, "could not open %s: %s", path, strerror(errno));
        r->fatal = true;
        return;
    }
    struct obs_input *in = obs_input_new(f, strcmp(path, "-") == 0 ? "<stdin>" : path, fmt, fopt);
    if (in == NULL) {
        snprintf(r->err, sizeof r->err, "out of memory");
        r->fatal = true;
        goto out;
    }
    struct observation obs;
    char why[2048];
    while (pace(r)) {
        enum obs_input_status st = obs_input_next(in, &obs, why, sizeof why);
        if (st == OBS_INPUT_EOF)
            break;
        if (st == OBS_INPUT_ERROR) {
            snprintf(r->err, sizeof r->err, "%s", why);
            r->fatal = true;
            break;
        }
        if (st == OBS_INPUT_INVALID) {
            fprintf(stderr, "%s\n", why);
            r->invalid++;
            continue;
        }
        if (!emit(r, &obs))
            break;
    }
out:
    obs_input_destroy(in);
    if (f != stdin)
        fclose(f);
}

static int hl7_emit(void *arg, const struct observation *obs)
{
    struct run *r = arg;
    if (!pace(r))
        return 1;
    return emit(r, obs) ? 0 : 1;
}

static void hl7_report(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "%s\n", msg);
}

/* Loads what HL7 mapping needs, once: the facility mapping and the
 * enrolment table. Returns 0, or -1 with r->err set. */
static int hl7_setup(struct run *r)
{
    if (r->hl7_enrol != NULL)
        return 0;
    const char *path = config_get(r->cfg, "facilities");
    r->hl7_fac = path && *path ? hl7_facilities_load(path, r->err, sizeof r->err)
                               : hl7_facilities_empty();
    if (r->hl7_fac == NULL)
        return -1;
    PGconn *conn = pg_connect(config_get(r->cfg, "pg_conninfo"), r->err, sizeof r->err);
    if (conn == NULL)
        return -1;
    r->hl7_enrol = hl7_enrol_load(conn, NULL, r->err, sizeof r->err);
    PQfinish(conn);
    return r->hl7_enrol != NULL ? 0 : -1;
}

static void run_hl7_file(struct run *r, const char *path)
{
    struct hl7_file_stats st;
    if (hl7_setup(r) != 0 ||
        hl7_file_read(path, r->hl7_fac, r->hl7_enrol, "PTD", hl7_emit, hl7_report, r, &st, r->err,
                      sizeof r->err) != 0) {
        r->fatal = true;
        return;
    }
    r->invalid += st.refused;
    fprintf(stderr, "%s: %lu HL7 messages, %lu of patients not enrolled (dropped), %lu refused\n",
            path, st.messages, st.not_enrolled, st.refused);
}

static bool is_hl7_name(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".hl7") == 0;
}

static void run_generate(struct run *r, const struct trialgen *g, uint64_t n)
{
    struct observation obs;
    for (uint64_t i = 0; n == 0 || i < n; i++) {
        if (!pace(r))
            break;
        trialgen_get(g, i, &obs);
        if (!emit(r, &obs))
            break;
    }
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

int cmd_produce(int argc, char **argv)
{
    enum { O_FHIR_STUDY = 256, O_FHIR_SITE, O_STUDIES, O_SITES, O_SUBJECTS, O_START, O_EMIT };
    /* The command's own flags return their letter or O_* as id; -s is
     * --seed here, so --set is long-only. */
    static const struct cli_flag flags[] = {
        {"bootstrap", 'b', "bootstrap", 0, true},
        {"topic", 't', "topic", 0, true},
        {"fhir-study-system", 0, "fhir_study_system", 0, true},
        {"fhir-site-system", 0, "fhir_site_system", 0, true},
        {"max-in-flight", 0, "max_in_flight", 0, true},
        {"format", 'f', NULL, 'f', true},
        {"generate", 'n', NULL, 'n', true},
        {"seed", 's', NULL, 's', true},
        {"rate", 'r', NULL, 'r', true},
        {"studies", 0, NULL, O_STUDIES, true},
        {"sites-per-study", 0, NULL, O_SITES, true},
        {"subjects-per-site", 0, NULL, O_SUBJECTS, true},
        {"start", 0, NULL, O_START, true},
        {"emit-ndjson", 0, NULL, O_EMIT, false},
        {"pg", 0, "pg_conninfo", 0, true},
        {"facilities", 0, "facilities", 0, true},
        {0},
    };
    struct cli_settings set;
    cli_settings_init(&set);
    enum obs_format fmt = OBS_FORMAT_AUTO;
    bool generate = false, emit_ndjson = false, hl7 = false;
    uint64_t n_generate = 0, u = 0;
    double rate = 0;
    struct trialgen gen;
    trialgen_init(&gen);

    const char *arg;
    int next, status;
    for (;;) {
        int c = cli_settings_next(&set, "produce", usage, flags, argc, argv, &arg, &next, &status);
        if (c < 0)
            return status;
        if (c == 0)
            break;
        switch (c) {
        case 'f': {
            if (strcmp(arg, "hl7") == 0) {
                hl7 = true;
                continue;
            }
            hl7 = false;
            int f = obs_format_parse(arg);
            if (f < 0)
                return cli_bad_usage("produce", usage,
                                     "--format wants ndjson, csv, fhir, hl7 or auto, not '%s'",
                                     arg);
            fmt = (enum obs_format)f;
            continue;
        }
        case 'n':
            if (parse_u64(arg, UINT64_MAX / 2, &n_generate) != 0)
                return cli_bad_usage("produce", usage, "--generate wants a count, not '%s'",
                                     arg);
            generate = true;
            continue;
        case 's':
            if (parse_u64(arg, UINT64_MAX, &gen.seed) != 0)
                return cli_bad_usage("produce", usage, "--seed wants a number, not '%s'", arg);
            continue;
        case 'r': {
            char *end;
            rate = strtod(arg, &end);
            if (end == arg || *end != '\0' || !(rate > 0) || rate > 1e9)
                return cli_bad_usage("produce", usage,
                                     "--rate wants observations per second (> 0), not '%s'",
                                     arg);
            continue;
        }
        case O_STUDIES:
            if (parse_u64(arg, TRIALGEN_MAX_STUDIES, &u) != 0 || u == 0)
                return cli_bad_usage("produce", usage, "--studies wants 1-%d, not '%s'",
                                     TRIALGEN_MAX_STUDIES, arg);
            gen.studies = (int)u;
            continue;
        case O_SITES:
            if (parse_u64(arg, TRIALGEN_MAX_SITES, &u) != 0 || u == 0)
                return cli_bad_usage("produce", usage, "--sites-per-study wants 1-%d, not '%s'",
                                     TRIALGEN_MAX_SITES, arg);
            gen.sites_per_study = (int)u;
            continue;
        case O_SUBJECTS:
            if (parse_u64(arg, TRIALGEN_MAX_SUBJECTS, &u) != 0 || u == 0)
                return cli_bad_usage("produce", usage,
                                     "--subjects-per-site wants 1-%d, not '%s'",
                                     TRIALGEN_MAX_SUBJECTS, arg);
            gen.subjects_per_site = (int)u;
            continue;
        case O_START: {
            char why[256];
            if (strcmp(arg, "now") == 0) {
                gen.start_ms = kafka_now_ms();
            } else if (obs_time_parse(arg, true, &gen.start_ms, why, sizeof why) != 0) {
                return cli_bad_usage("produce", usage, "--start: %s", why);
            }
            continue;
        }
        case O_EMIT:
            emit_ndjson = true;
            continue;
        }
    }
    if (generate && next < argc)
        return cli_bad_usage("produce", usage, "--generate takes no input files ('%s')",
                             argv[next]);

    char err[2048];
    int rc = 1;
    struct sigwatch *sw = NULL;
    struct run r = {0};
    struct config *cfg = cli_settings_load(&set, items, err, sizeof err);
    if (cfg == NULL)
        goto fail;
    long max_in_flight, flush_timeout;
    if (config_get_long(cfg, "max_in_flight", 1, 1000000, &max_in_flight, err, sizeof err) != 0 ||
        config_get_long(cfg, "flush_timeout", 1, 3600, &flush_timeout, err, sizeof err) != 0)
        goto fail;
    struct fhir_options fopt = {config_get(cfg, "fhir_study_system"),
                                config_get(cfg, "fhir_site_system")};

    /* Signals are blocked before librdkafka starts its threads. */
    r.stop = ctx_new(NULL);
    static atomic_bool reload;
    sw = r.stop ? sigwatch_start(r.stop, &reload) : NULL;
    if (sw == NULL) {
        snprintf(err, sizeof err, "could not start the signal thread");
        goto fail;
    }
    if (!emit_ndjson) {
        struct obs_producer_options po = {
            .cfg = cfg,
            .bootstrap = config_get(cfg, "bootstrap"),
            .topic = config_get(cfg, "topic"),
            .client_id = "vigil-produce",
            .max_in_flight = (size_t)max_in_flight,
            .on_delivery = on_delivery,
            .arg = &r,
        };
        r.producer = obs_producer_new(&po, err, sizeof err);
        if (r.producer == NULL)
            goto fail;
    }
    r.rate = rate;
    r.started = deadline_now();
    r.cfg = cfg;

    if (generate) {
        run_generate(&r, &gen, n_generate);
    } else if (next == argc) {
        if (hl7)
            run_hl7_file(&r, "-");
        else
            run_file(&r, "-", fmt, &fopt);
    } else {
        for (int i = next; i < argc && !r.fatal && !ctx_done(r.stop); i++) {
            if (hl7 || (fmt == OBS_FORMAT_AUTO && is_hl7_name(argv[i])))
                run_hl7_file(&r, argv[i]);
            else
                run_file(&r, argv[i], fmt, &fopt);
        }
    }
    if (emit_ndjson && fflush(stdout) != 0 && !r.fatal) {
        snprintf(r.err, sizeof r.err, "could not write to stdout");
        r.fatal = true;
    }

    struct obs_producer_stats st = {0};
    if (r.producer != NULL) {
        if (obs_producer_flush(r.producer, deadline_after_ms(flush_timeout * 1000)) != 0)
            fprintf(stderr, "vigil produce: delivery reports still outstanding after %lds\n",
                    flush_timeout);
        obs_producer_stats(r.producer, &st);
    }
    if (r.fatal)
        fprintf(stderr, "vigil produce: %s\n", r.err);
    if (r.first_failure[0] != '\0')
        fprintf(stderr, "vigil produce: %" PRIu64 " deliveries failed; first: %s\n", st.failed,
                r.first_failure);
    /* Messages with no report by now count as failed: nobody can say they
     * arrived. */
    uint64_t failed = st.failed + st.in_flight;
    if (emit_ndjson)
        fprintf(stderr, "emitted %" PRIu64 ", invalid %" PRIu64 "\n", r.emitted, r.invalid);
    else
        fprintf(stderr, "produced %" PRIu64 ", failed %" PRIu64 ", invalid %" PRIu64 "\n",
                st.delivered, failed, r.invalid);
    rc = r.fatal || failed > 0 || r.invalid > 0 ? 1 : 0;
    goto out;
fail:
    fprintf(stderr, "vigil produce: %s\n", err);
out:
    obs_producer_destroy(r.producer);
    hl7_facilities_destroy(r.hl7_fac);
    hl7_enrol_destroy(r.hl7_enrol);
    sigwatch_stop(sw);
    ctx_destroy(r.stop);
    config_destroy(cfg);
    return rc;
}
