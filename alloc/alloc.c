/*
 * alloc.c — the allocator's entry points (ap_malloc, ap_free, ...), its
 * one-time initialisation and its fork handlers. Walk-through of a malloc and
 * a free in docs/architecture.md. Size routing:
 *   n <= AP_MAX_SMALL (64 KiB)       size class: thread cache -> central -> page heap
 *   n <  AP_HUGE_THRESHOLD (32 MiB)  LARGE span straight from the page heap
 *   otherwise                        HUGE: its own mapping (large.c)
 * Initialisation is lazy (first slow path) and needs nothing from libc but
 * mmap, so it works for the dynamic loader's first call.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "tcache_inline.h"

AP_HIDDEN _Atomic int ap_initialized;
static ap_lock_t init_lock;

void ap_init_slow(void)
{
    ap_lock(&init_lock);
    if (!atomic_load_explicit(&ap_initialized, memory_order_relaxed)) {
        ap_lock_pid = getpid();
        ap_pageheap_init();
        ap_central_init();
        ap_tcache_init();
        atomic_store_explicit(&ap_initialized, 1, memory_order_release);
    }
    ap_unlock(&init_lock);
}

/* ---- allocation ---- */

void *ap_malloc_slow(size_t n)
{
    if (ap_likely(n <= AP_MAX_SMALL)) {
        uint32_t cls = ap_size_class(n);
        void *p = ap_tcache_pop(cls);
        if (!p && !(p = ap_tcache_alloc_slow(cls)))
            errno = ENOMEM;
        return p;
    }
    return ap_large_alloc(n, 0, false);
}

void *ap_malloc(size_t n)
{
    void *p;
    if (ap_likely(n <= AP_MAX_SMALL) && ap_likely(ap_tcache_try_pop(ap_size_class(n), &p)))
        return p;
    return ap_malloc_slow(n);
}

void ap_free_slow(void *p, uint32_t cls_byte)
{
    uint32_t cls = cls_byte & ~AP_CLASS_FLAG;
    if (cls) {
        ap_tcache_free_slow(cls, p);
        return;
    }
    if (!p)
        return;
    ap_span_t *s = ap_pagemap_span(p);
    if (s && (s->state == AP_SPAN_LARGE || s->state == AP_SPAN_HUGE) && s->start == (uintptr_t)p)
        ap_large_free(s);
    /* else: not ours (or not a block start); ignore rather than corrupt */
}

void ap_free(void *p)
{
    uint32_t c = ap_pagemap_class(p);
    if (ap_likely(ap_class_is_plain(c)) && ap_likely(ap_tcache_push(c, p)))
        return;
    ap_free_slow(p, c);
}

void *ap_calloc(size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    if (n > AP_MAX_SMALL)
        return ap_large_alloc(n, 0, true);
    void *p = ap_malloc(n);
    if (p)
        memset(p, 0, n);
    return p;
}

size_t ap_usable_size(const void *p)
{
    uint32_t c = ap_pagemap_class(p) & ~AP_CLASS_FLAG;
    if (c)
        return ap_class_size[c];
    if (!p)
        return 0;
    ap_span_t *s = ap_pagemap_span(p);
    if (s && (s->state == AP_SPAN_LARGE || s->state == AP_SPAN_HUGE) && s->start == (uintptr_t)p)
        return ap_span_obj_size(s);
    return 0;
}

bool ap_owns(const void *p)
{
    return p && ap_usable_size(p) != 0;
}

/* p's span when p is the start of a large or huge block of ours, else NULL. */
static ap_span_t *large_span(const void *p)
{
    ap_span_t *s = ap_pagemap_span(p);
    if (!s || s->start != (uintptr_t)p || (s->state != AP_SPAN_LARGE && s->state != AP_SPAN_HUGE))
        return NULL;
    return s;
}

bool ap_resize_in_place(void *p, size_t n, uint32_t cls_byte)
{
    uint32_t c = cls_byte & ~AP_CLASS_FLAG;
    if (c)
        return ap_small_resize_fits(c, n);
    ap_span_t *s = large_span(p);
    return s && ap_large_resize_in_place(s, n);
}

void *ap_realloc(void *p, size_t n)
{
    if (!p)
        return ap_malloc(n);
    if (n == 0) {
        ap_free(p);
        return NULL;
    }
    uint32_t c = ap_pagemap_class(p);
    if (ap_resize_in_place(p, n, c))
        return p;
    return ap_realloc_move(p, n, c);
}

void *ap_realloc_move(void *p, size_t n, uint32_t cls_byte)
{
    uint32_t c = cls_byte & ~AP_CLASS_FLAG;
    size_t old;
    if (c) {
        old = ap_class_size[c];
    } else {
        ap_span_t *s = large_span(p);
        if (!s) {
            errno = EINVAL; /* not ours: we cannot know its size */
            return NULL;
        }
        old = ap_span_obj_size(s);
        void *q = ap_large_move(s, n);
        if (q)
            return q;
    }
    /* Growing past the block: take at least 25 % more than it had, so a
     * buffer grown by small steps moves O(log n) times, not once per class.
     * A large block that moves gets room to double in place: pages past what
     * the program writes are never touched (not resident when fresh), and a
     * buffer grown by doubling (Rust's Vec, many C arrays) is copied once per
     * two doublings instead of every time. */
    size_t want = n;
    if (n > old && n <= AP_MAX_SMALL && n < old + old / 4)
        want = old + old / 4 <= AP_MAX_SMALL ? old + old / 4 : AP_MAX_SMALL;
    else if (n > old && n > AP_MAX_SMALL && n < AP_HUGE_THRESHOLD / 2)
        want = 2 * n;
    void *q = ap_malloc(want);
    if (!q && want != n)
        q = ap_malloc(n);
    if (!q)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    ap_free(p);
    return q;
}

void *ap_memalign(size_t align, size_t n)
{
    if (align <= 16)
        return ap_malloc(n);
    if (n <= AP_MAX_SMALL && align <= AP_PAGE_SIZE) {
        /* spans are page aligned, so objects of a class whose size is a
         * multiple of align are aligned */
        for (uint32_t c = ap_size_class(n); c < AP_NUM_CLASSES; c++)
            if (ap_class_size[c] % align == 0) {
                void *p = ap_tcache_pop(c);
                if (!p && !(p = ap_tcache_alloc_slow(c)))
                    errno = ENOMEM;
                return p;
            }
    }
    return ap_large_alloc(n > AP_MAX_SMALL ? n : AP_MAX_SMALL + 1, align, false);
}

/* ---- maintenance ---- */

size_t ap_trim(void)
{
    if (!atomic_load_explicit(&ap_initialized, memory_order_acquire))
        return 0;
    if (ap_tls_tcache.state == AP_TC_LIVE)
        ap_tcache_flush_all(&ap_tls_tcache);
    for (uint32_t sh = 0; sh < AP_MAX_SHARDS; sh++)
        if (atomic_load_explicit(&ap_shard_ready[sh], memory_order_acquire))
            for (uint32_t c = 1; c < AP_NUM_CLASSES; c++)
                ap_central_drain(sh, c);
    return ap_tcache_trim() + ap_pageheap_release_all();
}

void ap_fork_prepare(void)
{
    ap_ensure_init();
    ap_lock(&init_lock);
    ap_tcache_fork_prepare();
    /* no shard is set up meanwhile: that takes the registry lock, held now */
    for (uint32_t sh = 0; sh < AP_MAX_SHARDS; sh++)
        for (uint32_t c = 0; ap_shard_ready[sh] && c < AP_NUM_CLASSES; c++)
            ap_lock(&ap_central[sh][c].lock);
    ap_lock(&ap_heap.lock);
    for (uint32_t i = 0; i < AP_FLAG_LOCKS; i++)
        ap_lock(&ap_flag_locks[i]);
}

void ap_fork_parent(void)
{
    for (uint32_t i = AP_FLAG_LOCKS; i-- > 0;)
        ap_unlock(&ap_flag_locks[i]);
    ap_unlock(&ap_heap.lock);
    for (uint32_t sh = AP_MAX_SHARDS; sh-- > 0;)
        for (uint32_t c = AP_NUM_CLASSES; ap_shard_ready[sh] && c-- > 0;)
            ap_unlock(&ap_central[sh][c].lock);
    ap_tcache_fork_parent();
    ap_unlock(&init_lock);
}

void ap_fork_child(void)
{
    ap_lock_pid = getpid();
    for (uint32_t i = 0; i < AP_FLAG_LOCKS; i++)
        ap_lock_init(&ap_flag_locks[i]);
    ap_lock_init(&ap_heap.lock);
    for (uint32_t sh = 0; sh < AP_MAX_SHARDS; sh++)
        for (uint32_t c = 0; ap_shard_ready[sh] && c < AP_NUM_CLASSES; c++)
            ap_lock_init(&ap_central[sh][c].lock);
    ap_tcache_fork_child();
    ap_lock_init(&init_lock);
}
