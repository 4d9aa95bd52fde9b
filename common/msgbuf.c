/*
 * msgbuf: bounded lines of problems (msgbuf.h).
 */
#include "msgbuf.h"

#include <stdio.h>

void msgbuf_init(struct msgbuf *m, char *buf, size_t size)
{
    m->buf = buf;
    m->size = size;
    m->used = 0;
    m->n = 0;
    buf[0] = '\0';
}

/* Moves USED past K bytes just written (at most to the last byte). */
static void advance(struct msgbuf *m, int k)
{
    if (k > 0)
        m->used += (size_t)k < m->size - m->used ? (size_t)k : m->size - m->used - 1;
}

void msgbuf_vaddf(struct msgbuf *m, const char *prefix, const char *fmt, va_list ap)
{
    m->n++;
    if (m->used + 1 >= m->size)
        return;
    advance(m, snprintf(m->buf + m->used, m->size - m->used, "%s%s", m->used > 0 ? "\n" : "",
                        prefix));
    advance(m, vsnprintf(m->buf + m->used, m->size - m->used, fmt, ap));
}

void msgbuf_addf(struct msgbuf *m, const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    msgbuf_vaddf(m, prefix, fmt, ap);
    va_end(ap);
}
