/* bench.h — helpers shared by the allocator workloads in bench/.
 *
 * Each workload is a plain program that calls malloc and friends; the allocator under test is
 * swapped in with LD_PRELOAD, so nothing here knows which one runs. This header gives them:
 * a constant-seeded PRNG (splitmix64 seeding, xorshift64* stream), a monotonic clock, the scale
 * argument (argv[1] or BENCH_SCALE, default 1.0), block patterns that are written after malloc
 * and verified before free, a loud failure path, and the final machine-readable line:
 *
 *     RESULT name=<workload> key=value ...
 *
 * which bench/run parses. The checksum printed there is derived from the data only (never from
 * addresses), so it is the same under every allocator; bench/run checks that they agree.
 */
#ifndef AP_BENCH_H
#define AP_BENCH_H

#define _GNU_SOURCE

#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#define BM_PAGE 4096

static const char *bm_name = "bench";

/* Prints "bench_<name>: FAIL: <message>" on stderr and exits with status 1. Only the first
 * thread to fail reports; any other waits for the exit. */
static inline void bm_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static inline void bm_fail(const char *fmt, ...)
{
    static atomic_flag failing = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&failing))
        for (;;)
            pause();
    va_list ap;
    fprintf(stderr, "bench_%s: FAIL: ", bm_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* --- PRNG -------------------------------------------------------------------------------- */

/* splitmix64: a good 64-bit mixing function; used to seed streams and derive block tags. */
static inline uint64_t bm_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    uint64_t s;
} bm_rng;

static inline bm_rng bm_rng_seed(uint64_t seed)
{
    bm_rng r = {bm_mix(seed) | 1};
    return r;
}

/* xorshift64*: fast, full period over non-zero states. */
static inline uint64_t bm_next(bm_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n), n < 2^32, by multiply-shift (no division on the hot path). */
static inline uint32_t bm_below(bm_rng *r, uint32_t n)
{
    return (uint32_t)(((bm_next(r) >> 32) * (uint64_t)n) >> 32);
}

/* Roughly log-uniform in [lo, hi]: pick a power of two, then a uniform offset within it. */
static inline size_t bm_log_uniform(bm_rng *r, size_t lo, size_t hi)
{
    unsigned lo_bit = 63 - (unsigned)__builtin_clzll(lo);
    unsigned hi_bit = 63 - (unsigned)__builtin_clzll(hi);
    unsigned e = lo_bit + bm_below(r, hi_bit - lo_bit + 1);
    size_t base = (size_t)1 << e;
    size_t n = base + (bm_next(r) & (base - 1));
    return n < lo ? lo : n > hi ? hi : n;
}

/* --- time, scale, memory ------------------------------------------------------------------ */

static inline uint64_t bm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Names the workload and returns its scale: argv[1] if given, else $BENCH_SCALE, else 1.0.
 * Work (and, where it matters, the live set) is multiplied by the scale; the smoke tests
 * use about 0.01. */
static inline double bm_init(const char *name, int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : getenv("BENCH_SCALE");
    bm_name = name;
    if (!s || !*s)
        return 1.0;
    char *end;
    double scale = strtod(s, &end);
    if (*end || !(scale > 0.0) || scale > 1000.0) {
        fprintf(stderr, "usage: bench_%s [SCALE]  (SCALE a number > 0, default 1)\n", name);
        exit(2);
    }
    return scale;
}

/* base * scale, at least min. */
static inline uint64_t bm_scaled(uint64_t base, double scale, uint64_t min)
{
    double v = (double)base * scale;
    return v < (double)min ? min : (uint64_t)v;
}

/* Number of online CPUs ("all cores"); $BENCH_THREADS overrides. */
static inline int bm_ncpu(void)
{
    const char *s = getenv("BENCH_THREADS");
    long n = s ? strtol(s, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 1024 ? 1024 : (int)n;
}

/* Pins a thread to the k-th CPU (modulo their number) this process may run on. Threaded
 * workloads pin so that the scheduler cannot park two busy threads on one core for a while,
 * which makes run times bimodal. Failure is harmless and ignored. */
static inline void bm_pin(pthread_t thread, int k)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof allowed, &allowed))
        return;
    int count = CPU_COUNT(&allowed);
    if (count < 2)
        return;
    k %= count;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, &allowed) && k-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(c, &one);
            pthread_setaffinity_np(thread, sizeof one, &one);
            return;
        }
    }
}

/* Peak resident set of this process so far, KiB. */
static inline long bm_peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Current resident set, KiB (second field of /proc/self/statm, in pages). */
static inline long bm_rss_kb(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* --- allocation and block patterns -------------------------------------------------------- */

static inline void *bm_malloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        bm_fail("malloc(%zu) returned NULL", n);
    return p;
}

/* Writes the tag into the first word of a block and its complement into the last word (for
 * blocks shorter than 16 bytes: the first min(n, 8) bytes and the last byte). Two live blocks
 * that overlap, or a block recycled while still live, break one of the two patterns. */
static inline void bm_fill(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    uint64_t inv = ~tag;
    if (n >= 16) {
        memcpy(b, &tag, 8);
        memcpy(b + n - 8, &inv, 8);
    } else if (n > 0) {
        memcpy(b, &tag, n < 8 ? n : 8);
        if (n > 8)
            b[n - 1] = (unsigned char)inv;
    }
}

static inline int bm_intact(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    uint64_t inv = ~tag, head, tail;
    if (n >= 16) {
        memcpy(&head, b, 8);
        memcpy(&tail, b + n - 8, 8);
        return head == tag && tail == inv;
    }
    if (n == 0)
        return 1;
    return memcmp(b, &tag, n < 8 ? n : 8) == 0 && (n <= 8 || b[n - 1] == (unsigned char)inv);
}

/* Fails loudly unless the block still holds the pattern written by bm_fill. */
static inline void bm_check(const void *p, size_t n, uint64_t tag)
{
    if (!bm_intact(p, n, tag))
        bm_fail("block %p (%zu bytes, tag %016llx) was overwritten", p, n, (unsigned long long)tag);
}

/* Writes a non-zero byte at the start of every page after the first, as a program using the
 * whole block would; the head and tail words (bm_fill) are left alone. */
static inline void bm_touch(void *p, size_t n)
{
    unsigned char *b = p;
    for (size_t off = BM_PAGE; off + 8 < n; off += BM_PAGE)
        b[off] = 0xa5;
}

/* Keeps the compiler from eliding a malloc/free pair whose pointer is otherwise unused. */
static inline void bm_escape(void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* --- slot churn ---------------------------------------------------------------------------- */

/* A table of live blocks; a churn step frees a random slot's block and puts a new one there. */
typedef struct {
    void *p;
    size_t size;
    uint64_t tag;
} bm_slot;

typedef size_t (*bm_size_fn)(bm_rng *r);

/* Order-dependent checksum step. */
static inline uint64_t bm_sum(uint64_t sum, uint64_t v)
{
    return (sum ^ v) * 0x100000001b3ull + (sum >> 29);
}

/* Frees the block in a slot after checking it, folding its tag and size into *sum. */
static inline void bm_slot_free(bm_slot *s, uint64_t *sum)
{
    if (!s->p)
        return;
    bm_check(s->p, s->size, s->tag);
    free(s->p);
    *sum = bm_sum(*sum, s->tag ^ s->size);
    s->p = NULL;
}

/* steps times: pick a random slot, free its block (if any), allocate a block of draw() bytes,
 * fill it (tags are bm_mix(serial++)) and touch its pages. Returns the updated checksum. */
static inline uint64_t bm_churn(bm_slot *slots, uint32_t nslots, bm_rng *r, uint64_t steps,
                                bm_size_fn draw, uint64_t *serial, uint64_t sum)
{
    for (uint64_t i = 0; i < steps; i++) {
        bm_slot *s = &slots[bm_below(r, nslots)];
        bm_slot_free(s, &sum);
        size_t n = draw(r);
        uint64_t tag = bm_mix((*serial)++);
        void *p = bm_malloc(n);
        bm_fill(p, n, tag);
        if (n > 2 * BM_PAGE)
            bm_touch(p, n);
        s->p = p;
        s->size = n;
        s->tag = tag;
    }
    return sum;
}

static inline uint64_t bm_slots_free_all(bm_slot *slots, uint32_t nslots, uint64_t sum)
{
    for (uint32_t i = 0; i < nslots; i++)
        bm_slot_free(&slots[i], &sum);
    return sum;
}

#endif
