#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_type { M_COUNTER, M_GAUGE, M_HISTOGRAM };

struct metric {
    struct metric *next;
    enum metric_type type;
    char *name;
    char *help;
    char *labels;
    _Atomic uint64_t count;  /* counter value; histogram count */
    _Atomic uint64_t bits;   /* gauge value; histogram sum (double bits) */
    size_t nbuckets;
    double bounds[METRICS_MAX_BUCKETS];
    _Atomic uint64_t buckets[METRICS_MAX_BUCKETS]; /* non-cumulative */
};

struct metrics {
    pthread_mutex_t lock;
    struct metric *head;
    struct metric *tail;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (m == NULL)
        return;
    struct metric *next;
    for (struct metric *s = m->head; s != NULL; s = next) {
        next = s->next;
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct metric *reg(struct metrics *m, enum metric_type type, const char *name,
                          const char *help, const char *labels, const double *bounds, size_t n)
{
    if (labels == NULL)
        labels = "";
    if (n > METRICS_MAX_BUCKETS)
        return NULL;
    struct metric *found = NULL;
    pthread_mutex_lock(&m->lock);
    for (struct metric *s = m->head; s != NULL; s = s->next) {
        if (strcmp(s->name, name) != 0)
            continue;
        if (s->type != type)
            goto out; /* same name, other type: a programming error */
        if (strcmp(s->labels, labels) == 0) {
            found = s;
            goto out;
        }
    }
    struct metric *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto out;
    s->type = type;
    s->name = strdup(name);
    s->help = strdup(help ? help : "");
    s->labels = strdup(labels);
    if (s->name == NULL || s->help == NULL || s->labels == NULL) {
        free(s->name);
        free(s->help);
        free(s->labels);
        free(s);
        goto out;
    }
    s->nbuckets = n;
    for (size_t i = 0; i < n; i++)
        s->bounds[i] = bounds[i];
    if (m->tail != NULL)
        m->tail->next = s;
    else
        m->head = s;
    m->tail = s;
    found = s;
out:
    pthread_mutex_unlock(&m->lock);
    return found;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels)
{
    return reg(m, M_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels)
{
    return reg(m, M_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, size_t n)
{
    return reg(m, M_HISTOGRAM, name, help, labels, bounds, n);
}

static uint64_t d2b(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double b2d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* Adds to a double stored as bits: a CAS loop, lock-free. */
static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d2b(b2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void metric_add(struct metric *c, uint64_t n)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->count, n, memory_order_relaxed);
}

void metric_set(struct metric *g, double v)
{
    if (g != NULL)
        atomic_store_explicit(&g->bits, d2b(v), memory_order_relaxed);
}

void metric_gauge_add(struct metric *g, double v)
{
    if (g != NULL)
        atomic_add_double(&g->bits, v);
}

void metric_observe(struct metric *h, double v)
{
    if (h == NULL)
        return;
    size_t i = 0;
    while (i < h->nbuckets && v > h->bounds[i])
        i++;
    if (i < h->nbuckets)
        atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&h->bits, v);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

double metric_value(const struct metric *m)
{
    if (m == NULL)
        return 0;
    if (m->type == M_GAUGE)
        return b2d(atomic_load_explicit(&m->bits, memory_order_relaxed));
    return (double)atomic_load_explicit(&m->count, memory_order_relaxed);
}

char *metrics_label_escape(const char *value, char *out, size_t outsz)
{
    size_t n = 0;
    if (outsz == 0)
        return out;
    for (const char *p = value; *p != '\0' && n + 2 < outsz; p++) {
        if (*p == '\\' || *p == '"') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

/* A growable output buffer; on allocation failure it stops growing and
 * marks itself failed. */
struct out {
    char *buf;
    size_t len;
    size_t cap;
    int failed;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void outf(struct out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t ncap = o->cap * 2 + (size_t)n;
        char *nb = realloc(o->buf, ncap);
        if (nb == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = nb;
        o->cap = ncap;
    }
}

static void fmt_double(char *buf, size_t sz, double v)
{
    if (isinf(v))
        snprintf(buf, sz, v > 0 ? "+Inf" : "-Inf");
    else if (isnan(v))
        snprintf(buf, sz, "NaN");
    else
        snprintf(buf, sz, "%.17g", v);
}

static void render_series(struct out *o, const struct metric *s)
{
    const char *l = s->labels;
    char num[64];
    switch (s->type) {
    case M_COUNTER:
        outf(o, "%s%s%s%s %llu\n", s->name, *l ? "{" : "", l, *l ? "}" : "",
             (unsigned long long)atomic_load(&s->count));
        break;
    case M_GAUGE:
        fmt_double(num, sizeof num, b2d(atomic_load(&s->bits)));
        outf(o, "%s%s%s%s %s\n", s->name, *l ? "{" : "", l, *l ? "}" : "", num);
        break;
    case M_HISTOGRAM: {
        uint64_t cum = 0;
        for (size_t i = 0; i < s->nbuckets; i++) {
            cum += atomic_load(&s->buckets[i]);
            fmt_double(num, sizeof num, s->bounds[i]);
            outf(o, "%s_bucket{%s%sle=\"%s\"} %llu\n", s->name, l, *l ? "," : "", num,
                 (unsigned long long)cum);
        }
        /* Read count after the buckets so +Inf >= every finite bucket. */
        uint64_t count = atomic_load(&s->count);
        if (count < cum)
            count = cum;
        outf(o, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", s->name, l, *l ? "," : "",
             (unsigned long long)count);
        fmt_double(num, sizeof num, b2d(atomic_load(&s->bits)));
        outf(o, "%s_sum%s%s%s %s\n", s->name, *l ? "{" : "", l, *l ? "}" : "", num);
        outf(o, "%s_count%s%s%s %llu\n", s->name, *l ? "{" : "", l, *l ? "}" : "",
             (unsigned long long)count);
        break;
    }
    }
}

char *metrics_render(struct metrics *m, size_t *len)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    struct out o = {malloc(4096), 0, 4096, 0};
    if (o.buf == NULL)
        return NULL;
    o.buf[0] = '\0';
    pthread_mutex_lock(&m->lock);
    /* Group series by name, in first-registration order: HELP and TYPE once. */
    for (struct metric *s = m->head; s != NULL; s = s->next) {
        int first = 1;
        for (struct metric *t = m->head; t != s; t = t->next)
            if (strcmp(t->name, s->name) == 0) {
                first = 0;
                break;
            }
        if (!first)
            continue;
        outf(&o, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name, type_names[s->type]);
        for (struct metric *t = s; t != NULL; t = t->next)
            if (strcmp(t->name, s->name) == 0)
                render_series(&o, t);
    }
    pthread_mutex_unlock(&m->lock);
    if (o.failed) {
        free(o.buf);
        return NULL;
    }
    if (len != NULL)
        *len = o.len;
    return o.buf;
}
