/* realloc — growing blocks with realloc: by doubling and by small steps.
 *
 * Measures in-place growth and copying. Eight buffers grow in turn, so each one's neighbours
 * get in its way as they would in a program building several arrays or strings at once.
 *   doubling:    16 B, 32 B, ... 1 MiB, then the buffer is freed and starts again;
 *   small steps: +1..64 B per call up to 64 KiB (string appends), then freed and restarted.
 * After every realloc the old head and tail words must have moved with the data.
 */
#include "bench.h"

#define NBUF 8
#define DOUBLING_MAX ((size_t)1 << 20)
#define STEPS_MAX ((size_t)64 << 10)

struct buf {
    unsigned char *p;
    size_t size;
    uint64_t tag;
};

static uint64_t serial;

static void start(struct buf *b)
{
    b->size = 16;
    b->tag = bm_mix(serial++);
    b->p = bm_malloc(b->size);
    bm_fill(b->p, b->size, b->tag);
}

static void finish(struct buf *b, uint64_t *sum)
{
    bm_check(b->p, b->size, b->tag);
    *sum = bm_sum(*sum, b->tag ^ b->size);
    free(b->p);
    b->p = NULL;
}

/* realloc to n > b->size; the pattern written at the old size must survive the move. */
static void grow(struct buf *b, size_t n)
{
    bm_check(b->p, b->size, b->tag);
    unsigned char *p = realloc(b->p, n);
    if (!p)
        bm_fail("realloc(%zu) returned NULL", n);
    if (!bm_intact(p, b->size, b->tag))
        bm_fail("realloc from %zu to %zu bytes lost the block's contents", b->size, n);
    b->p = p;
    b->size = n;
    bm_fill(p, n, b->tag);
}

int main(int argc, char **argv)
{
    double scale = bm_init("realloc", argc, argv);
    uint64_t doubling_calls = bm_scaled(20000, scale, 100);
    uint64_t step_calls = bm_scaled(6000000, scale, 1000);
    struct buf bufs[NBUF];
    bm_rng rng = bm_rng_seed(5);
    uint64_t sum = 0;

    uint64_t t0 = bm_now_ns();
    for (int i = 0; i < NBUF; i++)
        start(&bufs[i]);
    for (uint64_t i = 0; i < doubling_calls; i++) {
        struct buf *b = &bufs[i % NBUF];
        if (b->size >= DOUBLING_MAX) {
            finish(b, &sum);
            start(b);
        } else {
            grow(b, b->size * 2);
        }
    }
    for (int i = 0; i < NBUF; i++) {
        finish(&bufs[i], &sum);
        start(&bufs[i]);
    }
    for (uint64_t i = 0; i < step_calls; i++) {
        struct buf *b = &bufs[i % NBUF];
        if (b->size >= STEPS_MAX) {
            finish(b, &sum);
            start(b);
        } else {
            grow(b, b->size + 1 + bm_below(&rng, 64));
        }
    }
    for (int i = 0; i < NBUF; i++)
        finish(&bufs[i], &sum);
    uint64_t ns = bm_now_ns() - t0;

    printf("RESULT name=realloc ops=%llu checksum=%016llx ns=%llu\n",
           (unsigned long long)(doubling_calls + step_calls), (unsigned long long)sum,
           (unsigned long long)ns);
    return 0;
}
