/* hospital/trialgen: the synthetic trial is deterministic per seed, uses
 * units the worker's cleaning accepts, and contains the cases a demo needs:
 * abnormal, critical, amended, entered-in-error and Hy's law. No services. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clean.h"
#include "codec.h"
#include "obs_json.h"
#include "testlib.h"
#include "trialgen.h"

static void test_determinism(void)
{
    struct trialgen a, b, c;
    trialgen_init(&a);
    a.seed = 42;
    b = a;
    c = a;
    c.seed = 43;
    char la[OBS_JSON_MAX], lb[OBS_JSON_MAX];
    int same = 0, differ = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        struct observation x, y, z;
        trialgen_get(&a, i, &x);
        trialgen_get(&b, i, &y);
        trialgen_get(&c, i, &z);
        size_t na = obs_json_format(&x, la, sizeof la);
        size_t nb = obs_json_format(&y, lb, sizeof lb);
        same += na == nb && memcmp(la, lb, na) == 0;
        differ += x.value != z.value || strcmp(x.observation_id, z.observation_id) != 0;
    }
    CHECK_EQ_INT(same, 20000);
    CHECK(differ > 19000);
    /* Random access equals sequential: record 12345 alone is the same. */
    struct observation x, y;
    trialgen_get(&a, 12345, &x);
    trialgen_get(&b, 12345, &y);
    CHECK(memcmp(&x, &y, sizeof x) == 0);
}

static void test_contents(void)
{
    struct trialgen g;
    trialgen_init(&g); /* 2 x 3 x 20 = 120 subjects */
    uint64_t n = 120 * 12 * 20; /* 20 visits */
    char err[512];
    struct codec *codec = codec_new(NULL, err, sizeof err);
    CHECK(codec != NULL);
    int bad_clean = 0, bad_encode = 0, abnormal = 0, critical = 0, amended = 0, eie = 0,
        cancelled = 0, si = 0, us = 0;
    /* Per subject and visit: normalised ALT/ULN, bilirubin/ULN, ALP/ULN. */
    static double ratio[120][20][3];
    for (uint64_t i = 0; i < n; i++) {
        struct observation o;
        trialgen_get(&g, i, &o);
        uint8_t buf[CODEC_OBSERVATION_MAX_ENCODED];
        size_t len;
        if (codec_encode_observation(codec, &o, CODEC_SINGLE_OBJECT, 0, buf, sizeof buf, &len,
                                     err, sizeof err) != CODEC_OK) {
            fprintf(stderr, "record %llu: %s\n", (unsigned long long)i, err);
            bad_encode++;
        }
        amended += o.status == OBS_AMENDED;
        eie += o.status == OBS_ENTERED_IN_ERROR;
        cancelled += o.status == OBS_CANCELLED;
        if (strcmp(o.loinc, "2345-7") == 0) {
            si += strcmp(o.unit, "mmol/L") == 0;
            us += strcmp(o.unit, "mg/dL") == 0;
        }
        struct clean_result r;
        if (clean_observation(&o, &r) != CLEAN_OK) {
            if (o.status != OBS_CANCELLED)
                fprintf(stderr, "record %llu: %s %g %s: %s\n", (unsigned long long)i, o.loinc,
                        o.value, o.unit, clean_status_name(r.status));
            bad_clean += o.status != OBS_CANCELLED;
            continue;
        }
        if (o.status != OBS_FINAL)
            continue;
        if ((r.has_ref_high && r.value > r.ref_high) || (r.has_ref_low && r.value < r.ref_low))
            abnormal++;
        const char *l = o.loinc;
        if ((strcmp(l, "2823-3") == 0 && (r.value >= 6.5 || r.value < 2.5)) ||
            (strcmp(l, "2951-2") == 0 && (r.value > 160 || r.value < 120)) ||
            (strcmp(l, "777-3") == 0 && r.value < 25) ||
            (strcmp(l, "751-8") == 0 && r.value < 0.5) ||
            (strcmp(l, "718-7") == 0 && r.value < 80))
            critical++;
        uint64_t v = i / (120 * 12), s = i % (120 * 12) / 12;
        int k = strcmp(l, "1742-6") == 0 ? 0 : strcmp(l, "1975-2") == 0 ? 1
                : strcmp(l, "6768-6") == 0 ? 2 : -1;
        if (k >= 0 && r.has_ref_high)
            ratio[s][v][k] = r.value / r.ref_high;
    }
    codec_destroy(codec);
    CHECK_EQ_INT(bad_encode, 0);
    CHECK_EQ_INT(bad_clean, 0); /* every unit known, every value plausible */
    printf("abnormal %d critical %d amended %d entered-in-error %d cancelled %d of %llu\n",
           abnormal, critical, amended, eie, cancelled, (unsigned long long)n);
    CHECK(abnormal > (int)(n / 50) && abnormal < (int)(n / 5));
    CHECK(critical > 0 && critical < (int)(n / 50));
    CHECK(amended > 0 && eie > 0 && cancelled > 0);
    CHECK(amended + eie + cancelled < (int)(n / 50));
    CHECK(si > 0 && us > 0); /* a mix of SI and conventional units */

    int hys = 0;
    for (int s = 0; s < 120; s++) {
        bool found = false;
        for (int v = 0; v < 20; v++)
            found |= ratio[s][v][0] > 3 && ratio[s][v][1] > 2 && ratio[s][v][2] < 2 &&
                     ratio[s][v][2] > 0;
        hys += found;
        if (found)
            CHECK(trialgen_is_hys_subject(&g, (uint64_t)s));
    }
    printf("Hy's law subjects: %d of 120\n", hys);
    CHECK(hys >= 1 && hys <= 8);
}

static void test_speed(void)
{
    struct trialgen g;
    trialgen_init(&g);
    g.studies = 10;
    g.subjects_per_site = 100;
    double t0 = testlib_now();
    double sum = 0;
    for (uint64_t i = 0; i < 200000; i++) {
        struct observation o;
        trialgen_get(&g, i, &o);
        sum += o.value;
    }
    double dt = testlib_now() - t0;
    printf("200000 observations in %.3f s (%.0f/s)\n", dt, 200000 / dt);
    /* A figure, not a check: timing asserts fail on a loaded machine. */
    CHECK(sum > 0);
}

int main(void)
{
    test_determinism();
    test_contents();
    test_speed();
    return testlib_done();
}
