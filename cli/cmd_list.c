/*
 * cmd_list.c — `allocprof list FILE`: the processes of a profile and their
 * dumps (id, seq, time, reason, in-use bytes and objects, allocated bytes,
 * samples), as an aligned table or --format json. The dump ids shown are
 * what -d/--dump and FILE@DUMP take in the other reports.
 *
 * A run of a shell script or a launcher (pyenv's shims run env, bash,
 * readlink... before the interpreter) records dozens of processes that
 * allocate next to nothing; the text lists the ones that allocated at least
 * 10 % of what the busiest did, and folds the others into one summary line
 * (--all lists every one; JSON always has all).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof list FILE [--all] [--format text|json]\n"
    "\n"
    "Lists the processes recorded in FILE and their dumps: id (for -d/--dump and\n"
    "FILE@ID), sequence number, time, reason (exit, request, interval, peak),\n"
    "estimated bytes and objects in use, bytes allocated since start, samples.\n"
    "Processes that allocated less than 10 % of the busiest one are folded into\n"
    "one line. Reports take the process that allocated the most unless -p ID\n"
    "names another.\n"
    "\n"
    "  --all                list every process\n"
    "  --format text|json   output format (default text); --json is short for json\n"
    "  -h, --help           this text\n";

/* Bytes the process allocated by its last dump; -1 when it has no dump. */
static int64_t allocated(const ap_file *f, const ap_process *p)
{
    const ap_dump *d = ap_last_dump(f, p->id);
    return d ? d->alloc_bytes : -1;
}

static void print_cmdline(FILE *out, const ap_process *p)
{
    char **argv = ap_json_string_array(p->cmdline);
    char *s = argv && argv[0] ? ap_shell_join(argv) : NULL;
    fputs(s ? s : p->cmdline ? p->cmdline : "", out);
    free(s);
    ap_strv_free(argv);
}

/* A process without its exit dump: from when on it has none, and why. */
static void print_no_exit(const ap_file *f, const ap_process *p, FILE *out)
{
    const ap_dump *last = ap_last_dump(f, p->id);
    const ap_process *next = NULL; /* the program it exec'ed: same pid, a later row */
    for (size_t i = 0; i < f->nprocs && !next; i++)
        if (f->procs[i].id > p->id && f->procs[i].pid == p->pid)
            next = &f->procs[i];
    if (last)
        fprintf(out, "  no exit dump: nothing recorded after %.2f s. ", last->time - p->start_time);
    else
        fputs("  no dumps. ", out);
    if (next)
        fprintf(out, "It exec'ed another program (process %lld)\n", (long long)next->id);
    else
        fputs("It was killed, crashed, ended with _exit, is still running, or could no\n"
              "  longer open the profile (a sandbox; its stderr then has an 'allocprof:' line)\n",
              out);
}

static void list_process(const ap_file *f, const ap_process *p, FILE *out)
{
    char b1[AP_FMT_LEN], b2[AP_FMT_LEN];
    fprintf(out, "process %lld: pid %lld (ppid %lld", (long long)p->id, (long long)p->pid,
            (long long)p->ppid);
    if (p->parent_id)
        fprintf(out, ", forked from process %lld", (long long)p->parent_id);
    fprintf(out, "), %s\n  command: ", p->exe ? p->exe : "?");
    print_cmdline(out, p);
    fprintf(out, "\n  started %s", ap_fmt_time(p->start_time, b1));
    if (p->end_time > 0)
        fprintf(out, ", ended after %.2f s", p->end_time - p->start_time);
    if (p->rate <= 1)
        fputs(", every allocation recorded\n", out);
    else
        fprintf(out, ", sampling every %s\n", ap_fmt_bytes(p->rate, false, b2));
    ap_table t;
    ap_table_init(&t, 9);
    t.left = -1;
    ap_table_row(&t, (const char *[]){"dump", "seq", "time", "after", "reason", "in use", "objects",
                                      "allocated", "samples"});
    size_t n = 0;
    for (size_t i = 0; i < f->ndumps; i++) {
        const ap_dump *d = &f->dumps[i];
        if (d->process_id != p->id)
            continue;
        char id[24], seq[24], after[32], c[4][AP_FMT_LEN];
        snprintf(id, sizeof id, "%lld", (long long)d->id);
        snprintf(seq, sizeof seq, "%lld", (long long)d->seq);
        snprintf(after, sizeof after, "%.2f s", d->time - p->start_time);
        ap_table_row(&t, (const char *[]){id, seq, ap_fmt_time(d->time, b1), after, d->reason,
                                          ap_fmt_bytes(d->inuse_bytes, false, c[0]),
                                          ap_fmt_count(d->inuse_objects, false, c[1]),
                                          ap_fmt_bytes(d->alloc_bytes, false, c[2]),
                                          ap_fmt_count(d->samples, false, c[3])});
        n++;
    }
    if (n)
        ap_table_print(&t, out, "  ");
    else if (p->end_time > 0)
        fputs("  no dumps\n", out);
    ap_table_free(&t);
    if (p->end_time <= 0)
        print_no_exit(f, p, out);
}

static void json_process(const ap_file *f, const ap_process *p, FILE *out)
{
    fprintf(out, "{\"id\": %lld, \"pid\": %lld, \"ppid\": %lld, \"parent_id\": ", (long long)p->id,
            (long long)p->pid, (long long)p->ppid);
    p->parent_id ? fprintf(out, "%lld", (long long)p->parent_id) : fputs("null", out);
    fputs(", \"exe\": ", out);
    ap_json_str(out, p->exe);
    fputs(", \"cmdline\": [", out);
    char **argv = ap_json_string_array(p->cmdline);
    for (size_t i = 0; argv && argv[i]; i++) {
        fputs(i ? ", " : "", out);
        ap_json_str(out, argv[i]);
    }
    ap_strv_free(argv);
    fputs("], \"build_id\": ", out);
    ap_json_str(out, p->build_id);
    fprintf(out, ", \"start_time\": %.6f, \"end_time\": ", p->start_time);
    p->end_time > 0 ? fprintf(out, "%.6f", p->end_time) : fputs("null", out);
    fprintf(out, ", \"rate\": %lld, \"dumps\": [", (long long)p->rate);
    int n = 0;
    for (size_t i = 0; i < f->ndumps; i++) {
        const ap_dump *d = &f->dumps[i];
        if (d->process_id != p->id)
            continue;
        fprintf(out, "%s\n    {\"id\": %lld, \"seq\": %lld, \"time\": %.6f, \"reason\": ",
                n++ ? "," : "", (long long)d->id, (long long)d->seq, d->time);
        ap_json_str(out, d->reason);
        fprintf(out,
                ", \"inuse_bytes\": %lld, \"inuse_objects\": %lld, \"alloc_bytes\": %lld, "
                "\"alloc_objects\": %lld, \"samples\": %lld}",
                (long long)d->inuse_bytes, (long long)d->inuse_objects, (long long)d->alloc_bytes,
                (long long)d->alloc_objects, (long long)d->samples);
    }
    fputs("]}", out);
}

int ap_cmd_list(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_FORMAT | AP_OPT_ALL, 1, 1, help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    ap_file *f = ap_file_open(o.files[0]);
    if (!f)
        return 1;
    if (o.json) {
        fputs("{\"file\": ", stdout);
        ap_json_str(stdout, f->path);
        fputs(", \"processes\": [", stdout);
        for (size_t i = 0; i < f->nprocs; i++) {
            fputs(i ? ",\n  " : "\n  ", stdout);
            json_process(f, &f->procs[i], stdout);
        }
        fputs("]}\n", stdout);
    } else {
        printf("%s: %zu process%s, %zu dump%s\n", f->path, f->nprocs, f->nprocs == 1 ? "" : "es",
               f->ndumps, f->ndumps == 1 ? "" : "s");
        int64_t most = 0;
        for (size_t i = 0; i < f->nprocs; i++)
            if (allocated(f, &f->procs[i]) > most)
                most = allocated(f, &f->procs[i]);
        int64_t main_id = ap_default_process(f);
        size_t folded = 0, no_dumps = 0;
        int64_t folded_bytes = 0;
        for (size_t i = 0; i < f->nprocs; i++) {
            const ap_process *p = &f->procs[i];
            int64_t a = allocated(f, p);
            if (o.all || p->id == main_id || (a >= 0 && a * 10 >= most)) {
                list_process(f, p, stdout);
                continue;
            }
            folded++;
            no_dumps += a < 0;
            folded_bytes += a > 0 ? a : 0;
        }
        if (folded) {
            char b[AP_FMT_LEN];
            printf("(%zu more process%s, each of which allocated less than 10%% of the busiest "
                   "one: %s in all, %zu with no dump; --all lists them)\n",
                   folded, folded == 1 ? "" : "es", ap_fmt_bytes(folded_bytes, false, b), no_dumps);
        }
    }
    ap_file_close(f);
    return 0;
}
