/* vigil produce: not built yet (issue #5). --help and flag errors already
 * behave as every other subcommand's. */
#include <getopt.h>
#include <stdio.h>

#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil produce [OPTIONS]\n\n"
                 "Publishes observations to vigil.observations from NDJSON, CSV or FHIR\n"
                 "input, or a synthetic trial.\n\n"
                 "Not implemented yet in this build.\n");
}

int cmd_produce(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        return cli_bad_option("produce", usage, argv);
    }
    fprintf(stderr, "vigil produce: not implemented yet in this build\n");
    return 1;
}
