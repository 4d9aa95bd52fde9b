#include "email.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hash.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Base64 of IN (N bytes) into OUT; returns the length written. OUT must
 * hold 4 * ((n + 2) / 3) bytes. */
static size_t base64(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    return o;
}

/* Length of the UTF-8 sequence starting with byte C (1 for ASCII and for
 * stray continuation bytes, so malformed input still advances). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xF0 && c < 0xF8)
        return 4;
    if (c >= 0xE0)
        return c < 0xF0 ? 3 : 1;
    if (c >= 0xC0)
        return 2;
    return 1;
}

size_t email_encode_subject(const char *subject, char *out, size_t outsz)
{
    /* "=?UTF-8?B?" + base64 + "?=" is at most 75 bytes (RFC 2047 2): 63
     * bytes of base64, i.e. 45 bytes of text (15 groups of 3). The first
     * line also carries "Subject: " (9), which 75 + 9 = 84 would overflow
     * the 78 recommended columns, so its word takes at most 36 bytes. */
    const unsigned char *s = (const unsigned char *)subject;
    size_t n = strlen(subject), i = 0, o = 0;
    bool first = true;
    if (n == 0) {
        if (outsz < 1)
            return 0;
        out[0] = '\0';
        return 0;
    }
    while (i < n) {
        size_t max = first ? 36 : 45;
        size_t take = 0;
        while (i + take < n) {
            size_t cl = utf8_len(s[i + take]);
            if (i + take + cl > n)
                cl = n - i - take;
            if (take + cl > max)
                break;
            take += cl;
        }
        if (take == 0)
            take = 1; /* cannot happen with max >= 4; keeps the loop finite */
        size_t need = (first ? 0 : 3) + 12 + 4 * ((take + 2) / 3) + 1;
        if (o + need > outsz)
            return 0;
        if (!first) {
            memcpy(out + o, "\r\n ", 3);
            o += 3;
        }
        memcpy(out + o, "=?UTF-8?B?", 10);
        o += 10;
        o += base64(s + i, take, out + o);
        memcpy(out + o, "?=", 2);
        o += 2;
        i += take;
        first = false;
    }
    out[o] = '\0';
    return o;
}

size_t email_date(int64_t ms, char *out, size_t outsz)
{
    /* Names spelled out rather than strftime's %a/%b, which follow the
     * locale; RFC 5322 wants English. */
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        return 0;
    int n = snprintf(out, outsz, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
                     tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                     tm.tm_sec);
    return n < 0 || (size_t)n >= outsz ? 0 : (size_t)n;
}

size_t email_message_id(const char *key, const char *from, char *out, size_t outsz)
{
    const char *at = from ? strchr(from, '@') : NULL;
    const char *domain = at && at[1] ? at + 1 : "vigil.invalid";
    uint64_t h1 = hash_str(key, HASH_SEED);
    uint64_t h2 = hash_str(key, h1 ^ 0x9e3779b97f4a7c15ull);
    int n = snprintf(out, outsz, "<vigil.%016llx.%016llx@%s>", (unsigned long long)h1,
                     (unsigned long long)h2, domain);
    return n < 0 || (size_t)n >= outsz ? 0 : (size_t)n;
}

struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || o->len + n >= o->cap) {
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void header(struct out *o, const char *name, const char *value)
{
    puts_(o, name);
    puts_(o, ": ");
    puts_(o, value);
    puts_(o, "\r\n");
}

size_t email_format(const struct email_headers *h, const char *body, char *out, size_t outsz)
{
    struct out o = {out, outsz, 0, false};
    char date[64], subj[1024];
    if (email_date(h->date_ms, date, sizeof date) == 0)
        return 0;
    if (h->subject[0] != '\0' && email_encode_subject(h->subject, subj, sizeof subj) == 0)
        return 0;
    if (h->subject[0] == '\0')
        subj[0] = '\0';
    header(&o, "Date", date);
    header(&o, "From", h->from);
    header(&o, "To", h->to);
    header(&o, "Message-ID", h->message_id);
    header(&o, "Subject", subj);
    header(&o, "MIME-Version", "1.0");
    header(&o, "Content-Type", "text/plain; charset=UTF-8");
    header(&o, "Content-Transfer-Encoding", "8bit");
    if (h->alert_ids != NULL && h->alert_ids[0] != '\0') {
        /* one id per folded line: a group of 8 ids of 64 bytes stays well
         * within the 998-byte line limit and readable */
        puts_(&o, "X-Vigil-Alert-Ids:");
        const char *p = h->alert_ids;
        while (*p) {
            size_t len = strcspn(p, " ");
            if (len > 0) {
                puts_(&o, p == h->alert_ids ? " " : "\r\n ");
                put(&o, p, len);
            }
            p += len;
            while (*p == ' ')
                p++;
        }
        puts_(&o, "\r\n");
    }
    header(&o, "Auto-Submitted", "auto-generated");
    puts_(&o, "\r\n");
    for (const char *p = body; *p; p++) {
        if (*p == '\r') {
            if (p[1] == '\n')
                p++;
            puts_(&o, "\r\n");
        } else if (*p == '\n') {
            puts_(&o, "\r\n");
        } else {
            put(&o, p, 1);
        }
    }
    if (o.len < 2 || memcmp(o.buf + o.len - 2, "\r\n", 2) != 0)
        puts_(&o, "\r\n");
    if (o.overflow)
        return 0;
    out[o.len] = '\0';
    return o.len;
}

static size_t read_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct email_upload *up = arg;
    size_t room = size * nmemb;
    size_t left = up->len - up->pos;
    size_t n = left < room ? left : room;
    memcpy(ptr, up->data + up->pos, n);
    up->pos += n;
    return n;
}

int email_easy_setup(CURL *easy, const struct email_config *cfg, const char *rcpt,
                     const char *data, size_t len, struct email_upload *up, char *errstr,
                     size_t errstr_size)
{
    char addr[300];
    snprintf(addr, sizeof addr, "<%s>", rcpt);
    snprintf(up->from, sizeof up->from, "<%s>", cfg->from);
    up->data = data;
    up->len = len;
    up->pos = 0;
    up->rcpt = curl_slist_append(NULL, addr);
    if (up->rcpt == NULL) {
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    curl_easy_setopt(easy, CURLOPT_URL, cfg->url);
    curl_easy_setopt(easy, CURLOPT_MAIL_FROM, up->from);
    curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, up->rcpt);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(easy, CURLOPT_READDATA, up);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    long tls = CURLUSESSL_NONE;
    if (cfg->tls != NULL && strcmp(cfg->tls, "require") == 0)
        tls = CURLUSESSL_ALL;
    else if (cfg->tls != NULL && strcmp(cfg->tls, "try") == 0)
        tls = CURLUSESSL_TRY;
    curl_easy_setopt(easy, CURLOPT_USE_SSL, tls);
    /* A private CA (the site's own relay) must not need a system-wide trust
     * store change; verification itself stays on. */
    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
        curl_easy_setopt(easy, CURLOPT_CAINFO, cfg->ca_file);
    if (cfg->user != NULL && cfg->user[0] != '\0') {
        curl_easy_setopt(easy, CURLOPT_USERNAME, cfg->user);
        curl_easy_setopt(easy, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    }
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, cfg->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     cfg->timeout_ms < 10000 ? cfg->timeout_ms : 10000L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    return 0;
}

void email_upload_free(struct email_upload *up)
{
    curl_slist_free_all(up->rcpt);
    up->rcpt = NULL;
}
