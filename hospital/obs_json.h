/*
 * obs_json: one NDJSON object or one CSV record -> struct observation, the
 * text forms of vigil.Observation that hospitals and EDC exports send to
 * `vigil produce` and `vigil import`; and the other way, for --emit-ndjson.
 *
 * Field names are the Avro field names (schemas/observation.avsc):
 *   required  observation_id study_id site_id subject_id loinc effective_time
 *             status
 *   optional  value ref_low ref_high (number; JSON null or empty CSV: absent)
 *             unit visit (string; default "") issued_time (default 0)
 * Times are RFC 3339 strings ("2025-01-06T08:30:00Z", fraction and offset
 * allowed) or integer milliseconds since the epoch. status takes the FHIR
 * spelling ("entered-in-error"; the Avro "entered_in_error" is accepted).
 * Keys and columns vigil does not know are ignored, so an export with extra
 * columns imports; a missing required field is an error naming it.
 *
 * Every error message is a precise reason without position ("missing field
 * subject_id", "value 'abc' is not a number"); the caller prefixes
 * FILE:LINE. Outside text is never trusted: every copy is bounded by the
 * fixed sizes of struct observation.
 *
 * Thread-safety: every function is pure over caller-owned memory.
 */
#ifndef VIGIL_OBS_JSON_H
#define VIGIL_OBS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "observation.h"

/* The longest line obs_json_format() writes (every field at its maximum,
 * every byte escaped as \u00XX), newline excluded, NUL included. */
#define OBS_JSON_MAX 4096

/* Parses S as an RFC 3339 date-time with a zone ("Z" or +hh:mm), or, when
 * ALLOW_DATE, also a bare date "YYYY-MM-DD" (midnight UTC; FHIR dateTime
 * allows it), or a string of digits (milliseconds since the epoch). Stores
 * milliseconds since the epoch (fraction truncated to ms) in *MS. Returns 0,
 * or -1 with the reason in errstr and *MS untouched. */
int obs_time_parse(const char *s, bool allow_date, int64_t *ms, char *errstr,
                   size_t errstr_size);

/* Writes MS as "YYYY-MM-DDThh:mm:ss.mmmZ" into BUF (at least 32 bytes).
 * Returns BUF. Cannot fail for years 0-9999; other times are clamped. */
char *obs_time_format(int64_t ms, char *buf, size_t cap);

/* Copies VALUE into DST (capacity CAP including the NUL) for field NAME.
 * Returns 0, or -1 with "NAME is N bytes, longer than M" or (REQUIRED and
 * empty) "NAME is empty" or "NAME is not valid UTF-8" in errstr; DST is
 * then "". */
int obs_field_copy(char *dst, size_t cap, const char *name, const char *value, bool required,
                   char *errstr, size_t errstr_size);

/* Maps one NDJSON line (TEXT, LEN bytes, need not be NUL-terminated) to
 * *OUT. Returns 0, or -1 with the reason in errstr ("not JSON: ..." with
 * the column, "missing field loinc", ...); *OUT is then unspecified. */
int obs_json_parse(const char *text, size_t len, struct observation *out, char *errstr,
                   size_t errstr_size);

/* Writes OBS as one NDJSON object (no newline) into BUF (CAP bytes;
 * OBS_JSON_MAX always suffices) with the field names above, times as RFC
 * 3339 strings, numbers with up to 15 significant digits. Returns the
 * length, or 0 if CAP is too small (BUF then holds a truncated prefix). */
size_t obs_json_format(const struct observation *obs, char *buf, size_t cap);

/* ---- CSV (RFC 4180) ------------------------------------------------------ */

#define OBS_CSV_MAX_FIELDS 64

/* Splits one complete CSV record (REC, LEN bytes, modified in place: quotes
 * removed, "" unescaped, fields NUL-terminated; REC must have room for
 * LEN + 1 bytes) into at most OBS_CSV_MAX_FIELDS fields. Returns the number
 * of fields, or -1 with the reason in errstr (stray quote, text after a
 * closing quote, unterminated quote, too many fields). */
int obs_csv_split(char *rec, size_t len, char **fields, char *errstr, size_t errstr_size);

/* Returns true if the LEN bytes at REC end inside a quoted field, i.e. the
 * record continues on the next line. Cannot fail. */
bool obs_csv_open_quote(const char *rec, size_t len);

/* Which column holds each Avro field (-1: absent). Built from the header. */
struct obs_csv_columns {
    int col[13];
    int ncols;
};

/* Reads the header record (already split). Returns 0, or -1 with errstr
 * naming the first required field without a column, or a duplicated one. */
int obs_csv_columns_init(struct obs_csv_columns *cols, char **fields, int n, char *errstr,
                         size_t errstr_size);

/* Maps one split data record to *OUT using COLS. Returns 0, or -1 with the
 * reason in errstr (wrong number of fields, missing or bad value). */
int obs_csv_map(const struct obs_csv_columns *cols, char **fields, int n,
                struct observation *out, char *errstr, size_t errstr_size);

#endif
