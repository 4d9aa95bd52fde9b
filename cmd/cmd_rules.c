/* vigil rules: not built yet (issue #3). --help and flag errors already
 * behave as every other subcommand's. */
#include <getopt.h>
#include <stdio.h>

#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil rules [OPTIONS]\n\n"
                 "vigil rules check FILE: validates a rules file.\n\n"
                 "Not implemented yet in this build.\n");
}

int cmd_rules(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        return cli_bad_option("rules", usage, argv);
    }
    fprintf(stderr, "vigil rules: not implemented yet in this build\n");
    return 1;
}
