/*
 * bucket.c — the profile's state in the process:
 *   - buckets: one per (stack, thread), append-only, with atomic counters
 *     (allocations add, frees of their sampled objects subtract via free_*);
 *     looked up through a hash index under prof_lock;
 *   - live samples: every sampled object still allocated carries its record
 *     (bucket, sizes, weight) in the allocator's tag list of its span
 *     (ap_tag), so its free can be charged to its bucket with the weight it
 *     was sampled with; a counting filter over their addresses answers "not
 *     sampled" for most frees that reach the slow path without a lock;
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

AP_HIDDEN ap_lock_t ap_prof_lock;
AP_HIDDEN _Atomic int64_t ap_prof_inuse_bytes;
AP_HIDDEN _Atomic uint64_t ap_prof_dropped;

AP_HIDDEN ap_bucket_t *ap_buckets;
static _Atomic uint32_t nbuckets;
static ap_id_index_t bucket_index;
static ap_thread_rec_t *threads;
static _Atomic uint32_t nthreads;

/* A counting filter over the live samples' addresses: a free whose slot
 * reads 0 is certainly not sampled and skips the locked table probe. Frees
 * in flagged spans are mostly of unsampled neighbours, so this is the common
 * answer. */
#define FILTER_BITS 16
static _Atomic uint32_t live_filter[1u << FILTER_BITS];

static _Atomic uint32_t *filter_slot(uintptr_t p)
{
    return &live_filter[(uint32_t)((p >> 4) * 0x9E3779B97F4A7C15ull >> (64 - FILTER_BITS))];
}

/* 32-bit counts cannot overflow: a slot would need 2^32 live samples. */
static void filter_add(uintptr_t p, uint32_t d)
{
    atomic_fetch_add_explicit(filter_slot(p), d, memory_order_release);
}

bool ap_live_maybe(uintptr_t p)
{
    return atomic_load_explicit(filter_slot(p), memory_order_acquire) != 0;
}

int ap_bucket_init(void)
{
    ap_buckets = ap_os_map(MAX_BUCKETS * sizeof *ap_buckets);
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
    if (n >= MAX_BUCKETS || !ap_id_index_add(&bucket_index, n, h, slot, bucket_hash_of))
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

/* ---- live samples ----
 * Kept with their objects: the allocator holds each one's record in the
 * object's span (ap_tag), under a lock striped by span, which also makes the
 * object's free take the slow path. */

static void pack(const ap_live_t *rec, uint64_t w[AP_TAG_WORDS])
{
    w[0] = (uint64_t)rec->bucket | (uint64_t)rec->class_bytes << 32;
    w[1] = rec->size;
    w[2] = rec->wfp;
}

bool ap_live_insert(const ap_live_t *rec)
{
    uint64_t w[AP_TAG_WORDS];
    pack(rec, w);
    if (!ap_tag((void *)rec->ptr, w)) {
        atomic_fetch_add_explicit(&ap_prof_dropped, 1, memory_order_relaxed);
        return false;
    }
    filter_add(rec->ptr, 1);
    return true;
}

bool ap_live_remove(uintptr_t ptr, ap_live_t *out)
{
    uint64_t w[AP_TAG_WORDS];
    if (!ap_live_maybe(ptr) || !ap_untag((const void *)ptr, w))
        return false;
    filter_add(ptr, (uint32_t)-1);
    out->ptr = ptr;
    out->bucket = (uint32_t)w[0];
    out->class_bytes = (uint32_t)(w[0] >> 32);
    out->size = w[1];
    out->wfp = w[2];
    return true;
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
