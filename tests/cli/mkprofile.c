/*
 * mkprofile.c — writes allocprof profile databases with exactly known
 * contents, for the CLI tests (and for timing the CLI on large profiles).
 *
 * Design: the program runs real allocation sites in itself (functions with
 * distinct names, compiled -O0 -g) through tracked_malloc/tracked_free,
 * which capture the real return-address stack with glibc backtrace() (the
 * first stored frame is the return address inside the site, as the
 * profiler stores it) and count every allocation (rate 1: figures are
 * exact). Mappings come from dl_iterate_phdr (executable PT_LOAD segments,
 * bias = dlpi_addr, GNU build id from PT_NOTE; the program's own path from
 * /proc/self/exe). The database is schema/schema.sql applied as is, with
 * its PRAGMA user_version; each dump writes only the buckets that changed
 * since the previous dump, as the profiler does.
 *
 * Scenario (variant a; b changes counts for the diff test), process 1:
 *   dump 1 interval: leak_alpha 10 x 100 B, temp_beta 20 x 1000 B,
 *                    big_gamma 1 x 1 MiB
 *   (a forked child, process 2: child_site 2 x 512 B, its own exit dump)
 *   dump 2 peak:     temp_beta freed; outer_delta -> inlined_helper 5 x 64 B;
 *                    fixture::Widget::make 3 x 48 B; thread "worker":
 *                    thread_epsilon 7 x 200 B
 *   dump 3 exit:     big_gamma freed; recurse_zeta (3 levels) 2 x 32 B
 * Variant b: leak_alpha 30 x 100 B, thread_epsilon 2 x 200 B, and
 * only_in_b 4 x 256 B before dump 3.
 *
 * usage: mkprofile OUT.db [--variant a|b] [--expect OUT.json]
 *        mkprofile OUT.db --synthetic NBUCKETS [--dumps N]
 * --expect writes {"exe": ..., "sites": {name: {"file", "line"}}}: where
 * each site's allocation call is.
 */
#include <dlfcn.h>
#include <elf.h>
#include <execinfo.h>
#include <link.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "schema_version.h" /* AP_SCHEMA_VERSION */

#define NOINLINE __attribute__((noinline))
#define MAXDEPTH 64

typedef struct {
    uint64_t frames[MAXDEPTH];
    int depth, written;
} stack_t_;

typedef struct {
    int stack;
    long tid;
    int64_t ao, ab, fo, fb, acb, samples;
    int dirty;
} bucket_t;

typedef struct {
    void *p;
    int bucket;
    size_t size;
} live_t;

static stack_t_ *stacks;
static int nstacks, capstacks;
static bucket_t *buckets;
static int nbuckets, capbuckets;
static live_t *live;
static int nlive, caplive;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char variant = 'a';
static FILE *expect;
static int nexpect;
static sqlite3 *db;
static int64_t process_id;
static double start_time;

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        perror("mkprofile");
        exit(1);
    }
    return p;
}

static double now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

static int intern_stack(const uint64_t *f, int depth)
{
    for (int i = 0; i < nstacks; i++)
        if (stacks[i].depth == depth && !memcmp(stacks[i].frames, f, depth * sizeof *f))
            return i;
    if (nstacks == capstacks)
        stacks = xrealloc(stacks, (capstacks = capstacks * 2 + 16) * sizeof *stacks);
    memcpy(stacks[nstacks].frames, f, depth * sizeof *f);
    stacks[nstacks].depth = depth;
    stacks[nstacks].written = 0;
    return nstacks++;
}

static int get_bucket(int stack, long tid)
{
    for (int i = 0; i < nbuckets; i++)
        if (buckets[i].stack == stack && buckets[i].tid == tid)
            return i;
    if (nbuckets == capbuckets)
        buckets = xrealloc(buckets, (capbuckets = capbuckets * 2 + 16) * sizeof *buckets);
    memset(&buckets[nbuckets], 0, sizeof *buckets);
    buckets[nbuckets].stack = stack;
    buckets[nbuckets].tid = tid;
    return nbuckets++;
}

NOINLINE void *tracked_malloc(size_t n)
{
    void *bt[MAXDEPTH + 1];
    int d = backtrace(bt, MAXDEPTH + 1);
    uint64_t f[MAXDEPTH];
    for (int i = 1; i < d; i++)
        f[i - 1] = (uint64_t)(uintptr_t)bt[i]; /* bt[0] is inside tracked_malloc */
    void *p = malloc(n);
    pthread_mutex_lock(&lock);
    int b = get_bucket(intern_stack(f, d - 1), syscall(SYS_gettid));
    bucket_t *bk = &buckets[b];
    bk->ao++;
    bk->ab += (int64_t)n;
    bk->acb += (int64_t)((n + 15) & ~(size_t)15);
    bk->samples++;
    bk->dirty = 1;
    if (nlive == caplive)
        live = xrealloc(live, (caplive = caplive * 2 + 16) * sizeof *live);
    live[nlive++] = (live_t){p, b, n};
    pthread_mutex_unlock(&lock);
    return p;
}

NOINLINE void tracked_free(void *p)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nlive; i++)
        if (live[i].p == p) {
            bucket_t *bk = &buckets[live[i].bucket];
            bk->fo++;
            bk->fb += (int64_t)live[i].size;
            bk->dirty = 1;
            live[i] = live[--nlive];
            break;
        }
    pthread_mutex_unlock(&lock);
    free(p);
}

void note_site(const char *name, const char *file, int line)
{
    if (!expect)
        return;
    static const char *seen[64];
    for (int i = 0; i < nexpect; i++)
        if (!strcmp(seen[i], name))
            return;
    if (nexpect < 64)
        seen[nexpect] = name;
    const char *base = strrchr(file, '/');
    fprintf(expect, "%s\n    \"%s\": {\"file\": \"%s\", \"line\": %d}", nexpect++ ? "," : "",
            name, base ? base + 1 : file, line);
}

/* ---- the allocation sites ------------------------------------------------ */

void *cxx_site(size_t n);
static void *kept[256];
static int nkept;
static void *temps[64];

NOINLINE static void leak_alpha(void)
{
    for (int i = 0; i < (variant == 'b' ? 30 : 10); i++) {
        kept[nkept++] = tracked_malloc(100); note_site("leak_alpha", __FILE__, __LINE__);
    }
}

NOINLINE static void temp_beta(void)
{
    for (int i = 0; i < 20; i++) {
        temps[i] = tracked_malloc(1000); note_site("temp_beta", __FILE__, __LINE__);
    }
}

NOINLINE static void *big_gamma(void)
{
    void *p = tracked_malloc(1 << 20); note_site("big_gamma", __FILE__, __LINE__);
    return p;
}

static inline __attribute__((always_inline)) void *inlined_helper(size_t n)
{
    void *p = tracked_malloc(n); note_site("inlined_helper", __FILE__, __LINE__);
    return p;
}

NOINLINE static void outer_delta(void)
{
    for (int i = 0; i < 5; i++) {
        kept[nkept++] = inlined_helper(64); note_site("outer_delta", __FILE__, __LINE__);
    }
}

static long worker_tid;

NOINLINE static void *thread_epsilon(void *arg)
{
    worker_tid = syscall(SYS_gettid);
    for (int i = 0; i < (variant == 'b' ? 2 : 7); i++) {
        kept[nkept++] = tracked_malloc(200); note_site("thread_epsilon", __FILE__, __LINE__);
    }
    return arg;
}

NOINLINE static void recurse_zeta(int depth)
{
    if (depth > 0) {
        recurse_zeta(depth - 1); note_site("recurse_zeta_call", __FILE__, __LINE__);
        return;
    }
    for (int i = 0; i < 2; i++) {
        kept[nkept++] = tracked_malloc(32); note_site("recurse_zeta", __FILE__, __LINE__);
    }
}

NOINLINE static void only_in_b(void)
{
    for (int i = 0; i < 4; i++) {
        kept[nkept++] = tracked_malloc(256); note_site("only_in_b", __FILE__, __LINE__);
    }
}

NOINLINE static void child_site(void)
{
    for (int i = 0; i < 2; i++) {
        kept[nkept++] = tracked_malloc(512); note_site("child_site", __FILE__, __LINE__);
    }
}

NOINLINE static void widget_site(void)
{
    for (int i = 0; i < 3; i++)
        kept[nkept++] = cxx_site(48);
}

/* ---- the database ------------------------------------------------------- */

static void check(int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "mkprofile: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void exec(const char *sql)
{
    check(sqlite3_exec(db, sql, NULL, NULL, NULL), sql);
}

static sqlite3_stmt *prep(const char *sql)
{
    sqlite3_stmt *st;
    check(sqlite3_prepare_v2(db, sql, -1, &st, NULL), sql);
    return st;
}

static void step(sqlite3_stmt *st)
{
    check(sqlite3_step(st), "insert");
    sqlite3_reset(st);
}

static void open_db(const char *path, int create)
{
    if (create)
        unlink(path);
    check(sqlite3_open(path, &db), path);
    sqlite3_busy_timeout(db, 5000);
    if (!create)
        return;
    FILE *f = fopen(AP_SCHEMA_SQL_PATH, "r");
    if (!f) {
        perror(AP_SCHEMA_SQL_PATH);
        exit(1);
    }
    static char sql[65536];
    sql[fread(sql, 1, sizeof sql - 1, f)] = 0;
    fclose(f);
    exec(sql);
    char meta[160];
    snprintf(meta, sizeof meta,
             "PRAGMA user_version = %d; INSERT INTO meta VALUES ('schema_version', '%d'),"
             " ('writer', 'mkprofile')",
             AP_SCHEMA_VERSION, AP_SCHEMA_VERSION);
    exec(meta);
}

static void build_id_of(struct dl_phdr_info *info, char out[41])
{
    out[0] = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const void *)p;
            const char *name = p + sizeof *nh;
            const unsigned char *desc = (const unsigned char *)name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                for (unsigned k = 0; k < nh->n_descsz && k < 20; k++)
                    sprintf(out + 2 * k, "%02x", desc[k]);
                return;
            }
            p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
}

typedef struct {
    uint64_t start, end;
} segment;
static segment segs[256];
static int nsegs, map_first;

static int map_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    sqlite3_stmt *st = arg;
    char exe[4096] = "", bid[41];
    const char *path = info->dlpi_name;
    if (map_first) {
        ssize_t r = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[r > 0 ? r : 0] = 0;
        path = exe;
    } else if (!path || !*path || strstr(path, "linux-vdso")) {
        path = "[vdso]";
    }
    build_id_of(info, bid);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uint64_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        sqlite3_bind_int64(st, 1, process_id);
        sqlite3_bind_int64(st, 2, (int64_t)start);
        sqlite3_bind_int64(st, 3, (int64_t)end);
        sqlite3_bind_int64(st, 4, (int64_t)ph->p_offset);
        sqlite3_bind_int64(st, 5, (int64_t)info->dlpi_addr);
        sqlite3_bind_text(st, 6, path, -1, SQLITE_TRANSIENT);
        bid[0] ? sqlite3_bind_text(st, 7, bid, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, 7);
        step(st);
        if (nsegs < 256 && strcmp(path, "[vdso]"))
            segs[nsegs++] = (segment){start, end};
    }
    map_first = 0;
    return 0;
}

static void write_process(int64_t id, int64_t parent_id, int argc, char **argv)
{
    process_id = id;
    start_time = now();
    char exe[4096] = "";
    ssize_t r = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[r > 0 ? r : 0] = 0;
    char cmd[8192] = "[";
    for (int i = 0; i < argc; i++)
        snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s\"%s\"", i ? ", " : "", argv[i]);
    strcat(cmd, "]");
    sqlite3_stmt *st = prep("INSERT INTO process (id, pid, ppid, parent_id, exe, cmdline, "
                            "build_id, start_time, rate) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, 1)");
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, getpid());
    sqlite3_bind_int64(st, 3, getppid());
    parent_id ? sqlite3_bind_int64(st, 4, parent_id) : sqlite3_bind_null(st, 4);
    sqlite3_bind_text(st, 5, exe, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, cmd, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 7, start_time);
    step(st);
    sqlite3_finalize(st);
    st = prep("INSERT OR REPLACE INTO mapping VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    nsegs = 0;
    map_first = 1;
    dl_iterate_phdr(map_cb, st);
    sqlite3_finalize(st);
}

static void write_thread(long tid, const char *name)
{
    sqlite3_stmt *st = prep("INSERT OR REPLACE INTO thread VALUES (?1, ?2, ?3)");
    sqlite3_bind_int64(st, 1, process_id);
    sqlite3_bind_int64(st, 2, tid);
    sqlite3_bind_text(st, 3, name, -1, SQLITE_TRANSIENT);
    step(st);
    sqlite3_finalize(st);
}

static void write_stacks(void)
{
    sqlite3_stmt *st = prep("INSERT INTO stack VALUES (?1, ?2, ?3, ?4)");
    for (int i = 0; i < nstacks; i++) {
        if (stacks[i].written)
            continue;
        unsigned char blob[MAXDEPTH * 8];
        for (int k = 0; k < stacks[i].depth; k++)
            for (int b = 0; b < 8; b++)
                blob[k * 8 + b] = (unsigned char)(stacks[i].frames[k] >> (8 * b));
        sqlite3_bind_int64(st, 1, process_id);
        sqlite3_bind_int64(st, 2, i + 1);
        sqlite3_bind_int64(st, 3, stacks[i].depth);
        sqlite3_bind_blob(st, 4, blob, stacks[i].depth * 8, SQLITE_TRANSIENT);
        step(st);
        stacks[i].written = 1;
    }
    sqlite3_finalize(st);
}

static int64_t class_size(int64_t n)
{
    return (n + 15) & ~(int64_t)15;
}

/* Allocator statistics consistent with the buckets: one class per distinct
 * rounded size, 8 MiB mapped. */
static void write_alloc_stats(int64_t dump_id, int64_t inuse)
{
    /* the process's memory: 4 MiB besides the heap, and its high-water mark */
    static int64_t hwm;
    int64_t rss = (4 << 20) + inuse;
    hwm = rss > hwm ? rss : hwm;
    sqlite3_stmt *pm = prep("INSERT INTO process_memory VALUES (?1, ?2, ?3)");
    sqlite3_bind_int64(pm, 1, dump_id);
    sqlite3_bind_int64(pm, 2, rss);
    sqlite3_bind_int64(pm, 3, hwm);
    step(pm);
    sqlite3_finalize(pm);
    sqlite3_stmt *st = prep("INSERT INTO alloc_stats VALUES (?1, ?2, ?3, ?4, 0, 8388608, ?5, "
                            "1048576, 4096, 65536, 2097152)");
    int64_t large = 0;
    for (int i = 0; i < nbuckets; i++)
        if (buckets[i].ao && buckets[i].ab / buckets[i].ao > 262144)
            large += buckets[i].ab - buckets[i].fb;
    sqlite3_bind_int64(st, 1, dump_id);
    sqlite3_bind_int64(st, 2, inuse);
    sqlite3_bind_int64(st, 3, inuse - large);
    sqlite3_bind_int64(st, 4, large);
    sqlite3_bind_int64(st, 5, 8388608 - 1048576 - inuse);
    step(st);
    sqlite3_finalize(st);
    st = prep("INSERT INTO class_stats VALUES (?1, ?2, ?3, ?4, 0, 0, 1, 8192)");
    int64_t sizes[] = {32, 48, 64, 112, 208, 256, 512, 1008};
    for (int c = 0; c < 8; c++) {
        int64_t objs = 0;
        for (int i = 0; i < nbuckets; i++)
            if (buckets[i].ao && class_size(buckets[i].ab / buckets[i].ao) == sizes[c])
                objs += buckets[i].ao - buckets[i].fo;
        sqlite3_bind_int64(st, 1, dump_id);
        sqlite3_bind_int64(st, 2, c + 1);
        sqlite3_bind_int64(st, 3, sizes[c]);
        sqlite3_bind_int64(st, 4, objs);
        step(st);
    }
    sqlite3_finalize(st);
}

static void write_dump(int seq, const char *reason)
{
    exec("BEGIN");
    write_stacks();
    int64_t t[5] = {0};
    for (int i = 0; i < nbuckets; i++) {
        bucket_t *b = &buckets[i];
        t[0] += b->ab - b->fb;
        t[1] += b->ao - b->fo;
        t[2] += b->ab;
        t[3] += b->ao;
        t[4] += b->samples;
    }
    sqlite3_stmt *st = prep("INSERT INTO dump (process_id, seq, time, reason, inuse_bytes, "
                            "inuse_objects, alloc_bytes, alloc_objects, samples) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    sqlite3_bind_int64(st, 1, process_id);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_double(st, 3, start_time + seq * 0.5);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    for (int k = 0; k < 5; k++)
        sqlite3_bind_int64(st, 5 + k, t[k]);
    step(st);
    sqlite3_finalize(st);
    int64_t dump_id = sqlite3_last_insert_rowid(db);
    st = prep("INSERT INTO bucket VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
    for (int i = 0; i < nbuckets; i++) {
        bucket_t *b = &buckets[i];
        if (!b->dirty)
            continue;
        int64_t v[] = {dump_id, b->stack + 1, b->tid, b->ao, b->ab, b->fo, b->fb, b->acb,
                       b->samples};
        for (int k = 0; k < 9; k++)
            sqlite3_bind_int64(st, k + 1, v[k]);
        step(st);
        b->dirty = 0;
    }
    sqlite3_finalize(st);
    write_alloc_stats(dump_id, t[0]);
    if (!strcmp(reason, "exit")) {
        st = prep("UPDATE process SET end_time = ?1 WHERE id = ?2");
        sqlite3_bind_double(st, 1, start_time + seq * 0.5 + 0.1);
        sqlite3_bind_int64(st, 2, process_id);
        step(st);
        sqlite3_finalize(st);
    }
    exec("COMMIT");
}

/* ---- the scenario --------------------------------------------------------- */

static void run_child(const char *path, int argc, char **argv)
{
    expect = NULL; /* the parent writes the expectations */
    sqlite3 *parent_db = db;
    nstacks = nbuckets = nlive = 0;
    open_db(path, 0);
    write_process(2, 1, argc, argv);
    write_thread(syscall(SYS_gettid), "mkprofile-child");
    child_site();
    write_dump(1, "exit");
    sqlite3_close(db);
    (void)parent_db; /* the parent's connection is left alone in the child */
    _exit(0);
}

NOINLINE static void phase1(const char *path, int argc, char **argv)
{
    leak_alpha();
    temp_beta();
    kept[nkept++] = big_gamma();
    write_dump(1, "interval");
    if (expect)
        fflush(expect);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        run_child(path, argc, argv);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "mkprofile: child failed\n");
        exit(1);
    }
}

NOINLINE static void phase2(void)
{
    for (int i = 0; i < 20; i++)
        tracked_free(temps[i]);
    outer_delta();
    widget_site();
    pthread_t th;
    pthread_create(&th, NULL, thread_epsilon, NULL);
    pthread_setname_np(th, "worker");
    pthread_join(th, NULL);
    write_thread(worker_tid, "worker");
    write_dump(2, "peak");
}

NOINLINE static void phase3(void)
{
    tracked_free(kept[10 * (variant == 'b' ? 3 : 1)]); /* big_gamma's block */
    recurse_zeta(3);
    if (variant == 'b')
        only_in_b();
    write_dump(3, "exit");
}

static int scenario(const char *path, int argc, char **argv)
{
    open_db(path, 1);
    write_process(1, 0, argc, argv);
    write_thread(getpid(), "mkprofile");
    phase1(path, argc, argv);
    phase2();
    phase3();
    sqlite3_close(db);
    return 0;
}

/* ---- a large synthetic profile (for timing) ------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* nbuck buckets over nbuck/4 stacks x 4 threads, frames drawn from a pool of
 * real addresses in the loaded objects' code; dump 1 has every bucket, and
 * with ndumps > 2 each interval dump after it changes 1 % of them (some
 * allocate more, some free); the last dump (exit) frees a tenth of them. */
static int synthetic(const char *path, int nbuck, int ndumps, int argc, char **argv)
{
    open_db(path, 1);
    write_process(1, 0, argc, argv);
    enum { POOL = 6000 };
    static uint64_t pool[POOL];
    for (int i = 0; i < POOL; i++) {
        segment *sg = &segs[i % 2 ? 0 : next_rand() % nsegs];
        pool[i] = sg->start + next_rand() % (sg->end - sg->start);
    }
    int nst = nbuck / 4 > 0 ? nbuck / 4 : 1;
    stacks = xrealloc(stacks, (size_t)nst * sizeof *stacks);
    for (int i = 0; i < nst; i++) {
        stacks[i].depth = 6 + (int)(next_rand() % 18);
        for (int k = 0; k < stacks[i].depth; k++)
            stacks[i].frames[k] = pool[next_rand() % POOL];
        stacks[i].written = 0;
    }
    nstacks = nst;
    buckets = xrealloc(buckets, (size_t)nbuck * sizeof *buckets);
    for (int i = 0; i < nbuck; i++) {
        bucket_t *b = &buckets[i];
        memset(b, 0, sizeof *b);
        b->stack = i % nst;
        b->tid = 1000 + i / nst;
        b->ao = 1 + (int64_t)(next_rand() % 1000);
        b->ab = b->ao * (int64_t)(16 + next_rand() % 4096);
        b->fo = b->ao / 2;
        b->fb = b->ab / 2;
        b->acb = b->ab;
        b->samples = b->ao;
        b->dirty = 1;
    }
    nbuckets = nbuck;
    write_dump(1, "interval");
    for (int d = 2; d < ndumps; d++) {
        for (int k = 0; k < nbuck / 100; k++) {
            bucket_t *b = &buckets[next_rand() % (uint64_t)nbuck];
            int64_t n = 1 + (int64_t)(next_rand() % 100), size = b->ab / b->ao;
            if (next_rand() % 3) { /* allocates more */
                b->ao += n;
                b->ab += n * size;
                b->acb += n * size;
                b->samples += n;
            } else { /* frees what it holds, in part */
                int64_t held = b->ao - b->fo, f = n < held ? n : held;
                b->fo += f;
                b->fb += f * size;
            }
            b->dirty = 1;
        }
        write_dump(d, "interval");
    }
    for (int i = 0; i < nbuck; i += 10) {
        buckets[i].fo = buckets[i].ao;
        buckets[i].fb = buckets[i].ab;
        buckets[i].dirty = 1;
    }
    write_dump(ndumps > 2 ? ndumps : 2, "exit");
    sqlite3_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    int nsynth = 0, ndumps = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--variant") && i + 1 < argc)
            variant = argv[++i][0];
        else if (!strcmp(argv[i], "--expect") && i + 1 < argc) {
            expect = fopen(argv[++i], "w");
            if (!expect) {
                perror(argv[i]);
                return 1;
            }
        } else if (!strcmp(argv[i], "--synthetic") && i + 1 < argc)
            nsynth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dumps") && i + 1 < argc)
            ndumps = atoi(argv[++i]);
        else if (!out && argv[i][0] != '-')
            out = argv[i];
        else {
            fprintf(stderr, "usage: mkprofile OUT.db [--variant a|b] [--expect OUT.json] "
                            "[--synthetic NBUCKETS [--dumps N]]\n");
            return 2;
        }
    }
    if (!out)
        return 2;
    if (nsynth > 0)
        return synthetic(out, nsynth, ndumps, argc, argv);
    char exe[4096] = "";
    ssize_t r = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[r > 0 ? r : 0] = 0;
    if (expect)
        fprintf(expect, "{\"exe\": \"%s\", \"sites\": {", exe);
    int rc = scenario(out, argc, argv);
    if (expect) {
        fputs("\n}}\n", expect);
        fclose(expect);
    }
    return rc;
}
