/*
 * log: JSON-lines logging to stderr, one object per line:
 *   {"ts":"2026-11-26T04:10:00.123Z","level":"info","component":"worker","msg":"..."}
 *
 * Subject ids are personal data under pseudonym: never log one raw; pass it
 * through log_mask_subject() first. Secrets are never logged at all.
 *
 * Thread-safe: each line is written with one write(2) call, so lines from
 * different threads never interleave.
 */
#ifndef VIGIL_LOG_H
#define VIGIL_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Sets the lowest level written (default LOG_INFO). Called by main(). */
void log_set_level(enum log_level level);

/* Parses "debug", "info", "warn" or "error"; returns -1 if none. */
int log_level_parse(const char *s);

/* Writes one log line. component is a short constant ("worker"). Cannot
 * fail visibly: a line that cannot be written is dropped. */
void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes a pseudonymous but stable mask of subject id SUBJECT into out
 * (e.g. "SU…7f3a": two leading characters and a 16-bit hash), always
 * NUL-terminated. Returns out. */
char *log_mask_subject(const char *subject, char *out, size_t outsz);

#define LOG_MASK_SIZE 16

#endif
