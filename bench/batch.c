/* batch — microbenchmark: ns per object for batches of 1,000 mallocs then 1,000 frees.
 *
 * Measures the thread cache under a burst: a batch allocates 1,000 blocks (sizes 16..512 B
 * from a fixed table, so no random numbers are drawn while timing), then frees them in the
 * same order. ns_per_op is the time per object, i.e. per malloc plus its free. Every block is
 * checked before it is freed.
 */
#include "bench.h"

#define BATCH 1000

int main(int argc, char **argv)
{
    double scale = bm_init("batch", argc, argv);
    uint64_t batches = bm_scaled(13000, scale, 20);
    static size_t sizes[BATCH];
    static void *blocks[BATCH];
    bm_rng rng = bm_rng_seed(8);
    uint64_t sum = 0;

    for (int j = 0; j < BATCH; j++)
        sizes[j] = 16 + 16 * (size_t)bm_below(&rng, 32);

    uint64_t t0 = bm_now_ns();
    for (uint64_t b = 0; b < batches; b++) {
        for (int j = 0; j < BATCH; j++) {
            blocks[j] = bm_malloc(sizes[j]);
            bm_fill(blocks[j], sizes[j], b + (uint64_t)j);
        }
        for (int j = 0; j < BATCH; j++) {
            bm_check(blocks[j], sizes[j], b + (uint64_t)j);
            free(blocks[j]);
        }
        sum = bm_sum(sum, b);
    }
    uint64_t ns = bm_now_ns() - t0;

    uint64_t objects = batches * BATCH;
    printf("RESULT name=batch ops=%llu checksum=%016llx ns_per_op=%.2f\n",
           (unsigned long long)objects, (unsigned long long)sum, (double)ns / (double)objects);
    return 0;
}
