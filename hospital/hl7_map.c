/*
 * hl7_map: ORU^R01 -> observations (contract and mapping table in
 * hl7_map.h).
 *
 * DESIGN
 *
 * One walk over the segments keeps the context an OBX needs -- its patient
 * (the last PID), its order (the last OBR and the ORC before it) and whether
 * a SPM opened a specimen group -- so nesting that the message structure
 * implies is never rebuilt as a tree. Values are read into fixed buffers:
 * a field longer than its buffer is an error, not an allocation.
 *
 * Partial forwarding. A message that has one unusable OBX among usable ones
 * is answered AE and dead-lettered, but its usable observations are still
 * forwarded first. The alternative -- all or nothing -- looks tidier but
 * means that an interface engine that does not resend AE'd messages (many
 * are set up that way) silently loses a critical value because a neighbour
 * in the panel had a typo. Ids are deterministic, so a later resend of the
 * whole message doubles nothing.
 */
#include "hl7_map.h"

#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "hl7_time.h"

#define VAL_MAX 256 /* a value vigil reads (codes, numbers, times) */

const char *hl7_ack_code_name(enum hl7_ack_code c)
{
    switch (c) {
    case HL7_AA: return "AA";
    case HL7_AE: return "AE";
    case HL7_AR: return "AR";
    }
    return "AE";
}

struct hl7_mapped *hl7_mapped_new(void)
{
    return calloc(1, sizeof(struct hl7_mapped));
}

void hl7_mapped_destroy(struct hl7_mapped *r)
{
    if (r == NULL)
        return;
    free(r->obs);
    free(r->ranks);
    free(r);
}

static void reset(struct hl7_mapped *r)
{
    struct observation *obs = r->obs;
    size_t cap = r->cap_obs;
    struct hl7_rank *ranks = r->ranks;
    size_t cap_ranks = r->cap_ranks;
    memset(r, 0, sizeof *r);
    r->obs = obs;
    r->cap_obs = cap;
    r->ranks = ranks;
    r->cap_ranks = cap_ranks;
}

static void add_error(struct hl7_mapped *r, const char *seg, int seq, int field, int comp,
                      int code, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

static void add_error(struct hl7_mapped *r, const char *seg, int seq, int field, int comp,
                      int code, const char *cls, const char *fmt, ...)
{
    if (r->n_err == HL7_MAX_ERRORS) {
        r->errors_dropped++;
        return;
    }
    struct hl7_error *e = &r->err[r->n_err++];
    snprintf(e->segment, sizeof e->segment, "%s", seg);
    e->seq = seq;
    e->field = field;
    e->comp = comp;
    e->code = code;
    snprintf(e->cls, sizeof e->cls, "%s", cls);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
}

int hl7_number(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    const char *end = p;
    while (*p == ' ' || *p == '\t')
        p++;
    if (digits == 0 || *p != '\0' || end - s > 64)
        return -1;
    char buf[72];
    memcpy(buf, s, (size_t)(end - s));
    buf[end - s] = '\0';
    char *e;
    double v = strtod(buf, &e);
    if (*e != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

enum cmp { CMP_NONE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

/* Reads a leading comparator of S; returns it and advances *S. */
static enum cmp comparator(const char **s)
{
    const char *p = *s;
    while (*p == ' ')
        p++;
    enum cmp c = CMP_NONE;
    if (p[0] == '<' && p[1] == '=') {
        c = CMP_LE;
        p += 2;
    } else if (p[0] == '>' && p[1] == '=') {
        c = CMP_GE;
        p += 2;
    } else if (p[0] == '<') {
        c = CMP_LT;
        p++;
    } else if (p[0] == '>') {
        c = CMP_GT;
        p++;
    }
    *s = p;
    return c;
}

/* The value a censored result is forwarded as (see hl7_map.h). */
static double censored(enum cmp c, double bound)
{
    switch (c) {
    case CMP_LT: return nextafter(bound, -INFINITY);
    case CMP_GT: return nextafter(bound, INFINITY);
    default: return bound;
    }
}

/* A number, optionally censored ("<0.5", "<= 3"). Returns 0 or -1. */
static int censored_number(const char *s, double *out)
{
    enum cmp c = comparator(&s);
    double v;
    if (hl7_number(s, &v) != 0)
        return -1;
    *out = censored(c, v);
    return 0;
}

static int parse_ref(const char *s, struct observation *o)
{
    const char *p = s;
    enum cmp c = comparator(&p);
    double v;
    if (c != CMP_NONE) {
        if (hl7_number(p, &v) != 0)
            return -1;
        if (c == CMP_GT || c == CMP_GE) {
            o->has_ref_low = true;
            o->ref_low = v;
        } else {
            o->has_ref_high = true;
            o->ref_high = v;
        }
        return 0;
    }
    /* low-high: the separating '-' is the first one after a digit. */
    const char *dash = NULL;
    for (const char *q = s; *q; q++)
        if (*q == '-' && q > s && (isdigit((unsigned char)q[-1]) || q[-1] == ' ' || q[-1] == '.')) {
            const char *b = q - 1;
            while (b > s && *b == ' ')
                b--;
            if (isdigit((unsigned char)*b) || *b == '.') {
                dash = q;
                break;
            }
        }
    if (dash == NULL || dash - s >= 64)
        return -1;
    char lo[64];
    memcpy(lo, s, (size_t)(dash - s));
    lo[dash - s] = '\0';
    double a, b;
    if (hl7_number(lo, &a) != 0 || hl7_number(dash + 1, &b) != 0 || a > b)
        return -1;
    o->has_ref_low = o->has_ref_high = true;
    o->ref_low = a;
    o->ref_high = b;
    return 0;
}

/* Context of the segment walk. */
struct ctx {
    const struct hl7_msg *m;
    const struct hl7_facilities *fac;
    const struct hl7_facility *f; /* may be NULL: not listed */
    const struct hl7_tz *tz;      /* may be NULL: none configured */
    struct hl7_mapped *r;
    const struct hl7_enrolment *patient; /* NULL: not enrolled */
    char patient_key[VAL_MAX];           /* for the fallback order key */
    long obr, orc;                        /* current order's segments, -1 if none */
    int obr_seq;
    bool in_specimen;
    char order[4 * VAL_MAX];
    int64_t issued_ms;
    int64_t msh_ms;
};

static long get(const struct ctx *c, long seg, int field, int rep, int comp, char *out,
                size_t outsz)
{
    if (seg < 0) {
        out[0] = '\0';
        return 0;
    }
    return hl7_get(c->m, (size_t)seg, field, rep, comp, 1, out, outsz);
}

static void find_patient(struct ctx *c, size_t pid, const struct hl7_enrol *en)
{
    char id[VAL_MAX], auth[VAL_MAX];
    c->patient = NULL;
    c->patient_key[0] = '\0';
    int reps = hl7_repetitions(c->m, pid, 3);
    for (int i = 1; i <= reps && c->patient == NULL; i++) {
        if (hl7_get(c->m, pid, 3, i, 1, 1, id, sizeof id) <= 0)
            continue;
        if (hl7_get(c->m, pid, 3, i, 4, 1, auth, sizeof auth) < 0)
            auth[0] = '\0';
        c->patient = hl7_enrol_find(en, c->r->facility, id, auth);
        if (c->patient != NULL)
            snprintf(c->patient_key, sizeof c->patient_key, "%s", c->patient->subject_id);
    }
}

/* Sets c->order for the order segment OBR (and ORC before it). */
static void order_key(struct ctx *c)
{
    static const struct {
        bool obr;
        int field;
    } src[] = {{true, 3}, {false, 3}, {true, 2}, {false, 2}};
    char id[VAL_MAX], ns[VAL_MAX];
    for (size_t i = 0; i < sizeof src / sizeof src[0]; i++) {
        long seg = src[i].obr ? c->obr : c->orc;
        if (get(c, seg, src[i].field, 1, 1, id, sizeof id) <= 0)
            continue;
        if (get(c, seg, src[i].field, 1, 2, ns, sizeof ns) < 0)
            ns[0] = '\0';
        snprintf(c->order, sizeof c->order, "%s:%s^%s", i % 2 == 0 ? "F" : "P", id, ns);
        return;
    }
    /* No order number at all: the patient, the test and its time. */
    char test[VAL_MAX], when[VAL_MAX];
    if (get(c, c->obr, 4, 1, 1, test, sizeof test) < 0)
        test[0] = '\0';
    if (get(c, c->obr, 7, 1, 1, when, sizeof when) < 0)
        when[0] = '\0';
    snprintf(c->order, sizeof c->order, "C:%s^%s^%s", c->patient_key, test, when);
}

static void make_id(const struct ctx *c, const char *code, const char *system, const char *subid,
                    int rank, char *out, size_t outsz)
{
    char buf[8 * VAL_MAX + 2 * HL7_FACILITY_MAX + 64];
    int n = snprintf(buf, sizeof buf, "%s%c%s%c%s%c%s%c%s%c%d", c->r->facility, 0, c->order, 0,
                     code, 0, system, 0, subid, 0, rank);
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (n < 0 || (size_t)n >= sizeof buf ||
        EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1) {
        out[0] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    size_t o = (size_t)snprintf(out, outsz, "h7-");
    for (unsigned i = 0; i < 20 && o + 2 < outsz; i++) {
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
}

/* The rank of an OBX among the earlier OBX of its order with the same
 * OBX-3 code and system and no OBX-4 (0 for the first): what tells two
 * such results apart in their ids. One pass keeps a count per code, so a
 * large order costs a table lookup per OBX, not a rescan of the order. */
static int rank_next(struct hl7_mapped *r, const char *code, const char *system)
{
    uint64_t h = hash_str(system, hash_bytes("", 1, hash_str(code, HASH_SEED)));
    for (size_t i = 0; i < r->n_ranks; i++)
        if (r->ranks[i].h == h)
            return r->ranks[i].n++;
    if (r->n_ranks == r->cap_ranks) {
        size_t cap = r->cap_ranks ? r->cap_ranks * 2 : 32;
        struct hl7_rank *p = realloc(r->ranks, cap * sizeof *p);
        if (p == NULL)
            return -1;
        r->ranks = p;
        r->cap_ranks = cap;
    }
    r->ranks[r->n_ranks].h = h;
    r->ranks[r->n_ranks].n = 1;
    r->n_ranks++;
    return 0;
}

static bool is_ln(const char *system)
{
    return strcmp(system, "LN") == 0 || strcmp(system, "LOINC") == 0;
}

static int map_status(const char *s, enum obs_status *out, bool *skip)
{
    *skip = false;
    if (s[0] == '\0' || s[1] != '\0')
        return -1;
    switch (s[0]) {
    case 'F':
    case 'U': *out = OBS_FINAL; return 0;
    case 'C': *out = OBS_CORRECTED; return 0;
    case 'A': *out = OBS_AMENDED; return 0;
    case 'X': *out = OBS_CANCELLED; return 0;
    case 'D':
    case 'W': *out = OBS_ENTERED_IN_ERROR; return 0;
    case 'P':
    case 'R':
    case 'S':
    case 'I':
    case 'O':
    case 'N': *skip = true; return 0;
    default: return -1;
    }
}

/* Reads OBX-5 by OBX-2 into O. Returns 0, or -1 (error recorded). */
static int map_value(struct ctx *c, size_t seg, int seq, const char *type, struct observation *o)
{
    struct hl7_mapped *r = c->r;
    char v[VAL_MAX];
    int reps = hl7_repetitions(c->m, seg, 5);
    bool nm = strcmp(type, "NM") == 0, sn = strcmp(type, "SN") == 0;
    bool text = strcmp(type, "ST") == 0 || strcmp(type, "TX") == 0 || strcmp(type, "FT") == 0;
    if (reps == 0) {
        r->no_value++;
        return 0;
    }
    if (!(nm || sn || text)) {
        r->no_value++; /* coded and other types: stored, never analysed */
        return 0;
    }
    if (reps > 1) {
        if (text) {
            r->no_value++; /* multi-line text */
            return 0;
        }
        add_error(r, "OBX", seq, 5, 0, 102, "bad_value",
                  "OBX-5 repeats, but OBX-2 %s holds one value", type);
        return -1;
    }
    if (nm || text) {
        long n = hl7_get(c->m, seg, 5, 1, 1, 1, v, sizeof v);
        double x;
        if (n >= 0 && censored_number(v, &x) == 0) {
            o->has_value = true;
            o->value = x;
            return 0;
        }
        if (text) {
            r->no_value++;
            return 0;
        }
        add_error(r, "OBX", seq, 5, 0, 102, "bad_value", "OBX-5 is not a number (OBX-2 NM)");
        return -1;
    }
    /* SN: comparator ^ num1 ^ separator/suffix ^ num2 */
    char cmp[16], n1[VAL_MAX], sep[16], n2[VAL_MAX];
    if (hl7_get(c->m, seg, 5, 1, 1, 1, cmp, sizeof cmp) < 0 ||
        hl7_get(c->m, seg, 5, 1, 2, 1, n1, sizeof n1) < 0 ||
        hl7_get(c->m, seg, 5, 1, 3, 1, sep, sizeof sep) < 0 ||
        hl7_get(c->m, seg, 5, 1, 4, 1, n2, sizeof n2) < 0)
        goto bad_sn;
    const char *cp = cmp;
    enum cmp k = comparator(&cp);
    double a, b;
    if (*cp != '\0' || (cmp[0] != '\0' && k == CMP_NONE)) {
        if (strcmp(cmp, "<>") == 0 || strcmp(cmp, "=") == 0) {
            if (strcmp(cmp, "=") == 0 && sep[0] == '\0' && hl7_number(n1, &a) == 0) {
                o->has_value = true;
                o->value = a;
                return 0;
            }
            r->no_value++;
            return 0;
        }
        goto bad_sn;
    }
    if (hl7_number(n1, &a) != 0)
        goto bad_sn;
    if (sep[0] == '\0' && n2[0] == '\0') {
        o->has_value = true;
        o->value = censored(k, a);
        return 0;
    }
    if (k == CMP_NONE && strcmp(sep, "-") == 0 && hl7_number(n2, &b) == 0 && a <= b) {
        o->has_value = true;
        o->value = a + (b - a) / 2;
        return 0;
    }
    if (strcmp(sep, ":") == 0 || strcmp(sep, "/") == 0 || strcmp(sep, "+") == 0 ||
        strcmp(sep, ".") == 0) {
        r->no_value++; /* ratio or category */
        return 0;
    }
bad_sn:
    add_error(r, "OBX", seq, 5, 0, 102, "bad_value",
              "OBX-5 is not a structured numeric (OBX-2 SN: comparator^number or ^low^-^high)");
    return -1;
}

static int map_time(struct ctx *c, long seg, const char *name, int seq, int field, int64_t *out,
                    bool *present)
{
    char v[VAL_MAX], why[256];
    *present = false;
    if (get(c, seg, field, 1, 1, v, sizeof v) <= 0)
        return 0;
    *present = true;
    bool has_offset = strchr(v, '+') != NULL || strchr(v, '-') != NULL;
    if (!has_offset && c->tz == NULL) {
        add_error(c->r, name, seq, field, 0, 207, "no_time_zone",
                  "%s-%d has no UTC offset and facility %s has no time zone "
                  "(facilities file: time_zone or default_time_zone)",
                  name, field, c->r->facility);
        return -1;
    }
    if (hl7_time_parse(v, c->tz, out, why, sizeof why) != 0) {
        add_error(c->r, name, seq, field, 0, 102, "bad_time",
                  "%s-%d is not an HL7 date/time (YYYYMMDDHHMM[SS][+/-ZZZZ])", name, field);
        return -1;
    }
    return 0;
}

/* Maps one OBX; forwards it or records why not. */
static void map_obx(struct ctx *c, size_t seg, int seq, int rank)
{
    struct hl7_mapped *r = c->r;
    r->obx_total++;
    if (c->in_specimen) {
        r->skipped_specimen++;
        return;
    }
    char code[VAL_MAX], sys[VAL_MAX], acode[VAL_MAX], asys[VAL_MAX], subid[VAL_MAX];
    if (hl7_get(c->m, seg, 3, 1, 1, 1, code, sizeof code) < 0 ||
        hl7_get(c->m, seg, 3, 1, 3, 1, sys, sizeof sys) < 0 ||
        hl7_get(c->m, seg, 3, 1, 4, 1, acode, sizeof acode) < 0 ||
        hl7_get(c->m, seg, 3, 1, 6, 1, asys, sizeof asys) < 0) {
        add_error(r, "OBX", seq, 3, 0, 102, "bad_code", "OBX-3 is too long");
        return;
    }
    if (code[0] == '\0' && acode[0] == '\0') {
        add_error(r, "OBX", seq, 3, 0, 101, "no_code", "OBX-3 (observation identifier) is empty");
        return;
    }
    if (hl7_get(c->m, seg, 4, 1, 1, 1, subid, sizeof subid) < 0) {
        add_error(r, "OBX", seq, 4, 0, 102, "bad_subid", "OBX-4 is too long");
        return;
    }
    const char *loinc = NULL, *default_unit = "";
    if (is_ln(sys)) {
        loinc = code;
        if (!hl7_loinc_valid(loinc)) {
            add_error(r, "OBX", seq, 3, 1, 102, "bad_loinc",
                      "OBX-3 code %.20s is not a LOINC code (digits, '-', check digit)", code);
            return;
        }
    } else if (is_ln(asys)) {
        loinc = acode;
        if (!hl7_loinc_valid(loinc)) {
            add_error(r, "OBX", seq, 3, 4, 102, "bad_loinc",
                      "OBX-3 alternate code %.20s is not a LOINC code", acode);
            return;
        }
    } else {
        loinc = hl7_facility_loinc(c->f, code, sys, &default_unit);
        if (loinc == NULL && acode[0] != '\0')
            loinc = hl7_facility_loinc(c->f, acode, asys, &default_unit);
        if (loinc == NULL) {
            r->skipped_unmapped++;
            return;
        }
    }

    char st[16];
    enum obs_status status = OBS_FINAL;
    bool skip;
    if (hl7_get(c->m, seg, 11, 1, 1, 1, st, sizeof st) < 0 || map_status(st, &status, &skip) != 0) {
        if (st[0] == '\0')
            add_error(r, "OBX", seq, 11, 0, 101, "no_status",
                      "OBX-11 (result status) is empty for %.20s", code);
        else
            add_error(r, "OBX", seq, 11, 0, 103, "bad_status",
                      "OBX-11 result status is not one of HL7 table 0085 (F C A U X D W P R S I O N)");
        return;
    }
    if (skip) {
        r->skipped_not_final++;
        return;
    }

    struct observation o;
    memset(&o, 0, sizeof o);
    o.status = status;
    snprintf(o.loinc, sizeof o.loinc, "%.*s", OBS_LOINC_MAX, loinc);
    char type[16];
    if (hl7_get(c->m, seg, 2, 1, 1, 1, type, sizeof type) < 0)
        type[0] = '\0';
    if (status != OBS_CANCELLED && status != OBS_ENTERED_IN_ERROR &&
        map_value(c, seg, seq, type, &o) != 0)
        return;

    char unit[VAL_MAX];
    if (hl7_get(c->m, seg, 6, 1, 1, 1, unit, sizeof unit) < 0 ||
        (unit[0] == '\0' && hl7_get(c->m, seg, 6, 1, 2, 1, unit, sizeof unit) < 0)) {
        add_error(r, "OBX", seq, 6, 0, 102, "bad_unit", "OBX-6 unit is too long");
        return;
    }
    const char *u = unit[0] ? hl7_facilities_unit(c->fac, c->f, unit) : default_unit;
    if (strlen(u) > OBS_UNIT_MAX) {
        add_error(r, "OBX", seq, 6, 0, 102, "bad_unit", "OBX-6 unit is longer than %d bytes",
                  OBS_UNIT_MAX);
        return;
    }
    snprintf(o.unit, sizeof o.unit, "%s", u);

    char ref[VAL_MAX];
    if (hl7_get(c->m, seg, 7, 1, 1, 1, ref, sizeof ref) > 0 && parse_ref(ref, &o) != 0)
        r->ref_unparsed++;

    bool present;
    if (map_time(c, (long)seg, "OBX", seq, 14, &o.effective_ms, &present) != 0)
        return;
    if (!present) {
        if (map_time(c, c->obr, "OBR", c->obr_seq, 7, &o.effective_ms, &present) != 0)
            return;
        if (!present) {
            add_error(r, "OBX", seq, 14, 0, 101, "no_time",
                      "no observation time: OBX-14 and OBR-7 are both empty");
            return;
        }
    }
    o.issued_ms = c->issued_ms;
    if (o.issued_ms == 0) {
        int64_t t;
        bool p2;
        int n = r->n_err;
        if (map_time(c, (long)seg, "OBX", seq, 19, &t, &p2) == 0 && p2)
            o.issued_ms = t;
        r->n_err = n; /* issued is optional: a bad OBX-19 is not an error */
        if (o.issued_ms == 0)
            o.issued_ms = c->msh_ms;
    }

    if (rank < 0) {
        add_error(r, "OBX", seq, 0, 0, 207, "out_of_memory", "out of memory");
        return;
    }
    make_id(c, code, sys, subid, rank, o.observation_id, sizeof o.observation_id);
    snprintf(o.study_id, sizeof o.study_id, "%s", c->patient->study_id);
    snprintf(o.site_id, sizeof o.site_id, "%s", c->patient->site_id);
    snprintf(o.subject_id, sizeof o.subject_id, "%s", c->patient->subject_id);

    if (r->n_obs == r->cap_obs) {
        size_t cap = r->cap_obs ? r->cap_obs * 2 : 16;
        struct observation *p = realloc(r->obs, cap * sizeof *p);
        if (p == NULL) {
            add_error(r, "OBX", seq, 0, 0, 207, "out_of_memory", "out of memory");
            return;
        }
        r->obs = p;
        r->cap_obs = cap;
    }
    r->obs[r->n_obs++] = o;
}

static bool version_ok(const char *v)
{
    static const char *const ok[] = {"2.3", "2.3.1", "2.4", "2.5", "2.5.1"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(v, ok[i]) == 0)
            return true;
    return false;
}

/* MSH checks. Returns 0, or -1 (AR, error recorded). */
static int check_header(struct ctx *c, const struct hl7_map_options *opt)
{
    struct hl7_mapped *r = c->r;
    char v[VAL_MAX], e[VAL_MAX];
    if (hl7_get(c->m, 0, 4, 1, 1, 1, r->facility, sizeof r->facility) <= 0 &&
        hl7_get(c->m, 0, 4, 1, 2, 1, r->facility, sizeof r->facility) <= 0) {
        add_error(r, "MSH", 1, 4, 0, 101, "no_facility",
                  "MSH-4 (sending facility) is empty or longer than %d bytes", HL7_FACILITY_MAX);
        return -1;
    }
    if (hl7_get(c->m, 0, 10, 1, 1, 1, v, sizeof v) <= 0) {
        add_error(r, "MSH", 1, 10, 0, 101, "no_control_id",
                  "MSH-10 (message control id) is empty or too long");
        return -1;
    }
    if (hl7_get(c->m, 0, 9, 1, 1, 1, v, sizeof v) < 0 || strcmp(v, "ORU") != 0) {
        add_error(r, "MSH", 1, 9, 1, 200, "unsupported_message_type",
                  "message type %.8s is not supported: vigil accepts ORU^R01", v);
        return -1;
    }
    if (hl7_get(c->m, 0, 9, 1, 2, 1, e, sizeof e) < 0 || strcmp(e, "R01") != 0) {
        add_error(r, "MSH", 1, 9, 2, 201, "unsupported_event",
                  "event %.8s is not supported: vigil accepts ORU^R01", e);
        return -1;
    }
    if (hl7_get(c->m, 0, 12, 1, 1, 1, v, sizeof v) < 0 || !version_ok(v)) {
        add_error(r, "MSH", 1, 12, 0, 203, "unsupported_version",
                  "HL7 version %.8s is not supported: vigil accepts 2.3 to 2.5.1", v);
        return -1;
    }
    const char *ids = opt && opt->processing_ids ? opt->processing_ids : "P";
    if (hl7_get(c->m, 0, 11, 1, 1, 1, v, sizeof v) < 0 || strlen(v) != 1 ||
        strchr(ids, v[0]) == NULL) {
        add_error(r, "MSH", 1, 11, 0, 202, "unsupported_processing_id",
                  "processing id (MSH-11) %.8s is not accepted here (accepted: %s)", v, ids);
        return -1;
    }
    return 0;
}

enum hl7_ack_code hl7_map_message(const struct hl7_msg *m, const struct hl7_facilities *fac,
                                  const struct hl7_enrol *en, const struct hl7_map_options *opt,
                                  struct hl7_mapped *r)
{
    reset(r);
    struct ctx c = {.m = m, .fac = fac, .r = r, .obr = -1, .orc = -1};
    if (check_header(&c, opt) != 0) {
        r->ack = HL7_AR;
        return r->ack;
    }
    c.f = hl7_facilities_find(fac, r->facility);
    c.tz = hl7_facilities_zone(fac, c.f);
    {
        int64_t t;
        bool p;
        int n = r->n_err;
        if (map_time(&c, 0, "MSH", 1, 7, &t, &p) == 0 && p)
            c.msh_ms = t;
        r->n_err = n;
    }

    size_t nseg = hl7_segment_count(m);
    int obx_seq = 0, obr_seq = 0, pid_seq = 0;
    long pending_orc = -1;
    bool any_pid = false;
    for (size_t i = 1; i < nseg; i++) {
        const char *name = hl7_segment_name(m, i);
        if (strcmp(name, "PID") == 0) {
            pid_seq++;
            any_pid = true;
            find_patient(&c, i, en);
            c.obr = c.orc = pending_orc = -1;
            c.in_specimen = false;
            if (c.patient != NULL && !r->enrolled) {
                r->enrolled = true;
                snprintf(r->study_id, sizeof r->study_id, "%s", c.patient->study_id);
                snprintf(r->subject_id, sizeof r->subject_id, "%s", c.patient->subject_id);
            }
        } else if (strcmp(name, "ORC") == 0) {
            pending_orc = (long)i;
        } else if (strcmp(name, "OBR") == 0) {
            obr_seq++;
            c.obr = (long)i;
            c.obr_seq = obr_seq;
            c.orc = pending_orc;
            pending_orc = -1;
            c.in_specimen = false;
            r->n_ranks = 0;
            if (c.patient == NULL)
                continue;
            order_key(&c);
            c.issued_ms = 0;
            int64_t t;
            bool p;
            int n = r->n_err;
            if (map_time(&c, c.obr, "OBR", obr_seq, 22, &t, &p) == 0 && p)
                c.issued_ms = t;
            r->n_err = n;
        } else if (strcmp(name, "SPM") == 0) {
            c.in_specimen = true;
        } else if (strcmp(name, "OBX") == 0) {
            obx_seq++;
            if (c.patient == NULL)
                continue;
            if (c.obr < 0) {
                r->obx_total++;
                add_error(r, "OBX", obx_seq, 0, 0, 100, "obx_without_obr",
                          "OBX %d comes before any OBR of its patient", obx_seq);
                continue;
            }
            if (r->obx_total >= HL7_MAX_OBX) {
                add_error(r, "OBX", obx_seq, 0, 0, 207, "too_many_obx",
                          "more than %d OBX in one message", HL7_MAX_OBX);
                break;
            }
            char code[VAL_MAX], sys[VAL_MAX], subid[8];
            int rank = 0;
            if (hl7_get(m, i, 4, 1, 1, 1, subid, sizeof subid) == 0 &&
                hl7_get(m, i, 3, 1, 1, 1, code, sizeof code) >= 0 &&
                hl7_get(m, i, 3, 1, 3, 1, sys, sizeof sys) >= 0)
                rank = rank_next(r, code, sys);
            map_obx(&c, i, obx_seq, rank);
        }
    }
    if (!any_pid) {
        add_error(r, "PID", 0, 0, 0, 100, "no_pid", "the message has no PID segment");
        r->ack = HL7_AE;
        return r->ack;
    }
    if (!r->enrolled) {
        r->ack = HL7_AA;
        return r->ack;
    }
    if (r->n_err > 0 || r->errors_dropped > 0) {
        r->ack = HL7_AE;
    } else if (r->n_obs == 0 && r->skipped_not_final == 0) {
        add_error(r, "OBX", 0, 0, 0, 101, "no_usable_obx",
                  "no usable OBX: %u OBX, %u with codes neither LOINC nor in facility %s's "
                  "code table, %u specimen OBX",
                  r->obx_total, r->skipped_unmapped, r->facility, r->skipped_specimen);
        r->ack = HL7_AE;
    } else {
        r->ack = HL7_AA;
    }
    return r->ack;
}
