/*
 * main.c — the allocprof command: parses the subcommand and dispatches to
 * cmd_<name>.c. For now: run (start a program under liballocprof.so),
 * --help and --version. Errors: one "allocprof: <what>: <why>" line on
 * stderr and a non-zero exit.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: allocprof <command> [options]\n\n"
               "commands:\n"
               "  run [-o FILE] [--rate BYTES] [--interval SECONDS] -- CMD [ARGS...]\n"
               "                run CMD with the allocprof allocator preloaded\n"
               "  dump PID      ask a running profiled program for a heap dump\n"
               "  help          show this text\n"
               "  --version     print the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("allocprof %s\n", AP_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return ap_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "dump"))
        return ap_cmd_dump(argc - 1, argv + 1);
    ap_cli_error("%s: unknown command (try 'allocprof help')", cmd);
    return 2;
}
