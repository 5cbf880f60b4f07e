/* server — a server's shape: worker threads handling requests, with objects freed by
 * other threads.
 *
 * 2 workers per core take requests from a shared counter. A request allocates its
 * context: 8..16 header strings (32..256 B), a body buffer (1..16 KiB, written) and a
 * response (256 B..4 KiB); frees the headers and the body itself; and hands the response
 * to one of 2 writer threads through a ring, which checks and frees it (a cross-thread
 * free). One request in 8 also replaces an entry of a shared session table (4,096 entries
 * of 64..512 B under striped locks), freeing a block another worker allocated. Fixed
 * work: the same requests under every allocator.
 */
#include "bench.h"

#include <stdatomic.h>

#define WRITERS 2
#define RING 1024 /* per writer, power of two; multi-producer with a lock */
#define SESSIONS 4096
#define STRIPES 64

struct ring {
    pthread_mutex_t lock;
    pthread_cond_t more, room;
    bm_slot slot[RING];
    unsigned long head, tail;
    int done;
};

static struct ring rings[WRITERS];
static bm_slot sessions[SESSIONS];
static pthread_mutex_t stripe[STRIPES];
static atomic_ulong next_request;
static uint64_t nrequests;

/* Checks and frees a block, adding it to the checksum with an order-free sum: which thread
 * frees which block (and which sessions are left at the end) varies from run to run, but
 * every block is freed once, so the sum over all of them does not. */
static void release(bm_slot *s, uint64_t *sum)
{
    if (!s->p)
        return;
    bm_check(s->p, s->size, s->tag);
    free(s->p);
    *sum += bm_mix(s->tag ^ s->size);
    s->p = NULL;
}

static void ring_put(struct ring *q, bm_slot s)
{
    pthread_mutex_lock(&q->lock);
    while (q->head - q->tail == RING)
        pthread_cond_wait(&q->room, &q->lock);
    q->slot[q->head++ % RING] = s;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
}

static void *writer(void *arg)
{
    struct ring *q = arg;
    uint64_t sum = 0;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->head == q->tail && !q->done)
            pthread_cond_wait(&q->more, &q->lock);
        if (q->head == q->tail) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        bm_slot s = q->slot[q->tail++ % RING];
        pthread_cond_signal(&q->room);
        pthread_mutex_unlock(&q->lock);
        release(&s, &sum);
    }
    return (void *)(uintptr_t)sum;
}

static void *worker(void *arg)
{
    (void)arg;
    uint64_t sum = 0;
    for (;;) {
        uint64_t r = atomic_fetch_add_explicit(&next_request, 1, memory_order_relaxed);
        if (r >= nrequests)
            break;
        bm_rng rng = bm_rng_seed(r);
        uint64_t serial = r << 8;
        bm_slot hdr[16];
        int nh = 8 + (int)bm_below(&rng, 9);
        for (int i = 0; i < nh; i++) {
            size_t n = 32 + bm_below(&rng, 225);
            uint64_t tag = bm_mix(serial++);
            hdr[i] = (bm_slot){bm_malloc(n), n, tag};
            bm_fill(hdr[i].p, n, tag);
        }
        size_t bn = 1024 + bm_below(&rng, 15 * 1024 + 1);
        bm_slot body = {bm_malloc(bn), bn, bm_mix(serial++)};
        memset(body.p, (int)(r & 0xff), bn);
        bm_fill(body.p, bn, body.tag);
        size_t rn = 256 + bm_below(&rng, 3841);
        bm_slot resp = {bm_malloc(rn), rn, bm_mix(serial++)};
        bm_fill(resp.p, rn, resp.tag);
        for (int i = 0; i < nh; i++)
            release(&hdr[i], &sum);
        release(&body, &sum);
        if (bm_below(&rng, 8) == 0) {
            uint32_t k = bm_below(&rng, SESSIONS);
            size_t n = 64 + bm_below(&rng, 449);
            bm_slot s = {bm_malloc(n), n, bm_mix(serial++)};
            bm_fill(s.p, n, s.tag);
            pthread_mutex_lock(&stripe[k % STRIPES]);
            bm_slot old = sessions[k];
            sessions[k] = s;
            pthread_mutex_unlock(&stripe[k % STRIPES]);
            release(&old, &sum);
        }
        ring_put(&rings[r % WRITERS], resp);
    }
    return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
    double scale = bm_init("server", argc, argv);
    nrequests = bm_scaled(2000000, scale, 2000);
    int nw = 2 * bm_ncpu();
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&stripe[i], NULL);
    pthread_t wt[WRITERS], *th = calloc((size_t)nw, sizeof *th);
    if (!th)
        bm_fail("out of memory");
    uint64_t t0 = bm_now_ns();
    for (int i = 0; i < WRITERS; i++) {
        pthread_mutex_init(&rings[i].lock, NULL);
        pthread_cond_init(&rings[i].more, NULL);
        pthread_cond_init(&rings[i].room, NULL);
        if (pthread_create(&wt[i], NULL, writer, &rings[i]))
            bm_fail("pthread_create failed");
    }
    for (int i = 0; i < nw; i++)
        if (pthread_create(&th[i], NULL, worker, NULL))
            bm_fail("pthread_create failed");
    uint64_t sum = 0;
    for (int i = 0; i < nw; i++) {
        void *v;
        pthread_join(th[i], &v);
        sum += (uint64_t)(uintptr_t)v;
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_mutex_lock(&rings[i].lock);
        rings[i].done = 1;
        pthread_cond_signal(&rings[i].more);
        pthread_mutex_unlock(&rings[i].lock);
    }
    for (int i = 0; i < WRITERS; i++) {
        void *v;
        pthread_join(wt[i], &v);
        sum += (uint64_t)(uintptr_t)v;
    }
    for (int i = 0; i < SESSIONS; i++)
        release(&sessions[i], &sum);
    uint64_t ns = bm_now_ns() - t0;
    free(th);
    printf("RESULT name=server threads=%d ops=%llu checksum=%016llx ns=%llu\n", nw,
           (unsigned long long)nrequests, (unsigned long long)sum, (unsigned long long)ns);
    return 0;
}
