/*
 * tcache.c — per-thread caches: one stack of free objects per size class, in
 * initial-exec TLS (no lookup, no lock). Each stack is an array of object
 * pointers (ap_tlist_t); a thread's arrays share one mapping, its slot block,
 * made when its cache is set up and unmapped when the thread exits. The fast
 * paths are in tcache_inline.h; this file holds their slow halves:
 *   - a list's max starts at 1; each miss fetches min(max, batch) objects
 *     from the central list, and misses and overflows raise max by one up to
 *     a batch (ap_class_batch), then misses by a batch up to ap_class_cap
 *     (tcmalloc's slow start: classes a thread uses rarely stay tiny);
 *   - an overflow (max objects held) sends one batch back to the central list;
 *   - budget: the lists hold at most ap_tcache_budget() bytes (1 MiB, less
 *     with more than 32 live threads) beyond one object per class (sum of
 *     (max - 1) * size, kept in `grown`); a class that
 *     would grow past it halves other classes' max, round robin, flushing
 *     what they held above it (steal_capacity), so a thread that goes idle
 *     keeps a bounded amount whatever it did before.
 * Arrays rather than linked lists: moving a batch in or out is a memcpy that
 * touches no object (a linked list has to read or write every object, each
 * a likely cache miss), and the fast paths carry no count from call to call.
 * A free from another thread needs nothing special: the object goes to the
 * freeing thread's cache and reaches its span through the central list.
 *
 * Lifecycle: NEW (all zero) -> LIVE on the first slow-path call, which takes
 * a slot block, registers the cache and arms a pthread key whose
 * destructor drains it at thread exit -> DEAD: the lists are zero again, so
 * every malloc and free of the exiting thread goes straight to the central
 * lists. A thread whose slot block cannot be had is DEAD from the start.
 * Slot blocks of exited threads are kept (up to AP_SPARE_BLOCKS) for the
 * next new thread: a program that starts a thread per task pays no mmap,
 * no munmap and no page faults for its caches (a block's pages are touched
 * as its lists fill; a reused one's are resident already).
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
#include <string.h>

#include "tcache_inline.h"

AP_HIDDEN AP_TLS ap_tcache_t ap_tls_tcache;
AP_HIDDEN uint32_t ap_tcache_slot_off[AP_NUM_CLASSES];
AP_HIDDEN uint32_t ap_tcache_slot_total;

static ap_lock_t registry_lock;
static ap_tcache_t *registry;
static uint32_t shard_threads[AP_MAX_SHARDS]; /* live caches per shard */
static _Atomic uint32_t live_caches;          /* registered caches, for the budget */
static pthread_key_t exit_key;
static bool exit_key_ready;

/* Slot blocks of exited threads, for new ones (registry lock); each
 * block's first word links the next. */
#define AP_SPARE_BLOCKS 64
static void **spare_blocks;
static uint32_t nspare;

void ap_tcache_init(void)
{
    uint32_t off = 0;
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        ap_assert(ap_class_cap[c] * sizeof(void *) <= 8192); /* 16-bit positions */
        ap_tcache_slot_off[c] = off;
        off += ap_class_cap[c];
    }
    ap_tcache_slot_total = off;
}

static size_t slot_block_bytes(void)
{
    return ((size_t)ap_tcache_slot_total * sizeof(void *) + AP_PAGE_MASK) & ~AP_PAGE_MASK;
}

/* The end of list cls's array: head is here when the list is empty. */
static inline void **list_end(const ap_tcache_t *tc, uint32_t cls)
{
    return tc->slots + ap_tcache_slot_off[cls] + ap_class_cap[cls];
}

/* Objects in list cls of a LIVE cache, its own thread looking. */
static inline uint32_t held(const ap_tcache_t *tc, uint32_t cls)
{
    return (uint32_t)(list_end(tc, cls) - tc->list[cls].head);
}

uint32_t ap_tlist_count(const ap_tcache_t *tc, uint32_t cls)
{
    void **h = __atomic_load_n(&tc->list[cls].head, __ATOMIC_RELAXED);
    return h && tc->slots ? (uint32_t)(list_end(tc, cls) - h) : 0;
}

static void set_max(ap_tcache_t *tc, uint32_t cls, uint32_t max)
{
    ap_tlist_t *l = &tc->list[cls];
    ap_assert(max >= 1 && max <= ap_class_cap[cls]);
    if (l->max) /* set up already: the budget counts what it grew by */
        tc->grown =
            tc->grown - (l->max - 1u) * ap_class_size[cls] + (max - 1u) * ap_class_size[cls];
    l->max = (uint16_t)max;
    l->lo_full = (uint16_t)(uintptr_t)(list_end(tc, cls) - max);
}

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
    atomic_fetch_add_explicit(&live_caches, 1, memory_order_relaxed);
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
    atomic_fetch_sub_explicit(&live_caches, 1, memory_order_relaxed);
    ap_unlock(&registry_lock);
}

static void **take_block(void)
{
    ap_lock(&registry_lock);
    void **b = spare_blocks;
    if (b) {
        spare_blocks = (void **)b[0];
        nspare--;
    }
    ap_unlock(&registry_lock);
    return b ? b : ap_os_map(slot_block_bytes());
}

static void give_block(void **b)
{
    ap_lock(&registry_lock);
    bool keep = nspare < AP_SPARE_BLOCKS;
    if (keep) {
        b[0] = spare_blocks;
        spare_blocks = b;
        nspare++;
    }
    ap_unlock(&registry_lock);
    if (!keep)
        ap_os_unmap(b, slot_block_bytes());
}

size_t ap_tcache_trim(void)
{
    ap_lock(&registry_lock);
    void **b = spare_blocks;
    spare_blocks = NULL;
    nspare = 0;
    ap_unlock(&registry_lock);
    size_t n = 0;
    while (b) {
        void **next = (void **)b[0];
        ap_os_unmap(b, slot_block_bytes());
        n += slot_block_bytes();
        b = next;
    }
    return n;
}

static void tcache_setup(ap_tcache_t *tc)
{
    ap_ensure_init();
    tc->slots = take_block();
    if (!tc->slots) { /* no cache: straight to the central lists */
        tc->state = AP_TC_DEAD;
        return;
    }
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        void **end = list_end(tc, c);
        tc->list[c].head = end;
        tc->list[c].lo_empty = (uint16_t)(uintptr_t)end;
        set_max(tc, c, 1);
    }
    tc->grown = 0;
    tc->steal_next = 1;
    tc->state = AP_TC_LIVE;
    registry_add(tc);
    /* Any non-NULL value arms the destructor. May allocate (keys >= 32):
     * the cache is LIVE already, so that nested malloc is an ordinary one. */
    if (exit_key_ready)
        pthread_setspecific(exit_key, tc);
}

static void flush_list(ap_tcache_t *tc, uint32_t cls, uint32_t n);

/* A thread's budget now: clamp(32 MiB / live threads, 128 KiB, 1 MiB). */
uint32_t ap_tcache_budget(void)
{
    uint32_t n = atomic_load_explicit(&live_caches, memory_order_relaxed);
    uint32_t b = AP_TCACHE_BUDGET_ALL / (n ? n : 1);
    return b > AP_TCACHE_BUDGET       ? AP_TCACHE_BUDGET
           : b < AP_TCACHE_BUDGET_MIN ? AP_TCACHE_BUDGET_MIN
                                      : b;
}

/* Makes room for `need` more bytes of capacity under the thread's budget by
 * halving other classes' capacity, round robin (tcmalloc steals the same
 * way), their objects above the new capacity going to the central lists.
 * A class the thread uses gets its capacity back on its next misses; one it
 * has stopped using keeps a single object. Returns whether it made room. */
static bool steal_capacity(ap_tcache_t *tc, uint32_t cls, uint32_t need, uint32_t budget)
{
    for (uint32_t i = 0; i < AP_NUM_CLASSES && tc->grown + need > budget; i++) {
        uint32_t c = tc->steal_next;
        tc->steal_next = c + 1 < AP_NUM_CLASSES ? c + 1 : 1;
        uint32_t max = tc->list[c].max;
        if (c == cls || c == 0 || max <= 1)
            continue;
        uint32_t keep = max / 2, n = held(tc, c);
        if (n > keep)
            flush_list(tc, c, n - keep);
        set_max(tc, c, keep);
    }
    return tc->grown + need <= budget;
}

/* Slow start: one more per miss or overflow up to a batch, then a batch more
 * per miss up to the cap, within the thread's budget. A class a thread uses
 * rarely keeps a list of one or two objects instead of a whole batch. */
static void grow_max(ap_tcache_t *tc, uint32_t cls)
{
    uint32_t batch = ap_class_batch[cls], cap = ap_class_cap[cls], old = tc->list[cls].max;
    uint32_t max = old;
    if (max < batch)
        max++;
    else if (max < cap)
        max = max + batch < cap ? max + batch : cap;
    if (max == old)
        return;
    uint32_t size = ap_class_size[cls], budget = ap_tcache_budget();
    if (!steal_capacity(tc, cls, (max - old) * size, budget)) {
        uint32_t room = budget > tc->grown ? (budget - tc->grown) / size : 0;
        max = old + room;
        if (max == old)
            return;
    }
    set_max(tc, cls, max);
}

void *ap_tcache_alloc_slow(uint32_t cls)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (ap_unlikely(tc->state != AP_TC_LIVE)) {
        if (tc->state == AP_TC_DEAD)
            return ap_small_alloc_nocache(cls);
        tcache_setup(tc);
        if (tc->state != AP_TC_LIVE)
            return ap_small_alloc_nocache(cls);
    }
    ap_tlist_t *l = &tc->list[cls];
    void *p = ap_tcache_pop(cls);
    if (p)
        return p;
    if (++tc->tick_count >= 64) { /* a program that runs on cached objects still decays */
        tc->tick_count = 0;
        ap_pageheap_tick();
    }
    uint32_t batch = ap_class_batch[cls];
    uint32_t n = l->max < batch ? l->max : batch;
    grow_max(tc, cls);
    void *buf[64], *chain;
    uint32_t stride;
    /* a warm list may take a whole span's free list, up to its cap; fresh
     * objects come as a range */
    int got = ap_central_refill(ap_class_shard(tc, cls), cls, buf, (int)n, n == batch ? l->max : 0,
                                &chain, &stride);
    if (got == 0)
        return NULL;
    /* the list is empty: the objects after the first go below its end, the
     * last handed out first (for a range: in address order) */
    void **end = list_end(tc, cls), **h = end - (got - 1);
    if (chain && stride) {
        char *first = chain;
        for (int i = 1; i < got; i++)
            h[i - 1] = first + (size_t)i * stride;
        l->head = h;
        return first;
    }
    if (chain) { /* a span's free list, NULL-terminated, at most max objects */
        void *q = *(void **)chain;
        for (int i = 0; i < got - 1; i++, q = *(void **)q)
            h[i] = q;
        l->head = h;
        return chain;
    }
    memcpy(h, buf + 1, (size_t)(got - 1) * sizeof(void *));
    l->head = h;
    return buf[0];
}

/* Send up to n objects from the top of list cls to the central list. */
static void flush_list(ap_tcache_t *tc, uint32_t cls, uint32_t n)
{
    ap_tlist_t *l = &tc->list[cls];
    uint32_t count = held(tc, cls);
    if (n > count)
        n = count;
    while (n > 0) {
        uint32_t k = n < 64 ? n : 64;
        void **h = l->head;
        l->head = h + k;
        n -= k;
        ap_central_insert(cls, h, (int)k); /* copies them before returning */
    }
}

void ap_tcache_free_slow(uint32_t cls, void *p)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (ap_unlikely(tc->state != AP_TC_LIVE)) {
        if (tc->state == AP_TC_NEW)
            tcache_setup(tc);
        if (tc->state != AP_TC_LIVE) {
            ap_central_insert(cls, &p, 1);
            return;
        }
    }
    ap_tlist_t *l = &tc->list[cls];
    if (held(tc, cls) >= l->max) {
        flush_list(tc, cls, ap_class_batch[cls]);
        if (l->max < ap_class_batch[cls])
            grow_max(tc, cls);
    }
    *--l->head = p;
}

void ap_tcache_flush_all(ap_tcache_t *tc)
{
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        flush_list(tc, c, UINT32_MAX);
}

void ap_thread_exit(void)
{
    ap_tcache_t *tc = &ap_tls_tcache;
    if (tc->state != AP_TC_LIVE)
        return;
    ap_tcache_flush_all(tc);
    tc->state = AP_TC_DEAD;
    registry_remove(tc); /* stats no longer look at its lists */
    memset(tc->list, 0, sizeof tc->list);
    give_block(tc->slots);
    tc->slots = NULL;
    ap_pageheap_working_set_ended();
}

void ap_tcache_cached_counts(size_t counts[AP_NUM_CLASSES])
{
    ap_lock(&registry_lock);
    for (ap_tcache_t *tc = registry; tc; tc = tc->next)
        for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
            counts[c] += ap_tlist_count(tc, c);
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
    atomic_store_explicit(&live_caches, tc->state == AP_TC_LIVE, memory_order_relaxed);
    if (tc->state == AP_TC_LIVE) {
        tc->next = tc->prev = NULL;
        registry = tc;
        shard_threads[tc->shard] = 1;
    }
}
