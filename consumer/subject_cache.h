/*
 * subject_cache: the subjects one analysis thread holds in memory — a hash
 * table from the message key ("study_id/subject_id") to the subject's
 * state (subject_state.h), bounded by a least-recently-used limit.
 *
 * Interface routines:
 *   subject_cache_new / _destroy
 *   subject_cache_get     find or create a subject's state; says whether it
 *                         must be loaded from PostgreSQL first
 *   subject_cache_known   whether a subject is in memory and current
 *   subject_cache_drop    forget a subject (its state is not to be trusted)
 *   subject_cache_settle  account for what the most recent subject's state
 *                         grew to, and evict while over the memory budget
 *
 * Generations: the caller passes the worker's assignment generation (bumped
 * on every rebalance). A state kept from an earlier generation is not
 * current — another worker may have moved the subject on meanwhile — so
 * subject_cache_get empties it and reports it fresh, to be loaded again.
 *
 * What it does not do: load anything. Loading is store_load.h's; deciding
 * when is the analysis thread's (analyse.c).
 *
 * Ownership: the cache owns every state; a state pointer it returns is
 * valid until that subject is evicted or dropped. subject_cache_get evicts
 * only the least recently used, so the states of up to MAX_SUBJECTS - 1
 * subjects got one after another all stay valid.
 *
 * Thread-safety: none inside. Each analysis thread owns its cache (dispatch
 * by key sends a subject to one thread only).
 */
#ifndef VIGIL_SUBJECT_CACHE_H
#define VIGIL_SUBJECT_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "observation.h"
#include "subject_state.h"

/* Room for a key "study_id/subject_id" and its NUL. */
#define SUBJECT_CACHE_KEY_MAX (2 * OBS_ID_MAX + 2)

struct subject_cache;

/* Returns an empty cache that keeps at most MAX_SUBJECTS subjects (always
 * the one just got, even when 0) and, once settled, at most MAX_BYTES of
 * memory in their states (0: no byte limit), or NULL if out of memory.
 * Free with subject_cache_destroy(). */
struct subject_cache *subject_cache_new(size_t max_subjects, size_t max_bytes);

/* Frees C and every state in it. NULL is a no-op. */
void subject_cache_destroy(struct subject_cache *c);

/* Returns the state of subject KEY, making it the most recently used.
 * *FRESH is set when the state is new or was emptied (kept from a
 * generation other than GEN): it must be loaded before use. A new subject
 * first evicts the least recently used ones beyond the limit. Returns NULL
 * only if out of memory (then C is unchanged but for evictions). */
struct subject_state *subject_cache_get(struct subject_cache *c, const char *key, int gen,
                                        bool *fresh);

/* Whether subject KEY is in memory with a state of generation GEN. Changes
 * nothing (not even recency). */
bool subject_cache_known(const struct subject_cache *c, const char *key, int gen);

/* Forgets subject KEY and frees its state (a load failed half way, so the
 * state must not be used). A KEY not in memory is a no-op. */
void subject_cache_drop(struct subject_cache *c, const char *key);

/* Measures the state of the most recently got subject (it grows as
 * results are added after subject_cache_get) and evicts least recently
 * used subjects while the cache holds more than its MAX_BYTES, never the
 * most recent one. Invalidates every state pointer but the most recent's:
 * call it when the caller holds no other. */
void subject_cache_settle(struct subject_cache *c);

/* Bytes the cache's states held at the last settle. */
size_t subject_cache_bytes(const struct subject_cache *c);

#endif
