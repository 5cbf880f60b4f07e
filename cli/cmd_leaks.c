/*
 * cmd_leaks.c — `allocprof leaks FILE`: what was still allocated when the
 * process exited (its 'exit' dump), one entry per distinct call stack with
 * the full symbolized stack, largest first, like heaptrack_print's leak
 * report. A process without an exit dump (killed, or still running) gets a
 * warning and its last dump instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof leaks FILE[@DUMP] [-p PROCESS] [-d DUMP] [-n N] [--min SIZE]\n"
    "                       [--format text|json]\n"
    "\n"
    "Shows the memory still allocated at exit (the process's 'exit' dump), by call\n"
    "stack, with the full stack of each. Default: the process that allocated the most.\n"
    "\n"
    "  -p, --process ID   a process row of 'allocprof list'\n"
    "  -d, --dump ID      another dump instead of the exit dump (also FILE@ID)\n"
    "  -n, --nodes N      show N stacks (default: all)\n"
    "  --min SIZE         hide stacks holding less than SIZE bytes (e.g. 4K, 1M)\n"
    "  --format text|json output format (--json is short for json)\n"
    "  -h, --help         this text\n";

/* The dump to report: -d / FILE@ID, else the exit dump of the process. */
static int64_t choose_dump(const char *spec, const ap_opts *o)
{
    int64_t at;
    char *path = ap_split_dump_spec(spec, &at);
    if (at >= 0 || o->dump >= 0) {
        free(path);
        return at >= 0 ? at : o->dump;
    }
    ap_file *f = ap_file_open(path);
    free(path);
    if (!f)
        return -2;
    int64_t pid = o->process >= 0 ? o->process : ap_default_process(f);
    const ap_dump *d = ap_exit_dump(f, pid);
    int64_t id = d ? d->id : -1;
    if (!d && ap_find_process(f, pid))
        fprintf(stderr,
                "allocprof: leaks: %s: process %lld has no exit dump (killed, or still "
                "running?); showing its last dump\n",
                f->path, (long long)pid);
    ap_file_close(f);
    return id;
}

static void print_text(const ap_report *r, const ap_profile *p, size_t n)
{
    char b[6][AP_FMT_LEN];
    const int64_t *t = r->total[0];
    ap_print_profile_head(stdout, p);
    printf("%s: %s in %s objects from %zu call stack%s (allocated in all: %s in %s objects)\n",
           strcmp(p->dump->reason, "exit") ? "In use" : "Still in use at exit",
           ap_fmt_bytes(t[AP_INUSE_BYTES], false, b[0]),
           ap_fmt_count(t[AP_INUSE_OBJECTS], false, b[1]), r->nrows, r->nrows == 1 ? "" : "s",
           ap_fmt_bytes(t[AP_ALLOC_BYTES], false, b[2]),
           ap_fmt_count(t[AP_ALLOC_OBJECTS], false, b[3]));
    for (size_t i = 0; i < n; i++) {
        const ap_row *row = &r->rows[i];
        const int64_t *v = row->flat[0];
        printf("\n#%zu  %s in %s objects (%s), allocated %s in %s objects\n", i + 1,
               ap_fmt_bytes(v[AP_INUSE_BYTES], false, b[0]),
               ap_fmt_count(v[AP_INUSE_OBJECTS], false, b[1]),
               ap_fmt_percent((double)v[AP_INUSE_BYTES], (double)t[AP_INUSE_BYTES], b[2]),
               ap_fmt_bytes(v[AP_ALLOC_BYTES], false, b[3]),
               ap_fmt_count(v[AP_ALLOC_OBJECTS], false, b[4]));
        for (uint32_t k = 0; k < row->nsym; k++) {
            char *l = ap_line_label(row->sym[k]);
            printf("    %s\n", l);
            free(l);
        }
    }
    if (n < r->nrows)
        printf("\n(%zu more stacks; -n 0 shows all)\n", r->nrows - n);
}

static void print_json(const ap_report *r, const ap_profile *p, size_t n)
{
    fputs("{", stdout);
    ap_json_profile_head(stdout, p);
    fputs(", \"total\": ", stdout);
    ap_json_metrics(stdout, r->total[0]);
    printf(", \"nstacks\": %zu, \"leaks\": [", r->nrows);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {\"stack\": " : "\n  {\"stack\": ", stdout);
        ap_json_frames(stdout, r->rows[i].sym, r->rows[i].nsym);
        fputs(", \"figures\": ", stdout);
        ap_json_metrics(stdout, r->rows[i].flat[0]);
        fputs("}", stdout);
    }
    fputs("]}\n", stdout);
}

/* Keeps the rows that still hold memory (and at least min bytes). */
static void keep_leaks(ap_report *r, uint64_t min)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        const int64_t *v = r->rows[i].flat[0];
        if ((v[AP_INUSE_BYTES] > 0 || v[AP_INUSE_OBJECTS] > 0) &&
            (uint64_t)(v[AP_INUSE_BYTES] > 0 ? v[AP_INUSE_BYTES] : 0) >= min)
            r->rows[n++] = r->rows[i];
    }
    r->nrows = n;
}

int ap_cmd_leaks(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_SELECT | AP_OPT_N | AP_OPT_FORMAT | AP_OPT_MIN, 1, 1,
                          help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    int64_t dump = choose_dump(o.files[0], &o);
    if (dump == -2)
        return 1;
    ap_symbolizer *sym = ap_sym_new();
    ap_profile p;
    ap_file *f = ap_open_profile(o.files[0], &o, dump, sym, &p);
    if (!f) {
        ap_sym_free(sym);
        return 1;
    }
    ap_report rep;
    ap_report_init(&rep, AP_BY_STACK);
    ap_report_add(&rep, &p, 0);
    ap_report_sort(&rep, AP_INUSE_BYTES, false, false);
    keep_leaks(&rep, o.min);
    size_t n = o.n <= 0 || (size_t)o.n > rep.nrows ? rep.nrows : (size_t)o.n;
    if (o.json)
        print_json(&rep, &p, n);
    else
        print_text(&rep, &p, n);
    ap_report_free(&rep);
    ap_profile_free(&p);
    ap_file_close(f);
    ap_sym_free(sym);
    return 0;
}
