/*
 * hl7_facility: loading and lookups of the facility mapping (contract in
 * hl7_facility.h).
 *
 * The file is read whole with libyaml's document API (it is small, and a
 * reload is validated whole before it replaces the old one). Code tables
 * are sorted once and searched with bsearch: a panel of ten OBX looks up
 * ten codes per message at thousands of messages a second.
 */
#include "hl7_facility.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "observation.h"

#define NAME_MAX_LEN 64
#define CODE_MAX_LEN 64

struct code_map {
    char *code;
    char *system; /* "" = any */
    char *loinc;
    char *unit; /* "" = none */
};

struct unit_map {
    char *from;
    char *to;
};

struct units {
    struct unit_map *v;
    size_t n;
};

struct hl7_facility {
    char *id;
    struct hl7_tz *tz; /* may be NULL */
    struct code_map *codes;
    size_t n_codes;
    struct units units;
};

struct hl7_facilities {
    struct hl7_tz *default_tz;
    struct units units;
    struct hl7_facility *fac;
    size_t n_fac;
};

static void units_free(struct units *u)
{
    for (size_t i = 0; i < u->n; i++) {
        free(u->v[i].from);
        free(u->v[i].to);
    }
    free(u->v);
}

void hl7_facilities_destroy(struct hl7_facilities *f)
{
    if (f == NULL)
        return;
    hl7_tz_destroy(f->default_tz);
    units_free(&f->units);
    for (size_t i = 0; i < f->n_fac; i++) {
        struct hl7_facility *x = &f->fac[i];
        free(x->id);
        hl7_tz_destroy(x->tz);
        for (size_t j = 0; j < x->n_codes; j++) {
            free(x->codes[j].code);
            free(x->codes[j].system);
            free(x->codes[j].loinc);
            free(x->codes[j].unit);
        }
        free(x->codes);
        units_free(&x->units);
    }
    free(f->fac);
    free(f);
}

struct hl7_facilities *hl7_facilities_empty(void)
{
    return calloc(1, sizeof(struct hl7_facilities));
}

int hl7_loinc_valid(const char *code)
{
    const char *dash = strchr(code, '-');
    size_t n = dash ? (size_t)(dash - code) : 0;
    if (dash == NULL || n < 1 || n > 7 || dash[1] < '0' || dash[1] > '9' || dash[2] != '\0')
        return 0;
    int sum = 0;
    bool dbl = true; /* Luhn: double every second digit from the right, starting there */
    for (size_t i = n; i-- > 0;) {
        if (code[i] < '0' || code[i] > '9')
            return 0;
        int d = code[i] - '0';
        if (dbl) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        dbl = !dbl;
    }
    return (10 - sum % 10) % 10 == dash[1] - '0';
}

/* ---- YAML walking ------------------------------------------------------ */

struct ld {
    yaml_document_t *doc;
    const char *name;
    char *errstr;
    size_t errstr_size;
};

static int fail(struct ld *l, const yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
    snprintf(l->errstr, l->errstr_size, "%s:%zu: %s", l->name, n ? n->start_mark.line + 1 : 0,
             msg);
    return -1;
}

static yaml_node_t *node(struct ld *l, int i)
{
    return yaml_document_get_node(l->doc, i);
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A scalar of at most MAX bytes with no control characters, copied. */
static int take_str(struct ld *l, yaml_node_t *n, const char *what, size_t max, char **out)
{
    const char *s = scalar(n);
    if (s == NULL)
        return fail(l, n, "%s must be a string", what, NULL);
    size_t len = strlen(s);
    if (len == 0 || len > max) {
        char lim[32];
        snprintf(lim, sizeof lim, "%zu", max);
        return fail(l, n, "%s must be 1 to %s bytes", what, lim);
    }
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            return fail(l, n, "%s holds a control character", what, NULL);
    *out = strdup(s);
    if (*out == NULL)
        return fail(l, n, "out of memory", NULL, NULL);
    return 0;
}

static int load_units(struct ld *l, yaml_node_t *n, struct units *u)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(l, n, "units must be a mapping of local spelling: UCUM unit", NULL, NULL);
    size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    u->v = calloc(cnt ? cnt : 1, sizeof *u->v);
    if (u->v == NULL)
        return fail(l, n, "out of memory", NULL, NULL);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        struct unit_map *m = &u->v[u->n];
        if (take_str(l, node(l, p->key), "a unit", OBS_UNIT_MAX, &m->from) != 0)
            return -1;
        if (take_str(l, node(l, p->value), "a unit", OBS_UNIT_MAX, &m->to) != 0) {
            free(m->from);
            return -1;
        }
        u->n++;
        for (size_t i = 0; i + 1 < u->n; i++)
            if (strcmp(u->v[i].from, m->from) == 0)
                return fail(l, node(l, p->key), "unit '%s' is listed twice", m->from, NULL);
    }
    return 0;
}

static int cmp_code(const void *a, const void *b)
{
    const struct code_map *x = a, *y = b;
    int c = strcmp(x->code, y->code);
    return c ? c : strcmp(x->system, y->system);
}

static int load_code(struct ld *l, yaml_node_t *n, struct code_map *c)
{
    if (n->type != YAML_MAPPING_NODE)
        return fail(l, n, "each code must be a mapping {code, system, loinc, unit}", NULL, NULL);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = scalar(node(l, p->key));
        yaml_node_t *v = node(l, p->value);
        int rc;
        if (k && strcmp(k, "code") == 0 && c->code == NULL)
            rc = take_str(l, v, "code", CODE_MAX_LEN, &c->code);
        else if (k && strcmp(k, "system") == 0 && c->system == NULL)
            rc = take_str(l, v, "system", CODE_MAX_LEN, &c->system);
        else if (k && strcmp(k, "loinc") == 0 && c->loinc == NULL)
            rc = take_str(l, v, "loinc", OBS_LOINC_MAX, &c->loinc);
        else if (k && strcmp(k, "unit") == 0 && c->unit == NULL)
            rc = take_str(l, v, "unit", OBS_UNIT_MAX, &c->unit);
        else
            return fail(l, node(l, p->key), "unknown or repeated key '%s' in a code (code, system, loinc, unit)",
                        k ? k : "?", NULL);
        if (rc != 0)
            return -1;
    }
    if (c->code == NULL || c->loinc == NULL)
        return fail(l, n, "a code needs both code and loinc", NULL, NULL);
    if (!hl7_loinc_valid(c->loinc))
        return fail(l, n, "'%s' is not a LOINC code (digits, '-', check digit)", c->loinc, NULL);
    if (c->system == NULL && (c->system = strdup("")) == NULL)
        return fail(l, n, "out of memory", NULL, NULL);
    if (c->unit == NULL && (c->unit = strdup("")) == NULL)
        return fail(l, n, "out of memory", NULL, NULL);
    return 0;
}

static int load_zone(struct ld *l, yaml_node_t *n, struct hl7_tz **out)
{
    const char *s = scalar(n);
    if (s == NULL)
        return fail(l, n, "time_zone must be a string", NULL, NULL);
    char why[256];
    *out = hl7_tz_new(s, why, sizeof why);
    if (*out == NULL)
        return fail(l, n, "%s", why, NULL);
    return 0;
}

static int load_facility(struct ld *l, const char *id, yaml_node_t *n, struct hl7_facility *f)
{
    if ((f->id = strdup(id)) == NULL)
        return fail(l, n, "out of memory", NULL, NULL);
    if (n->type != YAML_MAPPING_NODE)
        return fail(l, n, "facility %s must be a mapping (time_zone, units, codes)", id, NULL);
    bool seen_tz = false, seen_units = false, seen_codes = false;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *k = scalar(node(l, p->key));
        yaml_node_t *v = node(l, p->value);
        if (k && strcmp(k, "time_zone") == 0 && !seen_tz) {
            seen_tz = true;
            if (load_zone(l, v, &f->tz) != 0)
                return -1;
        } else if (k && strcmp(k, "units") == 0 && !seen_units) {
            seen_units = true;
            if (load_units(l, v, &f->units) != 0)
                return -1;
        } else if (k && strcmp(k, "codes") == 0 && !seen_codes) {
            seen_codes = true;
            if (v->type != YAML_SEQUENCE_NODE)
                return fail(l, v, "codes of %s must be a list", id, NULL);
            size_t cnt = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
            f->codes = calloc(cnt ? cnt : 1, sizeof *f->codes);
            if (f->codes == NULL)
                return fail(l, v, "out of memory", NULL, NULL);
            for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
                 it++) {
                f->n_codes++;
                if (load_code(l, node(l, *it), &f->codes[f->n_codes - 1]) != 0)
                    return -1;
            }
            qsort(f->codes, f->n_codes, sizeof *f->codes, cmp_code);
            for (size_t i = 1; i < f->n_codes; i++)
                if (cmp_code(&f->codes[i - 1], &f->codes[i]) == 0)
                    return fail(l, v, "code '%s' of facility %s is listed twice", f->codes[i].code,
                                id);
        } else {
            return fail(l, node(l, p->key),
                        "unknown or repeated key '%s' (time_zone, units, codes)", k ? k : "?",
                        NULL);
        }
    }
    return 0;
}

static int load_root(struct ld *l, yaml_node_t *root, struct hl7_facilities *f)
{
    if (root == NULL)
        return 0; /* an empty file: an empty mapping */
    if (root->type != YAML_MAPPING_NODE)
        return fail(l, root, "expected a mapping (default_time_zone, units, facilities)", NULL,
                    NULL);
    bool seen_tz = false, seen_units = false, seen_fac = false;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        const char *k = scalar(node(l, p->key));
        yaml_node_t *v = node(l, p->value);
        if (k && strcmp(k, "default_time_zone") == 0 && !seen_tz) {
            seen_tz = true;
            if (load_zone(l, v, &f->default_tz) != 0)
                return -1;
        } else if (k && strcmp(k, "units") == 0 && !seen_units) {
            seen_units = true;
            if (load_units(l, v, &f->units) != 0)
                return -1;
        } else if (k && strcmp(k, "facilities") == 0 && !seen_fac) {
            seen_fac = true;
            if (v->type != YAML_MAPPING_NODE)
                return fail(l, v, "facilities must be a mapping of facility id: settings", NULL,
                            NULL);
            size_t cnt = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
            f->fac = calloc(cnt ? cnt : 1, sizeof *f->fac);
            if (f->fac == NULL)
                return fail(l, v, "out of memory", NULL, NULL);
            for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top;
                 q++) {
                yaml_node_t *kn = node(l, q->key);
                const char *id = scalar(kn);
                if (id == NULL || id[0] == '\0' || strlen(id) > NAME_MAX_LEN)
                    return fail(l, kn, "a facility id must be 1 to 64 bytes", NULL, NULL);
                for (size_t i = 0; i < f->n_fac; i++)
                    if (strcmp(f->fac[i].id, id) == 0)
                        return fail(l, kn, "facility %s is listed twice", id, NULL);
                f->n_fac++;
                if (load_facility(l, id, node(l, q->value), &f->fac[f->n_fac - 1]) != 0)
                    return -1;
            }
        } else {
            return fail(l, node(l, p->key),
                        "unknown or repeated key '%s' (default_time_zone, units, facilities)",
                        k ? k : "?", NULL);
        }
    }
    return 0;
}

struct hl7_facilities *hl7_facilities_parse(const char *text, size_t len, const char *name,
                                            char *errstr, size_t errstr_size)
{
    struct hl7_facilities *f = hl7_facilities_empty();
    if (f == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errstr, errstr_size, "out of memory");
        hl7_facilities_destroy(f);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errstr, errstr_size, "%s:%zu: %s", name, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "not YAML");
        yaml_parser_delete(&parser);
        hl7_facilities_destroy(f);
        return NULL;
    }
    struct ld l = {&doc, name, errstr, errstr_size};
    int rc = load_root(&l, yaml_document_get_root_node(&doc), f);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc != 0) {
        hl7_facilities_destroy(f);
        return NULL;
    }
    return f;
}

struct hl7_facilities *hl7_facilities_load(const char *path, char *errstr, size_t errstr_size)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(errstr, errstr_size, "could not open %s: %s", path, strerror(errno));
        return NULL;
    }
    /* Bounded: a mapping is kilobytes; 16 MiB is far beyond any real one. */
    size_t cap = 16 * 1024 * 1024, n = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        fclose(fp);
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    n = fread(buf, 1, cap + 1, fp);
    bool err = ferror(fp) != 0;
    fclose(fp);
    if (err || n > cap) {
        snprintf(errstr, errstr_size, "could not read %s: %s", path,
                 err ? "read error" : "larger than 16 MiB");
        free(buf);
        return NULL;
    }
    struct hl7_facilities *f = hl7_facilities_parse(buf, n, path, errstr, errstr_size);
    free(buf);
    return f;
}

size_t hl7_facilities_count(const struct hl7_facilities *f)
{
    return f->n_fac;
}

const struct hl7_facility *hl7_facilities_find(const struct hl7_facilities *f, const char *id)
{
    for (size_t i = 0; i < f->n_fac; i++)
        if (strcmp(f->fac[i].id, id) == 0)
            return &f->fac[i];
    return NULL;
}

const struct hl7_tz *hl7_facilities_zone(const struct hl7_facilities *f,
                                         const struct hl7_facility *fac)
{
    if (fac != NULL && fac->tz != NULL)
        return fac->tz;
    return f->default_tz;
}

const char *hl7_facility_loinc(const struct hl7_facility *fac, const char *code,
                               const char *system, const char **default_unit)
{
    *default_unit = "";
    if (fac == NULL || fac->n_codes == 0)
        return NULL;
    /* The entry for this system first, then the one for any system. */
    const char *systems[2] = {system, ""};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && system[0] == '\0')
            break;
        struct code_map key = {(char *)code, (char *)systems[i], NULL, NULL};
        const struct code_map *m =
            bsearch(&key, fac->codes, fac->n_codes, sizeof *fac->codes, cmp_code);
        if (m != NULL) {
            *default_unit = m->unit;
            return m->loinc;
        }
    }
    return NULL;
}

static const char *unit_lookup(const struct units *u, const char *unit)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(u->v[i].from, unit) == 0)
            return u->v[i].to;
    return NULL;
}

const char *hl7_facilities_unit(const struct hl7_facilities *f, const struct hl7_facility *fac,
                                const char *unit)
{
    const char *to = fac ? unit_lookup(&fac->units, unit) : NULL;
    if (to == NULL)
        to = unit_lookup(&f->units, unit);
    return to ? to : unit;
}
