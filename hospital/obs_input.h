/*
 * obs_input: reads observations from one input stream (a file or stdin) in
 * any of the text forms `vigil produce` and `vigil import` accept, one
 * record at a time, with the position of every record for error messages.
 *
 *   NDJSON  one observation object per line (obs_json.h); blank lines skipped
 *   CSV     RFC 4180, a header line naming the Avro fields, quoted fields may
 *           hold commas, quotes ("") and line breaks (obs_json.h)
 *   FHIR    FHIR R4 Observation or Bundle JSON (fhir.h): NDJSON of resources,
 *           or one pretty-printed document (at most OBS_INPUT_DOC_MAX bytes)
 *
 * A record is one NDJSON line, one CSV data record, or one FHIR Observation
 * (a Bundle entry counts as a record of its own). Records are numbered from
 * 0 in input order, invalid ones included, so `--skip N` means "the first
 * N records" whatever they held.
 *
 * Format guessing (OBS_FORMAT_AUTO): by file name (.ndjson .jsonl -> NDJSON,
 * .csv -> CSV, .json -> FHIR), else by the first non-blank line: a JSON
 * object naming "resourceType" -> FHIR, another JSON object -> NDJSON, a
 * line starting with '{' alone (pretty-printed) -> FHIR, anything else ->
 * CSV.
 *
 * Bounded: a line or CSV record is at most OBS_INPUT_LINE_MAX bytes (longer
 * ones are reported invalid and skipped), a FHIR document at most
 * OBS_INPUT_DOC_MAX bytes and OBS_INPUT_ENTRIES_MAX entries.
 *
 * Thread-safety: one input is used by one thread at a time.
 */
#ifndef VIGIL_OBS_INPUT_H
#define VIGIL_OBS_INPUT_H

#include <stdint.h>
#include <stdio.h>

#include "fhir.h"
#include "observation.h"

#define OBS_INPUT_LINE_MAX (1024 * 1024)
#define OBS_INPUT_DOC_MAX (64 * 1024 * 1024)
#define OBS_INPUT_ENTRIES_MAX 100000

enum obs_format {
    OBS_FORMAT_AUTO = 0,
    OBS_FORMAT_NDJSON,
    OBS_FORMAT_CSV,
    OBS_FORMAT_FHIR,
};

/* Parses "auto", "ndjson", "csv" or "fhir"; returns -1 if none. */
int obs_format_parse(const char *s);

/* Returns "auto", "ndjson", "csv" or "fhir". Cannot fail. */
const char *obs_format_name(enum obs_format fmt);

enum obs_input_status {
    OBS_INPUT_RECORD = 0, /* *out holds the next record */
    OBS_INPUT_INVALID,    /* the next record cannot be mapped; errstr says
                           * "NAME:LINE: reason" (or "NAME: Bundle.entry[i]:
                           * reason"); reading may go on */
    OBS_INPUT_EOF,        /* no more records */
    OBS_INPUT_ERROR,      /* the stream cannot be read on (I/O error, unusable
                           * CSV header, oversized document); errstr says why */
};

struct obs_input;

/* Returns a reader of F (borrowed: the caller closes it after
 * obs_input_destroy) named NAME in messages (copied), in format FMT. FOPT
 * (may be NULL: defaults) is copied, its strings borrowed. Returns NULL on
 * allocation failure. */
struct obs_input *obs_input_new(FILE *f, const char *name, enum obs_format fmt,
                                const struct fhir_options *fopt);

/* Frees IN; does not close the stream. NULL is a no-op. */
void obs_input_destroy(struct obs_input *in);

/* Reads the next record into *OUT. See enum obs_input_status; after EOF or
 * ERROR every later call returns the same. */
enum obs_input_status obs_input_next(struct obs_input *in, struct observation *out,
                                     char *errstr, size_t errstr_size);

/* Bytes consumed from the stream so far (for progress against its size). */
uint64_t obs_input_bytes(const struct obs_input *in);

/* Records returned so far (RECORD and INVALID). */
uint64_t obs_input_records(const struct obs_input *in);

/* The format in use: FMT given to obs_input_new, or the guess once the
 * first record has been read (OBS_FORMAT_AUTO before). */
enum obs_format obs_input_format(const struct obs_input *in);

#endif
