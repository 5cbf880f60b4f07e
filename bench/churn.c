/* churn — single-thread churn of small objects.
 *
 * Measures the thread-cache fast path under a realistic access pattern: 8,192 live blocks of
 * 8..256 bytes (uniform in steps of 8); each step frees a random live block and allocates a
 * new one of a random size in its place. Every block is checked before it is freed.
 */
#include "bench.h"

#define SLOTS 8192

static size_t draw_small(bm_rng *r)
{
    return 8 + 8 * (size_t)bm_below(r, 32);
}

int main(int argc, char **argv)
{
    double scale = bm_init("churn", argc, argv);
    uint64_t steps = bm_scaled(40000000, scale, 1000);
    bm_slot *slots = calloc(SLOTS, sizeof *slots);
    if (!slots)
        bm_fail("out of memory");
    bm_rng rng = bm_rng_seed(1);
    uint64_t serial = 0, sum = 0;

    uint64_t t0 = bm_now_ns();
    sum = bm_churn(slots, SLOTS, &rng, steps, draw_small, &serial, sum);
    sum = bm_slots_free_all(slots, SLOTS, sum);
    uint64_t ns = bm_now_ns() - t0;

    free(slots);
    printf("RESULT name=churn ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)steps,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
