/* snapshot: readers hammer acquire/release while a writer publishes 1,000
 * versions. Readers must never see a torn or freed object (checksum), their
 * generation must never go back, and every object must be destroyed exactly
 * once. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hash.h"
#include "snapshot.h"
#include "testlib.h"

#define VERSIONS 1000
#define READERS 4
#define WORDS 32

struct book {
    atomic_int destroyed[VERSIONS + 1]; /* per object id */
    atomic_int destroy_calls;
    atomic_int bad_destroy; /* destroyed with a broken checksum */
};

struct obj {
    struct book *book;
    uint32_t id; /* 0 = initial, i = i-th publish */
    uint64_t words[WORDS];
    uint64_t checksum;
};

static uint64_t sum_of(const struct obj *o)
{
    return hash_bytes(o->words, sizeof o->words, HASH_SEED ^ o->id);
}

static struct obj *obj_new(struct book *book, uint32_t id)
{
    struct obj *o = malloc(sizeof *o);
    o->book = book;
    o->id = id;
    for (int i = 0; i < WORDS; i++)
        o->words[i] = (uint64_t)id * 2654435761u + (uint64_t)i;
    o->checksum = sum_of(o);
    return o;
}

static void obj_destroy(void *p)
{
    struct obj *o = p;
    if (sum_of(o) != o->checksum)
        atomic_fetch_add(&o->book->bad_destroy, 1);
    atomic_fetch_add(&o->book->destroyed[o->id], 1);
    atomic_fetch_add(&o->book->destroy_calls, 1);
    /* Poison, so a reader still using it would fail its checksum (and ASan
     * reports the use after free). */
    memset(o->words, 0xA5, sizeof o->words);
    free(o);
}

static void test_single_thread(void)
{
    struct book *book = calloc(1, sizeof *book);
    struct snapshot *s = snapshot_new(obj_new(book, 0), obj_destroy);
    CHECK(s != NULL);
    CHECK(snapshot_generation(s) == 1);

    uint64_t gen = 0;
    struct obj *a = snapshot_acquire(s, &gen);
    CHECK(gen == 1);
    CHECK_EQ_INT(a->id, 0);
    struct obj *a2 = snapshot_acquire(s, NULL); /* a second reader */
    CHECK(a2 == a);

    CHECK(snapshot_publish(s, obj_new(book, 1)) == 2);
    CHECK(snapshot_generation(s) == 2);
    CHECK_EQ_INT(atomic_load(&book->destroy_calls), 0); /* still read */
    struct obj *b = snapshot_acquire(s, &gen);
    CHECK(gen == 2);
    CHECK_EQ_INT(b->id, 1);
    CHECK(a->checksum == sum_of(a)); /* the old one is intact */

    snapshot_release(s, a);
    CHECK_EQ_INT(atomic_load(&book->destroy_calls), 0);
    snapshot_release(s, a2); /* last reader of version 1 */
    CHECK_EQ_INT(atomic_load(&book->destroyed[0]), 1);

    snapshot_release(s, b);
    snapshot_release(s, NULL);
    /* Nobody reads version 2: the publish destroys it at once. */
    CHECK(snapshot_publish(s, obj_new(book, 2)) == 3);
    CHECK_EQ_INT(atomic_load(&book->destroyed[1]), 1);
    CHECK(snapshot_publish(s, NULL) == 0);
    CHECK(snapshot_generation(s) == 3);

    snapshot_destroy(s);
    CHECK_EQ_INT(atomic_load(&book->destroyed[2]), 1);
    CHECK_EQ_INT(atomic_load(&book->destroy_calls), 3);
    snapshot_destroy(NULL);
    free(book);
}

struct shared {
    struct snapshot *s;
    atomic_int stop;
    atomic_int torn;
    atomic_int gen_backwards;
    atomic_int id_mismatch;
    atomic_long reads;
    atomic_int started;
    atomic_int saw_middle; /* readers that saw a version strictly between */
};

static void *reader(void *p)
{
    struct shared *sh = p;
    uint64_t last_gen = 0;
    long reads = 0;
    int k = 0;
    bool middle = false;
    atomic_fetch_add(&sh->started, 1);
    while (!atomic_load(&sh->stop)) {
        uint64_t gen;
        struct obj *o = snapshot_acquire(sh->s, &gen);
        if (gen < last_gen)
            atomic_fetch_add(&sh->gen_backwards, 1);
        last_gen = gen;
        if (gen > 1 && gen < VERSIONS + 1)
            middle = true;
        if (o->id + 1u != gen)
            atomic_fetch_add(&sh->id_mismatch, 1);
        if (sum_of(o) != o->checksum)
            atomic_fetch_add(&sh->torn, 1);
        /* Now and then hold it across reloads, so versions retire with
         * readers still on them. */
        if (++k % 64 == 0) {
            for (int spin = 0; spin < 2000; spin++)
                if (snapshot_generation(sh->s) > gen + 2)
                    break;
            if (sum_of(o) != o->checksum)
                atomic_fetch_add(&sh->torn, 1);
        }
        snapshot_release(sh->s, o);
        reads++;
    }
    atomic_fetch_add(&sh->reads, reads);
    if (middle)
        atomic_fetch_add(&sh->saw_middle, 1);
    return NULL;
}

static bool all_reading(void *p)
{
    struct shared *sh = p;
    return atomic_load(&sh->started) == READERS;
}

static void test_hammer(void)
{
    struct book *book = calloc(1, sizeof *book);
    struct shared sh = {.s = snapshot_new(obj_new(book, 0), obj_destroy)};
    pthread_t t[READERS];
    for (int i = 0; i < READERS; i++)
        pthread_create(&t[i], NULL, reader, &sh);

    CHECK(testlib_wait(all_reading, &sh, 5));
    int gen_errors = 0;
    for (uint32_t id = 1; id <= VERSIONS; id++) {
        if (snapshot_publish(sh.s, obj_new(book, id)) != (uint64_t)id + 1)
            gen_errors++;
        if (id % 10 == 0) {
            /* Let readers run on this version before the next reloads. */
            struct timespec ts = {0, 20 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < READERS; i++)
        pthread_join(t[i], NULL);

    CHECK_EQ_INT(gen_errors, 0);
    CHECK(snapshot_generation(sh.s) == VERSIONS + 1);
    CHECK_EQ_INT(atomic_load(&sh.torn), 0);
    CHECK_EQ_INT(atomic_load(&sh.gen_backwards), 0);
    CHECK_EQ_INT(atomic_load(&sh.id_mismatch), 0);
    CHECK(atomic_load(&sh.reads) > 0);
    CHECK(atomic_load(&sh.saw_middle) > 0); /* reads overlapped the reloads */
    /* Every version but the current one is gone once its readers left. */
    CHECK_EQ_INT(atomic_load(&book->destroy_calls), VERSIONS);
    snapshot_destroy(sh.s);
    CHECK_EQ_INT(atomic_load(&book->destroy_calls), VERSIONS + 1);
    int not_once = 0;
    for (int i = 0; i <= VERSIONS; i++)
        if (atomic_load(&book->destroyed[i]) != 1)
            not_once++;
    CHECK_EQ_INT(not_once, 0);
    CHECK_EQ_INT(atomic_load(&book->bad_destroy), 0);
    free(book);
}

int main(void)
{
    test_single_thread();
    test_hammer();
    return testlib_done();
}
