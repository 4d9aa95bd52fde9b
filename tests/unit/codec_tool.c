/*
 * codec_tool: a line-oriented front end to common/avro/codec.h for the interop
 * test (codec_interop.py), which compares it with python-avro.
 *
 *   codec_tool decode observation|alert [REGISTRY_URL] [--writer SCHEMA_FILE]
 *              [--cache N] [--threads N]
 *       stdin: one message per line, hex; stdout: one JSON object per line,
 *       the decoded fields, or {"error": class, "message": text}.
 *       --cache: registry cache size (default 256).
 *       --threads: after the pass that prints, N threads decode every
 *       message 50 times more with the same codec; exit 3 if any result
 *       differs from the printed pass.
 *       --writer: a history schema to know even if it is not embedded yet
 *       (a note on stderr says so; embedded ones are used as they are)
 *   codec_tool encode observation|alert single|confluent SCHEMA_ID
 *       stdin: one JSON object per line (as decode prints); stdout: hex
 *   codec_tool canon SCHEMA_FILE
 *       stdout: the canonical form, then the fingerprint as 16 hex digits
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_canon.h"
#include "codec.h"
#include "embedded.h"

static const char *const status_symbols[] = {"final", "amended", "corrected", "cancelled",
                                             "entered_in_error"};
static const char *const kind_symbols[] = {"signal", "retraction"};
static const char *const severity_symbols[] = {"info", "warning", "critical"};

static int symbol_index(const char *const *symbols, int n, const char *s)
{
    for (int i = 0; s && i < n; i++)
        if (strcmp(symbols[i], s) == 0)
            return i;
    return -1;
}

static json_t *opt_real(bool present, double v)
{
    return present ? json_real(v) : json_null();
}

static json_t *opt_string(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

static json_t *obs_to_json(const struct observation *o)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:o,s:o,s:I,s:I,s:s,s:o}", "observation_id",
                     o->observation_id, "study_id", o->study_id, "site_id", o->site_id,
                     "subject_id", o->subject_id, "loinc", o->loinc, "value",
                     opt_real(o->has_value, o->value), "unit", o->unit, "ref_low",
                     opt_real(o->has_ref_low, o->ref_low), "ref_high",
                     opt_real(o->has_ref_high, o->ref_high), "effective_time",
                     (json_int_t)o->effective_ms, "issued_time", (json_int_t)o->issued_ms,
                     "status", status_symbols[o->status], "visit", opt_string(o->visit));
}

static json_t *alert_to_json(const struct alert *a)
{
    json_t *ev = json_array();
    for (int i = 0; i < a->n_evidence; i++) {
        const struct alert_evidence *e = &a->evidence[i];
        json_array_append_new(ev, json_pack("{s:s,s:s,s:f,s:s,s:I}", "observation_id",
                                            e->observation_id, "loinc", e->loinc, "value",
                                            e->value, "unit", e->unit, "effective_time",
                                            (json_int_t)e->effective_ms));
    }
    return json_pack(
        "{s:s,s:s,s:s,s:i,s:s,s:o,s:s,s:s,s:s,s:o,s:s,s:I,s:I,s:o}", "alert_id", a->alert_id,
        "kind", kind_symbols[a->kind], "rule_id", a->rule_id, "rule_version",
        (int)a->rule_version, "severity", severity_symbols[a->severity], "ctcae_grade",
        a->ctcae_grade ? json_integer(a->ctcae_grade) : json_null(), "study_id", a->study_id,
        "site_id", a->site_id, "subject_id", a->subject_id, "evidence", ev, "message",
        a->message, "observed_time", (json_int_t)a->observed_ms, "detected_time",
        (json_int_t)a->detected_ms, "retracts_alert_id", opt_string(a->retracts_alert_id));
}

/* Copies a JSON string (or "" for null/absent) into a char array. */
static void get_text(json_t *obj, const char *key, char *dst, size_t size)
{
    const char *s = json_string_value(json_object_get(obj, key));
    snprintf(dst, size, "%s", s ? s : "");
}

static bool get_opt_real(json_t *obj, const char *key, double *dst)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return false;
    *dst = json_number_value(v);
    return true;
}

static void obs_from_json(json_t *j, struct observation *o)
{
    memset(o, 0, sizeof *o);
    get_text(j, "observation_id", o->observation_id, sizeof o->observation_id);
    get_text(j, "study_id", o->study_id, sizeof o->study_id);
    get_text(j, "site_id", o->site_id, sizeof o->site_id);
    get_text(j, "subject_id", o->subject_id, sizeof o->subject_id);
    get_text(j, "loinc", o->loinc, sizeof o->loinc);
    o->has_value = get_opt_real(j, "value", &o->value);
    get_text(j, "unit", o->unit, sizeof o->unit);
    o->has_ref_low = get_opt_real(j, "ref_low", &o->ref_low);
    o->has_ref_high = get_opt_real(j, "ref_high", &o->ref_high);
    o->effective_ms = json_integer_value(json_object_get(j, "effective_time"));
    o->issued_ms = json_integer_value(json_object_get(j, "issued_time"));
    o->status = (enum obs_status)symbol_index(
        status_symbols, 5, json_string_value(json_object_get(j, "status")));
    get_text(j, "visit", o->visit, sizeof o->visit);
}

static void alert_from_json(json_t *j, struct alert *a)
{
    memset(a, 0, sizeof *a);
    get_text(j, "alert_id", a->alert_id, sizeof a->alert_id);
    a->kind = (enum alert_kind)symbol_index(kind_symbols, 2,
                                            json_string_value(json_object_get(j, "kind")));
    get_text(j, "rule_id", a->rule_id, sizeof a->rule_id);
    a->rule_version = (int32_t)json_integer_value(json_object_get(j, "rule_version"));
    a->severity = (enum alert_severity)symbol_index(
        severity_symbols, 3, json_string_value(json_object_get(j, "severity")));
    a->ctcae_grade = (int32_t)json_integer_value(json_object_get(j, "ctcae_grade"));
    get_text(j, "study_id", a->study_id, sizeof a->study_id);
    get_text(j, "site_id", a->site_id, sizeof a->site_id);
    get_text(j, "subject_id", a->subject_id, sizeof a->subject_id);
    json_t *ev = json_object_get(j, "evidence");
    size_t n = json_array_size(ev);
    a->n_evidence = n > ALERT_EVIDENCE_MAX ? ALERT_EVIDENCE_MAX + 1 : (int)n;
    for (size_t i = 0; i < n && i < ALERT_EVIDENCE_MAX; i++) {
        json_t *e = json_array_get(ev, i);
        struct alert_evidence *d = &a->evidence[i];
        get_text(e, "observation_id", d->observation_id, sizeof d->observation_id);
        get_text(e, "loinc", d->loinc, sizeof d->loinc);
        d->value = json_number_value(json_object_get(e, "value"));
        get_text(e, "unit", d->unit, sizeof d->unit);
        d->effective_ms = json_integer_value(json_object_get(e, "effective_time"));
    }
    get_text(j, "message", a->message, sizeof a->message);
    a->observed_ms = json_integer_value(json_object_get(j, "observed_time"));
    a->detected_ms = json_integer_value(json_object_get(j, "detected_time"));
    get_text(j, "retracts_alert_id", a->retracts_alert_id, sizeof a->retracts_alert_id);
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;
    while (s[0] && s[1] && n < cap) {
        unsigned v;
        if (sscanf(s, "%2x", &v) != 1)
            break;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return n;
}

static void print_line(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    printf("%s\n", s);
    free(s);
    json_decref(j);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = calloc(1, 1 << 20);
    if (text) {
        size_t n = fread(text, 1, (1 << 20) - 1, f);
        text[n] = '\0';
    }
    fclose(f);
    return text;
}

struct batch {
    struct codec *codec;
    bool obs;
    uint8_t **msgs;
    size_t *lens;
    enum codec_status *want;
    size_t n;
    int mismatches;
};

static void *decode_again(void *arg)
{
    struct batch *b = arg;
    char err[512];
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < b->n; i++) {
            struct observation o;
            struct alert a;
            enum codec_status st =
                b->obs ? codec_decode_observation(b->codec, b->msgs[i], b->lens[i], &o, err,
                                                  sizeof err)
                       : codec_decode_alert(b->codec, b->msgs[i], b->lens[i], &a, err, sizeof err);
            if (st != b->want[i])
                __atomic_add_fetch(&b->mismatches, 1, __ATOMIC_RELAXED);
        }
    }
    return NULL;
}

static int cmd_decode(bool obs, const char *registry, const char *writer, size_t cache,
                      int threads)
{
    struct codec_config cfg;
    codec_config_init(&cfg);
    cfg.registry_url = registry;
    if (cache)
        cfg.registry_cache_max = cache;
    cfg.registry_timeout_ms = 2000;
    char err[512];
    struct codec *c = codec_new(&cfg, err, sizeof err);
    if (!c) {
        fprintf(stderr, "codec_tool: %s\n", err);
        return 1;
    }
    const char *base = writer ? strrchr(writer, '/') : NULL;
    if (writer && !embedded_find(base ? base + 1 : writer)) {
        char *text = slurp(writer);
        fprintf(stderr, "note: %s is not embedded; added from the source tree\n", writer);
        if (!text || codec_add_writer_schema(c, text, err, sizeof err) != CODEC_OK) {
            fprintf(stderr, "codec_tool: %s: %s\n", writer, text ? err : "cannot read");
            free(text);
            codec_destroy(c);
            return 1;
        }
        free(text);
    }
    static char line[1 << 20];
    static uint8_t buf[1 << 19];
    struct batch b = {.codec = c, .obs = obs};
    size_t cap = 0;
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        size_t len = unhex(line, buf, sizeof buf);
        if (b.n == cap) {
            cap = cap ? cap * 2 : 64;
            b.msgs = realloc(b.msgs, cap * sizeof *b.msgs);
            b.lens = realloc(b.lens, cap * sizeof *b.lens);
            b.want = realloc(b.want, cap * sizeof *b.want);
        }
        b.msgs[b.n] = malloc(len ? len : 1);
        memcpy(b.msgs[b.n], buf, len);
        b.lens[b.n] = len;
        struct observation o;
        struct alert a;
        enum codec_status st = obs ? codec_decode_observation(c, buf, len, &o, err, sizeof err)
                                   : codec_decode_alert(c, buf, len, &a, err, sizeof err);
        if (st != CODEC_OK)
            print_line(json_pack("{s:s,s:s}", "error", codec_error_class_name(st), "message", err));
        else
            print_line(obs ? obs_to_json(&o) : alert_to_json(&a));
        fflush(stdout);
        b.want[b.n++] = st;
    }
    pthread_t tids[16];
    if (threads > 16)
        threads = 16;
    for (int i = 0; i < threads; i++)
        pthread_create(&tids[i], NULL, decode_again, &b);
    for (int i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    if (b.mismatches)
        fprintf(stderr, "codec_tool: %d results differed between threads\n", b.mismatches);
    for (size_t i = 0; i < b.n; i++)
        free(b.msgs[i]);
    free(b.msgs);
    free(b.lens);
    free(b.want);
    codec_destroy(c);
    return b.mismatches ? 3 : 0;
}

static int cmd_encode(bool obs, bool confluent, uint32_t id)
{
    char err[512];
    struct codec *c = codec_new(NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "codec_tool: %s\n", err);
        return 1;
    }
    static char line[1 << 16];
    while (fgets(line, sizeof line, stdin)) {
        json_t *j = json_loads(line, 0, NULL);
        uint8_t buf[CODEC_ALERT_MAX_ENCODED];
        size_t len = 0;
        enum codec_status st;
        enum codec_framing f = confluent ? CODEC_CONFLUENT : CODEC_SINGLE_OBJECT;
        if (obs) {
            struct observation o;
            obs_from_json(j, &o);
            st = codec_encode_observation(c, &o, f, id, buf, sizeof buf, &len, err, sizeof err);
        } else {
            struct alert a;
            alert_from_json(j, &a);
            st = codec_encode_alert(c, &a, f, id, buf, sizeof buf, &len, err, sizeof err);
        }
        json_decref(j);
        if (st != CODEC_OK)
            printf("error %s %s\n", codec_error_class_name(st), err);
        else {
            for (size_t i = 0; i < len; i++)
                printf("%02x", buf[i]);
            printf("\n");
        }
        fflush(stdout); /* callers may stream: a line in, a line out */
    }
    codec_destroy(c);
    return 0;
}

static int cmd_canon(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static char text[1 << 20];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    char err[256];
    size_t len;
    char *canon = avro_canon_form(text, n, 0, &len, err, sizeof err);
    if (!canon) {
        fprintf(stderr, "codec_tool: %s\n", err);
        return 1;
    }
    printf("%s\n%016llx\n", canon, (unsigned long long)avro_canon_fingerprint64(canon, len));
    free(canon);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "decode") == 0) {
        const char *registry = NULL, *writer = NULL;
        size_t cache = 0;
        int threads = 0;
        for (int i = 3; i < argc; i++) {
            if (strcmp(argv[i], "--writer") == 0 && i + 1 < argc)
                writer = argv[++i];
            else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc)
                cache = strtoul(argv[++i], NULL, 10);
            else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
                threads = atoi(argv[++i]);
            else
                registry = argv[i];
        }
        return cmd_decode(strcmp(argv[2], "observation") == 0, registry, writer, cache, threads);
    }
    if (argc == 5 && strcmp(argv[1], "encode") == 0)
        return cmd_encode(strcmp(argv[2], "observation") == 0,
                          strcmp(argv[3], "confluent") == 0, (uint32_t)strtoul(argv[4], NULL, 10));
    if (argc == 3 && strcmp(argv[1], "canon") == 0)
        return cmd_canon(argv[2]);
    fprintf(stderr, "usage: codec_tool decode KIND [REGISTRY] | encode KIND single|confluent ID "
                    "| canon FILE\n");
    return 2;
}
