/*
 * cmd_top.c — `allocprof top FILE`: the hot spots of one dump, like
 * `go tool pprof -top`: rows by --by function|line|stack|thread, sorted by
 * flat (or --cum) value of --sort inuse-bytes|inuse-objects|alloc-bytes|
 * alloc-objects, with flat%, sum% and cum% columns, -n rows (default 20,
 * 0 = all), as aligned text or --format json (every row with all four
 * metrics, flat and cumulative).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof top FILE[@DUMP] [--sort "
    "inuse-bytes|inuse-objects|alloc-bytes|alloc-objects]\n"
    "                     [--by function|line|stack|thread] [-n N] [--cum]\n"
    "                     [-p PROCESS] [-d DUMP] [--format text|json]\n"
    "\n"
    "Shows where memory is held (inuse-*) or was allocated (alloc-*) at one dump.\n"
    "flat: allocated directly by the row's key (the innermost frame, the caller of\n"
    "malloc); cum: allocated by the key or anything it called. Defaults: --sort\n"
    "inuse-bytes, --by function, -n 20 (alloc-* sorts take the last dump).\n" AP_HELP_CHOICE "\n"
    "  --sort METRIC      inuse-bytes, inuse-objects, alloc-bytes or alloc-objects\n"
    "  --by KEY           function, line (file:line), stack (whole call stack), thread\n"
    "  -n, --nodes N      show N rows (0: all)\n"
    "  --cum              sort by the cumulative value\n"
    "  -p, --process ID   a process row of 'allocprof list'\n"
    "  -d, --dump ID      a dump id of 'allocprof list' (also FILE@ID)\n"
    "  --format text|json output format (--json is short for json)\n"
    "  -h, --help         this text\n";

static void text_row(ap_table *t, const ap_report *r, const ap_row *row, const ap_file *f, int m,
                     int64_t total, int64_t *sum)
{
    char c[5][AP_FMT_LEN];
    *sum += row->flat[0][m];
    char *label = ap_row_label(r, row, f, false);
    ap_table_row(t, (const char *[]){ap_fmt_metric(m, row->flat[0][m], false, c[0]),
                                     ap_fmt_percent((double)row->flat[0][m], (double)total, c[1]),
                                     ap_fmt_percent((double)*sum, (double)total, c[2]),
                                     ap_fmt_metric(m, row->cum[0][m], false, c[3]),
                                     ap_fmt_percent((double)row->cum[0][m], (double)total, c[4]),
                                     label});
    free(label);
    ap_table_stack_rows(t, r, row);
}

static void print_text(const ap_report *r, const ap_profile *p, const ap_opts *o, size_t n)
{
    int m = o->metric;
    int64_t total = r->total[0][m];
    char b[AP_FMT_LEN];
    ap_print_profile_head(stdout, p);
    printf("%s by %s: total %s; showing %zu of %zu rows%s\n", ap_metric_names[m],
           ap_by_names[o->by], ap_fmt_metric(m, total, false, b), n, r->nrows,
           o->cum ? ", sorted by cum" : "");
    char *note = ap_estimate_note(p);
    printf("(%s)\n", note);
    free(note);
    ap_table t;
    ap_table_init(&t, 6);
    ap_table_row(&t, (const char *[]){"flat", "flat%", "sum%", "cum", "cum%", ap_by_names[o->by]});
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++)
        text_row(&t, r, &r->rows[i], p->file, m, total, &sum);
    ap_table_print(&t, stdout, "");
    ap_table_free(&t);
}

static void print_json(const ap_report *r, const ap_profile *p, const ap_opts *o, size_t n)
{
    fputs("{", stdout);
    ap_json_profile_head(stdout, p);
    printf(", \"sort\": \"%s\", \"by\": \"%s\", \"cum\": %s, \"total\": ",
           ap_metric_names[o->metric], ap_by_names[o->by], o->cum ? "true" : "false");
    ap_json_metrics(stdout, r->total[0]);
    ap_json_estimate(stdout, p);
    printf(", \"nrows\": %zu, \"rows\": [", r->nrows);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {" : "\n  {", stdout);
        ap_json_row_key(stdout, r, &r->rows[i], p->file);
        fputs(", \"flat\": ", stdout);
        ap_json_metrics(stdout, r->rows[i].flat[0]);
        fputs(", \"cum\": ", stdout);
        ap_json_metrics(stdout, r->rows[i].cum[0]);
        fputs("}", stdout);
    }
    fputs("]}\n", stdout);
}

int ap_cmd_top(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(
        argc, argv, AP_OPT_SELECT | AP_OPT_SORT | AP_OPT_BY | AP_OPT_N | AP_OPT_CUM | AP_OPT_FORMAT,
        1, 1, help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    o.prefer_peak = true;
    ap_symbolizer *sym = ap_sym_new();
    ap_profile p;
    ap_file *f = ap_open_profile(o.files[0], &o, -1, sym, &p);
    if (!f) {
        ap_sym_free(sym);
        return 1;
    }
    ap_report rep;
    ap_report_init(&rep, o.by);
    ap_report_add(&rep, &p, 0);
    ap_report_sort(&rep, o.metric, o.cum, false);
    size_t n = o.n < 0 ? 20 : (size_t)o.n;
    if (n == 0 || n > rep.nrows)
        n = rep.nrows;
    if (o.json)
        print_json(&rep, &p, &o, n);
    else
        print_text(&rep, &p, &o, n);
    ap_report_free(&rep);
    ap_profile_free(&p);
    ap_file_close(f);
    ap_sym_free(sym);
    return 0;
}
