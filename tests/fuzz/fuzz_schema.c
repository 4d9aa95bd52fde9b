/*
 * libFuzzer target for writer schemas as a Schema Registry hands them out:
 * a hostile or broken registry controls the schema text, and then the
 * message bodies written "with" it.
 *
 * Input layout: SCHEMA-JSON [ NUL BODY ]. The bytes before the first NUL
 * are the writer schema's JSON (a registry's "schema" string, unescaped);
 * the bytes after it, if any, are one Avro binary body (no framing). An
 * input without a NUL is a schema with an empty body. A NUL cannot occur
 * in a schema (JSON text never holds a raw NUL), so nothing is lost.
 *
 * For each input that avsc_parse() accepts:
 *   - the canonical form (spec and python3-avro 1.11 flavours) must be
 *     NUL-terminated at its reported length; the spec form must parse
 *     again and be a fixed point (see canon_is_stable for the one case the
 *     spec itself cannot express); avsc_fingerprint64() must agree with a
 *     table-driven CRC-64-AVRO written here from the spec;
 *   - it is resolved against both reader schemas vigil embeds (observation
 *     and alert, as common/avro/codec.c gets them); with each plan that results,
 *     the body is decoded twice:
 *       1. aplan_decode() into a checking sink written here, which aborts
 *          if a value breaks the plan's contract: a field index outside the
 *          reader record, a value kind the reader field cannot hold, an enum
 *          index outside its symbols, an int outside 32 bits, a string that
 *          runs past the message, or (on success) a reader field left unset;
 *       2. through the real codec (its sinks into struct observation /
 *          struct alert, and validation): a fresh codec learns the schema
 *          by fingerprint and decodes a single-object message of the body.
 *          Its result must agree with decode 1 (the codec may only add
 *          "invalid" from its stricter sinks and validation).
 *     The structs own no heap memory: nothing to free after decoding.
 * Any crash, leak, sanitizer report or abort() is a finding.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_resolve.h"
#include "avro_schema.h"
#include "codec.h"
#include "embedded.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_READERS = 2 };

/* Items the checking sink stores per message (every array, all levels):
 * more than ALERT_EVIDENCE_MAX so the codec, not this sink, is the one
 * that limits evidence. */
#define POOL_MAX 32

static struct avsc_schema *readers[N_READERS];
static uint64_t crc_table[256];
static bool trace; /* FUZZ_SCHEMA_TRACE set: say what each input did (corpus upkeep) */

/* ---- reference CRC-64-AVRO (the spec's table-driven form) -------------- */

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint64_t fp = i;
        for (int j = 0; j < 8; j++)
            fp = (fp >> 1) ^ (AVSC_FP_EMPTY & (0 - (fp & 1)));
        crc_table[i] = fp;
    }
}

static uint64_t crc_ref(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t fp = AVSC_FP_EMPTY;
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc_table[(fp ^ p[i]) & 0xff];
    return fp;
}

/* ---- the checking sink ------------------------------------------------- */

struct cobj {
    const struct avsc_node *rec; /* reader record this object stands for */
    uint64_t set_mask;           /* reader fields that received a value */
    size_t next_item[64];        /* per array field: the index expected next */
};

struct check {
    const uint8_t *lo, *hi; /* the message: strings from it must stay inside */
    struct cobj pool[POOL_MAX];
    size_t n_pool;
    uint64_t sum; /* every string byte is read, so ASan sees a bad pointer */
};

static struct check *cur; /* the decode in progress (one thread) */

static bool kind_fits(const struct avsc_node *t, const struct aval *v)
{
    if (t->type == AVSC_UNION) {
        for (size_t i = 0; i < t->n_branches; i++)
            if (kind_fits(t->branches[i], v))
                return true;
        return false;
    }
    switch (v->kind) {
    case AVAL_NULL:
        return t->type == AVSC_NULL;
    case AVAL_BOOL:
        return t->type == AVSC_BOOLEAN && (v->l == 0 || v->l == 1);
    case AVAL_LONG:
        return t->type == AVSC_LONG ||
               (t->type == AVSC_INT && v->l >= INT32_MIN && v->l <= INT32_MAX);
    case AVAL_DOUBLE:
        return t->type == AVSC_FLOAT || t->type == AVSC_DOUBLE;
    case AVAL_STRING:
        return (v->s != NULL || v->n == 0) &&
               (t->type == AVSC_STRING || t->type == AVSC_BYTES ||
                (t->type == AVSC_FIXED && v->n == t->size));
    case AVAL_ENUM:
        return t->type == AVSC_ENUM && v->l >= 0 && (uint64_t)v->l < t->n_symbols;
    }
    return false;
}

static enum codec_status check_set(void *obj, size_t field, const struct aval *v, struct adec *d)
{
    (void)d;
    struct cobj *o = obj;
    if (field >= o->rec->n_fields || field >= 64) {
        fprintf(stderr, "fuzz_schema: value for field %zu of %s (%zu fields)\n", field,
                o->rec->name, o->rec->n_fields);
        abort();
    }
    if (!kind_fits(o->rec->fields[field].type, v)) {
        fprintf(stderr, "fuzz_schema: %s.%s got a value of kind %d it cannot hold\n",
                o->rec->name, o->rec->fields[field].name, (int)v->kind);
        abort();
    }
    if (v->kind == AVAL_STRING) {
        const uint8_t *s = (const uint8_t *)v->s;
        /* Strings come from the message or from a reader default; one that
         * starts in the message must end in it. */
        if (s >= cur->lo && s < cur->hi && v->n > (size_t)(cur->hi - s)) {
            fprintf(stderr, "fuzz_schema: string of %zu bytes runs past the message\n", v->n);
            abort();
        }
        for (size_t i = 0; i < v->n; i++)
            cur->sum += s[i];
    }
    o->set_mask |= UINT64_C(1) << field;
    return CODEC_OK;
}

static void *check_item(void *obj, size_t field, size_t index, const struct aplan_sink **sink,
                        struct adec *d);

static const struct aplan_sink check_sink = {check_set, check_item};

static void *check_item(void *obj, size_t field, size_t index, const struct aplan_sink **sink,
                        struct adec *d)
{
    struct cobj *o = obj;
    if (field >= o->rec->n_fields || field >= 64 ||
        o->rec->fields[field].type->type != AVSC_ARRAY ||
        o->rec->fields[field].type->items->type != AVSC_RECORD) {
        fprintf(stderr, "fuzz_schema: item asked for field %zu of %s, not an array of records\n",
                field, o->rec->name);
        abort();
    }
    if (index != o->next_item[field]) {
        fprintf(stderr, "fuzz_schema: item %zu asked, %zu expected\n", index,
                o->next_item[field]);
        abort();
    }
    o->next_item[field]++;
    if (cur->n_pool == POOL_MAX) {
        adec_fail(d, CODEC_EINVALID, "more than %d items", POOL_MAX);
        return NULL;
    }
    struct cobj *item = &cur->pool[cur->n_pool++];
    memset(item, 0, sizeof *item);
    item->rec = o->rec->fields[field].type->items;
    o->set_mask |= UINT64_C(1) << field;
    *sink = &check_sink;
    return item;
}

/* On a successful decode every reader field that is not an array must
 * have a value: from the writer or from the reader's default. */
static void check_complete(const struct cobj *o)
{
    for (size_t i = 0; i < o->rec->n_fields && i < 64; i++) {
        if (o->rec->fields[i].type->type == AVSC_ARRAY)
            continue;
        if (!(o->set_mask & (UINT64_C(1) << i))) {
            fprintf(stderr, "fuzz_schema: decoded %s without a value for %s\n", o->rec->name,
                    o->rec->fields[i].name);
            abort();
        }
    }
}

/* ---- the codec path ------------------------------------------------------ */

/* Decodes body as a single-object message with a fresh codec that knows
 * the writer schema; checks its answer against the checking sink's. */
static void codec_cross_check(const char *text, uint64_t fp, const uint8_t *body, size_t n,
                              const enum codec_status direct[N_READERS],
                              const bool direct_at_end[N_READERS],
                              const bool have_plan[N_READERS])
{
    char err[512];
    struct codec *c = codec_new(NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fuzz_schema: codec_new: %s\n", err);
        abort();
    }
    if (codec_add_writer_schema(c, text, err, sizeof err) != CODEC_OK) {
        fprintf(stderr, "fuzz_schema: a schema that resolves was refused: %s\n", err);
        abort();
    }
    uint8_t *msg = malloc(n + 10);
    if (!msg)
        abort();
    msg[0] = 0xc3;
    msg[1] = 0x01;
    for (int i = 0; i < 8; i++)
        msg[2 + i] = (uint8_t)(fp >> (8 * i));
    if (n)
        memcpy(msg + 10, body, n);

    for (int r = 0; r < N_READERS; r++) {
        struct observation o;
        struct alert a;
        err[0] = '\0';
        enum codec_status st = r == 0 ? codec_decode_observation(c, msg, n + 10, &o, err, sizeof err)
                                      : codec_decode_alert(c, msg, n + 10, &a, err, sizeof err);
        if (st != CODEC_OK && ((unsigned)st > CODEC_ETRANSIENT || err[0] == '\0')) {
            fprintf(stderr, "fuzz_schema: codec failure without class or message\n");
            abort();
        }
        bool agree;
        if (!have_plan[r])
            agree = st == CODEC_EINCOMPATIBLE;
        else if (direct[r] != CODEC_OK)
            agree = st == direct[r] || st == CODEC_EINVALID;
        else if (direct_at_end[r])
            agree = st == CODEC_OK || st == CODEC_EINVALID;
        else
            agree = st == CODEC_ECORRUPT || st == CODEC_EINVALID;
        if (!agree) {
            fprintf(stderr,
                    "fuzz_schema: reader %d: codec says %s (%s), plan decode said %s%s\n", r,
                    codec_error_class_name(st), err,
                    have_plan[r] ? codec_error_class_name(direct[r]) : "no plan",
                    have_plan[r] && direct[r] == CODEC_OK && !direct_at_end[r]
                        ? " with bytes left"
                        : "");
            abort();
        }
        if (st == CODEC_OK && r == 0 &&
            (memchr(o.observation_id, '\0', sizeof o.observation_id) == NULL ||
             memchr(o.unit, '\0', sizeof o.unit) == NULL ||
             memchr(o.visit, '\0', sizeof o.visit) == NULL))
            abort();
        if (st == CODEC_OK && r == 1 &&
            (a.n_evidence < 0 || a.n_evidence > ALERT_EVIDENCE_MAX ||
             memchr(a.message, '\0', sizeof a.message) == NULL))
            abort();
    }
    free(msg);
    codec_destroy(c);
}

/* ---- canonical form --------------------------------------------------------- */

/* Whether the canonical form can be expected to parse back to itself. The
 * spec's form writes full names and drops "namespace", so a type in the
 * null namespace defined inside a namespaced record reads back as a
 * member of that namespace: a limit of the spec, not of avro_schema.c.
 * Checked only when no name is dotted or every name is. */
static bool canon_is_stable(const struct avsc_schema *s)
{
    bool dotted = false, plain = false;
    for (const struct avsc_node *n = s->all; n; n = n->all_next) {
        if (!n->name)
            continue;
        if (strchr(n->name, '.'))
            dotted = true;
        else
            plain = true;
    }
    return !(dotted && plain);
}

static uint64_t check_canonical(const struct avsc_schema *s)
{
    char err[320];
    size_t len = 0, len_py = 0;
    char *canon = avsc_canonical_form(s, 0, &len);
    char *py = avsc_canonical_form(s, AVSC_CANON_PY111, &len_py);
    if (!canon || !py || strlen(canon) != len || strlen(py) != len_py) {
        fprintf(stderr, "fuzz_schema: canonical form missing or its length wrong\n");
        abort();
    }
    uint64_t fp = avsc_fingerprint64(canon, len);
    if (fp != crc_ref(canon, len) || avsc_fingerprint64(py, len_py) != crc_ref(py, len_py)) {
        fprintf(stderr, "fuzz_schema: fingerprint differs from the spec's CRC-64-AVRO\n");
        abort();
    }
    if (canon_is_stable(s)) {
        struct avsc_schema *again = avsc_parse(canon, len, err, sizeof err);
        if (!again) {
            fprintf(stderr, "fuzz_schema: canonical form does not parse: %s\n%s\n", err, canon);
            abort();
        }
        size_t len2 = 0;
        char *canon2 = avsc_canonical_form(again, 0, &len2);
        if (!canon2 || len2 != len || memcmp(canon, canon2, len) != 0) {
            fprintf(stderr, "fuzz_schema: canonical form is not a fixed point:\n%s\n%s\n", canon,
                    canon2 ? canon2 : "(null)");
            abort();
        }
        free(canon2);
        avsc_destroy(again);
    }
    free(py);
    free(canon);
    return fp;
}

/* ---- entry points ------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[320];
    const char *names[N_READERS] = {"observation.avsc", "alert.avsc"};
    crc_init();
    trace = getenv("FUZZ_SCHEMA_TRACE") != NULL;
    for (int r = 0; r < N_READERS; r++) {
        const char *t = embedded_find(names[r]);
        readers[r] = t ? avsc_parse(t, strlen(t), err, sizeof err) : NULL;
        if (!readers[r]) {
            fprintf(stderr, "fuzz_schema: reader %s: %s\n", names[r], t ? err : "not embedded");
            abort();
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    const uint8_t *body = nul ? nul + 1 : data + size;
    size_t body_len = (size_t)(data + size - body);
    char err[512];

    if (avsc_fingerprint64(data, size) != crc_ref(data, size))
        abort();

    struct avsc_schema *w = avsc_parse((const char *)data, text_len, err, sizeof err);
    if (!w) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
        if (trace)
            fprintf(stderr, "fuzz_schema: parse: %s\n", err);
        return 0;
    }
    uint64_t fp = check_canonical(w);

    enum codec_status direct[N_READERS] = {CODEC_OK, CODEC_OK};
    bool at_end[N_READERS] = {false, false};
    bool have_plan[N_READERS] = {false, false};
    bool any = false;
    for (int r = 0; r < N_READERS; r++) {
        err[0] = '\0';
        struct aplan *plan = aplan_resolve(w, readers[r], err, sizeof err);
        if (!plan) {
            if (err[0] == '\0')
                abort();
            if (trace)
                fprintf(stderr, "fuzz_schema: reader %d: %s\n", r, err);
            continue;
        }
        have_plan[r] = any = true;
        struct check ck = {.lo = body, .hi = body + body_len};
        ck.pool[0].rec = readers[r]->root;
        ck.n_pool = 1;
        cur = &ck;
        struct adec d;
        err[0] = '\0';
        adec_init(&d, body, body, body + body_len, err, sizeof err);
        direct[r] = aplan_decode(plan, &d, &ck.pool[0], &check_sink);
        cur = NULL;
        if (d.p < body || d.p > body + body_len)
            abort();
        if (direct[r] == CODEC_OK) {
            for (size_t i = 0; i < ck.n_pool; i++)
                check_complete(&ck.pool[i]);
            at_end[r] = d.p == body + body_len;
        } else if ((unsigned)direct[r] > CODEC_ETRANSIENT || err[0] == '\0') {
            abort();
        }
        if (trace)
            fprintf(stderr, "fuzz_schema: reader %d: decode %s%s %s\n", r,
                    codec_error_class_name(direct[r]),
                    direct[r] == CODEC_OK && !at_end[r] ? " with bytes left" : "",
                    direct[r] == CODEC_OK ? "" : err);
        aplan_destroy(plan);
    }

    if (any) {
        char *text = malloc(text_len + 1);
        if (!text)
            abort();
        memcpy(text, data, text_len);
        text[text_len] = '\0';
        codec_cross_check(text, fp, body, body_len, direct, at_end, have_plan);
        free(text);
    }
    avsc_destroy(w);
    return 0;
}
