/*
 * profile.c — opening, validating and loading allocprof profile databases.
 *
 * Validation happens before SQLite sees the file, so the common bad inputs
 * get precise messages: a missing file (errno), a directory, an empty file,
 * a file without the SQLite magic, and a truncated file (the header's page
 * count, when valid, says how long the file must be). After that SQLite's
 * own errors (SQLITE_NOTADB, SQLITE_CORRUPT, I/O errors) are reported for
 * every statement. The loader keeps all strings it returns in malloc'ed
 * copies, so statements are finalized as soon as their rows are read.
 */
#include "profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "format.h"
#include "util.h"

void ap_db_error(const ap_file *f, const char *what)
{
    int rc = sqlite3_extended_errcode(f->db);
    const char *why;
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        why = "not an allocprof profile";
        break;
    case SQLITE_CORRUPT:
        why = "corrupt or truncated database";
        break;
    case SQLITE_IOERR:
        why = "read error";
        break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        why = "database is locked";
        break;
    case SQLITE_NOMEM:
        why = "out of memory";
        break;
    default:
        why = "database error";
        break;
    }
    ap_cli_error("%s: %s (%s: %s)", f->path, why, what, sqlite3_errmsg(f->db));
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks what can be checked without SQLite. */
static int check_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        int e = errno;
        const char *at = strrchr(path, '@');
        if (e == ENOENT && at) { /* FILE@DUMP with a DUMP that is not a number */
            char *file = ap_xstrdup(path);
            file[at - path] = 0;
            if (access(file, F_OK) == 0) {
                ap_cli_error("%s: '%s' is not a dump id (FILE@ID takes a number that "
                             "'allocprof list %s' shows)",
                             path, at + 1, file);
                free(file);
                return -1;
            }
            free(file);
        }
        ap_cli_error("%s: %s", path, strerror(e));
        return -1;
    }
    struct stat st;
    unsigned char h[100];
    size_t n = fstat(fileno(fp), &st) == 0 && !S_ISDIR(st.st_mode) ? fread(h, 1, sizeof h, fp) : 0;
    int dir = S_ISDIR(st.st_mode);
    fclose(fp);
    if (dir) {
        ap_cli_error("%s: is a directory", path);
        return -1;
    }
    if (n == 0) {
        ap_cli_error("%s: not an allocprof profile (empty file)", path);
        return -1;
    }
    if (n < sizeof h || memcmp(h, "SQLite format 3", 16) != 0) {
        ap_cli_error("%s: not an allocprof profile (not an SQLite database)", path);
        return -1;
    }
    uint64_t page = (uint64_t)h[16] << 8 | h[17];
    if (page == 1)
        page = 65536;
    uint64_t pages = be32(h + 28);
    if (pages && be32(h + 24) == be32(h + 92) && (uint64_t)st.st_size < page * pages) {
        ap_cli_error("%s: truncated database (%lld of %llu bytes)", path, (long long)st.st_size,
                     (unsigned long long)(page * pages));
        return -1;
    }
    return 0;
}

static char *col_text(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? ap_xstrdup((const char *)t) : NULL;
}

/* Runs a single-integer query; returns 0 and sets *out, or -1. */
static int query_int(ap_file *f, const char *sql, const char *bind, int64_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db, sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    if (bind)
        sqlite3_bind_text(s, 1, bind, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int check_schema(ap_file *f)
{
    int64_t version;
    if (query_int(f, "PRAGMA user_version", NULL, &version) < 0) {
        ap_db_error(f, "reading the schema version");
        return -1;
    }
    if (version > AP_SCHEMA_VERSION) {
        ap_cli_error("%s: was written by a newer allocprof (schema version %lld; this one reads "
                     "version %d)",
                     f->path, (long long)version, AP_SCHEMA_VERSION);
        return -1;
    }
    static const char *const tables[] = {"process", "dump", "bucket", "stack", "mapping"};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        int64_t n;
        if (query_int(f, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                      tables[i], &n) < 0) {
            ap_db_error(f, "reading the schema");
            return -1;
        }
        if (!n) {
            ap_cli_error("%s: not an allocprof profile (no table '%s')", f->path, tables[i]);
            return -1;
        }
    }
    return 0;
}

static int load_processes(ap_file *f)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT id, pid, ppid, parent_id, exe, cmdline, build_id, start_time, "
                           "rate, end_time FROM process ORDER BY id",
                           -1, &s, NULL) != SQLITE_OK)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(&f->procs, &cap, f->nprocs + 1, sizeof *f->procs);
        ap_process *p = &f->procs[f->nprocs++];
        p->id = sqlite3_column_int64(s, 0);
        p->pid = sqlite3_column_int64(s, 1);
        p->ppid = sqlite3_column_int64(s, 2);
        p->parent_id = sqlite3_column_int64(s, 3);
        p->exe = col_text(s, 4);
        p->cmdline = col_text(s, 5);
        p->build_id = col_text(s, 6);
        p->start_time = sqlite3_column_double(s, 7);
        p->rate = sqlite3_column_int64(s, 8);
        p->end_time = sqlite3_column_double(s, 9);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int load_dumps(ap_file *f)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT id, process_id, seq, time, reason, inuse_bytes, inuse_objects, "
                           "alloc_bytes, alloc_objects, samples FROM dump "
                           "ORDER BY process_id, seq",
                           -1, &s, NULL) != SQLITE_OK)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(&f->dumps, &cap, f->ndumps + 1, sizeof *f->dumps);
        ap_dump *d = &f->dumps[f->ndumps++];
        d->id = sqlite3_column_int64(s, 0);
        d->process_id = sqlite3_column_int64(s, 1);
        d->seq = sqlite3_column_int64(s, 2);
        d->time = sqlite3_column_double(s, 3);
        const unsigned char *r = sqlite3_column_text(s, 4);
        snprintf(d->reason, sizeof d->reason, "%s", r ? (const char *)r : "?");
        for (int i = 0; i < 5; i++)
            (&d->inuse_bytes)[i] = sqlite3_column_int64(s, 5 + i);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int load_threads(ap_file *f)
{
    sqlite3_stmt *s;
    /* The thread table is optional: an old or partial file reads without names. */
    if (sqlite3_prepare_v2(f->db, "SELECT process_id, tid, name FROM thread", -1, &s, NULL) !=
        SQLITE_OK)
        return sqlite3_errcode(f->db) == SQLITE_ERROR ? 0 : -1;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(&f->threads, &cap, f->nthreads + 1, sizeof *f->threads);
        ap_thread *t = &f->threads[f->nthreads++];
        t->process_id = sqlite3_column_int64(s, 0);
        t->tid = sqlite3_column_int64(s, 1);
        t->name = col_text(s, 2);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Opens f->path read-only. A WAL-mode file in a directory we cannot write
 * (no -shm can be created) cannot be opened that way; it is then opened as
 * immutable, which reads the main file as it is. */
static int open_readonly(ap_file *f)
{
    int64_t v;
    if (sqlite3_open_v2(f->path, &f->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) ==
        SQLITE_OK) {
        sqlite3_busy_timeout(f->db, 2000);
        if (query_int(f, "PRAGMA user_version", NULL, &v) == 0)
            return 0;
        int rc = sqlite3_errcode(f->db);
        if (rc != SQLITE_CANTOPEN && rc != SQLITE_READONLY)
            return 0; /* reported by the schema check */
    }
    sqlite3_close(f->db);
    ap_buf uri = {0};
    ap_buf_puts(&uri, "file:");
    for (const char *p = f->path; *p; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            ap_buf_printf(&uri, "%%%02X", (unsigned char)*p);
        else
            ap_buf_put(&uri, p, 1);
    }
    ap_buf_puts(&uri, "?immutable=1");
    int rc = sqlite3_open_v2(uri.p, &f->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    ap_buf_free(&uri);
    return rc == SQLITE_OK ? 0 : -1;
}

ap_file *ap_file_open(const char *path)
{
    if (check_file(path) < 0)
        return NULL;
    ap_file *f = ap_xcalloc(1, sizeof *f);
    f->path = ap_xstrdup(path);
    if (open_readonly(f) < 0) {
        ap_db_error(f, "opening");
        ap_file_close(f);
        return NULL;
    }
    if (check_schema(f) < 0) {
        ap_file_close(f);
        return NULL;
    }
    if (load_processes(f) < 0 || load_dumps(f) < 0 || load_threads(f) < 0) {
        ap_db_error(f, "reading processes and dumps");
        ap_file_close(f);
        return NULL;
    }
    return f;
}

void ap_file_close(ap_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nprocs; i++) {
        free(f->procs[i].exe);
        free(f->procs[i].cmdline);
        free(f->procs[i].build_id);
    }
    for (size_t i = 0; i < f->nthreads; i++)
        free(f->threads[i].name);
    free(f->procs);
    free(f->dumps);
    free(f->dump_why);
    free(f->threads);
    sqlite3_close(f->db);
    /* A read-only connection cannot fold the WAL back or remove the -shm it
     * made; a writable one closed last does (and does nothing while a
     * profiled program still has the file open). */
    if (f->path && access(f->path, W_OK) == 0) {
        ap_buf shm = {0};
        ap_buf_printf(&shm, "%s-shm", f->path);
        if (access(shm.p, F_OK) == 0) {
            sqlite3 *db;
            if (sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
                sqlite3_exec(db, "PRAGMA user_version", NULL, NULL, NULL);
            sqlite3_close(db);
        }
        ap_buf_free(&shm);
    }
    free(f->path);
    free(f);
}

char *ap_split_dump_spec(const char *spec, int64_t *dump)
{
    *dump = -1;
    const char *at = strrchr(spec, '@');
    uint64_t v;
    if (!at || access(spec, F_OK) == 0 || !ap_parse_uint(at + 1, &v) || v > INT64_MAX)
        return ap_xstrdup(spec);
    *dump = (int64_t)v;
    char *path = ap_xstrdup(spec);
    path[at - spec] = 0;
    return path;
}

const ap_process *ap_find_process(const ap_file *f, int64_t process_id)
{
    for (size_t i = 0; i < f->nprocs; i++)
        if (f->procs[i].id == process_id)
            return &f->procs[i];
    return NULL;
}

static const ap_dump *last_dump(const ap_file *f, int64_t process_id, const char *reason)
{
    const ap_dump *best = NULL;
    for (size_t i = 0; i < f->ndumps; i++)
        if (f->dumps[i].process_id == process_id &&
            (!reason || !strcmp(f->dumps[i].reason, reason)))
            best = &f->dumps[i];
    return best;
}

int64_t ap_default_process(const ap_file *f)
{
    if (!f->nprocs)
        return -1;
    /* A run records every process it starts (a shell, a launcher's env and
     * bash, the interpreter they exec, its children): the one of interest is
     * the one that allocated the most, by its last dump's cumulative bytes.
     * Ties go to the earlier row; with no dump anywhere, the first row. */
    int64_t best = -1, most = -1;
    for (size_t i = 0; i < f->nprocs; i++) {
        const ap_dump *d = last_dump(f, f->procs[i].id, NULL);
        if (d && d->alloc_bytes > most) {
            most = d->alloc_bytes;
            best = f->procs[i].id;
        }
    }
    return best >= 0 ? best : f->procs[0].id;
}

size_t ap_processes_with_dumps(const ap_file *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nprocs; i++)
        n += last_dump(f, f->procs[i].id, NULL) != NULL;
    return n;
}

int ap_dump_exact_inuse(ap_file *f, int64_t dump_id, int64_t *out)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db, "SELECT inuse_bytes FROM alloc_stats WHERE dump_id = ?1", -1, &s,
                           NULL) != SQLITE_OK)
        return 0; /* an old file without the table */
    sqlite3_bind_int64(s, 1, dump_id);
    int found = sqlite3_step(s) == SQLITE_ROW;
    if (found)
        *out = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return found;
}

int ap_dump_alloc_stats(ap_file *f, int64_t dump_id, int64_t v[AP_NSTATS])
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT inuse_bytes, small_bytes, large_bytes, huge_bytes, "
                           "mapped_bytes, free_bytes, returned_bytes, cached_bytes, "
                           "metadata_bytes, released_total FROM alloc_stats WHERE dump_id = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        return sqlite3_errcode(f->db) == SQLITE_ERROR ? 0 : -1; /* no table */
    sqlite3_bind_int64(s, 1, dump_id);
    int rc = sqlite3_step(s);
    for (int i = 0; rc == SQLITE_ROW && i < AP_NSTATS; i++)
        v[i] = sqlite3_column_int64(s, i);
    sqlite3_finalize(s);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

int ap_dump_process_memory(ap_file *f, int64_t dump_id, int64_t *rss, int64_t *hwm)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT rss_bytes, hwm_bytes FROM process_memory WHERE dump_id = ?1", -1,
                           &s, NULL) != SQLITE_OK)
        return 0; /* schema version 1: unknown */
    sqlite3_bind_int64(s, 1, dump_id);
    int found = sqlite3_step(s) == SQLITE_ROW;
    if (found) {
        *rss = sqlite3_column_int64(s, 0);
        *hwm = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    return found;
}

const ap_dump *ap_last_dump(const ap_file *f, int64_t process_id)
{
    return last_dump(f, process_id, NULL);
}

const ap_dump *ap_exit_dump(const ap_file *f, int64_t process_id)
{
    return last_dump(f, process_id, "exit");
}

const ap_dump *ap_select_dump(ap_file *f, int64_t process_id, int64_t dump_id, bool prefer_peak)
{
    free(f->dump_why);
    f->dump_why = NULL;
    if (dump_id >= 0) {
        for (size_t i = 0; i < f->ndumps; i++)
            if (f->dumps[i].id == dump_id)
                return &f->dumps[i];
        ap_cli_error("%s: no dump %lld (see 'allocprof list %s')", f->path, (long long)dump_id,
                     f->path);
        return NULL;
    }
    if (process_id < 0) {
        if (!f->nprocs) {
            ap_cli_error("%s: no process in this profile", f->path);
            return NULL;
        }
        process_id = ap_default_process(f);
    } else if (!ap_find_process(f, process_id)) {
        ap_cli_error("%s: no process %lld (see 'allocprof list %s')", f->path,
                     (long long)process_id, f->path);
        return NULL;
    }
    const ap_dump *d = last_dump(f, process_id, NULL);
    if (!d) {
        if (!ap_processes_with_dumps(f))
            ap_cli_error("%s: no process in this profile has a dump yet (%zu recorded)", f->path,
                         f->nprocs);
        else
            ap_cli_error("%s: process %lld has no dump (see 'allocprof list %s')", f->path,
                         (long long)process_id, f->path);
        return NULL;
    }
    const ap_dump *peak = d;
    for (size_t i = 0; i < f->ndumps; i++)
        if (f->dumps[i].process_id == process_id && f->dumps[i].inuse_bytes > peak->inuse_bytes)
            peak = &f->dumps[i];
    char held[2][32];
    if (prefer_peak && peak != d &&
        100.0 * (double)d->inuse_bytes < AP_PREFER_PEAK_PCT * (double)peak->inuse_bytes) {
        f->dump_why = ap_xasprintf(
            "dump %lld: the one with the most in use (%s); the last, dump %lld (%s), holds %s; "
            "-d ID chooses another",
            (long long)peak->id, ap_fmt_bytes(peak->inuse_bytes, false, held[0]), (long long)d->id,
            d->reason, ap_fmt_bytes(d->inuse_bytes, false, held[1]));
        return peak;
    }
    f->dump_why =
        ap_xasprintf("dump %lld: the process's last; -d ID chooses another", (long long)d->id);
    return d;
}

const char *ap_thread_name(const ap_file *f, int64_t process_id, int64_t tid)
{
    for (size_t i = 0; i < f->nthreads; i++)
        if (f->threads[i].process_id == process_id && f->threads[i].tid == tid)
            return f->threads[i].name;
    return NULL;
}

static int load_mappings(ap_file *f, int64_t process_id, ap_profile *p)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT start, \"end\", file_offset, bias, path, build_id FROM mapping "
                           "WHERE process_id = ?1 ORDER BY start",
                           -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(s, 1, process_id);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(&p->maps, &cap, p->nmaps + 1, sizeof *p->maps);
        ap_mapping *m = &p->maps[p->nmaps++];
        m->start = (uint64_t)sqlite3_column_int64(s, 0);
        m->end = (uint64_t)sqlite3_column_int64(s, 1);
        m->file_offset = (uint64_t)sqlite3_column_int64(s, 2);
        m->bias = (uint64_t)sqlite3_column_int64(s, 3);
        m->path = col_text(s, 4);
        m->build_id = col_text(s, 5);
        if (!m->path)
            m->path = ap_xstrdup("?");
        if (m->build_id && !*m->build_id) {
            free(m->build_id);
            m->build_id = NULL;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int load_stacks(ap_file *f, int64_t process_id, ap_profile *p)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db,
                           "SELECT stack_id, depth, frames FROM stack WHERE process_id = ?1 "
                           "ORDER BY stack_id",
                           -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(s, 1, process_id);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(&p->stacks, &cap, p->nstacks + 1, sizeof *p->stacks);
        ap_stack *st = &p->stacks[p->nstacks++];
        memset(st, 0, sizeof *st);
        st->stack_id = sqlite3_column_int64(s, 0);
        int64_t depth = sqlite3_column_int64(s, 1);
        const unsigned char *blob = sqlite3_column_blob(s, 2);
        size_t n = (size_t)sqlite3_column_bytes(s, 2) / 8;
        if (depth >= 0 && (uint64_t)depth < n)
            n = (size_t)depth; /* the blob wins only when it is shorter */
        st->depth = (uint32_t)n;
        st->frames = ap_xmalloc(n * sizeof *st->frames);
        for (size_t i = 0; i < n; i++) {
            uint64_t a = 0;
            for (int b = 7; b >= 0; b--)
                a = a << 8 | blob[i * 8 + (size_t)b];
            st->frames[i] = a;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

const ap_stack *ap_find_stack(const ap_profile *p, int64_t id)
{
    size_t lo = 0, hi = p->nstacks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->stacks[mid].stack_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->nstacks && p->stacks[lo].stack_id == id ? &p->stacks[lo] : NULL;
}

/* One dump's own bucket rows, and the state a row gives its (stack, tid). */
static const char bucket_rows_sql[] =
    "SELECT stack_id, tid, alloc_objects, alloc_bytes, free_objects, free_bytes, "
    "alloc_class_bytes, samples FROM bucket WHERE dump_id = ?1";

static void row_to_bucket(sqlite3_stmt *s, ap_bucket *b)
{
    int64_t ao = sqlite3_column_int64(s, 2), ab = sqlite3_column_int64(s, 3);
    int64_t fo = sqlite3_column_int64(s, 4), fb = sqlite3_column_int64(s, 5);
    b->stack_id = sqlite3_column_int64(s, 0);
    b->tid = sqlite3_column_int64(s, 1);
    b->v[AP_INUSE_BYTES] = ab - fb;
    b->v[AP_INUSE_OBJECTS] = ao - fo;
    b->v[AP_ALLOC_BYTES] = ab;
    b->v[AP_ALLOC_OBJECTS] = ao;
    b->alloc_class_bytes = sqlite3_column_int64(s, 6);
    b->samples = sqlite3_column_int64(s, 7);
}

/* Applies one dump's bucket rows: each row replaces the (stack, tid) state. */
static int apply_dump(ap_file *f, sqlite3_stmt *s, int64_t dump_id, ap_map *index, ap_profile *p,
                      size_t *cap)
{
    sqlite3_reset(s);
    sqlite3_bind_int64(s, 1, dump_id);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t stack_id = sqlite3_column_int64(s, 0), tid = sqlite3_column_int64(s, 1);
        uint64_t key = (uint64_t)stack_id * 0x9E3779B97F4A7C15ULL ^ (uint64_t)tid;
        bool created;
        uint64_t *slot = ap_map_put(index, key, &created);
        /* On a hash-key collision (different pair, same key) probe linearly. */
        while (!created &&
               (p->buckets[*slot].stack_id != stack_id || p->buckets[*slot].tid != tid)) {
            key = ap_hash_u64(key + 1);
            slot = ap_map_put(index, key, &created);
        }
        if (created) {
            ap_grow(&p->buckets, cap, p->nbuckets + 1, sizeof *p->buckets);
            *slot = p->nbuckets++;
        }
        row_to_bucket(s, &p->buckets[*slot]);
    }
    return rc == SQLITE_DONE ? 0 : -1;
}

static int load_buckets(ap_file *f, const ap_dump *d, ap_profile *p)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(f->db, bucket_rows_sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    ap_map index = {0};
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < f->ndumps && rc == 0; i++) {
        const ap_dump *e = &f->dumps[i];
        if (e->process_id == d->process_id && e->seq <= d->seq)
            rc = apply_dump(f, s, e->id, &index, p, &cap);
    }
    sqlite3_finalize(s);
    ap_map_free(&index);
    for (size_t i = 0; i < p->nbuckets; i++)
        p->buckets[i].stack = ap_find_stack(p, p->buckets[i].stack_id);
    return rc;
}

int ap_dump_rows(ap_file *f, int64_t dump_id, ap_bucket **rows, size_t *n)
{
    sqlite3_stmt *s;
    *rows = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(f->db, bucket_rows_sql, -1, &s, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_int64(s, 1, dump_id);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        ap_grow(rows, &cap, *n + 1, sizeof **rows);
        ap_bucket *b = &(*rows)[(*n)++];
        memset(b, 0, sizeof *b);
        row_to_bucket(s, b);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? 0 : -1;
}

int ap_profile_load(ap_file *f, const ap_dump *d, ap_profile *out)
{
    memset(out, 0, sizeof *out);
    out->file = f;
    out->dump = d;
    out->proc = ap_find_process(f, d->process_id);
    if (!out->proc) {
        ap_cli_error("%s: dump %lld names process %lld, which is not in the file", f->path,
                     (long long)d->id, (long long)d->process_id);
        return -1;
    }
    if (load_mappings(f, d->process_id, out) < 0 || load_stacks(f, d->process_id, out) < 0 ||
        load_buckets(f, d, out) < 0) {
        ap_db_error(f, "reading the profile");
        ap_profile_free(out);
        return -1;
    }
    return 0;
}

void ap_profile_free(ap_profile *p)
{
    for (size_t i = 0; i < p->nstacks; i++) {
        free(p->stacks[i].frames);
        free(p->stacks[i].sym);
    }
    free(p->addrs);
    ap_map_free(&p->addr_index);
    for (size_t i = 0; i < p->nmaps; i++) {
        free(p->maps[i].path);
        free(p->maps[i].build_id);
    }
    free(p->stacks);
    free(p->maps);
    free(p->buckets);
    memset(p, 0, sizeof *p);
}
