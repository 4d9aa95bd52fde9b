/*
 * metrics: Prometheus counters, gauges and histograms on C11 atomics, and
 * their text exposition (format 0.0.4) for GET /metrics.
 *
 * A series is (name, labels). Registration takes the registry's mutex and is
 * idempotent: asking again for the same name and labels returns the same
 * series, so a caller may register lazily (alerts by rule, which rules reload
 * can add). Updating a series is lock-free and may happen on any thread.
 * Series live until metrics_destroy; pointers stay valid until then.
 *
 * Labels are given pre-rendered, e.g. "reason=\"truncated\"" (NULL or "" for
 * none). Label values are escaped by metrics_label_escape(); callers
 * that build labels from data must use it.
 */
#ifndef VIGIL_METRICS_H
#define VIGIL_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric;

#define METRICS_MAX_BUCKETS 24

/* Returns an empty registry, or NULL on allocation failure. */
struct metrics *metrics_new(void);

/* Frees the registry and every series. NULL is a no-op. No thread may use a
 * series afterwards. */
void metrics_destroy(struct metrics *m);

/* Return the series, registering it on first use; NULL only on allocation
 * failure or when NAME was registered before with another type (a bug). */
struct metric *metrics_counter(struct metrics *m, const char *name, const char *help,
                               const char *labels);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *help,
                             const char *labels);
/* BOUNDS: N ascending upper bounds (at most METRICS_MAX_BUCKETS), copied. */
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *help,
                                 const char *labels, const double *bounds, size_t n);

/* Adds to a counter. NULL metric is a no-op (so a failed registration does
 * not crash the hot path). */
void metric_add(struct metric *c, uint64_t n);
/* Sets or adds to a gauge (stored as a double). */
void metric_set(struct metric *g, double v);
void metric_gauge_add(struct metric *g, double v);
/* Records one observation in a histogram. */
void metric_observe(struct metric *h, double v);

/* Current value of a counter or gauge (tests, /readyz reasons). */
double metric_value(const struct metric *m);

/* Renders every series into a new malloc'd NUL-terminated string; *len gets
 * its length. Returns NULL on allocation failure. The caller frees it. */
char *metrics_render(struct metrics *m, size_t *len);

/* Writes VALUE escaped for a label value (\\, \", \n) into out, always
 * NUL-terminated, truncated to outsz. Returns out. */
char *metrics_label_escape(const char *value, char *out, size_t outsz);

#endif
