/*
 * cmd_flamegraph.c — `allocprof flamegraph FILE [-o OUT.svg] [--folded]`:
 * a flame graph of one dump's stacks weighted by --sort (default
 * inuse-bytes), as a self-contained interactive SVG (default output: FILE
 * with .svg; "-o -" for stdout) or, with --folded, folded stack lines for
 * other flame-graph tools (default: stdout).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flamegraph.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof flamegraph FILE[@DUMP] [-o OUT.svg] [--folded] [--sort METRIC]\n"
    "                            [-p PROCESS] [-d DUMP]\n"
    "\n"
    "Draws the dump's call stacks as an interactive SVG icicle (the root on top):\n"
    "hover shows a frame's function, file, module, value and share; Search (or Ctrl-F)\n"
    "paints the frames a regular expression matches and sums them; a click zooms,\n"
    "Escape or 'Reset zoom' returns; colours are the modules the code is in. --folded\n"
    "writes 'outer;...;inner VALUE' lines instead (flamegraph.pl, inferno, "
    "speedscope).\n" AP_HELP_CHOICE "\n"
    "  -o, --output OUT   output file (SVG default: FILE.dumpN.svg; folded\n"
    "                     default: stdout; '-' for stdout)\n"
    "  --folded           folded stacks instead of SVG\n"
    "  --sort METRIC      inuse-bytes (default), inuse-objects, alloc-bytes, alloc-objects\n"
    "  -p, --process ID   a process row of 'allocprof list'\n"
    "  -d, --dump ID      a dump id of 'allocprof list' (also FILE@ID)\n"
    "  -h, --help         this text\n";

static int write_output(const ap_opts *o, const ap_profile *p, const char *path)
{
    FILE *out = strcmp(path, "-") ? fopen(path, "w") : stdout;
    if (!out) {
        ap_cli_error("flamegraph: %s: %s", path, strerror(errno));
        return 1;
    }
    if (o->folded) {
        ap_flame_folded(out, p, o->metric);
    } else {
        int64_t total = 0;
        for (size_t i = 0; i < p->nbuckets; i++)
            total += p->buckets[i].v[o->metric] > 0 ? p->buckets[i].v[o->metric] : 0;
        char tot[AP_FMT_LEN];
        char *title = ap_xasprintf(
            "%s %s — %s, dump %lld (%s) of %s", ap_fmt_metric(o->metric, total, false, tot),
            ap_metric_names[o->metric], ap_basename(p->file->path), (long long)p->dump->id,
            p->dump->reason, p->proc->exe ? ap_basename(p->proc->exe) : "?");
        char *note = ap_estimate_note(p);
        ap_flame_svg(out, p, o->metric, title, note);
        free(note);
        free(title);
    }
    int err = ferror(out);
    if ((out != stdout ? fclose(out) : fflush(out)) != 0 || err) {
        ap_cli_error("flamegraph: %s: write error", path);
        return 1;
    }
    if (out != stdout) {
        char *why = ap_process_choice(p);
        fprintf(stderr, "allocprof: wrote %s (dump %lld of process %lld%s%s)\n", path,
                (long long)p->dump->id, (long long)p->proc->id, why ? ": " : "", why ? why : "");
        free(why);
    }
    return 0;
}

int ap_cmd_flamegraph(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_SELECT | AP_OPT_OUT | AP_OPT_FOLDED | AP_OPT_SORT, 1,
                          1, help, &o);
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
    char *path = o.out      ? ap_xstrdup(o.out)
                 : o.folded ? ap_xstrdup("-")
                            : ap_default_output(f->path, p.dump->id, ".svg");
    int rc = write_output(&o, &p, path);
    free(path);
    ap_profile_free(&p);
    ap_file_close(f);
    ap_sym_free(sym);
    return rc;
}
