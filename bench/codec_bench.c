/*
 * codec_bench: decode rate of the Avro codec on one core.
 *
 *   figure codec_decode_rate N obs/s        current schema, single object
 *   figure codec_encode_rate N obs/s
 *
 * Each figure runs about one second of this thread's CPU time (argv[1]
 * seconds if given), and the rate is per CPU second: a figure per core
 * that a busy machine (other processes on the same cores) does not skew.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? strtod(argv[1], NULL) : 1.0;
    char err[512];
    struct codec *c = codec_new(NULL, err, sizeof err);
    if (!c) {
        fprintf(stderr, "codec_bench: %s\n", err);
        return 1;
    }
    enum { N = 64 };
    static uint8_t msgs[N][CODEC_OBSERVATION_MAX_ENCODED];
    size_t lens[N];
    for (int i = 0; i < N; i++) {
        struct observation o;
        memset(&o, 0, sizeof o);
        snprintf(o.observation_id, sizeof o.observation_id, "LAB-2025-11-26-%06d", i);
        snprintf(o.study_id, sizeof o.study_id, "ONC-301");
        snprintf(o.site_id, sizeof o.site_id, "SITE-%02d", i % 7);
        snprintf(o.subject_id, sizeof o.subject_id, "SUBJ-%05d", i * 13);
        snprintf(o.loinc, sizeof o.loinc, "2823-3");
        o.has_value = true;
        o.value = 3.0 + i * 0.05;
        snprintf(o.unit, sizeof o.unit, "mmol/L");
        o.has_ref_low = o.has_ref_high = true;
        o.ref_low = 3.5;
        o.ref_high = 5.1;
        o.effective_ms = 1764115200000LL + i;
        o.issued_ms = 1764118800000LL + i;
        snprintf(o.visit, sizeof o.visit, "C%dD1", i % 6 + 1);
        if (codec_encode_observation(c, &o, CODEC_SINGLE_OBJECT, 0, msgs[i], sizeof msgs[i],
                                     &lens[i], err, sizeof err) != CODEC_OK) {
            fprintf(stderr, "codec_bench: %s\n", err);
            return 1;
        }
    }

    struct observation out;
    long n = 0;
    double start = now(), t;
    do {
        for (int k = 0; k < 1000; k++, n++) {
            if (codec_decode_observation(c, msgs[n % N], lens[n % N], &out, err, sizeof err) !=
                CODEC_OK) {
                fprintf(stderr, "codec_bench: %s\n", err);
                return 1;
            }
        }
        t = now() - start;
    } while (t < seconds);
    printf("figure codec_decode_rate %.0f obs/s\n", (double)n / t);

    uint8_t buf[CODEC_OBSERVATION_MAX_ENCODED];
    size_t len;
    n = 0;
    start = now();
    do {
        for (int k = 0; k < 1000; k++, n++)
            codec_encode_observation(c, &out, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len, err,
                                     sizeof err);
        t = now() - start;
    } while (t < seconds);
    printf("figure codec_encode_rate %.0f obs/s\n", (double)n / t);
    codec_destroy(c);
    return 0;
}
