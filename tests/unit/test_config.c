/* config: defaults < YAML file < environment < flags; secrets from files;
 * librdkafka passthrough; errors name the file, line and column. */
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "testlib.h"

static const struct config_item items[] = {
    {"bootstrap", "VIGILT_BOOTSTRAP", "localhost:9092", "Kafka bootstrap servers", false},
    {"threads", "VIGILT_THREADS", "2", "analysis threads", false},
    {"pg_password", "VIGILT_PG_PASSWORD", NULL, "PostgreSQL password", true},
    {"group", "VIGILT_GROUP", "vigil-workers", "consumer group", false},
    {NULL, NULL, NULL, NULL, false},
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

struct seen {
    int n;
    char names[8][64];
    char values[8][64];
};

static void collect(void *arg, const char *name, const char *value)
{
    struct seen *s = arg;
    if (s->n < 8) {
        snprintf(s->names[s->n], 64, "%s", name);
        snprintf(s->values[s->n], 64, "%s", value);
        s->n++;
    }
}

int main(void)
{
    char err[512];
    char dir[] = "/tmp/vigil-config-test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char yaml[300], secret[300], bad[300], badval[300];
    snprintf(yaml, sizeof yaml, "%s/vigil.yaml", dir);
    snprintf(secret, sizeof secret, "%s/pw", dir);
    snprintf(bad, sizeof bad, "%s/bad.yaml", dir);
    snprintf(badval, sizeof badval, "%s/badval.yaml", dir);

    struct config *c = config_new(items);
    CHECK(c != NULL);
    CHECK_EQ_STR(config_get(c, "bootstrap"), "localhost:9092");
    CHECK(config_get(c, "pg_password") == NULL);

    write_file(yaml, "bootstrap: broker1:9092\nthreads: 4\n"
                     "kafka:\n  security.protocol: SSL\n  fetch.max.bytes: '1048576'\n");
    CHECK_EQ_INT(config_load_file(c, yaml, err, sizeof err), 0);
    CHECK_EQ_STR(config_get(c, "bootstrap"), "broker1:9092");

    /* Environment overrides the file; _FILE reads a secret. */
    write_file(secret, "s3cret\n");
    setenv("VIGILT_THREADS", "8", 1);
    setenv("VIGILT_PG_PASSWORD_FILE", secret, 1);
    setenv("VIGIL_KAFKA_PROP_SASL_MECHANISM", "SCRAM-SHA-512", 1);
    setenv("VIGIL_KAFKA_PROP_SECURITY_PROTOCOL", "SASL_SSL", 1);
    setenv("VIGIL_KAFKA_PROP_A__B", "x", 1);
    CHECK_EQ_INT(config_load_env(c, err, sizeof err), 0);
    long threads = 0;
    CHECK_EQ_INT(config_get_long(c, "threads", 1, 64, &threads, err, sizeof err), 0);
    CHECK_EQ_INT(threads, 8);
    CHECK_EQ_STR(config_get(c, "pg_password"), "s3cret");

    /* Flags last. */
    CHECK_EQ_INT(config_set(c, "group", "g2", err, sizeof err), 0);
    CHECK_EQ_STR(config_get(c, "group"), "g2");
    CHECK_EQ_INT(config_set(c, "kafka.fetch.max.bytes", "2048", err, sizeof err), 0);
    CHECK_EQ_INT(config_set(c, "nope", "1", err, sizeof err), -1);
    CHECK(strstr(err, "unknown setting 'nope'") != NULL);

    struct seen s = {0};
    config_kafka_foreach(c, collect, &s);
    CHECK_EQ_INT(s.n, 4);
    bool proto = false, fetch = false, mech = false, ab = false;
    for (int i = 0; i < s.n; i++) {
        if (strcmp(s.names[i], "security.protocol") == 0)
            proto = strcmp(s.values[i], "SASL_SSL") == 0; /* env beat the file */
        if (strcmp(s.names[i], "fetch.max.bytes") == 0)
            fetch = strcmp(s.values[i], "2048") == 0;
        if (strcmp(s.names[i], "sasl.mechanism") == 0)
            mech = true;
        if (strcmp(s.names[i], "a_b") == 0)
            ab = true;
    }
    CHECK(proto);
    CHECK(fetch);
    CHECK(mech);
    CHECK(ab);

    /* Range errors name the key and the value. */
    CHECK_EQ_INT(config_set(c, "threads", "0", err, sizeof err), 0);
    CHECK_EQ_INT(config_get_long(c, "threads", 1, 64, &threads, err, sizeof err), -1);
    CHECK(strstr(err, "threads must be an integer from 1 to 64, not '0'") != NULL);
    CHECK_EQ_INT(config_set(c, "threads", "3x", err, sizeof err), 0);
    CHECK_EQ_INT(config_get_long(c, "threads", 1, 64, &threads, err, sizeof err), -1);

    /* File errors carry line and column. */
    write_file(bad, "bootstrap: a\nbogus_key: 1\n");
    CHECK_EQ_INT(config_load_file(c, bad, err, sizeof err), -1);
    char want[400];
    snprintf(want, sizeof want, "%s:2:1: unknown setting 'bogus_key'", bad);
    CHECK_EQ_STR(err, want);
    write_file(badval, "bootstrap: [a, b]\n");
    CHECK_EQ_INT(config_load_file(c, badval, err, sizeof err), -1);
    CHECK(strstr(err, ":1:12: expected a scalar value") != NULL);
    write_file(badval, "bootstrap: 'unterminated\n");
    CHECK_EQ_INT(config_load_file(c, badval, err, sizeof err), -1);
    CHECK(strstr(err, badval) == err);
    CHECK_EQ_INT(config_load_file(c, "/nonexistent/vigil.yaml", err, sizeof err), -1);
    CHECK(strstr(err, "could not open config file /nonexistent/vigil.yaml") != NULL);

    /* A missing secret file is an error, not an empty password. */
    setenv("VIGILT_PG_PASSWORD_FILE", "/nonexistent/pw", 1);
    CHECK_EQ_INT(config_load_env(c, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/pw") != NULL);

    /* VIGIL_KAFKA_PROP_<PROP>_FILE: the property from a file, winning over
     * the plain form; errors name the variable and path, never the value. */
    unsetenv("VIGILT_PG_PASSWORD_FILE");
    char kpw[300];
    snprintf(kpw, sizeof kpw, "%s/kafka-pw", dir);
    write_file(kpw, "k4fka-s3cret\n");
    setenv("VIGIL_KAFKA_PROP_SASL_PASSWORD", "plain-loses", 1);
    setenv("VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE", kpw, 1);
    struct config *k = config_new(items);
    CHECK(k != NULL);
    CHECK_EQ_INT(config_load_env(k, err, sizeof err), 0);
    struct seen ks = {0};
    config_kafka_foreach(k, collect, &ks);
    int pw_at = -1;
    for (int i = 0; i < ks.n; i++) {
        CHECK(strcmp(ks.names[i], "sasl.password.file") != 0);
        if (strcmp(ks.names[i], "sasl.password") == 0)
            pw_at = i;
    }
    CHECK(pw_at >= 0);
    if (pw_at >= 0)
        CHECK_EQ_STR(ks.values[pw_at], "k4fka-s3cret"); /* newline stripped, file won */
    config_destroy(k);

    /* A missing file is an error naming the variable and the path. */
    setenv("VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE", "/nonexistent/kafka-pw", 1);
    k = config_new(items);
    CHECK(k != NULL);
    CHECK_EQ_INT(config_load_env(k, err, sizeof err), -1);
    CHECK(strstr(err, "/nonexistent/kafka-pw") != NULL);
    CHECK(strstr(err, "VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE") != NULL);
    CHECK(strstr(err, "plain-loses") == NULL);
    config_destroy(k);

    /* An unreadable value (a NUL byte) is refused without echoing it. */
    FILE *nf = fopen(kpw, "wb");
    CHECK(nf != NULL);
    if (nf != NULL) {
        fwrite("k4fka-s3cret\0tail\n", 1, 18, nf);
        fclose(nf);
    }
    setenv("VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE", kpw, 1);
    k = config_new(items);
    CHECK(k != NULL);
    CHECK_EQ_INT(config_load_env(k, err, sizeof err), -1);
    CHECK(strstr(err, kpw) != NULL);
    CHECK(strstr(err, "NUL") != NULL);
    CHECK(strstr(err, "k4fka-s3cret") == NULL);
    CHECK(strstr(err, "plain-loses") == NULL);
    config_destroy(k);
    unsetenv("VIGIL_KAFKA_PROP_SASL_PASSWORD");
    unsetenv("VIGIL_KAFKA_PROP_SASL_PASSWORD_FILE");
    unlink(kpw);

    config_destroy(c);
    config_destroy(NULL);
    unlink(yaml);
    unlink(secret);
    unlink(bad);
    unlink(badval);
    rmdir(dir);
    return testlib_done();
}
