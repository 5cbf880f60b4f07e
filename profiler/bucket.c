/*
 * bucket.c — the profile's state in the process:
 *   - buckets: one per (stack, thread), append-only, with atomic counters
 *     (allocations add, frees of their sampled objects subtract via free_*);
 *     looked up through a hash index under prof_lock;
 *   - live samples (inline in profiler_internal.h): every sampled object still
 *     allocated has its record (bucket, sizes, weight) kept by the allocator
 *     (ap_tag: in its span, or in a table under the span's lock), so its
 *     free can be charged to its bucket with the weight it was sampled with;
 *     the counting filter over their addresses lives here;
 *   - threads seen allocating, with their names.
 * All storage is our own mappings (ap_os_map).
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>

#include "id_index.h"
#include "profiler_internal.h"

#define MAX_THREADS 65536

AP_HIDDEN ap_lock_t ap_prof_lock;
AP_HIDDEN _Atomic int64_t ap_prof_inuse_bytes;
AP_HIDDEN _Atomic uint64_t ap_prof_dropped;

AP_HIDDEN ap_bucket_t *ap_buckets;
static _Atomic uint32_t nbuckets;
static ap_id_index_t bucket_index;
static ap_thread_rec_t *threads;
static _Atomic uint32_t nthreads;

AP_HIDDEN _Atomic uint32_t ap_live_filter[1u << AP_LIVE_FILTER_BITS];

int ap_bucket_init(void)
{
    ap_buckets = ap_os_map(AP_MAX_BUCKETS * sizeof *ap_buckets);
    threads = ap_os_map(MAX_THREADS * sizeof *threads);
    return ap_buckets && threads && ap_id_index_init(&bucket_index, 1u << 12) ? 0 : -1;
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
    return key_hash(ap_buckets[idx].stack_id, ap_buckets[idx].tid);
}

static bool bucket_matches(uint32_t idx, const void *key)
{
    const uint32_t *k = key; /* {stack_id, tid} */
    return ap_buckets[idx].stack_id == k[0] && ap_buckets[idx].tid == k[1];
}

uint32_t ap_bucket_get_locked(uint32_t stack_id, uint32_t tid)
{
    const uint32_t key[2] = {stack_id, tid};
    uint32_t h = key_hash(stack_id, tid), slot;
    uint32_t idx = ap_id_index_find(&bucket_index, h, bucket_matches, key, &slot);
    if (idx != UINT32_MAX)
        return idx;
    uint32_t n = atomic_load_explicit(&nbuckets, memory_order_relaxed);
    if (n >= AP_MAX_BUCKETS || !ap_id_index_add(&bucket_index, n, h, slot, bucket_hash_of))
        return UINT32_MAX;
    ap_buckets[n].stack_id = stack_id;
    ap_buckets[n].tid = tid;
    atomic_store_explicit(&nbuckets, n + 1, memory_order_release);
    return n;
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

/* ---- fork ---- */

void ap_bucket_fork_prepare(void)
{
    ap_lock(&ap_prof_lock);
}

void ap_bucket_fork_parent(void)
{
    ap_unlock(&ap_prof_lock);
}

void ap_bucket_fork_child(void)
{
    ap_lock_init(&ap_prof_lock);
    /* the child writes everything afresh under its own process row */
    uint32_t n = ap_bucket_count();
    for (uint32_t i = 0; i < n; i++) {
        ap_bucket_t *b = &ap_buckets[i];
        b->w_alloc_wfp = b->w_free_wfp = b->w_samples = b->w_alloc_bytes = b->w_free_bytes = 0;
    }
    uint32_t t = ap_thread_count();
    for (uint32_t i = 0; i < t; i++)
        threads[i].written = false;
}
