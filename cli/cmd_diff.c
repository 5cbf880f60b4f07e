/*
 * cmd_diff.c — `allocprof diff BASE NEW`: what changed between two profiles
 * (two files, two dumps of one file as FILE@ID, or one file with
 * --base-dump ID and -d ID), like `go tool pprof -diff_base` and
 * `heaptrack_print --diff`: rows of the chosen granularity with base, new
 * and change, sorted by the absolute change so growth and shrink are both
 * at the top; rows that did not change are left out. Both sides are
 * symbolized by one symbolizer, so the same function in two builds of a
 * program (different addresses) is one row.
 *
 * Sampled figures carry a sampling error (ap_sampling_error): a change
 * smaller than twice the error of the difference is marked "~" and listed
 * after the changes that are not, so noise is shown but never ranked as
 * growth. Profiles taken at different rates get a warning.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof diff BASE NEW [--sort METRIC] [--by KEY] [-n N] [--cum]\n"
    "                      [-p PROCESS] [--format text|json]\n"
    "       allocprof diff FILE --base-dump ID -d ID [options]\n"
    "\n"
    "Compares two profiles: BASE and NEW are files, or FILE@ID for a dump id of\n"
    "'allocprof list'. Rows are sorted by the absolute change; growth (+) and shrink\n"
    "(-) both show; changes within the sampling error are marked ~ and come last.\n" AP_HELP_CHOICE
    "\n"
    "  --sort METRIC      inuse-bytes (default), inuse-objects, alloc-bytes, alloc-objects\n"
    "  --by KEY           function (default), line, stack, thread\n"
    "  -n, --nodes N      show N rows (default 20, 0: all)\n"
    "  --cum              compare cumulative values instead of flat ones\n"
    "  -p, --process ID   the process row in both files (default: the one that\n"
    "                     allocated the most)\n"
    "  --base-dump ID     the base dump, with a single FILE\n"
    "  -d, --dump ID      the new dump, with a single FILE\n"
    "  --format text|json output format (--json is short for json)\n"
    "  -h, --help         this text\n";

typedef struct side {
    ap_file *f;
    ap_profile p;
} side;

static int open_sides(const ap_opts *o, ap_symbolizer *sym, side s[2])
{
    const char *base = o->files[0], *new = o->nfiles > 1 ? o->files[1] : o->files[0];
    s[0].f = ap_open_profile(base, o, o->base_dump, sym, &s[0].p);
    if (!s[0].f)
        return -1;
    s[1].f = ap_open_profile(new, o, o->nfiles > 1 ? -1 : o->dump, sym, &s[1].p);
    if (!s[1].f) {
        ap_profile_free(&s[0].p);
        ap_file_close(s[0].f);
        return -1;
    }
    return 0;
}

static int64_t value(const ap_row *row, int side, const ap_opts *o)
{
    return (o->cum ? row->cum : row->flat)[side][o->metric];
}

/* Twice the standard error of a row's change (0 with --rate 1 on both sides). */
static double change_error(const ap_row *row, const side s[2], const ap_opts *o)
{
    double e0 = ap_sampling_error((o->cum ? row->cum : row->flat)[0], o->metric, s[0].p.proc->rate);
    double e1 = ap_sampling_error((o->cum ? row->cum : row->flat)[1], o->metric, s[1].p.proc->rate);
    return 2 * sqrt(e0 * e0 + e1 * e1);
}

static bool within_error(const ap_row *row, const side s[2], const ap_opts *o)
{
    double d = (double)(value(row, 1, o) - value(row, 0, o));
    return fabs(d) < change_error(row, s, o);
}

/* The changed rows (sorted by |change|) with those within the sampling error
 * moved after the others, each group keeping its order. */
static void noise_last(ap_report *r, size_t changed, const side s[2], const ap_opts *o)
{
    ap_row *tmp = ap_xcalloc(changed ? changed : 1, sizeof *tmp);
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < changed; i++)
            if (within_error(&r->rows[i], s, o) == (pass == 1))
                tmp[k++] = r->rows[i];
    memcpy(r->rows, tmp, changed * sizeof *tmp);
    free(tmp);
}

static void rate_warning(FILE *out, const side s[2], const char *prefix)
{
    char a[AP_FMT_LEN], b[AP_FMT_LEN];
    if (s[0].p.proc->rate != s[1].p.proc->rate)
        fprintf(out,
                "%sbase sampled one per %s, new one per %s: their estimates differ in "
                "precision, compare with care",
                prefix, ap_fmt_bytes(s[0].p.proc->rate, false, a),
                ap_fmt_bytes(s[1].p.proc->rate, false, b));
}

static const char *signed_percent(int64_t change, int64_t base, char *buf)
{
    ap_fmt_percent((double)change, (double)base, buf + 1);
    if (change <= 0)
        return buf + 1;
    buf[0] = '+';
    return buf;
}

static void print_text(const ap_report *r, side s[2], const ap_opts *o, size_t n)
{
    int m = o->metric;
    char b[4][AP_FMT_LEN + 1];
    fputs("base: ", stdout);
    ap_print_profile_head(stdout, &s[0].p);
    fputs("new:  ", stdout);
    ap_print_profile_head(stdout, &s[1].p);
    int64_t tb = r->total[0][m], tn = r->total[1][m];
    printf("%s by %s%s: base %s, new %s, change %s (%s)\n", ap_metric_names[m], ap_by_names[o->by],
           o->cum ? " (cum)" : "", ap_fmt_metric(m, tb, false, b[0]),
           ap_fmt_metric(m, tn, false, b[1]), ap_fmt_metric(m, tn - tb, true, b[2]),
           tb ? signed_percent(tn - tb, tb, b[3]) : "new");
    for (int k = 0; k < 2; k++) {
        char *note = ap_estimate_note(&s[k].p);
        printf("(%s: %s)\n", k ? "new" : "base", note);
        free(note);
    }
    rate_warning(stdout, s, "warning: ");
    if (s[0].p.proc->rate != s[1].p.proc->rate)
        putchar('\n');
    bool sampled = s[0].p.proc->rate > 1 || s[1].p.proc->rate > 1;
    if (sampled)
        printf("(~: a change within twice its sampling error, listed after the others)\n");
    ap_table t;
    ap_table_init(&t, 6);
    ap_table_row(&t,
                 (const char *[]){"change", "change%", "error", "base", "new", ap_by_names[o->by]});
    for (size_t i = 0; i < n; i++) {
        const ap_row *row = &r->rows[i];
        int64_t vb = value(row, 0, o), vn = value(row, 1, o);
        char *label = ap_row_label(r, row, s[1].f, false);
        char ch[AP_FMT_LEN + 2], err[AP_FMT_LEN + 2];
        snprintf(ch, sizeof ch, "%s%s", within_error(row, s, o) ? "~" : "",
                 ap_fmt_metric(m, vn - vb, true, b[0]));
        snprintf(err, sizeof err, "±%s",
                 ap_fmt_metric(m, (int64_t)llround(change_error(row, s, o)), false, b[2]));
        ap_table_row(&t, (const char *[]){ch, vb ? signed_percent(vn - vb, vb, b[1]) : "new",
                                          sampled ? err : "-", ap_fmt_metric(m, vb, false, b[2]),
                                          ap_fmt_metric(m, vn, false, b[3]), label});
        free(label);
        ap_table_stack_rows(&t, r, row);
    }
    ap_table_print(&t, stdout, "");
    ap_table_free(&t);
}

static void json_side(const char *name, const ap_profile *p)
{
    printf("\"%s\": {", name);
    ap_json_profile_head(stdout, p);
    fputs("}", stdout);
}

static void print_json(const ap_report *r, side s[2], const ap_opts *o, size_t n)
{
    fputs("{", stdout);
    json_side("base", &s[0].p);
    fputs(", ", stdout);
    json_side("new", &s[1].p);
    printf(", \"sort\": \"%s\", \"by\": \"%s\", \"cum\": %s, \"total\": {\"base\": ",
           ap_metric_names[o->metric], ap_by_names[o->by], o->cum ? "true" : "false");
    ap_json_metrics(stdout, r->total[0]);
    fputs(", \"new\": ", stdout);
    ap_json_metrics(stdout, r->total[1]);
    fputs("}, \"warnings\": [", stdout);
    if (s[0].p.proc->rate != s[1].p.proc->rate) {
        char *w = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&w, &len);
        rate_warning(m, s, "");
        fclose(m);
        ap_json_str(stdout, w);
        free(w);
    }
    printf("], \"nrows\": %zu, \"rows\": [", n);
    for (size_t i = 0; i < n; i++) {
        const ap_row *row = &r->rows[i];
        const int64_t(*v)[AP_NMETRICS] = o->cum ? row->cum : row->flat;
        int64_t d[AP_NMETRICS];
        for (int m = 0; m < AP_NMETRICS; m++)
            d[m] = v[1][m] - v[0][m];
        fputs(i ? ",\n  {" : "\n  {", stdout);
        ap_json_row_key(stdout, r, row, s[1].f);
        fputs(", \"base\": ", stdout);
        ap_json_metrics(stdout, v[0]);
        fputs(", \"new\": ", stdout);
        ap_json_metrics(stdout, v[1]);
        fputs(", \"change\": ", stdout);
        ap_json_metrics(stdout, d);
        printf(", \"error\": %lld, \"within_error\": %s}",
               (long long)llround(change_error(row, s, o)),
               within_error(row, s, o) ? "true" : "false");
    }
    fputs("]}\n", stdout);
}

int ap_cmd_diff(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv,
                          AP_OPT_SELECT | AP_OPT_SORT | AP_OPT_BY | AP_OPT_N | AP_OPT_CUM |
                              AP_OPT_FORMAT | AP_OPT_BASE,
                          1, 2, help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    o.prefer_peak = true;
    if (o.nfiles == 1 && (o.base_dump < 0 || o.dump < 0)) {
        ap_cli_error("diff: needs BASE and NEW (two files, FILE@ID, or --base-dump and -d)");
        return 2;
    }
    ap_symbolizer *sym = ap_sym_new();
    side s[2];
    if (open_sides(&o, sym, s) < 0) {
        ap_sym_free(sym);
        return 1;
    }
    ap_report rep;
    ap_report_init(&rep, o.by);
    ap_report_add(&rep, &s[0].p, 0);
    ap_report_add(&rep, &s[1].p, 1);
    ap_report_sort(&rep, o.metric, o.cum, true);
    size_t changed = 0;
    while (changed < rep.nrows &&
           value(&rep.rows[changed], 0, &o) != value(&rep.rows[changed], 1, &o))
        changed++; /* sorted by |change|: the unchanged rows come last */
    noise_last(&rep, changed, s, &o);
    size_t n = o.n < 0 ? 20 : (size_t)o.n;
    if (n == 0 || n > changed)
        n = changed;
    if (o.json)
        print_json(&rep, s, &o, n);
    else
        print_text(&rep, s, &o, n);
    ap_report_free(&rep);
    for (int i = 0; i < 2; i++) {
        ap_profile_free(&s[i].p);
        ap_file_close(s[i].f);
    }
    ap_sym_free(sym);
    return 0;
}
