/* large — large blocks allocated, touched and freed in a loop by one thread.
 *
 * The shape of mimalloc-bench's malloc-large: blocks of 5..25 MiB (uniform), 20 live at a
 * time in slots, each step replacing a random slot's block; every page of a new block is
 * written, as a program filling a buffer would. An allocator that gives freed large blocks
 * back to the kernel at once pays a page fault for every page of every block (system time);
 * one that keeps recently freed spans for the next request of a similar size pays none.
 */
#include "bench.h"

#define SLOTS 20

static size_t draw_large(bm_rng *r)
{
    return ((size_t)5 << 20) + (size_t)bm_below(r, 20u << 20);
}

int main(int argc, char **argv)
{
    double scale = bm_init("large", argc, argv);
    uint64_t steps = bm_scaled(100, scale, 20);
    bm_slot slots[SLOTS] = {{0}};
    bm_rng rng = bm_rng_seed(77);
    uint64_t serial = 0, sum = 0;
    uint64_t t0 = bm_now_ns();
    sum = bm_churn(slots, SLOTS, &rng, steps, draw_large, &serial, sum);
    sum = bm_slots_free_all(slots, SLOTS, sum);
    uint64_t ns = bm_now_ns() - t0;
    printf("RESULT name=large ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)steps,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
