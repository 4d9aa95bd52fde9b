/*
 * fhir: FHIR R4 Observation JSON -> struct observation (contract and the
 * mapping table in fhir.h).
 *
 * DESIGN
 *
 * The mapping works on jansson's tree; the document is parsed once and
 * each Bundle entry mapped from it, so a Bundle of thousands of entries is
 * one parse. Errors name the FHIR element at fault ("valueQuantity.value is
 * a string, not a number") rather than the vigil field, since the person
 * reading them is fixing a FHIR interface.
 *
 * Unit choice: FHIR Quantity carries the coded unit (code, in system) and a
 * display string (unit). The code is the contract when its system is UCUM;
 * a display string such as "mmol/l" is only a fallback, used when no
 * UCUM code is given, because vigil's cleaning accepts UCUM spellings only
 * and flags anything else as a data-quality finding downstream.
 */
#include "fhir.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "obs_json.h"
#include "proctcae.h"

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *errstr, size_t errstr_size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
    return -1;
}

/* The string at KEY of OBJ, or NULL if absent or not a string. */
static const char *str_at(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

/* The value of the first extension with url URI, as a string, or NULL. */
static const char *extension_value(const json_t *res, const char *uri)
{
    size_t i;
    json_t *ext;
    json_array_foreach(json_object_get(res, "extension"), i, ext) {
        const char *url = str_at(ext, "url");
        if (url == NULL || strcmp(url, uri) != 0)
            continue;
        static const char *const keys[] = {"valueString", "valueCode", "valueId"};
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (str_at(ext, keys[k]) != NULL)
                return str_at(ext, keys[k]);
        return str_at(json_object_get(ext, "valueIdentifier"), "value");
    }
    return NULL;
}

/* Observation.identifier is a list; QuestionnaireResponse.identifier one
 * Identifier. */
static const char *identifier_value(const json_t *res, const char *uri)
{
    const json_t *ids = json_object_get(res, "identifier");
    if (json_is_object(ids)) {
        const char *sys = str_at(ids, "system");
        return sys != NULL && strcmp(sys, uri) == 0 ? str_at(ids, "value") : NULL;
    }
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id)
    {
        const char *sys = str_at(id, "system");
        if (sys != NULL && strcmp(sys, uri) == 0)
            return str_at(id, "value");
    }
    return NULL;
}

static int map_tagged(const json_t *res, const char *uri, const char *what, char *dst, size_t cap,
                      char *e, size_t es)
{
    const char *v = extension_value(res, uri);
    if (v == NULL)
        v = identifier_value(res, uri);
    if (v == NULL)
        return fail(e, es, "no %s: neither an extension with url %s nor an identifier with that "
                           "system",
                    what, uri);
    return obs_field_copy(dst, cap, what, v, true, e, es);
}

/* Reads NAME.value at OBJ (a Quantity) into *OUT; absent is not an error. */
static int quantity_value(const json_t *q, const char *where, bool *has, double *out, char *e,
                          size_t es)
{
    json_t *v = json_object_get(q, "value");
    *has = false;
    if (v == NULL)
        return 0;
    if (!json_is_number(v))
        return fail(e, es, "%s.value is not a number", where);
    *has = true;
    *out = json_number_value(v);
    return 0;
}

static int map_time(const json_t *res, struct observation *o, char *e, size_t es)
{
    const char *t = str_at(res, "effectiveDateTime");
    const char *where = "effectiveDateTime";
    char why[160];
    if (t == NULL) {
        t = str_at(res, "effectiveInstant");
        where = "effectiveInstant";
    }
    if (t == NULL) {
        t = str_at(json_object_get(res, "effectivePeriod"), "start");
        where = "effectivePeriod.start";
    }
    if (t == NULL)
        return fail(e, es, "no effectiveDateTime (nor effectiveInstant or effectivePeriod.start)");
    if (obs_time_parse(t, true, &o->effective_ms, why, sizeof why) != 0)
        return fail(e, es, "%s: %s", where, why);
    const char *issued = str_at(res, "issued");
    if (json_object_get(res, "issued") != NULL && issued == NULL)
        return fail(e, es, "issued is not a string");
    if (issued != NULL && obs_time_parse(issued, false, &o->issued_ms, why, sizeof why) != 0)
        return fail(e, es, "issued: %s", why);
    return 0;
}

static int map_value(const json_t *res, struct observation *o, char *e, size_t es)
{
    json_t *q = json_object_get(res, "valueQuantity");
    if (q == NULL) {
        /* Name the value[x] actually sent, so the interface engineer knows
         * what to change. */
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)res, key, v) {
            if (strncmp(key, "value", 5) == 0 && key[5] >= 'A' && key[5] <= 'Z')
                return fail(e, es, "%s is not supported: vigil needs valueQuantity", key);
        }
        if (o->status == OBS_CANCELLED || o->status == OBS_ENTERED_IN_ERROR ||
            json_object_get(res, "dataAbsentReason") != NULL)
            return 0;
        return fail(e, es, "no valueQuantity (and no dataAbsentReason)");
    }
    if (!json_is_object(q))
        return fail(e, es, "valueQuantity is not an object");
    if (quantity_value(q, "valueQuantity", &o->has_value, &o->value, e, es) != 0)
        return -1;
    if (!o->has_value && json_object_get(res, "dataAbsentReason") == NULL &&
        o->status != OBS_CANCELLED && o->status != OBS_ENTERED_IN_ERROR)
        return fail(e, es, "valueQuantity has no value");
    const char *code = str_at(q, "code");
    const char *sys = str_at(q, "system");
    const char *unit = NULL;
    if (code != NULL && (sys == NULL || strcmp(sys, FHIR_UCUM_SYSTEM) == 0))
        unit = code;
    else
        unit = str_at(q, "unit");
    if (unit == NULL && o->has_value)
        return fail(e, es, "valueQuantity has neither a UCUM code nor a unit");
    return obs_field_copy(o->unit, sizeof o->unit, "valueQuantity unit", unit ? unit : "", false,
                          e, es);
}

static int map_range(const json_t *res, struct observation *o, char *e, size_t es)
{
    json_t *rr = json_array_get(json_object_get(res, "referenceRange"), 0);
    if (rr == NULL)
        return 0;
    if (quantity_value(json_object_get(rr, "low"), "referenceRange[0].low", &o->has_ref_low,
                       &o->ref_low, e, es) != 0 ||
        quantity_value(json_object_get(rr, "high"), "referenceRange[0].high", &o->has_ref_high,
                       &o->ref_high, e, es) != 0)
        return -1;
    return 0;
}

static int map_subject(const json_t *res, struct observation *o, char *e, size_t es)
{
    const char *ref = str_at(json_object_get(res, "subject"), "reference");
    if (ref == NULL)
        return fail(e, es, "no subject.reference");
    /* Relative ("Patient/X") or absolute (".../Patient/X"), possibly with
     * a version suffix ("/_history/2"), which is not part of the id. */
    const char *p = strstr(ref, "Patient/");
    if (p == NULL || (p != ref && p[-1] != '/'))
        return fail(e, es, "subject.reference '%.80s' is not a Patient reference", ref);
    p += strlen("Patient/");
    size_t n = strcspn(p, "/");
    if (n == 0)
        return fail(e, es, "subject.reference '%.80s' has no patient id", ref);
    if (n >= sizeof o->subject_id)
        return fail(e, es, "subject id in subject.reference is %zu bytes, longer than %zu", n,
                    sizeof o->subject_id - 1);
    memcpy(o->subject_id, p, n);
    o->subject_id[n] = '\0';
    return 0;
}

static int map_resource(const json_t *res, const json_t *entry, const struct fhir_options *opt,
                        struct observation *o, char *e, size_t es)
{
    memset(o, 0, sizeof *o);
    if (!json_is_object(res))
        return fail(e, es, "not a JSON object");
    const char *rt = str_at(res, "resourceType");
    if (rt == NULL || strcmp(rt, "Observation") != 0)
        return fail(e, es, "resourceType is %s%s%s, not Observation", rt ? "'" : "",
                    rt ? rt : "missing", rt ? "'" : "");

    const char *id = str_at(res, "id");
    const char *full = entry ? str_at(entry, "fullUrl") : NULL;
    if (id == NULL && full != NULL && strncmp(full, "urn:uuid:", 9) == 0)
        id = full + 9;
    if (id == NULL)
        return fail(e, es, "no id (and no urn:uuid fullUrl)");
    if (obs_field_copy(o->observation_id, sizeof o->observation_id, "id", id, true, e, es) != 0)
        return -1;

    const char *status = str_at(res, "status");
    if (status == NULL)
        return fail(e, es, "no status");
    int st = obs_status_parse(status);
    if (st < 0 || strcmp(status, "entered_in_error") == 0)
        return fail(e, es,
                    "status '%.40s' is not one vigil accepts (final, amended, corrected, "
                    "cancelled, entered-in-error)",
                    status);
    o->status = (enum obs_status)st;

    const char *loinc = NULL;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(json_object_get(res, "code"), "coding"), i, c) {
        const char *sys = str_at(c, "system");
        if (sys != NULL && strcmp(sys, FHIR_LOINC_SYSTEM) == 0 && str_at(c, "code") != NULL) {
            loinc = str_at(c, "code");
            break;
        }
    }
    if (loinc == NULL)
        return fail(e, es, "code.coding has no code with system http://loinc.org");
    if (obs_field_copy(o->loinc, sizeof o->loinc, "LOINC code", loinc, true, e, es) != 0)
        return -1;

    const char *study_uri = opt && opt->study_uri ? opt->study_uri : FHIR_STUDY_URI_DEFAULT;
    const char *site_uri = opt && opt->site_uri ? opt->site_uri : FHIR_SITE_URI_DEFAULT;
    if (map_subject(res, o, e, es) != 0 ||
        map_tagged(res, study_uri, "study", o->study_id, sizeof o->study_id, e, es) != 0 ||
        map_tagged(res, site_uri, "site", o->site_id, sizeof o->site_id, e, es) != 0 ||
        map_value(res, o, e, es) != 0 || map_range(res, o, e, es) != 0 ||
        map_time(res, o, e, es) != 0)
        return -1;
    const char *visit = extension_value(res, FHIR_VISIT_EXTENSION);
    if (visit != NULL &&
        obs_field_copy(o->visit, sizeof o->visit, "visit", visit, false, e, es) != 0)
        return -1;
    return 0;
}

/* ---- QuestionnaireResponse: patient-reported symptom items ------------- */

/* What every item observation of one QuestionnaireResponse shares. */
struct qr_common {
    struct observation base; /* study, site, subject, times, status, visit */
    const char *id;
};

static int map_qr_common(const json_t *res, const json_t *entry, const struct fhir_options *opt,
                         struct qr_common *q, char *e, size_t es)
{
    struct observation *o = &q->base;
    memset(o, 0, sizeof *o);
    const char *id = str_at(res, "id");
    const char *full = entry ? str_at(entry, "fullUrl") : NULL;
    if (id == NULL && full != NULL && strncmp(full, "urn:uuid:", 9) == 0)
        id = full + 9;
    if (id == NULL)
        return fail(e, es, "no id (and no urn:uuid fullUrl)");
    q->id = id;

    const char *status = str_at(res, "status");
    if (status == NULL)
        return fail(e, es, "no status");
    if (strcmp(status, "completed") == 0)
        o->status = OBS_FINAL;
    else if (strcmp(status, "amended") == 0)
        o->status = OBS_AMENDED;
    else if (strcmp(status, "entered-in-error") == 0)
        o->status = OBS_ENTERED_IN_ERROR;
    else
        return fail(e, es,
                    "status '%.40s' is not a submitted report (completed, amended or "
                    "entered-in-error)",
                    status);

    const char *authored = str_at(res, "authored");
    char why[160];
    if (authored == NULL)
        return fail(e, es, "no authored (when the patient answered)");
    if (obs_time_parse(authored, true, &o->effective_ms, why, sizeof why) != 0)
        return fail(e, es, "authored: %s", why);
    /* the version's own time orders amendments (store.h revision) */
    const char *updated = str_at(json_object_get(res, "meta"), "lastUpdated");
    if (updated != NULL && obs_time_parse(updated, false, &o->issued_ms, why, sizeof why) != 0)
        return fail(e, es, "meta.lastUpdated: %s", why);

    const char *study_uri = opt && opt->study_uri ? opt->study_uri : FHIR_STUDY_URI_DEFAULT;
    const char *site_uri = opt && opt->site_uri ? opt->site_uri : FHIR_SITE_URI_DEFAULT;
    if (map_subject(res, o, e, es) != 0 ||
        map_tagged(res, study_uri, "study", o->study_id, sizeof o->study_id, e, es) != 0 ||
        map_tagged(res, site_uri, "site", o->site_id, sizeof o->site_id, e, es) != 0)
        return -1;
    const char *visit = extension_value(res, FHIR_VISIT_EXTENSION);
    if (visit != NULL &&
        obs_field_copy(o->visit, sizeof o->visit, "visit", visit, false, e, es) != 0)
        return -1;
    return 0;
}

/* The 0-4 score of ANSWER for ITEM (NULL: a PRO code vigil does not know,
 * only a number can be read then): valueInteger, valueBoolean (presence),
 * or valueCoding with an ordinalValue extension, a code "0".."4", or the
 * response's label as display ("Almost constantly"). */
static int answer_score(const json_t *answer, const struct proctcae_item *item, const char *code,
                        double *score, char *e, size_t es)
{
    json_t *v = json_object_get(answer, "valueInteger");
    if (v != NULL) {
        if (!json_is_integer(v))
            return fail(e, es, "item %s: valueInteger is not an integer", code);
        *score = (double)json_integer_value(v);
        return 0;
    }
    v = json_object_get(answer, "valueBoolean");
    if (v != NULL) {
        if (!json_is_boolean(v))
            return fail(e, es, "item %s: valueBoolean is not a boolean", code);
        *score = json_is_true(v) ? 1.0 : 0.0;
        return 0;
    }
    const json_t *coding = json_object_get(answer, "valueCoding");
    if (coding == NULL)
        return fail(e, es,
                    "item %s: answer has no valueInteger, valueBoolean or valueCoding (free "
                    "text is never carried)",
                    code);
    size_t i;
    json_t *ext;
    json_array_foreach(json_object_get(coding, "extension"), i, ext)
    {
        const char *url = str_at(ext, "url");
        json_t *d = json_object_get(ext, "valueDecimal");
        if (url != NULL &&
            strcmp(url, "http://hl7.org/fhir/StructureDefinition/ordinalValue") == 0 &&
            json_is_number(d)) {
            *score = json_number_value(d);
            return 0;
        }
    }
    const char *c = str_at(coding, "code");
    if (c != NULL && c[0] >= '0' && c[0] <= '9' && c[1] == '\0') {
        *score = c[0] - '0';
        return 0;
    }
    const char *label = str_at(coding, "display");
    int sc = item != NULL && label != NULL ? proctcae_score_parse(item->attribute, label) : -1;
    if (sc < 0)
        return fail(e, es, "item %s: answer '%.40s' is not a response vigil can score", code,
                    label ? label : (c ? c : "?"));
    *score = sc;
    return 0;
}

struct qr_walk {
    const struct qr_common *q;
    long entry;
    fhir_sink sink;
    void *arg;
    long calls;
    bool stop;
};

/* One answered PRO-CTCAE item: one observation, "<response id>/<code>". */
static void map_item(struct qr_walk *w, const json_t *item, const char *code)
{
    char why[512];
    struct observation o = w->q->base;
    const struct proctcae_item *known = proctcae_find(code);
    const json_t *answer = json_array_get(json_object_get(item, "answer"), 0);
    double score = 0;
    char id[2 * OBS_ID_MAX + 2];
    snprintf(id, sizeof id, "%s/%s", w->q->id, code);
    int rc = obs_field_copy(o.observation_id, sizeof o.observation_id, "id/linkId", id, true, why,
                            sizeof why);
    if (rc == 0)
        rc = obs_field_copy(o.loinc, sizeof o.loinc, "item linkId", code, true, why, sizeof why);
    if (rc == 0 && o.status != OBS_ENTERED_IN_ERROR)
        rc = answer_score(answer, known, code, &score, why, sizeof why);
    w->calls++;
    if (rc != 0) {
        w->stop = w->sink(w->arg, w->entry, NULL, why) != 0;
        return;
    }
    if (o.status != OBS_ENTERED_IN_ERROR) {
        o.has_value = true;
        o.value = score;
    }
    snprintf(o.unit, sizeof o.unit, "%s", PROCTCAE_UNIT);
    w->stop = w->sink(w->arg, w->entry, &o, NULL) != 0;
}

/* Walks ITEMS (and their nested items, for grouped questionnaires): items
 * whose linkId is a PRO-CTCAE code and that have an answer become
 * observations; anything else (other questions, free text) stays behind. */
static void walk_items(struct qr_walk *w, const json_t *items, int depth)
{
    size_t i;
    json_t *item;
    if (depth > 8)
        return;
    json_array_foreach(items, i, item)
    {
        if (w->stop)
            return;
        const char *link = str_at(item, "linkId");
        if (link != NULL && proctcae_is_code(link) &&
            json_array_size(json_object_get(item, "answer")) > 0)
            map_item(w, item, link);
        walk_items(w, json_object_get(item, "item"), depth + 1);
    }
}

/* A QuestionnaireResponse: SINK once per answered symptom item, or once
 * with the reason the response cannot be used. Returns the SINK calls;
 * sets *STOP when the sink asked to stop. */
static long map_questionnaire(const json_t *res, const json_t *entry, long entry_index,
                              const struct fhir_options *opt, fhir_sink sink, void *arg, bool *stop)
{
    char why[512];
    struct qr_common q;
    if (map_qr_common(res, entry, opt, &q, why, sizeof why) != 0) {
        *stop = sink(arg, entry_index, NULL, why) != 0;
        return 1;
    }
    struct qr_walk w = {&q, entry_index, sink, arg, 0, false};
    walk_items(&w, json_object_get(res, "item"), 0);
    if (w.calls == 0) {
        w.calls = 1;
        w.stop = sink(arg, entry_index, NULL,
                      "QuestionnaireResponse has no answered PRO-CTCAE item (linkId PRO-...)") != 0;
    }
    *stop = w.stop;
    return w.calls;
}

static bool is_questionnaire(const json_t *res)
{
    const char *rt = str_at(res, "resourceType");
    return rt != NULL && strcmp(rt, "QuestionnaireResponse") == 0;
}

static json_t *load(const char *text, size_t len, char *e, size_t es)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        fail(e, es, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        fail(e, es, "not a FHIR resource (a JSON object)");
        json_decref(root);
        return NULL;
    }
    return root;
}

long fhir_parse(const char *text, size_t len, const struct fhir_options *opt, fhir_sink sink,
                void *arg, char *errstr, size_t errstr_size)
{
    json_t *root = load(text, len, errstr, errstr_size);
    if (root == NULL)
        return -1;
    long calls = -1;
    struct observation obs;
    char why[512];
    const char *rt = str_at(root, "resourceType");
    if (rt != NULL && strcmp(rt, "Bundle") == 0) {
        json_t *entries = json_object_get(root, "entry");
        if (entries != NULL && !json_is_array(entries)) {
            fail(errstr, errstr_size, "Bundle.entry is not an array");
            goto out;
        }
        calls = 0;
        size_t i;
        json_t *entry;
        json_array_foreach(entries, i, entry) {
            int stop;
            const json_t *res = json_object_get(entry, "resource");
            if (is_questionnaire(res)) {
                bool halt = false;
                calls += map_questionnaire(res, entry, (long)i, opt, sink, arg, &halt);
                if (halt)
                    break;
                continue;
            }
            calls++;
            if (map_resource(res, entry, opt, &obs, why, sizeof why) == 0)
                stop = sink(arg, (long)i, &obs, NULL);
            else
                stop = sink(arg, (long)i, NULL, why);
            if (stop)
                break;
        }
    } else if (rt != NULL && strcmp(rt, "Observation") == 0) {
        calls = 1;
        if (map_resource(root, NULL, opt, &obs, why, sizeof why) == 0)
            sink(arg, -1, &obs, NULL);
        else
            sink(arg, -1, NULL, why);
    } else if (is_questionnaire(root)) {
        bool halt = false;
        calls = map_questionnaire(root, NULL, -1, opt, sink, arg, &halt);
    } else {
        fail(errstr, errstr_size,
             "resourceType is %s%s%s, not Observation, QuestionnaireResponse or Bundle",
             rt ? "'" : "", rt ? rt : "missing", rt ? "'" : "");
    }
out:
    json_decref(root);
    return calls;
}

int fhir_map_observation(const char *text, size_t len, const struct fhir_options *opt,
                         struct observation *out, char *errstr, size_t errstr_size)
{
    json_t *root = load(text, len, errstr, errstr_size);
    if (root == NULL)
        return -1;
    int rc = map_resource(root, NULL, opt, out, errstr, errstr_size);
    json_decref(root);
    return rc;
}
