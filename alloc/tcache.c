/*
 * tcache.c — per-thread caches: one singly linked list of free objects per
 * size class, in initial-exec TLS (no lookup, no lock). The fast paths are in
 * tcache_inline.h; this file holds their slow halves:
 *   - a list's max starts at 1; each miss fetches min(max, batch) objects
 *     from the central list, and misses and overflows raise max by one up to
 *     a batch (ap_class_batch), then misses by a batch up to ap_class_cap
 *     (tcmalloc's slow start: classes a thread uses rarely stay tiny);
 *   - an overflow (count == max) sends one batch back to the central list.
 * A free from another thread needs nothing special: the object goes to the
 * freeing thread's cache and reaches its span through the central list.
 *
 * Lifecycle: NEW (all zero) -> LIVE on the first slow-path call, which
 * registers the cache and arms a pthread key whose destructor drains it at
 * thread exit -> DEAD: max stays 0, so every malloc and free of the exiting
 * thread goes straight to the central lists.
 *
 * Shards: a cache refills from and flushes to one central shard (central.c),
 * chosen at set-up: the one with the fewest live threads, the lowest on ties,
 * so up to one thread per CPU each has a shard of its own and a program's
 * first thread always has shard 0.
 *
 * Registry lock guards the list of live caches and the shards' thread counts
 * (stats, fork). Lock order: registry -> central -> page heap. See
 * docs/architecture.md.
 */
#include <pthread.h>

#include "tcache_inline.h"

AP_HIDDEN AP_TLS ap_tcache_t ap_tls_tcache;

static ap_lock_t registry_lock;
static ap_tcache_t *registry;
static uint32_t shard_threads[AP_MAX_SHARDS]; /* live caches per shard */
static pthread_key_t exit_key;
static bool exit_key_ready;

static void tcache_thread_exit(void *arg)
{
    ap_thread_exit();
}

static void registry_add(ap_tcache_t *tc)
{
    ap_lock(&registry_lock);
    tc->prev = NULL;
    tc->next = registry;
    if (registry)
        registry->prev = tc;
    registry = tc;
    uint32_t best = 0;
    for (uint32_t i = 1; i < ap_nshards; i++)
        if (shard_threads[i] < shard_threads[best])
            best = i;
    ap_central_shard_init(best);
    shard_threads[best]++;
    tc->shard = best;
    bool need_key = !exit_key_ready;
    if (need_key)
        exit_key_ready = pthread_key_create(&exit_key, tcache_thread_exit) == 0;
    ap_unlock(&registry_lock);
}

static void registry_remove(ap_tcache_t *tc)
{
    ap_lock(&registry_lock);
    if (tc->prev)
        tc->prev->next = tc->next;
    else if (registry == tc)
        registry = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tc->next = tc->prev = NULL;
    shard_threads[tc->shard]--; /* tc->shard stays: the dead thread's frees go there */
    ap_unlock(&registry_lock);
}

static void tcache_setup(ap_tcache_t *tc)
{
    ap_ensure_init();
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        tc->list[c].max = 1;
    tc->state = AP_TC_LIVE;
    registry_add(tc);
    /* Any non-NULL value arms the destructor. May allocate (keys >= 32):
     * the cache is LIVE already, so that nested malloc is an ordinary one. */
    if (exit_key_ready)
        pthread_setspecific(exit_key, tc);
}

/* Slow start: one more per miss or overflow up to a batch, then a batch more
 * per miss up to the cap. A class a thread uses rarely keeps a list of one or
 * two objects instead of a whole batch. */
static void grow_max(ap_tlist_t *l, uint32_t cls)
{
    uint32_t batch = ap_class_batch[cls], cap = ap_class_cap[cls];
    if (l->max < batch)
        l->max++;
    else if (l->max < cap)
        l->max = l->max + batch < cap ? l->max + batch : cap;
}

void *ap_tcache_alloc_slow(uint32_t cls)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (ap_unlikely(tc->state != AP_TC_LIVE)) {
        if (tc->state == AP_TC_DEAD)
            return ap_small_alloc_nocache(cls);
        tcache_setup(tc);
    }
    ap_tlist_t *l = &tc->list[cls];
    if (l->head)
        return ap_tcache_pop(cls);
    uint32_t batch = ap_class_batch[cls];
    uint32_t n = l->max < batch ? l->max : batch;
    grow_max(l, cls);
    void *buf[64], *chain;
    uint32_t stride;
    /* a warm list may take a whole span's free list, up to its cap; fresh
     * objects come as a range, linked here */
    int got = ap_central_refill(tc->shard, cls, buf, (int)n, n == batch ? ap_class_cap[cls] : 0,
                                &chain, &stride);
    if (chain && stride) { /* fresh objects in a row: link them behind the first */
        char *first = chain;
        for (int i = 1; i + 1 < got; i++)
            *(void **)(first + (size_t)i * stride) = first + (size_t)(i + 1) * stride;
        if (got > 1) {
            *(void **)(first + (size_t)(got - 1) * stride) = NULL; /* the list was empty */
            l->head = first + stride;
        }
        l->count = (uint32_t)(got - 1);
        return chain;
    }
    if (chain) {
        l->head = *(void **)chain; /* the chain ends in NULL, as the empty list did */
        l->count = (uint32_t)(got - 1);
        return chain;
    }
    if (got == 0)
        return NULL;
    for (int i = 1; i < got - 1; i++)
        *(void **)buf[i] = buf[i + 1];
    if (got > 1) {
        *(void **)buf[got - 1] = l->head;
        l->head = buf[1];
        l->count += (uint32_t)(got - 1);
    }
    return buf[0];
}

/* Send up to n objects from the head of list cls to the central list. */
static void flush_list(ap_tlist_t *l, uint32_t cls, uint32_t n)
{
    void *buf[64];
    if (n > l->count) /* count is the list's exact length */
        n = l->count;
    while (n > 0) {
        uint32_t k = n < 64 ? n : 64;
        void *h = l->head;
        for (uint32_t i = 0; i < k; i++) {
            ap_assert(h != NULL);
            buf[i] = h;
            h = *(void **)h;
        }
        l->head = h;
        l->count -= k;
        n -= k;
        ap_central_insert(cls, buf, (int)k);
    }
}

void ap_tcache_free_slow(uint32_t cls, void *p)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (ap_unlikely(tc->state != AP_TC_LIVE)) {
        if (tc->state == AP_TC_DEAD) {
            ap_central_insert(cls, &p, 1);
            return;
        }
        tcache_setup(tc);
    }
    ap_tlist_t *l = &tc->list[cls];
    if (l->count >= l->max) {
        flush_list(l, cls, ap_class_batch[cls]);
        if (l->max < ap_class_batch[cls])
            l->max++;
    }
    *(void **)p = l->head;
    l->head = p;
    l->count++;
}

void ap_tcache_flush_all(ap_tcache_t *tc)
{
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        flush_list(&tc->list[c], c, UINT32_MAX);
}

void ap_thread_exit(void)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (tc->state != AP_TC_LIVE)
        return;
    ap_tcache_flush_all(tc);
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        tc->list[c].max = 0;
    tc->state = AP_TC_DEAD;
    registry_remove(tc);
}

void ap_tcache_cached_counts(size_t counts[AP_NUM_CLASSES])
{
    ap_lock(&registry_lock);
    for (ap_tcache_t *tc = registry; tc; tc = tc->next)
        for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
            counts[c] += __atomic_load_n(&tc->list[c].count, __ATOMIC_RELAXED);
    ap_unlock(&registry_lock);
}

void ap_tcache_fork_prepare(void)
{
    ap_lock(&registry_lock);
}
void ap_tcache_fork_parent(void)
{
    ap_unlock(&registry_lock);
}

void ap_tcache_fork_child(void)
{
    /* Only the forking thread survives; the others' caches (and what they
     * hold) are unreachable in the child. */
    ap_lock_init(&registry_lock);
    ap_tcache_t *tc = &ap_tls_tcache;
    registry = NULL;
    for (uint32_t i = 0; i < AP_MAX_SHARDS; i++)
        shard_threads[i] = 0;
    if (tc->state == AP_TC_LIVE) {
        tc->next = tc->prev = NULL;
        registry = tc;
        shard_threads[tc->shard] = 1;
    }
}
