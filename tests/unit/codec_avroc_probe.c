/*
 * codec_avroc_probe: what avro-c 1.11 does, unguarded, with the hostile
 * bodies the codec's bounds walk (common/avro/avro_guard.c) refuses. The
 * evidence behind each guard; not a test (its outcome is avro-c's, and a
 * crash is an expected answer). Each case runs in a child process:
 *
 *   codec_avroc_probe            one line per case: what avro_value_read()
 *                                returned, the largest allocation avro-c
 *                                asked for, or the signal that ended it
 *
 * avro-c reads into a generic value of the writer schema, exactly as the
 * codec calls it after the guard (avro_resolve.c). A custom avro-c
 * allocator (avro_set_allocator, global: fine in this tool, never in the
 * codec) records the sizes requested. Each child has 10 s of CPU and
 * 4 GiB of address space.
 *
 * The same bodies, through the codec, are regression tests in
 * tests/unit/test_codec.c (test_avroc_reproducers).
 */
#include <avro.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t largest;

static void *probe_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    if (nsize > largest)
        largest = nsize;
    return realloc(ptr, nsize);
}

struct body {
    uint8_t b[1 << 20];
    size_t n;
};

static void put_long(struct body *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z >= 0x80) {
        b->b[b->n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    b->b[b->n++] = (uint8_t)z;
}

static const char *const schemas[] = {
    /* 0 */ "\"string\"",
    /* 1 */ "{\"type\":\"array\",\"items\":\"null\"}",
    /* 2 */ "{\"type\":\"record\",\"name\":\"Node\",\"fields\":[{\"name\":\"kids\","
            "\"type\":{\"type\":\"array\",\"items\":\"Node\"}}]}",
    /* 3 */ "{\"type\":\"fixed\",\"name\":\"Big\",\"size\":1099511627776}",
    /* 4 */ "{\"type\":\"map\",\"values\":\"null\"}",
    /* 5 */ "\"long\"",
    /* 6 */ "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"B\"]}",
    /* 7 */ "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"R\"}]}",
    /* 8 */ "{\"type\":\"array\",\"items\":[\"null\",{\"type\":\"record\",\"name\":\"Big\","
            "\"fields\":[{\"name\":\"b\",\"type\":{\"type\":\"fixed\",\"name\":\"F\","
            "\"size\":60000}}]}]}",
};

/* Runs one case; prints what happened. */
static void run(const char *name, int schema, const struct body *b)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* SIGXCPU after 10 s of CPU; at most 4 GiB of address space, so a
         * runaway case fails its allocations instead of meeting the OOM
         * killer on a shared machine. */
        struct rlimit cpu = {10, 20}, as = {UINT64_C(4) << 30, UINT64_C(4) << 30};
        setrlimit(RLIMIT_CPU, &cpu);
        setrlimit(RLIMIT_AS, &as);
        avro_set_allocator(probe_alloc, NULL);
        avro_schema_t s;
        if (avro_schema_from_json_length(schemas[schema], strlen(schemas[schema]), &s) != 0) {
            printf("%-36s schema refused: %s\n", name, avro_strerror());
            _exit(0);
        }
        avro_value_iface_t *iface = avro_generic_class_from_schema(s);
        avro_value_t v;
        avro_generic_value_new(iface, &v);
        avro_reader_t in = avro_reader_memory((const char *)b->b, (int64_t)b->n);
        largest = 0;
        int rc = avro_value_read(in, &v);
        char text[200];
        snprintf(text, sizeof text, "%s", rc ? avro_strerror() : "");
        text[strcspn(text, "\n")] = '\0';
        int e = -1;
        if (rc == 0 && avro_value_get_type(&v) == AVRO_ENUM)
            avro_value_get_enum(&v, &e);
        printf("%-36s rc %d %s; largest allocation %zu bytes%s", name, rc, text, largest,
               e >= 0 ? "" : "\n");
        if (e >= 0)
            printf("; enum index %d accepted\n", e);
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (WIFSIGNALED(status))
        printf("%-36s killed by signal %d (%s) after %ld.%02ld s CPU, peak RSS %ld MiB\n", name,
               WTERMSIG(status), strsignal(WTERMSIG(status)), (long)ru.ru_utime.tv_sec,
               (long)ru.ru_utime.tv_usec / 10000, ru.ru_maxrss / 1024);
    else if (WEXITSTATUS(status) != 0)
        printf("%-36s exited %d (a sanitizer report above?)\n", name, WEXITSTATUS(status));
}

int main(void)
{
    static struct body b;
    struct {
        const char *name;
        int schema;
        int64_t len; /* the hidden length, or -1 for the special bodies */
    } lengths[] = {
        {"string length -1", 0, -1},
        {"string length -3", 0, -3},
        {"string length 2^31", 0, INT64_C(1) << 31},
        {"string length 2^40", 0, INT64_C(1) << 40},
        {"array of nulls, count 2^40", 1, INT64_C(1) << 40},
        {"array of nulls, count -2^62", 1, -(INT64_C(1) << 62)},
        {"map of nulls, key length 2^31", 4, 0},
    };
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        b.n = 0;
        if (lengths[i].schema == 4) {
            put_long(&b, 1);
            put_long(&b, INT64_C(1) << 31);
        } else {
            put_long(&b, lengths[i].len);
            if (lengths[i].schema == 1 && lengths[i].len < 0)
                put_long(&b, 0); /* the block's byte size */
        }
        b.b[b.n++] = 'x';
        run(lengths[i].name, lengths[i].schema, &b);
    }

    b.n = 0; /* an 11-byte varint */
    for (int i = 0; i < 10; i++)
        b.b[b.n++] = 0xff;
    b.b[b.n++] = 0x01;
    run("long as an 11-byte varint", 5, &b);

    b.n = 0; /* a 10-byte varint whose last byte overflows 64 bits */
    for (int i = 0; i < 9; i++)
        b.b[b.n++] = 0xff;
    b.b[b.n++] = 0x7f;
    run("long as a 10-byte varint past 2^64", 5, &b);

    b.n = 0;
    put_long(&b, 7);
    run("enum index 7 of 2", 6, &b);

    b.n = 0;
    run("fixed of 2^40 bytes (schema), 0 given", 3, &b);

    /* Node{kids: [Node]}: one byte per level (count 1), then the ends. */
    b.n = 0;
    size_t levels = 300000;
    for (size_t i = 0; i < levels; i++)
        b.b[b.n++] = 0x02;
    for (size_t i = 0; i < levels + 1 && b.n < sizeof b.b; i++)
        b.b[b.n++] = 0x00;
    run("recursive record 300000 deep", 2, &b);

    b.n = 0;
    run("record holding itself (schema)", 7, &b);

    b.n = 0; /* 10000 items, each the null branch of a union whose other branch is 60000 bytes */
    put_long(&b, 10000);
    for (int i = 0; i < 10000; i++)
        b.b[b.n++] = 0x00;
    b.b[b.n++] = 0x00;
    run("10001-byte array of null branches", 8, &b);
    return 0;
}
