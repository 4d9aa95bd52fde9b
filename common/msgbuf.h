/*
 * msgbuf: problems collected as lines in a caller's fixed buffer, for
 * validators that report every problem they find at once (policy.c,
 * directory_file.c). The buffer never overflows: lines past its end are
 * cut, and counted all the same.
 *
 * Thread-safety: a msgbuf belongs to one thread.
 */
#ifndef VIGIL_MSGBUF_H
#define VIGIL_MSGBUF_H

#include <stdarg.h>
#include <stddef.h>

struct msgbuf {
    char *buf;   /* the caller's, SIZE bytes, kept NUL-terminated */
    size_t size; /* at least 1 */
    size_t used;
    int n;       /* lines added, cut or not */
};

/* A msgbuf over BUF (SIZE >= 1 bytes), emptied. */
void msgbuf_init(struct msgbuf *m, char *buf, size_t size);

/* Appends a line: PREFIX (may be "") then FMT's text, after a '\n' unless
 * it is the first. Cannot fail (a full buffer cuts the line). */
void msgbuf_addf(struct msgbuf *m, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void msgbuf_vaddf(struct msgbuf *m, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
