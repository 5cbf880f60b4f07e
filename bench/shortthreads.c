/* shortthreads — tens of thousands of short-lived threads, each allocating and leaving
 * some of it behind.
 *
 * The shape of mimalloc-bench's thread-creation tests: 20,000 threads, up to 4 alive at a
 * time (a pool that does not reuse its threads). Each allocates 200 blocks of 16..1,024 B,
 * frees 190 of them and leaves 10 in a shared list, which the main thread frees in batches
 * (memory a thread allocated, freed by another after it has exited). What is measured is a
 * thread's first allocation and its exit: an allocator that builds a cache per thread and
 * flushes every class at exit pays that 20,000 times.
 */
#include "bench.h"

#define PER_THREAD 200
#define LEFT 10
#define ALIVE 4

static bm_slot *left; /* LEFT per thread */
static uint64_t nthreads;

static size_t draw_small(bm_rng *r)
{
    return 16 + 16 * (size_t)bm_below(r, 64);
}

static void *work(void *arg)
{
    uint64_t k = (uint64_t)(uintptr_t)arg;
    bm_rng rng = bm_rng_seed(9000 + k);
    bm_slot s[PER_THREAD];
    uint64_t serial = k << 16, sum = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        size_t n = draw_small(&rng);
        uint64_t tag = bm_mix(serial++);
        s[i] = (bm_slot){bm_malloc(n), n, tag};
        bm_fill(s[i].p, n, tag);
    }
    for (int i = LEFT; i < PER_THREAD; i++)
        bm_slot_free(&s[i], &sum);
    memcpy(&left[k * LEFT], s, LEFT * sizeof *s);
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    double scale = bm_init("shortthreads", argc, argv);
    nthreads = bm_scaled(20000, scale, 100);
    left = calloc(nthreads * LEFT, sizeof *left);
    if (!left)
        bm_fail("out of memory");
    pthread_t alive[ALIVE];
    uint64_t sum = 0, freed = 0;
    uint64_t t0 = bm_now_ns();
    for (uint64_t k = 0; k < nthreads; k += ALIVE) {
        int n = 0;
        for (; n < ALIVE && k + (uint64_t)n < nthreads; n++)
            if (pthread_create(&alive[n], NULL, work, (void *)(uintptr_t)(k + (uint64_t)n)))
                bm_fail("pthread_create failed");
        for (int i = 0; i < n; i++) {
            void *r;
            pthread_join(alive[i], &r);
            sum = bm_sum(sum, (uint64_t)(uintptr_t)r);
        }
        /* free what the threads of 1,000 threads ago left behind */
        for (; freed + 1000 * LEFT < (k + (uint64_t)n) * LEFT; freed++)
            bm_slot_free(&left[freed], &sum);
    }
    for (; freed < nthreads * LEFT; freed++)
        bm_slot_free(&left[freed], &sum);
    uint64_t ns = bm_now_ns() - t0;
    free(left);
    printf("RESULT name=shortthreads threads=%llu checksum=%016llx ns=%llu\n",
           (unsigned long long)nthreads, (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
