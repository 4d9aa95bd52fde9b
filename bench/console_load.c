/* console_load: the load client of bench/console. CLIENTS concurrent
 * keep-alive HTTP connections (one libcurl multi handle, one thread, so the
 * client costs little of the machine the server runs on), each making
 * REQUESTS GET requests of the paths in PATHFILE (one a line, taken in turn)
 * with a bearer token (TOKEN may list several, comma-separated: client i
 * uses the i-th, in turn, so callers can be told apart). Prints `figure NAME_rps|_p50|_p99|_503|_other` over
 * each client's requests after its first WARMUP (default 0: all), which
 * pay for connecting, the server's first PostgreSQL connections and
 * plans, and a cold cache; and NAME_cold_p99 over every request.
 *
 *   console_load NAME PORT TOKEN CLIENTS REQUESTS PATHFILE [WARMUP]
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct client {
    CURL *easy;
    int done;
    double started;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The bodies are not looked at: only their arrival counts. */
static size_t body_discard(char *p, size_t sz, size_t n, void *u)
{
    (void)p;
    (void)u;
    return sz * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The lines of PATH (newline stripped), or NULL. */
static char **paths_read(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    char **v = NULL;
    size_t n = 0, cap = 0;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nv = realloc(v, cap * sizeof *v);
            if (nv == NULL)
                break;
            v = nv;
        }
        v[n++] = strdup(line);
    }
    fclose(f);
    *count = n;
    return v;
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: console_load NAME PORT TOKEN CLIENTS REQUESTS PATHFILE [WARMUP]\n");
        return 2;
    }
    const char *name = argv[1];
    int port = atoi(argv[2]), clients = atoi(argv[4]), requests = atoi(argv[5]);
    int warmup = argc == 8 ? atoi(argv[7]) : 0;
    if (warmup < 0 || warmup >= requests) {
        fprintf(stderr, "console_load: WARMUP must be below REQUESTS\n");
        return 2;
    }
    size_t npaths = 0;
    char **paths = paths_read(argv[6], &npaths);
    if (port <= 0 || clients <= 0 || requests <= 0 || paths == NULL || npaths == 0) {
        fprintf(stderr, "console_load: bad arguments or empty path file %s\n", argv[6]);
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* one header list per token */
    struct curl_slist **hdrs = calloc((size_t)clients, sizeof *hdrs);
    size_t ntok = 0;
    char *toks = strdup(argv[3]), *save = NULL;
    if (hdrs == NULL || toks == NULL)
        return 1;
    for (char *t = strtok_r(toks, ",", &save); t != NULL && ntok < (size_t)clients;
         t = strtok_r(NULL, ",", &save)) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", t);
        hdrs[ntok++] = curl_slist_append(NULL, auth);
    }
    if (ntok == 0) {
        fprintf(stderr, "console_load: no token\n");
        return 2;
    }
    CURLM *multi = curl_multi_init();
    /* one connection per client, kept alive between its requests */
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)clients);
    struct client *cl = calloc((size_t)clients, sizeof *cl);
    size_t total = (size_t)clients * (size_t)requests, nlat = 0, nall = 0, next_path = 0;
    double *lat = calloc(total, sizeof *lat), *all = calloc(total, sizeof *all);
    double t_first = -1; /* start of the first timed request */
    long n503 = 0, nother = 0;
    char url[4200];
    if (cl == NULL || lat == NULL || all == NULL)
        return 1;
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        cl[i].easy = curl_easy_init();
        curl_easy_setopt(cl[i].easy, CURLOPT_HTTPHEADER, hdrs[(size_t)i % ntok]);
        curl_easy_setopt(cl[i].easy, CURLOPT_WRITEFUNCTION, body_discard);
        curl_easy_setopt(cl[i].easy, CURLOPT_PRIVATE, &cl[i]);
        curl_easy_setopt(cl[i].easy, CURLOPT_TIMEOUT, 60L);
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, paths[next_path++ % npaths]);
        curl_easy_setopt(cl[i].easy, CURLOPT_URL, url);
        cl[i].started = now_s();
        curl_multi_add_handle(multi, cl[i].easy);
    }
    int running = clients;
    while (nall < total) {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct client *c;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            long code = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            if (m->data.result != CURLE_OK)
                fprintf(stderr, "console_load: %s\n", curl_easy_strerror(m->data.result));
            double took = now_s() - c->started;
            all[nall++] = took;
            if (c->done >= warmup) {
                lat[nlat++] = took;
                if (t_first < 0 || c->started < t_first)
                    t_first = c->started;
            }
            if (code == 503)
                n503++;
            else if (code != 200)
                nother++;
            curl_multi_remove_handle(multi, m->easy_handle);
            if (++c->done < requests) {
                snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, paths[next_path++ % npaths]);
                curl_easy_setopt(c->easy, CURLOPT_URL, url);
                c->started = now_s();
                curl_multi_add_handle(multi, c->easy);
            }
        }
        if (nall >= total)
            break;
        curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double elapsed = now_s() - (warmup > 0 ? t_first : t0);
    qsort(lat, nlat, sizeof *lat, cmp_double);
    qsort(all, nall, sizeof *all, cmp_double);
    printf("figure %s_rps %.0f requests/s\n", name, (double)nlat / elapsed);
    printf("figure %s_p50 %.1f ms\n", name, lat[nlat / 2] * 1000);
    printf("figure %s_p99 %.1f ms\n", name, lat[(size_t)((double)nlat * 0.99)] * 1000);
    printf("figure %s_cold_p99 %.1f ms\n", name, all[(size_t)((double)nall * 0.99)] * 1000);
    printf("figure %s_503 %ld requests\n", name, n503);
    if (nother)
        printf("figure %s_other %ld requests\n", name, nother);
    for (int i = 0; i < clients; i++) {
        curl_multi_remove_handle(multi, cl[i].easy);
        curl_easy_cleanup(cl[i].easy);
    }
    curl_multi_cleanup(multi);
    for (size_t i = 0; i < ntok; i++)
        curl_slist_free_all(hdrs[i]);
    free(hdrs);
    free(toks);
    for (size_t i = 0; i < npaths; i++)
        free(paths[i]);
    free(paths);
    free(cl);
    free(lat);
    free(all);
    curl_global_cleanup();
    return nother ? 1 : 0;
}
