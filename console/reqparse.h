/*
 * reqparse: the console's parsers of request bytes, independent of the HTTP
 * server so they can be unit-tested and fuzzed alone.
 *
 *   reqparse_query_parse()   "a=1&b=x%20y" -> decoded (name, value) pairs
 *   reqparse_query_get()     one parameter's value, or NULL
 *   reqparse_cookie_get()    one cookie's value from a Cookie header
 *   reqparse_json_object()   a bounded JSON object body (jansson)
 *   reqparse_time_valid()    an RFC 3339 time as the API accepts it
 *   reqparse_id_valid()      an identifier as the API accepts it
 *
 * Every parser bounds what it accepts (lengths, counts) and refuses rather
 * than truncates: an over-long or malformed input is the client's error
 * (400), never a silently shortened value.
 *
 * Thread-safety: no shared state; any thread.
 */
#ifndef VIGIL_CONSOLE_REQPARSE_H
#define VIGIL_CONSOLE_REQPARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define REQPARSE_QUERY_MAX 4096   /* bytes of a raw query string */
#define REQPARSE_PARAMS_MAX 32    /* parameters in one query */
#define REQPARSE_VALUE_MAX 512    /* bytes of one decoded value */
#define REQPARSE_BODY_MAX 16384   /* bytes of a JSON body */
#define REQPARSE_ID_MAX 200       /* bytes of an identifier (study, site, alert, subject) */

struct reqparse_query {
    size_t n;
    const char *name[REQPARSE_PARAMS_MAX];
    const char *value[REQPARSE_PARAMS_MAX];
    char *buf; /* owns the decoded strings */
};

/* Decodes application/x-www-form-urlencoded IN[0..LEN) ('+' is a space,
 * %XX a byte) into OUT (OUTSZ bytes, NUL-terminated). A malformed escape,
 * a NUL, a result that does not fit, or (unless CONTROLS_OK) a control
 * character: -1. Returns the decoded length. The one decoder of query
 * strings and of form bodies (form.h). */
long reqparse_urldecode(const char *in, size_t len, char *out, size_t outsz, bool controls_ok);

/* Parses RAW (the part after '?', NULL or "" for none) into Q. Names must be
 * [a-z_]{1,32}; a name may appear once; values are percent-decoded ('+' is a
 * space) and may not contain control characters. Returns 0, or -1 with
 * errstr set ("parameter 'x' given twice", ...) and Q empty. The caller
 * frees Q with reqparse_query_free either way. */
int reqparse_query_parse(struct reqparse_query *q, const char *raw, char *errstr,
                         size_t errstr_size);

/* Adds one already-decoded pair (what an HTTP server that decodes for us
 * hands over), checked as reqparse_query_parse checks. Returns 0 or -1. */
int reqparse_query_add(struct reqparse_query *q, const char *name, const char *value,
                       char *errstr, size_t errstr_size);

/* Returns the value of NAME, or NULL when absent. Borrowed from Q. */
const char *reqparse_query_get(const struct reqparse_query *q, const char *name);

/* Returns 0 when every parameter of Q is one of ALLOWED (NULL-terminated),
 * else -1 with errstr naming the first one that is not. */
int reqparse_query_only(const struct reqparse_query *q, const char *const *allowed, char *errstr,
                        size_t errstr_size);

void reqparse_query_free(struct reqparse_query *q);

/* Copies the value of cookie NAME from HEADER ("a=1; b=2") into out.
 * Returns 1 when found and it fits, 0 when absent (or HEADER is NULL), -1
 * when present but longer than outsz - 1 or HEADER is malformed. */
int reqparse_cookie_get(const char *header, const char *name, char *out, size_t outsz);

/* Parses BODY (LEN bytes) as one JSON object, at most REQPARSE_BODY_MAX
 * bytes, duplicate keys refused. Returns the object (caller json_decrefs)
 * or NULL with errstr set. */
json_t *reqparse_json_object(const char *body, size_t len, char *errstr, size_t errstr_size);

/* True when S is "YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|+HH:MM|-HH:MM)" with
 * plausible field ranges: checked before PostgreSQL sees it. */
bool reqparse_time_valid(const char *s);

/* True when S is 1..REQPARSE_ID_MAX bytes of printable ASCII other than
 * '/', '\\', quotes and angle brackets. */
bool reqparse_id_valid(const char *s);

#endif
