/*
 * What tests/fuzz/fuzz_http.c found, as a unit test against a real server.
 *
 * 1. Inputs replayed the way the fuzzer sends them (fresh connection, the
 *    reply read until the server closes or goes quiet, socket closed): after
 *    100 of each (more than the 64-connection and 16-per-address limits)
 *    the server still answers GET /healthz.
 * 2. Clients that half-close (shutdown(SHUT_WR)) after a keep-alive request:
 *    libmicrohttpd keeps each such connection (CLOSE-WAIT) until the
 *    connection timeout, so after 16 the per-address limit refuses that
 *    address for up to 10 s. The cost must stay with that address: a client
 *    on another address (127.0.0.2) is still answered.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "metrics.h"
#include "testlib.h"

static bool ready(void *arg, char *why, size_t whysz)
{
    (void)arg;
    (void)why;
    (void)whysz;
    return true;
}

/* Returns the reply length (in BUF, NUL-terminated), or -1. */
static long exchange(int port, const char *from, bool half_close, const char *req, size_t len,
                     char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, from, &src.sin_addr);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long got = -1;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0)
        goto out;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    got = 0;
    if (send(fd, req, len, MSG_NOSIGNAL) < 0)
        goto out;
    if (half_close)
        shutdown(fd, SHUT_WR);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, got > 0 ? 20 : 500) <= 0)
            break;
        if ((size_t)got + 1 >= cap)
            break;
        ssize_t n = recv(fd, buf + got, cap - 1 - (size_t)got, 0);
        if (n <= 0)
            break;
        got += n;
    }
    buf[got] = '\0';
out:
    close(fd);
    return got;
}

static const char *const inputs[] = {
    /* fuzz_http crash-196ee5ed: a keep-alive request with a fragment and a
     * header line without a colon (sent half-closed, /healthz went silent
     * after 256: the lingering connections of part 2). */
    "GET /metri#s HTTP/1.1\r\nHostost\r\n\r\n",
    "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n",
};

static bool answers(int port, const char *from)
{
    static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char reply[8192];
    long n = exchange(port, from, false, probe, sizeof probe - 1, reply, sizeof reply);
    if (n > 0 && strncmp(reply, "HTTP/1.1 200", 12) == 0)
        return true;
    fprintf(stderr, "/healthz from %s answered '%.60s'\n", from, n > 0 ? reply : "");
    return false;
}

static void test_replay(void)
{
    char err[256];
    char reply[8192];
    struct metrics *m = metrics_new();
    struct httpd *h = httpd_start("127.0.0.1:0", m, ready, NULL, err, sizeof err);
    CHECK(h != NULL);
    if (h == NULL)
        return;
    int port = httpd_port(h);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        for (int k = 0; k < 100; k++)
            exchange(port, "127.0.0.1", false, inputs[i], strlen(inputs[i]), reply,
                     sizeof reply);
        CHECK(answers(port, "127.0.0.1"));
    }

    /* Part 2: 20 half-closed keep-alive requests from 127.0.0.3. */
    int answered = 0;
    for (int k = 0; k < 20; k++)
        answered += exchange(port, "127.0.0.3", true, inputs[1], strlen(inputs[1]), reply,
                             sizeof reply) > 0;
    CHECK(answered >= 16); /* the per-address limit, then refused */
    CHECK(answers(port, "127.0.0.2"));
    httpd_stop(h);
    metrics_destroy(m);
}

int main(void)
{
    test_replay();
    return testlib_done();
}
