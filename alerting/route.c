#include "route.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"

/* How long one wait on the LISTEN socket lasts before the thread looks at
 * its stop flag and the periodic refresh again. */
#define WAIT_SLICE_MS 200
/* After a notification, wait this long for the rest of a burst (a bulk
 * load of subscriptions in several statements) before loading. */
#define COALESCE_MS 20
#define RETRY_MIN_MS 500
#define RETRY_MAX_MS 30000

struct route_cache {
    const char *conninfo;
    int refresh_ms;
    pthread_rwlock_t lock; /* guards dir */
    struct directory *dir;
    atomic_uint_fast64_t generation;
    atomic_bool stop;
    atomic_bool poke;
    pthread_t thread;
    bool started;
    struct metric *m_gen;
    struct metric *m_fail;
};

static enum alert_severity severity_of(const char *s)
{
    int v = alert_severity_parse(s);
    return v < 0 ? SEV_WARNING : (enum alert_severity)v;
}

/* "email,sms" (array_to_string of the channels column) -> bit set. */
static unsigned channels_of(const char *list)
{
    unsigned bits = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        char tok[16];
        if (len < sizeof tok) {
            memcpy(tok, p, len);
            tok[len] = '\0';
            int c = channel_parse(tok);
            if (c >= 0)
                bits |= CHANNEL_BIT(c);
        }
        p += len;
        if (*p == ',')
            p++;
    }
    return bits;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

struct directory *route_load(PGconn *conn, char *errstr, size_t errstr_size)
{
    PGresult *rr = NULL, *rs = NULL, *rsub = NULL;
    struct directory *d = NULL;
    char err[512];
    if (pg_command(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, err,
                   sizeof err) != 0)
        goto err;
    rr = pg_query(conn, "SELECT researcher_id, email, phone, active FROM researchers", 0, NULL,
                  err, sizeof err);
    if (rr == NULL)
        goto err;
    rs = pg_query(conn, "SELECT study_id, safety_contact_researcher_id FROM studies", 0, NULL,
                  err, sizeof err);
    if (rs == NULL)
        goto err;
    rsub = pg_query(conn,
                    "SELECT researcher_id, study_id, site_id, min_severity, "
                    "array_to_string(channels, ',') FROM subscriptions",
                    0, NULL, err, sizeof err);
    if (rsub == NULL)
        goto err;
    pg_command(conn, "COMMIT", 0, NULL, err, sizeof err);

    d = directory_new();
    if (d == NULL) {
        snprintf(err, sizeof err, "out of memory");
        goto err;
    }
    char why[256];
    for (int i = 0; i < PQntuples(rr); i++) {
        int rc = directory_add_researcher(d, val(rr, i, 0), val(rr, i, 1), val(rr, i, 2),
                                          strcmp(PQgetvalue(rr, i, 3), "t") == 0, why,
                                          sizeof why);
        if (rc != 0)
            log_msg(LOG_WARN, "notifier", "directory: %s", why);
    }
    for (int i = 0; i < PQntuples(rs); i++)
        if (directory_add_study(d, val(rs, i, 0), val(rs, i, 1), why, sizeof why) != 0)
            log_msg(LOG_WARN, "notifier", "directory: %s", why);
    for (int i = 0; i < PQntuples(rsub); i++)
        if (directory_add_subscription(d, val(rsub, i, 0), val(rsub, i, 1), val(rsub, i, 2),
                                       severity_of(PQgetvalue(rsub, i, 3)),
                                       channels_of(PQgetvalue(rsub, i, 4)), why,
                                       sizeof why) != 0)
            log_msg(LOG_WARN, "notifier", "directory: %s", why);
    directory_seal(d);
    PQclear(rr);
    PQclear(rs);
    PQclear(rsub);
    return d;
err:
    if (PQtransactionStatus(conn) != PQTRANS_IDLE)
        pg_command(conn, "ROLLBACK", 0, NULL, why, sizeof why);
    PQclear(rr);
    PQclear(rs);
    PQclear(rsub);
    directory_destroy(d);
    snprintf(errstr, errstr_size, "could not load the directory: %s", err);
    return NULL;
}

static void publish(struct route_cache *rc, struct directory *d)
{
    pthread_rwlock_wrlock(&rc->lock);
    struct directory *old = rc->dir;
    rc->dir = d;
    uint64_t gen = atomic_fetch_add(&rc->generation, 1) + 1;
    pthread_rwlock_unlock(&rc->lock);
    /* freed outside the lock: readers were waiting on it */
    directory_destroy(old);
    metric_set(rc->m_gen, (double)gen);
    log_msg(LOG_INFO, "notifier", "directory loaded: %zu researchers, %zu subscriptions "
                                  "(generation %llu)",
            directory_researchers(d), directory_subscriptions(d), (unsigned long long)gen);
}

/* Connects and LISTENs. Returns the connection or NULL (logged). */
static PGconn *connect_listen(struct route_cache *rc)
{
    char err[512];
    PGconn *c = pg_connect(rc->conninfo, err, sizeof err);
    if (c == NULL) {
        log_msg(LOG_WARN, "notifier", "directory: %s", err);
        return NULL;
    }
    if (pg_command(c, "LISTEN vigil_directory", 0, NULL, err, sizeof err) != 0) {
        log_msg(LOG_WARN, "notifier", "directory: could not LISTEN vigil_directory: %s", err);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Drains queued notifications. Returns true if any arrived. */
static bool take_notifies(PGconn *c)
{
    bool any = false;
    PGnotify *n;
    while ((n = PQnotifies(c)) != NULL) {
        any = true;
        PQfreemem(n);
    }
    return any;
}

static void *refresh_main(void *arg)
{
    struct route_cache *rc = arg;
    PGconn *conn = NULL;
    bool need_load = true;
    int64_t backoff = RETRY_MIN_MS;
    deadline_t retry_at = deadline_now();
    deadline_t next_full = deadline_after_ms(rc->refresh_ms);
    char err[1024];
    while (!atomic_load(&rc->stop)) {
        if (conn == NULL && deadline_expired(retry_at)) {
            conn = connect_listen(rc);
            need_load = true;
            if (conn == NULL) {
                metric_add(rc->m_fail, 1);
                retry_at = deadline_after_ms(backoff);
                backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
                continue;
            }
        }
        if (conn != NULL && (need_load || atomic_exchange(&rc->poke, false) ||
                             deadline_expired(next_full))) {
            struct directory *d = route_load(conn, err, sizeof err);
            if (d == NULL) {
                metric_add(rc->m_fail, 1);
                log_msg(LOG_WARN, "notifier", "%s; keeping the previous directory", err);
                PQfinish(conn);
                conn = NULL;
                retry_at = deadline_after_ms(backoff);
                backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
                continue;
            }
            publish(rc, d);
            need_load = false;
            backoff = RETRY_MIN_MS;
            next_full = deadline_after_ms(rc->refresh_ms);
        }
        if (conn == NULL) {
            struct timespec ts = {0, WAIT_SLICE_MS * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        int pr = poll(&pfd, 1, WAIT_SLICE_MS);
        if (pr < 0 && errno != EINTR)
            pfd.revents = POLLERR;
        if (pr > 0 || pfd.revents) {
            if (PQconsumeInput(conn) == 0) {
                log_msg(LOG_WARN, "notifier", "directory: lost the LISTEN connection: %s",
                        PQerrorMessage(conn));
                PQfinish(conn);
                conn = NULL;
                continue;
            }
            if (take_notifies(conn)) {
                struct timespec ts = {0, COALESCE_MS * 1000000L};
                nanosleep(&ts, NULL);
                PQconsumeInput(conn);
                take_notifies(conn);
                need_load = true;
            }
        }
    }
    PQfinish(conn);
    return NULL;
}

struct route_cache *route_cache_new(const char *conninfo, int refresh_s, struct metrics *m,
                                    char *errstr, size_t errstr_size)
{
    struct route_cache *rc = calloc(1, sizeof *rc);
    if (rc == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    rc->conninfo = conninfo;
    rc->refresh_ms = (refresh_s > 0 ? refresh_s : 300) * 1000;
    atomic_init(&rc->generation, 0);
    atomic_init(&rc->stop, false);
    atomic_init(&rc->poke, false);
    rc->m_gen = metrics_gauge(m, "vigil_notifier_directory_generation",
                              "Directory loads published (bumps on every change)", NULL);
    rc->m_fail = metrics_counter(m, "vigil_notifier_directory_reload_failures_total",
                                 "Directory connections or loads that failed (old kept)", NULL);
    if (pthread_rwlock_init(&rc->lock, NULL) != 0) {
        free(rc);
        snprintf(errstr, errstr_size, "could not create the directory lock");
        return NULL;
    }
    if (pthread_create(&rc->thread, NULL, refresh_main, rc) != 0) {
        pthread_rwlock_destroy(&rc->lock);
        free(rc);
        snprintf(errstr, errstr_size, "could not start the directory thread");
        return NULL;
    }
    rc->started = true;
    return rc;
}

void route_cache_destroy(struct route_cache *rc)
{
    if (rc == NULL)
        return;
    atomic_store(&rc->stop, true);
    if (rc->started)
        pthread_join(rc->thread, NULL);
    directory_destroy(rc->dir);
    pthread_rwlock_destroy(&rc->lock);
    free(rc);
}

bool route_cache_ready(struct route_cache *rc)
{
    return atomic_load(&rc->generation) > 0;
}

void route_cache_poke(struct route_cache *rc)
{
    atomic_store(&rc->poke, true);
}

bool route_cache_route(struct route_cache *rc, const struct alert *a, struct route_result *out)
{
    pthread_rwlock_rdlock(&rc->lock);
    bool ok = rc->dir != NULL;
    if (ok) {
        directory_route(rc->dir, a, out);
    } else {
        out->n = 0;
        out->dropped = 0;
        out->how = ROUTE_UNROUTABLE;
    }
    pthread_rwlock_unlock(&rc->lock);
    return ok;
}

int route_cache_escalation(struct route_cache *rc, const char *study, const char *researcher,
                           struct route_result *out)
{
    pthread_rwlock_rdlock(&rc->lock);
    int n = rc->dir ? directory_escalation(rc->dir, study, researcher, out) : 0;
    pthread_rwlock_unlock(&rc->lock);
    return n;
}

bool route_cache_address(struct route_cache *rc, const char *researcher, enum channel c,
                         char *out, size_t outsz)
{
    pthread_rwlock_rdlock(&rc->lock);
    bool ok = rc->dir ? directory_address(rc->dir, researcher, c, out, outsz) : false;
    pthread_rwlock_unlock(&rc->lock);
    return ok;
}
