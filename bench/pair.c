/* pair — microbenchmark: ns per malloc/free pair.
 *
 * Measures the allocator's fastest path: malloc of one size immediately followed by its free,
 * so the same block comes back every time. Three sizes (16, 128 and 1,024 bytes) are timed
 * one after the other; ns_per_op is over all pairs, ns_16 / ns_128 / ns_1024 per size. Each
 * block must be 16-byte aligned and keep its head and tail words until it is freed.
 */
#include "bench.h"

static double time_pairs(size_t size, uint64_t pairs)
{
    uint64_t t0 = bm_now_ns();
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = malloc(size);
        if (!p || ((uintptr_t)p & 15))
            bm_fail("malloc(%zu) returned %p", size, p);
        bm_escape(p);
        bm_fill(p, size, i);
        bm_escape(p);
        bm_check(p, size, i);
        free(p);
    }
    return (double)(bm_now_ns() - t0) / (double)pairs;
}

int main(int argc, char **argv)
{
    double scale = bm_init("pair", argc, argv);
    uint64_t pairs = bm_scaled(30000000, scale, 1000);
    static const size_t sizes[] = {16, 128, 1024};
    double ns[3], total = 0;

    for (int k = 0; k < 3; k++) {
        ns[k] = time_pairs(sizes[k], pairs);
        total += ns[k];
    }
    printf("RESULT name=pair ops=%llu checksum=0 ns_per_op=%.2f ns_16=%.2f ns_128=%.2f "
           "ns_1024=%.2f\n",
           (unsigned long long)(3 * pairs), total / 3, ns[0], ns[1], ns[2]);
    return 0;
}
