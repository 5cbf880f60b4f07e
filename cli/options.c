/*
 * options.c — the option parser shared by the report subcommands, and the
 * open-select-load-symbolize sequence every report starts with.
 *
 * Design: one table of every report option, each tagged with the AP_OPT_*
 * bit that enables it; a subcommand passes the bits it accepts, and the
 * parser builds getopt_long's tables from the enabled entries, so an option
 * a subcommand does not take is "unknown option" there. Errors are one line:
 * "allocprof: <cmd>: <what>"; values are checked here (metric names, --by
 * names, numbers, sizes).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

enum {
    O_SORT = 1000,
    O_BY,
    O_CUM,
    O_FORMAT,
    O_FOLDED,
    O_BASE,
    O_MIN,
    O_JSON,
    O_SUPP,
    O_NOSUPP,
    O_ALL
};

static const struct {
    struct option opt;
    char short_name;
    unsigned bit;
} table[] = {
    {{"help", no_argument, NULL, 'h'}, 'h', 0},
    {{"process", required_argument, NULL, 'p'}, 'p', AP_OPT_SELECT},
    {{"dump", required_argument, NULL, 'd'}, 'd', AP_OPT_SELECT},
    {{"sort", required_argument, NULL, O_SORT}, 0, AP_OPT_SORT},
    {{"metric", required_argument, NULL, O_SORT}, 0, AP_OPT_SORT},
    {{"by", required_argument, NULL, O_BY}, 0, AP_OPT_BY},
    {{"nodes", required_argument, NULL, 'n'}, 'n', AP_OPT_N},
    {{"cum", no_argument, NULL, O_CUM}, 0, AP_OPT_CUM},
    {{"format", required_argument, NULL, O_FORMAT}, 0, AP_OPT_FORMAT},
    {{"json", no_argument, NULL, O_JSON}, 0, AP_OPT_FORMAT},
    {{"output", required_argument, NULL, 'o'}, 'o', AP_OPT_OUT},
    {{"folded", no_argument, NULL, O_FOLDED}, 0, AP_OPT_FOLDED},
    {{"base-dump", required_argument, NULL, O_BASE}, 0, AP_OPT_BASE},
    {{"min", required_argument, NULL, O_MIN}, 0, AP_OPT_MIN},
    {{"suppressions", required_argument, NULL, O_SUPP}, 0, AP_OPT_SUPP},
    {{"no-suppress", no_argument, NULL, O_NOSUPP}, 0, AP_OPT_SUPP},
    {{"all", no_argument, NULL, O_ALL}, 0, AP_OPT_ALL},
};
#define NTABLE (sizeof table / sizeof *table)

static int pick(const char *cmd, const char *opt, const char *v, const char *const *names, int n,
                int *out)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = i;
            return 0;
        }
    char list[256] = "";
    for (int i = 0; i < n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", names[i]);
    ap_cli_error("%s: %s: unknown value '%s' (one of: %s)", cmd, opt, v, list);
    return -1;
}

static int number(const char *cmd, const char *opt, const char *v, int64_t *out)
{
    uint64_t x;
    if (!ap_parse_uint(v, &x) || x > INT32_MAX) {
        ap_cli_error("%s: %s: '%s' is not a number", cmd, opt, v);
        return -1;
    }
    *out = (int64_t)x;
    return 0;
}

static int apply(const char *cmd, int c, const char *v, ap_opts *o)
{
    static const char *const formats[] = {"text", "json"};
    int64_t x;
    int k;
    switch (c) {
    case 'p':
        return number(cmd, "--process", v, &o->process);
    case 'd':
        return number(cmd, "--dump", v, &o->dump);
    case O_BASE:
        return number(cmd, "--base-dump", v, &o->base_dump);
    case 'n':
        if (number(cmd, "-n", v, &x) < 0)
            return -1;
        o->n = (int)x;
        return 0;
    case O_SORT:
        return pick(cmd, "--sort", v, ap_metric_names, AP_NMETRICS, &o->metric);
    case O_BY:
        return pick(cmd, "--by", v, ap_by_names, 4, &o->by);
    case O_CUM:
        o->cum = true;
        return 0;
    case O_JSON:
        o->json = true;
        return 0;
    case O_FOLDED:
        o->folded = true;
        return 0;
    case 'o':
        o->out = v;
        return 0;
    case O_FORMAT:
        if (pick(cmd, "--format", v, formats, 2, &k) < 0)
            return -1;
        o->json = k == 1;
        return 0;
    case O_SUPP:
        if (o->nsupp == (int)(sizeof o->supp_files / sizeof *o->supp_files)) {
            ap_cli_error("%s: --suppressions: at most 8 files", cmd);
            return -1;
        }
        o->supp_files[o->nsupp++] = v;
        return 0;
    case O_ALL:
        o->all = true;
        return 0;
    case O_NOSUPP:
        o->no_suppress = true;
        return 0;
    case O_MIN:
        if (!ap_parse_size(v, &o->min)) {
            ap_cli_error("%s: --min: '%s' is not a size (e.g. 4096, 512K, 2M)", cmd, v);
            return -1;
        }
        return 0;
    }
    return -1;
}

static void build_tables(unsigned allowed, struct option *longs, char *shorts)
{
    size_t nl = 0, ns = 0;
    shorts[ns++] = ':';
    for (size_t i = 0; i < NTABLE; i++) {
        if (table[i].bit && !(table[i].bit & allowed))
            continue;
        longs[nl++] = table[i].opt;
        if (table[i].short_name) {
            shorts[ns++] = table[i].short_name;
            if (table[i].opt.has_arg)
                shorts[ns++] = ':';
        }
    }
    memset(&longs[nl], 0, sizeof *longs);
    shorts[ns] = 0;
}

static void bad_option(const char *cmd, int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        ap_cli_error("%s: option %s needs a value", cmd, arg);
    else if (optopt && optopt < 256)
        ap_cli_error("%s: unknown option -%c", cmd, optopt);
    else
        ap_cli_error("%s: unknown option %s", cmd, arg);
}

int ap_parse_opts(int argc, char **argv, unsigned allowed, int min_files, int max_files,
                  const char *help, ap_opts *o)
{
    const char *cmd = argv[0];
    memset(o, 0, sizeof *o);
    o->process = o->dump = o->base_dump = -1;
    o->n = -1;
    struct option longs[NTABLE + 1];
    char shorts[2 * NTABLE + 2];
    build_tables(allowed, longs, shorts);
    optind = 0; /* full reset of getopt's state */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            bad_option(cmd, c, argv);
            return -1;
        }
        if (apply(cmd, c, optarg, o) < 0)
            return -1;
    }
    for (; optind < argc; optind++) {
        if (o->nfiles == max_files) {
            ap_cli_error("%s: unexpected argument '%s' (see 'allocprof %s --help')", cmd,
                         argv[optind], cmd);
            return -1;
        }
        o->files[o->nfiles++] = argv[optind];
    }
    if (o->nfiles < min_files) {
        ap_cli_error("%s: missing FILE (see 'allocprof %s --help')", cmd, cmd);
        return -1;
    }
    return 0;
}

ap_file *ap_open_profile(const char *spec, const ap_opts *o, int64_t dump_override,
                         ap_symbolizer *sym, ap_profile *out)
{
    int64_t at;
    char *path = ap_split_dump_spec(spec, &at);
    ap_file *f = ap_file_open(path);
    free(path);
    if (!f)
        return NULL;
    int64_t dump = dump_override >= 0 ? dump_override : at >= 0 ? at : o->dump;
    bool peak = o->prefer_peak && (o->metric == AP_INUSE_BYTES || o->metric == AP_INUSE_OBJECTS);
    const ap_dump *d = ap_select_dump(f, o->process, dump, peak);
    if (!d || ap_profile_load(f, d, out) < 0) {
        ap_file_close(f);
        return NULL;
    }
    if (sym)
        ap_sym_profile(sym, out);
    return f;
}
