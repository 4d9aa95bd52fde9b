/*
 * libFuzzer target for the operations endpoint's request handling: one
 * server (httpd_start on 127.0.0.1:0, a few metrics registered) runs for
 * the whole process; each input is written raw to a fresh TCP connection,
 * the write side is shut so the server sees the end of the request, the
 * reply is read until the server closes or a short timeout passes, and the
 * connection is closed. The server must neither crash nor stop answering:
 * every 256 inputs a well-formed GET /healthz must get a 200.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd.h"
#include "metrics.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An incomplete request gets no reply at all, so the wait for a first
 * byte is short; after it, a keep-alive server leaves the connection open,
 * so a short quiet gap ends the read. */
#define FIRST_BYTE_TIMEOUT_MS 100
#define QUIET_GAP_MS 5

static struct metrics *metrics;
static struct httpd *server;
static int port;
static unsigned long runs;

static bool ready(void *arg, char *why, size_t whysz)
{
    (void)arg;
    snprintf(why, whysz, "fuzzing");
    return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    metrics = metrics_new();
    if (metrics == NULL)
        abort();
    metric_add(metrics_counter(metrics, "fuzz_inputs_total", "inputs", NULL), 1);
    metric_set(metrics_gauge(metrics, "fuzz_gauge", "a gauge", NULL), 2.5);
    server = httpd_start("127.0.0.1:0", metrics, ready, NULL, err, sizeof err);
    if (server == NULL) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    port = httpd_port(server);
    return 0;
}

/* Sends LEN bytes on a new connection and reads the reply into BUF (CAP
 * bytes, NUL-terminated). Returns the reply length, or -1 if the server
 * could not be reached. */
static long exchange(const void *req, size_t len, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    long got = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto out;
    got = 0;
    const char *p = req;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may drop a bad request early */
        p += n;
        len -= (size_t)n;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, got > 0 ? QUIET_GAP_MS : FIRST_BYTE_TIMEOUT_MS) <= 0)
            break;
        char scratch[4096];
        char *dst = (size_t)got + 1 < cap ? buf + got : scratch;
        size_t room = (size_t)got + 1 < cap ? cap - 1 - (size_t)got : sizeof scratch;
        ssize_t n = recv(fd, dst, room, 0);
        if (n <= 0)
            break;
        if (dst != scratch)
            got += n;
    }
    buf[got] = '\0';
out:
    close(fd);
    return got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reply[8192];
    if (exchange(data, size, reply, sizeof reply) < 0)
        abort(); /* the server stopped accepting */
    if (++runs % 256 == 0) {
        static const char probe[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        if (exchange(probe, sizeof probe - 1, reply, sizeof reply) <= 0 ||
            strncmp(reply, "HTTP/1.1 200", 12) != 0) {
            fprintf(stderr, "fuzz_http: server no longer answers /healthz: %.80s\n", reply);
            abort();
        }
    }
    return 0;
}
