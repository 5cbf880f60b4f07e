/*
 * sampler.c — byte sampling, in the line of Go's runtime/mprof.go and
 * tcmalloc's sampler (docs/sampling.md has the derivation).
 *
 * Each thread counts down the bytes it allocates (sampler_inline.h). When the
 * countdown crosses zero, the allocation that crossed it is sampled and a new
 * countdown is drawn from an exponential distribution with mean `rate`
 * (default 512 KiB). Sampling by bytes this way picks an allocation of n
 * bytes with probability p(n) = 1 - exp(-n / rate), independently of the
 * others, so weighting each sample by w(n) = 1 / p(n) makes the estimates
 * unbiased: E[sum of w over sampled objects] = number of objects, and
 * E[sum of w * n] = bytes. We unbias at sampling time, then aggregate
 * (jemalloc's order), keeping w in fixed point (x256) per live sample so a
 * free subtracts exactly what its allocation added. rate = 1 samples every
 * allocation with w = 1 (an exact trace); rate = 0 turns sampling off.
 *
 * The countdown is charged with requested bytes; zero-byte requests are never
 * sampled. The profiler's own allocations (nested inside a sample) set
 * `busy` and are never sampled.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "../schema/frames.h"
#include "dump_protocol.h"
#include "profiler_internal.h"

AP_HIDDEN AP_TLS int64_t ap_sample_left;
AP_HIDDEN AP_TLS ap_prof_thread_t ap_prof_tls;
AP_HIDDEN ap_prof_config_t ap_prof_cfg;
AP_HIDDEN int ap_prof_active;
AP_HIDDEN int ap_prof_decided;

/* ---- configuration ---- */

int ap_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return -1;
    double mult = 1;
    switch (*end) {
    case 'k':
    case 'K':
        mult = 1024.0;
        end++;
        break;
    case 'm':
    case 'M':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'g':
    case 'G':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || v * mult > 9.0e18)
        return -1;
    *out = (uint64_t)(v * mult + 0.5);
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* Reads ALLOCPROF_* variables. Profiling is on only when ALLOCPROF_OUTPUT is
 * set (the bare library is an allocator). Returns 1 when on, 0 when off, -1
 * on a bad value (message in err). */
int ap_sampler_config_from_env(ap_prof_config_t *cfg, char *err, size_t errlen)
{
    const char *v;
    cfg->rate = AP_DEFAULT_RATE;
    cfg->depth = AP_DEFAULT_DEPTH;
    cfg->interval = 0;
    cfg->peak = 0;
    cfg->signal = AP_DUMP_SIGNAL_DEFAULT;
    cfg->seed = 0;
    cfg->output[0] = 0;
    if ((v = getenv("ALLOCPROF_RATE")) && *v && ap_parse_size(v, &cfg->rate) != 0) {
        snprintf(err, errlen, "ALLOCPROF_RATE=%s: not a size (examples: 1, 4096, 512K, 2M)", v);
        return -1;
    }
    if ((v = getenv("ALLOCPROF_INTERVAL")) && *v && parse_double(v, &cfg->interval) != 0) {
        snprintf(err, errlen, "ALLOCPROF_INTERVAL=%s: not a number of seconds", v);
        return -1;
    }
    if ((v = getenv("ALLOCPROF_PEAK")) && *v && parse_double(v, &cfg->peak) != 0) {
        snprintf(err, errlen, "ALLOCPROF_PEAK=%s: not a growth fraction (example: 0.1)", v);
        return -1;
    }
    if ((v = getenv("ALLOCPROF_DEPTH")) && *v) {
        int d = atoi(v);
        if (d < 1 || d > AP_MAX_DEPTH) {
            snprintf(err, errlen, "ALLOCPROF_DEPTH=%s: must be 1..%d", v, AP_MAX_DEPTH);
            return -1;
        }
        cfg->depth = d;
    }
    if ((v = getenv("ALLOCPROF_SIGNAL")) && *v) {
        int s = atoi(v);
        if (s < 1 || s > SIGRTMAX) {
            snprintf(err, errlen, "ALLOCPROF_SIGNAL=%s: not a signal number", v);
            return -1;
        }
        cfg->signal = s;
    }
    if ((v = getenv("ALLOCPROF_SEED")) && *v) {
        char *end;
        errno = 0;
        cfg->seed = strtoull(v, &end, 0);
        if (*end || errno || cfg->seed == 0 || *v == '-') {
            snprintf(err, errlen, "ALLOCPROF_SEED=%s: not a positive integer", v);
            return -1;
        }
    }
    v = getenv("ALLOCPROF_OUTPUT");
    if (!v || !*v || cfg->rate == 0)
        return 0;
    if (strlen(v) >= sizeof cfg->output) {
        snprintf(err, errlen, "ALLOCPROF_OUTPUT: path too long");
        return -1;
    }
    strcpy(cfg->output, v);
    return 1;
}

/* ---- math without libm ----
 * The library avoids libm: linking it costs every profiled program ~300 KB
 * of RSS. These are accurate to ~1e-12 relative over the ranges used. */

/* ln(c) for c in [1, 2), to double precision: ln c = 2 atanh(s) = 2 (s +
 * s^3/3 + s^5/5 + ...), s = (c - 1) / (c + 1) <= 1/3, summed until the terms
 * vanish. Only the interval table below is built with it. */
static double ln_1_2(double c)
{
    double s = (c - 1) / (c + 1), z = s * s, t = s, sum = 0;
    for (int k = 1; k < 80 && t > 1e-18; k += 2, t *= z)
        sum += t / k;
    return 2 * sum;
}

/* -ln(x 2^-53) for an integer x in [1, 2^53]: the sampling interval's log,
 * by table. x = 2^e m, m in [1, 2); the top 7 bits of m pick c = 1 + (i +
 * 1/2)/128, and ln m = ln c + ln(1 + r), r = m/c - 1, |r| < 1/256, so three
 * terms of the series leave an error below r^4/4 < 6e-11. ~20 instructions
 * and no division. */
#define LN_TAB 128
static double ln_c[LN_TAB], inv_c[LN_TAB];

__attribute__((constructor)) static void ln_tables(void)
{
    for (int i = 0; i < LN_TAB; i++) {
        double c = 1 + (i + 0.5) / LN_TAB;
        ln_c[i] = ln_1_2(c);
        inv_c[i] = 1 / c;
    }
}

static inline __attribute__((always_inline)) double neg_ln(uint64_t x)
{
    union {
        double d;
        uint64_t u;
    } v = {(double)x}; /* exact: x <= 2^53 */
    int e = (int)(v.u >> 52) - 1023;
    unsigned i = (unsigned)(v.u >> (52 - 7)) & (LN_TAB - 1);
    v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1, 2) */
    double r = v.d * inv_c[i] - 1;
    double ln_m = ln_c[i] + r * (1 - r * (0.5 - r * (1.0 / 3)));
    return (53 - e) * 0.6931471805599453 - ln_m;
}

double ap_sampler_neg_ln(uint64_t x)
{
    return neg_ln(x);
}

/* 1 - exp(-x) for x >= 0, without cancellation for small x. Relative error
 * below 3e-10 (weights are kept to 1/256). */
static double ap_one_minus_exp_neg(double x)
{
    if (x > 40)
        return 1.0;
    if (x < 0.5) { /* x (1 - x/2 (1 - x/3 (1 - ... x/10))): error < x^11/11! */
        double p = 1 - x / 10;
        for (int k = 9; k >= 2; k--)
            p = 1 - x / k * p;
        return x * p;
    }
    int k = (int)(x * 1.4426950408889634); /* exp(-x) = 2^-k exp(-r), r in [0, ln 2) */
    double r = x - k * 0.6931471805599453, e = 1 - r / 13;
    for (int i = 12; i >= 1; i--)
        e = 1 - r / i * e;
    while (k-- > 0)
        e *= 0.5;
    return 1 - e;
}

/* ---- per-thread state, intervals, weights ---- */

uint32_t ap_prof_tid(void)
{
    if (!ap_prof_tls.tid)
        ap_prof_tls.tid = (uint32_t)syscall(SYS_gettid);
    return ap_prof_tls.tid;
}

static uint64_t rng_next(void)
{
    uint64_t x = ap_prof_tls.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return ap_prof_tls.rng = x;
}

static inline __attribute__((always_inline)) int64_t next_interval(void)
{
    uint64_t rate = ap_prof_cfg.rate;
    if (rate <= 1)
        return 0;
    /* u = x 2^-53 uniform in (0, 1]: 53 random bits; rate < 2^63 (ap_parse_size) */
    double x = neg_ln((rng_next() >> 11) + 1) * (double)(int64_t)rate;
    if (x > 4.0e18)
        x = 4.0e18;
    return (int64_t)x;
}

int64_t ap_sampler_next_interval(void)
{
    return next_interval();
}

static inline __attribute__((always_inline)) uint64_t weight_fp(size_t n)
{
    uint64_t rate = ap_prof_cfg.rate;
    if (rate <= 1)
        return 1u << AP_WFP_SHIFT;
    /* n and rate < 2^63: signed conversions, one instruction each */
    double x = (double)(int64_t)n / (double)(int64_t)rate, w;
    if (ap_likely(
            x <
            0.25)) /* Laurent series: 1/x + 1/2 + x/12 - x^3/720, next term x^5/30240 < 1e-8 w */
        w = 1.0 / x + 0.5 + x * (1.0 / 12 - x * x * (1.0 / 720));
    else
        w = 1.0 / ap_one_minus_exp_neg(x);
    return (uint64_t)(w * (1u << AP_WFP_SHIFT) + 0.5);
}

uint64_t ap_sampler_weight_fp(size_t n)
{
    return weight_fp(n);
}

/* Each thread's generator: seeded from the clock, or with ALLOCPROF_SEED
 * from the seed and the thread's place in the order threads first sample
 * (reproducible runs of a deterministic program: tests, benchmarks). */
static void thread_setup(void)
{
    static _Atomic uint64_t ordinal;
    uint64_t seed;
    if (ap_prof_cfg.seed) {
        uint64_t z = ap_prof_cfg.seed + atomic_fetch_add(&ordinal, 1) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; /* splitmix64's finaliser */
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        seed = z ^ (z >> 31);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ ((uint64_t)ap_prof_tid() << 32) ^
               (uint64_t)(uintptr_t)&ap_prof_tls;
    }
    ap_prof_tls.rng = seed ? seed : 0x2545F4914F6CDD1Dull;
    ap_prof_tls.state = 1;
}

/* ---- the sample ---- */

static uint32_t clamp32(size_t u)
{
    return u > UINT32_MAX ? UINT32_MAX : (uint32_t)u;
}

/* ap_usable_size with the small-class case inline (the sample's path) */
static uint32_t class_bytes_of(const void *p, size_t n)
{
    uint32_t c = ap_pagemap_class(p) & ~(uint32_t)AP_CLASS_FLAG;
    size_t u = c ? ap_class_size[c] : ap_usable_size(p);
    return clamp32(u ? u : n);
}

/* A per-thread memo of recent stacks: hash -> bucket. A hit (same thread id,
 * the bucket's stack has exactly these frames) skips prof_lock and both table
 * lookups. Entries never go stale: stacks and buckets are never removed. A
 * forked child has a new thread id, so the parent's entries miss there. */
#define MEMO 16
typedef struct {
    uint64_t hash;
    uint32_t bucket;
    uint32_t tid;
} memo_t;
static AP_TLS memo_t memo[MEMO];

/* The bucket of this thread's last recorded stack, by the unwinder's walk id:
 * a repeat walk needs neither the hash nor the memo's frame compare. */
static AP_TLS struct {
    uint64_t id;
    uint32_t bucket, tid;
} last_walk;

static uint32_t memo_find(uint64_t hash, uint32_t tid, const uint64_t *frames, int depth)
{
    const memo_t *m = &memo[hash % MEMO];
    if (m->hash != hash || m->tid != tid)
        return UINT32_MAX;
    int d;
    const uint64_t *f = ap_stack_frames(ap_bucket_at(m->bucket)->stack_id, &d);
    if (d != depth)
        return UINT32_MAX;
    for (int i = 0; i < depth; i++)
        if (f[i] != frames[i])
            return UINT32_MAX;
    return m->bucket;
}

/* bucket_here's lookup when the walk is not the thread's last one: the memo,
 * then the tables under prof_lock. */
static __attribute__((noinline)) uint32_t bucket_lookup(const uint64_t *frames, int depth,
                                                        uint32_t tid)
{
    uint64_t hash = ap_stack_hash(frames, depth);
    uint32_t b = memo_find(hash, tid, frames, depth);
    if (b != UINT32_MAX)
        return b;
    ap_lock(&ap_prof_lock);
    uint32_t sid = ap_stack_intern_locked(frames, depth, hash);
    b = sid == UINT32_MAX ? UINT32_MAX : ap_bucket_get_locked(sid, tid);
    if (b != UINT32_MAX)
        ap_thread_note_locked(tid);
    ap_unlock(&ap_prof_lock);
    if (b == UINT32_MAX) {
        atomic_fetch_add_explicit(&ap_prof_dropped, 1, memory_order_relaxed);
        return UINT32_MAX;
    }
    memo[hash % MEMO] = (memo_t){hash, b, tid};
    return b;
}

/* The bucket of this thread's current stack (walked from `from`), or
 * UINT32_MAX when the tables are full (the sample is dropped). */
static inline __attribute__((always_inline)) uint32_t bucket_here(const ap_unwind_ctx_t *from)
{
    uint64_t frames[AP_MAX_DEPTH + 1];
    uint32_t tid = ap_prof_tid();
    /* the unwinder skips copying frames it knows this thread recorded last */
    uint64_t known = tid == last_walk.tid ? last_walk.id : 0, walk_id = known;
    /* one frame more than kept: when it is there, the stack was cut, and its
     * place holds the mark (schema/frames.h) */
    int depth = ap_unwind_capture(frames, ap_prof_cfg.depth + 1, from, &walk_id);
    if (depth > ap_prof_cfg.depth)
        frames[ap_prof_cfg.depth] = AP_FRAME_TRUNCATED;
    uint32_t b;
    if (ap_likely(walk_id && walk_id == known))
        b = last_walk.bucket; /* the very stack this thread recorded last time */
    else if ((b = bucket_lookup(frames, depth, tid)) == UINT32_MAX)
        return UINT32_MAX;
    last_walk.id = walk_id;
    last_walk.bucket = b;
    last_walk.tid = tid;
    return b;
}

/* An allocation of n bytes (class_bytes usable) with weight wfp, into
 * bucket b. Returns its weighted requested bytes. */
static inline __attribute__((always_inline)) int64_t count_alloc(uint32_t b, uint64_t wfp, size_t n,
                                                                 uint32_t class_bytes)
{
    ap_bucket_t *bk = ap_bucket_at(b);
    int64_t bytes = (int64_t)((wfp * (unsigned __int128)n) >> AP_WFP_SHIFT);
    int64_t cbytes = (int64_t)((wfp * (unsigned __int128)class_bytes) >> AP_WFP_SHIFT);
    atomic_fetch_add_explicit(&bk->alloc_wfp, (int64_t)wfp, memory_order_relaxed);
    atomic_fetch_add_explicit(&bk->alloc_bytes, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&bk->alloc_class_bytes, cbytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&bk->samples, 1, memory_order_relaxed);
    return bytes;
}

static inline __attribute__((always_inline)) void record(void *p, size_t n,
                                                         const ap_unwind_ctx_t *from)
{
    uint32_t b = bucket_here(from);
    if (b == UINT32_MAX)
        return;
    ap_live_t rec = {(uintptr_t)p, b, class_bytes_of(p, n), n, weight_fp(n)};
    int64_t bytes = count_alloc(b, rec.wfp, n, rec.class_bytes);
    ap_live_insert(&rec);
    if (ap_prof_cfg.peak > 0) { /* the in-use total serves peak dumps only */
        atomic_fetch_add_explicit(&ap_prof_inuse_bytes, bytes, memory_order_relaxed);
        ap_dump_request_peak();
    }
}

/* From the malloc slow path (no allocator lock held), when the dump layer
 * has work: the interval's dump thread is due, or a request could not start
 * it in its signal handler. Samples come too rarely for that (a program
 * allocating 1 MB/s samples about twice a second at the default rate). */
void ap_prof_attend(void)
{
    ap_prof_thread_t *t = &ap_prof_tls;
    if (!ap_prof_active || t->busy)
        return;
    t->busy = 1;
    ap_dump_attend();
    t->busy = 0;
}

void *ap_prof_sampled(void *p, size_t n)
{
    ap_prof_thread_t *t = &ap_prof_tls;
    if (ap_unlikely(!ap_prof_active)) {
        /* before ap_prof_init has decided, keep coming back here */
        ap_sample_left = ap_prof_decided ? INT64_MAX / 2 : 0;
        return p;
    }
    if (ap_unlikely(t->state == 0)) {
        thread_setup();
        if (ap_prof_cfg.rate > 1) {
            ap_sample_left = ap_sampler_next_interval();
            return p; /* the zero start of the countdown is not a sample */
        }
    }
    if (t->busy || !p) {
        ap_sample_left = ap_sampler_next_interval();
        return p;
    }
    t->busy = 1;
    if (ap_unlikely(atomic_load_explicit(&ap_dump_attention, memory_order_relaxed)))
        ap_dump_attend();
    ap_unwind_ctx_t here; /* the walk starts in this frame, not three calls deeper */
    AP_UNWIND_HERE(here);
    record(p, n, &here);
    ap_sample_left = next_interval();
    t->busy = 0;
    return p;
}

/* A free of size bytes with weight wfp from bucket b. Returns its weighted bytes. */
static inline __attribute__((always_inline)) int64_t count_free(uint32_t b, uint64_t wfp,
                                                                size_t size)
{
    ap_bucket_t *bk = ap_bucket_at(b);
    int64_t bytes = (int64_t)((wfp * (unsigned __int128)size) >> AP_WFP_SHIFT);
    atomic_fetch_add_explicit(&bk->free_wfp, (int64_t)wfp, memory_order_relaxed);
    atomic_fetch_add_explicit(&bk->free_bytes, bytes, memory_order_relaxed);
    return bytes;
}

void ap_prof_count_free(const ap_live_t *rec)
{
    int64_t bytes = count_free(rec->bucket, rec->wfp, rec->size);
    if (ap_prof_cfg.peak > 0)
        atomic_fetch_sub_explicit(&ap_prof_inuse_bytes, bytes, memory_order_relaxed);
}

bool ap_prof_take(void *p, ap_live_t *rec)
{
    return p && ap_live_remove((uintptr_t)p, rec);
}

void ap_prof_put_back(const ap_live_t *rec)
{
    ap_live_insert(rec);
}

/* p, possibly sampled, was resized in place to n bytes. The block keeps its
 * sampling decision: when it is sampled, its record moves to this stack's
 * bucket at the new size with the same weight, and the resize counts as a
 * free of the old size (old bucket) plus an allocation of the new (this
 * bucket). The weight 1/p(n0) came with the probability p(n0) that this
 * block is sampled at all, so each such event's expected count is 1:
 * unbiased, with no new draw (docs/sampling.md). */
void ap_prof_resized(void *p, size_t n)
{
    ap_prof_thread_t *t = &ap_prof_tls;
    if (!ap_live_maybe((uintptr_t)p))
        return;
    uint32_t b = UINT32_MAX;
    if (!t->busy && t->state) {
        t->busy = 1;
        ap_unwind_ctx_t here;
        AP_UNWIND_HERE(here);
        b = bucket_here(&here);
        t->busy = 0;
    }
    ap_live_t old;
    if (b == UINT32_MAX) { /* no stack (tables full, or inside the profiler): the sample ends */
        if (ap_prof_take(p, &old))
            ap_prof_count_free(&old);
        return;
    }
    ap_span_t *s = ap_pagemap_span(p); /* p was just resized: ours, with its span */
    if (!s)
        return;
    /* the record's bucket, class bytes and size change; its weight stays */
    const ap_live_t now = {(uintptr_t)p, b, clamp32(ap_span_obj_size(s)), n, 0};
    uint64_t in[AP_TAG_WORDS], w[AP_TAG_WORDS];
    ap_live_pack(&now, in);
    if (!ap_pageheap_retag(s, p, in, 2, w))
        return; /* not sampled after all */
    ap_live_unpack((uintptr_t)p, w, &old);
    int64_t freed = count_free(old.bucket, old.wfp, old.size);
    int64_t bytes = count_alloc(b, old.wfp, n, now.class_bytes);
    if (ap_prof_cfg.peak > 0) {
        atomic_fetch_add_explicit(&ap_prof_inuse_bytes, bytes - freed, memory_order_relaxed);
        ap_dump_request_peak();
    }
}

void ap_prof_free(void *p)
{
    ap_live_t rec;
    if (ap_prof_take(p, &rec))
        ap_prof_count_free(&rec);
}
