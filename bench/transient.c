/* transient — threads building large transient heaps and dropping them, freeing across
 * threads.
 *
 * The shape of mimalloc-bench's mstress and xmalloc tests: 2 threads per core, 12 rounds.
 * In a round every thread builds a heap of 40,000 objects of 16 B..8 KiB (log-uniform,
 * about 60 MiB across the threads), links them into lists, then frees half of its own and
 * half of its right neighbour's (exchanged at a barrier), so memory is handed from one
 * thread's caches to another's and most of the heap becomes free at once, round after round.
 * An allocator that returns the freed pages eagerly and faults them back next round, or that
 * serializes remote frees, pays in system time or in lock waits.
 */
#include "bench.h"

#define OBJECTS 40000

struct worker {
    pthread_t thread;
    int index;
    bm_slot *mine; /* this round's heap */
    uint64_t sum;
};

static struct worker *workers;
static int nthreads;
static uint64_t rounds;
static pthread_barrier_t barrier;

static size_t draw_transient(bm_rng *r)
{
    return bm_log_uniform(r, 16, 8192);
}

static void *work(void *arg)
{
    struct worker *w = arg;
    bm_rng rng = bm_rng_seed(500 + (uint64_t)w->index);
    uint64_t serial = (uint64_t)w->index << 44, sum = 0;
    w->mine = calloc(OBJECTS, sizeof *w->mine);
    if (!w->mine)
        bm_fail("out of memory");
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint32_t i = 0; i < OBJECTS; i++) {
            size_t n = draw_transient(&rng);
            uint64_t tag = bm_mix(serial++);
            void *p = bm_malloc(n);
            bm_fill(p, n, tag);
            if (n > 2 * BM_PAGE)
                bm_touch(p, n);
            w->mine[i] = (bm_slot){p, n, tag};
        }
        pthread_barrier_wait(&barrier);
        /* the odd slots of this thread's heap, the even ones of the neighbour's */
        bm_slot *theirs = workers[(w->index + 1) % nthreads].mine;
        for (uint32_t i = 0; i < OBJECTS; i += 2) {
            bm_slot_free(&w->mine[i + 1], &sum);
            bm_slot_free(&theirs[i], &sum);
        }
        pthread_barrier_wait(&barrier);
    }
    free(w->mine);
    w->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = bm_init("transient", argc, argv);
    nthreads = 2 * bm_ncpu();
    rounds = bm_scaled(12, scale, 1);
    workers = calloc((size_t)nthreads, sizeof *workers);
    if (!workers || pthread_barrier_init(&barrier, NULL, (unsigned)nthreads))
        bm_fail("out of memory");
    uint64_t t0 = bm_now_ns();
    for (int i = 0; i < nthreads; i++) {
        workers[i].index = i;
        if (pthread_create(&workers[i].thread, NULL, work, &workers[i]))
            bm_fail("pthread_create failed");
    }
    uint64_t sum = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(workers[i].thread, NULL);
        sum = bm_sum(sum, workers[i].sum);
    }
    uint64_t ns = bm_now_ns() - t0;
    free(workers);
    printf("RESULT name=transient threads=%d ops=%llu checksum=%016llx ns=%llu\n", nthreads,
           (unsigned long long)(rounds * OBJECTS * (uint64_t)nthreads), (unsigned long long)sum,
           (unsigned long long)ns);
    return 0;
}
