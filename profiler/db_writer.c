/*
 * db_writer.c — writes dumps to the SQLite profile (schema/schema.sql,
 * docs/schema.md), in the profiled process.
 *
 * Built as its own plugin, liballocprof-writer.so (writer_api.h), loaded only
 * when profiling is on. Why in the process: the library must work when a user sets LD_PRELOAD
 * without `allocprof run`, and a dump then needs no second process. SQLite is
 * a private copy linked statically with hidden symbols, so a program that
 * uses its own SQLite never meets ours; our copy allocates through the
 * allocator's ap_* entry points, never the sampled malloc. Dumps run on the
 * writer thread (dump.c) or in the exiting thread, never while an allocator
 * or profiler lock is held; each dump is one transaction, so a crash or
 * _exit loses at most the dump in progress and never corrupts the file. WAL
 * mode and a busy timeout let several processes (fork, exec) share a file.
 *
 * Descriptors: SQLite's unix VFS reaches the system through a table of
 * calls (xSetSystemCall); every call that takes a descriptor is replaced by
 * one that opens O_CLOEXEC and moves the descriptor high (fdguard.c), and
 * checks before each read, write, lock, truncate, map and close that the
 * descriptor is still ours. When the program has closed or replaced one
 * (a daemon's close loop), SQLite sees EBADF, the dump fails without
 * touching the program's file, and the connection is reopened by the
 * profile's absolute path and the dump written again.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schema_sql.h"
#include "sqlite3.h"
#include "writer_api.h"

/* In the plugin, the host's functions come through the table it passed. */
static const ap_host_t *host;
#define ap_bucket_count() host->bucket_count()
#define ap_bucket_at(i) host->bucket_at(i)
#define ap_stack_count() host->stack_count()
#define ap_stack_frames(i, d) host->stack_frames(i, d)
#define ap_thread_count() host->thread_count()
#define ap_thread_at(i) host->thread_at(i)
#define ap_stats_get(s) host->stats_get(s)
#define ap_malloc(n) host->malloc(n)
#define ap_free(p) host->free(p)
#define ap_realloc(p, n) host->realloc(p, n)
#define ap_calloc(n, s) host->calloc(n, s)
#define ap_usable_size(p) host->usable_size(p)
#define ap_prof_cfg (*host->cfg)

struct ap_db {
    sqlite3 *db;
    char path[4096];    /* absolute: the program may chdir */
    uint64_t lost_mark; /* fdguard's loss count when this dump began */
    int64_t rss, hwm;   /* the process's memory for this dump; rss < 0: unknown */
    int64_t process_id;
    int64_t seq;
    uint32_t stacks_written;
    unsigned long long map_adds, map_subs;
};

/* ---- SQLite on our allocator ---- */

static void *m_malloc(int n)
{
    return ap_malloc((size_t)n);
}
static void m_free(void *p)
{
    ap_free(p);
}
static void *m_realloc(void *p, int n)
{
    return ap_realloc(p, (size_t)n);
}
static int m_size(void *p)
{
    return (int)ap_usable_size(p);
}
static int m_roundup(int n)
{
    return n;
}
static int m_init(void *a)
{
    return 0;
}
static void m_shutdown(void *a) {}

/* ---- SQLite's descriptors, guarded (fdguard.c via the host) ---- */

#define GUARD(fd, fail_value)                                                                      \
    do {                                                                                           \
        if (host->fd_check(fd) != 0)                                                               \
            return fail_value;                                                                     \
    } while (0)

static int g_open(const char *path, int flags, int mode)
{
    return host->fd_adopt(open(path, flags | O_CLOEXEC, mode));
}
static int g_close(int fd)
{
    return host->fd_close(fd);
}
static int g_fstat(int fd, struct stat *st)
{
    GUARD(fd, -1);
    return fstat(fd, st);
}
static int g_ftruncate(int fd, off_t n)
{
    GUARD(fd, -1);
    return ftruncate(fd, n);
}
static int g_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    GUARD(fd, -1);
    return fcntl(fd, cmd, arg);
}
static ssize_t g_read(int fd, void *b, size_t n)
{
    GUARD(fd, -1);
    return read(fd, b, n);
}
static ssize_t g_pread(int fd, void *b, size_t n, off_t o)
{
    GUARD(fd, -1);
    return pread(fd, b, n, o);
}
static ssize_t g_write(int fd, const void *b, size_t n)
{
    GUARD(fd, -1);
    return write(fd, b, n);
}
static ssize_t g_pwrite(int fd, const void *b, size_t n, off_t o)
{
    GUARD(fd, -1);
    return pwrite(fd, b, n, o);
}
static int g_fchmod(int fd, mode_t m)
{
    GUARD(fd, -1);
    return fchmod(fd, m);
}
static int g_fallocate(int fd, off_t o, off_t n)
{
    GUARD(fd, EBADF);
    return posix_fallocate(fd, o, n);
}
static int g_fchown(int fd, uid_t u, gid_t g)
{
    GUARD(fd, -1);
    return fchown(fd, u, g);
}
static void *g_mmap(void *a, size_t n, int prot, int flags, int fd, off_t o)
{
    if (fd >= 0)
        GUARD(fd, MAP_FAILED);
    return mmap(a, n, prot, flags, fd, o);
}
static int g_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    GUARD(fd, -1);
    return ioctl(fd, req, arg);
}

static int guard_vfs(void)
{
    sqlite3_vfs *v = sqlite3_vfs_find("unix");
    if (!v || !v->xSetSystemCall)
        return -1;
    static const struct {
        const char *name;
        sqlite3_syscall_ptr fn;
    } calls[] = {
        {"open", (sqlite3_syscall_ptr)g_open},
        {"close", (sqlite3_syscall_ptr)g_close},
        {"fstat", (sqlite3_syscall_ptr)g_fstat},
        {"ftruncate", (sqlite3_syscall_ptr)g_ftruncate},
        {"fcntl", (sqlite3_syscall_ptr)g_fcntl},
        {"read", (sqlite3_syscall_ptr)g_read},
        {"pread", (sqlite3_syscall_ptr)g_pread},
        {"pread64", (sqlite3_syscall_ptr)g_pread},
        {"write", (sqlite3_syscall_ptr)g_write},
        {"pwrite", (sqlite3_syscall_ptr)g_pwrite},
        {"pwrite64", (sqlite3_syscall_ptr)g_pwrite},
        {"fchmod", (sqlite3_syscall_ptr)g_fchmod},
        {"fallocate", (sqlite3_syscall_ptr)g_fallocate},
        {"fchown", (sqlite3_syscall_ptr)g_fchown},
        {"mmap", (sqlite3_syscall_ptr)g_mmap},
        {"ioctl", (sqlite3_syscall_ptr)g_ioctl},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
        /* a call this SQLite does not have (built without it) is not used either */
        if (v->xGetSystemCall(v, calls[i].name) &&
            v->xSetSystemCall(v, calls[i].name, calls[i].fn) != SQLITE_OK)
            return -1;
    }
    return 0;
}

/* SQLite also retries a failed WAL lock on its own, for about 10 s, with
 * the VFS's sleep: a VFS like "unix" but whose sleep returns at once once
 * a descriptor is lost, so the retries end in microseconds. */
static sqlite3_vfs guarded_vfs, *unix_vfs;
static uint64_t sleep_mark;

static int g_sleep(sqlite3_vfs *v, int us)
{
    if (host->fd_lost_count() != sleep_mark)
        return 0;
    return unix_vfs->xSleep(unix_vfs, us);
}

static int sqlite_setup(void)
{
    static int done;
    if (done)
        return 0;
    static const sqlite3_mem_methods mem = {m_malloc,  m_free, m_realloc,  m_size,
                                            m_roundup, m_init, m_shutdown, NULL};
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    done = 1;
    int rc = sqlite3_initialize();
    if (rc == SQLITE_OK && guard_vfs() != 0)
        rc = SQLITE_ERROR; /* unguarded descriptors could be the program's: no profile */
    if (rc == SQLITE_OK) {
        unix_vfs = sqlite3_vfs_find("unix");
        guarded_vfs = *unix_vfs; /* pAppData too: the unix VFS keeps its I/O finder there */
        guarded_vfs.zName = "allocprof-unix";
        guarded_vfs.xSleep = g_sleep;
        rc = sqlite3_vfs_register(&guarded_vfs, 1);
    }
    return rc;
}

static int fail(ap_db_t *d, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, d && d->db ? sqlite3_errmsg(d->db) : "error");
    return -1;
}

static int exec(ap_db_t *d, const char *sql)
{
    return sqlite3_exec(d->db, sql, 0, 0, 0);
}

static int create_schema(ap_db_t *d, char *err, size_t errlen)
{
    if (exec(d, "BEGIN IMMEDIATE") != SQLITE_OK)
        return fail(d, err, errlen, "cannot lock the profile");
    sqlite3_stmt *st;
    int version = -1;
    if (sqlite3_prepare_v2(d->db, "PRAGMA user_version", -1, &st, 0) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            version = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (version < 0) {
        exec(d, "ROLLBACK");
        return fail(d, err, errlen, "not a profile database");
    }
    if (version > AP_SCHEMA_VERSION) {
        exec(d, "ROLLBACK");
        snprintf(err, errlen, "written by a newer allocprof (schema %d, this one knows %d)",
                 version, AP_SCHEMA_VERSION);
        return -1;
    }
    if (version < AP_SCHEMA_VERSION) {
        /* a new file, or an older one we append to: every statement is IF
         * NOT EXISTS and versions so far only add tables (schema.sql) */
        char sql[160];
        snprintf(sql, sizeof sql,
                 "PRAGMA user_version = %d; INSERT OR REPLACE INTO meta VALUES "
                 "('schema_version', '%d'), ('writer', 'liballocprof " AP_VERSION "')",
                 AP_SCHEMA_VERSION, AP_SCHEMA_VERSION);
        if (exec(d, ap_schema_sql) != SQLITE_OK || exec(d, sql) != SQLITE_OK) {
            fail(d, err, errlen, "cannot create the schema");
            exec(d, "ROLLBACK");
            return -1;
        }
    }
    if (exec(d, "COMMIT") != SQLITE_OK)
        return fail(d, err, errlen, "cannot commit the schema");
    return 0;
}

/* Another process holds the lock: wait up to 15 s. A descriptor of ours
 * that the program took looks like a lock held elsewhere (SQLite reads a
 * failed fcntl lock as busy): then stop at once, so the dump can reopen. */
static int on_busy(void *arg, int count)
{
    ap_db_t *d = arg;
    if (host->fd_lost_count() != d->lost_mark || count >= 1500)
        return 0;
    usleep(count < 10 ? 1000 : 10000);
    return 1;
}

static void disconnect(ap_db_t *d)
{
    sqlite3_close_v2(d->db); /* closes only what is still ours */
    d->db = NULL;
}

/* A connection for one dump (or the process row): the library holds no
 * descriptor between dumps, so the program sees only its own. */
static int connect_db(ap_db_t *d, char *err, size_t errlen)
{
    int rc = sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        fail(d, err, errlen, "cannot open");
        sqlite3_close(d->db);
        d->db = NULL;
        return -1;
    }
    sqlite3_busy_handler(d->db, on_busy, d);
    /* 1 KiB pages (a new file only; WAL fixes the size): a profile has a
     * dozen tables, mostly small, and every table and index takes a page */
    exec(d, "PRAGMA page_size=1024");
    exec(d, "PRAGMA journal_mode=WAL");
    exec(d, "PRAGMA synchronous=NORMAL");
    if (create_schema(d, err, errlen) != 0) {
        sqlite3_close(d->db);
        d->db = NULL;
        return -1;
    }
    return 0;
}

int ap_db_open(ap_db_t **out, const char *path, char *err, size_t errlen)
{
    if (sqlite_setup() != SQLITE_OK) {
        snprintf(err, errlen, "cannot initialise SQLite");
        return -1;
    }
    ap_db_t *d = ap_calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->path[0] = 0;
    if (path[0] != '/' && getcwd(d->path, sizeof d->path - 1))
        strcat(d->path, "/");
    if (strlen(d->path) + strlen(path) >= sizeof d->path) {
        snprintf(err, errlen, "path too long");
        ap_free(d);
        return -1;
    }
    strcat(d->path, path);
    if (connect_db(d, err, errlen) != 0) {
        ap_free(d);
        return -1;
    }
    *out = d; /* connected: ap_db_add_process follows, on the same connection */
    return 0;
}

/* Reads a small /proc file into buf (NUL-terminated) through a guarded
 * descriptor, never a stdio stream: a daemon's close loop may close it and
 * open its own file at that number, and then the check fails where fgets
 * would have read the program's file and fclose closed it. Returns the bytes
 * read (what came before a loss), or -1 when the file cannot be opened. */
static ssize_t read_proc_file(const char *path, char *buf, size_t cap)
{
    int fd = g_open(path, O_RDONLY, 0);
    if (fd < 0)
        return -1;
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = g_read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    g_close(fd);
    buf[n] = 0;
    return (ssize_t)n;
}

/* ---- process and mappings ---- */

static void hex(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

/* GNU build id of a loaded object, as hex; "" if none. */
static void build_id_of(const struct dl_phdr_info *info, char out[41])
{
    out[0] = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *nh;
            const unsigned char *desc = (const unsigned char *)name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4) &&
                nh->n_descsz <= 20) {
                hex(out, desc, nh->n_descsz);
                return;
            }
            p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
}

struct map_ctx {
    ap_db_t *d;
    sqlite3_stmt *st;
    unsigned long long adds, subs;
    int first;
    char exe[4096];
};

static int map_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct map_ctx *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        c->adds = info->dlpi_adds;
        c->subs = info->dlpi_subs;
    }
    if (!c->st)
        return 0;
    const char *path = info->dlpi_name;
    if (c->first)
        path = c->exe;
    else if (!path || !*path)
        path = "[unknown]";
    else if (strstr(path, "linux-vdso") || strstr(path, "linux-gate"))
        path = "[vdso]";
    c->first = 0;
    char bid[41];
    build_id_of(info, bid);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        sqlite3_stmt *st = c->st;
        sqlite3_bind_int64(st, 1, c->d->process_id);
        sqlite3_bind_int64(st, 2, (int64_t)(info->dlpi_addr + ph->p_vaddr));
        sqlite3_bind_int64(st, 3, (int64_t)(info->dlpi_addr + ph->p_vaddr + ph->p_memsz));
        sqlite3_bind_int64(st, 4, (int64_t)ph->p_offset);
        sqlite3_bind_int64(st, 5, (int64_t)info->dlpi_addr);
        sqlite3_bind_text(st, 6, path, -1, SQLITE_TRANSIENT);
        if (bid[0])
            sqlite3_bind_text(st, 7, bid, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, 7);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    return 0;
}

static int exe_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    build_id_of(info, arg);
    return 1; /* the first object is the executable */
}

static void exe_path(char *out, size_t n)
{
    ssize_t r = readlink("/proc/self/exe", out, n - 1);
    out[r > 0 ? r : 0] = 0;
}

/* Record the mappings when the set of loaded objects changed. */
static int write_mappings(ap_db_t *d)
{
    struct map_ctx c = {d, NULL, 0, 0, 1, {0}};
    dl_iterate_phdr(map_cb, &c); /* counters only */
    if (c.adds == d->map_adds && c.subs == d->map_subs && d->map_adds)
        return 0;
    exe_path(c.exe, sizeof c.exe);
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO mapping VALUES (?,?,?,?,?,?,?)", -1,
                           &c.st, 0) != SQLITE_OK)
        return -1;
    c.first = 1;
    dl_iterate_phdr(map_cb, &c);
    sqlite3_finalize(c.st);
    d->map_adds = c.adds;
    d->map_subs = c.subs;
    return 0;
}

static int add_process_once(ap_db_t *d, const ap_process_info_t *pi, char *err, size_t errlen)
{
    if (exec(d, "BEGIN IMMEDIATE") != SQLITE_OK)
        return fail(d, err, errlen, "cannot lock the profile");
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        d->db,
        "INSERT INTO process (pid, ppid, parent_id, exe, cmdline, build_id, start_time, rate)"
        " VALUES (?1, ?2, (SELECT max(id) FROM process WHERE pid = ?2), ?3, ?4, ?5, ?6, ?7)",
        -1, &st, 0);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, pi->pid);
        sqlite3_bind_int(st, 2, pi->ppid);
        sqlite3_bind_text(st, 3, pi->exe, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, pi->cmdline_json ? pi->cmdline_json : "[]", -1, SQLITE_STATIC);
        if (pi->build_id[0])
            sqlite3_bind_text(st, 5, pi->build_id, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, 5);
        sqlite3_bind_double(st, 6, pi->start_time);
        sqlite3_bind_int64(st, 7, (int64_t)pi->rate);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_OK) {
        fail(d, err, errlen, "cannot record the process");
        exec(d, "ROLLBACK");
        return -1;
    }
    d->process_id = sqlite3_last_insert_rowid(d->db);
    if (pi->suppressions && sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO meta VALUES (?1, ?2)",
                                               -1, &st, 0) == SQLITE_OK) {
        char key[64];
        snprintf(key, sizeof key, "lsan_default_suppressions:%lld", (long long)d->process_id);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, pi->suppressions, -1, SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    d->seq = 0;
    d->stacks_written = 0;
    d->map_adds = d->map_subs = 0;
    write_mappings(d);
    if (exec(d, "COMMIT") != SQLITE_OK)
        return fail(d, err, errlen, "cannot commit the process");
    return 0;
}

int ap_db_add_process(ap_db_t *d, const ap_process_info_t *pi, char *err, size_t errlen)
{
    d->lost_mark = sleep_mark = host->fd_lost();
    if (!d->db && connect_db(d, err, errlen) != 0) /* a new connection parses the schema */
        return -1;
    int rc = add_process_once(d, pi, err, errlen);
    disconnect(d);
    return rc;
}

/* Fill the process description: pid, parent, exe, command line (JSON), build id. */
void ap_db_process_info(ap_process_info_t *pi, double now)
{
    memset(pi, 0, sizeof *pi);
    pi->pid = getpid();
    pi->ppid = getppid();
    pi->start_time = now;
    pi->rate = ap_prof_cfg.rate;
    exe_path(pi->exe, sizeof pi->exe);
    dl_iterate_phdr(exe_cb, pi->build_id);
    char raw[8193];
    ssize_t got = read_proc_file("/proc/self/cmdline", raw, sizeof raw);
    size_t n = got > 0 ? (size_t)got : 0;
    char *js = ap_malloc(n * 6 + 8), *o = js;
    if (!js)
        return;
    *o++ = '[';
    for (size_t i = 0, start = 1; i < n; i++) {
        unsigned char ch = (unsigned char)raw[i];
        if (start) {
            if (o[-1] != '[')
                *o++ = ',';
            *o++ = '"';
            start = 0;
        }
        if (ch == 0) {
            *o++ = '"';
            start = 1;
        } else if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20) {
            o += sprintf(o, "\\u%04x", ch);
        } else {
            *o++ = (char)ch;
        }
    }
    if (o[-1] != '[' && o[-1] != '"')
        *o++ = '"'; /* truncated last argument */
    *o++ = ']';
    *o = 0;
    pi->cmdline_json = js;
    /* LeakSanitizer's hook, as heaptrack honours it: a program (exporting it,
     * e.g. linked with -rdynamic) or one of its libraries names the leaks it
     * knows of. Called once, at start-up, like LSan does. */
    const char *(*lsan)(void) =
        (const char *(*)(void))dlsym(RTLD_DEFAULT, "__lsan_default_suppressions");
    const char *text = lsan ? lsan() : NULL;
    if (text && (pi->suppressions = ap_malloc(strlen(text) + 1)))
        strcpy(pi->suppressions, text);
}

/* ---- one dump ---- */

typedef ap_bucket_snap_t snap_t;

static int64_t objs(int64_t wfp)
{
    return (wfp + (1 << (AP_WFP_SHIFT - 1))) >> AP_WFP_SHIFT;
}

static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int write_threads(ap_db_t *d)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO thread VALUES (?,?,?)", -1, &st, 0))
        return -1;
    uint32_t n = ap_thread_count();
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        ap_thread_rec_t *t = ap_thread_at(i);
        char path[64], name[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%u/comm", t->tid);
        if (read_proc_file(path, name, sizeof name) > 0) /* a live thread: its current name */
            name[strcspn(name, "\n")] = 0;
        if (!name[0] && t->written)
            continue;
        sqlite3_bind_int64(st, 1, d->process_id);
        sqlite3_bind_int64(st, 2, t->tid);
        sqlite3_bind_text(st, 3, name[0] ? name : t->name, -1, SQLITE_TRANSIENT);
        rc = step_done(st);
        t->written = true;
    }
    sqlite3_finalize(st);
    return rc;
}

static int write_stacks(ap_db_t *d)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO stack VALUES (?,?,?,?)", -1, &st, 0))
        return -1;
    uint32_t n = ap_stack_count();
    int rc = 0;
    for (uint32_t id = d->stacks_written; id < n && rc == 0; id++) {
        int depth;
        const uint64_t *f = ap_stack_frames(id, &depth);
        sqlite3_bind_int64(st, 1, d->process_id);
        sqlite3_bind_int64(st, 2, id);
        sqlite3_bind_int(st, 3, depth);
        sqlite3_bind_blob(st, 4, f, depth * 8, SQLITE_STATIC); /* x86-64: little-endian */
        rc = step_done(st);
    }
    sqlite3_finalize(st);
    if (rc == 0)
        d->stacks_written = n;
    return rc;
}

static int write_dump_row(ap_db_t *d, const char *reason, double now, const snap_t *tot,
                          int64_t *dump_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db,
                           "INSERT INTO dump (process_id, seq, time, reason, inuse_bytes,"
                           " inuse_objects, alloc_bytes, alloc_objects, samples)"
                           " VALUES (?,?,?,?,?,?,?,?,?)",
                           -1, &st, 0))
        return -1;
    sqlite3_bind_int64(st, 1, d->process_id);
    sqlite3_bind_int64(st, 2, d->seq + 1);
    sqlite3_bind_double(st, 3, now);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, tot->alloc_bytes - tot->free_bytes);
    sqlite3_bind_int64(st, 6, objs(tot->alloc_wfp - tot->free_wfp));
    sqlite3_bind_int64(st, 7, tot->alloc_bytes);
    sqlite3_bind_int64(st, 8, objs(tot->alloc_wfp));
    sqlite3_bind_int64(st, 9, tot->samples);
    int rc = step_done(st);
    sqlite3_finalize(st);
    *dump_id = sqlite3_last_insert_rowid(d->db);
    return rc;
}

static int write_buckets(ap_db_t *d, int64_t dump_id, snap_t *snap, uint32_t n)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT INTO bucket VALUES (?,?,?,?,?,?,?,?,?)", -1, &st, 0))
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        ap_bucket_t *b = ap_bucket_at(i);
        snap_t *s = &snap[i];
        if (s->alloc_wfp == b->w_alloc_wfp && s->free_wfp == b->w_free_wfp &&
            s->samples == b->w_samples && s->alloc_bytes == b->w_alloc_bytes &&
            s->free_bytes == b->w_free_bytes)
            continue;
        sqlite3_bind_int64(st, 1, dump_id);
        sqlite3_bind_int64(st, 2, b->stack_id);
        sqlite3_bind_int64(st, 3, b->tid);
        sqlite3_bind_int64(st, 4, objs(s->alloc_wfp));
        sqlite3_bind_int64(st, 5, s->alloc_bytes);
        sqlite3_bind_int64(st, 6, objs(s->free_wfp));
        sqlite3_bind_int64(st, 7, s->free_bytes);
        sqlite3_bind_int64(st, 8, s->alloc_class_bytes);
        sqlite3_bind_int64(st, 9, s->samples);
        rc = step_done(st);
    }
    sqlite3_finalize(st);
    return rc;
}

static void commit_written(snap_t *snap, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        ap_bucket_t *b = ap_bucket_at(i);
        b->w_alloc_wfp = snap[i].alloc_wfp;
        b->w_free_wfp = snap[i].free_wfp;
        b->w_samples = snap[i].samples;
        b->w_alloc_bytes = snap[i].alloc_bytes;
        b->w_free_bytes = snap[i].free_bytes;
    }
}

static int write_alloc_stats(ap_db_t *d, int64_t dump_id, const ap_stats_t *given)
{
    ap_stats_t *s = ap_malloc(sizeof *s);
    if (!s)
        return -1;
    if (given)
        memcpy(s, given, sizeof *s);
    else
        ap_stats_get(s);
    sqlite3_stmt *st;
    int rc = -1;
    if (sqlite3_prepare_v2(d->db, "INSERT INTO alloc_stats VALUES (?,?,?,?,?,?,?,?,?,?,?)", -1, &st,
                           0) == SQLITE_OK) {
        int64_t v[] = {dump_id,
                       s->inuse_bytes,
                       s->small_inuse_bytes,
                       s->large_inuse_bytes,
                       s->huge_inuse_bytes,
                       s->mapped_bytes,
                       s->free_bytes,
                       s->returned_bytes,
                       s->cached_bytes,
                       s->metadata_bytes,
                       s->released_total};
        for (int i = 0; i < 11; i++)
            sqlite3_bind_int64(st, i + 1, v[i]);
        rc = step_done(st);
        sqlite3_finalize(st);
    }
    if (rc == 0 && sqlite3_prepare_v2(d->db, "INSERT INTO class_stats VALUES (?,?,?,?,?,?,?,?)", -1,
                                      &st, 0) == SQLITE_OK) {
        for (uint32_t c = 1; c < s->nclasses && rc == 0; c++) {
            ap_class_stats_t *cs = &s->cls[c];
            if (!cs->spans && !cs->inuse_objs)
                continue;
            int64_t v[] = {
                dump_id,          c,         cs->size,      cs->inuse_objs, cs->cached_objs,
                cs->central_objs, cs->spans, cs->span_bytes};
            for (int i = 0; i < 8; i++)
                sqlite3_bind_int64(st, i + 1, v[i]);
            rc = step_done(st);
        }
        sqlite3_finalize(st);
    }
    ap_free(s);
    return rc;
}

/* VmRSS and VmHWM in bytes from /proc/self/status, through a guarded
 * descriptor: 0, or -1 when it cannot be read (no /proc, a sandbox). */
static int read_process_memory(int64_t *rss, int64_t *hwm)
{
    char buf[4096];
    if (read_proc_file("/proc/self/status", buf, sizeof buf) < 0)
        return -1;
    *rss = *hwm = -1;
    for (char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (!strncmp(l, "VmRSS:", 6))
            *rss = strtoll(l + 6, NULL, 10) * 1024;
        else if (!strncmp(l, "VmHWM:", 6))
            *hwm = strtoll(l + 6, NULL, 10) * 1024;
    }
    return *rss >= 0 && *hwm >= 0 ? 0 : -1;
}

static int write_process_memory(ap_db_t *d, int64_t dump_id)
{
    if (d->rss < 0)
        return 0; /* unknown: no row */
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(d->db, "INSERT INTO process_memory VALUES (?,?,?)", -1, &st, 0))
        return -1;
    sqlite3_bind_int64(st, 1, dump_id);
    sqlite3_bind_int64(st, 2, d->rss);
    sqlite3_bind_int64(st, 3, d->hwm);
    int rc = step_done(st);
    sqlite3_finalize(st);
    return rc;
}

static int write_all(ap_db_t *d, const char *reason, double now, bool at_exit,
                     const ap_peak_snap_t *at, snap_t *snap, uint32_t n)
{
    snap_t tot = {0};
    for (uint32_t i = 0; i < n; i++) {
        snap_t *s = &snap[i];
        if (at)
            *s = at->b[i];
        else
            ap_bucket_snap_read(ap_bucket_at(i), s);
        tot.alloc_wfp += s->alloc_wfp;
        tot.alloc_bytes += s->alloc_bytes;
        tot.free_wfp += s->free_wfp;
        tot.free_bytes += s->free_bytes;
        tot.samples += s->samples;
    }
    int64_t dump_id;
    if (write_mappings(d) || write_threads(d) || write_stacks(d) ||
        write_dump_row(d, reason, now, &tot, &dump_id) || write_buckets(d, dump_id, snap, n) ||
        write_alloc_stats(d, dump_id, at ? &at->stats : NULL) || write_process_memory(d, dump_id))
        return -1;
    if (at_exit) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(d->db, "UPDATE process SET end_time = ? WHERE id = ?", -1, &st, 0))
            return -1;
        sqlite3_bind_double(st, 1, now);
        sqlite3_bind_int64(st, 2, d->process_id);
        int rc = step_done(st);
        sqlite3_finalize(st);
        return rc;
    }
    return 0;
}

static int write_dump_once(ap_db_t *d, const char *reason, double now, bool at_exit,
                           const ap_peak_snap_t *at, char *err, size_t errlen)
{
    uint32_t n = at ? at->n : ap_bucket_count();
    snap_t *snap = ap_malloc((n ? n : 1) * sizeof *snap);
    if (!snap) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    uint32_t stacks_before = d->stacks_written;
    int rc = -1;
    if (exec(d, "BEGIN IMMEDIATE") != SQLITE_OK) {
        fail(d, err, errlen, "cannot lock the profile");
    } else if (write_all(d, reason, now, at_exit, at, snap, n) != 0 || exec(d, "COMMIT")) {
        fail(d, err, errlen, "cannot write a dump");
        exec(d, "ROLLBACK");
        d->stacks_written = stacks_before;
        d->map_adds = d->map_subs = 0;
    } else {
        commit_written(snap, n);
        d->seq++;
        rc = 0;
    }
    ap_free(snap);
    return rc;
}

/* One dump. When the program has closed or replaced one of the
 * connection's descriptors, the dump fails without touching them; the
 * connection is then reopened by the absolute path (dumps already written
 * are in the file) and the dump written once more. */
int ap_db_write_dump(ap_db_t *d, const char *reason, double now, bool at_exit,
                     const ap_peak_snap_t *at, char *err, size_t errlen)
{
    /* A descriptor of ours that the program closes while the dump runs (a
     * daemon's close loop) fails the dump without touching the program's
     * file; then it is written again on a new connection. */
    /* read before the loss count is taken: the program closing this file's
     * descriptor costs the dump its RSS, not its connection */
    if (read_process_memory(&d->rss, &d->hwm))
        d->rss = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        uint64_t lost = d->lost_mark = sleep_mark = host->fd_lost();
        char why[256];
        if (connect_db(d, why, sizeof why) != 0) {
            if (host->fd_lost() != lost)
                continue;
            snprintf(err, errlen, "cannot open the profile (%s)", why);
            return -2;
        }
        int rc = write_dump_once(d, reason, now, at_exit, at, err, errlen);
        disconnect(d);
        if (rc == 0 || host->fd_lost() == lost)
            return rc;
    }
    snprintf(err, errlen, "cannot write a dump: the program keeps closing the profile");
    return -1;
}

static void ap_db_close(ap_db_t *d)
{
    sqlite3_close(d->db);
    ap_free(d);
}

/* ---- the plugin's one exported symbol ---- */

__attribute__((visibility("default"))) const ap_writer_t *allocprof_writer_entry(const ap_host_t *h)
{
    static const ap_writer_t w = {ap_db_process_info, ap_db_open, ap_db_add_process,
                                  ap_db_write_dump, ap_db_close};
    host = h;
    return &w;
}
