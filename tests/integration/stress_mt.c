/*
 * stress_mt — many threads hammering the allocator, run with LD_PRELOAD=liballocprof.so.
 *
 * NTHREADS threads each run a bounded number of operations (and stop early after a time
 * cap, so the test stays fast on a slow machine): allocate a random size (16 B..64 KiB,
 * log-uniform, occasionally 1 MiB) with malloc, calloc or posix_memalign, write a
 * pattern specific to (thread, index) over the whole block, keep a window of live blocks,
 * and verify the pattern before freeing or reallocating one. Every few operations a block
 * is handed through a ring to the next thread, which verifies and frees it, so frees of
 * memory owned by another thread's cache are exercised all the time.
 *
 * Any corruption (a block overlapping another, a realloc losing data, calloc returning
 * dirty memory, a misaligned pointer) is reported on stderr and the exit status is 1.
 * The work done is deterministic per thread (seeded PRNG); only the time cap can shorten
 * it, which changes how much is checked, never whether a check passes.
 *
 * Usage: stress_mt [OPS_PER_THREAD] [SECONDS_CAP]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NTHREADS 8
#define WINDOW 512
#define RING 256
#define SHARE_EVERY 5

/* Header stored at the start of every block (blocks are at least 16 bytes). */
struct hdr {
    uint64_t seed;
    uint64_t size;
};

struct ring {
    pthread_mutex_t mu;
    void *slot[RING];
    unsigned head, tail; /* head: next to pop, tail: next to push */
};

static struct ring rings[NTHREADS];
static atomic_int failures;
static atomic_int stop_now;
static long ops_per_thread = 60000;
static double seconds_cap = 8.0;
static struct timespec t_start;

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double elapsed(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t_start.tv_sec) + (double)(now.tv_nsec - t_start.tv_nsec) / 1e9;
}

static uint64_t word_of(uint64_t seed, size_t i)
{
    uint64_t z = seed + (uint64_t)i * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    return z ^ (z >> 31);
}

/* Byte i (>= 16) of a block, defined so that it equals the little-endian byte of the word
 * written at that position: a prefix of a block can be checked without knowing its size. */
static unsigned char tail_byte(uint64_t seed, size_t i)
{
    size_t off = i - sizeof(struct hdr);
    return (unsigned char)(word_of(seed, off / 8) >> ((off % 8) * 8));
}

/* Writes header and pattern over the whole block (size >= 16). */
static void paint(void *p, size_t size, uint64_t seed)
{
    struct hdr h = {seed, size};
    memcpy(p, &h, sizeof h);
    unsigned char *b = p;
    size_t words = (size - sizeof h) / 8;
    uint64_t *w = (uint64_t *)(b + sizeof h);
    for (size_t i = 0; i < words; i++)
        w[i] = word_of(seed, i);
    for (size_t i = sizeof h + words * 8; i < size; i++)
        b[i] = tail_byte(seed, i);
}

static void report(const char *what, int tid, const void *p, size_t size, uint64_t seed, size_t at)
{
    atomic_fetch_add(&failures, 1);
    fprintf(stderr, "stress_mt: thread %d: %s: block %p size %zu seed %016llx offset %zu\n", tid,
            what, p, size, (unsigned long long)seed, at);
}

/* Verifies header and the first `limit` bytes (the whole block when limit >= size). */
static int verify(const void *p, size_t limit, int tid)
{
    struct hdr h;
    memcpy(&h, p, sizeof h);
    size_t size = (size_t)h.size;
    if (size < sizeof h || size > (8u << 20)) {
        report("header size corrupt", tid, p, size, h.seed, 8);
        return 0;
    }
    size_t n = limit < size ? limit : size;
    const unsigned char *b = p;
    size_t words = (n - sizeof h) / 8;
    const uint64_t *w = (const uint64_t *)(b + sizeof h);
    for (size_t i = 0; i < words; i++) {
        if (w[i] != word_of(h.seed, i)) {
            report("pattern mismatch", tid, p, size, h.seed, sizeof h + i * 8);
            return 0;
        }
    }
    for (size_t i = sizeof h + words * 8; i < n; i++) {
        if (b[i] != tail_byte(h.seed, i)) {
            report("tail mismatch", tid, p, size, h.seed, i);
            return 0;
        }
    }
    return 1;
}

static size_t pick_size(uint64_t *rs)
{
    uint64_t r = rng_next(rs);
    if (r % 400 == 0)
        return (1u << 20) + (size_t)(r >> 40) % 4096; /* occasionally 1 MiB */
    /* log-uniform between 16 and 64 KiB: 2^(4..16) times a random mantissa */
    unsigned e = 4 + (unsigned)((r >> 8) % 12);
    size_t base = (size_t)1 << e;
    return base + (size_t)(r >> 20) % base;
}

static void *alloc_block(size_t size, uint64_t *rs, int tid)
{
    uint64_t r = rng_next(rs) % 16;
    void *p;
    if (r == 0) {
        p = calloc(1, size);
        if (p != NULL) {
            const unsigned char *b = p;
            for (size_t i = 0; i < size; i++) {
                if (b[i] != 0) {
                    report("calloc not zeroed", tid, p, size, 0, i);
                    break;
                }
            }
        }
    } else if (r == 1) {
        size_t align = (size_t)64 << (rng_next(rs) % 7); /* 64 .. 4096 */
        if (posix_memalign(&p, align, size) != 0)
            p = NULL;
        else if (((uintptr_t)p & (align - 1)) != 0)
            report("posix_memalign misaligned", tid, p, size, align, 0);
    } else {
        p = malloc(size);
    }
    if (p == NULL) {
        report("allocation failed", tid, NULL, size, 0, 0);
        return NULL;
    }
    if (((uintptr_t)p & 15) != 0)
        report("not 16-byte aligned", tid, p, size, 0, 0);
    if (malloc_usable_size(p) < size)
        report("usable size too small", tid, p, size, malloc_usable_size(p), 0);
    return p;
}

static void ring_push_or_free(int to, void *p, int tid)
{
    struct ring *r = &rings[to];
    pthread_mutex_lock(&r->mu);
    if (r->tail - r->head < RING) {
        r->slot[r->tail % RING] = p;
        r->tail++;
        p = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    if (p != NULL) { /* ring full: verify and free it ourselves */
        verify(p, SIZE_MAX, tid);
        free(p);
    }
}

/* Pops up to `max` blocks handed to this thread by another one; verifies and frees them. */
static void ring_drain(int tid, int max)
{
    struct ring *r = &rings[tid];
    void *batch[RING];
    int n = 0;
    pthread_mutex_lock(&r->mu);
    while (n < max && r->head != r->tail) {
        batch[n++] = r->slot[r->head % RING];
        r->head++;
    }
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < n; i++) {
        verify(batch[i], SIZE_MAX, tid);
        free(batch[i]);
    }
}

static void *worker(void *arg)
{
    int tid = (int)(intptr_t)arg;
    uint64_t rs = 0x1234567ULL * (uint64_t)(tid + 1) + 0x9E3779B97F4A7C15ULL;
    void *live[WINDOW] = {0};
    uint64_t counter = 0;

    for (long op = 0; op < ops_per_thread; op++) {
        if ((op & 1023) == 0 && (atomic_load(&stop_now) || elapsed() > seconds_cap)) {
            atomic_store(&stop_now, 1);
            break;
        }
        if (atomic_load(&failures) > 20)
            break;
        unsigned slot = (unsigned)(rng_next(&rs) % WINDOW);
        void *old = live[slot];
        uint64_t action = rng_next(&rs) % 10;
        if (old != NULL && action == 0) {
            /* realloc: the prefix must survive, then repaint the whole block */
            struct hdr h;
            memcpy(&h, old, sizeof h);
            if (!verify(old, SIZE_MAX, tid)) {
                live[slot] = NULL;
                continue;
            }
            size_t nsz = pick_size(&rs);
            void *np = realloc(old, nsz);
            if (np == NULL) {
                report("realloc failed", tid, old, nsz, h.seed, 0);
                continue;
            }
            /* the kept prefix (header included) still carries the old pattern */
            verify(np, nsz, tid);
            paint(np, nsz, ((uint64_t)tid << 48) | ++counter);
            live[slot] = np;
            continue;
        }
        if (old != NULL) {
            verify(old, SIZE_MAX, tid);
            if (op % SHARE_EVERY == 0)
                ring_push_or_free((tid + 1) % NTHREADS, old, tid);
            else
                free(old);
            live[slot] = NULL;
        }
        size_t size = pick_size(&rs);
        void *p = alloc_block(size, &rs, tid);
        if (p != NULL)
            paint(p, size, ((uint64_t)tid << 48) | ++counter);
        live[slot] = p;
        if ((op & 15) == 0)
            ring_drain(tid, 64);
    }
    for (int i = 0; i < WINDOW; i++) {
        if (live[i] != NULL) {
            verify(live[i], SIZE_MAX, tid);
            free(live[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ops_per_thread = strtol(argv[1], NULL, 10);
    if (argc > 2)
        seconds_cap = strtod(argv[2], NULL);
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    for (int i = 0; i < NTHREADS; i++)
        pthread_mutex_init(&rings[i].mu, NULL);

    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        int rc = pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
        if (rc != 0) {
            fprintf(stderr, "stress_mt: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    /* Blocks still in flight between threads: the main thread frees them (yet another
     * thread than the one that allocated them). */
    for (int i = 0; i < NTHREADS; i++)
        ring_drain(i, RING);

    int f = atomic_load(&failures);
    printf("stress_mt: %d threads, %s, %d failure(s), %.2f s\n", NTHREADS,
           atomic_load(&stop_now) ? "stopped by time cap" : "all operations done", f, elapsed());
    return f == 0 ? 0 : 1;
}
