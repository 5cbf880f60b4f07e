/*
 * bucket.c — the profile's state in the process:
 *   - buckets: one per (stack, thread), append-only, with atomic counters
 *     (allocations add, frees of their sampled objects subtract via free_*);
 *     looked up through a hash index under prof_lock;
 *   - live samples: every sampled object still allocated, keyed by address,
 *     so its free can be charged to its bucket with the weight it was
 *     sampled with. 64 stripes, each an open-addressing table with its own
 *     lock, so frees on different threads rarely meet;
 *   - threads seen allocating, with their names.
 * All storage is our own mappings (ap_os_map).
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "id_index.h"
#include "profiler_internal.h"

#define MAX_BUCKETS (1u << 22)
#define MAX_THREADS 65536
#define STRIPES 64

AP_HIDDEN ap_lock_t ap_prof_lock;
AP_HIDDEN _Atomic int64_t ap_prof_inuse_bytes;
AP_HIDDEN _Atomic uint64_t ap_prof_dropped;

static ap_bucket_t *buckets;
static _Atomic uint32_t nbuckets;
static ap_id_index_t bucket_index;
static ap_thread_rec_t *threads;
static _Atomic uint32_t nthreads;

typedef struct {
    ap_lock_t lock;
    uint32_t cap, used, tomb;
    ap_live_t *tab; /* ptr 0 = empty, 1 = tombstone */
} __attribute__((aligned(64))) stripe_t;

static stripe_t stripes[STRIPES];

/* A counting filter over the live samples' addresses: a free whose slot
 * reads 0 is certainly not sampled and skips the locked table probe. Frees
 * in flagged spans are mostly of unsampled neighbours, so this is the common
 * answer. A counter that reaches its maximum stays there (never a false 0). */
#define FILTER_BITS 16
static _Atomic uint16_t live_filter[1u << FILTER_BITS];

static _Atomic uint16_t *filter_slot(uintptr_t p)
{
    return &live_filter[(uint32_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> (64 - FILTER_BITS))];
}

static void filter_add(uintptr_t p, int d)
{
    _Atomic uint16_t *c = filter_slot(p);
    uint16_t v = atomic_load_explicit(c, memory_order_relaxed);
    do {
        if (v == UINT16_MAX || (d < 0 && v == 0))
            return;
    } while (!atomic_compare_exchange_weak_explicit(c, &v, (uint16_t)(v + d), memory_order_release,
                                                    memory_order_relaxed));
}

bool ap_live_maybe(uintptr_t p)
{
    return atomic_load_explicit(filter_slot(p), memory_order_acquire) != 0;
}

int ap_bucket_init(void)
{
    buckets = ap_os_map(MAX_BUCKETS * sizeof *buckets);
    threads = ap_os_map(MAX_THREADS * sizeof *threads);
    return buckets && threads && ap_id_index_init(&bucket_index, 1u << 12) ? 0 : -1;
}

static uint32_t mix32(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static uint32_t key_hash(uint32_t stack_id, uint32_t tid)
{
    return mix32((uint64_t)stack_id << 32 | tid);
}

static uint32_t bucket_hash_of(uint32_t idx)
{
    return key_hash(buckets[idx].stack_id, buckets[idx].tid);
}

static bool bucket_matches(uint32_t idx, const void *key)
{
    const uint32_t *k = key; /* {stack_id, tid} */
    return buckets[idx].stack_id == k[0] && buckets[idx].tid == k[1];
}

uint32_t ap_bucket_get_locked(uint32_t stack_id, uint32_t tid)
{
    const uint32_t key[2] = {stack_id, tid};
    uint32_t h = key_hash(stack_id, tid), slot;
    uint32_t idx = ap_id_index_find(&bucket_index, h, bucket_matches, key, &slot);
    if (idx != UINT32_MAX)
        return idx;
    uint32_t n = atomic_load_explicit(&nbuckets, memory_order_relaxed);
    if (n >= MAX_BUCKETS || !ap_id_index_add(&bucket_index, n, h, slot, bucket_hash_of))
        return UINT32_MAX;
    buckets[n].stack_id = stack_id;
    buckets[n].tid = tid;
    atomic_store_explicit(&nbuckets, n + 1, memory_order_release);
    return n;
}

ap_bucket_t *ap_bucket_at(uint32_t idx)
{
    return &buckets[idx];
}
uint32_t ap_bucket_count(void)
{
    return atomic_load_explicit(&nbuckets, memory_order_acquire);
}

/* ---- threads ---- */

void ap_thread_note_locked(uint32_t tid)
{
    uint32_t n = atomic_load_explicit(&nthreads, memory_order_relaxed);
    for (uint32_t i = n; i-- > 0;) /* recent threads are at the end */
        if (threads[i].tid == tid)
            return;
    if (n >= MAX_THREADS)
        return;
    threads[n].tid = tid;
    threads[n].written = false;
    if (tid == ap_prof_tid())
        prctl(PR_GET_NAME, threads[n].name, 0, 0, 0);
    atomic_store_explicit(&nthreads, n + 1, memory_order_release);
}

uint32_t ap_thread_count(void)
{
    return atomic_load_explicit(&nthreads, memory_order_acquire);
}
ap_thread_rec_t *ap_thread_at(uint32_t i)
{
    return &threads[i];
}

/* ---- live samples ---- */

static uint32_t ptr_hash(uintptr_t p)
{
    return mix32(p >> 4);
}

static bool stripe_resize(stripe_t *st, uint32_t cap)
{
    ap_live_t *t = ap_os_map(cap * sizeof *t);
    if (!t)
        return false;
    for (uint32_t i = 0; i < st->cap; i++) {
        ap_live_t *e = &st->tab[i];
        if (e->ptr <= 1)
            continue;
        uint32_t s = (ptr_hash(e->ptr) / STRIPES) & (cap - 1);
        while (t[s].ptr)
            s = (s + 1) & (cap - 1);
        t[s] = *e;
    }
    if (st->tab)
        ap_os_unmap(st->tab, st->cap * sizeof *st->tab);
    st->tab = t;
    st->cap = cap;
    st->tomb = 0;
    return true;
}

bool ap_live_insert(const ap_live_t *rec)
{
    uint32_t h = ptr_hash(rec->ptr);
    stripe_t *st = &stripes[h % STRIPES];
    ap_lock(&st->lock);
    if ((st->used + st->tomb + 1) * 4 > st->cap * 3) {
        uint32_t cap = st->cap ? st->cap : 256;
        while ((st->used + 1) * 2 > cap)
            cap *= 2;
        if (!stripe_resize(st, cap)) {
            ap_unlock(&st->lock);
            atomic_fetch_add_explicit(&ap_prof_dropped, 1, memory_order_relaxed);
            return false;
        }
    }
    uint32_t s = (h / STRIPES) & (st->cap - 1);
    while (st->tab[s].ptr > 1)
        s = (s + 1) & (st->cap - 1);
    if (st->tab[s].ptr == 1)
        st->tomb--;
    st->tab[s] = *rec;
    st->used++;
    filter_add(rec->ptr, 1);
    ap_unlock(&st->lock);
    return true;
}

bool ap_live_remove(uintptr_t ptr, ap_live_t *out)
{
    if (!ap_live_maybe(ptr))
        return false;
    uint32_t h = ptr_hash(ptr);
    stripe_t *st = &stripes[h % STRIPES];
    bool found = false;
    ap_lock(&st->lock);
    if (st->cap) {
        for (uint32_t s = (h / STRIPES) & (st->cap - 1); st->tab[s].ptr;
             s = (s + 1) & (st->cap - 1)) {
            if (st->tab[s].ptr == ptr) {
                *out = st->tab[s];
                st->tab[s].ptr = 1;
                st->used--;
                filter_add(ptr, -1);
                st->tomb++;
                found = true;
                break;
            }
        }
    }
    ap_unlock(&st->lock);
    return found;
}

/* ---- fork ---- */

void ap_bucket_fork_prepare(void)
{
    ap_lock(&ap_prof_lock);
    for (int i = 0; i < STRIPES; i++)
        ap_lock(&stripes[i].lock);
}

void ap_bucket_fork_parent(void)
{
    for (int i = STRIPES; i-- > 0;)
        ap_unlock(&stripes[i].lock);
    ap_unlock(&ap_prof_lock);
}

void ap_bucket_fork_child(void)
{
    for (int i = 0; i < STRIPES; i++)
        ap_lock_init(&stripes[i].lock);
    ap_lock_init(&ap_prof_lock);
    /* the child writes everything afresh under its own process row */
    uint32_t n = ap_bucket_count();
    for (uint32_t i = 0; i < n; i++) {
        ap_bucket_t *b = &buckets[i];
        b->w_alloc_wfp = b->w_free_wfp = b->w_samples = b->w_alloc_bytes = b->w_free_bytes = 0;
    }
    uint32_t t = ap_thread_count();
    for (uint32_t i = 0; i < t; i++)
        threads[i].written = false;
}
