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

static const char *identifier_value(const json_t *res, const char *uri)
{
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(res, "identifier"), i, id) {
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
            calls++;
            if (map_resource(json_object_get(entry, "resource"), entry, opt, &obs, why,
                             sizeof why) == 0)
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
    } else {
        fail(errstr, errstr_size, "resourceType is %s%s%s, not Observation or Bundle",
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
