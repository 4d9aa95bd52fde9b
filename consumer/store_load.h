/*
 * store_load: the worker's reads of the tables store.c writes — a
 * subject's stored results (`observations`) and its active alerts
 * (`alerts`), loaded into the subject's state (subject_state.h) the first
 * time an analysis thread sees the subject in an assignment generation.
 * store.c (the write path) and this file are the only ones that know those
 * tables' columns.
 *
 * Interface routines:
 *   store_load_new / _destroy
 *   store_load_subjects   load many subjects in two statements (batched)
 *   store_load_subject    the same for one subject
 *
 * What is loaded, per subject: up to 5,000 results with a normalised value,
 * oldest first, each cleaned again (clean.h) and added to the state; and up
 * to 64 signal alerts not retracted, newest first by detection time, added
 * oldest first so the state forgets the oldest when full.
 *
 * PostgreSQL unreachable or failing: the call fails with the reason; the
 * caller retries (the connection is made again on the next call). States
 * may then be half filled and must be emptied or dropped before use.
 *
 * Ownership: a loader holds one PostgreSQL connection, opened lazily.
 * Thread-safety: none inside; one loader per analysis thread.
 */
#ifndef VIGIL_STORE_LOAD_H
#define VIGIL_STORE_LOAD_H

#include <stddef.h>

#include "metrics.h"
#include "observation.h"
#include "subject_state.h"

/* A subject to load: its state (filled) and the result that brought it,
 * whose study, site and subject ids name it and fill the loaded results.
 * Both borrowed. */
struct store_load_req {
    struct subject_state *st;
    const struct observation *obs;
};

struct store_load;

/* Returns a loader that connects with CONNINFO (borrowed: it must outlive
 * the loader) on first use, counting loads in M (borrowed), or NULL if out
 * of memory. Free with store_load_destroy(). */
struct store_load *store_load_new(const char *conninfo, struct metrics *m);

/* Closes L's connection and frees it. NULL is a no-op. */
void store_load_destroy(struct store_load *l);

/* Loads the stored results and active alerts of the N subjects of REQ into
 * their states, in two statements whatever N. Returns 0, or -1 with the
 * reason in ERRSTR (PostgreSQL unreachable or failing, out of memory): the
 * states may then be half filled. */
int store_load_subjects(struct store_load *l, const struct store_load_req *req, int n, char *errstr,
                        size_t errstr_size);

/* store_load_subjects() for the one subject of OBS, into ST. */
int store_load_subject(struct store_load *l, struct subject_state *st,
                       const struct observation *obs, char *errstr, size_t errstr_size);

#endif
