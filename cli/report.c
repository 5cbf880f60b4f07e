/*
 * report.c — aggregation of symbolized profiles into rows (design in
 * report.h).
 */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

const char *const ap_metric_names[AP_NMETRICS] = {"inuse-bytes", "inuse-objects", "alloc-bytes",
                                                  "alloc-objects"};
const char *const ap_by_names[4] = {"function", "line", "stack", "thread"};

/* Stacks without frames (or whose stack row is missing) land here. */
static const ap_func no_stack_func = {"[no stack]", NULL, 0, true};
static const ap_line no_stack_line = {&no_stack_func, 0, 0};
static const ap_line *const no_stack_sym[1] = {&no_stack_line};

void ap_report_init(ap_report *r, int by)
{
    memset(r, 0, sizeof *r);
    r->by = by;
}

void ap_report_free(ap_report *r)
{
    free(r->rows);
    ap_map_free(&r->index);
    memset(r, 0, sizeof *r);
}

static bool same_stack(const ap_row *row, const ap_line *const *sym, uint32_t n)
{
    return row->nsym == n && !memcmp(row->sym, sym, n * sizeof *sym);
}

/* The row of a key; key identity is checked, collisions probe on. */
static ap_row *get_row(ap_report *r, const ap_line *const *sym, uint32_t n, const ap_line *l,
                       int64_t tid, int64_t pid)
{
    uint64_t key;
    switch (r->by) {
    case AP_BY_FUNCTION:
        key = (uintptr_t)l->func;
        break;
    case AP_BY_LINE:
        key = (uintptr_t)l;
        break;
    case AP_BY_STACK:
        key = ap_hash_bytes(sym, n * sizeof *sym, 0);
        break;
    default:
        key = ap_hash_u64((uint64_t)tid) ^ (uint64_t)pid;
        break;
    }
    for (;;) {
        bool created;
        uint64_t *slot = ap_map_put(&r->index, key, &created);
        ap_row *row = created ? NULL : &r->rows[*slot];
        if (row && (r->by == AP_BY_FUNCTION ? row->func == l->func
                    : r->by == AP_BY_LINE   ? row->line == l
                    : r->by == AP_BY_STACK  ? same_stack(row, sym, n)
                                            : row->tid == tid && row->process_id == pid))
            return row;
        if (row) {
            key = ap_hash_u64(key + 1);
            continue;
        }
        ap_grow(&r->rows, &r->cap, r->nrows + 1, sizeof *r->rows);
        *slot = r->nrows;
        row = &r->rows[r->nrows++];
        memset(row, 0, sizeof *row);
        row->func = l ? l->func : NULL;
        row->line = l;
        row->sym = sym;
        row->nsym = n;
        row->tid = tid;
        row->process_id = pid;
        return row;
    }
}

static void add_values(int64_t *dst, const int64_t *v)
{
    for (int m = 0; m < AP_NMETRICS; m++)
        dst[m] += v[m];
}

/* Adds one stack's summed figures: flat to the innermost key, cum to every
 * distinct key. */
static void add_stack(ap_report *r, const ap_line *const *sym, uint32_t n, const int64_t *v,
                      int side)
{
    if (!n) {
        sym = no_stack_sym;
        n = 1;
    }
    if (r->by == AP_BY_STACK) {
        ap_row *row = get_row(r, sym, n, sym[0], 0, 0);
        add_values(row->flat[side], v);
        add_values(row->cum[side], v);
        return;
    }
    uint32_t stamp = ++r->stamp;
    for (uint32_t i = 0; i < n; i++) {
        ap_row *row = get_row(r, NULL, 0, sym[i], 0, 0);
        if (i == 0)
            add_values(row->flat[side], v);
        if (row->stamp != stamp) {
            row->stamp = stamp;
            add_values(row->cum[side], v);
        }
    }
}

void ap_report_add(ap_report *r, const ap_profile *p, int side)
{
    for (size_t i = 0; i < p->nbuckets; i++)
        add_values(r->total[side], p->buckets[i].v);
    if (r->by == AP_BY_THREAD) {
        for (size_t i = 0; i < p->nbuckets; i++) {
            const ap_bucket *b = &p->buckets[i];
            ap_row *row = get_row(r, NULL, 0, NULL, b->tid, p->proc->id);
            add_values(row->flat[side], b->v);
            add_values(row->cum[side], b->v);
        }
        return;
    }
    /* Sum per stack first: many buckets share a stack (one per thread). */
    int64_t(*sums)[AP_NMETRICS] = ap_xcalloc(p->nstacks + 1, sizeof *sums);
    for (size_t i = 0; i < p->nbuckets; i++) {
        const ap_bucket *b = &p->buckets[i];
        size_t k = b->stack ? (size_t)(b->stack - p->stacks) : p->nstacks;
        add_values(sums[k], b->v);
    }
    for (size_t k = 0; k <= p->nstacks; k++) {
        bool any = false;
        for (int m = 0; m < AP_NMETRICS; m++)
            any |= sums[k][m] != 0;
        if (!any)
            continue;
        const ap_stack *st = k < p->nstacks ? &p->stacks[k] : NULL;
        add_stack(r, st ? st->sym : NULL, st ? st->nsym : 0, sums[k], side);
    }
    free(sums);
}

static int sort_metric;
static bool sort_cum, sort_delta;

static int64_t sort_value(const ap_row *row)
{
    const int64_t(*v)[AP_NMETRICS] = sort_cum ? row->cum : row->flat;
    int64_t x = sort_delta ? v[1][sort_metric] - v[0][sort_metric] : v[0][sort_metric];
    return sort_delta && x < 0 ? -x : x;
}

static int cmp_rows(const void *a, const void *b)
{
    int64_t x = sort_value(a), y = sort_value(b);
    if (x != y)
        return x > y ? -1 : 1;
    const ap_row *ra = a, *rb = b;
    const char *na = ra->func ? ra->func->name : "", *nb = rb->func ? rb->func->name : "";
    int c = strcmp(na, nb);
    if (c)
        return c;
    int64_t la = ra->line ? ra->line->line : ra->tid, lb = rb->line ? rb->line->line : rb->tid;
    return la < lb ? -1 : la > lb;
}

static bool row_nonzero(const ap_row *row, int metric, bool delta)
{
    for (int s = 0; s < (delta ? 2 : 1); s++)
        if (row->flat[s][metric] || row->cum[s][metric])
            return true;
    return false;
}

void ap_report_sort(ap_report *r, int metric, bool cum, bool delta)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nrows; i++)
        if (row_nonzero(&r->rows[i], metric, delta))
            r->rows[n++] = r->rows[i];
    r->nrows = n;
    ap_map_free(&r->index); /* rows moved: the index is stale */
    sort_metric = metric;
    sort_cum = cum;
    sort_delta = delta;
    if (r->nrows > 1)
        qsort(r->rows, r->nrows, sizeof *r->rows, cmp_rows);
}

char *ap_line_label(const ap_line *l)
{
    const ap_func *f = l->func;
    if (!f->file)
        return ap_xstrdup(f->name);
    if (!l->line)
        return ap_xasprintf("%s %s", f->name, ap_basename(f->file));
    return ap_xasprintf("%s %s:%lld", f->name, ap_basename(f->file), (long long)l->line);
}

char *ap_row_label(const ap_report *r, const ap_row *row, const ap_file *f, bool full_path)
{
    switch (r->by) {
    case AP_BY_FUNCTION:
        return ap_xstrdup(row->func->name);
    case AP_BY_LINE:
    case AP_BY_STACK: {
        const ap_line *l = r->by == AP_BY_LINE ? row->line : row->sym[0];
        if (!full_path || !l->func->file)
            return ap_line_label(l);
        return ap_xasprintf("%s %s:%lld", l->func->name, l->func->file, (long long)l->line);
    }
    default: {
        const char *name = f ? ap_thread_name(f, row->process_id, row->tid) : NULL;
        return name ? ap_xasprintf("thread %lld (%s)", (long long)row->tid, name)
                    : ap_xasprintf("thread %lld", (long long)row->tid);
    }
    }
}

char *ap_fmt_metric(int metric, int64_t v, bool plus, char *buf)
{
    return ap_metric_is_bytes(metric) ? ap_fmt_bytes(v, plus, buf) : ap_fmt_count(v, plus, buf);
}

void ap_json_metrics(FILE *out, const int64_t *v)
{
    fprintf(out,
            "{\"inuse_bytes\": %lld, \"inuse_objects\": %lld, \"alloc_bytes\": %lld, "
            "\"alloc_objects\": %lld}",
            (long long)v[AP_INUSE_BYTES], (long long)v[AP_INUSE_OBJECTS],
            (long long)v[AP_ALLOC_BYTES], (long long)v[AP_ALLOC_OBJECTS]);
}

static void json_line(FILE *out, const ap_line *l)
{
    fputs("{\"function\": ", out);
    ap_json_str(out, l->func->name);
    fputs(", \"file\": ", out);
    ap_json_str(out, l->func->file);
    fprintf(out, ", \"line\": %lld}", (long long)l->line);
}

void ap_json_frames(FILE *out, const ap_line *const *sym, uint32_t n)
{
    fputs("[", out);
    for (uint32_t i = 0; i < n; i++) {
        fputs(i ? ", " : "", out);
        json_line(out, sym[i]);
    }
    fputs("]", out);
}

void ap_json_row_key(FILE *out, const ap_report *r, const ap_row *row, const ap_file *f)
{
    if (r->by == AP_BY_THREAD) {
        fprintf(out, "\"tid\": %lld, \"thread_name\": ", (long long)row->tid);
        ap_json_str(out, f ? ap_thread_name(f, row->process_id, row->tid) : NULL);
        return;
    }
    const ap_line *l = r->by == AP_BY_STACK ? row->sym[0] : row->line;
    fputs("\"name\": ", out);
    ap_json_str(out, l->func->name);
    fputs(", \"file\": ", out);
    ap_json_str(out, l->func->file);
    if (r->by != AP_BY_FUNCTION)
        fprintf(out, ", \"line\": %lld", (long long)l->line);
    if (r->by == AP_BY_STACK) {
        fputs(", \"stack\": ", out);
        ap_json_frames(out, row->sym, row->nsym);
    }
}

/* Why this process, when the file has others and it is the default
 * choice: NULL, or a malloc'd sentence. */
char *ap_process_choice(const ap_profile *p)
{
    const ap_file *f = p->file;
    if (f->nprocs < 2 || p->proc->id != ap_default_process(f))
        return NULL;
    return ap_xasprintf("of %zu processes (%zu with dumps), the one that allocated the most; "
                        "-p ID chooses another, 'allocprof list' shows them",
                        f->nprocs, ap_processes_with_dumps(f));
}

void ap_json_profile_head(FILE *out, const ap_profile *p)
{
    fputs("\"file\": ", out);
    ap_json_str(out, p->file->path);
    fprintf(out, ", \"process\": {\"id\": %lld, \"pid\": %lld, \"exe\": ", (long long)p->proc->id,
            (long long)p->proc->pid);
    ap_json_str(out, p->proc->exe);
    fprintf(out,
            ", \"rate\": %lld}, \"dump\": {\"id\": %lld, \"seq\": %lld, \"time\": %.6f, "
            "\"reason\": ",
            (long long)p->proc->rate, (long long)p->dump->id, (long long)p->dump->seq,
            p->dump->time);
    ap_json_str(out, p->dump->reason);
    fputs("}", out);
    if (p->file->dump_why) {
        fputs(", \"dump_choice\": ", out);
        ap_json_str(out, p->file->dump_why);
    }
    char *why = ap_process_choice(p);
    if (why) {
        fputs(", \"process_choice\": ", out);
        ap_json_str(out, why);
    }
    free(why);
}

void ap_print_profile_head(FILE *out, const ap_profile *p)
{
    fprintf(out, "%s: process %lld (pid %lld) %s, dump %lld (%s, seq %lld, after %.2f s)\n",
            p->file->path, (long long)p->proc->id, (long long)p->proc->pid,
            p->proc->exe ? p->proc->exe : "?", (long long)p->dump->id, p->dump->reason,
            (long long)p->dump->seq, p->dump->time - p->proc->start_time);
    if (p->file->dump_why)
        fprintf(out, "(%s)\n", p->file->dump_why);
    char *why = ap_process_choice(p);
    if (why)
        fprintf(out, "(%s)\n", why);
    free(why);
}
void ap_table_stack_rows(ap_table *t, const ap_report *r, const ap_row *row)
{
    const char *cells[16] = {0};
    for (uint32_t i = 1; r->by == AP_BY_STACK && i < row->nsym; i++) {
        char *l = ap_line_label(row->sym[i]);
        char *ind = ap_xasprintf("    %s", l);
        for (size_t c = 0; c + 1 < t->cols && c < 15; c++)
            cells[c] = "";
        cells[t->cols - 1] = ind;
        ap_table_row(t, cells);
        free(ind);
        free(l);
    }
}

double ap_sampling_error(const int64_t v[AP_NMETRICS], int metric, int64_t rate)
{
    if (rate <= 1)
        return 0;
    int bytes_metric = metric == AP_INUSE_OBJECTS   ? AP_INUSE_BYTES
                       : metric == AP_ALLOC_OBJECTS ? AP_ALLOC_BYTES
                                                    : metric;
    double b = v[bytes_metric] > 0 ? (double)v[bytes_metric] : 0;
    double se = sqrt(b * (double)rate);
    if (bytes_metric == metric)
        return se;
    return b > 0 ? (double)v[metric] * se / b : 0;
}

char *ap_estimate_note(const ap_profile *p)
{
    char r[AP_FMT_LEN], e[AP_FMT_LEN];
    int64_t exact;
    int have = ap_dump_exact_inuse(p->file, p->dump->id, &exact);
    if (p->proc->rate <= 1)
        return ap_xasprintf("exact: every allocation recorded, %lld samples%s%s%s",
                            (long long)p->dump->samples, have ? "; the allocator counts " : "",
                            have ? ap_fmt_bytes(exact, false, e) : "", have ? " in use" : "");
    return ap_xasprintf("estimated from samples, one per %s allocated on average (%lld so far)"
                        "%s%s%s",
                        ap_fmt_bytes(p->proc->rate, false, r), (long long)p->dump->samples,
                        have ? "; the allocator counts " : "",
                        have ? ap_fmt_bytes(exact, false, e) : "", have ? " in use, exactly" : "");
}

void ap_json_estimate(FILE *out, const ap_profile *p)
{
    int64_t exact;
    fprintf(out, ", \"samples\": %lld, \"exact_inuse_bytes\": ", (long long)p->dump->samples);
    if (ap_dump_exact_inuse(p->file, p->dump->id, &exact))
        fprintf(out, "%lld", (long long)exact);
    else
        fputs("null", out);
}
