#include "policy.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "msgbuf.h"

#define FILE_MAX (1 << 20)
#define DEPTH_MAX 16
/* Nodes converted, aliases counted each time they are followed: an alias
 * bomb (anchors of anchors) is refused instead of expanded. */
#define NODES_MAX 100000

/* ---- YAML (and so JSON) to a jansson tree -------------------------------- */

/* Where each mapping of the tree came from (line numbers of the YAML
 * nodes), kept only when a caller wants problems to name lines
 * (policy_from_yaml); jansson's values carry no position of their own. */
struct marks {
    struct mark {
        const json_t *node;
        int line;
    } *v;
    size_t n, cap;
};

static void mark_add(struct marks *m, const json_t *node, int line)
{
    if (m == NULL)
        return;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 16;
        struct mark *v = realloc(m->v, cap * sizeof *v);
        if (v == NULL)
            return; /* a line the messages go without */
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n].node = node;
    m->v[m->n].line = line;
    m->n++;
}

static int mark_line(const struct marks *m, const json_t *node)
{
    for (size_t i = 0; m != NULL && i < m->n; i++)
        if (m->v[i].node == node)
            return m->v[i].line;
    return 0;
}

static json_t *scalar_json(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        char *end;
        long long i = strtoll(v, &end, 10);
        if (*v != '\0' && *end == '\0')
            return json_integer(i);
        if (strcmp(v, "true") == 0)
            return json_true();
        if (strcmp(v, "false") == 0)
            return json_false();
        if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || *v == '\0')
            return json_null();
    }
    return json_stringn(v, n->data.scalar.length);
}

static json_t *node_json(yaml_document_t *doc, yaml_node_t *n, int depth, long *budget,
                         struct marks *m)
{
    if (n == NULL || depth > DEPTH_MAX || --*budget < 0)
        return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return scalar_json(n);
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             a != NULL && it < n->data.sequence.items.top; it++) {
            json_t *v = node_json(doc, yaml_document_get_node(doc, *it), depth + 1, budget, m);
            if (v == NULL || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        if (o != NULL)
            mark_add(m, o, (int)n->start_mark.line + 1);
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
             o != NULL && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                json_decref(o);
                return NULL;
            }
            json_t *v = node_json(doc, yaml_document_get_node(doc, p->value), depth + 1,
                                  budget, m);
            /* _set_new takes V even when it fails (and frees it then) */
            if (v == NULL || json_object_set_new(o, (const char *)k->data.scalar.value, v) != 0) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default:
        return NULL;
    }
}

/* ---- validation ---------------------------------------------------------- */

struct problems {
    struct msgbuf m;
    const char *name;
    int index;
    const struct marks *marks; /* non-NULL: prefix "line N: " instead */
    const json_t *at;          /* the mapping being checked (for its line) */
    int line;                  /* the policy's own line, when AT has none */
};

static void problem(struct problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct problems *p, const char *fmt, ...)
{
    char prefix[POLICY_ID_MAX + 300];
    int line = p->marks != NULL ? mark_line(p->marks, p->at) : 0;
    if (p->marks != NULL)
        snprintf(prefix, sizeof prefix, "line %d: policy: ", line > 0 ? line : p->line);
    else
        snprintf(prefix, sizeof prefix, "%.256s: policy %d: ", p->name, p->index + 1);
    va_list ap;
    va_start(ap, fmt);
    msgbuf_vaddf(&p->m, prefix, fmt, ap);
    va_end(ap);
}

/* Seconds from 900, "900", "900s", "15m", "1h"; -1 if not a duration. */
static long duration_s(const json_t *v)
{
    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (!json_is_string(v))
        return -1;
    const char *s = json_string_value(v);
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || n < 0)
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        return n;
    if (strcmp(end, "m") == 0)
        return n * 60;
    if (strcmp(end, "h") == 0)
        return n * 3600;
    return -1;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > POLICY_ID_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || *s == 0x7f)
            return false;
    return true;
}

static bool target_ok(const char *t)
{
    static const char *const roles[] = {"role:site_coordinator", "role:investigator",
                                        "role:safety_physician", "role:medical_monitor"};
    if (strcmp(t, "subscribers") == 0)
        return true;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(t, roles[i]) == 0)
            return true;
    return strncmp(t, "researcher:", 11) == 0 && id_ok(t + 11);
}

static void deadline(struct problems *p, const json_t *v, const char *what, int *out)
{
    long s = duration_s(v);
    if (s < 0)
        problem(p, "%s must be a duration (seconds, or e.g. 15m, 1h)", what);
    else if (s < POLICY_DEADLINE_MIN_S || s > POLICY_DEADLINE_MAX_S)
        problem(p, "%s %ld s is out of bounds (%d s to %d s)", what, s, POLICY_DEADLINE_MIN_S,
                POLICY_DEADLINE_MAX_S);
    else
        *out = (int)s;
}

static void tier_parse(struct problems *p, const json_t *t, int k, struct policy *pol,
                       struct policy_tier *out)
{
    if (!json_is_object(t)) {
        problem(p, "tier %d must be a mapping (targets, channels, ack_deadline)", k + 1);
        return;
    }
    const json_t *outer = p->at;
    p->at = t; /* this tier's problems name its line */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)t, key, v) {
        if (strcmp(key, "targets") != 0 && strcmp(key, "channels") != 0 &&
            strcmp(key, "ack_deadline") != 0)
            problem(p, "tier %d: unknown key '%s'", k + 1, key);
    }
    const json_t *targets = json_object_get(t, "targets");
    if (!json_is_array(targets) || json_array_size(targets) == 0)
        problem(p, "tier %d is empty: it needs targets (subscribers, role:ROLE, researcher:ID)",
                k + 1);
    else if (json_array_size(targets) > POLICY_TARGETS_MAX)
        problem(p, "tier %d has more than %d targets", k + 1, POLICY_TARGETS_MAX);
    else {
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)targets, i, x) {
            const char *s = json_string_value(x);
            if (s == NULL || !target_ok(s)) {
                problem(p,
                        "tier %d: target '%s' is not subscribers, role:site_coordinator, "
                        "role:investigator, role:safety_physician, role:medical_monitor or "
                        "researcher:ID",
                        k + 1, s != NULL ? s : "(not text)");
                continue;
            }
            for (int a = 0; a <= k && a < pol->ntiers + 1; a++) {
                const struct policy_tier *o = a == k ? out : &pol->tiers[a];
                for (int b = 0; b < o->ntargets; b++)
                    if (strcmp(o->targets[b], s) == 0)
                        problem(p,
                                a == k ? "tier %d lists target '%s' twice"
                                       : "tier %d pages '%s' again, already in an earlier tier "
                                         "(a cycle; the last tier repeats by itself)",
                                k + 1, s);
            }
            snprintf(out->targets[out->ntargets++], POLICY_TARGET_MAX + 1, "%s", s);
        }
    }
    const json_t *channels = json_object_get(t, "channels");
    if (!json_is_array(channels) || json_array_size(channels) == 0)
        problem(p, "tier %d needs channels (email, sms, subscribed)", k + 1);
    else {
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)channels, i, x) {
            const char *s = json_string_value(x);
            if (s != NULL && strcmp(s, "email") == 0)
                out->email = true;
            else if (s != NULL && strcmp(s, "sms") == 0)
                out->sms = true;
            else if (s != NULL && strcmp(s, "subscribed") == 0)
                out->subscribed = true;
            else
                problem(p, "tier %d: channel '%s' is not email, sms or subscribed", k + 1,
                        s != NULL ? s : "(not text)");
        }
    }
    char what[48];
    snprintf(what, sizeof what, "tier %d ack_deadline", k + 1);
    if (json_object_get(t, "ack_deadline") == NULL)
        problem(p, "tier %d needs ack_deadline", k + 1);
    else
        deadline(p, json_object_get(t, "ack_deadline"), what, &out->ack_deadline_s);
    p->at = outer;
}

static void policy_parse(struct problems *p, const json_t *o, struct policy *pol)
{
    memset(pol, 0, sizeof *pol);
    pol->repeat_last_s = 900;
    if (!json_is_object(o)) {
        problem(p, "must be a mapping (study, severity, tiers, ...)");
        return;
    }
    const char *key;
    json_t *v;
    static const char *const known[] = {"study", "site", "severity", "repeat_last", "digest",
                                        "tiers"};
    json_object_foreach((json_t *)o, key, v) {
        bool ok = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            ok = ok || strcmp(key, known[i]) == 0;
        if (!ok)
            problem(p, "unknown key '%s'", key);
    }
    const char *study = json_string_value(json_object_get(o, "study"));
    if (study == NULL || !id_ok(study))
        problem(p, "study must be a study id");
    else
        snprintf(pol->study, sizeof pol->study, "%s", study);
    const json_t *site = json_object_get(o, "site");
    if (site != NULL && !json_is_null(site)) {
        const char *s = json_string_value(site);
        if (s == NULL || !id_ok(s))
            problem(p, "site must be a site id (or absent: every site)");
        else
            snprintf(pol->site, sizeof pol->site, "%s", s);
    }
    const char *sev = json_string_value(json_object_get(o, "severity"));
    if (sev == NULL || (strcmp(sev, "critical") != 0 && strcmp(sev, "warning") != 0))
        problem(p, "severity must be critical or warning");
    else
        snprintf(pol->severity, sizeof pol->severity, "%s", sev);
    const json_t *digest = json_object_get(o, "digest");
    if (digest != NULL && !json_is_boolean(digest))
        problem(p, "digest must be true or false");
    pol->digest = json_is_true(digest);
    if (json_object_get(o, "repeat_last") != NULL)
        deadline(p, json_object_get(o, "repeat_last"), "repeat_last", &pol->repeat_last_s);
    const json_t *tiers = json_object_get(o, "tiers");
    size_t nt = json_is_array(tiers) ? json_array_size(tiers) : 0;
    if (tiers != NULL && !json_is_array(tiers))
        problem(p, "tiers must be a list");
    if (sev != NULL && strcmp(sev, "critical") == 0 && nt == 0)
        problem(p, "a critical policy needs at least one tier");
    if (sev != NULL && strcmp(sev, "warning") == 0 && nt > 0)
        problem(p, "warning alerts do not escalate: no tiers (digest: true sends a daily "
                   "digest)");
    if (nt > POLICY_TIERS_MAX) {
        problem(p, "more than %d tiers", POLICY_TIERS_MAX);
        nt = POLICY_TIERS_MAX;
    }
    for (size_t k = 0; k < nt; k++) {
        tier_parse(p, json_array_get(tiers, k), (int)k, pol, &pol->tiers[k]);
        pol->ntiers = (int)k + 1;
    }
}

int policy_load_text(const char *name, const char *text, size_t len, struct policy *out, int max,
                     char *errstr, size_t errstr_size)
{
    struct problems p = {.name = name};
    msgbuf_init(&p.m, errstr, errstr_size);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errstr, errstr_size, "%s: out of memory", name);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errstr, errstr_size, "%s:%zu:%zu: %s", name, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1,
                 parser.problem != NULL ? parser.problem : "not YAML or JSON");
        yaml_parser_delete(&parser);
        return -1;
    }
    long budget = NODES_MAX;
    json_t *root = node_json(&doc, yaml_document_get_root_node(&doc), 0, &budget, NULL);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (root == NULL) {
        snprintf(errstr, errstr_size, "%s: empty, too deep, too large, or not a mapping of policies", name);
        return -1;
    }
    const json_t *list = json_object_get(root, "policies");
    int n = 0;
    if (list != NULL) {
        if (!json_is_array(list) || json_array_size(list) == 0) {
            snprintf(errstr, errstr_size, "%s: policies must be a non-empty list", name);
            json_decref(root);
            return -1;
        }
        for (size_t i = 0; i < json_array_size(list) && n < max; i++, n++) {
            p.index = n;
            policy_parse(&p, json_array_get(list, i), &out[n]);
        }
        if (json_array_size(list) > (size_t)max)
            problem(&p, "more than %d policies in one file", max);
    } else if (max > 0) {
        policy_parse(&p, root, &out[n++]);
    }
    /* the same (study, site, severity) twice would make the file ambiguous */
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (policy_same_scope(&out[a], &out[b])) {
                p.index = b;
                problem(&p, "same study, site and severity as policy %d", a + 1);
            }
    json_decref(root);
    return p.m.n > 0 ? -1 : n;
}

bool policy_same_scope(const struct policy *a, const struct policy *b)
{
    return strcmp(a->study, b->study) == 0 && strcmp(a->site, b->site) == 0 &&
           strcmp(a->severity, b->severity) == 0;
}

int policy_from_yaml(yaml_document_t *doc, yaml_node_t *node, struct policy *out, char *errstr,
                     size_t errstr_size)
{
    struct marks m = {NULL, 0, 0};
    int line = node != NULL ? (int)node->start_mark.line + 1 : 0;
    struct problems p = {.name = "", .marks = &m, .line = line};
    msgbuf_init(&p.m, errstr, errstr_size);
    long budget = NODES_MAX;
    json_t *j = node_json(doc, node, 0, &budget, &m);
    if (j == NULL) {
        snprintf(errstr, errstr_size,
                 "line %d: policy: too deep, too large, or a key that is not text", line);
        free(m.v);
        return -1;
    }
    p.at = j;
    policy_parse(&p, j, out);
    json_decref(j);
    free(m.v);
    return p.m.n > 0 ? -1 : 0;
}

int policy_load_file(const char *file, struct policy *out, int max, char *errstr,
                     size_t errstr_size)
{
    FILE *f = fopen(file, "rb");
    if (f == NULL) {
        snprintf(errstr, errstr_size, "%s: cannot open", file);
        return -1;
    }
    char *buf = malloc(FILE_MAX + 1);
    size_t n = buf != NULL ? fread(buf, 1, FILE_MAX + 1, f) : 0;
    fclose(f);
    if (buf == NULL || n > FILE_MAX) {
        free(buf);
        snprintf(errstr, errstr_size, "%s: %s", file,
                 buf == NULL ? "out of memory" : "larger than 1 MiB");
        return -1;
    }
    int rc = policy_load_text(file, buf, n, out, max, errstr, errstr_size);
    free(buf);
    return rc;
}
