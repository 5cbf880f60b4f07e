/* mixed — mixed sizes from 8 B to 64 KiB, with rare multi-MiB blocks.
 *
 * Measures how an allocator copes when small, medium and large requests share one heap: 2,048
 * live blocks, each step replaces a random one. Sizes are log-uniform over 8 B..64 KiB (as
 * many 8..15 B requests as 32..64 KiB ones); one step in 16,384 asks for 1..8 MiB instead.
 * Blocks past two pages get one byte written per page, as a program using them would.
 */
#include "bench.h"

#define SLOTS 2048

static size_t draw_mixed(bm_rng *r)
{
    if (bm_below(r, 16384) == 0)
        return bm_log_uniform(r, (size_t)1 << 20, (size_t)8 << 20);
    return bm_log_uniform(r, 8, (size_t)64 << 10);
}

int main(int argc, char **argv)
{
    double scale = bm_init("mixed", argc, argv);
    uint64_t steps = bm_scaled(6000000, scale, 1000);
    bm_slot *slots = calloc(SLOTS, sizeof *slots);
    if (!slots)
        bm_fail("out of memory");
    bm_rng rng = bm_rng_seed(2);
    uint64_t serial = 0, sum = 0;

    uint64_t t0 = bm_now_ns();
    sum = bm_churn(slots, SLOTS, &rng, steps, draw_mixed, &serial, sum);
    sum = bm_slots_free_all(slots, SLOTS, sum);
    uint64_t ns = bm_now_ns() - t0;

    free(slots);
    printf("RESULT name=mixed ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)steps,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
