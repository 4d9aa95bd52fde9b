/* vigil version: vigil's version and the versions of the four libraries it
 * runs with, as reported by the libraries themselves at run time (not the
 * headers it was built against). */
#include <avro.h>
#include <curl/curl.h>
#include <getopt.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>

#include "commands.h"

#ifndef VIGIL_AVRO_VERSION
#define VIGIL_AVRO_VERSION "unknown"
#endif
#ifndef VIGIL_VERSION
#define VIGIL_VERSION "dev"
#endif

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil version\n\n"
                 "Prints vigil's version and the librdkafka, avro-c, libpq and libcurl\n"
                 "versions it runs with.\n");
}

int cmd_version(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        return cli_bad_option("version", usage, argv);
    }
    if (optind < argc)
        return cli_bad_usage("version", usage, "unexpected argument '%s'", argv[optind]);

    int pqv = PQlibVersion();
    printf("vigil %s\n", VIGIL_VERSION);
    printf("librdkafka %s\n", rd_kafka_version_str());
    /* avro-c has no run-time version call: this is the version built against. */
    printf("avro-c %s\n", VIGIL_AVRO_VERSION);
    printf("libpq %d.%d\n", pqv / 10000, pqv % 10000);
    printf("libcurl %s\n", curl_version_info(CURLVERSION_NOW)->version);
    return 0;
}
