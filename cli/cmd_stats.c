/*
 * cmd_stats.c — `allocprof stats FILE`: the allocator's own statistics at a
 * dump (alloc_stats: exact in-use, mapped, resident free, returned, cached
 * and metadata bytes; class_stats: per size class objects, spans and use),
 * with fragmentation figures; the process's RSS and its high-water mark as
 * the kernel counted them (process_memory); and the in-use bytes over all
 * dumps of the process (sampled estimate, the allocator's exact figure, RSS,
 * with a bar), ending on the highest exact in-use of them.
 *
 * Fragmentation: heap = 1 - in use / resident, resident = mapped - returned;
 * per class: waste = span bytes - in-use objects * size, used% = the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "format.h"
#include "report.h"

static const char help[] =
    "usage: allocprof stats FILE[@DUMP] [-p PROCESS] [-d DUMP] [--format text|json]\n"
    "\n"
    "Shows the allocator's statistics at a dump (default: the last dump of the process\n"
    "that allocated the most): bytes in use, mapped, free but resident, returned to\n"
    "the OS, cached, metadata; fragmentation; the process's RSS and peak RSS; per size\n"
    "class use; and in-use bytes and RSS over the dumps, with the highest exact in-use.\n"
    "\n"
    "  -p, --process ID   a process row of 'allocprof list'\n"
    "  -d, --dump ID      a dump id of 'allocprof list' (also FILE@ID)\n"
    "  --format text|json output format (--json is short for json)\n"
    "  -h, --help         this text\n";

enum {
    S_INUSE,
    S_SMALL,
    S_LARGE,
    S_HUGE,
    S_MAPPED,
    S_FREE,
    S_RETURNED,
    S_CACHED,
    S_META,
    S_RELEASED,
    S_N
};
static const char *const stat_names[S_N] = {
    "inuse_bytes", "small_bytes",    "large_bytes",  "huge_bytes",     "mapped_bytes",
    "free_bytes",  "returned_bytes", "cached_bytes", "metadata_bytes", "released_total"};

typedef struct class_row {
    int64_t cls, size, inuse, cached, central, spans, span_bytes;
} class_row;

_Static_assert(S_N == AP_NSTATS, "stat_names follows alloc_stats' columns");

static int read_classes(ap_file *f, int64_t dump_id, class_row **out, size_t *n)
{
    sqlite3_stmt *s;
    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT class, size, inuse_objects, cached_objects, central_objects, "
                           "spans, span_bytes FROM class_stats WHERE dump_id = ?1 ORDER BY class",
                           -1, &s, NULL) != SQLITE_OK)
        return sqlite3_errcode(f->db) == SQLITE_ERROR ? 0 : -1;
    sqlite3_bind_int64(s, 1, dump_id);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(out, &cap, *n + 1, sizeof **out);
        int64_t *c = &(*out)[(*n)++].cls;
        for (int i = 0; i < 7; i++)
            c[i] = sqlite3_column_int64(s, i);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static void print_alloc_stats(const int64_t v[S_N])
{
    char b[4][AP_FMT_LEN];
    int64_t resident = v[S_MAPPED] - v[S_RETURNED];
    printf("allocator (exact; its own memory, which is not the process's RSS):\n");
    printf("  in use          %10s   (small %s, large %s, huge %s)\n",
           ap_fmt_bytes(v[S_INUSE], false, b[0]), ap_fmt_bytes(v[S_SMALL], false, b[1]),
           ap_fmt_bytes(v[S_LARGE], false, b[2]), ap_fmt_bytes(v[S_HUGE], false, b[3]));
    printf("  mapped          %10s   (address space it has made usable)\n",
           ap_fmt_bytes(v[S_MAPPED], false, b[0]));
    printf("  resident        %10s   (of that, pages that hold memory now)\n",
           ap_fmt_bytes(resident, false, b[0]));
    printf("  free, resident  %10s\n", ap_fmt_bytes(v[S_FREE], false, b[0]));
    printf("  not resident    %10s   (never touched, or given back; given back so far: %s)\n",
           ap_fmt_bytes(v[S_RETURNED], false, b[0]), ap_fmt_bytes(v[S_RELEASED], false, b[1]));
    printf("  cached          %10s   (thread caches and central lists)\n",
           ap_fmt_bytes(v[S_CACHED], false, b[0]));
    printf("  metadata        %10s\n", ap_fmt_bytes(v[S_META], false, b[0]));
    printf("  fragmentation   %10s   (1 - in use / resident)\n",
           ap_fmt_percent((double)(resident - v[S_INUSE]), (double)resident, b[0]));
}

static void print_process_memory(int64_t rss, int64_t hwm, int64_t inuse, int have_inuse)
{
    char b[3][AP_FMT_LEN];
    printf("process (the kernel's count when the dump was written):\n");
    printf("  RSS             %10s", ap_fmt_bytes(rss, false, b[0]));
    if (have_inuse)
        printf("   (the allocator's in use is %s of it)",
               ap_fmt_percent((double)inuse, (double)rss, b[1]));
    printf("\n  peak RSS        %10s   (high-water mark since start, VmHWM)\n",
           ap_fmt_bytes(hwm, false, b[2]));
}

static void print_classes(const class_row *c, size_t n)
{
    ap_table t;
    ap_table_init(&t, 9);
    t.left = -1;
    ap_table_row(&t, (const char *[]){"class", "size", "in use", "objects", "cached", "central",
                                      "spans", "span bytes", "used"});
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c[i].spans && !c[i].inuse && !c[i].cached && !c[i].central)
            continue;
        char s[9][AP_FMT_LEN];
        snprintf(s[0], AP_FMT_LEN, "%lld", (long long)c[i].cls);
        ap_table_row(&t, (const char *[]){s[0], ap_fmt_bytes(c[i].size, false, s[1]),
                                          ap_fmt_bytes(c[i].inuse * c[i].size, false, s[2]),
                                          ap_fmt_count(c[i].inuse, false, s[3]),
                                          ap_fmt_count(c[i].cached, false, s[4]),
                                          ap_fmt_count(c[i].central, false, s[5]),
                                          ap_fmt_count(c[i].spans, false, s[6]),
                                          ap_fmt_bytes(c[i].span_bytes, false, s[7]),
                                          ap_fmt_percent((double)(c[i].inuse * c[i].size),
                                                         (double)c[i].span_bytes, s[8])});
        shown++;
    }
    printf("\nsize classes in use:\n");
    if (shown)
        ap_table_print(&t, stdout, "  ");
    else
        printf("  none\n");
    ap_table_free(&t);
}

static void print_history(ap_file *f, const ap_process *proc)
{
    int64_t max = 1;
    for (size_t i = 0; i < f->ndumps; i++)
        if (f->dumps[i].process_id == proc->id && f->dumps[i].inuse_bytes > max)
            max = f->dumps[i].inuse_bytes;
    ap_table t;
    ap_table_init(&t, 8);
    ap_table_row(&t, (const char *[]){"dump", "after", "reason", "estimate", "exact", "mapped",
                                      "RSS", "estimate, to scale"});
    const ap_dump *top = NULL;
    int64_t top_inuse = 0, hwm_last = -1;
    for (size_t i = 0; i < f->ndumps; i++) {
        const ap_dump *d = &f->dumps[i];
        if (d->process_id != proc->id)
            continue;
        int64_t v[S_N] = {0};
        int have = ap_dump_alloc_stats(f, d->id, v) == 1;
        int64_t rss = 0;
        int have_rss = ap_dump_process_memory(f, d->id, &rss, &hwm_last);
        if (have && (!top || v[S_INUSE] > top_inuse)) {
            top = d;
            top_inuse = v[S_INUSE];
        }
        char s[6][AP_FMT_LEN], bar[41];
        int w = (int)(40 * (double)(d->inuse_bytes > 0 ? d->inuse_bytes : 0) / (double)max);
        memset(bar, '#', (size_t)w);
        bar[w] = 0;
        snprintf(s[0], AP_FMT_LEN, "%lld", (long long)d->id);
        snprintf(s[1], AP_FMT_LEN, "%.2f s", d->time - proc->start_time);
        ap_table_row(&t, (const char *[]){s[0], s[1], d->reason,
                                          ap_fmt_bytes(d->inuse_bytes, false, s[2]),
                                          have ? ap_fmt_bytes(v[S_INUSE], false, s[3]) : "-",
                                          have ? ap_fmt_bytes(v[S_MAPPED], false, s[4]) : "-",
                                          have_rss ? ap_fmt_bytes(rss, false, s[5]) : "-", bar});
    }
    printf("\nin use over the dumps (estimate: from the samples; exact: the allocator's count; "
           "RSS: the kernel's):\n");
    ap_table_print(&t, stdout, "  ");
    ap_table_free(&t);
    if (top) {
        char b[2][AP_FMT_LEN];
        printf("  highest exact in use: %s at dump %lld (%s)", ap_fmt_bytes(top_inuse, false, b[0]),
               (long long)top->id, top->reason);
        if (hwm_last >= 0)
            printf("; the process's RSS peaked at %s", ap_fmt_bytes(hwm_last, false, b[1]));
        printf(
            "\n  (in use between dumps is not recorded: --peak F writes a dump whenever it grows "
            "by F)\n");
    }
}

static void json_memory(int found, int64_t rss, int64_t hwm)
{
    if (found)
        printf("{\"rss_bytes\": %lld, \"hwm_bytes\": %lld}", (long long)rss, (long long)hwm);
    else
        fputs("null", stdout);
}

static void print_json(ap_file *f, const ap_profile *p, const int64_t *v, int have,
                       const class_row *c, size_t nc)
{
    fputs("{", stdout);
    ap_json_profile_head(stdout, p);
    int64_t rss = 0, hwm = 0;
    fputs(", \"process_memory\": ", stdout);
    int found = ap_dump_process_memory(f, p->dump->id, &rss, &hwm);
    json_memory(found, rss, hwm);
    fputs(", \"alloc_stats\": ", stdout);
    if (have) {
        for (int i = 0; i < S_N; i++)
            printf("%s\"%s\": %lld", i ? ", " : "{", stat_names[i], (long long)v[i]);
        fputs("}", stdout);
    } else {
        fputs("null", stdout);
    }
    fputs(", \"classes\": [", stdout);
    for (size_t i = 0; i < nc; i++)
        printf("%s{\"class\": %lld, \"size\": %lld, \"inuse_objects\": %lld, \"cached_objects\": "
               "%lld, \"central_objects\": %lld, \"spans\": %lld, \"span_bytes\": %lld}",
               i ? ", " : "", (long long)c[i].cls, (long long)c[i].size, (long long)c[i].inuse,
               (long long)c[i].cached, (long long)c[i].central, (long long)c[i].spans,
               (long long)c[i].span_bytes);
    fputs("], \"dumps\": [", stdout);
    int k = 0;
    for (size_t i = 0; i < f->ndumps; i++) {
        const ap_dump *d = &f->dumps[i];
        int64_t s[S_N] = {0};
        if (d->process_id != p->proc->id)
            continue;
        int h = ap_dump_alloc_stats(f, d->id, s) == 1;
        printf("%s{\"id\": %lld, \"seq\": %lld, \"time\": %.6f, \"after\": %.6f, "
               "\"reason\": \"%s\", \"inuse_bytes\": %lld, \"exact_inuse_bytes\": ",
               k++ ? ", " : "", (long long)d->id, (long long)d->seq, d->time,
               d->time - p->proc->start_time, d->reason, (long long)d->inuse_bytes);
        h ? printf("%lld", (long long)s[S_INUSE]) : fputs("null", stdout);
        fputs(", \"mapped_bytes\": ", stdout);
        h ? printf("%lld", (long long)s[S_MAPPED]) : fputs("null", stdout);
        fputs(", \"process_memory\": ", stdout);
        found = ap_dump_process_memory(f, d->id, &rss, &hwm);
        json_memory(found, rss, hwm);
        fputs("}", stdout);
    }
    fputs("]}\n", stdout);
}

int ap_cmd_stats(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_SELECT | AP_OPT_FORMAT, 1, 1, help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    ap_profile p;
    ap_file *f = ap_open_profile(o.files[0], &o, -1, NULL, &p);
    if (!f)
        return 1;
    int64_t v[S_N] = {0};
    class_row *c = NULL;
    size_t nc = 0;
    int have = ap_dump_alloc_stats(f, p.dump->id, v);
    int rc = 0;
    if (have < 0 || read_classes(f, p.dump->id, &c, &nc) < 0) {
        ap_db_error(f, "reading allocator statistics");
        rc = 1;
    } else if (o.json) {
        print_json(f, &p, v, have, c, nc);
    } else {
        ap_print_profile_head(stdout, &p);
        if (have)
            print_alloc_stats(v);
        else
            printf("no allocator statistics recorded at this dump\n");
        int64_t rss, hwm;
        if (ap_dump_process_memory(f, p.dump->id, &rss, &hwm))
            print_process_memory(rss, hwm, v[S_INUSE], have == 1);
        else
            printf(
                "process: RSS not recorded at this dump (an older allocprof wrote it, or /proc was "
                "unreadable)\n");
        print_classes(c, nc);
        print_history(f, p.proc);
    }
    free(c);
    ap_profile_free(&p);
    ap_file_close(f);
    return rc;
}
