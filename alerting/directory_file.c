/*
 * directory_file: directory records and the YAML reader (directory_file.h).
 *
 * DESIGN. libyaml's document API (the library policy.c already uses) keeps
 * every node's start mark, so each problem names the line of the node at
 * fault; policies are handed node and document to policy_from_yaml, the
 * one policy parser. The reader collects every problem it finds instead of
 * stopping at the first, up to the message buffer's size, so an operator
 * fixes a file in one round. Values are checked for shape here (required
 * keys, severities, channels); the tables' constraints check the rest when
 * directory_import writes them, and that names the record's line too.
 */
#include "directory_file.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "msgbuf.h"

struct directory_file {
    struct directory_record *rec;
    int n, cap;
    int npolicies;
};

struct directory_file *directory_file_new(void)
{
    return calloc(1, sizeof(struct directory_file));
}

static void record_free(struct directory_record *r)
{
    free((char *)r->id);
    free((char *)r->name);
    free((char *)r->email);
    free((char *)r->phone);
    free((char *)r->study);
    free((char *)r->site);
    free((char *)r->min_severity);
    free((char *)r->channels);
    free((char *)r->quiet_start);
    free((char *)r->quiet_end);
    free((char *)r->quiet_zone);
    free((struct policy *)r->policy);
}

void directory_file_destroy(struct directory_file *f)
{
    if (f == NULL)
        return;
    for (int i = 0; i < f->n; i++)
        record_free(&f->rec[i]);
    free(f->rec);
    free(f);
}

int directory_file_count(const struct directory_file *f)
{
    return f->n;
}

const struct directory_record *directory_file_record(const struct directory_file *f, int i)
{
    return &f->rec[i];
}

/* strdup of S; *OK cleared when out of memory (NULL stays NULL). */
static const char *dup(const char *s, bool *ok)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *ok = false;
    return d;
}

int directory_file_add(struct directory_file *f, const struct directory_record *rec, char *errstr,
                       size_t errstr_size)
{
    if (f->n >= DIRECTORY_FILE_MAX_RECORDS ||
        (rec->kind == DIRECTORY_POLICY && f->npolicies >= DIRECTORY_FILE_MAX_POLICIES)) {
        snprintf(errstr, errstr_size, "line %ld: more than %d %s in one file", rec->line,
                 rec->kind == DIRECTORY_POLICY ? DIRECTORY_FILE_MAX_POLICIES
                                               : DIRECTORY_FILE_MAX_RECORDS,
                 rec->kind == DIRECTORY_POLICY ? "policies" : "records");
        return -1;
    }
    if (f->n == f->cap) {
        int cap = f->cap ? f->cap * 2 : 64;
        struct directory_record *v = realloc(f->rec, (size_t)cap * sizeof *v);
        if (v == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        f->rec = v;
        f->cap = cap;
    }
    bool ok = true;
    struct directory_record r = {
        .kind = rec->kind,
        .line = rec->line,
        .id = dup(rec->id, &ok),
        .name = dup(rec->name, &ok),
        .email = dup(rec->email, &ok),
        .phone = dup(rec->phone, &ok),
        .study = dup(rec->study, &ok),
        .site = dup(rec->site, &ok),
        .min_severity = dup(rec->min_severity, &ok),
        .channels = dup(rec->channels, &ok),
        .quiet = rec->quiet,
        .quiet_start = dup(rec->quiet_start, &ok),
        .quiet_end = dup(rec->quiet_end, &ok),
        .quiet_zone = dup(rec->quiet_zone, &ok),
    };
    if (rec->policy != NULL) {
        struct policy *p = malloc(sizeof *p);
        if (p != NULL)
            memcpy(p, rec->policy, sizeof *p);
        else
            ok = false;
        r.policy = p;
    }
    if (!ok) {
        record_free(&r);
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    f->rec[f->n++] = r;
    if (r.kind == DIRECTORY_POLICY)
        f->npolicies++;
    return 0;
}

bool directory_local_time_valid(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n != 5 && n != 8)
        return false;
    for (size_t i = 0; i < n; i++) {
        bool colon = i == 2 || i == 5;
        if (colon ? s[i] != ':' : (s[i] < '0' || s[i] > '9'))
            return false;
    }
    int hh = (s[0] - '0') * 10 + (s[1] - '0'), mm = (s[3] - '0') * 10 + (s[4] - '0');
    int ss = n == 8 ? (s[6] - '0') * 10 + (s[7] - '0') : 0;
    return hh < 24 && mm < 60 && ss < 60;
}

int directory_quiet_parse(const char *text, struct directory_record *rec, char *buf,
                          size_t bufsz, char *errstr, size_t errstr_size)
{
    static const char form[] = "quiet_hours must be HH:MM-HH:MM ZONE (e.g. 22:00-07:00 "
                               "Europe/Paris) or none";
    if (strcmp(text, "none") == 0) {
        rec->quiet = DIRECTORY_QUIET_REMOVE;
        return 0;
    }
    if (snprintf(buf, bufsz, "%s", text) >= (int)bufsz) {
        snprintf(errstr, errstr_size, "%s", form);
        return -1;
    }
    char *dash = strchr(buf, '-'), *sp = strchr(buf, ' ');
    if (dash == NULL || sp == NULL || sp < dash) {
        snprintf(errstr, errstr_size, "%s", form);
        return -1;
    }
    *dash = '\0';
    *sp = '\0';
    const char *zone = sp + 1;
    while (*zone == ' ')
        zone++;
    if (!directory_local_time_valid(buf) || !directory_local_time_valid(dash + 1) ||
        *zone == '\0') {
        snprintf(errstr, errstr_size, "%s", form);
        return -1;
    }
    if (strcmp(buf, dash + 1) == 0) {
        snprintf(errstr, errstr_size, "quiet_hours: start and end must differ");
        return -1;
    }
    rec->quiet = DIRECTORY_QUIET_SET;
    rec->quiet_start = buf;
    rec->quiet_end = dash + 1;
    rec->quiet_zone = zone;
    return 0;
}

/* ---- YAML ---------------------------------------------------------------- */

struct reader {
    struct directory_file *f;
    yaml_document_t *doc;
    struct msgbuf m;
};

/* A problem with the node AT, named by its line. */
static void problem(struct reader *r, const yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct reader *r, const yaml_node_t *at, const char *fmt, ...)
{
    char prefix[40];
    snprintf(prefix, sizeof prefix, "line %zu: ", at->start_mark.line + 1);
    va_list ap;
    va_start(ap, fmt);
    msgbuf_vaddf(&r->m, prefix, fmt, ap);
    va_end(ap);
}

/* Appends TEXT (already "line N: ..." lines) as problems. */
static void problems_add(struct reader *r, const char *text)
{
    msgbuf_addf(&r->m, "", "%s", text);
}

/* A scalar's text, or NULL for a YAML null (~, null, nothing); *BAD set
 * when the node is not a scalar or holds a NUL byte. */
static const char *scalar(const yaml_node_t *n, bool *bad)
{
    if (n == NULL || n->type != YAML_SCALAR_NODE) {
        *bad = true;
        return NULL;
    }
    const char *v = (const char *)n->data.scalar.value;
    if (strlen(v) != n->data.scalar.length) {
        *bad = true;
        return NULL;
    }
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
        return NULL;
    return v;
}

/* The keys each kind takes; the record's fields in the same order. */
struct shape {
    const char *section;
    enum directory_kind kind;
    const char *keys[6];
    unsigned required; /* bit i: keys[i] is required */
};

static const struct shape shapes[] = {
    {"studies", DIRECTORY_STUDY, {"id", "name"}, 0x3},
    {"sites", DIRECTORY_SITE, {"id", "study", "name"}, 0x7},
    {"researchers", DIRECTORY_RESEARCHER, {"id", "name", "email", "phone", "quiet_hours"}, 0x3},
    {"subscriptions", DIRECTORY_SUBSCRIPTION,
     {"researcher", "study", "site", "min_severity", "channels"}, 0x1b},
};

/* "{email}", "{sms}" or "{email,sms}" from a list (or one word) of
 * channels; NULL after a problem. */
static const char *channels_of(struct reader *r, const yaml_node_t *n)
{
    bool email = false, sms = false, bad = false;
    if (n->type == YAML_SCALAR_NODE) {
        const char *w = scalar(n, &bad);
        email = w != NULL && strcmp(w, "email") == 0;
        sms = w != NULL && strcmp(w, "sms") == 0;
        bad = bad || (!email && !sms);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        for (yaml_node_item_t *it = n->data.sequence.items.start;
             it < n->data.sequence.items.top; it++) {
            const char *w = scalar(yaml_document_get_node(r->doc, *it), &bad);
            if (w != NULL && strcmp(w, "email") == 0)
                email = true;
            else if (w != NULL && strcmp(w, "sms") == 0)
                sms = true;
            else
                bad = true;
        }
    } else {
        bad = true;
    }
    if (bad || (!email && !sms)) {
        problem(r, n, "channels must be a list of email and sms, e.g. [email, sms]");
        return NULL;
    }
    return email && sms ? "{email,sms}" : email ? "{email}" : "{sms}";
}

/* A researcher's quiet_hours: null (remove) or {start, end, time_zone}
 * into Q's quiet fields (pointing into the document). */
static void quiet_of(struct reader *r, const yaml_node_t *n, struct directory_record *q)
{
    bool bad = false;
    if (n != NULL && n->type == YAML_SCALAR_NODE && scalar(n, &bad) == NULL && !bad) {
        q->quiet = DIRECTORY_QUIET_REMOVE;
        return;
    }
    static const char *const keys[] = {"start", "end", "time_zone"};
    const char *val[3] = {NULL};
    if (n == NULL || n->type != YAML_MAPPING_NODE) {
        problem(r, n, "quiet_hours must be {start: \"22:00\", end: \"07:00\", time_zone: "
                      "Europe/Paris} or null");
        return;
    }
    int before = r->m.n;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        yaml_node_t *val_n = yaml_document_get_node(r->doc, p->value);
        const char *key = scalar(k, &bad);
        int i = 0;
        while (key != NULL && i < 3 && strcmp(key, keys[i]) != 0)
            i++;
        if (key == NULL || i == 3) {
            problem(r, k != NULL ? k : n, "unknown key '%s' in quiet_hours (known: start, end, "
                                          "time_zone)",
                    key != NULL ? key : "?");
            continue;
        }
        if (val[i] != NULL) {
            problem(r, k, "key '%s' twice", key);
            continue;
        }
        bad = false;
        val[i] = scalar(val_n, &bad);
        if (bad || val[i] == NULL)
            problem(r, val_n != NULL ? val_n : k, "quiet_hours %s must be text", key);
    }
    if (r->m.n > before)
        return;
    for (int i = 0; i < 3; i++)
        if (val[i] == NULL) {
            problem(r, n, "quiet_hours needs %s", keys[i]);
            return;
        }
    for (int i = 0; i < 2; i++)
        if (!directory_local_time_valid(val[i])) {
            problem(r, n, "quiet_hours %s '%s' is not a time of day HH:MM or HH:MM:SS",
                    keys[i], val[i]);
            return;
        }
    if (strcmp(val[0], val[1]) == 0) {
        problem(r, n, "quiet_hours start and end must differ");
        return;
    }
    q->quiet = DIRECTORY_QUIET_SET;
    q->quiet_start = val[0], q->quiet_end = val[1], q->quiet_zone = val[2];
}

static void entry(struct reader *r, const struct shape *sh, yaml_node_t *n)
{
    if (n->type != YAML_MAPPING_NODE) {
        problem(r, n, "an entry of %s must be a mapping (%s: ..., ...)", sh->section, sh->keys[0]);
        return;
    }
    const char *v[6] = {NULL};
    const yaml_node_t *vn[6] = {NULL};
    struct directory_record q = {.quiet = DIRECTORY_QUIET_KEEP};
    int before = r->m.n;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(r->doc, p->key);
        yaml_node_t *val = yaml_document_get_node(r->doc, p->value);
        bool bad = false;
        const char *key = scalar(k, &bad);
        int i = 0;
        while (key != NULL && i < 6 && sh->keys[i] != NULL && strcmp(key, sh->keys[i]) != 0)
            i++;
        if (key == NULL || i == 6 || sh->keys[i] == NULL) {
            char known[96] = "";
            for (int j = 0; j < 6 && sh->keys[j] != NULL; j++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                         j ? ", " : "", sh->keys[j]);
            problem(r, k != NULL ? k : n, "unknown key '%s' in %s (known: %s)",
                    key != NULL ? key : "?", sh->section, known);
            continue;
        }
        if (vn[i] != NULL) {
            problem(r, k, "key '%s' twice", key);
            continue;
        }
        vn[i] = val;
        if (sh->kind == DIRECTORY_SUBSCRIPTION && i == 4) {
            v[i] = val != NULL ? channels_of(r, val) : NULL;
            continue;
        }
        if (sh->kind == DIRECTORY_RESEARCHER && i == 4) {
            quiet_of(r, val != NULL ? val : k, &q);
            continue;
        }
        v[i] = scalar(val, &bad);
        if (bad)
            problem(r, val != NULL ? val : k, "%s must be text", key);
    }
    for (int i = 0; i < 6 && sh->keys[i] != NULL; i++)
        if ((sh->required >> i & 1u) && v[i] == NULL && vn[i] == NULL)
            problem(r, n, "an entry of %s needs %s", sh->section, sh->keys[i]);
        else if ((sh->required >> i & 1u) && v[i] == NULL && r->m.n == before)
            problem(r, vn[i], "%s must not be empty", sh->keys[i]);
    const char *sev = sh->kind == DIRECTORY_SUBSCRIPTION ? v[3] : NULL;
    if (sev != NULL && strcmp(sev, "info") != 0 && strcmp(sev, "warning") != 0 &&
        strcmp(sev, "critical") != 0)
        problem(r, vn[3], "min_severity '%s' is not info, warning or critical", sev);
    if (r->m.n > before)
        return;
    struct directory_record rec = {.kind = sh->kind, .line = (long)n->start_mark.line + 1};
    switch (sh->kind) {
    case DIRECTORY_STUDY:
        rec.id = v[0], rec.name = v[1];
        break;
    case DIRECTORY_SITE:
        rec.id = v[0], rec.study = v[1], rec.name = v[2];
        break;
    case DIRECTORY_RESEARCHER:
        rec.id = v[0], rec.name = v[1], rec.email = v[2], rec.phone = v[3];
        rec.quiet = q.quiet;
        rec.quiet_start = q.quiet_start, rec.quiet_end = q.quiet_end;
        rec.quiet_zone = q.quiet_zone;
        break;
    default:
        rec.id = v[0], rec.study = v[1], rec.site = v[2], rec.min_severity = v[3];
        rec.channels = v[4];
        break;
    }
    char e[256];
    if (directory_file_add(r->f, &rec, e, sizeof e) != 0)
        problems_add(r, e);
}

static void policy_entry(struct reader *r, yaml_node_t *n, struct policy *pol)
{
    char e[4096];
    if (policy_from_yaml(r->doc, n, pol, e, sizeof e) != 0) {
        problems_add(r, e);
        return;
    }
    struct directory_record rec = {.kind = DIRECTORY_POLICY,
                                   .line = (long)n->start_mark.line + 1,
                                   .policy = pol};
    if (directory_file_add(r->f, &rec, e, sizeof e) != 0)
        problems_add(r, e);
}

static void section(struct reader *r, const char *name, yaml_node_t *k, yaml_node_t *list)
{
    const struct shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(name, shapes[i].section) == 0)
            sh = &shapes[i];
    bool policies = strcmp(name, "policies") == 0;
    if (sh == NULL && !policies) {
        problem(r, k,
                "unknown section '%s' (known: studies, sites, researchers, subscriptions, "
                "policies)",
                name);
        return;
    }
    if (list == NULL || list->type != YAML_SEQUENCE_NODE) {
        bool bad = false;
        if (list != NULL && scalar(list, &bad) == NULL && !bad)
            return; /* "sites:" with nothing under it */
        problem(r, list != NULL ? list : k, "%s must be a list (- ...)", name);
        return;
    }
    struct policy *pol = policies ? malloc(sizeof *pol) : NULL;
    if (policies && pol == NULL) {
        problem(r, k, "out of memory");
        return;
    }
    for (yaml_node_item_t *it = list->data.sequence.items.start;
         it < list->data.sequence.items.top; it++) {
        yaml_node_t *n = yaml_document_get_node(r->doc, *it);
        if (n == NULL)
            continue;
        if (policies)
            policy_entry(r, n, pol);
        else
            entry(r, sh, n);
    }
    free(pol);
}

int directory_file_parse_yaml(struct directory_file *f, const char *text, size_t len,
                              char *errstr, size_t errstr_size)
{
    errstr[0] = '\0';
    if (len > DIRECTORY_FILE_MAX_BYTES) {
        snprintf(errstr, errstr_size, "larger than %d MiB", DIRECTORY_FILE_MAX_BYTES >> 20);
        return -1;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(errstr, errstr_size, "line %zu: not YAML: %s%s%s", parser.problem_mark.line + 1,
                 parser.problem != NULL ? parser.problem : "unreadable",
                 parser.context != NULL ? " " : "", parser.context != NULL ? parser.context : "");
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_parser_delete(&parser);
    struct reader r = {.f = f, .doc = &doc};
    msgbuf_init(&r.m, errstr, errstr_size);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL || root->type != YAML_MAPPING_NODE) {
        if (root == NULL)
            snprintf(errstr, errstr_size, "line 1: empty: nothing to import");
        else
            problem(&r, root,
                    "the file must be a mapping of sections (studies:, sites:, researchers:, "
                    "subscriptions:, policies:)");
        yaml_document_delete(&doc);
        return -1;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        bool bad = false;
        const char *name = scalar(k, &bad);
        if (name == NULL) {
            problem(&r, k != NULL ? k : root, "a section's name must be text");
            continue;
        }
        section(&r, name, k, yaml_document_get_node(&doc, p->value));
    }
    /* the same (study, site, severity) twice would make the file ambiguous */
    const struct policy *seen[DIRECTORY_FILE_MAX_POLICIES];
    long lines[DIRECTORY_FILE_MAX_POLICIES];
    int np = 0;
    for (int i = 0; i < f->n && np < DIRECTORY_FILE_MAX_POLICIES; i++) {
        if (f->rec[i].kind != DIRECTORY_POLICY)
            continue;
        const struct policy *p = f->rec[i].policy;
        for (int a = 0; a < np; a++)
            if (policy_same_scope(seen[a], p)) {
                char e[160];
                snprintf(e, sizeof e, "line %ld: policy: same study, site and severity as the policy of line %ld",
                         f->rec[i].line, lines[a]);
                problems_add(&r, e);
            }
        seen[np] = p;
        lines[np++] = f->rec[i].line;
    }
    yaml_document_delete(&doc);
    return r.m.n > 0 ? -1 : 0;
}
