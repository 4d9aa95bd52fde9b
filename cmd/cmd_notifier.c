/* vigil notifier: not built yet (issue #4). --help and flag errors already
 * behave as every other subcommand's. */
#include <getopt.h>
#include <stdio.h>

#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil notifier [OPTIONS]\n\n"
                 "Consumes vigil.alerts in consumer group vigil-notifier and sends each\n"
                 "alert by SMS and email to the researchers subscribed to its study.\n\n"
                 "Not implemented yet in this build.\n");
}

int cmd_notifier(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        return cli_bad_option("notifier", usage, argv);
    }
    fprintf(stderr, "vigil notifier: not implemented yet in this build\n");
    return 1;
}
