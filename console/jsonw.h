/*
 * jsonw: JSON text written straight into a buffer, for the answers the
 * console serves most (the alert queue's pages). Building them as jansson
 * values first cost about two thirds of the console's CPU per page (an
 * allocation per field, then a dump and the inert rewrite); this writes
 * the same JSON in one pass. Everything else stays on jansson.
 *
 * Strings come out as respond_json's (api.c) do: ASCII only (\uXXXX for
 * anything else, surrogate pairs above U+FFFF), control characters
 * escaped, and <, >, & as \u003c, \u003e, \u0026 so the answer stays inert
 * if something embeds it in HTML. Bytes that are not UTF-8 become U+FFFD
 * (PostgreSQL hands out valid UTF-8; this is for whatever else).
 *
 * Hand-written because jansson has no streaming writer. The caller writes
 * the punctuation ({ } [ ] : ,) with jsonw_raw; jsonw only escapes.
 */
#ifndef VIGIL_JSONW_H
#define VIGIL_JSONW_H

#include <stdbool.h>
#include <stddef.h>

struct jsonw {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory: everything after is dropped */
};

/* Appends N bytes of S as they are. */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);

/* Appends the C string S as they are. */
void jsonw_lit(struct jsonw *w, const char *s);

/* Appends S as a JSON string ("..."), or null when S is NULL. */
void jsonw_str(struct jsonw *w, const char *s);

/* The text (NUL-terminated, the caller frees it), or NULL after an
 * allocation failure (the buffer is freed). W is empty afterwards. */
char *jsonw_finish(struct jsonw *w);

#endif
