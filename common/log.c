#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"

/* The only process-wide setting here; written once by main() at start. */
static atomic_int min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
    atomic_store(&min_level, (int)level);
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

/* Appends s to buf as the inside of a JSON string, escaping what JSON needs.
 * Returns the new length; never writes past cap-1. */
static size_t json_escape(char *buf, size_t len, size_t cap, const char *s)
{
    for (; *s != '\0' && len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[len++] = '\\';
            buf[len++] = (char)c;
        } else if (c == '\n') {
            buf[len++] = '\\';
            buf[len++] = 'n';
        } else if (c < 0x20) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
        } else {
            buf[len++] = (char)c;
        }
    }
    return len;
}

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
{
    if ((int)level < atomic_load(&min_level))
        return;

    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[4608];
    size_t len = (size_t)snprintf(line, sizeof line,
                                  "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\","
                                  "\"level\":\"%s\",\"component\":\"",
                                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                  tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                                  level_names[level]);
    len = json_escape(line, len, sizeof line, component);
    len += (size_t)snprintf(line + len, sizeof line - len, "\",\"msg\":\"");
    len = json_escape(line, len, sizeof line, msg);
    len += (size_t)snprintf(line + len, sizeof line - len, "\"}\n");
    if (len >= sizeof line)
        len = sizeof line - 1;
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to report a failed log write */
}

char *log_mask_subject(const char *subject, char *out, size_t outsz)
{
    if (outsz == 0)
        return out;
    if (subject == NULL)
        subject = "";
    /* FNV-1a: stable across processes, so one subject's lines can be
     * correlated without revealing the id. */
    uint64_t h = hash_str(subject, HASH_SEED);
    char lead[3] = {0};
    size_t n = strlen(subject);
    lead[0] = n > 0 ? subject[0] : '?';
    lead[1] = n > 1 ? subject[1] : '?';
    snprintf(out, outsz, "%s~%04x", lead,
             (unsigned)((h ^ (h >> 16) ^ (h >> 32) ^ (h >> 48)) & 0xffffu));
    return out;
}
