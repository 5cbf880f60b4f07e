/* threads — independent churn in one thread per core.
 *
 * Measures scalability when threads share nothing but the allocator: one thread per online
 * CPU ($BENCH_THREADS overrides), each with its own 4,096 live blocks of 16..512 bytes (one
 * request in 64 is 1..16 KiB instead), replacing a random one each step. Every thread does the
 * same number of steps, so an allocator that scales perfectly takes as long as one thread.
 * Thread i is pinned to the i-th CPU.
 */
#include "bench.h"

#define SLOTS 4096

struct worker {
    pthread_t thread;
    int index;
    uint64_t steps;
    uint64_t sum;
};

static size_t draw_thread(bm_rng *r)
{
    if (bm_below(r, 64) == 0)
        return bm_log_uniform(r, 1024, (size_t)16 << 10);
    return 16 + 16 * (size_t)bm_below(r, 32);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    bm_slot *slots = calloc(SLOTS, sizeof *slots);
    if (!slots)
        bm_fail("out of memory");
    bm_rng rng = bm_rng_seed(100 + (uint64_t)w->index);
    uint64_t serial = (uint64_t)w->index << 40;
    w->sum = bm_churn(slots, SLOTS, &rng, w->steps, draw_thread, &serial, 0);
    w->sum = bm_slots_free_all(slots, SLOTS, w->sum);
    free(slots);
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = bm_init("threads", argc, argv);
    int n = bm_ncpu();
    uint64_t steps = bm_scaled(30000000, scale, 1000);
    struct worker *w = calloc((size_t)n, sizeof *w);
    if (!w)
        bm_fail("out of memory");

    uint64_t t0 = bm_now_ns();
    for (int i = 0; i < n; i++) {
        w[i].index = i;
        w[i].steps = steps;
        if (pthread_create(&w[i].thread, NULL, work, &w[i]))
            bm_fail("pthread_create failed");
        bm_pin(w[i].thread, i);
    }
    uint64_t sum = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        sum = bm_sum(sum, w[i].sum);
    }
    uint64_t ns = bm_now_ns() - t0;

    free(w);
    printf("RESULT name=threads threads=%d ops=%llu checksum=%016llx ns=%llu\n", n,
           (unsigned long long)(steps * (uint64_t)n), (unsigned long long)sum,
           (unsigned long long)ns);
    return 0;
}
