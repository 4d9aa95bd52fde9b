/* vigil worker: not built yet (issue #3). --help and flag errors already
 * behave as every other subcommand's. */
#include <getopt.h>
#include <stdio.h>

#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil worker [OPTIONS]\n\n"
                 "Consumes vigil.observations in consumer group vigil-workers, decodes,\n"
                 "cleans and analyses each observation, stores it in PostgreSQL and\n"
                 "publishes an alert to vigil.alerts for every safety signal.\n\n"
                 "Not implemented yet in this build.\n");
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        return cli_bad_option("worker", usage, argv);
    }
    fprintf(stderr, "vigil worker: not implemented yet in this build\n");
    return 1;
}
