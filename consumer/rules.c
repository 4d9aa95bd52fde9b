/*
 * rules: parsing, validation and evaluation of the rule set (see rules.h for
 * the contract and the rule kinds).
 *
 * DESIGN: the YAML file is loaded whole with libyaml's document API (every
 * node keeps its line and column for messages), checked key by key into a
 * flat array of struct rule, and the document is thrown away. Evaluation
 * then only reads that array: no strings are parsed, nothing is allocated,
 * and one set may be shared by every analysis thread. Validation goes on
 * after the first problem so `vigil rules check` can list them all; the set
 * is built only if none was found.
 */
#include "rules.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "boundary.h"
#include "ctcae.h"
#include "proctcae.h"

#define ERRORS_MAX 20 /* problems listed before the parser stops reporting */
#define RULES_DEPTH_MAX 16 /* a valid file needs 4 levels */
#define WINDOW_DAYS_MAX 3650.0
#define WINDOW_DAYS_DEFAULT 30.0
#define MS_PER_DAY 86400000.0

enum rule_kind {
    KIND_THRESHOLD,
    KIND_REF_MULTIPLE,
    KIND_CTCAE,
    KIND_BASELINE_CHANGE,
    KIND_HYS_LAW,
    KIND_PRO_SCORE,
    KIND_PRO_WORSENING,
};
enum cmp_op { OP_GT, OP_GE, OP_LT, OP_LE };

static const char *const kind_names[] = {"threshold",          "ref_multiple", "ctcae",
                                         "baseline_change",    "hys_law",      "pro_ctcae",
                                         "pro_ctcae_worsening"};

/* What each kind's verdict depends on (rules.h). */
static const unsigned kind_deps[] = {
    [KIND_THRESHOLD] = RULES_DEP_SINGLE,       [KIND_REF_MULTIPLE] = RULES_DEP_SINGLE,
    [KIND_CTCAE] = RULES_DEP_BASELINE,         [KIND_BASELINE_CHANGE] = RULES_DEP_BASELINE,
    [KIND_HYS_LAW] = RULES_DEP_PAIR,           [KIND_PRO_SCORE] = RULES_DEP_SINGLE,
    [KIND_PRO_WORSENING] = RULES_DEP_PREVIOUS,
};
static const char *const op_names[] = {">", ">=", "<", "<="};

struct rule {
    char id[ALERT_RULE_MAX + 1];
    int32_t version;
    enum rule_kind kind;
    enum alert_severity severity;
    char loinc[OBS_LOINC_MAX + 1]; /* all kinds but ctcae and hys_law */
    const char *unit;              /* canonical unit of loinc, static */
    enum cmp_op op;                /* threshold */
    double limit;
    bool bound_high; /* ref_multiple */
    double multiple;
    int min_grade; /* ctcae */
    uint32_t lab_mask;
    enum alert_severity severity_by_grade[5];
    bool has_ratio; /* baseline_change */
    double ratio;
    bool has_delta;
    double delta;
    int64_t window_ms; /* hys_law */
    uint64_t item_mask; /* pro_ctcae*: bit i = proctcae_item(i) is judged */
    int min_score;      /* pro_ctcae */
    enum alert_severity severity_by_score[PROCTCAE_SCORE_MAX + 1];
    int min_increase; /* pro_ctcae_worsening */
};

struct rules {
    int n;
    int max_alerts;
    struct rule rule[];
};

/* ---------------------------------------------------------------------------
 * Parsing
 */

enum key {
    K_ID,
    K_VERSION,
    K_KIND,
    K_SEVERITY,
    K_LOINC,
    K_OP,
    K_VALUE,
    K_UNIT,
    K_BOUND,
    K_MULTIPLE,
    K_MIN_GRADE,
    K_LOINCS,
    K_SEVERITY_BY_GRADE,
    K_RATIO,
    K_DELTA,
    K_WINDOW_DAYS,
    K_ATTRIBUTES,
    K_SYMPTOMS,
    K_MIN_SCORE,
    K_SEVERITY_BY_SCORE,
    K_MIN_INCREASE,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {"id",
                                               "version",
                                               "kind",
                                               "severity",
                                               "loinc",
                                               "op",
                                               "value",
                                               "unit",
                                               "bound",
                                               "multiple",
                                               "min_grade",
                                               "loincs",
                                               "severity_by_grade",
                                               "ratio",
                                               "delta",
                                               "window_days",
                                               "attributes",
                                               "symptoms",
                                               "min_score",
                                               "severity_by_score",
                                               "min_increase"};

#define BIT(k) (1u << (k))
#define COMMON_KEYS (BIT(K_ID) | BIT(K_VERSION) | BIT(K_KIND))

/* Per kind: the keys it must have and the keys it may have. */
static const struct {
    unsigned required;
    unsigned allowed;
} kind_keys[] = {
    [KIND_THRESHOLD] = {COMMON_KEYS | BIT(K_SEVERITY) | BIT(K_LOINC) | BIT(K_OP) | BIT(K_VALUE) |
                            BIT(K_UNIT),
                        0},
    [KIND_REF_MULTIPLE] = {COMMON_KEYS | BIT(K_SEVERITY) | BIT(K_LOINC) | BIT(K_BOUND) |
                               BIT(K_MULTIPLE),
                           0},
    [KIND_CTCAE] = {COMMON_KEYS | BIT(K_MIN_GRADE), BIT(K_LOINCS) | BIT(K_SEVERITY_BY_GRADE)},
    [KIND_BASELINE_CHANGE] = {COMMON_KEYS | BIT(K_SEVERITY) | BIT(K_LOINC),
                              BIT(K_RATIO) | BIT(K_DELTA)},
    [KIND_HYS_LAW] = {COMMON_KEYS | BIT(K_SEVERITY), BIT(K_WINDOW_DAYS)},
    [KIND_PRO_SCORE] = {COMMON_KEYS | BIT(K_MIN_SCORE), BIT(K_SEVERITY) | BIT(K_SEVERITY_BY_SCORE) |
                                                            BIT(K_ATTRIBUTES) | BIT(K_SYMPTOMS)},
    [KIND_PRO_WORSENING] = {COMMON_KEYS | BIT(K_SEVERITY),
                            BIT(K_MIN_INCREASE) | BIT(K_ATTRIBUTES) | BIT(K_SYMPTOMS)},
};

struct parser {
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errsz;
    size_t errlen;
    int nerr;
};

/* Records one problem at mark M; WHO names the rule ("" for the file). */
__attribute__((format(printf, 4, 5))) static void fail(struct parser *p, yaml_mark_t m,
                                                       const char *who, const char *fmt, ...)
{
    p->nerr++;
    if (p->nerr > ERRORS_MAX || p->err == NULL || p->errsz == 0 || p->errlen + 1 >= p->errsz)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int w = snprintf(p->err + p->errlen, p->errsz - p->errlen, "%s%s:%zu:%zu: %s%s%s",
                     p->errlen > 0 ? "\n" : "", p->file, m.line + 1, m.column + 1, who,
                     who[0] != '\0' ? ": " : "", msg);
    if (w < 0)
        return;
    p->errlen += (size_t)w;
    if (p->errlen >= p->errsz)
        p->errlen = p->errsz - 1;
}

static yaml_node_t *node_at(struct parser *p, int index)
{
    return yaml_document_get_node(p->doc, index);
}

/* Returns the scalar's text, or NULL if N is not a scalar or holds a NUL. */
static const char *scalar_text(const yaml_node_t *n)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE)
        return NULL;
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length)
        return NULL;
    return s;
}

/* A number must be a plain (unquoted) finite decimal scalar. */
static bool get_number(struct parser *p, const yaml_node_t *n, const char *who, const char *key,
                       double *out)
{
    const char *s = scalar_text(n);
    bool ok = s != NULL && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && s[0] != '\0' &&
              strpbrk(s, "xXpP") == NULL && strchr("+-.0123456789", s[0]) != NULL;
    if (ok) {
        char *end;
        errno = 0;
        *out = strtod(s, &end);
        ok = *end == '\0' && errno == 0 && isfinite(*out);
    }
    if (!ok)
        fail(p, n->start_mark, who, "\"%s\" must be a number, got %s%s%s", key, s ? "\"" : "",
             s ? s : "a collection", s ? "\"" : "");
    return ok;
}

/* An integer in [lo, hi], written as a plain scalar of digits. */
static bool get_int(struct parser *p, const yaml_node_t *n, const char *who, const char *key,
                    long lo, long hi, long *out)
{
    const char *s = scalar_text(n);
    bool ok = s != NULL && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
              (isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1])));
    if (ok) {
        char *end;
        errno = 0;
        *out = strtol(s, &end, 10);
        ok = *end == '\0' && errno == 0 && *out >= lo && *out <= hi;
    }
    if (!ok)
        fail(p, n->start_mark, who, "\"%s\" must be an integer from %ld to %ld, got %s%s%s", key,
             lo, hi, s ? "\"" : "", s ? s : "a collection", s ? "\"" : "");
    return ok;
}

static const char *get_string(struct parser *p, const yaml_node_t *n, const char *who,
                              const char *key)
{
    const char *s = scalar_text(n);
    if (s == NULL)
        fail(p, n->start_mark, who, "\"%s\" must be a string", key);
    return s;
}

static bool get_severity(struct parser *p, const yaml_node_t *n, const char *who, const char *key,
                         enum alert_severity *out)
{
    const char *s = get_string(p, n, who, key);
    if (s == NULL)
        return false;
    int sev = alert_severity_parse(s);
    if (sev < 0) {
        fail(p, n->start_mark, who, "unknown severity \"%s\" (expected info, warning or critical)",
             s);
        return false;
    }
    *out = (enum alert_severity)sev;
    return true;
}

static bool valid_rule_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ALERT_RULE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
            return false;
    return true;
}

/* A LOINC the cleaning stage normalises; stores its canonical unit. */
static bool get_loinc(struct parser *p, const yaml_node_t *n, const char *who, char *out,
                      size_t outsz, const char **unit)
{
    const char *s = get_string(p, n, who, "loinc");
    if (s == NULL)
        return false;
    const char *u = clean_canonical_unit(s);
    if (u == NULL || strlen(s) >= outsz) {
        fail(p, n->start_mark, who, "unknown LOINC \"%s\" (not in the cleaning table)", s);
        return false;
    }
    snprintf(out, outsz, "%s", s);
    *unit = u;
    return true;
}

static void parse_ctcae_loincs(struct parser *p, const yaml_node_t *n, const char *who,
                               struct rule *r)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        fail(p, n->start_mark, who, "\"loincs\" must be a list of LOINC codes");
        return;
    }
    r->lab_mask = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = node_at(p, *it);
        const char *s = get_string(p, item, who, "loincs");
        if (s == NULL)
            continue;
        int lab = ctcae_lab_index(s);
        if (lab < 0)
            fail(p, item->start_mark, who, "LOINC \"%s\" is not graded by CTCAE", s);
        else
            r->lab_mask |= 1u << lab;
    }
    if (r->lab_mask == 0 && n->data.sequence.items.start == n->data.sequence.items.top)
        fail(p, n->start_mark, who, "\"loincs\" must not be empty (omit it for every lab)");
}

static void parse_severity_by_grade(struct parser *p, const yaml_node_t *n, const char *who,
                                    struct rule *r)
{
    if (n->type != YAML_MAPPING_NODE) {
        fail(p, n->start_mark, who, "\"severity_by_grade\" must be a mapping of grade to severity");
        return;
    }
    bool seen[5] = {false};
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        long g;
        if (!get_int(p, node_at(p, pr->key), who, "severity_by_grade", 1, 4, &g))
            continue;
        if (seen[g]) {
            fail(p, node_at(p, pr->key)->start_mark, who,
                 "duplicate grade %ld in severity_by_grade", g);
            continue;
        }
        seen[g] = true;
        get_severity(p, node_at(p, pr->value), who, "severity_by_grade",
                     &r->severity_by_grade[g]);
    }
}

/* "attributes" and "symptoms" of a pro_ctcae rule: the items it judges,
 * as a mask over the PRO-CTCAE item table. Presence items are judged only
 * when listed (a yes/no answer has no severity). */
static void parse_pro_items(struct parser *p, const yaml_node_t *attrs, const yaml_node_t *syms,
                            const char *who, struct rule *r)
{
    unsigned attr_mask =
        (1u << PROCTCAE_FREQUENCY) | (1u << PROCTCAE_SEVERITY) | (1u << PROCTCAE_INTERFERENCE);
    if (attrs != NULL) {
        attr_mask = 0;
        if (attrs->type != YAML_SEQUENCE_NODE ||
            attrs->data.sequence.items.start == attrs->data.sequence.items.top) {
            fail(p, attrs->start_mark, who,
                 "\"attributes\" must be a list of frequency, severity, interference or "
                 "presence");
            return;
        }
        for (yaml_node_item_t *it = attrs->data.sequence.items.start;
             it < attrs->data.sequence.items.top; it++) {
            const yaml_node_t *item = node_at(p, *it);
            const char *s = get_string(p, item, who, "attributes");
            int a = s != NULL ? proctcae_attribute_parse(s) : -1;
            if (s != NULL && a < 0)
                fail(p, item->start_mark, who,
                     "unknown attribute \"%s\" (expected frequency, severity, interference or "
                     "presence)",
                     s);
            else if (a >= 0)
                attr_mask |= 1u << a;
        }
    }
    const yaml_node_t *terms[64];
    int nterms = 0;
    if (syms != NULL) {
        if (syms->type != YAML_SEQUENCE_NODE ||
            syms->data.sequence.items.start == syms->data.sequence.items.top) {
            fail(p, syms->start_mark, who,
                 "\"symptoms\" must be a list of PRO-CTCAE terms such as NAUSEA");
            return;
        }
        for (yaml_node_item_t *it = syms->data.sequence.items.start;
             it < syms->data.sequence.items.top && nterms < 64; it++) {
            const yaml_node_t *item = node_at(p, *it);
            const char *s = get_string(p, item, who, "symptoms");
            if (s != NULL && !proctcae_term_known(s))
                fail(p, item->start_mark, who, "unknown PRO-CTCAE term \"%s\"", s);
            else if (s != NULL)
                terms[nterms++] = item;
        }
    }
    r->item_mask = 0;
    for (int i = 0; i < proctcae_item_count() && i < 64; i++) {
        const struct proctcae_item *item = proctcae_item(i);
        if (!(attr_mask & (1u << item->attribute)))
            continue;
        bool listed = syms == NULL;
        for (int k = 0; k < nterms && !listed; k++)
            listed = strcmp(scalar_text(terms[k]), item->term) == 0;
        if (listed)
            r->item_mask |= (uint64_t)1 << i;
    }
    if (r->item_mask == 0 && p->nerr == 0)
        fail(p, (syms ? syms : attrs)->start_mark, who,
             "no PRO-CTCAE item has these symptoms and attributes");
}

static void parse_severity_by_score(struct parser *p, const yaml_node_t *n, const char *who,
                                    struct rule *r)
{
    if (n->type != YAML_MAPPING_NODE) {
        fail(p, n->start_mark, who, "\"severity_by_score\" must be a mapping of score to severity");
        return;
    }
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        long sc;
        if (get_int(p, node_at(p, pr->key), who, "severity_by_score", 0, PROCTCAE_SCORE_MAX, &sc))
            get_severity(p, node_at(p, pr->value), who, "severity_by_score",
                         &r->severity_by_score[sc]);
    }
}

/* Parses rule number INDEX (0-based) from mapping N into R. Problems are
 * recorded in P; the caller checks p->nerr. */
static void parse_rule(struct parser *p, const yaml_node_t *n, int index, struct rule *r)
{
    char who[ALERT_RULE_MAX + 16];
    snprintf(who, sizeof who, "rule #%d", index + 1);
    if (n->type != YAML_MAPPING_NODE) {
        fail(p, n->start_mark, who, "a rule must be a mapping");
        return;
    }

    /* The id names the rule in every message, so look for it first. */
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        const char *name = scalar_text(node_at(p, pr->key));
        const char *id = scalar_text(node_at(p, pr->value));
        if (name != NULL && strcmp(name, "id") == 0 && id != NULL && valid_rule_id(id)) {
            snprintf(who, sizeof who, "rule \"%s\"", id);
            break;
        }
    }

    /* Collect the keys before checking values: the kind decides which keys
     * are allowed. */
    yaml_node_t *val[K_COUNT] = {NULL};
    yaml_node_t *key[K_COUNT] = {NULL};
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = node_at(p, pr->key);
        const char *name = scalar_text(k);
        int i = 0;
        while (name != NULL && i < K_COUNT && strcmp(name, key_names[i]) != 0)
            i++;
        if (name == NULL || i == K_COUNT) {
            fail(p, k->start_mark, who, "unknown key \"%s\"", name ? name : "(not a string)");
            continue;
        }
        if (val[i] != NULL) {
            fail(p, k->start_mark, who, "duplicate key \"%s\"", name);
            continue;
        }
        key[i] = k;
        val[i] = node_at(p, pr->value);
    }

    if (val[K_ID] != NULL) {
        const char *id = get_string(p, val[K_ID], who, "id");
        if (id != NULL && !valid_rule_id(id))
            fail(p, val[K_ID]->start_mark, who,
                 "\"id\" must be 1 to %d characters of a-z, 0-9 and '-', got \"%s\"",
                 ALERT_RULE_MAX, id);
        else if (id != NULL)
            snprintf(r->id, sizeof r->id, "%s", id);
    }
    if (val[K_VERSION] != NULL) {
        long v;
        if (get_int(p, val[K_VERSION], who, "version", 1, INT32_MAX, &v))
            r->version = (int32_t)v;
    }
    if (val[K_KIND] == NULL) {
        fail(p, n->start_mark, who, "missing required key \"kind\"");
        return;
    }
    const char *kind = get_string(p, val[K_KIND], who, "kind");
    if (kind == NULL)
        return;
    size_t nk = sizeof kind_names / sizeof kind_names[0];
    size_t ki = 0;
    while (ki < nk && strcmp(kind, kind_names[ki]) != 0)
        ki++;
    if (ki == nk) {
        fail(p, val[K_KIND]->start_mark, who,
             "unknown kind \"%s\" (expected threshold, ref_multiple, ctcae, baseline_change, "
             "hys_law, pro_ctcae or pro_ctcae_worsening)",
             kind);
        return;
    }
    r->kind = (enum rule_kind)ki;

    unsigned required = kind_keys[r->kind].required;
    unsigned allowed = required | kind_keys[r->kind].allowed;
    for (int i = 0; i < K_COUNT; i++) {
        if (val[i] != NULL && !(allowed & BIT(i)))
            fail(p, key[i]->start_mark, who, "key \"%s\" does not apply to kind \"%s\"",
                 key_names[i], kind);
        else if (val[i] == NULL && (required & BIT(i)))
            fail(p, n->start_mark, who, "missing required key \"%s\"", key_names[i]);
    }

    if (val[K_SEVERITY] != NULL && (allowed & BIT(K_SEVERITY)))
        get_severity(p, val[K_SEVERITY], who, "severity", &r->severity);
    bool have_loinc = false;
    if (val[K_LOINC] != NULL && (allowed & BIT(K_LOINC)))
        have_loinc = get_loinc(p, val[K_LOINC], who, r->loinc, sizeof r->loinc, &r->unit);

    switch (r->kind) {
    case KIND_THRESHOLD:
        if (val[K_OP] != NULL) {
            const char *op = get_string(p, val[K_OP], who, "op");
            size_t oi = 0;
            while (op != NULL && oi < 4 && strcmp(op, op_names[oi]) != 0)
                oi++;
            if (op != NULL && oi == 4)
                fail(p, val[K_OP]->start_mark, who, "unknown op \"%s\" (expected >, >=, < or <=)",
                     op);
            r->op = (enum cmp_op)oi;
        }
        if (val[K_VALUE] != NULL)
            get_number(p, val[K_VALUE], who, "value", &r->limit);
        if (val[K_UNIT] != NULL) {
            const char *u = get_string(p, val[K_UNIT], who, "unit");
            if (u != NULL && have_loinc && strcmp(u, r->unit) != 0)
                fail(p, val[K_UNIT]->start_mark, who,
                     "unit \"%s\" is not the canonical unit \"%s\" of LOINC %s", u, r->unit,
                     r->loinc);
        }
        break;
    case KIND_REF_MULTIPLE:
        if (val[K_BOUND] != NULL) {
            const char *b = get_string(p, val[K_BOUND], who, "bound");
            if (b != NULL && strcmp(b, "high") != 0 && strcmp(b, "low") != 0)
                fail(p, val[K_BOUND]->start_mark, who, "\"bound\" must be high or low, got \"%s\"",
                     b);
            r->bound_high = b != NULL && strcmp(b, "high") == 0;
        }
        if (val[K_MULTIPLE] != NULL && get_number(p, val[K_MULTIPLE], who, "multiple",
                                                  &r->multiple) &&
            r->multiple <= 0.0)
            fail(p, val[K_MULTIPLE]->start_mark, who,
                 "\"multiple\" must be a positive number, got %g", r->multiple);
        break;
    case KIND_CTCAE: {
        long g;
        if (val[K_MIN_GRADE] != NULL && get_int(p, val[K_MIN_GRADE], who, "min_grade", 1, 4, &g))
            r->min_grade = (int)g;
        r->lab_mask = (1u << ctcae_lab_count()) - 1;
        if (val[K_LOINCS] != NULL)
            parse_ctcae_loincs(p, val[K_LOINCS], who, r);
        static const enum alert_severity defaults[5] = {SEV_INFO, SEV_INFO, SEV_WARNING,
                                                        SEV_CRITICAL, SEV_CRITICAL};
        memcpy(r->severity_by_grade, defaults, sizeof defaults);
        if (val[K_SEVERITY_BY_GRADE] != NULL)
            parse_severity_by_grade(p, val[K_SEVERITY_BY_GRADE], who, r);
        break;
    }
    case KIND_BASELINE_CHANGE:
        if (val[K_RATIO] == NULL && val[K_DELTA] == NULL)
            fail(p, n->start_mark, who, "kind \"baseline_change\" needs \"ratio\" or \"delta\"");
        if (val[K_RATIO] != NULL && get_number(p, val[K_RATIO], who, "ratio", &r->ratio)) {
            r->has_ratio = true;
            if (r->ratio <= 0.0 || r->ratio == 1.0)
                fail(p, val[K_RATIO]->start_mark, who,
                     "\"ratio\" must be a positive number other than 1, got %g", r->ratio);
        }
        if (val[K_DELTA] != NULL && get_number(p, val[K_DELTA], who, "delta", &r->delta)) {
            r->has_delta = true;
            if (r->delta == 0.0)
                fail(p, val[K_DELTA]->start_mark, who, "\"delta\" must not be 0");
        }
        break;
    case KIND_HYS_LAW: {
        double days = WINDOW_DAYS_DEFAULT;
        if (val[K_WINDOW_DAYS] != NULL &&
            get_number(p, val[K_WINDOW_DAYS], who, "window_days", &days) &&
            (days <= 0.0 || days > WINDOW_DAYS_MAX))
            fail(p, val[K_WINDOW_DAYS]->start_mark, who,
                 "\"window_days\" must be more than 0 and at most %g, got %g", WINDOW_DAYS_MAX,
                 days);
        r->window_ms = (int64_t)llround(days * MS_PER_DAY);
        break;
    }
    case KIND_PRO_SCORE: {
        long sc;
        if (val[K_MIN_SCORE] != NULL &&
            get_int(p, val[K_MIN_SCORE], who, "min_score", 1, PROCTCAE_SCORE_MAX, &sc))
            r->min_score = (int)sc;
        if (val[K_SEVERITY] == NULL && val[K_SEVERITY_BY_SCORE] == NULL)
            fail(p, n->start_mark, who,
                 "kind \"pro_ctcae\" needs \"severity\" or \"severity_by_score\"");
        for (int i = 0; i <= PROCTCAE_SCORE_MAX; i++)
            r->severity_by_score[i] = val[K_SEVERITY] != NULL ? r->severity : SEV_WARNING;
        if (val[K_SEVERITY_BY_SCORE] != NULL)
            parse_severity_by_score(p, val[K_SEVERITY_BY_SCORE], who, r);
        parse_pro_items(p, val[K_ATTRIBUTES], val[K_SYMPTOMS], who, r);
        break;
    }
    case KIND_PRO_WORSENING: {
        long inc = 2;
        if (val[K_MIN_INCREASE] != NULL)
            get_int(p, val[K_MIN_INCREASE], who, "min_increase", 1, PROCTCAE_SCORE_MAX, &inc);
        r->min_increase = (int)inc;
        parse_pro_items(p, val[K_ATTRIBUTES], val[K_SYMPTOMS], who, r);
        break;
    }
    }
}

/* Line (1-based) and column of byte OFFSET in TEXT, for reader errors that
 * carry only an offset. */
static yaml_mark_t mark_of_offset(const char *text, size_t len, size_t offset)
{
    yaml_mark_t m = {0};
    for (size_t i = 0; i < offset && i < len; i++) {
        if (text[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    m.index = offset;
    return m;
}

static void fail_yaml(struct parser *p, const yaml_parser_t *yp, const char *text, size_t len)
{
    yaml_mark_t m = yp->problem_mark;
    if (yp->error == YAML_READER_ERROR)
        m = mark_of_offset(text, len, yp->problem_offset);
    fail(p, m, "", "could not parse YAML: %s%s%s%s", yp->problem ? yp->problem : "unknown problem",
         yp->context ? " (" : "", yp->context ? yp->context : "", yp->context ? ")" : "");
}

/* libyaml's scanner does work proportional to the flow nesting depth for
 * every token, so loading a 1 MiB file of "[" takes minutes. Walk the
 * events first (the scanner is lazy, so this stops early) and refuse deep
 * nesting before building the document. Returns false after recording the
 * problem (a syntax error found on the way included). */
static bool check_depth(struct parser *p, const char *text, size_t len)
{
    yaml_parser_t yp;
    yaml_event_t ev;
    yaml_mark_t start = {0};
    if (!yaml_parser_initialize(&yp)) {
        fail(p, start, "", "could not initialise the YAML parser: out of memory");
        return false;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    bool ok = true;
    int depth = 0;
    for (;;) {
        if (!yaml_parser_parse(&yp, &ev)) {
            fail_yaml(p, &yp, text, len);
            ok = false;
            break;
        }
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT)
            depth--;
        if (depth > RULES_DEPTH_MAX) {
            fail(p, ev.start_mark, "", "nested deeper than %d levels", RULES_DEPTH_MAX);
            ok = false;
        }
        yaml_event_delete(&ev);
        if (!ok || type == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&yp);
    return ok;
}

static int count_alerts(const struct rules *r)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->rule[i].kind == KIND_HYS_LAW ? RULES_HYS_PAIRS_MAX : 1;
    return n;
}

/* Checks the top level and builds the set; NULL if any problem. */
static struct rules *build(struct parser *p)
{
    yaml_mark_t start = {0};
    yaml_node_t *root = yaml_document_get_root_node(p->doc);
    if (root == NULL) {
        fail(p, start, "", "empty rules file (expected \"version\" and \"rules\")");
        return NULL;
    }
    if (root->type != YAML_MAPPING_NODE) {
        fail(p, root->start_mark, "",
             "a rules file must be a mapping with \"version\" and \"rules\"");
        return NULL;
    }
    yaml_node_t *version = NULL;
    yaml_node_t *list = NULL;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = node_at(p, pr->key);
        const char *name = scalar_text(k);
        yaml_node_t **slot = NULL;
        if (name != NULL && strcmp(name, "version") == 0)
            slot = &version;
        else if (name != NULL && strcmp(name, "rules") == 0)
            slot = &list;
        if (slot == NULL) {
            fail(p, k->start_mark, "", "unknown key \"%s\"", name ? name : "(not a string)");
        } else if (*slot != NULL) {
            fail(p, k->start_mark, "", "duplicate key \"%s\"", name);
        } else {
            *slot = node_at(p, pr->value);
        }
    }
    if (version == NULL) {
        fail(p, root->start_mark, "", "missing required key \"version\"");
    } else {
        const char *v = scalar_text(version);
        if (v == NULL || strcmp(v, "1") != 0 ||
            version->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            fail(p, version->start_mark, "",
                 "unsupported rules file version %s%s%s (this build reads version 1)",
                 v ? "\"" : "", v ? v : "(not a scalar)", v ? "\"" : "");
    }
    if (list == NULL) {
        fail(p, root->start_mark, "", "missing required key \"rules\"");
        return NULL;
    }
    if (list->type != YAML_SEQUENCE_NODE) {
        fail(p, list->start_mark, "", "\"rules\" must be a list of rules");
        return NULL;
    }
    ptrdiff_t n = list->data.sequence.items.top - list->data.sequence.items.start;
    if (n > RULES_MAX) {
        fail(p, node_at(p, list->data.sequence.items.start[RULES_MAX])->start_mark, "",
             "more than %d rules", RULES_MAX);
        return NULL;
    }

    struct rules *r = calloc(1, sizeof *r + (size_t)n * sizeof r->rule[0]);
    if (r == NULL) {
        fail(p, start, "", "could not allocate %td rules: out of memory", n);
        return NULL;
    }
    r->n = (int)n;
    for (int i = 0; i < r->n; i++) {
        const yaml_node_t *item = node_at(p, list->data.sequence.items.start[i]);
        parse_rule(p, item, i, &r->rule[i]);
        if (r->rule[i].id[0] == '\0')
            continue;
        for (int j = 0; j < i; j++) {
            if (strcmp(r->rule[j].id, r->rule[i].id) == 0) {
                const yaml_node_t *first = node_at(p, list->data.sequence.items.start[j]);
                fail(p, item->start_mark, "", "duplicate rule id \"%s\" (first at line %zu)",
                     r->rule[i].id, first->start_mark.line + 1);
                break;
            }
        }
    }
    if (p->nerr > 0)
        goto err;
    r->max_alerts = count_alerts(r);
    return r;

err:
    free(r);
    return NULL;
}

struct rules *rules_parse(const char *text, size_t len, const char *filename, char *errstr,
                          size_t errsz)
{
    struct parser p = {.file = filename, .err = errstr, .errsz = errsz};
    yaml_parser_t yp;
    yaml_document_t doc;
    yaml_document_t extra;
    bool have_doc = false;
    bool have_extra = false;
    struct rules *r = NULL;
    yaml_mark_t start = {0};

    if (errstr != NULL && errsz > 0)
        errstr[0] = '\0';
    if (len > RULES_FILE_MAX) {
        fail(&p, start, "", "rules file is %zu bytes, more than the limit of %d", len,
             RULES_FILE_MAX);
        return NULL;
    }
    if (!check_depth(&p, text, len))
        return NULL;
    if (!yaml_parser_initialize(&yp)) {
        fail(&p, start, "", "could not initialise the YAML parser: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    if (!yaml_parser_load(&yp, &doc)) {
        fail_yaml(&p, &yp, text, len);
        goto err;
    }
    have_doc = true;
    /* A second document would be silently ignored: refuse it instead. */
    if (!yaml_parser_load(&yp, &extra)) {
        fail_yaml(&p, &yp, text, len);
        goto err;
    }
    have_extra = true;
    yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second != NULL) {
        fail(&p, second->start_mark, "", "more than one YAML document in a rules file");
        goto err;
    }

    p.doc = &doc;
    r = build(&p);

err:
    if (have_extra)
        yaml_document_delete(&extra);
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    if (p.nerr > ERRORS_MAX && p.err != NULL && p.errlen + 1 < p.errsz)
        snprintf(p.err + p.errlen, p.errsz - p.errlen, "\n%s: %d more problems not shown",
                 p.file, p.nerr - ERRORS_MAX);
    return r;
}

struct rules *rules_load_file(const char *path, char *errstr, size_t errsz)
{
    struct rules *r = NULL;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(errstr, errsz, "could not open rules file %s: %s", path, strerror(errno));
        return NULL;
    }
    /* Read one byte more than allowed, so an oversize file (or one whose
     * size stat cannot tell) is refused rather than cut. */
    buf = malloc(RULES_FILE_MAX + 1);
    if (buf == NULL) {
        snprintf(errstr, errsz, "could not read rules file %s: out of memory", path);
        goto err;
    }
    size_t len = 0;
    while (len < RULES_FILE_MAX + 1) {
        ssize_t got = read(fd, buf + len, RULES_FILE_MAX + 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(errstr, errsz, "could not read rules file %s: %s", path, strerror(errno));
            goto err;
        }
        if (got == 0)
            break;
        len += (size_t)got;
    }
    if (len > RULES_FILE_MAX) {
        snprintf(errstr, errsz, "%s:1:1: rules file is more than the limit of %d bytes", path,
                 RULES_FILE_MAX);
        goto err;
    }
    r = rules_parse(buf, len, path, errstr, errsz);

err:
    free(buf);
    close(fd);
    return r;
}

void rules_destroy(struct rules *r)
{
    free(r);
}

int rules_count(const struct rules *r)
{
    return r->n;
}

const char *rules_id(const struct rules *r, int i)
{
    return r->rule[i].id;
}

int rules_max_alerts(const struct rules *r)
{
    return r->max_alerts;
}

/* ---------------------------------------------------------------------------
 * Alert ids: two FNV-1a-64 over length-prefixed fields, each state seeded by
 * its own domain string so the halves differ. Deterministic on every
 * machine (bytes in a fixed order, integers little-endian).
 */

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

struct idhash {
    uint64_t a;
    uint64_t b;
};

static void fnv(uint64_t *h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        *h ^= p[i];
        *h *= FNV_PRIME;
    }
}

static void ih_bytes(struct idhash *h, const void *data, size_t n)
{
    fnv(&h->a, data, n);
    fnv(&h->b, data, n);
}

static void ih_u64(struct idhash *h, uint64_t v)
{
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(v >> (8 * i));
    ih_bytes(h, le, sizeof le);
}

static void ih_str(struct idhash *h, const char *s)
{
    size_t n = strlen(s);
    ih_u64(h, n);
    ih_bytes(h, s, n);
}

static void ih_init(struct idhash *h, const char *domain)
{
    h->a = FNV_OFFSET;
    h->b = FNV_OFFSET;
    fnv(&h->a, "vigil/a/", 8);
    fnv(&h->b, "vigil/b/", 8);
    ih_str(h, domain);
}

static void ih_hex(const struct idhash *h, char out[ALERT_ID_MAX + 1])
{
    snprintf(out, ALERT_ID_MAX + 1, "%016" PRIx64 "%016" PRIx64, h->a, h->b);
}

/* ---------------------------------------------------------------------------
 * Evaluation
 */

static const char *analyte(const char *loinc)
{
    const char *name = ctcae_analyte_name(loinc);
    return name != NULL ? name : loinc;
}

/* "Potassium" from "potassium", for a message's first word. */
static void capitalised(const char *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s", s);
    out[0] = (char)toupper((unsigned char)out[0]);
}

static void format_date(int64_t ms, char out[16])
{
    time_t t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 16, "?");
        return;
    }
    if (strftime(out, 16, "%Y-%m-%d", &tm) == 0)
        snprintf(out, 16, "?");
}

static void add_evidence(struct alert *a, const char *observation_id, const char *loinc,
                         double value, const char *unit, int64_t effective_ms)
{
    if (a->n_evidence >= ALERT_EVIDENCE_MAX)
        return;
    struct alert_evidence *e = &a->evidence[a->n_evidence++];
    snprintf(e->observation_id, sizeof e->observation_id, "%s", observation_id);
    snprintf(e->loinc, sizeof e->loinc, "%s", loinc);
    e->value = value;
    snprintf(e->unit, sizeof e->unit, "%s", unit != NULL ? unit : "");
    e->effective_ms = effective_ms;
}

/* Fills the parts every alert shares; the caller adds id, evidence, message. */
static void alert_start(struct alert *a, const struct rule *ru, const struct observation *obs,
                        enum alert_severity sev, int grade, int64_t now_ms)
{
    memset(a, 0, sizeof *a);
    a->kind = ALERT_SIGNAL;
    snprintf(a->rule_id, sizeof a->rule_id, "%s", ru->id);
    a->rule_version = ru->version;
    a->severity = sev;
    a->ctcae_grade = grade;
    snprintf(a->study_id, sizeof a->study_id, "%s", obs->study_id);
    snprintf(a->site_id, sizeof a->site_id, "%s", obs->site_id);
    snprintf(a->subject_id, sizeof a->subject_id, "%s", obs->subject_id);
    a->observed_ms = obs->effective_ms;
    a->detected_ms = now_ms;
}

/* One alert about one observation: id over (rule, version, observation,
 * verdict), the observation as evidence. */
static void alert_single(struct alert *a, const struct rule *ru, const struct observation *obs,
                         const struct clean_result *c, enum alert_severity sev, int grade,
                         int64_t now_ms)
{
    alert_start(a, ru, obs, sev, grade, now_ms);
    struct idhash h;
    ih_init(&h, "observation");
    ih_str(&h, ru->id);
    ih_u64(&h, (uint64_t)(uint32_t)ru->version);
    ih_str(&h, obs->observation_id);
    ih_u64(&h, (uint64_t)(uint32_t)grade);
    ih_hex(&h, a->alert_id);
    add_evidence(a, obs->observation_id, obs->loinc, c->value, c->unit, obs->effective_ms);
}

static bool threshold_fires(const struct rule *ru, double v)
{
    switch (ru->op) {
    case OP_GT:
        return boundary_above(v, ru->limit);
    case OP_GE:
        return boundary_at_least(v, ru->limit);
    case OP_LT:
        return boundary_below(v, ru->limit);
    case OP_LE:
        return boundary_at_most(v, ru->limit);
    }
    return false;
}

static bool eval_threshold(const struct rule *ru, const struct observation *obs,
                           const struct clean_result *c, int64_t now_ms, struct alert *a)
{
    if (strcmp(obs->loinc, ru->loinc) != 0 || !threshold_fires(ru, c->value))
        return false;
    alert_single(a, ru, obs, c, ru->severity, 0, now_ms);
    char name[48];
    capitalised(analyte(obs->loinc), name, sizeof name);
    snprintf(a->message, sizeof a->message, "%s %g %s %s %g %s (threshold %s)", name, c->value,
             ru->unit, op_names[ru->op], ru->limit, ru->unit, ru->id);
    return true;
}

static bool eval_ref_multiple(const struct rule *ru, const struct observation *obs,
                              const struct clean_result *c, int64_t now_ms, struct alert *a)
{
    if (strcmp(obs->loinc, ru->loinc) != 0)
        return false;
    bool has_ref = ru->bound_high ? c->has_ref_high : c->has_ref_low;
    double ref = ru->bound_high ? c->ref_high : c->ref_low;
    if (!has_ref || ref <= 0.0)
        return false;
    double limit = ru->multiple * ref;
    if (ru->bound_high ? !boundary_above(c->value, limit) : !boundary_below(c->value, limit))
        return false;
    alert_single(a, ru, obs, c, ru->severity, 0, now_ms);
    char name[48];
    capitalised(analyte(obs->loinc), name, sizeof name);
    const char *which = ru->bound_high ? "ULN" : "LLN";
    snprintf(a->message, sizeof a->message, "%s %g %s is %.2f\xc3\x97%s, %s %g\xc3\x97%s (%s %s)",
             name, c->value, c->unit, c->value / ref, which, ru->bound_high ? "above" : "below",
             ru->multiple, which, kind_names[ru->kind], ru->id);
    return true;
}

static bool eval_ctcae(const struct rule *ru, const struct observation *obs,
                       const struct clean_result *c, const struct subject_result *base,
                       int64_t now_ms, struct alert *a)
{
    int lab = ctcae_lab_index(obs->loinc);
    if (lab < 0 || !(ru->lab_mask & (1u << lab)))
        return false;
    enum ctcae_term term;
    int grade = ctcae_grade(obs->loinc, c->value, c, base, &term);
    if (grade < ru->min_grade)
        return false;
    alert_single(a, ru, obs, c, ru->severity_by_grade[grade], grade, now_ms);
    snprintf(a->message, sizeof a->message, "CTCAE grade %d %s: %s %g %s", grade,
             ctcae_term_name(term), analyte(obs->loinc), c->value, c->unit);
    return true;
}

static bool eval_baseline_change(const struct rule *ru, const struct observation *obs,
                                 const struct clean_result *c, const struct subject_result *base,
                                 int64_t now_ms, struct alert *a)
{
    if (base == NULL || strcmp(obs->loinc, ru->loinc) != 0)
        return false;
    double v = c->value;
    double b = base->value;
    bool fires = false;
    if (ru->has_ratio && b > 0.0)
        fires = ru->ratio > 1.0 ? boundary_at_least(v, ru->ratio * b)
                                : boundary_at_most(v, ru->ratio * b);
    if (ru->has_delta && !fires) {
        double d = v - b;
        fires = ru->delta > 0.0 ? boundary_at_least(d, ru->delta) : boundary_at_most(d, ru->delta);
    }
    if (!fires)
        return false;
    alert_single(a, ru, obs, c, ru->severity, 0, now_ms);
    char name[48];
    char date[16];
    capitalised(analyte(obs->loinc), name, sizeof name);
    format_date(base->effective_ms, date);
    snprintf(a->message, sizeof a->message,
             "%s %g %s vs baseline %g %s on %s (%+g %s) (baseline_change %s)", name, v, c->unit,
             b, c->unit, date, v - b, c->unit, ru->id);
    return true;
}

/* A liver result usable for Hy's law: value as a multiple of its ULN. */
static bool uln_multiple(const struct subject_result *s, double *m)
{
    if (!s->has_ref_high || s->ref_high <= 0.0)
        return false;
    *m = s->value / s->ref_high;
    return true;
}

static int64_t abs_diff(int64_t x, int64_t y)
{
    return x > y ? x - y : y - x;
}

/* Writes Hy's law alerts for the arriving result X (ALT/AST or bilirubin)
 * paired with qualifying partners in ST; returns how many (<= max_out). */
static int eval_hys_law(const struct rule *ru, const struct subject_state *st,
                        const struct observation *obs, const struct clean_result *c,
                        int64_t now_ms, struct alert *out, int max_out)
{
    bool is_transaminase = strcmp(obs->loinc, LOINC_ALT) == 0 || strcmp(obs->loinc, LOINC_AST) == 0;
    bool is_bilirubin = strcmp(obs->loinc, LOINC_BILIRUBIN) == 0;
    if (!is_transaminase && !is_bilirubin)
        return 0;

    struct subject_result x = {0};
    subject_result_borrow_id(&x, obs->observation_id);
    x.effective_ms = obs->effective_ms;
    x.value = c->value;
    x.has_ref_high = c->has_ref_high;
    x.ref_high = c->ref_high;
    double xm;
    if (!uln_multiple(&x, &xm))
        return 0;
    if (is_transaminase ? !boundary_at_least(x.value, 3.0 * x.ref_high)
                        : !boundary_above(x.value, 2.0 * x.ref_high))
        return 0;

    /* Partners: bilirubin > 2 x ULN for a transaminase, ALT or AST >= 3 x
     * ULN for a bilirubin, within the window of X. */
    const struct subject_result *cand[2 * SUBJECT_STATE_RESULTS_MAX];
    const char *cand_loinc[2 * SUBJECT_STATE_RESULTS_MAX];
    int ncand = 0;
    const char *partner_loincs[2] = {LOINC_BILIRUBIN, NULL};
    if (is_bilirubin) {
        partner_loincs[0] = LOINC_ALT;
        partner_loincs[1] = LOINC_AST;
    }
    for (int k = 0; k < 2 && partner_loincs[k] != NULL; k++) {
        const struct subject_result *res;
        int n = subject_state_results(st, partner_loincs[k], &res);
        for (int i = 0; i < n; i++) {
            const struct subject_result *s = &res[i];
            double m;
            if (!uln_multiple(s, &m) || abs_diff(s->effective_ms, x.effective_ms) > ru->window_ms)
                continue;
            bool ok = is_bilirubin ? boundary_at_least(s->value, 3.0 * s->ref_high)
                                   : boundary_above(s->value, 2.0 * s->ref_high);
            if (ok && strcmp(subject_result_id(s), subject_result_id(&x)) != 0) {
                cand[ncand] = s;
                cand_loinc[ncand] = partner_loincs[k];
                ncand++;
            }
        }
    }

    const struct subject_result *alp;
    int nalp = subject_state_results(st, LOINC_ALP, &alp);

    int written = 0;
    bool used[2 * SUBJECT_STATE_RESULTS_MAX] = {false};
    for (int pick = 0; pick < RULES_HYS_PAIRS_MAX && written < max_out; pick++) {
        /* Nearest partner in time not yet used; ties by (time, id) order,
         * which the state's sorting already gives. */
        int best = -1;
        for (int i = 0; i < ncand; i++) {
            if (used[i])
                continue;
            if (best < 0 || abs_diff(cand[i]->effective_ms, x.effective_ms) <
                                abs_diff(cand[best]->effective_ms, x.effective_ms))
                best = i;
        }
        if (best < 0)
            break;
        used[best] = true;

        const struct subject_result *tx = is_transaminase ? &x : cand[best];
        const struct subject_result *bi = is_transaminase ? cand[best] : &x;
        const char *tx_loinc = is_transaminase ? obs->loinc : cand_loinc[best];

        /* Cholestasis: an ALP >= 2 x ULN within the window of both results
         * explains the pattern. Only ALPs near both count, so an unrelated
         * ALP cannot hide a case. */
        bool suppressed = false;
        const struct subject_result *alp_ev = NULL;
        for (int i = 0; i < nalp && !suppressed; i++) {
            double m;
            if (!uln_multiple(&alp[i], &m) ||
                abs_diff(alp[i].effective_ms, tx->effective_ms) > ru->window_ms ||
                abs_diff(alp[i].effective_ms, bi->effective_ms) > ru->window_ms)
                continue;
            if (boundary_at_least(alp[i].value, 2.0 * alp[i].ref_high))
                suppressed = true;
            else if (alp_ev == NULL || abs_diff(alp[i].effective_ms, bi->effective_ms) <
                                           abs_diff(alp_ev->effective_ms, bi->effective_ms))
                alp_ev = &alp[i];
        }
        if (suppressed)
            continue;

        struct alert *a = &out[written++];
        alert_start(a, ru, obs, ru->severity, 0, now_ms);
        struct idhash h;
        ih_init(&h, "hys_law");
        ih_str(&h, ru->id);
        ih_u64(&h, (uint64_t)(uint32_t)ru->version);
        ih_str(&h, obs->study_id);
        ih_str(&h, obs->subject_id);
        bool tx_first = strcmp(subject_result_id(tx), subject_result_id(bi)) < 0;
        ih_str(&h, tx_first ? subject_result_id(tx) : subject_result_id(bi));
        ih_str(&h, tx_first ? subject_result_id(bi) : subject_result_id(tx));
        ih_hex(&h, a->alert_id);

        add_evidence(a, subject_result_id(tx), tx_loinc, tx->value, clean_canonical_unit(tx_loinc),
                     tx->effective_ms);
        add_evidence(a, subject_result_id(bi), LOINC_BILIRUBIN, bi->value,
                     clean_canonical_unit(LOINC_BILIRUBIN), bi->effective_ms);
        char tx_date[16];
        char bi_date[16];
        char alp_part[96] = "";
        format_date(tx->effective_ms, tx_date);
        format_date(bi->effective_ms, bi_date);
        if (alp_ev != NULL) {
            char alp_date[16];
            format_date(alp_ev->effective_ms, alp_date);
            add_evidence(a, subject_result_id(alp_ev), LOINC_ALP, alp_ev->value,
                         clean_canonical_unit(LOINC_ALP), alp_ev->effective_ms);
            snprintf(alp_part, sizeof alp_part, ", ALP %.1f\xc3\x97ULN on %s",
                     alp_ev->value / alp_ev->ref_high, alp_date);
        }
        snprintf(a->message, sizeof a->message,
                 "Potential Hy's law case: %s %.1f\xc3\x97ULN on %s, total bilirubin "
                 "%.1f\xc3\x97ULN on %s%s",
                 analyte(tx_loinc), tx->value / tx->ref_high, tx_date, bi->value / bi->ref_high,
                 bi_date, alp_part);
    }
    return written;
}

/* The symptom item of OBS if rule RU judges it, else NULL. */
static const struct proctcae_item *pro_item(const struct rule *ru, const struct observation *obs)
{
    const struct proctcae_item *item = proctcae_find(obs->loinc);
    if (item == NULL)
        return NULL;
    int idx = (int)(item - proctcae_item(0));
    if (idx < 0 || idx >= 64 || !(ru->item_mask & ((uint64_t)1 << idx)))
        return NULL;
    return item;
}

static bool eval_pro_score(const struct rule *ru, const struct observation *obs,
                           const struct clean_result *c, int64_t now_ms, struct alert *a)
{
    const struct proctcae_item *item = pro_item(ru, obs);
    if (item == NULL)
        return false;
    int score = (int)c->value;
    if (score < ru->min_score || score > PROCTCAE_SCORE_MAX)
        return false;
    alert_single(a, ru, obs, c, ru->severity_by_score[score], 0, now_ms);
    /* the score is the verdict: an amendment from 3 to 4 is a new alert */
    struct idhash h;
    ih_init(&h, "observation");
    ih_str(&h, ru->id);
    ih_u64(&h, (uint64_t)(uint32_t)ru->version);
    ih_str(&h, obs->observation_id);
    ih_u64(&h, (uint64_t)(uint32_t)score);
    ih_hex(&h, a->alert_id);
    char date[16];
    format_date(obs->effective_ms, date);
    snprintf(a->message, sizeof a->message, "Patient-reported %s %s: %s (%d of %d) on %s (%s %s)",
             item->name, proctcae_attribute_name(item->attribute),
             proctcae_score_label(item->attribute, score), score, item->max_score, date,
             kind_names[ru->kind], ru->id);
    return true;
}

/* The subject's report of the same item just before X (by effective time,
 * then id) among ST's kept results; NULL if none. X itself is skipped. */
static const struct subject_result *previous_report(const struct subject_state *st,
                                                    const struct observation *x)
{
    const struct subject_result *res;
    int n = subject_state_results(st, x->loinc, &res);
    const struct subject_result *prev = NULL;
    for (int i = 0; i < n; i++) {
        const struct subject_result *s = &res[i];
        if (s->effective_ms > x->effective_ms ||
            (s->effective_ms == x->effective_ms &&
             strcmp(subject_result_id(s), x->observation_id) >= 0))
            break;
        prev = s;
    }
    return prev;
}

static bool eval_pro_worsening(const struct rule *ru, const struct subject_state *st,
                               const struct observation *obs, const struct clean_result *c,
                               int64_t now_ms, struct alert *a)
{
    const struct proctcae_item *item = pro_item(ru, obs);
    if (item == NULL)
        return false;
    const struct subject_result *prev = previous_report(st, obs);
    if (prev == NULL || c->value - prev->value < ru->min_increase)
        return false;
    alert_single(a, ru, obs, c, ru->severity, 0, now_ms);
    add_evidence(a, subject_result_id(prev), obs->loinc, prev->value, PROCTCAE_UNIT,
                 prev->effective_ms);
    char date[16], pdate[16];
    format_date(obs->effective_ms, date);
    format_date(prev->effective_ms, pdate);
    int score = (int)c->value, was = (int)prev->value;
    snprintf(a->message, sizeof a->message,
             "Patient-reported %s %s worse by %d: %s (%d) on %s, was %s (%d) on %s (%s %s)",
             item->name, proctcae_attribute_name(item->attribute), score - was,
             proctcae_score_label(item->attribute, score), score, date,
             proctcae_score_label(item->attribute, was), was, pdate, kind_names[ru->kind], ru->id);
    return true;
}

int rules_eval_deps(const struct rules *r, const struct subject_state *st,
                    const struct observation *obs, const struct clean_result *c, int64_t now_ms,
                    unsigned deps, struct alert *out, int max_out)
{
    if (obs->status != OBS_FINAL && obs->status != OBS_AMENDED && obs->status != OBS_CORRECTED)
        return 0;
    if (!obs->has_value || c->status != CLEAN_OK || c->unit == NULL)
        return 0;

    /* The baseline this result is compared with: never itself (an
     * amendment of the baseline, or the baseline re-judged) and never a
     * later result (this one is about to become the baseline). */
    const struct subject_result *base = subject_state_baseline(st, obs->loinc);
    if (base != NULL && (strcmp(subject_result_id(base), obs->observation_id) == 0 ||
                         base->effective_ms > obs->effective_ms))
        base = NULL;

    int n = 0;
    for (int i = 0; i < r->n && n < max_out; i++) {
        const struct rule *ru = &r->rule[i];
        if (!(kind_deps[ru->kind] & deps))
            continue;
        switch (ru->kind) {
        case KIND_THRESHOLD:
            n += eval_threshold(ru, obs, c, now_ms, &out[n]);
            break;
        case KIND_REF_MULTIPLE:
            n += eval_ref_multiple(ru, obs, c, now_ms, &out[n]);
            break;
        case KIND_CTCAE:
            n += eval_ctcae(ru, obs, c, base, now_ms, &out[n]);
            break;
        case KIND_BASELINE_CHANGE:
            n += eval_baseline_change(ru, obs, c, base, now_ms, &out[n]);
            break;
        case KIND_HYS_LAW:
            n += eval_hys_law(ru, st, obs, c, now_ms, &out[n], max_out - n);
            break;
        case KIND_PRO_SCORE:
            n += eval_pro_score(ru, obs, c, now_ms, &out[n]);
            break;
        case KIND_PRO_WORSENING:
            n += eval_pro_worsening(ru, st, obs, c, now_ms, &out[n]);
            break;
        }
    }
    return n;
}

int rules_eval(const struct rules *r, const struct subject_state *st, const struct observation *obs,
               const struct clean_result *c, int64_t now_ms, struct alert *out, int max_out)
{
    return rules_eval_deps(r, st, obs, c, now_ms, RULES_DEP_ALL, out, max_out);
}

unsigned rules_dep(const struct rules *r, const char *rule_id, int32_t version)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->rule[i].id, rule_id) == 0)
            return r->rule[i].version == version ? kind_deps[r->rule[i].kind] : 0;
    return 0;
}

unsigned rules_deps(const struct rules *r)
{
    unsigned d = 0;
    for (int i = 0; i < r->n; i++)
        d |= kind_deps[r->rule[i].kind];
    return d;
}

int64_t rules_pair_window_ms(const struct rules *r)
{
    int64_t w = -1;
    for (int i = 0; i < r->n; i++)
        if (r->rule[i].kind == KIND_HYS_LAW && r->rule[i].window_ms > w)
            w = r->rule[i].window_ms;
    return w;
}
