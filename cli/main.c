/*
 * main.c — the allocprof command: parses the subcommand and dispatches to
 * cmd_<name>.c: run and dump (cmd_run.c, cmd_dump.c: starting programs under
 * liballocprof.so and asking them for dumps) and the reports over a profile
 * database: list, top, diff, leaks, stats, flamegraph, pprof, report. Every
 * subcommand takes --help. Errors: one "allocprof: <what>: <why>" line on
 * stderr and a non-zero exit (2 for usage errors, 1 for bad input files).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"list", ap_cmd_list},   {"top", ap_cmd_top},       {"diff", ap_cmd_diff},
    {"leaks", ap_cmd_leaks}, {"stats", ap_cmd_stats},   {"flamegraph", ap_cmd_flamegraph},
    {"pprof", ap_cmd_pprof}, {"report", ap_cmd_report},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: allocprof <command> [options]\n\n"
               "commands:\n"
               "  run [-o FILE] [--rate BYTES] [--interval SECONDS] [--peak FRACTION] [-q]\n"
               "      -- CMD [ARGS...]\n"
               "                run CMD with the allocprof allocator preloaded\n"
               "  dump PID      ask a running profiled program for a heap dump\n"
               "  list FILE     processes and dumps in a profile\n"
               "  top FILE      hot spots: --sort inuse-bytes|inuse-objects|alloc-bytes|"
               "alloc-objects,\n"
               "                --by function|line|stack|thread, -n N, --format text|json\n"
               "  diff BASE NEW differences between two profiles (files, or FILE@DUMP)\n"
               "  leaks FILE    what was still allocated at exit, with stacks\n"
               "  stats FILE    allocator statistics and in-use bytes over the dumps\n"
               "  flamegraph FILE [-o OUT.svg] [--folded]\n"
               "                interactive SVG flame graph, or folded stacks\n"
               "  pprof FILE [-o OUT.pb.gz]\n"
               "                export for go tool pprof\n"
               "  report FILE [-o OUT.html]\n"
               "                one HTML file: timeline, flame graph, tables\n"
               "  help          show this text\n"
               "  --version     print the version\n\n"
               "'allocprof <command> --help' describes a command's options; 'man allocprof'\n"
               "has them all.\n");
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
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(cmd, commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    ap_cli_error("%s: unknown command (try 'allocprof help')", cmd);
    return 2;
}
