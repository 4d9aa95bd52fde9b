/*
 * codec: framing, writer-schema lookup (by fingerprint, by registry id with
 * a bounded cache), the sinks that fill struct observation / struct alert,
 * validation, and the hand-written encoders. See codec.h.
 *
 * DESIGN: every writer schema the codec meets becomes a struct wschema:
 * the parsed schema plus its resolution plan against each reader (or the
 * reason it cannot resolve, kept so a poison flood costs no re-work).
 * Fingerprinted schemas live for the codec's life in an array that is
 * read without a lock. Registry schemas live in a bounded cache behind a
 * mutex; a decoding thread holds a reference while it decodes, so eviction
 * by another thread never frees a plan in use. The registry is asked
 * outside the lock: a slow registry delays only the threads that need it.
 *
 * Encoders write the current schema field by field (no plan): the unit
 * test decodes their output through the generic path, the interop test
 * through python-avro, so the two cannot drift silently.
 */
#include "codec.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_resolve.h"
#include "avro_schema.h"
#include "embedded.h"
#include "schema_registry.h"

enum { READER_OBS = 0, READER_ALERT = 1, N_READERS = 2 };

#define KNOWN_MAX 64 /* fingerprints: current + history schemas, two forms each */
#define PINNED_MAX 64

struct wschema {
    struct avsc_schema *schema; /* NULL if the text did not parse */
    struct aplan *plan[N_READERS];
    char why[N_READERS][320];   /* reason a plan is NULL */
    atomic_int refs;
};

struct known {
    uint64_t fp;
    struct wschema *ws; /* owned through codec->owned */
};

struct pinned {
    uint32_t id;
    struct wschema *ws;
};

struct cached {
    uint32_t id;
    uint64_t seq; /* insertion order: the smallest is evicted first */
    struct wschema *ws;
};

struct codec {
    size_t max_message;
    struct avsc_schema *reader[N_READERS];
    uint64_t reader_fp[N_READERS];

    struct known known[KNOWN_MAX];
    size_t n_known;
    struct wschema *owned[KNOWN_MAX + PINNED_MAX];
    size_t n_owned;
    struct pinned pinned[PINNED_MAX];
    size_t n_pinned;

    struct registry *registry; /* NULL: no registry */
    pthread_mutex_t lock;      /* @locks cache, cache_seq */
    struct cached *cache;
    size_t cache_max;
    size_t n_cache;
    uint64_t cache_seq;
};

static const char *const class_names[] = {"ok",           "truncated",           "corrupt",
                                          "oversize",     "unknown_schema",      "incompatible_schema",
                                          "invalid",      "transient"};

const char *codec_error_class_name(enum codec_status status)
{
    if ((unsigned)status >= sizeof class_names / sizeof class_names[0])
        return "unknown";
    return class_names[status];
}

int codec_status_is_poison(enum codec_status status)
{
    return status != CODEC_OK && status != CODEC_ETRANSIENT;
}

void codec_config_init(struct codec_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_message_bytes = CODEC_DEFAULT_MAX_MESSAGE;
    cfg->registry_timeout_ms = 5000;
    cfg->registry_cache_max = 256;
}

static enum codec_status fail(char *errstr, size_t errstr_size, enum codec_status st,
                              const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static enum codec_status fail(char *errstr, size_t errstr_size, enum codec_status st,
                              const char *fmt, ...)
{
    if (errstr && errstr_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return st;
}

/* ---- writer schemas --------------------------------------------------- */

static void wschema_free(struct wschema *ws)
{
    if (!ws)
        return;
    for (int r = 0; r < N_READERS; r++)
        aplan_destroy(ws->plan[r]);
    avsc_destroy(ws->schema);
    free(ws);
}

/* Drops one reference; the last one frees. Never called under codec->lock. */
static void wschema_release(struct wschema *ws)
{
    if (ws && atomic_fetch_sub(&ws->refs, 1) == 1)
        wschema_free(ws);
}

/* Parses json and resolves it against both readers. Returns NULL only when
 * memory runs out; a schema that does not parse or resolve still yields a
 * wschema whose plans are NULL with the reason in why[]. */
static struct wschema *wschema_build(const struct codec *c, const char *json)
{
    struct wschema *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    atomic_init(&ws->refs, 1);
    char err[320];
    ws->schema = avsc_parse(json, strlen(json), err, sizeof err);
    for (int r = 0; r < N_READERS; r++) {
        if (ws->schema)
            ws->plan[r] = aplan_resolve(ws->schema, c->reader[r], err, sizeof err);
        if (!ws->plan[r])
            snprintf(ws->why[r], sizeof ws->why[r], "%s", err);
    }
    return ws;
}

static struct wschema *find_known(const struct codec *c, uint64_t fp)
{
    for (size_t i = 0; i < c->n_known; i++)
        if (c->known[i].fp == fp)
            return c->known[i].ws;
    return NULL;
}

/* Builds a writer schema the codec will own for its whole life. */
static enum codec_status add_owned(struct codec *c, const char *json, struct wschema **out,
                                   char *errstr, size_t errstr_size)
{
    if (c->n_owned == sizeof c->owned / sizeof c->owned[0])
        return fail(errstr, errstr_size, CODEC_EOVERSIZE, "too many writer schemas (%zu)",
                    c->n_owned);
    struct wschema *ws = wschema_build(c, json);
    if (!ws)
        return fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not add schema: out of memory");
    if (!ws->plan[READER_OBS] && !ws->plan[READER_ALERT]) {
        fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s; %s", ws->why[READER_OBS],
             ws->why[READER_ALERT]);
        wschema_free(ws);
        return CODEC_EINCOMPATIBLE;
    }
    c->owned[c->n_owned++] = ws;
    *out = ws;
    return CODEC_OK;
}

enum codec_status codec_add_writer_schema(struct codec *c, const char *json, char *errstr,
                                          size_t errstr_size)
{
    struct wschema *ws = NULL;
    enum codec_status st = add_owned(c, json, &ws, errstr, errstr_size);
    if (st != CODEC_OK)
        return st;
    /* Known by the spec's fingerprint, and by python3-avro 1.11's variant
     * of it (see AVSC_CANON_PY111) so its producers are not turned away. */
    int flags[2] = {0, AVSC_CANON_PY111};
    for (int i = 0; i < 2; i++) {
        size_t len;
        char *canon = avsc_canonical_form(ws->schema, flags[i], &len);
        if (!canon)
            return fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not add schema: out of memory");
        uint64_t fp = avsc_fingerprint64(canon, len);
        free(canon);
        if (find_known(c, fp))
            continue;
        if (c->n_known == KNOWN_MAX)
            return fail(errstr, errstr_size, CODEC_EOVERSIZE, "too many writer schemas");
        c->known[c->n_known].fp = fp;
        c->known[c->n_known].ws = ws;
        c->n_known++;
    }
    return CODEC_OK;
}

enum codec_status codec_add_schema_id(struct codec *c, uint32_t id, const char *json,
                                      char *errstr, size_t errstr_size)
{
    if (c->n_pinned == PINNED_MAX)
        return fail(errstr, errstr_size, CODEC_EOVERSIZE, "too many pinned schema ids");
    struct wschema *ws = NULL;
    enum codec_status st = add_owned(c, json, &ws, errstr, errstr_size);
    if (st != CODEC_OK)
        return st;
    c->pinned[c->n_pinned].id = id;
    c->pinned[c->n_pinned].ws = ws;
    c->n_pinned++;
    return CODEC_OK;
}

/* ---- codec life ------------------------------------------------------- */

static const char *const obs_fields[] = {
    "observation_id", "study_id", "site_id",        "subject_id",  "loinc",  "value", "unit",
    "ref_low",        "ref_high", "effective_time", "issued_time", "status", "visit"};
enum {
    OF_OBSERVATION_ID, OF_STUDY_ID, OF_SITE_ID, OF_SUBJECT_ID, OF_LOINC, OF_VALUE, OF_UNIT,
    OF_REF_LOW, OF_REF_HIGH, OF_EFFECTIVE_TIME, OF_ISSUED_TIME, OF_STATUS, OF_VISIT, OF_COUNT
};

static const char *const alert_fields[] = {
    "alert_id", "kind",       "rule_id", "rule_version", "severity",
    "ctcae_grade", "study_id", "site_id", "subject_id",  "evidence",
    "message",  "observed_time", "detected_time", "retracts_alert_id"};
enum {
    AF_ALERT_ID, AF_KIND, AF_RULE_ID, AF_RULE_VERSION, AF_SEVERITY, AF_CTCAE_GRADE, AF_STUDY_ID,
    AF_SITE_ID, AF_SUBJECT_ID, AF_EVIDENCE, AF_MESSAGE, AF_OBSERVED_TIME, AF_DETECTED_TIME,
    AF_RETRACTS_ALERT_ID, AF_COUNT
};

static const char *const evidence_fields[] = {"observation_id", "loinc", "value", "unit",
                                              "effective_time"};
enum { EF_OBSERVATION_ID, EF_LOINC, EF_VALUE, EF_UNIT, EF_EFFECTIVE_TIME, EF_COUNT };

/* The sinks address reader fields by position: the embedded schema must
 * have exactly these fields in this order, or the codec refuses to start. */
static bool fields_match(const struct avsc_node *rec, const char *const *names, size_t n)
{
    if (!rec || rec->type != AVSC_RECORD || rec->n_fields != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rec->fields[i].name, names[i]) != 0)
            return false;
    return true;
}

static bool is_history_schema(const char *name)
{
    /* schemas/history/<record>.v<N>.avsc */
    const char *v = strstr(name, ".v");
    size_t n = strlen(name);
    return v && n > 5 && strcmp(name + n - 5, ".avsc") == 0 && v[2] >= '0' && v[2] <= '9';
}

struct codec *codec_new(const struct codec_config *cfg_in, char *errstr, size_t errstr_size)
{
    struct codec_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        codec_config_init(&cfg);
    struct codec *c = calloc(1, sizeof *c);
    if (!c) {
        fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not create codec: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->max_message = cfg.max_message_bytes ? cfg.max_message_bytes : CODEC_DEFAULT_MAX_MESSAGE;
    c->cache_max = cfg.registry_cache_max ? cfg.registry_cache_max : 256;

    const char *names[N_READERS] = {"observation.avsc", "alert.avsc"};
    for (int r = 0; r < N_READERS; r++) {
        const char *text = embedded_find(names[r]);
        char err[256];
        if (!text) {
            fail(errstr, errstr_size, CODEC_EUNKNOWN_SCHEMA, "schema %s is not embedded", names[r]);
            goto err;
        }
        c->reader[r] = avsc_parse(text, strlen(text), err, sizeof err);
        if (!c->reader[r]) {
            fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "embedded %s: %s", names[r], err);
            goto err;
        }
        size_t len;
        char *canon = avsc_canonical_form(c->reader[r], 0, &len);
        if (!canon) {
            fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not create codec: out of memory");
            goto err;
        }
        c->reader_fp[r] = avsc_fingerprint64(canon, len);
        free(canon);
    }
    const struct avsc_node *ev = NULL;
    if (c->reader[READER_ALERT]->root->n_fields > AF_EVIDENCE &&
        c->reader[READER_ALERT]->root->fields[AF_EVIDENCE].type->type == AVSC_ARRAY)
        ev = c->reader[READER_ALERT]->root->fields[AF_EVIDENCE].type->items;
    if (!fields_match(c->reader[READER_OBS]->root, obs_fields, OF_COUNT) ||
        !fields_match(c->reader[READER_ALERT]->root, alert_fields, AF_COUNT) ||
        !fields_match(ev, evidence_fields, EF_COUNT)) {
        fail(errstr, errstr_size, CODEC_EINCOMPATIBLE,
             "embedded schemas do not have the fields common/avro/codec.c expects, in its order");
        goto err;
    }
    for (const struct embedded_file *f = embedded_files; f->name; f++) {
        bool current = strcmp(f->name, names[0]) == 0 || strcmp(f->name, names[1]) == 0;
        if (!current && !is_history_schema(f->name))
            continue;
        char err[512];
        if (codec_add_writer_schema(c, f->text, err, sizeof err) != CODEC_OK) {
            fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "embedded %s: %s", f->name, err);
            goto err;
        }
    }
    if (cfg.registry_url && cfg.registry_url[0]) {
        c->cache = calloc(c->cache_max, sizeof *c->cache);
        if (!c->cache) {
            fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not create codec: out of memory");
            goto err;
        }
        c->registry = registry_new(cfg.registry_url, cfg.registry_timeout_ms, errstr,
                                   errstr_size);
        if (!c->registry)
            goto err;
    }
    return c;
err:
    codec_destroy(c);
    return NULL;
}

void codec_destroy(struct codec *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_cache; i++)
        wschema_release(c->cache[i].ws);
    free(c->cache);
    for (size_t i = 0; i < c->n_owned; i++)
        wschema_free(c->owned[i]);
    for (int r = 0; r < N_READERS; r++)
        avsc_destroy(c->reader[r]);
    registry_destroy(c->registry);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

uint64_t codec_observation_fingerprint(const struct codec *c)
{
    return c->reader_fp[READER_OBS];
}

uint64_t codec_alert_fingerprint(const struct codec *c)
{
    return c->reader_fp[READER_ALERT];
}

/* ---- registry ids ------------------------------------------------------ */

/* Finds the writer schema for a Confluent id: pinned, cached, or fetched.
 * On CODEC_OK *ws holds a reference the caller drops with
 * wschema_release() if *release is set. */
static enum codec_status lookup_id(struct codec *c, uint32_t id, struct wschema **ws,
                                   bool *release, char *errstr, size_t errstr_size)
{
    *release = false;
    for (size_t i = 0; i < c->n_pinned; i++) {
        if (c->pinned[i].id == id) {
            *ws = c->pinned[i].ws;
            return CODEC_OK;
        }
    }
    if (!c->registry)
        return fail(errstr, errstr_size, CODEC_EUNKNOWN_SCHEMA,
                    "schema id %u is not known and no schema registry is configured",
                    (unsigned)id);

    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n_cache; i++) {
        if (c->cache[i].id == id) {
            *ws = c->cache[i].ws;
            atomic_fetch_add(&(*ws)->refs, 1);
            pthread_mutex_unlock(&c->lock);
            *release = true;
            return CODEC_OK;
        }
    }
    pthread_mutex_unlock(&c->lock);

    char *text = NULL;
    enum registry_status rs = registry_fetch_schema(c->registry, id, &text, errstr, errstr_size);
    if (rs == REGISTRY_NOT_FOUND)
        return CODEC_EUNKNOWN_SCHEMA;
    if (rs == REGISTRY_TRANSIENT)
        return CODEC_ETRANSIENT;
    struct wschema *fresh = NULL;
    if (rs == REGISTRY_NOT_AVRO) {
        /* Cached like a schema that does not resolve: the answer for an id
         * never changes, and a flood of such messages asks only once. */
        fresh = calloc(1, sizeof *fresh);
        if (fresh) {
            atomic_init(&fresh->refs, 1);
            for (int r = 0; r < N_READERS; r++)
                snprintf(fresh->why[r], sizeof fresh->why[r], "%s", errstr);
        }
    } else {
        fresh = wschema_build(c, text);
    }
    free(text);
    if (!fresh)
        return fail(errstr, errstr_size, CODEC_ETRANSIENT, "could not cache schema id %u: out of memory",
                    (unsigned)id);

    struct wschema *victim = NULL;
    pthread_mutex_lock(&c->lock);
    struct cached *slot = NULL;
    for (size_t i = 0; i < c->n_cache && !slot; i++)
        if (c->cache[i].id == id)
            slot = &c->cache[i]; /* another thread fetched it meanwhile */
    if (slot) {
        victim = fresh;
        fresh = slot->ws;
    } else {
        if (c->n_cache < c->cache_max) {
            slot = &c->cache[c->n_cache++];
        } else {
            slot = &c->cache[0];
            for (size_t i = 1; i < c->n_cache; i++)
                if (c->cache[i].seq < slot->seq)
                    slot = &c->cache[i];
            victim = slot->ws;
        }
        slot->id = id;
        slot->seq = ++c->cache_seq;
        slot->ws = fresh; /* the cache's reference */
    }
    atomic_fetch_add(&fresh->refs, 1); /* the caller's reference */
    pthread_mutex_unlock(&c->lock);
    wschema_release(victim); /* outside the lock: may free */
    *ws = fresh;
    *release = true;
    return CODEC_OK;
}

/* ---- validation helpers ------------------------------------------------ */

/* True if s[0..n) is well-formed UTF-8 (no overlongs, no surrogates). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char ch = s[i];
        size_t len;
        uint32_t cp;
        if (ch < 0x80) {
            i++;
            continue;
        } else if ((ch & 0xe0) == 0xc0) {
            len = 2;
            cp = ch & 0x1f;
        } else if ((ch & 0xf0) == 0xe0) {
            len = 3;
            cp = ch & 0x0f;
        } else if ((ch & 0xf8) == 0xf0) {
            len = 4;
            cp = ch & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Checks one text field of a struct (encoding) or of a decoded value:
 * fits, no NUL inside, UTF-8 (PostgreSQL text refuses anything else). */
static enum codec_status check_text(const char *s, size_t n, size_t max, const char *name,
                                    bool required, char *errstr, size_t errstr_size)
{
    if (n > max)
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s is %zu bytes, longer than %zu",
                    name, n, max);
    if (required && n == 0)
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s is empty", name);
    if (memchr(s, '\0', n))
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s contains a NUL byte", name);
    if (!utf8_valid((const unsigned char *)s, n))
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s is not valid UTF-8", name);
    return CODEC_OK;
}

/* A struct's char array field: must be NUL-terminated within it. */
static enum codec_status check_field(const char *s, size_t size, const char *name, bool required,
                                     char *errstr, size_t errstr_size)
{
    size_t n = strnlen(s, size);
    if (n == size)
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s is not NUL-terminated", name);
    return check_text(s, n, size - 1, name, required, errstr, errstr_size);
}

static enum codec_status check_finite(bool present, double v, const char *name, char *errstr,
                                      size_t errstr_size)
{
    if (present && !isfinite(v))
        return fail(errstr, errstr_size, CODEC_EINVALID, "%s is %s", name,
                    isnan(v) ? "NaN" : "infinite");
    return CODEC_OK;
}

#define TRY(expr)                      \
    do {                               \
        enum codec_status st_ = (expr); \
        if (st_ != CODEC_OK)           \
            return st_;                \
    } while (0)

static enum codec_status validate_observation(const struct observation *o, char *e, size_t es)
{
    TRY(check_field(o->observation_id, sizeof o->observation_id, "observation_id", true, e, es));
    TRY(check_field(o->study_id, sizeof o->study_id, "study_id", true, e, es));
    TRY(check_field(o->site_id, sizeof o->site_id, "site_id", true, e, es));
    TRY(check_field(o->subject_id, sizeof o->subject_id, "subject_id", true, e, es));
    TRY(check_field(o->loinc, sizeof o->loinc, "loinc", true, e, es));
    TRY(check_field(o->unit, sizeof o->unit, "unit", false, e, es));
    TRY(check_field(o->visit, sizeof o->visit, "visit", false, e, es));
    TRY(check_finite(o->has_value, o->value, "value", e, es));
    TRY(check_finite(o->has_ref_low, o->ref_low, "ref_low", e, es));
    TRY(check_finite(o->has_ref_high, o->ref_high, "ref_high", e, es));
    if ((unsigned)o->status > OBS_ENTERED_IN_ERROR)
        return fail(e, es, CODEC_EINVALID, "status %d is not a known status", (int)o->status);
    return CODEC_OK;
}

static enum codec_status validate_alert(const struct alert *a, char *e, size_t es)
{
    TRY(check_field(a->alert_id, sizeof a->alert_id, "alert_id", true, e, es));
    TRY(check_field(a->rule_id, sizeof a->rule_id, "rule_id", true, e, es));
    TRY(check_field(a->study_id, sizeof a->study_id, "study_id", true, e, es));
    TRY(check_field(a->site_id, sizeof a->site_id, "site_id", true, e, es));
    TRY(check_field(a->subject_id, sizeof a->subject_id, "subject_id", true, e, es));
    TRY(check_field(a->message, sizeof a->message, "message", false, e, es));
    TRY(check_field(a->retracts_alert_id, sizeof a->retracts_alert_id, "retracts_alert_id", false,
                    e, es));
    if ((unsigned)a->kind > ALERT_RETRACTION)
        return fail(e, es, CODEC_EINVALID, "kind %d is not a known kind", (int)a->kind);
    if ((unsigned)a->severity > SEV_CRITICAL)
        return fail(e, es, CODEC_EINVALID, "severity %d is not a known severity",
                    (int)a->severity);
    if (a->ctcae_grade < 0 || a->ctcae_grade > 5)
        return fail(e, es, CODEC_EINVALID, "ctcae_grade %d is not 1-5 (or absent)",
                    (int)a->ctcae_grade);
    if (a->n_evidence < 0 || a->n_evidence > ALERT_EVIDENCE_MAX)
        return fail(e, es, CODEC_EINVALID, "%d evidence items, more than %d", a->n_evidence,
                    ALERT_EVIDENCE_MAX);
    if ((a->kind == ALERT_RETRACTION) != (a->retracts_alert_id[0] != '\0'))
        return fail(e, es, CODEC_EINVALID,
                    a->kind == ALERT_RETRACTION ? "a retraction needs retracts_alert_id"
                                                : "a signal may not have retracts_alert_id");
    for (int i = 0; i < a->n_evidence; i++) {
        const struct alert_evidence *ev = &a->evidence[i];
        TRY(check_field(ev->observation_id, sizeof ev->observation_id, "evidence.observation_id",
                        true, e, es));
        TRY(check_field(ev->loinc, sizeof ev->loinc, "evidence.loinc", true, e, es));
        TRY(check_field(ev->unit, sizeof ev->unit, "evidence.unit", false, e, es));
        TRY(check_finite(true, ev->value, "evidence.value", e, es));
    }
    return CODEC_OK;
}

/* ---- sinks: decoded values into the structs ----------------------------- */

static enum codec_status wrong_kind(struct adec *d, const char *name)
{
    return adec_fail(d, CODEC_EINVALID, "%s has a type common/avro/codec.c does not expect", name);
}

static enum codec_status set_text(char *dst, size_t size, const struct aval *v, const char *name,
                                  struct adec *d)
{
    if (v->kind == AVAL_NULL) {
        dst[0] = '\0';
        return CODEC_OK;
    }
    if (v->kind != AVAL_STRING)
        return wrong_kind(d, name);
    char why[160];
    if (check_text(v->s, v->n, size - 1, name, false, why, sizeof why) != CODEC_OK)
        return adec_fail(d, CODEC_EINVALID, "%s", why);
    memcpy(dst, v->s, v->n);
    dst[v->n] = '\0';
    return CODEC_OK;
}

static enum codec_status set_double(double *dst, bool *present, const struct aval *v,
                                    const char *name, struct adec *d)
{
    if (v->kind == AVAL_NULL && present) {
        *present = false;
        return CODEC_OK;
    }
    if (v->kind != AVAL_DOUBLE)
        return wrong_kind(d, name);
    if (present)
        *present = true;
    *dst = v->d;
    return CODEC_OK;
}

static enum codec_status set_long(int64_t *dst, const struct aval *v, const char *name,
                                  struct adec *d)
{
    if (v->kind != AVAL_LONG)
        return wrong_kind(d, name);
    *dst = v->l;
    return CODEC_OK;
}

static enum codec_status obs_set(void *obj, size_t field, const struct aval *v, struct adec *d)
{
    struct observation *o = obj;
    switch (field) {
    case OF_OBSERVATION_ID:
        return set_text(o->observation_id, sizeof o->observation_id, v, "observation_id", d);
    case OF_STUDY_ID:
        return set_text(o->study_id, sizeof o->study_id, v, "study_id", d);
    case OF_SITE_ID:
        return set_text(o->site_id, sizeof o->site_id, v, "site_id", d);
    case OF_SUBJECT_ID:
        return set_text(o->subject_id, sizeof o->subject_id, v, "subject_id", d);
    case OF_LOINC:
        return set_text(o->loinc, sizeof o->loinc, v, "loinc", d);
    case OF_VALUE:
        return set_double(&o->value, &o->has_value, v, "value", d);
    case OF_UNIT:
        return set_text(o->unit, sizeof o->unit, v, "unit", d);
    case OF_REF_LOW:
        return set_double(&o->ref_low, &o->has_ref_low, v, "ref_low", d);
    case OF_REF_HIGH:
        return set_double(&o->ref_high, &o->has_ref_high, v, "ref_high", d);
    case OF_EFFECTIVE_TIME:
        return set_long(&o->effective_ms, v, "effective_time", d);
    case OF_ISSUED_TIME:
        return set_long(&o->issued_ms, v, "issued_time", d);
    case OF_STATUS:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(d, "status");
        o->status = (enum obs_status)v->l;
        return CODEC_OK;
    case OF_VISIT:
        return set_text(o->visit, sizeof o->visit, v, "visit", d);
    default:
        return adec_fail(d, CODEC_EINVALID, "observation has no field %zu", field);
    }
}

static const struct aplan_sink obs_sink = {obs_set, NULL};

static enum codec_status evidence_set(void *obj, size_t field, const struct aval *v,
                                      struct adec *d)
{
    struct alert_evidence *ev = obj;
    switch (field) {
    case EF_OBSERVATION_ID:
        return set_text(ev->observation_id, sizeof ev->observation_id, v,
                        "evidence.observation_id", d);
    case EF_LOINC:
        return set_text(ev->loinc, sizeof ev->loinc, v, "evidence.loinc", d);
    case EF_VALUE:
        return set_double(&ev->value, NULL, v, "evidence.value", d);
    case EF_UNIT:
        return set_text(ev->unit, sizeof ev->unit, v, "evidence.unit", d);
    case EF_EFFECTIVE_TIME:
        return set_long(&ev->effective_ms, v, "evidence.effective_time", d);
    default:
        return adec_fail(d, CODEC_EINVALID, "evidence has no field %zu", field);
    }
}

static const struct aplan_sink evidence_sink = {evidence_set, NULL};

static enum codec_status alert_set(void *obj, size_t field, const struct aval *v, struct adec *d)
{
    struct alert *a = obj;
    switch (field) {
    case AF_ALERT_ID:
        return set_text(a->alert_id, sizeof a->alert_id, v, "alert_id", d);
    case AF_KIND:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(d, "kind");
        a->kind = (enum alert_kind)v->l;
        return CODEC_OK;
    case AF_RULE_ID:
        return set_text(a->rule_id, sizeof a->rule_id, v, "rule_id", d);
    case AF_RULE_VERSION:
        if (v->kind != AVAL_LONG)
            return wrong_kind(d, "rule_version");
        a->rule_version = (int32_t)v->l; /* an Avro int: in range */
        return CODEC_OK;
    case AF_SEVERITY:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(d, "severity");
        a->severity = (enum alert_severity)v->l;
        return CODEC_OK;
    case AF_CTCAE_GRADE:
        if (v->kind == AVAL_NULL) {
            a->ctcae_grade = 0;
            return CODEC_OK;
        }
        if (v->kind != AVAL_LONG)
            return wrong_kind(d, "ctcae_grade");
        if (v->l < 1 || v->l > 5)
            return adec_fail(d, CODEC_EINVALID, "ctcae_grade %lld is not 1-5", (long long)v->l);
        a->ctcae_grade = (int32_t)v->l;
        return CODEC_OK;
    case AF_STUDY_ID:
        return set_text(a->study_id, sizeof a->study_id, v, "study_id", d);
    case AF_SITE_ID:
        return set_text(a->site_id, sizeof a->site_id, v, "site_id", d);
    case AF_SUBJECT_ID:
        return set_text(a->subject_id, sizeof a->subject_id, v, "subject_id", d);
    case AF_MESSAGE:
        return set_text(a->message, sizeof a->message, v, "message", d);
    case AF_OBSERVED_TIME:
        return set_long(&a->observed_ms, v, "observed_time", d);
    case AF_DETECTED_TIME:
        return set_long(&a->detected_ms, v, "detected_time", d);
    case AF_RETRACTS_ALERT_ID:
        return set_text(a->retracts_alert_id, sizeof a->retracts_alert_id, v,
                        "retracts_alert_id", d);
    default:
        return adec_fail(d, CODEC_EINVALID, "alert has no field %zu", field);
    }
}

static void *alert_item(void *obj, size_t field, size_t index, const struct aplan_sink **sink,
                        struct adec *d)
{
    struct alert *a = obj;
    if (field != AF_EVIDENCE) {
        adec_fail(d, CODEC_EINVALID, "alert field %zu is not an array", field);
        return NULL;
    }
    if (index >= ALERT_EVIDENCE_MAX) {
        adec_fail(d, CODEC_EINVALID, "more than %d evidence items", ALERT_EVIDENCE_MAX);
        return NULL;
    }
    a->n_evidence = (int)index + 1;
    *sink = &evidence_sink;
    return &a->evidence[index];
}

static const struct aplan_sink alert_sink = {alert_set, alert_item};

/* ---- decoding ------------------------------------------------------------ */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static enum codec_status decode(struct codec *c, int reader, const void *buf, size_t len,
                                void *obj, size_t obj_size, const struct aplan_sink *sink,
                                char *errstr, size_t errstr_size)
{
    const uint8_t *b = buf;
    struct wschema *ws = NULL;
    bool release = false;
    size_t header;
    enum codec_status st;

    if (len > c->max_message)
        return fail(errstr, errstr_size, CODEC_EOVERSIZE,
                    "message of %zu bytes is larger than the %zu allowed", len, c->max_message);
    if (len == 0)
        return fail(errstr, errstr_size, CODEC_ETRUNCATED, "empty message");
    if (b[0] == 0xc3) {
        if (len >= 2 && b[1] != 0x01)
            return fail(errstr, errstr_size, CODEC_ECORRUPT,
                        "single-object marker C3 %02X is not C3 01", b[1]);
        if (len < 10)
            return fail(errstr, errstr_size, CODEC_ETRUNCATED,
                        "message of %zu bytes ends inside the single-object header", len);
        uint64_t fp = le64(b + 2);
        ws = find_known(c, fp);
        if (!ws)
            return fail(errstr, errstr_size, CODEC_EUNKNOWN_SCHEMA,
                        "no known writer schema has fingerprint %016llx",
                        (unsigned long long)fp);
        header = 10;
    } else if (b[0] == 0x00) {
        if (len < 5)
            return fail(errstr, errstr_size, CODEC_ETRUNCATED,
                        "message of %zu bytes ends inside the Confluent header", len);
        st = lookup_id(c, be32(b + 1), &ws, &release, errstr, errstr_size);
        if (st != CODEC_OK)
            return st;
        header = 5;
    } else {
        return fail(errstr, errstr_size, CODEC_ECORRUPT,
                    "first byte 0x%02x is neither a single-object (C3 01) nor a Confluent (00) "
                    "header",
                    b[0]);
    }

    if (!ws->plan[reader]) {
        st = fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s", ws->why[reader]);
        goto out;
    }
    memset(obj, 0, obj_size);
    struct adec d;
    adec_init(&d, b, b + header, b + len, errstr, errstr_size);
    st = aplan_decode(ws->plan[reader], &d, obj, sink);
    if (st == CODEC_OK && d.p != d.end)
        st = adec_fail(&d, CODEC_ECORRUPT, "%zu bytes left after the record",
                       (size_t)(d.end - d.p));
    if (st == CODEC_OK)
        st = reader == READER_OBS ? validate_observation(obj, errstr, errstr_size)
                                  : validate_alert(obj, errstr, errstr_size);
out:
    if (release)
        wschema_release(ws);
    return st;
}

enum codec_status codec_decode_observation(struct codec *c, const void *buf, size_t len,
                                           struct observation *out, char *errstr,
                                           size_t errstr_size)
{
    return decode(c, READER_OBS, buf, len, out, sizeof *out, &obs_sink, errstr, errstr_size);
}

enum codec_status codec_decode_alert(struct codec *c, const void *buf, size_t len,
                                     struct alert *out, char *errstr, size_t errstr_size)
{
    return decode(c, READER_ALERT, buf, len, out, sizeof *out, &alert_sink, errstr,
                  errstr_size);
}

/* ---- encoding ------------------------------------------------------------ */

struct wbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    bool full;
};

static void put_bytes(struct wbuf *w, const void *data, size_t n)
{
    if (w->full || w->cap - w->len < n) {
        w->full = true;
        return;
    }
    memcpy(w->p + w->len, data, n);
    w->len += n;
}

static void put_long(struct wbuf *w, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    uint8_t tmp[10];
    size_t n = 0;
    while (z >= 0x80) {
        tmp[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    tmp[n++] = (uint8_t)z;
    put_bytes(w, tmp, n);
}

static void put_double(struct wbuf *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(bits >> (8 * i));
    put_bytes(w, tmp, 8);
}

static void put_string(struct wbuf *w, const char *s)
{
    size_t n = strlen(s);
    put_long(w, (int64_t)n);
    put_bytes(w, s, n);
}

/* ["null", "double"]: branch 0 is null. */
static void put_opt_double(struct wbuf *w, bool present, double v)
{
    put_long(w, present ? 1 : 0);
    if (present)
        put_double(w, v);
}

/* ["null", "string"], "" meaning null. */
static void put_opt_string(struct wbuf *w, const char *s)
{
    put_long(w, s[0] ? 1 : 0);
    if (s[0])
        put_string(w, s);
}

static void put_header(struct wbuf *w, enum codec_framing framing, uint64_t fp, uint32_t id)
{
    uint8_t h[10];
    if (framing == CODEC_CONFLUENT) {
        h[0] = 0;
        for (int i = 0; i < 4; i++)
            h[1 + i] = (uint8_t)(id >> (24 - 8 * i));
        put_bytes(w, h, 5);
    } else {
        h[0] = 0xc3;
        h[1] = 0x01;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)(fp >> (8 * i));
        put_bytes(w, h, 10);
    }
}

static enum codec_status finish(struct wbuf *w, size_t *len, char *errstr, size_t errstr_size)
{
    if (w->full)
        return fail(errstr, errstr_size, CODEC_EOVERSIZE,
                    "encoded message does not fit in the %zu-byte buffer", w->cap);
    *len = w->len;
    return CODEC_OK;
}

enum codec_status codec_encode_observation(const struct codec *c, const struct observation *o,
                                           enum codec_framing framing, uint32_t schema_id,
                                           void *buf, size_t cap, size_t *len, char *errstr,
                                           size_t errstr_size)
{
    TRY(validate_observation(o, errstr, errstr_size));
    struct wbuf w = {.p = buf, .cap = cap};
    put_header(&w, framing, c->reader_fp[READER_OBS], schema_id);
    put_string(&w, o->observation_id);
    put_string(&w, o->study_id);
    put_string(&w, o->site_id);
    put_string(&w, o->subject_id);
    put_string(&w, o->loinc);
    put_opt_double(&w, o->has_value, o->value);
    put_string(&w, o->unit);
    put_opt_double(&w, o->has_ref_low, o->ref_low);
    put_opt_double(&w, o->has_ref_high, o->ref_high);
    put_long(&w, o->effective_ms);
    put_long(&w, o->issued_ms);
    put_long(&w, (int64_t)o->status);
    put_opt_string(&w, o->visit);
    return finish(&w, len, errstr, errstr_size);
}

enum codec_status codec_encode_alert(const struct codec *c, const struct alert *a,
                                     enum codec_framing framing, uint32_t schema_id, void *buf,
                                     size_t cap, size_t *len, char *errstr, size_t errstr_size)
{
    TRY(validate_alert(a, errstr, errstr_size));
    struct wbuf w = {.p = buf, .cap = cap};
    put_header(&w, framing, c->reader_fp[READER_ALERT], schema_id);
    put_string(&w, a->alert_id);
    put_long(&w, (int64_t)a->kind);
    put_string(&w, a->rule_id);
    put_long(&w, a->rule_version);
    put_long(&w, (int64_t)a->severity);
    put_long(&w, a->ctcae_grade ? 1 : 0);
    if (a->ctcae_grade)
        put_long(&w, a->ctcae_grade);
    put_string(&w, a->study_id);
    put_string(&w, a->site_id);
    put_string(&w, a->subject_id);
    if (a->n_evidence > 0) {
        put_long(&w, a->n_evidence);
        for (int i = 0; i < a->n_evidence; i++) {
            const struct alert_evidence *ev = &a->evidence[i];
            put_string(&w, ev->observation_id);
            put_string(&w, ev->loinc);
            put_double(&w, ev->value);
            put_string(&w, ev->unit);
            put_long(&w, ev->effective_ms);
        }
    }
    put_long(&w, 0); /* end of the evidence array */
    put_string(&w, a->message);
    put_long(&w, a->observed_ms);
    put_long(&w, a->detected_ms);
    put_opt_string(&w, a->retracts_alert_id);
    return finish(&w, len, errstr, errstr_size);
}
