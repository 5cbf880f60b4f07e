/*
 * cmd_leaks.c — `allocprof leaks FILE`: what was still allocated when the
 * process exited (its 'exit' dump), one entry per distinct call stack with
 * the full symbolized stack, largest first, like heaptrack_print's leak
 * report. A process without an exit dump (killed, or still running) gets a
 * warning and its last dump instead.
 *
 * What it cannot see, it says: at a sampling rate the figures are estimates
 * and a leak of S bytes in all is seen with probability 1 - e^(-S/rate), so
 * the report gives the sizes seen half and a tenth of the time and how to
 * get exact figures (--rate 1). Leaks every program has (the loader's,
 * libc's caches) and those the program names (__lsan_default_suppressions,
 * --suppressions FILE: suppress.c) are left out and counted as suppressed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>

#include "cli.h"
#include "format.h"
#include "report.h"
#include "leaks.h"

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
    "  --suppressions FILE  LeakSanitizer suppressions (leak:PATTERN lines), repeatable;\n"
    "                     with the built-in ones (the loader's, libc's caches) and the\n"
    "                     program's __lsan_default_suppressions\n"
    "  --no-suppress      show every stack, suppress none\n"
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

static void print_text(const ap_report *r, const ap_profile *p, size_t n, const ap_leaks *lt,
                       const ap_supp *sup)
{
    char b[6][AP_FMT_LEN];
    const int64_t *t = r->total[0];
    ap_print_profile_head(stdout, p);
    printf("%s: %s in %s objects from %zu call stack%s (allocated in all: %s in %s objects)\n",
           strcmp(p->dump->reason, "exit") ? "In use" : "Still in use at exit",
           ap_fmt_bytes(lt->bytes, false, b[0]), ap_fmt_count(lt->objects, false, b[1]), r->nrows,
           r->nrows == 1 ? "" : "s", ap_fmt_bytes(t[AP_ALLOC_BYTES], false, b[2]),
           ap_fmt_count(t[AP_ALLOC_OBJECTS], false, b[3]));
    char *note = ap_estimate_note(p), *caveat = ap_leaks_caveat(p);
    printf("(%s)\n", note);
    if (caveat)
        printf("(%s)\n", caveat);
    free(note);
    free(caveat);
    for (size_t i = 0; i < n; i++) {
        const ap_row *row = &r->rows[i];
        const int64_t *v = row->flat[0];
        printf("\n#%zu  %s in %s objects (%s), allocated %s in %s objects\n", i + 1,
               ap_fmt_bytes(v[AP_INUSE_BYTES], false, b[0]),
               ap_fmt_count(v[AP_INUSE_OBJECTS], false, b[1]),
               ap_fmt_percent((double)v[AP_INUSE_BYTES], (double)lt->bytes, b[2]),
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
    if (lt->sup_stacks) {
        printf("\nSuppressed: %s in %s objects from %zu call stack%s (--no-suppress shows "
               "them):\n",
               ap_fmt_bytes(lt->sup_bytes, false, b[0]), ap_fmt_count(lt->sup_objects, false, b[1]),
               lt->sup_stacks, lt->sup_stacks == 1 ? "" : "s");
        for (size_t i = 0; i < sup->n; i++)
            if (sup->rules[i].stacks)
                printf("  leak:%s (%s): %s in %s objects, %zu stack%s\n", sup->rules[i].pattern,
                       sup->rules[i].origin, ap_fmt_bytes(sup->rules[i].bytes, false, b[0]),
                       ap_fmt_count(sup->rules[i].objects, false, b[1]), sup->rules[i].stacks,
                       sup->rules[i].stacks == 1 ? "" : "s");
    }
}

static void print_json(const ap_report *r, const ap_profile *p, size_t n, const ap_leaks *lt,
                       const ap_supp *sup)
{
    fputs("{", stdout);
    ap_json_profile_head(stdout, p);
    fputs(", \"total\": ", stdout);
    ap_json_metrics(stdout, r->total[0]);
    ap_json_estimate(stdout, p);
    printf(", \"leaked\": {\"inuse_bytes\": %lld, \"inuse_objects\": %lld}, \"caveat\": ",
           (long long)lt->bytes, (long long)lt->objects);
    char *caveat = ap_leaks_caveat(p);
    caveat ? ap_json_str(stdout, caveat) : (void)fputs("null", stdout);
    free(caveat);
    fputs(", \"suppressed\": [", stdout);
    int k = 0;
    for (size_t i = 0; i < sup->n; i++) {
        const ap_supp_rule *s = &sup->rules[i];
        if (!s->stacks)
            continue;
        fputs(k++ ? ", {\"pattern\": " : "{\"pattern\": ", stdout);
        ap_json_str(stdout, s->pattern);
        fputs(", \"origin\": ", stdout);
        ap_json_str(stdout, s->origin);
        printf(", \"stacks\": %zu, \"inuse_bytes\": %lld, \"inuse_objects\": %lld}", s->stacks,
               (long long)s->bytes, (long long)s->objects);
    }
    printf("], \"nstacks\": %zu, \"leaks\": [", r->nrows);
    for (size_t i = 0; i < n; i++) {
        fputs(i ? ",\n  {\"stack\": " : "\n  {\"stack\": ", stdout);
        ap_json_frames(stdout, r->rows[i].sym, r->rows[i].nsym);
        fputs(", \"figures\": ", stdout);
        ap_json_metrics(stdout, r->rows[i].flat[0]);
        fputs("}", stdout);
    }
    fputs("]}\n", stdout);
}

int ap_cmd_leaks(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv,
                          AP_OPT_SELECT | AP_OPT_N | AP_OPT_FORMAT | AP_OPT_MIN | AP_OPT_SUPP, 1, 1,
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
    ap_leaks l;
    int bad = ap_leaks_find(&l, f, &p, o.min, o.no_suppress, o.supp_files, o.nsupp);
    if (!bad) {
        ap_report *rep = &l.rep;
        size_t n = o.n <= 0 || (size_t)o.n > rep->nrows ? rep->nrows : (size_t)o.n;
        if (o.json)
            print_json(rep, &p, n, &l, &l.sup);
        else
            print_text(rep, &p, n, &l, &l.sup);
    }
    ap_leaks_free(&l);
    ap_profile_free(&p);
    ap_file_close(f);
    ap_sym_free(sym);
    return bad ? 2 : 0;
}
