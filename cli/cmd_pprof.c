/*
 * cmd_pprof.c — `allocprof pprof FILE [-o OUT.pb.gz]`: exports one dump as a
 * gzipped profile.proto that `go tool pprof` reads with no binaries (every
 * location carries its functions, files and lines) and that continuous-
 * profiling systems taking pprof can ingest. Default output: FILE with its
 * extension replaced by .pb.gz; "-o -" writes to stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "pprof.h"
#include "report.h"

static const char help[] =
    "usage: allocprof pprof FILE[@DUMP] [-o OUT.pb.gz] [-p PROCESS] [-d DUMP]\n"
    "\n"
    "Writes a dump as a gzipped pprof profile with Go's heap sample types\n"
    "(alloc_objects, alloc_space, inuse_objects, inuse_space), symbolized, e.g. for:\n"
    "    go tool pprof -top -sample_index=inuse_space OUT.pb.gz\n" AP_HELP_CHOICE "\n"
    "  -o, --output OUT   output file (default: FILE.dumpN.pb.gz; '-' for stdout)\n"
    "  -p, --process ID   a process row of 'allocprof list'\n"
    "  -d, --dump ID      a dump id of 'allocprof list' (also FILE@ID)\n"
    "  -h, --help         this text\n";

char *ap_default_output(const char *path, int64_t dump, const char *ext)
{
    const char *base = strrchr(path, '/');
    const char *dot = strrchr(base ? base + 1 : path, '.');
    size_t n = dot && dot != (base ? base + 1 : path) ? (size_t)(dot - path) : strlen(path);
    if (dump < 0)
        return ap_xasprintf("%.*s%s", (int)n, path, ext);
    return ap_xasprintf("%.*s.dump%lld%s", (int)n, path, (long long)dump, ext);
}

int ap_cmd_pprof(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_SELECT | AP_OPT_OUT, 1, 1, help, &o);
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
    char *out = o.out ? ap_xstrdup(o.out) : ap_default_output(f->path, p.dump->id, ".pb.gz");
    ap_buf pb = {0};
    ap_pprof_encode(&p, &pb);
    int rc = 0;
    if (ap_gzip_write(out, pb.p, pb.len) < 0) {
        ap_cli_error("pprof: %s: %s", out, strerror(errno));
        rc = 1;
    } else if (strcmp(out, "-")) {
        char *why = ap_process_choice(&p);
        fprintf(stderr, "allocprof: wrote %s (dump %lld of process %lld%s%s)\n", out,
                (long long)p.dump->id, (long long)p.proc->id, why ? ": " : "", why ? why : "");
        free(why);
    }
    free(out);
    ap_buf_free(&pb);
    ap_profile_free(&p);
    ap_file_close(f);
    ap_sym_free(sym);
    return rc;
}
