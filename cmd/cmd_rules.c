/* vigil rules check FILE: validate a rules file the way a worker's reload
 * would, reporting every problem with its line and column. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "rules.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: vigil rules check FILE\n\n"
                 "Validates a rules file (see schemas/rules.example.yaml). Prints\n"
                 "FILE:LINE:COLUMN: problem for each error and exits 1, or the number\n"
                 "of rules and exits 0.\n");
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
    if (optind >= argc)
        return cli_bad_usage("rules", usage, "missing subcommand (check)");
    if (strcmp(argv[optind], "check") != 0)
        return cli_bad_usage("rules", usage, "unknown subcommand '%s'", argv[optind]);
    if (optind + 2 != argc)
        return cli_bad_usage("rules", usage, "check takes exactly one FILE");
    const char *path = argv[optind + 1];
    static char err[16384];
    struct rules *r = rules_load_file(path, err, sizeof err);
    if (r == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%s: %d rules, valid\n", path, rules_count(r));
    rules_destroy(r);
    return 0;
}
