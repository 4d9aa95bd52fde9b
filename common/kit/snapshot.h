/*
 * snapshot: the current version of a read-mostly, immutable object (rules,
 * routing table), swapped whole on hot reload -- Go's close-a-channel
 * broadcast plus an atomic pointer, with reference counts so an old version
 * lives exactly as long as its last reader.
 *
 *   snapshot_new(initial, destroy_fn)  / snapshot_destroy(s)
 *   snapshot_acquire(s, &generation)   the current object, reference taken
 *   snapshot_release(s, obj)           drop that reference
 *   snapshot_publish(s, obj)           make OBJ current; the old one is
 *                                      destroyed by its last release
 *   snapshot_generation(s)             bumps on every publish (lock-free)
 *
 * A reader holds one version for one unit of work (a message, a batch), so
 * it sees a whole version, never half of a reload. The cheap way to follow
 * reloads in a loop:
 *
 *     if (snapshot_generation(s) != my_gen) {
 *         snapshot_release(s, rules);
 *         rules = snapshot_acquire(s, &my_gen);
 *     }
 *
 * Ownership: the snapshot owns every published object (and the initial one)
 * and frees each exactly once with destroy_fn, after it is no longer current
 * and its last reader released it, or at snapshot_destroy. Objects must be
 * treated as immutable once published (readers share them without locks),
 * must be non-NULL, and must be distinct: publishing the same pointer twice
 * would free it twice. destroy_fn is never called with a lock held, on the
 * thread that made the version unused (a reader's release or the publisher).
 *
 * Thread-safety: acquire, release, publish and generation may be called from
 * any thread at the same time; snapshot_destroy is the last call, once every
 * acquired object has been released.
 */
#ifndef VIGIL_SNAPSHOT_H
#define VIGIL_SNAPSHOT_H

#include <stdint.h>

struct snapshot;

/* Frees an object the snapshot owned. Must not call back into the snapshot. */
typedef void (*snapshot_destroy_fn)(void *obj);

/* Returns a snapshot whose current object is INITIAL (non-NULL, owned from
 * now on) at generation 1, or NULL if memory or pthread resources ran out --
 * then INITIAL still belongs to the caller. DESTROY_FN may be NULL if objects
 * need no freeing. The caller owns the snapshot (snapshot_destroy). */
struct snapshot *snapshot_new(void *initial, snapshot_destroy_fn destroy_fn);

/* Destroys the current object and frees S. Precondition: every object
 * acquired from S was released (checked: aborts otherwise, since a reader
 * would be left with freed memory). NULL is a no-op. */
void snapshot_destroy(struct snapshot *s);

/* Returns the current object with a reference taken for the caller, who
 * must give it back with snapshot_release; until then the object stays
 * valid and unchanged whatever is published. If GENERATION is not NULL, it
 * receives the object's generation. Cannot fail; a short critical section. */
void *snapshot_acquire(struct snapshot *s, uint64_t *generation);

/* Returns a reference taken by snapshot_acquire. If OBJ is no longer
 * current and this was its last reader, destroys it (in this thread, after
 * the lock is dropped). OBJ must have come from snapshot_acquire on S
 * (aborts otherwise). NULL is a no-op. */
void snapshot_release(struct snapshot *s, void *obj);

/* Makes OBJ (non-NULL, distinct from every object published before, owned
 * from now on) the current object and returns its generation, one more than
 * the previous. The previous object is destroyed now if no reader holds it,
 * else by its last reader's release. Returns 0 if memory ran out: then OBJ
 * still belongs to the caller and nothing changed. */
uint64_t snapshot_publish(struct snapshot *s, void *obj);

/* Returns the current generation (1 for the initial object). One atomic
 * load: cheap enough to call per message to decide whether to re-acquire. */
uint64_t snapshot_generation(struct snapshot *s);

#endif
