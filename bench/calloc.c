/* calloc — large zeroed blocks: calloc, use, free.
 *
 * Measures the cost of handing out zeroed memory: fresh pages from the system, or reused ones
 * cleared by the allocator. Four live blocks of 64 KiB..8 MiB (log-uniform); each step frees
 * a random one and callocs a new one, checks that the first word of each of its pages and its
 * last word are zero, then dirties exactly those words — so a block reused without being
 * cleared is caught by the next calloc that gets it. Also checks that calloc refuses a
 * count * size product that overflows.
 */
#include "bench.h"

#define SLOTS 4

static void *checked_calloc(size_t n, uint64_t tag)
{
    unsigned char *p = calloc(1, n);
    if (!p)
        bm_fail("calloc(1, %zu) returned NULL", n);
    uint64_t word;
    for (size_t off = 0; off + 8 <= n; off += BM_PAGE) {
        memcpy(&word, p + off, 8);
        if (word)
            bm_fail("calloc(1, %zu) block not zeroed at offset %zu", n, off);
    }
    memcpy(&word, p + n - 8, 8);
    if (word)
        bm_fail("calloc(1, %zu) block not zeroed at its end", n);
    bm_fill(p, n, tag);
    bm_touch(p, n);
    return p;
}

int main(int argc, char **argv)
{
    double scale = bm_init("calloc", argc, argv);
    uint64_t steps = bm_scaled(1500, scale, 20);
    bm_slot slots[SLOTS] = {{0}};
    bm_rng rng = bm_rng_seed(6);
    uint64_t sum = 0;

    volatile size_t count = (size_t)1 << 62; /* volatile: hide the overflow from the compiler */
    void *huge = calloc(count, 8);
    if (huge)
        bm_fail("calloc(2^62, 8) did not detect the overflow");

    uint64_t t0 = bm_now_ns();
    for (uint64_t i = 0; i < steps; i++) {
        bm_slot *s = &slots[bm_below(&rng, SLOTS)];
        bm_slot_free(s, &sum);
        s->size = bm_log_uniform(&rng, (size_t)64 << 10, (size_t)8 << 20);
        s->tag = bm_mix(i);
        s->p = checked_calloc(s->size, s->tag);
    }
    sum = bm_slots_free_all(slots, SLOTS, sum);
    uint64_t ns = bm_now_ns() - t0;

    printf("RESULT name=calloc ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)steps,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
