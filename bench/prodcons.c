/* prodcons — blocks allocated by one thread and freed by another.
 *
 * Measures remote frees: a producer thread allocates blocks of 16..1,024 bytes (uniform in
 * steps of 16), fills them and hands them through a bounded single-producer/single-consumer
 * ring to a consumer thread, which verifies and frees them. Memory therefore flows one way,
 * from the producer's caches to the consumer's. The consumer replays the producer's random
 * stream, so it knows the exact size and tag every block must have. With two or more CPUs the
 * threads are pinned to two different ones: left to the scheduler they sometimes share one
 * core, which hides the cross-thread cost and makes run times bimodal.
 */
#include "bench.h"

#include <stdatomic.h>

#define RING 4096 /* power of two */

static void *ring[RING];
static _Alignas(64) atomic_ulong head; /* next slot the producer fills */
static _Alignas(64) atomic_ulong tail; /* next slot the consumer empties */
static uint64_t nblocks;

static size_t draw_size(bm_rng *r)
{
    return 16 + 16 * (size_t)bm_below(r, 64);
}

static void wait_a_little(unsigned *spins)
{
    if (++*spins > 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *producer(void *arg)
{
    bm_rng rng = bm_rng_seed(3);
    unsigned long h = 0, t_seen = 0;
    for (uint64_t i = 0; i < nblocks; i++) {
        size_t n = draw_size(&rng);
        void *p = bm_malloc(n);
        bm_fill(p, n, bm_mix(i));
        unsigned spins = 0;
        while (h - t_seen == RING) {
            t_seen = atomic_load_explicit(&tail, memory_order_acquire);
            if (h - t_seen == RING)
                wait_a_little(&spins);
        }
        ring[h % RING] = p;
        atomic_store_explicit(&head, ++h, memory_order_release);
    }
    return arg;
}

static void *consumer(void *arg)
{
    uint64_t *sum = arg;
    bm_rng rng = bm_rng_seed(3);
    unsigned long t = 0, h_seen = 0;
    for (uint64_t i = 0; i < nblocks; i++) {
        unsigned spins = 0;
        while (t == h_seen) {
            h_seen = atomic_load_explicit(&head, memory_order_acquire);
            if (t == h_seen)
                wait_a_little(&spins);
        }
        void *p = ring[t % RING];
        atomic_store_explicit(&tail, ++t, memory_order_release);
        size_t n = draw_size(&rng);
        uint64_t tag = bm_mix(i);
        bm_check(p, n, tag);
        free(p);
        *sum = bm_sum(*sum, tag ^ n);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    double scale = bm_init("prodcons", argc, argv);
    nblocks = bm_scaled(1000000, scale, 1000);
    uint64_t sum = 0;
    pthread_t prod, cons;

    uint64_t t0 = bm_now_ns();
    if (pthread_create(&cons, NULL, consumer, &sum) || pthread_create(&prod, NULL, producer, NULL))
        bm_fail("pthread_create failed");
    bm_pin(prod, 0);
    bm_pin(cons, 1);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    uint64_t ns = bm_now_ns() - t0;

    printf("RESULT name=prodcons ops=%llu checksum=%016llx ns=%llu\n", (unsigned long long)nblocks,
           (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
