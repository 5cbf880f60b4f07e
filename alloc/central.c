/*
 * central.c — the central free lists: one per shard and size class, each
 * behind its own lock (so threads working on different classes or shards
 * never contend).
 *
 * Shards: there is one per CPU the process may run on (at most
 * AP_MAX_SHARDS), and each thread uses one, chosen when its cache is set up
 * (the shard with the fewest live threads: tcache.c). A shard's spans hand
 * their objects only to its own threads, so threads running side by side do
 * not get objects that share a cache line with each other's. With one list
 * per class, two threads churning 16..512-byte blocks (bench threads) ran
 * 1.5x slower than one: each write to a block invalidated the line holding
 * the other thread's neighbouring block. An object freed by a thread of
 * another shard joins that thread's cache and shard; when it goes back to a
 * span, it goes to its own span, under the owning shard's lock. Classes of
 * AP_SHARED_FROM (1 KiB) and more use shard 0 only (ap_class_shard): little
 * false sharing there, and per-shard partly used spans of 8..128 KiB each.
 *
 * Each list has two tiers, tried in order:
 *   1. the transfer cache: a plain array of object pointers. Thread caches
 *      move whole batches in and out with one memcpy, so the common
 *      refill/flush touches no object and no span;
 *   2. the shard's spans of the class: each SMALL span hands out objects from
 *      its own free list, then from a bump pointer over never-used memory
 *      (pages stay untouched, hence not resident, until first handed out).
 *      Spans with objects to give are on the `nonempty` list; a span whose
 *      objects have all come back is returned to the page heap at once.
 * Objects go back into their spans only when the transfer cache is full.
 *
 * Invariant, per class over all shards: sum over the class's spans of
 * `allocated` = sum of nout + tc_count (a shard's nout alone may wrap: its
 * threads may give back objects another shard handed out).
 * Lock order: central lock -> page heap lock; two central locks are never
 * held at once. See docs/architecture.md.
 */
#include <string.h>

#include "alloc_internal.h"

AP_HIDDEN ap_central_t ap_central[AP_MAX_SHARDS][AP_NUM_CLASSES];
AP_HIDDEN uint32_t ap_nshards = 1;
AP_HIDDEN _Atomic bool ap_shard_ready[AP_MAX_SHARDS];

static void list_init(ap_span_t *h)
{
    h->next = h->prev = h;
}

static void span_list_push(ap_central_t *c, ap_span_t *s)
{
    ap_span_t *h = &c->nonempty;
    s->prev = h;
    s->next = h->next;
    h->next->prev = s;
    h->next = s;
    s->in_list = 1;
}

static void span_list_remove(ap_span_t *s)
{
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->in_list = 0;
}

/* 8 KiB of objects, at least one batch. Every object parked here is
 * resident, and pins its span: a class used now and then fills its transfer
 * cache over time. 128 KiB caps held 1.6 MiB in the threads benchmark's
 * 1-16 KiB classes, for 0.5 MiB in use. At 32 KiB and two batches the caches
 * still held 1.3 MiB of the threads benchmark's 8.5 MiB peak (3.1 MiB in
 * use); 8 KiB and one batch: peak RSS threads 8.0 -> 7.9 MiB, server 12.3 ->
 * 11.5, churn 3.3 -> 3.1, same wall times (bench/run workloads, 3 runs).
 * Without any transfer cache: server 10.5 MiB, but shortthreads +19 % and
 * prodcons +30 % wall time (a thread's exit and a consumer's frees then write
 * every object into its span). */
static uint32_t transfer_cap(uint32_t cls)
{
    uint32_t batch = ap_class_batch[cls];
    uint32_t cap = (8u << 10) / ap_class_size[cls];
    if (cap < batch)
        cap = batch;
    if (cap > 1024)
        cap = 1024;
    return cap / batch * batch;
}

void ap_central_shard_init(uint32_t shard)
{
    if (atomic_load_explicit(&ap_shard_ready[shard], memory_order_acquire))
        return;
    size_t slots = 0;
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
        slots += transfer_cap(c);
    void **mem = ap_os_map(slots * sizeof(void *));
    for (uint32_t c = 0; c < AP_NUM_CLASSES; c++) {
        ap_central_t *ce = &ap_central[shard][c];
        ap_lock_init(&ce->lock);
        ce->cls = c;
        ce->shard = shard;
        list_init(&ce->nonempty);
        if (c == 0 || !mem)
            continue; /* without a transfer cache every batch goes to the spans */
        ce->tc_cap = transfer_cap(c);
        ce->tc_slots = mem;
        mem += ce->tc_cap;
    }
    atomic_store_explicit(&ap_shard_ready[shard], true, memory_order_release);
}

void ap_central_init(void)
{
    uint32_t n = ap_os_ncpus();
    ap_nshards = n > AP_MAX_SHARDS ? AP_MAX_SHARDS : n;
    ap_central_shard_init(0);
}

static ap_span_t *new_span_locked(ap_central_t *c)
{
    uint32_t cls = c->cls;
    size_t ndirty;
    ap_span_t *s = ap_pageheap_alloc(ap_class_pages[cls], 1, (uint8_t)cls, &ndirty);
    if (!s)
        return NULL;
    s->freelist = NULL;
    s->nfree = 0;
    s->bump = (char *)s->start;
    s->limit = (char *)s->start + (size_t)ap_class_objs[cls] * ap_class_size[cls];
    s->allocated = 0;
    s->shard = (uint8_t)c->shard;
    c->nspans++;
    c->span_objs_free += ap_class_objs[cls];
    span_list_push(c, s);
    return s;
}

static int fill_from_spans_locked(ap_central_t *c, void **out, int n)
{
    uint32_t size = ap_class_size[c->cls];
    int got = 0;
    while (got < n) {
        ap_span_t *s = c->nonempty.next;
        if (s == &c->nonempty && !(s = new_span_locked(c)))
            break;
        int before = got;
        while (got < n && s->freelist) {
            void *p = s->freelist;
            s->freelist = *(void **)p;
            s->nfree--;
            out[got++] = p;
        }
        int k = n - got, left = (int)((size_t)(s->limit - s->bump) / size);
        if (k > left)
            k = left;
        char *b = s->bump;
        for (int i = 0; i < k; i++)
            out[got + i] = b + (size_t)i * size;
        got += k;
        s->bump = b + (size_t)k * size;
        s->allocated += (uint32_t)(got - before);
        if (!s->freelist && s->bump >= s->limit)
            span_list_remove(s);
    }
    c->span_objs_free -= (size_t)got;
    return got;
}

/* Up to max never-used objects of span s (no free list): a range the
 * caller links outside the lock (the first touch of fresh pages, with its
 * page faults, should not hold the class's lock). Returns how many (>= 1). */
static int bump_range_locked(ap_central_t *c, ap_span_t *s, uint32_t max, void **first)
{
    uint32_t size = ap_class_size[c->cls];
    uint32_t k = (uint32_t)((size_t)(s->limit - s->bump) / size);
    if (k > max)
        k = max;
    *first = s->bump;
    s->bump += (size_t)k * size;
    s->allocated += k;
    if (s->bump >= s->limit)
        span_list_remove(s);
    c->span_objs_free -= k;
    return (int)k;
}
/* Objects of c's class back into their spans. Those whose span belongs to
 * another shard are left in foreign[0..*nforeign) for the caller to give to
 * their shard once c's lock is dropped (release_foreign). */
static void release_to_spans_locked(ap_central_t *c, void **objs, int n, void **foreign,
                                    int *nforeign)
{
    for (int i = 0; i < n; i++) {
        void *p = objs[i];
        ap_span_t *s = ap_pagemap_span(p);
        ap_assert(s && s->state == AP_SPAN_SMALL && s->sizeclass == c->cls);
        if (s->shard != c->shard) {
            foreign[(*nforeign)++] = p;
            continue;
        }
        *(void **)p = s->freelist;
        /* neighbours on the same page (a batch freed in address order) go
         * onto the list without another page-map lookup or span update */
        uint32_t k = 1;
        uintptr_t page = (uintptr_t)p >> AP_PAGE_SHIFT;
        for (void *q; i + 1 < n && (uintptr_t)(q = objs[i + 1]) >> AP_PAGE_SHIFT == page; i++) {
            *(void **)q = p;
            p = q;
            k++;
        }
        s->freelist = p;
        s->nfree += k;
        s->allocated -= k;
        c->span_objs_free += k;
        if (s->allocated == 0) {
            if (s->in_list)
                span_list_remove(s);
            c->nspans--;
            c->span_objs_free -= ap_class_objs[c->cls];
            ap_pageheap_free(s);
        } else if (!s->in_list) {
            span_list_push(c, s);
        }
    }
}

/* Give objects of other shards' spans (no central lock held) to their
 * shards, one lock at a time; objs is reordered. */
static void release_foreign(uint32_t cls, void **objs, int n)
{
    while (n > 0) {
        uint32_t shard = ap_pagemap_span(objs[0])->shard;
        int k = 0;
        for (int i = 0; i < n; i++) { /* this shard's objects to the front */
            if (ap_pagemap_span(objs[i])->shard == shard) {
                void *t = objs[k];
                objs[k++] = objs[i];
                objs[i] = t;
            }
        }
        ap_central_t *c = &ap_central[shard][cls];
        int none = 0;
        ap_lock(&c->lock);
        release_to_spans_locked(c, objs, k, NULL, &none);
        ap_unlock(&c->lock);
        objs += k;
        n -= k;
    }
}

int ap_central_refill(uint32_t shard, uint32_t cls, void **out, int n, uint32_t max_chain,
                      void **chain, uint32_t *stride)
{
    ap_central_t *c = &ap_central[shard][cls];
    *chain = NULL;
    *stride = 0;
    ap_lock(&c->lock);
    ap_span_t *s = c->nonempty.next;
    int got;
    if (c->tc_count == 0 && s != &c->nonempty && s->freelist && s->nfree <= max_chain) {
        /* the objects were freed in whatever order; walking the list costs
         * a dependent cache miss each, so the caller does it, unlocked */
        got = (int)s->nfree;
        *chain = s->freelist;
        s->freelist = NULL;
        s->nfree = 0;
        s->allocated += (uint32_t)got;
        if (s->bump >= s->limit)
            span_list_remove(s);
        c->span_objs_free -= (size_t)got;
    } else if (c->tc_count == 0 && max_chain &&
               (s != &c->nonempty || (s = new_span_locked(c)) != NULL) && !s->freelist &&
               s->bump < s->limit) {
        /* fresh objects: a range; the caller computes their addresses */
        got = bump_range_locked(c, s, (uint32_t)n, chain);
        *stride = ap_class_size[cls];
    } else if (c->tc_count >= (uint32_t)n) {
        c->tc_count -= (uint32_t)n;
        memcpy(out, c->tc_slots + c->tc_count, (size_t)n * sizeof(void *));
        got = n;
    } else {
        got = (int)c->tc_count;
        memcpy(out, c->tc_slots, (size_t)got * sizeof(void *));
        c->tc_count = 0;
        got += fill_from_spans_locked(c, out + got, n - got);
    }
    c->nout += (size_t)got;
    ap_unlock(&c->lock);
    return got;
}

int ap_central_remove(uint32_t shard, uint32_t cls, void **out, int n)
{
    void *chain;
    uint32_t stride;
    return ap_central_refill(shard, cls, out, n, 0, &chain, &stride);
}

void ap_central_insert(uint32_t cls, void **objs, int n)
{
    /* A batch goes to the shard whose span holds its first object: freed by
     * another shard's thread (a consumer's frees), it goes back to the
     * threads that allocate from there (the producer) through the transfer
     * cache, not one by one through the spans. Its other objects are most
     * likely from the same shard; any that are not go home when released. */
    ap_central_t *c = &ap_central[ap_pagemap_span(objs[0])->shard][cls];
    void *foreign[64];
    int nforeign = 0;
    ap_assert(n <= 64);
    ap_lock(&c->lock);
    c->nout -= (size_t)n;
    if (c->tc_count + (uint32_t)n <= c->tc_cap) {
        memcpy(c->tc_slots + c->tc_count, objs, (size_t)n * sizeof(void *));
        c->tc_count += (uint32_t)n;
    } else {
        release_to_spans_locked(c, objs, n, foreign, &nforeign);
    }
    ap_unlock(&c->lock);
    if (nforeign)
        release_foreign(cls, foreign, nforeign);
}

void ap_central_drain(uint32_t shard, uint32_t cls)
{
    ap_central_t *c = &ap_central[shard][cls];
    void *foreign[64];
    for (;;) { /* 64 at a time: the foreign ones wait outside the lock */
        int nforeign = 0;
        ap_lock(&c->lock);
        uint32_t k = c->tc_count < 64 ? c->tc_count : 64;
        c->tc_count -= k;
        release_to_spans_locked(c, c->tc_slots + c->tc_count, (int)k, foreign, &nforeign);
        ap_unlock(&c->lock);
        if (nforeign)
            release_foreign(cls, foreign, nforeign);
        if (k == 0)
            return;
    }
}

void *ap_small_alloc_nocache(uint32_t cls)
{
    void *p;
    return ap_central_remove(ap_class_shard(&ap_tls_tcache, cls), cls, &p, 1) == 1 ? p : NULL;
}
