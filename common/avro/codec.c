/*
 * codec: framing, writer-schema lookup (by fingerprint, by registry id with
 * a bounded cache), the sinks that fill struct observation / struct alert,
 * validation, and encoding through avro-c. See codec.h; common/avro/README.md
 * says which parts are avro-c's and which are ours.
 *
 * DESIGN: every writer schema the codec meets becomes a struct wschema:
 * avro-c's parse of it and its resolution against each reader
 * (avro_resolve.h), or the reason it cannot resolve, kept so a poison flood
 * costs no re-work. Fingerprinted schemas live for the codec's life in an
 * array that is read without a lock. Registry schemas live in a bounded
 * cache behind a mutex; a decoding thread holds a reference while it
 * decodes, so eviction by another thread never frees a writer in use. The
 * registry is asked outside the lock: a slow registry delays only the
 * threads that need it. Schemas are built under build_lock: avro-c keeps
 * its error text in one process-wide buffer.
 *
 * Encoders fill a generic value of the current schema (avro-c) and write
 * it with avro_value_write(); the value and the memory writer are reused
 * (a pool per reader, one entry per thread that encodes at once), strings
 * are lent to avro-c without a copy. The unit test decodes their output,
 * the interop test has python-avro read it.
 */
#include <avro.h>

#include "codec.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_canon.h"
#include "avro_resolve.h"
#include "embedded.h"
#include "schema_registry.h"

enum { READER_OBS = 0, READER_ALERT = 1, N_READERS = 2 };

#define KNOWN_MAX 64 /* fingerprints: current + history schemas, two forms each */
#define PINNED_MAX 64

struct wschema {
    struct avro_resolve_writer *w; /* NULL: not an Avro schema (registry said so) */
    char why[320];                 /* reason when w is NULL */
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

/* What one thread needs to encode: avro-c's value of the current schema
 * and a memory writer, reused message after message. */
struct ectx {
    avro_value_t val;
    avro_writer_t out;
    struct ectx *next;
};

struct epool {
    avro_value_iface_t *iface; /* generic class of the reader schema */
    pthread_mutex_t lock;      /* @locks free */
    struct ectx *free;
};

struct codec {
    size_t max_message;
    struct avro_resolve_reader *reader[N_READERS];
    uint64_t reader_fp[N_READERS];
    struct epool *enc[N_READERS];

    struct known known[KNOWN_MAX];
    size_t n_known;
    struct wschema *owned[KNOWN_MAX + PINNED_MAX];
    size_t n_owned;
    struct pinned pinned[PINNED_MAX];
    size_t n_pinned;

    pthread_mutex_t build_lock; /* @locks avro-c's error buffer while a schema is built */
    struct registry *registry;  /* NULL: no registry */
    pthread_mutex_t lock;       /* @locks cache, cache_seq */
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
    avro_resolve_writer_destroy(ws->w);
    free(ws);
}

/* Drops one reference; the last one frees. Never called under codec->lock. */
static void wschema_release(struct wschema *ws)
{
    if (ws && atomic_fetch_sub(&ws->refs, 1) == 1)
        wschema_free(ws);
}

static bool wschema_can_read(const struct wschema *ws, int r)
{
    return ws->w && avro_resolve_writer_can_read(ws->w, (size_t)r);
}

static const char *wschema_why(const struct wschema *ws, int r)
{
    return ws->w ? avro_resolve_writer_why(ws->w, (size_t)r) : ws->why;
}

/* Checks json against the shape limits (the canonical form does), then has
 * avro-c parse it and resolve it against both readers. Returns NULL only
 * when memory runs out; a schema that does not parse or resolve still
 * yields a wschema that says why. Thread-safe (takes build_lock). */
static struct wschema *wschema_build(struct codec *c, const char *json)
{
    struct wschema *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    atomic_init(&ws->refs, 1);
    char *canon = avro_canon_form(json, strlen(json), 0, NULL, ws->why, sizeof ws->why);
    if (!canon)
        return ws; /* beyond the limits or not a schema: avro-c never sees it */
    free(canon);
    pthread_mutex_lock(&c->build_lock);
    ws->w = avro_resolve_writer_new(json, c->reader, N_READERS);
    pthread_mutex_unlock(&c->build_lock);
    if (!ws->w) {
        free(ws);
        return NULL;
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
    if (!wschema_can_read(ws, READER_OBS) && !wschema_can_read(ws, READER_ALERT)) {
        if (ws->w)
            fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s; %s", wschema_why(ws, READER_OBS),
                 wschema_why(ws, READER_ALERT));
        else
            fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s", ws->why);
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
     * of it (see AVRO_CANON_PY111) so its producers are not turned away. */
    int flags[2] = {0, AVRO_CANON_PY111};
    for (int i = 0; i < 2; i++) {
        size_t len;
        char *canon = avro_canon_form(json, strlen(json), flags[i], &len, errstr, errstr_size);
        if (!canon)
            return fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not add schema: out of memory");
        uint64_t fp = avro_canon_fingerprint64(canon, len);
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

/* ---- encoder pools ------------------------------------------------------ */

static void ectx_destroy(struct ectx *x)
{
    if (x->val.iface)
        avro_value_decref(&x->val);
    if (x->out)
        avro_writer_free(x->out);
    free(x);
}

static void epool_destroy(struct epool *p)
{
    if (!p)
        return;
    while (p->free) {
        struct ectx *next = p->free->next;
        ectx_destroy(p->free);
        p->free = next;
    }
    if (p->iface)
        avro_value_iface_decref(p->iface);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static struct epool *epool_new(avro_schema_t schema)
{
    struct epool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->lock, NULL);
    p->iface = avro_generic_class_from_schema(schema);
    if (!p->iface) {
        epool_destroy(p);
        return NULL;
    }
    return p;
}

/* A context from the pool, or a new one (the first encode of each thread
 * that encodes at once). NULL if memory ran out. */
static struct ectx *ectx_take(struct epool *p)
{
    pthread_mutex_lock(&p->lock);
    struct ectx *x = p->free;
    if (x)
        p->free = x->next;
    pthread_mutex_unlock(&p->lock);
    if (x)
        return x;
    x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    static const char empty[1];
    x->out = avro_writer_memory(empty, 0);
    if (!x->out || avro_generic_value_new(p->iface, &x->val) != 0) {
        ectx_destroy(x);
        return NULL;
    }
    return x;
}

static void ectx_give(struct epool *p, struct ectx *x)
{
    pthread_mutex_lock(&p->lock);
    x->next = p->free;
    p->free = x;
    pthread_mutex_unlock(&p->lock);
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

/* The sinks and encoders address reader fields by position: the embedded
 * schema must have exactly these fields in this order, or the codec
 * refuses to start. */
static bool fields_match(avro_schema_t rec, const char *const *names, size_t n)
{
    if (!is_avro_record(rec) || avro_schema_record_size(rec) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(avro_schema_record_field_name(rec, (int)i), names[i]) != 0)
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
    pthread_mutex_init(&c->build_lock, NULL);
    c->max_message = cfg.max_message_bytes ? cfg.max_message_bytes : CODEC_DEFAULT_MAX_MESSAGE;
    c->cache_max = cfg.registry_cache_max ? cfg.registry_cache_max : 256;

    const char *names[N_READERS] = {"observation.avsc", "alert.avsc"};
    for (int r = 0; r < N_READERS; r++) {
        const char *text = embedded_find(names[r]);
        char err[320];
        if (!text) {
            fail(errstr, errstr_size, CODEC_EUNKNOWN_SCHEMA, "schema %s is not embedded", names[r]);
            goto err;
        }
        size_t len;
        char *canon = avro_canon_form(text, strlen(text), 0, &len, err, sizeof err);
        if (canon) {
            c->reader_fp[r] = avro_canon_fingerprint64(canon, len);
            free(canon);
            pthread_mutex_lock(&c->build_lock);
            c->reader[r] = avro_resolve_reader_new(text, err, sizeof err);
            pthread_mutex_unlock(&c->build_lock);
        }
        if (!canon || !c->reader[r]) {
            fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "embedded %s: %s", names[r], err);
            goto err;
        }
    }
    avro_schema_t obs = avro_resolve_reader_schema(c->reader[READER_OBS]);
    avro_schema_t alert = avro_resolve_reader_schema(c->reader[READER_ALERT]);
    avro_schema_t ev = NULL;
    if (fields_match(alert, alert_fields, AF_COUNT) &&
        is_avro_array(avro_schema_record_field_get_by_index(alert, AF_EVIDENCE)))
        ev = avro_schema_array_items(avro_schema_record_field_get_by_index(alert, AF_EVIDENCE));
    if (!fields_match(obs, obs_fields, OF_COUNT) || !ev ||
        !fields_match(ev, evidence_fields, EF_COUNT)) {
        fail(errstr, errstr_size, CODEC_EINCOMPATIBLE,
             "embedded schemas do not have the fields common/avro/codec.c expects, in its order");
        goto err;
    }
    for (int r = 0; r < N_READERS; r++) {
        c->enc[r] = epool_new(avro_resolve_reader_schema(c->reader[r]));
        if (!c->enc[r]) {
            fail(errstr, errstr_size, CODEC_EOVERSIZE, "could not create codec: out of memory");
            goto err;
        }
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
    for (int r = 0; r < N_READERS; r++) {
        epool_destroy(c->enc[r]);
        avro_resolve_reader_destroy(c->reader[r]);
    }
    registry_destroy(c->registry);
    pthread_mutex_destroy(&c->build_lock);
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
            snprintf(fresh->why, sizeof fresh->why, "%s", errstr);
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

static enum codec_status wrong_kind(char *e, size_t es, const char *name)
{
    return fail(e, es, CODEC_EINVALID, "%s has a type common/avro/codec.c does not expect", name);
}

static enum codec_status set_text(char *dst, size_t size, const struct aval *v, const char *name,
                                  char *e, size_t es)
{
    if (v->kind == AVAL_NULL) {
        dst[0] = '\0';
        return CODEC_OK;
    }
    if (v->kind != AVAL_STRING)
        return wrong_kind(e, es, name);
    char why[160];
    if (check_text(v->s, v->n, size - 1, name, false, why, sizeof why) != CODEC_OK)
        return fail(e, es, CODEC_EINVALID, "%s", why);
    memcpy(dst, v->s, v->n);
    dst[v->n] = '\0';
    return CODEC_OK;
}

static enum codec_status set_double(double *dst, bool *present, const struct aval *v,
                                    const char *name, char *e, size_t es)
{
    if (v->kind == AVAL_NULL && present) {
        *present = false;
        return CODEC_OK;
    }
    if (v->kind != AVAL_DOUBLE)
        return wrong_kind(e, es, name);
    if (present)
        *present = true;
    *dst = v->d;
    return CODEC_OK;
}

static enum codec_status set_long(int64_t *dst, const struct aval *v, const char *name,
                                  char *e, size_t es)
{
    if (v->kind != AVAL_LONG)
        return wrong_kind(e, es, name);
    *dst = v->l;
    return CODEC_OK;
}

static enum codec_status obs_set(void *obj, size_t field, const struct aval *v, char *e, size_t es)
{
    struct observation *o = obj;
    switch (field) {
    case OF_OBSERVATION_ID:
        return set_text(o->observation_id, sizeof o->observation_id, v, "observation_id", e, es);
    case OF_STUDY_ID:
        return set_text(o->study_id, sizeof o->study_id, v, "study_id", e, es);
    case OF_SITE_ID:
        return set_text(o->site_id, sizeof o->site_id, v, "site_id", e, es);
    case OF_SUBJECT_ID:
        return set_text(o->subject_id, sizeof o->subject_id, v, "subject_id", e, es);
    case OF_LOINC:
        return set_text(o->loinc, sizeof o->loinc, v, "loinc", e, es);
    case OF_VALUE:
        return set_double(&o->value, &o->has_value, v, "value", e, es);
    case OF_UNIT:
        return set_text(o->unit, sizeof o->unit, v, "unit", e, es);
    case OF_REF_LOW:
        return set_double(&o->ref_low, &o->has_ref_low, v, "ref_low", e, es);
    case OF_REF_HIGH:
        return set_double(&o->ref_high, &o->has_ref_high, v, "ref_high", e, es);
    case OF_EFFECTIVE_TIME:
        return set_long(&o->effective_ms, v, "effective_time", e, es);
    case OF_ISSUED_TIME:
        return set_long(&o->issued_ms, v, "issued_time", e, es);
    case OF_STATUS:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(e, es, "status");
        o->status = (enum obs_status)v->l;
        return CODEC_OK;
    case OF_VISIT:
        return set_text(o->visit, sizeof o->visit, v, "visit", e, es);
    default:
        return fail(e, es, CODEC_EINVALID, "observation has no field %zu", field);
    }
}

static const struct avro_sink obs_sink = {obs_set, NULL};

static enum codec_status evidence_set(void *obj, size_t field, const struct aval *v,
                                      char *e, size_t es)
{
    struct alert_evidence *ev = obj;
    switch (field) {
    case EF_OBSERVATION_ID:
        return set_text(ev->observation_id, sizeof ev->observation_id, v,
                        "evidence.observation_id", e, es);
    case EF_LOINC:
        return set_text(ev->loinc, sizeof ev->loinc, v, "evidence.loinc", e, es);
    case EF_VALUE:
        return set_double(&ev->value, NULL, v, "evidence.value", e, es);
    case EF_UNIT:
        return set_text(ev->unit, sizeof ev->unit, v, "evidence.unit", e, es);
    case EF_EFFECTIVE_TIME:
        return set_long(&ev->effective_ms, v, "evidence.effective_time", e, es);
    default:
        return fail(e, es, CODEC_EINVALID, "evidence has no field %zu", field);
    }
}

static const struct avro_sink evidence_sink = {evidence_set, NULL};

static enum codec_status alert_set(void *obj, size_t field, const struct aval *v, char *e, size_t es)
{
    struct alert *a = obj;
    switch (field) {
    case AF_ALERT_ID:
        return set_text(a->alert_id, sizeof a->alert_id, v, "alert_id", e, es);
    case AF_KIND:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(e, es, "kind");
        a->kind = (enum alert_kind)v->l;
        return CODEC_OK;
    case AF_RULE_ID:
        return set_text(a->rule_id, sizeof a->rule_id, v, "rule_id", e, es);
    case AF_RULE_VERSION:
        if (v->kind != AVAL_LONG)
            return wrong_kind(e, es, "rule_version");
        a->rule_version = (int32_t)v->l; /* an Avro int: in range */
        return CODEC_OK;
    case AF_SEVERITY:
        if (v->kind != AVAL_ENUM)
            return wrong_kind(e, es, "severity");
        a->severity = (enum alert_severity)v->l;
        return CODEC_OK;
    case AF_CTCAE_GRADE:
        if (v->kind == AVAL_NULL) {
            a->ctcae_grade = 0;
            return CODEC_OK;
        }
        if (v->kind != AVAL_LONG)
            return wrong_kind(e, es, "ctcae_grade");
        if (v->l < 1 || v->l > 5)
            return fail(e, es, CODEC_EINVALID, "ctcae_grade %lld is not 1-5", (long long)v->l);
        a->ctcae_grade = (int32_t)v->l;
        return CODEC_OK;
    case AF_STUDY_ID:
        return set_text(a->study_id, sizeof a->study_id, v, "study_id", e, es);
    case AF_SITE_ID:
        return set_text(a->site_id, sizeof a->site_id, v, "site_id", e, es);
    case AF_SUBJECT_ID:
        return set_text(a->subject_id, sizeof a->subject_id, v, "subject_id", e, es);
    case AF_MESSAGE:
        return set_text(a->message, sizeof a->message, v, "message", e, es);
    case AF_OBSERVED_TIME:
        return set_long(&a->observed_ms, v, "observed_time", e, es);
    case AF_DETECTED_TIME:
        return set_long(&a->detected_ms, v, "detected_time", e, es);
    case AF_RETRACTS_ALERT_ID:
        return set_text(a->retracts_alert_id, sizeof a->retracts_alert_id, v,
                        "retracts_alert_id", e, es);
    default:
        return fail(e, es, CODEC_EINVALID, "alert has no field %zu", field);
    }
}

static void *alert_item(void *obj, size_t field, size_t index, const struct avro_sink **sink,
                        char *e, size_t es)
{
    struct alert *a = obj;
    if (field != AF_EVIDENCE) {
        fail(e, es, CODEC_EINVALID, "alert field %zu is not an array", field);
        return NULL;
    }
    if (index >= ALERT_EVIDENCE_MAX) {
        fail(e, es, CODEC_EINVALID, "more than %d evidence items", ALERT_EVIDENCE_MAX);
        return NULL;
    }
    a->n_evidence = (int)index + 1;
    *sink = &evidence_sink;
    return &a->evidence[index];
}

static const struct avro_sink alert_sink = {alert_set, alert_item};

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
                                void *obj, size_t obj_size, const struct avro_sink *sink,
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

    if (!wschema_can_read(ws, reader)) {
        st = fail(errstr, errstr_size, CODEC_EINCOMPATIBLE, "%s", wschema_why(ws, reader));
        goto out;
    }
    memset(obj, 0, obj_size);
    st = avro_resolve_decode(ws->w, (size_t)reader, b, b + header, b + len, obj, sink, errstr,
                             errstr_size);
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

/* Setters of one field of a record value; each returns avro-c's status.
 * Strings are lent to avro-c (a wrapped buffer without a free function):
 * the value only points at the struct until the encode is done. */
static int put_field(avro_value_t *rec, size_t i, avro_value_t *field)
{
    return avro_value_get_by_index(rec, i, field, NULL);
}

static int put_string(avro_value_t *rec, size_t i, const char *s)
{
    avro_value_t f;
    avro_wrapped_buffer_t wb;
    int rc = put_field(rec, i, &f);
    if (rc == 0)
        rc = avro_wrapped_buffer_new_string(&wb, s);
    return rc ? rc : avro_value_give_string_len(&f, &wb);
}

static int put_long(avro_value_t *rec, size_t i, int64_t v)
{
    avro_value_t f;
    int rc = put_field(rec, i, &f);
    return rc ? rc : avro_value_set_long(&f, v);
}

static int put_int(avro_value_t *rec, size_t i, int32_t v)
{
    avro_value_t f;
    int rc = put_field(rec, i, &f);
    return rc ? rc : avro_value_set_int(&f, v);
}

static int put_double(avro_value_t *rec, size_t i, double v)
{
    avro_value_t f;
    int rc = put_field(rec, i, &f);
    return rc ? rc : avro_value_set_double(&f, v);
}

static int put_enum(avro_value_t *rec, size_t i, int v)
{
    avro_value_t f;
    int rc = put_field(rec, i, &f);
    return rc ? rc : avro_value_set_enum(&f, v);
}

/* A ["null", X] union: branch 0 is null. */
static int put_branch(avro_value_t *rec, size_t i, bool present, avro_value_t *branch)
{
    avro_value_t f;
    int rc = put_field(rec, i, &f);
    if (rc == 0)
        rc = avro_value_set_branch(&f, present ? 1 : 0, branch);
    if (rc == 0 && !present)
        rc = avro_value_set_null(branch);
    return rc;
}

static int put_opt_double(avro_value_t *rec, size_t i, bool present, double v)
{
    avro_value_t b;
    int rc = put_branch(rec, i, present, &b);
    return rc || !present ? rc : avro_value_set_double(&b, v);
}

static int put_opt_int(avro_value_t *rec, size_t i, bool present, int32_t v)
{
    avro_value_t b;
    int rc = put_branch(rec, i, present, &b);
    return rc || !present ? rc : avro_value_set_int(&b, v);
}

/* "" means null. */
static int put_opt_string(avro_value_t *rec, size_t i, const char *s)
{
    avro_value_t b;
    avro_wrapped_buffer_t wb;
    int rc = put_branch(rec, i, s[0] != '\0', &b);
    if (rc || !s[0])
        return rc;
    rc = avro_wrapped_buffer_new_string(&wb, s);
    return rc ? rc : avro_value_give_string_len(&b, &wb);
}

static int fill_observation(avro_value_t *v, const void *obj)
{
    const struct observation *o = obj;
    int rc = 0;
    rc = rc ? rc : put_string(v, OF_OBSERVATION_ID, o->observation_id);
    rc = rc ? rc : put_string(v, OF_STUDY_ID, o->study_id);
    rc = rc ? rc : put_string(v, OF_SITE_ID, o->site_id);
    rc = rc ? rc : put_string(v, OF_SUBJECT_ID, o->subject_id);
    rc = rc ? rc : put_string(v, OF_LOINC, o->loinc);
    rc = rc ? rc : put_opt_double(v, OF_VALUE, o->has_value, o->value);
    rc = rc ? rc : put_string(v, OF_UNIT, o->unit);
    rc = rc ? rc : put_opt_double(v, OF_REF_LOW, o->has_ref_low, o->ref_low);
    rc = rc ? rc : put_opt_double(v, OF_REF_HIGH, o->has_ref_high, o->ref_high);
    rc = rc ? rc : put_long(v, OF_EFFECTIVE_TIME, o->effective_ms);
    rc = rc ? rc : put_long(v, OF_ISSUED_TIME, o->issued_ms);
    rc = rc ? rc : put_enum(v, OF_STATUS, (int)o->status);
    rc = rc ? rc : put_opt_string(v, OF_VISIT, o->visit);
    return rc;
}

static int fill_alert(avro_value_t *v, const void *obj)
{
    const struct alert *a = obj;
    int rc = 0;
    rc = rc ? rc : put_string(v, AF_ALERT_ID, a->alert_id);
    rc = rc ? rc : put_enum(v, AF_KIND, (int)a->kind);
    rc = rc ? rc : put_string(v, AF_RULE_ID, a->rule_id);
    rc = rc ? rc : put_int(v, AF_RULE_VERSION, a->rule_version);
    rc = rc ? rc : put_enum(v, AF_SEVERITY, (int)a->severity);
    rc = rc ? rc : put_opt_int(v, AF_CTCAE_GRADE, a->ctcae_grade != 0, a->ctcae_grade);
    rc = rc ? rc : put_string(v, AF_STUDY_ID, a->study_id);
    rc = rc ? rc : put_string(v, AF_SITE_ID, a->site_id);
    rc = rc ? rc : put_string(v, AF_SUBJECT_ID, a->subject_id);
    avro_value_t evidence;
    rc = rc ? rc : put_field(v, AF_EVIDENCE, &evidence);
    for (int i = 0; rc == 0 && i < a->n_evidence; i++) {
        const struct alert_evidence *ev = &a->evidence[i];
        avro_value_t item;
        rc = avro_value_append(&evidence, &item, NULL);
        rc = rc ? rc : put_string(&item, EF_OBSERVATION_ID, ev->observation_id);
        rc = rc ? rc : put_string(&item, EF_LOINC, ev->loinc);
        rc = rc ? rc : put_double(&item, EF_VALUE, ev->value);
        rc = rc ? rc : put_string(&item, EF_UNIT, ev->unit);
        rc = rc ? rc : put_long(&item, EF_EFFECTIVE_TIME, ev->effective_ms);
    }
    rc = rc ? rc : put_string(v, AF_MESSAGE, a->message);
    rc = rc ? rc : put_long(v, AF_OBSERVED_TIME, a->observed_ms);
    rc = rc ? rc : put_long(v, AF_DETECTED_TIME, a->detected_ms);
    rc = rc ? rc : put_opt_string(v, AF_RETRACTS_ALERT_ID, a->retracts_alert_id);
    return rc;
}

/* Writes the framing header, then the value filled from obj with avro-c. */
static enum codec_status encode(const struct codec *c, int reader, const void *obj,
                                int (*fill)(avro_value_t *, const void *),
                                enum codec_framing framing, uint32_t id, void *buf, size_t cap,
                                size_t *len, char *errstr, size_t errstr_size)
{
    uint8_t *out = buf;
    size_t header = framing == CODEC_CONFLUENT ? 5 : 10;
    if (cap < header)
        return fail(errstr, errstr_size, CODEC_EOVERSIZE,
                    "encoded message does not fit in the %zu-byte buffer", cap);
    if (framing == CODEC_CONFLUENT) {
        out[0] = 0;
        for (int i = 0; i < 4; i++)
            out[1 + i] = (uint8_t)(id >> (24 - 8 * i));
    } else {
        uint64_t fp = c->reader_fp[reader];
        out[0] = 0xc3;
        out[1] = 0x01;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(fp >> (8 * i));
    }
    struct epool *pool = c->enc[reader];
    struct ectx *x = ectx_take(pool);
    if (!x)
        return fail(errstr, errstr_size, CODEC_ETRANSIENT, "could not encode: out of memory");
    enum codec_status st = CODEC_OK;
    int rc = avro_value_reset(&x->val);
    rc = rc ? rc : fill(&x->val, obj);
    if (rc == 0) {
        avro_writer_memory_set_dest(x->out, (const char *)out + header, (int64_t)(cap - header));
        rc = avro_value_write(x->out, &x->val);
        if (rc == ENOSPC)
            st = fail(errstr, errstr_size, CODEC_EOVERSIZE,
                      "encoded message does not fit in the %zu-byte buffer", cap);
        else if (rc == 0)
            *len = header + (size_t)avro_writer_tell(x->out);
    }
    if (rc != 0 && st == CODEC_OK)
        st = fail(errstr, errstr_size, rc == ENOMEM ? CODEC_ETRANSIENT : CODEC_EINVALID,
                  "could not encode: avro-c error %d", rc);
    avro_value_reset(&x->val); /* drop the strings lent from obj */
    ectx_give(pool, x);
    return st;
}

enum codec_status codec_encode_observation(const struct codec *c, const struct observation *o,
                                           enum codec_framing framing, uint32_t schema_id,
                                           void *buf, size_t cap, size_t *len, char *errstr,
                                           size_t errstr_size)
{
    TRY(validate_observation(o, errstr, errstr_size));
    return encode(c, READER_OBS, o, fill_observation, framing, schema_id, buf, cap, len, errstr,
                  errstr_size);
}

enum codec_status codec_encode_alert(const struct codec *c, const struct alert *a,
                                     enum codec_framing framing, uint32_t schema_id, void *buf,
                                     size_t cap, size_t *len, char *errstr, size_t errstr_size)
{
    TRY(validate_alert(a, errstr, errstr_size));
    return encode(c, READER_ALERT, a, fill_alert, framing, schema_id, buf, cap, len, errstr,
                  errstr_size);
}
