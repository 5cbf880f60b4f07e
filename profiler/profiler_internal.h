/*
 * profiler_internal.h — types and cross-file functions of profiler/.
 *   sampler.c   configuration, per-thread state, intervals and weights
 *   unwind.c    stack capture: cached .eh_frame rules, libunwind as the fallback
 *   stack.c     the stack table
 *   bucket.c    buckets per (stack, thread) and the table of live sampled objects
 *   fdguard.c   the library's descriptors, out of the program's way and checked
 *   dump.c      dump triggers: writer thread, signal, interval, peak, exit, fork
 *   db_writer.c the SQLite writer (a private, hidden copy of SQLite)
 *
 * Memory: every table lives in our own mappings (ap_os_map) or comes from the
 * allocator's ap_* entry points, never through the sampled malloc, so the
 * profiler's own work is never profiled.
 * Locks: prof_lock (stack and bucket tables, thread list) and one lock per
 * live-table stripe; they are taken before any allocator lock, never after.
 */
#ifndef AP_PROFILER_INTERNAL_H
#define AP_PROFILER_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../alloc/alloc_internal.h"
#include "profiler.h"
#include "unwind_inline.h"

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

#define AP_MAX_DEPTH 256
#define AP_DEFAULT_DEPTH 64
#define AP_DEFAULT_RATE (512u * 1024u)
#define AP_WFP_SHIFT 8 /* weights are fixed point with 8 fraction bits */

/* ---- sampler.c ---- */

typedef struct {
    uint64_t rate;     /* mean bytes between samples; 1 = every allocation */
    int depth;         /* max frames per stack */
    double interval;   /* seconds between interval dumps, 0 = none */
    double peak;       /* dump when in-use grows by this fraction over the last peak, 0 = off */
    int signal;        /* dump request signal */
    uint64_t seed;     /* sampling seed; 0 = from the clock */
    char output[4096]; /* database path */
} ap_prof_config_t;

extern ap_prof_config_t ap_prof_cfg;
extern int ap_prof_decided; /* ap_prof_init has run */

typedef struct {
    uint64_t rng;
    uint32_t tid;
    uint8_t state; /* 0 new, 1 live */
    uint8_t busy;  /* inside the profiler: nested allocations are not sampled */
} ap_prof_thread_t;

extern AP_TLS ap_prof_thread_t ap_prof_tls;

int ap_sampler_config_from_env(ap_prof_config_t *cfg, char *err, size_t errlen);
int64_t ap_sampler_next_interval(void);
double ap_sampler_neg_ln(uint64_t x); /* -ln(x 2^-53), x in [1, 2^53] */
uint64_t ap_sampler_weight_fp(size_t n);
uint32_t ap_prof_tid(void);
int ap_parse_size(const char *s, uint64_t *out);

/* ---- unwind.c ---- */

int ap_unwind_init(const char *how, char *err, size_t errlen); /* how: ALLOCPROF_UNWIND */
/* Where a walk starts (ap_unwind_ctx_t, unwind_inline.h): a function's own
 * ip, sp and rbp, taken with AP_UNWIND_HERE. Valid until that function
 * returns. ap_unwind_capture is inline there. */
#define AP_UNWIND_HERE(c)                                                                          \
    __asm__ volatile("lea 1f(%%rip), %0\n1:\n\tmov %%rsp, %1\n\tmov %%rbp, %2"                     \
                     : "=r"((c).ip), "=r"((c).sp), "=r"((c).bp))
void ap_unwind_fork_wait(void); /* fork: wait for slow unwinds in flight, hold new ones */
void ap_unwind_fork_done(void);
void ap_unwind_report(void);          /* ALLOCPROF_UNWIND=check: the tally, on stderr */
bool ap_unwind_is_self(uintptr_t ip); /* ip is in liballocprof.so's code */

/* ---- stack.c ---- */

int ap_stack_init(char *err, size_t errlen);
uint64_t ap_stack_hash(const uint64_t *frames, int depth);
/* Intern a stack (hash = ap_stack_hash): its id, or UINT32_MAX when the table
 * is full. prof_lock held. */
uint32_t ap_stack_intern_locked(const uint64_t *frames, int depth, uint64_t hash);
uint32_t ap_stack_count(void);
const uint64_t *ap_stack_frames(uint32_t id, int *depth);

/* ---- bucket.c ---- */

typedef struct {
    uint32_t stack_id;
    uint32_t tid;
    _Atomic int64_t alloc_wfp; /* objects, fixed point */
    _Atomic int64_t alloc_bytes;
    _Atomic int64_t alloc_class_bytes;
    _Atomic int64_t free_wfp;
    _Atomic int64_t free_bytes;
    _Atomic int64_t samples;
    /* last values written to the database (dump.c only) */
    int64_t w_alloc_wfp, w_free_wfp, w_samples, w_alloc_bytes, w_free_bytes;
} ap_bucket_t;

typedef struct {
    uint32_t tid;
    char name[16];
    bool written;
} ap_thread_rec_t;

#define AP_MAX_BUCKETS (1u << 22)

extern ap_lock_t ap_prof_lock;
extern _Atomic int64_t ap_prof_inuse_bytes; /* estimate, kept only for peak dumps */
extern _Atomic uint64_t ap_prof_dropped;    /* samples lost to full tables */

int ap_bucket_init(void);
uint32_t ap_bucket_get_locked(uint32_t stack_id, uint32_t tid);
extern ap_bucket_t *ap_buckets;
static inline ap_bucket_t *ap_bucket_at(uint32_t idx)
{
    return &ap_buckets[idx];
}
uint32_t ap_bucket_count(void);

/* Live samples are kept with their objects: the allocator holds each one's
 * record (ap_tag: in the object's span, or in a table under a lock striped
 * by span), which
 * also sends the object's free down the slow path. A counting filter over
 * their addresses answers "certainly not sampled" for most other frees that
 * reach the slow path (page neighbours, large blocks) without that lock.
 * 32-bit counts cannot overflow: a slot would need 2^32 live samples. */
#define AP_LIVE_FILTER_BITS 16
extern _Atomic uint32_t ap_live_filter[1u << AP_LIVE_FILTER_BITS];

static inline _Atomic uint32_t *ap_live_filter_slot(uintptr_t p)
{
    return &ap_live_filter[(uint32_t)((p >> 4) * 0x9E3779B97F4A7C15ull >>
                                      (64 - AP_LIVE_FILTER_BITS))];
}

/* false: certainly not a live sample */
static inline bool ap_live_maybe(uintptr_t p)
{
    return atomic_load_explicit(ap_live_filter_slot(p), memory_order_acquire) != 0;
}

/* A live sample's record as the allocator keeps it (ap_tag): {bucket |
 * class bytes << 32, size, weight}. */
static inline void ap_live_pack(const ap_live_t *rec, uint64_t w[AP_TAG_WORDS])
{
    w[0] = (uint64_t)rec->bucket | (uint64_t)rec->class_bytes << 32;
    w[1] = rec->size;
    w[2] = rec->wfp;
}
static inline void ap_live_unpack(uintptr_t ptr, const uint64_t w[AP_TAG_WORDS], ap_live_t *out)
{
    *out = (ap_live_t){ptr, (uint32_t)w[0], (uint32_t)(w[0] >> 32), w[1], w[2]};
}

static inline bool ap_live_insert(const ap_live_t *rec)
{
    uint64_t w[AP_TAG_WORDS];
    ap_live_pack(rec, w);
    if (!ap_tag((void *)rec->ptr, w)) {
        atomic_fetch_add_explicit(&ap_prof_dropped, 1, memory_order_relaxed);
        return false;
    }
    atomic_fetch_add_explicit(ap_live_filter_slot(rec->ptr), 1, memory_order_release);
    return true;
}

static inline bool ap_live_remove(uintptr_t ptr, ap_live_t *out)
{
    uint64_t w[AP_TAG_WORDS];
    if (!ap_live_maybe(ptr) || !ap_untag((const void *)ptr, w))
        return false;
    atomic_fetch_sub_explicit(ap_live_filter_slot(ptr), 1, memory_order_release);
    ap_live_unpack(ptr, w, out);
    return true;
}

void ap_thread_note_locked(uint32_t tid);
uint32_t ap_thread_count(void);
ap_thread_rec_t *ap_thread_at(uint32_t i);
void ap_bucket_fork_prepare(void);
void ap_bucket_fork_parent(void);
void ap_bucket_fork_child(void);

/* ---- fdguard.c ---- */

int ap_fd_adopt(int fd);   /* move high, CLOEXEC, remember: the new number, or -1 (fd closed) */
int ap_fd_check(int fd);   /* 0 while fd is still the library's; else -1, EBADF, forgotten */
int ap_fd_close(int fd);   /* close it if still ours; forget it */
uint64_t ap_fd_lost(void); /* checks all of ours; how many the program has closed or replaced */
uint64_t ap_fd_lost_count(void); /* the same count, without checking */
void ap_fd_fork_child(void);
int ap_fd_guard_imports(void *dl_handle); /* a dlopen'ed library's libc calls go through us */

/* ---- dump.c ---- */

void ap_dump_request_peak(void);
/* Work the dump layer leaves for a sample (a safe place): bits below. */
#define AP_ATTN_RESTART 1  /* a new process (fork, raw clone): own connection */
#define AP_ATTN_START 2    /* start the dump thread (a request came) */
#define AP_ATTN_INTERVAL 4 /* start it once the first interval is due */
#define AP_ATTN_SAY 8      /* print what the dump thread could not (dump.c, say) */
void ap_dump_attend(void);

/* ---- db_writer.c ---- */

typedef struct ap_db ap_db_t;

typedef struct {
    int pid, ppid;
    double start_time;
    uint64_t rate;
    char exe[4096];
    char build_id[41];
    char *cmdline_json; /* ap_malloc'd */
    char *suppressions; /* what the program's __lsan_default_suppressions returns; ap_malloc'd */
} ap_process_info_t;

/* One bucket's cumulative counters at one instant. */
typedef struct {
    int64_t alloc_wfp, alloc_bytes, alloc_class_bytes, free_wfp, free_bytes, samples;
} ap_bucket_snap_t;

static inline void ap_bucket_snap_read(ap_bucket_t *b, ap_bucket_snap_t *s)
{
    s->alloc_wfp = atomic_load_explicit(&b->alloc_wfp, memory_order_relaxed);
    s->alloc_bytes = atomic_load_explicit(&b->alloc_bytes, memory_order_relaxed);
    s->alloc_class_bytes = atomic_load_explicit(&b->alloc_class_bytes, memory_order_relaxed);
    s->free_wfp = atomic_load_explicit(&b->free_wfp, memory_order_relaxed);
    s->free_bytes = atomic_load_explicit(&b->free_bytes, memory_order_relaxed);
    s->samples = atomic_load_explicit(&b->samples, memory_order_relaxed);
}

/* The profile as it stood at a peak (dump.c takes it in the allocating
 * thread the moment the estimate passes the mark; the writer writes it
 * later): buckets 0..n-1 and the allocator's statistics of that instant. */
typedef struct {
    double time;
    uint32_t n;
    ap_stats_t stats;
    ap_bucket_snap_t b[];
} ap_peak_snap_t;

/* In the writer plugin (writer_api.h). All return 0 or -1 with a message in err. */
void ap_db_process_info(ap_process_info_t *pi, double now);
int ap_db_open(ap_db_t **db, const char *path, char *err, size_t errlen);
int ap_db_add_process(ap_db_t *db, const ap_process_info_t *pi, char *err, size_t errlen);
int ap_db_write_dump(ap_db_t *db, const char *reason, double now, bool at_exit,
                     const ap_peak_snap_t *at, char *err, size_t errlen);

#pragma GCC visibility pop

#endif
