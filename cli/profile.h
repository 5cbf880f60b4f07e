/*
 * profile.h — reading an allocprof profile database (schema/schema.sql).
 *
 * Design: a report opens the file read-only (ap_file_open), which checks
 * that it is an allocprof profile this command can read (SQLite header,
 * not truncated, the tables present, PRAGMA user_version <= 1) and loads the
 * small tables (process, dump, thread). A selection (process row, dump id)
 * then loads one dump's state (ap_profile_load): buckets are stored as
 * deltas, so the state at dump seq N is, per (stack_id, tid), the row of the
 * greatest seq <= N; the loader walks the process's dumps 1..N in order and
 * keeps the last row per key in a hash map. Stacks and mappings of the
 * process come with it. Every SQL statement uses bound parameters. Every
 * failure prints one "allocprof: <file>: <why>" line and returns an error.
 */
#ifndef AP_CLI_PROFILE_H
#define AP_CLI_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "schema_version.h" /* AP_SCHEMA_VERSION, generated from schema/schema.sql */
#include "util.h"

typedef struct ap_process {
    int64_t id, pid, ppid, parent_id; /* parent_id 0 when none */
    char *exe, *cmdline, *build_id;
    double start_time, end_time; /* end_time 0 when not set */
    int64_t rate;
} ap_process;

typedef struct ap_dump {
    int64_t id, process_id, seq;
    double time;
    char reason[16];
    int64_t inuse_bytes, inuse_objects, alloc_bytes, alloc_objects, samples;
} ap_dump;

typedef struct ap_thread {
    int64_t process_id, tid;
    char *name;
} ap_thread;

typedef struct ap_file {
    char *path;
    sqlite3 *db;
    ap_process *procs;
    size_t nprocs;
    ap_dump *dumps; /* by process_id, seq */
    size_t ndumps;
    ap_thread *threads;
    size_t nthreads;
    char *dump_why; /* why ap_select_dump chose its dump, when it chose (else NULL) */
} ap_file;

typedef struct ap_mapping {
    uint64_t start, end, file_offset, bias;
    char *path, *build_id; /* build_id NULL when none */
} ap_mapping;

struct ap_line;

typedef struct ap_stack {
    int64_t stack_id;
    uint32_t depth;
    uint64_t *frames; /* innermost first, return addresses */
    /* Filled by ap_sym_profile: the symbolic frames, inlined frames expanded,
     * innermost first. */
    const struct ap_line **sym;
    uint32_t nsym;
} ap_stack;

/* One symbolized address of a profile (see symbolize.h). */
typedef struct ap_addr {
    uint64_t addr;                /* the return address as recorded */
    int map;                      /* index in ap_profile.maps, -1 when none */
    const struct ap_line **lines; /* innermost first (shared, owned by the symbolizer) */
    uint32_t nlines;
} ap_addr;

/* The four figures every report works with. */
enum { AP_INUSE_BYTES, AP_INUSE_OBJECTS, AP_ALLOC_BYTES, AP_ALLOC_OBJECTS, AP_NMETRICS };

typedef struct ap_bucket {
    int64_t stack_id, tid;
    int64_t v[AP_NMETRICS];
    int64_t alloc_class_bytes, samples;
    const ap_stack *stack; /* NULL when the stack row is missing */
} ap_bucket;

typedef struct ap_profile {
    ap_file *file;
    const ap_process *proc;
    const ap_dump *dump;
    ap_bucket *buckets;
    size_t nbuckets;
    ap_stack *stacks; /* sorted by stack_id */
    size_t nstacks;
    ap_mapping *maps; /* sorted by start */
    size_t nmaps;
    ap_addr *addrs; /* every distinct frame address, after ap_sym_profile */
    size_t naddrs;
    ap_map addr_index; /* addr -> index in addrs */
} ap_profile;

/* Opens and validates a profile; prints the error and returns NULL. */
ap_file *ap_file_open(const char *path);
void ap_file_close(ap_file *f);

/* Splits "FILE@DUMP" (DUMP a dump id) unless FILE exists as given. Returns a
 * malloc'ed path; *dump is set to the id or -1. */
char *ap_split_dump_spec(const char *spec, int64_t *dump);

/* Selects a dump: dump_id >= 0 chooses that dump; otherwise process_id >= 0
 * chooses that process row, else the main process (ap_default_process), and
 * of its dumps the last, or with prefer_peak (reports on in-use figures) the
 * one with the most in use when the last holds less than AP_PREFER_PEAK_PCT %
 * of it (a program that frees everything at exit; memray's flame graph also
 * opens on the peak). f->dump_why says why. Prints the error and returns NULL
 * when there is none. AP_HELP_CHOICE says the same in the commands' --help. */
#define AP_PREFER_PEAK_PCT 90
#define AP_STR_(x) #x
#define AP_STR(x) AP_STR_(x)
#define AP_HELP_CHOICE                                                                             \
    "Default process: the one that allocated the most. Default dump: its last, or for\n"           \
    "in-use figures the one with the most in use when the last holds under " AP_STR(               \
        AP_PREFER_PEAK_PCT) "%\n"                                                                  \
                            "of it (a program that frees all at exit). The report says which it "  \
                            "took and why.\n"
const ap_dump *ap_select_dump(ap_file *f, int64_t process_id, int64_t dump_id, bool prefer_peak);
/* The main process: of those with dumps, the one that allocated the most
 * (a run of a shell or a launcher records many that allocate next to
 * nothing); the first row when none has a dump. */
int64_t ap_default_process(const ap_file *f);
size_t ap_processes_with_dumps(const ap_file *f);
/* The allocator's exact in-use bytes at a dump (alloc_stats): 1 and *out,
 * or 0 when the dump has none. */
int ap_dump_exact_inuse(ap_file *f, int64_t dump_id, int64_t *out);
/* The allocator's statistics at a dump (alloc_stats), in the table's column
 * order: inuse, small, large, huge, mapped, free, returned, cached,
 * metadata bytes, released_total. 1 found, 0 none (or no table), -1 error. */
#define AP_NSTATS 10
int ap_dump_alloc_stats(ap_file *f, int64_t dump_id, int64_t v[AP_NSTATS]);
/* The process's VmRSS and VmHWM when the dump was written (process_memory):
 * 1 found, 0 unknown (schema version 1, or /proc unreadable). */
int ap_dump_process_memory(ap_file *f, int64_t dump_id, int64_t *rss, int64_t *hwm);
/* The bucket rows one dump wrote itself (the buckets that changed since the
 * process's previous dump; each replaces its (stack, tid) state), with the
 * figures computed as ap_profile_load computes them; .stack is NULL. 0, or
 * -1 on a database error. *rows is malloc'd. */
int ap_dump_rows(ap_file *f, int64_t dump_id, ap_bucket **rows, size_t *n);
/* The stack row of a loaded profile with that id (NULL when none). */
const ap_stack *ap_find_stack(const ap_profile *p, int64_t id);
/* The process's last dump (NULL when it has none). */
const ap_dump *ap_last_dump(const ap_file *f, int64_t process_id);
/* The last dump with reason 'exit' of the process (NULL when none). */
const ap_dump *ap_exit_dump(const ap_file *f, int64_t process_id);
const ap_process *ap_find_process(const ap_file *f, int64_t process_id);
/* The name of a thread, or NULL. */
const char *ap_thread_name(const ap_file *f, int64_t process_id, int64_t tid);

/* Loads the state at dump d. Returns 0, or -1 after printing the error. */
int ap_profile_load(ap_file *f, const ap_dump *d, ap_profile *out);
void ap_profile_free(ap_profile *p);

/* Prints "allocprof: <path>: <why> (<sqlite message>)" for a failed call. */
void ap_db_error(const ap_file *f, const char *what);

/* In-use value of a metric (v[] already holds alloc - free). */
static inline int64_t ap_metric(const ap_bucket *b, int m)
{
    return b->v[m];
}

#endif
