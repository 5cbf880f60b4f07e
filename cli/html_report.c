/*
 * html_report.c — the data of `allocprof report`: one self-contained HTML
 * file (page skeleton, style and script from cli/report/, embedded at build
 * time; the profile's data as one JSON object), which the page's script
 * (report.js) draws as a timeline, a flame graph and tables.
 *
 * Design: the data is embedded the way the profile stores it, so a profile
 * of many dumps stays small. Frames are symbolized once (the symbolizer that
 * top uses) into a table of functions (name, file, module) and a table of
 * lines (function, line); each process has its table of stacks (line ids,
 * innermost first, inlined frames expanded as in every report), its table of
 * bucket keys (stack, thread), and per dump only the bucket rows that dump
 * wrote (the delta rule of docs/schema.md), in key order, each as the gap
 * from the row before it and the change of its four counters (alloc and
 * free, objects and bytes) since the key's last row, which keeps the numbers
 * short; with the dump's totals, the allocator's
 * statistics and the process's memory. The page rebuilds a dump's state by
 * applying the rows of the dumps up to it, and sums it with the rules of
 * report.c (flat: the innermost frame's function; cum: every distinct
 * function of a stack once), so its figures are top's to the byte. The leak
 * table comes from leaks.c (suppressions applied), computed here.
 *
 *   {"file", "version", "initial": {process, dump, why}, "modules": [name],
 *    "funcs": [[name, file, module]], "lines": [[func, line]],
 *    "processes": [{id, pid, ppid, parent, exe, cmdline, start, end, rate,
 *      ndumps, alloc_bytes, inuse_bytes, embedded,
 *      threads: [[tid, name]], stacks: [[line...]],
 *      keys: [stack, tid index, ...], tids: [tid...],
 *      dumps: [{id, seq, t, reason, tot: [4 metrics], samples,
 *               st: [alloc_stats...] | null, mem: [rss, hwm] | null,
 *               rows: [key gap, d ao, d ab, d fo, d fb, ...]}],
 *      leaks: {...} | null}]}
 *
 * Line -1 and stack -1 stand for "[no stack]" (a bucket whose stack row is
 * missing, as report.c counts it). Processes beyond AP_REPORT_PROCESSES (by
 * bytes allocated) are listed without their data.
 */
#include "html_report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "leaks.h"
#include "report_assets.h"

#define AP_REPORT_PROCESSES 32

typedef struct writer {
    FILE *out;
    ap_file *f;
    ap_symbolizer *sym;
    ap_map line_index; /* ap_line pointer -> 1 + index in lines */
    const ap_line **lines;
    size_t nlines, cap_lines;
    ap_map func_module; /* func id -> 1 + module index */
    ap_strtab names;    /* module names (the profiles' mappings are freed) */
    const char **modules;
    size_t nmodules, cap_modules;
} writer;

/* A JSON string that is safe inside <script>: '<' is escaped too. */
static void jstr(FILE *o, const char *s)
{
    if (!s) {
        fputs("null", o);
        return;
    }
    fputc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(o, "\\%c", *p);
        else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
            fprintf(o, "\\u%04x", *p);
        else
            fputc(*p, o);
    }
    fputc('"', o);
}

static long line_id(writer *w, const ap_line *l)
{
    bool created;
    uint64_t *slot = ap_map_put(&w->line_index, (uintptr_t)l, &created);
    if (created) {
        ap_grow(&w->lines, &w->cap_lines, w->nlines + 1, sizeof *w->lines);
        w->lines[w->nlines++] = l;
        *slot = w->nlines;
    }
    return (long)*slot - 1;
}

static size_t module_index(writer *w, const char *name)
{
    for (size_t i = 0; i < w->nmodules; i++)
        if (!strcmp(w->modules[i], name))
            return i;
    ap_grow(&w->modules, &w->cap_modules, w->nmodules + 1, sizeof *w->modules);
    w->modules[w->nmodules] = name;
    return w->nmodules++;
}

/* The module each function's code is in, from the addresses that resolved
 * to it (as the SVG flame graph colours them). */
static void note_modules(writer *w, const ap_profile *p)
{
    for (size_t i = 0; i < p->naddrs; i++) {
        const ap_addr *a = &p->addrs[i];
        const char *mod = ap_addr_module(p, a);
        for (uint32_t k = 0; k < a->nlines; k++) {
            bool created;
            uint64_t *slot = ap_map_put(&w->func_module, a->lines[k]->func->id, &created);
            if (created)
                *slot = 1 + module_index(w, ap_intern(&w->names, mod));
        }
    }
}

static void put_stack(writer *w, const ap_line *const *sym, uint32_t n)
{
    fputc('[', w->out);
    for (uint32_t k = 0; k < n; k++)
        fprintf(w->out, k ? ",%ld" : "%ld", line_id(w, sym[k]));
    fputc(']', w->out);
}

static void put_int_array(FILE *o, const int64_t *v, int n)
{
    fputc('[', o);
    for (int i = 0; i < n; i++)
        fprintf(o, i ? ",%lld" : "%lld", (long long)v[i]);
    fputc(']', o);
}

/* A dump's alloc_stats and process_memory. */
typedef struct dump_extra {
    int64_t st[AP_NSTATS];
    int have_st;
    int64_t mem[2];
    int have_mem;
} dump_extra;

static void read_extras(ap_file *f, const ap_dump *d, dump_extra *x)
{
    memset(x, 0, sizeof *x);
    x->have_st = ap_dump_alloc_stats(f, d->id, x->st) == 1;
    x->have_mem = ap_dump_process_memory(f, d->id, &x->mem[0], &x->mem[1]);
}

/* The leak table of the process's exit dump; loaded is its last dump's
 * profile, loaded and symbolized already, used when that is the exit dump. */
static int put_leaks(writer *w, const ap_process *proc, const ap_profile *loaded)
{
    FILE *o = w->out;
    const ap_dump *d = ap_exit_dump(w->f, proc->id);
    if (!d) {
        fputs("null", o);
        return 0;
    }
    ap_profile own = {0};
    const ap_profile *pp = loaded;
    if (loaded->dump != d) {
        if (ap_profile_load(w->f, d, &own) < 0)
            return -1;
        ap_sym_profile(w->sym, &own);
        pp = &own;
    }
    ap_leaks l;
    if (ap_leaks_find(&l, w->f, pp, 0, false, NULL, 0) < 0) {
        ap_leaks_free(&l);
        ap_profile_free(&own);
        return -1;
    }
    fprintf(o, "{\"dump\":%lld,\"bytes\":%lld,\"objects\":%lld,\"sup_stacks\":%zu,",
            (long long)d->id, (long long)l.bytes, (long long)l.objects, l.sup_stacks);
    fprintf(o, "\"sup_bytes\":%lld,\"sup_objects\":%lld,\"caveat\":", (long long)l.sup_bytes,
            (long long)l.sup_objects);
    char *caveat = ap_leaks_caveat(pp);
    jstr(o, caveat);
    free(caveat);
    fputs(",\"rules\":[", o);
    int k = 0;
    for (size_t i = 0; i < l.sup.n; i++) {
        const ap_supp_rule *r = &l.sup.rules[i];
        if (!r->stacks)
            continue;
        fputs(k++ ? ",[" : "[", o);
        jstr(o, r->pattern);
        fputc(',', o);
        jstr(o, r->origin);
        fprintf(o, ",%zu,%lld,%lld]", r->stacks, (long long)r->bytes, (long long)r->objects);
    }
    fputs("],\"stacks\":[", o);
    for (size_t i = 0; i < l.rep.nrows; i++) {
        const ap_row *row = &l.rep.rows[i];
        fputs(i ? ",[" : "[", o);
        put_stack(w, row->sym, row->nsym);
        fputc(',', o);
        put_int_array(o, row->flat[0], AP_NMETRICS);
        fputc(']', o);
    }
    fputs("]}", o);
    ap_leaks_free(&l);
    ap_profile_free(&own);
    return 0;
}

typedef struct krow {
    uint64_t key;
    int64_t v[4]; /* ao, ab, fo, fb */
} krow;

static int by_key(const void *a, const void *b)
{
    const krow *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

/* One process with its data: its last dump is loaded for the stacks and
 * mappings (every stack the process recorded), symbolized, and each dump's
 * own rows are written against a table of bucket keys. */
static int put_process_data(writer *w, const ap_process *proc, const ap_dump *last)
{
    FILE *o = w->out;
    ap_profile p;
    if (ap_profile_load(w->f, last, &p) < 0)
        return -1;
    ap_sym_profile(w->sym, &p);
    note_modules(w, &p);
    fputs(",\"threads\":[", o);
    int k = 0;
    for (size_t i = 0; i < w->f->nthreads; i++) {
        const ap_thread *t = &w->f->threads[i];
        if (t->process_id != proc->id)
            continue;
        fprintf(o, k++ ? ",[%lld," : "[%lld,", (long long)t->tid);
        jstr(o, t->name);
        fputc(']', o);
    }
    fputs("],\"stacks\":[", o);
    for (size_t i = 0; i < p.nstacks; i++) {
        if (i)
            fputc(',', o);
        put_stack(w, p.stacks[i].sym, p.stacks[i].nsym);
    }
    fputs("],\"dumps\":[", o);
    ap_map keys = {0};                       /* (stack index, tid) -> 1 + key index */
    int64_t *key_pairs = NULL, *prev = NULL; /* prev: each key's last figures */
    size_t nkeys = 0, cap_keys = 0, cap_prev = 0;
    int rc = 0;
    k = 0;
    for (size_t i = 0; i < w->f->ndumps && rc == 0; i++) {
        const ap_dump *d = &w->f->dumps[i];
        if (d->process_id != proc->id)
            continue;
        ap_bucket *rows;
        size_t n;
        if (ap_dump_rows(w->f, d->id, &rows, &n) < 0) {
            rc = -1;
            break;
        }
        dump_extra x;
        read_extras(w->f, d, &x);
        fprintf(o, "%s{\"id\":%lld,\"seq\":%lld,\"t\":%.6f,\"time\":%.6f,\"reason\":",
                k++ ? ",\n" : "\n", (long long)d->id, (long long)d->seq, d->time - proc->start_time,
                d->time);
        jstr(o, d->reason);
        int64_t tot[AP_NMETRICS] = {d->inuse_bytes, d->inuse_objects, d->alloc_bytes,
                                    d->alloc_objects};
        fputs(",\"tot\":", o);
        put_int_array(o, tot, AP_NMETRICS);
        fprintf(o, ",\"samples\":%lld,\"st\":", (long long)d->samples);
        x.have_st ? put_int_array(o, x.st, AP_NSTATS) : (void)fputs("null", o);
        fputs(",\"mem\":", o);
        x.have_mem ? put_int_array(o, x.mem, 2) : (void)fputs("null", o);
        fputs(",\"rows\":[", o);
        krow *kr = ap_xmalloc((n + 1) * sizeof *kr);
        for (size_t r = 0; r < n; r++) {
            const ap_stack *st = ap_find_stack(&p, rows[r].stack_id);
            int64_t si = st ? (int64_t)(st - p.stacks) : -1;
            uint64_t key =
                ap_hash_u64((uint64_t)si * 0x9E3779B97F4A7C15ULL ^ (uint64_t)rows[r].tid);
            bool created;
            uint64_t *slot;
            for (;;) { /* probe on a collision of different pairs */
                slot = ap_map_put(&keys, key, &created);
                if (created || (key_pairs[2 * (*slot - 1)] == si &&
                                key_pairs[2 * (*slot - 1) + 1] == rows[r].tid))
                    break;
                key = ap_hash_u64(key + 1);
            }
            if (created) {
                ap_grow(&key_pairs, &cap_keys, 2 * (nkeys + 1), sizeof *key_pairs);
                ap_grow(&prev, &cap_prev, 4 * (nkeys + 1), sizeof *prev);
                key_pairs[2 * nkeys] = si;
                key_pairs[2 * nkeys + 1] = rows[r].tid;
                memset(&prev[4 * nkeys], 0, 4 * sizeof *prev);
                *slot = ++nkeys;
            }
            const int64_t *v = rows[r].v;
            kr[r].key = *slot - 1;
            kr[r].v[0] = v[AP_ALLOC_OBJECTS];
            kr[r].v[1] = v[AP_ALLOC_BYTES];
            kr[r].v[2] = v[AP_ALLOC_OBJECTS] - v[AP_INUSE_OBJECTS];
            kr[r].v[3] = v[AP_ALLOC_BYTES] - v[AP_INUSE_BYTES];
        }
        /* key gaps in key order, and each key's change since its last row */
        qsort(kr, n, sizeof *kr, by_key);
        uint64_t last = 0;
        for (size_t r = 0; r < n; r++) {
            int64_t *pv = &prev[4 * kr[r].key];
            fprintf(o, r ? ",%llu,%lld,%lld,%lld,%lld" : "%llu,%lld,%lld,%lld,%lld",
                    (unsigned long long)(kr[r].key - last), (long long)(kr[r].v[0] - pv[0]),
                    (long long)(kr[r].v[1] - pv[1]), (long long)(kr[r].v[2] - pv[2]),
                    (long long)(kr[r].v[3] - pv[3]));
            memcpy(pv, kr[r].v, sizeof kr[r].v);
            last = kr[r].key;
        }
        free(kr);
        fputs("]}", o);
        free(rows);
    }
    /* keys as (stack, index in tids) */
    ap_map tid_index = {0};
    int64_t *tids = NULL;
    size_t ntids = 0, cap_tids = 0;
    fputs("],\"keys\":[", o);
    for (size_t i = 0; i < nkeys; i++) {
        bool created;
        uint64_t *slot =
            ap_map_put(&tid_index, ap_hash_u64((uint64_t)key_pairs[2 * i + 1]), &created);
        while (!created && tids[*slot - 1] != key_pairs[2 * i + 1])
            slot =
                ap_map_put(&tid_index, ap_hash_u64(*slot + (uint64_t)ntids * 7919 + 1), &created);
        if (created) {
            ap_grow(&tids, &cap_tids, ntids + 1, sizeof *tids);
            tids[ntids] = key_pairs[2 * i + 1];
            *slot = ++ntids;
        }
        fprintf(o, i ? ",%lld,%llu" : "%lld,%llu", (long long)key_pairs[2 * i],
                (unsigned long long)(*slot - 1));
    }
    fputs("],\"tids\":[", o);
    for (size_t i = 0; i < ntids; i++)
        fprintf(o, i ? ",%lld" : "%lld", (long long)tids[i]);
    free(tids);
    free(prev);
    ap_map_free(&tid_index);
    fputs("],\"leaks\":", o);
    free(key_pairs);
    ap_map_free(&keys);
    if (rc == 0)
        rc = put_leaks(w, proc, &p);
    ap_profile_free(&p);
    return rc;
}

typedef struct proc_rank {
    const ap_process *proc;
    const ap_dump *last;
    size_t ndumps;
} proc_rank;

static int by_alloc(const void *a, const void *b)
{
    const proc_rank *x = a, *y = b;
    int64_t u = x->last ? x->last->alloc_bytes : -1, v = y->last ? y->last->alloc_bytes : -1;
    if (u != v)
        return u > v ? -1 : 1;
    return x->proc->id < y->proc->id ? -1 : x->proc->id > y->proc->id;
}

static int put_all(writer *w, int64_t initial, const ap_dump *first)
{
    FILE *o = w->out;
    ap_file *f = w->f;
    fputs("{\"file\":", o);
    jstr(o, f->path);
    fprintf(o, ",\"generated\":%lld,\"initial\":{\"process\":%lld,\"dump\":%lld,\"why\":",
            (long long)time(NULL), (long long)initial, (long long)first->id);
    jstr(o, f->dump_why);
    fputs("},\"processes\":[", o);
    proc_rank *rank = ap_xcalloc(f->nprocs + 1, sizeof *rank);
    for (size_t i = 0; i < f->nprocs; i++) {
        rank[i].proc = &f->procs[i];
        rank[i].last = ap_last_dump(f, f->procs[i].id);
        for (size_t k = 0; k < f->ndumps; k++)
            rank[i].ndumps += f->dumps[k].process_id == f->procs[i].id;
    }
    qsort(rank, f->nprocs, sizeof *rank, by_alloc);
    int rc = 0;
    for (size_t i = 0; i < f->nprocs && rc == 0; i++) {
        const ap_process *pr = rank[i].proc;
        const ap_dump *last = rank[i].last;
        bool embed = last && (i < AP_REPORT_PROCESSES || pr->id == initial);
        fprintf(o, "%s{\"id\":%lld,\"pid\":%lld,\"ppid\":%lld,\"parent\":%lld,\"exe\":",
                i ? ",\n" : "\n", (long long)pr->id, (long long)pr->pid, (long long)pr->ppid,
                (long long)pr->parent_id);
        jstr(o, pr->exe);
        fputs(",\"cmdline\":", o);
        jstr(o, pr->cmdline);
        fprintf(o,
                ",\"start\":%.6f,\"end\":%.6f,\"rate\":%lld,\"ndumps\":%zu,\"alloc_bytes\":%lld,"
                "\"inuse_bytes\":%lld,\"embedded\":%s",
                pr->start_time, pr->end_time, (long long)pr->rate, rank[i].ndumps,
                (long long)(last ? last->alloc_bytes : 0),
                (long long)(last ? last->inuse_bytes : 0), embed ? "true" : "false");
        if (embed)
            rc = put_process_data(w, pr, last);
        fputc('}', o);
    }
    free(rank);
    /* the tables every process's stacks point into */
    fputs("],\n\"modules\":[", o);
    for (size_t i = 0; i < w->nmodules; i++) {
        if (i)
            fputc(',', o);
        jstr(o, w->modules[i]);
    }
    fputs("],\n\"funcs\":[", o);
    ap_map func_index = {0}; /* func pointer -> 1 + index */
    const ap_func **funcs = NULL;
    size_t nfuncs = 0, cap = 0;
    long *line_func = ap_xcalloc(w->nlines + 1, sizeof *line_func);
    for (size_t i = 0; i < w->nlines; i++) {
        bool created;
        uint64_t *slot = ap_map_put(&func_index, (uintptr_t)w->lines[i]->func, &created);
        if (created) {
            ap_grow(&funcs, &cap, nfuncs + 1, sizeof *funcs);
            funcs[nfuncs++] = w->lines[i]->func;
            *slot = nfuncs;
        }
        line_func[i] = (long)*slot - 1;
    }
    for (size_t i = 0; i < nfuncs; i++) {
        fputs(i ? ",[" : "[", o);
        jstr(o, funcs[i]->name);
        fputc(',', o);
        jstr(o, funcs[i]->file);
        uint64_t *m = funcs[i]->id ? ap_map_get(&w->func_module, funcs[i]->id) : NULL;
        fprintf(o, ",%lld]", m ? (long long)*m - 1 : -1LL);
    }
    fputs("],\n\"lines\":[", o);
    for (size_t i = 0; i < w->nlines; i++)
        fprintf(o, i ? ",[%ld,%lld]" : "[%ld,%lld]", line_func[i], (long long)w->lines[i]->line);
    fputs("]}", o);
    free(line_func);
    free(funcs);
    ap_map_free(&func_index);
    return rc;
}

int ap_html_report(ap_file *f, int64_t process_id, int64_t dump_id, const char *out_path)
{
    const ap_dump *first = ap_select_dump(f, process_id, dump_id, true);
    if (!first)
        return 1;
    char *tmp = ap_xasprintf("%s.tmp%d", out_path, (int)getpid());
    FILE *o = fopen(tmp, "w");
    if (!o) {
        ap_cli_error("%s: %s", out_path, strerror(errno));
        free(tmp);
        return 1;
    }
    writer w = {.f = f, .sym = ap_sym_new()};
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width\">\n<title>allocprof: ",
          o);
    for (const char *c = ap_basename(f->path); *c; c++) /* the title is text: escape it */
        *c == '<' ? fputs("&lt;", o) : *c == '&' ? fputs("&amp;", o) : fputc(*c, o);
    fputs("</title>\n<style>\n", o);
    fputs(ap_report_css, o);
    fputs("</style></head>\n<body>\n", o);
    fputs(ap_report_body, o);
    fputs("<script type=\"application/json\" id=\"ap-data\">", o);
    w.out = o;
    int rc = put_all(&w, first->process_id, first);
    fputs("</script>\n<script>\n", o);
    fputs(ap_report_js, o);
    fputs("</script>\n</body></html>\n", o);
    ap_sym_free(w.sym);
    free(w.lines);
    free(w.modules);
    ap_map_free(&w.line_index);
    ap_map_free(&w.func_module);
    ap_strtab_free(&w.names);
    if (rc < 0)
        ap_db_error(f, "reading the profile");
    if (fclose(o) != 0 && rc == 0) {
        ap_cli_error("%s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(tmp, out_path) != 0) {
        ap_cli_error("%s: %s", out_path, strerror(errno));
        rc = -1;
    }
    if (rc != 0)
        unlink(tmp);
    free(tmp);
    return rc ? 1 : 0;
}
