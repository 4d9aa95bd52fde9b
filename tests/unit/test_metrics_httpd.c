/* metrics exposition and the operations endpoint, over a real socket. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "metrics.h"
#include "testlib.h"

struct body {
    char buf[65536];
    size_t len;
};

static size_t on_data(char *p, size_t sz, size_t n, void *arg)
{
    struct body *b = arg;
    size_t take = sz * n;
    if (take > sizeof b->buf - 1 - b->len)
        take = sizeof b->buf - 1 - b->len;
    memcpy(b->buf + b->len, p, take);
    b->len += take;
    b->buf[b->len] = '\0';
    return sz * n;
}

static long get(int port, const char *method, const char *path, struct body *b)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    b->len = 0;
    b->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static atomic_bool ready_flag;

static bool ready(void *arg, char *why, size_t whysz)
{
    (void)arg;
    if (atomic_load(&ready_flag))
        return true;
    snprintf(why, whysz, "PostgreSQL unreachable");
    return false;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void test_metrics_render(void)
{
    struct metrics *m = metrics_new();
    struct metric *c1 = metrics_counter(m, "vigil_invalid_total", "Invalid messages", "reason=\"truncated\"");
    struct metric *c2 = metrics_counter(m, "vigil_invalid_total", "Invalid messages", "reason=\"corrupt\"");
    CHECK(c1 != c2);
    CHECK(metrics_counter(m, "vigil_invalid_total", "x", "reason=\"truncated\"") == c1);
    CHECK(metrics_gauge(m, "vigil_invalid_total", "x", NULL) == NULL); /* type clash */
    metric_add(c1, 3);
    metric_add(c2, 1);
    metric_add(NULL, 1); /* no-op */
    struct metric *g = metrics_gauge(m, "vigil_rules_generation", "Rules generation", NULL);
    metric_set(g, 7);
    static const double bounds[] = {0.01, 0.1, 1};
    struct metric *h = metrics_histogram(m, "vigil_batch_seconds", "Batch write", NULL, bounds, 3);
    metric_observe(h, 0.005);
    metric_observe(h, 0.05);
    metric_observe(h, 0.05);
    metric_observe(h, 5);
    CHECK_EQ_INT((long long)metric_value(c1), 3);
    char esc[64];
    CHECK_EQ_STR(metrics_label_escape("a\"b\\c\nd", esc, sizeof esc), "a\\\"b\\\\c\\nd");
    size_t len;
    char *text = metrics_render(m, &len);
    CHECK(text != NULL && strlen(text) == len);
    CHECK(strstr(text, "# TYPE vigil_invalid_total counter\n"
                       "vigil_invalid_total{reason=\"truncated\"} 3\n"
                       "vigil_invalid_total{reason=\"corrupt\"} 1\n") != NULL);
    CHECK(strstr(text, "vigil_rules_generation 7\n") != NULL);
    CHECK(strstr(text, "vigil_batch_seconds_bucket{le=\"0.01\"} 1\n") != NULL);
    CHECK(strstr(text, "vigil_batch_seconds_bucket{le=\"0.10000000000000001\"} 3\n") != NULL ||
          strstr(text, "vigil_batch_seconds_bucket{le=\"0.1\"} 3\n") != NULL);
    CHECK(strstr(text, "vigil_batch_seconds_bucket{le=\"+Inf\"} 4\n") != NULL);
    CHECK(strstr(text, "vigil_batch_seconds_count 4\n") != NULL);
    free(text);
    metrics_destroy(m);
}

struct hammer {
    struct metric *c;
    struct metric *h;
};

static void *hammer_run(void *arg)
{
    struct hammer *hm = arg;
    for (int i = 0; i < 100000; i++) {
        metric_add(hm->c, 1);
        metric_observe(hm->h, 1.0);
    }
    return NULL;
}

static void test_metrics_concurrent(void)
{
    struct metrics *m = metrics_new();
    static const double bounds[] = {0.5, 2};
    struct hammer hm = {metrics_counter(m, "c_total", "c", NULL),
                        metrics_histogram(m, "h", "h", NULL, bounds, 2)};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer_run, &hm);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_INT((long long)metric_value(hm.c), 400000);
    char *text = metrics_render(m, NULL);
    CHECK(strstr(text, "h_sum 400000\n") != NULL);
    CHECK(strstr(text, "h_bucket{le=\"2\"} 400000\n") != NULL);
    free(text);
    metrics_destroy(m);
}

static void test_httpd(void)
{
    char err[256];
    struct metrics *m = metrics_new();
    metric_add(metrics_counter(m, "vigil_consumed_total", "Consumed", NULL), 42);
    CHECK(httpd_start("not-an-address", m, ready, NULL, err, sizeof err) == NULL);
    CHECK(strstr(err, "could not parse listen address 'not-an-address'") != NULL);
    struct httpd *h = httpd_start("127.0.0.1:0", m, ready, NULL, err, sizeof err);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    int port = httpd_port(h);
    CHECK(port > 0);
    /* A second server on the same port is refused with a clear error. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    struct httpd *h2 = httpd_start(addr, m, ready, NULL, err, sizeof err);
    CHECK(h2 == NULL);
    CHECK(strstr(err, "could not listen on 127.0.0.1:") != NULL);

    struct body b;
    CHECK_EQ_INT(get(port, "GET", "/healthz", &b), 200);
    CHECK_EQ_STR(b.buf, "ok\n");
    atomic_store(&ready_flag, false);
    CHECK_EQ_INT(get(port, "GET", "/readyz", &b), 503);
    CHECK_EQ_STR(b.buf, "not ready: PostgreSQL unreachable\n");
    atomic_store(&ready_flag, true);
    CHECK_EQ_INT(get(port, "GET", "/readyz", &b), 200);
    CHECK_EQ_INT(get(port, "GET", "/metrics", &b), 200);
    CHECK(strstr(b.buf, "vigil_consumed_total 42\n") != NULL);
    CHECK_EQ_INT(get(port, "GET", "/", &b), 404);
    CHECK_EQ_INT(get(port, "GET", "/metrics/../etc/passwd", &b), 404);
    CHECK_EQ_INT(get(port, "POST", "/metrics", &b), 405);
    CHECK_EQ_INT(get(port, "DELETE", "/healthz", &b), 405);

    /* A slow client that never finishes its request, and a malformed one:
     * the server keeps answering others. */
    int slow = raw_connect(port);
    CHECK(slow >= 0);
    CHECK(write(slow, "GET /metr", 9) == 9);
    int junk = raw_connect(port);
    CHECK(junk >= 0);
    static const char garbage[] = "\x01\x02 NOT HTTP AT ALL\r\n\r\n";
    CHECK(write(junk, garbage, sizeof garbage - 1) == (ssize_t)(sizeof garbage - 1));
    char reply[256] = "";
    ssize_t n = read(junk, reply, sizeof reply - 1);
    CHECK(n <= 0 || strncmp(reply, "HTTP/1.1 400", 12) == 0);
    close(junk);
    /* A huge header is refused, not buffered without bound. */
    int big = raw_connect(port);
    static char hdr[65536];
    memset(hdr, 'a', sizeof hdr);
    CHECK(write(big, "GET /healthz HTTP/1.1\r\nX-Big: ", 30) == 30);
    ssize_t w = write(big, hdr, sizeof hdr);
    (void)w;
    close(big);
    CHECK_EQ_INT(get(port, "GET", "/healthz", &b), 200);
    close(slow);

    httpd_stop(h);
    httpd_stop(NULL);
    metrics_destroy(m);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_metrics_render();
    test_metrics_concurrent();
    test_httpd();
    curl_global_cleanup();
    return testlib_done();
}
