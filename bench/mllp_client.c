/*
 * mllp_client: bench/mllp's load generator, an MLLP client written in C so
 * that on a 2-core machine the client's own cost takes as little CPU from
 * the listener and the broker as it can (a Python client spent about as
 * much CPU per message as the listener did).
 *
 *   mllp_client throughput HOST PORT CONNECTIONS MESSAGES FACILITY PATIENTS
 *   mllp_client latency    HOST PORT CONNECTIONS RATE SECONDS FACILITY PATIENTS
 *
 * Each connection is a thread that sends one ORU^R01 of 10 OBX, waits for
 * its ACK and checks it is AA, as an interface engine does. throughput
 * sends MESSAGES in all as fast as the ACKs return and prints
 * "messages N not_aa B seconds S"; latency sends RATE messages/s for
 * SECONDS, each at its scheduled time, and prints "latency_ms p50 P50 p99
 * P99 n N not_aa B", measured from the scheduled send (so a late ACK that
 * delays the next send counts against that one too), leaving out the first
 * tenth as warm-up.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *panel[][3] = {
    {"2823-3", "mmol/L", "4.%d"}, {"2951-2", "mmol/L", "14%d"}, {"2345-7", "mmol/L", "5.%d"},
    {"2160-0", "umol/L", "8%d"},  {"1742-6", "U/L", "2%d"},     {"1920-8", "U/L", "3%d"},
    {"6768-6", "U/L", "9%d"},     {"1975-2", "umol/L", "1%d"},  {"718-7", "g/L", "13%d"},
    {"777-3", "10*9/L", "25%d"},
};

struct cfg {
    const char *host, *port, *facility;
    int conns, patients;
    long messages;  /* throughput */
    double rate;    /* latency */
    int seconds;
};

struct worker {
    const struct cfg *c;
    int id;
    long sent, not_aa;
    double *lat; /* latency mode: one per message of this connection */
    long n_lat;
    int failed;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t message(char *buf, size_t cap, const struct cfg *c, long n)
{
    long p = n % c->patients;
    int len = snprintf(buf, cap,
                       "\x0bMSH|^~\\&|LIS|%s|VIGIL|VIGIL|20250301120000+0000||ORU^R01|B%ld|P|2.5.1\r"
                       "PID|1||B%05ld^^^%s^MR||BENCH^PATIENT||19500101|F\rPV1|1|O\r"
                       "ORC|RE||ORD%ld^LIS\r"
                       "OBR|1||ORD%ld^LIS|24323-8^CMP^LN|||20250301110000+0000||||||||||||||"
                       "20250301115900+0000|||F\r",
                       c->facility, n, p, c->facility, n, n);
    for (int k = 0; k < 10; k++) {
        char v[16];
        snprintf(v, sizeof v, panel[k][2], (int)(n % 10));
        len += snprintf(buf + len, cap - (size_t)len,
                        "OBX|%d|NM|%s^Analyte %d^LN||%s|%s|1-9|N|||F|||20250301110000+0000\r",
                        k + 1, panel[k][0], k, v, panel[k][1]);
    }
    len += snprintf(buf + len, cap - (size_t)len, "\x1c\r");
    return (size_t)len;
}

static int dial(const struct cfg *c)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(c->host, c->port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Sends one message and reads its ACK. Returns 1 AA, 0 other, -1 error. */
static int exchange(int fd, const char *msg, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, msg + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        off += (size_t)w;
    }
    char ack[8192];
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, ack + n, sizeof ack - 1 - n, 0);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        if (n >= 2 && ack[n - 2] == 0x1c && ack[n - 1] == '\r')
            break;
        if (n >= sizeof ack - 1)
            return -1;
    }
    ack[n] = '\0';
    return strstr(ack, "\rMSA|AA|") != NULL;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    const struct cfg *c = w->c;
    int fd = dial(c);
    if (fd < 0) {
        w->failed = 1;
        return NULL;
    }
    char msg[4096];
    if (c->rate <= 0) {
        long per = c->messages / c->conns;
        for (long i = 0; i < per; i++) {
            size_t len = message(msg, sizeof msg, c, i * c->conns + w->id);
            int r = exchange(fd, msg, len);
            if (r < 0) {
                w->failed = 1;
                break;
            }
            w->sent++;
            w->not_aa += r == 0;
        }
    } else {
        long total = (long)(c->rate * c->seconds);
        double start = now() + 0.5;
        w->lat = calloc((size_t)(total / c->conns + 1), sizeof *w->lat);
        for (long i = w->id; i < total; i += c->conns) {
            double due = start + (double)i / c->rate;
            double wait = due - now();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                nanosleep(&ts, NULL);
            }
            size_t len = message(msg, sizeof msg, c, 10000000 + i);
            int r = exchange(fd, msg, len);
            if (r < 0) {
                w->failed = 1;
                break;
            }
            w->lat[w->n_lat++] = (now() - due) * 1000.0;
            w->sent++;
            w->not_aa += r == 0;
        }
    }
    close(fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct cfg c = {0};
    if (argc == 8 && strcmp(argv[1], "throughput") == 0) {
        c = (struct cfg){argv[2], argv[3], argv[6], atoi(argv[4]), atoi(argv[7]),
                         atol(argv[5]), 0, 0};
    } else if (argc == 9 && strcmp(argv[1], "latency") == 0) {
        c = (struct cfg){argv[2], argv[3], argv[7], atoi(argv[4]), atoi(argv[8]), 0,
                         atof(argv[5]), atoi(argv[6])};
    } else {
        fprintf(stderr, "usage: mllp_client throughput HOST PORT CONNS MESSAGES FACILITY PATIENTS\n"
                        "       mllp_client latency HOST PORT CONNS RATE SECONDS FACILITY PATIENTS\n");
        return 2;
    }
    if (c.conns < 1 || c.conns > 1024 || c.patients < 1)
        return 2;
    struct worker *w = calloc((size_t)c.conns, sizeof *w);
    pthread_t *t = calloc((size_t)c.conns, sizeof *t);
    double t0 = now();
    for (int i = 0; i < c.conns; i++) {
        w[i] = (struct worker){.c = &c, .id = i};
        pthread_create(&t[i], NULL, run, &w[i]);
    }
    long sent = 0, not_aa = 0, n_lat = 0;
    int failed = 0;
    for (int i = 0; i < c.conns; i++) {
        pthread_join(t[i], NULL);
        sent += w[i].sent;
        not_aa += w[i].not_aa;
        n_lat += w[i].n_lat;
        failed |= w[i].failed;
    }
    double took = now() - t0;
    if (c.rate <= 0) {
        printf("messages %ld not_aa %ld seconds %.3f\n", sent, not_aa, took);
    } else {
        double *all = calloc((size_t)n_lat + 1, sizeof *all);
        long k = 0;
        for (int i = 0; i < c.conns; i++) {
            long skip = w[i].n_lat / 10; /* warm-up */
            for (long j = skip; j < w[i].n_lat; j++)
                all[k++] = w[i].lat[j];
            free(w[i].lat);
        }
        qsort(all, (size_t)k, sizeof *all, cmp_double);
        printf("latency_ms p50 %.2f p99 %.2f n %ld not_aa %ld\n", k ? all[k / 2] : 0.0,
               k ? all[(long)((double)k * 0.99)] : 0.0, sent, not_aa);
        free(all);
    }
    free(w);
    free(t);
    return failed || not_aa > 0 ? 1 : 0;
}
