#include "directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Arrays grow by doubling while the loader adds rows; sealing sorts them so
 * routing is a binary search, not a scan of every subscription. A hash
 * table was rejected: the directory is rebuilt whole on every change and
 * sorting a few thousand rows is cheaper than tuning a table. */

struct researcher {
    char *id;
    char *email; /* NULL if none or malformed */
    char *phone;
    bool active;
};

struct study {
    char *id;
    char *safety_contact; /* NULL if none */
};

struct subscription {
    char *researcher;
    char *study;
    char *site; /* NULL: every site */
    enum alert_severity min_severity;
    unsigned channels;
};

struct directory {
    bool sealed;
    struct researcher *res;
    size_t nres, capres;
    struct study *studies;
    size_t nstudies, capstudies;
    struct subscription *subs;
    size_t nsubs, capsubs;
};

const char *channel_name(enum channel c)
{
    return c == CHANNEL_SMS ? "sms" : "email";
}

int channel_parse(const char *s)
{
    if (strcmp(s, "email") == 0)
        return CHANNEL_EMAIL;
    if (strcmp(s, "sms") == 0)
        return CHANNEL_SMS;
    return -1;
}

struct directory *directory_new(void)
{
    return calloc(1, sizeof(struct directory));
}

void directory_destroy(struct directory *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nres; i++) {
        free(d->res[i].id);
        free(d->res[i].email);
        free(d->res[i].phone);
    }
    for (size_t i = 0; i < d->nstudies; i++) {
        free(d->studies[i].id);
        free(d->studies[i].safety_contact);
    }
    for (size_t i = 0; i < d->nsubs; i++) {
        free(d->subs[i].researcher);
        free(d->subs[i].study);
        free(d->subs[i].site);
    }
    free(d->res);
    free(d->studies);
    free(d->subs);
    free(d);
}

/* Makes room for one more element of size SZ in *ARR. Returns 0 or -1. */
static int grow(void **arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, ncap * sz);
    if (p == NULL)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

static bool id_ok(const char *id)
{
    return id != NULL && id[0] != '\0' && strlen(id) <= RESEARCHER_ID_MAX;
}

/* Email addresses travel in SMTP commands (<addr>) and a To header, so
 * anything that could end or break either is refused. The database check
 * already forbids whitespace; this is the second line. */
static bool email_ok(const char *e)
{
    size_t len = strlen(e);
    if (len < 3 || len > ADDRESS_MAX)
        return false;
    const char *at = strchr(e, '@');
    if (at == NULL || at == e || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (const unsigned char *p = (const unsigned char *)e; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || strchr("<>()[]\\,;:\"", *p) != NULL)
            return false;
    return true;
}

static bool phone_ok(const char *p)
{
    size_t len = strlen(p);
    if (len < 3 || len > 16 || p[0] != '+' || p[1] < '1' || p[1] > '9')
        return false;
    for (size_t i = 1; i < len; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? strdup(s) : NULL;
}

int directory_add_researcher(struct directory *d, const char *id, const char *email,
                             const char *phone, bool active, char *errstr, size_t errstr_size)
{
    if (d->sealed || !id_ok(id)) {
        snprintf(errstr, errstr_size, "researcher id '%.80s' is empty or longer than %d bytes",
                 id ? id : "", RESEARCHER_ID_MAX);
        return -1;
    }
    if (grow((void **)&d->res, d->nres, &d->capres, sizeof *d->res) != 0)
        goto oom;
    int rc = 0;
    errstr[0] = '\0';
    if (email != NULL && email[0] != '\0' && !email_ok(email)) {
        snprintf(errstr, errstr_size, "researcher %s: email address refused (malformed)", id);
        email = NULL;
        rc = 1;
    }
    if (phone != NULL && phone[0] != '\0' && !phone_ok(phone)) {
        snprintf(errstr, errstr_size, "researcher %s: phone number refused (not E.164)", id);
        phone = NULL;
        rc = 1;
    }
    struct researcher r = {strdup(id), dup_or_null(email), dup_or_null(phone), active};
    if (r.id == NULL || (email && email[0] && !r.email) || (phone && phone[0] && !r.phone)) {
        free(r.id);
        free(r.email);
        free(r.phone);
        goto oom;
    }
    d->res[d->nres++] = r;
    return rc;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

int directory_add_study(struct directory *d, const char *id, const char *safety_contact,
                        char *errstr, size_t errstr_size)
{
    if (d->sealed || id == NULL || id[0] == '\0') {
        snprintf(errstr, errstr_size, "study id is empty");
        return -1;
    }
    if (grow((void **)&d->studies, d->nstudies, &d->capstudies, sizeof *d->studies) != 0)
        goto oom;
    struct study s = {strdup(id), dup_or_null(safety_contact)};
    if (s.id == NULL || (safety_contact && safety_contact[0] && !s.safety_contact)) {
        free(s.id);
        free(s.safety_contact);
        goto oom;
    }
    d->studies[d->nstudies++] = s;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

int directory_add_subscription(struct directory *d, const char *researcher, const char *study,
                               const char *site, enum alert_severity min_severity,
                               unsigned channels, char *errstr, size_t errstr_size)
{
    if (d->sealed || !id_ok(researcher) || study == NULL || study[0] == '\0') {
        snprintf(errstr, errstr_size, "subscription of '%.80s' to '%.80s' is incomplete",
                 researcher ? researcher : "", study ? study : "");
        return -1;
    }
    if (grow((void **)&d->subs, d->nsubs, &d->capsubs, sizeof *d->subs) != 0)
        goto oom;
    struct subscription s = {strdup(researcher), strdup(study), dup_or_null(site), min_severity,
                             channels & (CHANNEL_BIT(CHANNEL_EMAIL) | CHANNEL_BIT(CHANNEL_SMS))};
    if (s.researcher == NULL || s.study == NULL || (site && site[0] && !s.site)) {
        free(s.researcher);
        free(s.study);
        free(s.site);
        goto oom;
    }
    d->subs[d->nsubs++] = s;
    return 0;
oom:
    snprintf(errstr, errstr_size, "out of memory");
    return -1;
}

static int cmp_res(const void *a, const void *b)
{
    return strcmp(((const struct researcher *)a)->id, ((const struct researcher *)b)->id);
}

static int cmp_study(const void *a, const void *b)
{
    return strcmp(((const struct study *)a)->id, ((const struct study *)b)->id);
}

/* By study, then researcher, so one study's subscriptions are a run and
 * the route comes out in a stable order. */
static int cmp_sub(const void *a, const void *b)
{
    const struct subscription *x = a, *y = b;
    int c = strcmp(x->study, y->study);
    return c != 0 ? c : strcmp(x->researcher, y->researcher);
}

int directory_seal(struct directory *d)
{
    if (d->nres > 1)
        qsort(d->res, d->nres, sizeof *d->res, cmp_res);
    if (d->nstudies > 1)
        qsort(d->studies, d->nstudies, sizeof *d->studies, cmp_study);
    if (d->nsubs > 1)
        qsort(d->subs, d->nsubs, sizeof *d->subs, cmp_sub);
    d->sealed = true;
    return 0;
}

size_t directory_researchers(const struct directory *d)
{
    return d->nres;
}

size_t directory_subscriptions(const struct directory *d)
{
    return d->nsubs;
}

static const struct researcher *find_researcher(const struct directory *d, const char *id)
{
    struct researcher key = {.id = (char *)id};
    return d->nres ? bsearch(&key, d->res, d->nres, sizeof *d->res, cmp_res) : NULL;
}

static const struct study *find_study(const struct directory *d, const char *id)
{
    struct study key = {.id = (char *)id};
    return d->nstudies ? bsearch(&key, d->studies, d->nstudies, sizeof *d->studies, cmp_study)
                       : NULL;
}

/* Index of the first subscription of STUDY (lower bound). */
static size_t first_sub(const struct directory *d, const char *study)
{
    size_t lo = 0, hi = d->nsubs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(d->subs[mid].study, study) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const char *address_of(const struct researcher *r, enum channel c)
{
    return c == CHANNEL_SMS ? r->phone : r->email;
}

/* Appends (r, c) unless listed already or the researcher has no address
 * for c. Returns true if added. */
static bool add_recipient(struct route_result *out, const struct researcher *r, enum channel c)
{
    const char *addr = address_of(r, c);
    if (addr == NULL)
        return false;
    for (int i = 0; i < out->n; i++)
        if (out->r[i].channel == c && strcmp(out->r[i].researcher_id, r->id) == 0)
            return false;
    if (out->n >= ROUTE_MAX_RECIPIENTS) {
        out->dropped++;
        return false;
    }
    struct recipient *rc = &out->r[out->n++];
    snprintf(rc->researcher_id, sizeof rc->researcher_id, "%s", r->id);
    rc->channel = c;
    snprintf(rc->address, sizeof rc->address, "%s", addr);
    return true;
}

void directory_route(const struct directory *d, const struct alert *a, struct route_result *out)
{
    out->n = 0;
    out->dropped = 0;
    for (size_t i = first_sub(d, a->study_id);
         i < d->nsubs && strcmp(d->subs[i].study, a->study_id) == 0; i++) {
        const struct subscription *s = &d->subs[i];
        if (s->site != NULL && strcmp(s->site, a->site_id) != 0)
            continue;
        if (a->severity < s->min_severity)
            continue;
        const struct researcher *r = find_researcher(d, s->researcher);
        if (r == NULL || !r->active)
            continue;
        for (int c = 0; c < CHANNEL_COUNT; c++)
            if (s->channels & CHANNEL_BIT(c))
                add_recipient(out, r, (enum channel)c);
    }
    if (out->n > 0 || out->dropped > 0) {
        out->how = ROUTE_SUBSCRIBERS;
        return;
    }
    const struct study *st = find_study(d, a->study_id);
    const struct researcher *sc =
        st && st->safety_contact ? find_researcher(d, st->safety_contact) : NULL;
    if (sc != NULL && sc->active) {
        add_recipient(out, sc, CHANNEL_EMAIL);
        if (a->severity == SEV_CRITICAL)
            add_recipient(out, sc, CHANNEL_SMS);
    }
    out->how = out->n > 0 ? ROUTE_SAFETY_CONTACT : ROUTE_UNROUTABLE;
}

int directory_escalation(const struct directory *d, const char *study, const char *researcher,
                         struct route_result *out)
{
    int added = 0;
    const struct researcher *r = find_researcher(d, researcher);
    if (r != NULL && r->active && add_recipient(out, r, CHANNEL_EMAIL))
        added++;
    const struct study *st = find_study(d, study);
    const struct researcher *sc =
        st && st->safety_contact ? find_researcher(d, st->safety_contact) : NULL;
    if (sc != NULL && sc->active && add_recipient(out, sc, CHANNEL_EMAIL))
        added++;
    return added;
}

bool directory_address(const struct directory *d, const char *id, enum channel c, char *out,
                       size_t outsz)
{
    const struct researcher *r = find_researcher(d, id);
    if (r == NULL || !r->active || address_of(r, c) == NULL)
        return false;
    snprintf(out, outsz, "%s", address_of(r, c));
    return true;
}

char *contact_mask(const char *address, char *out, size_t outsz)
{
    if (outsz == 0)
        return out;
    const char *at = strchr(address, '@');
    if (at != NULL) {
        /* two characters of the local part, then the domain: enough to tell
         * which mailbox an operator should check, not enough to harvest */
        snprintf(out, outsz, "%.2s…%s", address, at);
        return out;
    }
    size_t len = strlen(address);
    if (len <= 5) {
        snprintf(out, outsz, "…");
        return out;
    }
    snprintf(out, outsz, "%.3s…%s", address, address + len - 2);
    return out;
}
