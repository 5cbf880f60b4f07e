/*
 * alloc_internal.h — types and cross-file functions of the bundled allocator.
 * Read docs/architecture.md first. Grouped by owning file. Nothing here may be
 * used outside alloc/ except by unit tests and by the shim's inline fast paths
 * (through tcache_inline.h).
 *
 * Locks, in the only order they may be taken:
 *   registry lock (tcache.c) -> central[c].lock (central.c) -> pageheap lock (pageheap.c)
 * No lock is held while calling anything outside alloc/.
 */
#ifndef AP_ALLOC_INTERNAL_H
#define AP_ALLOC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"

/* ------------------------------------------------------------------------ */
/* Compiler helpers and assertions                                          */
/* ------------------------------------------------------------------------ */

#define ap_likely(x) __builtin_expect(!!(x), 1)
#define ap_unlikely(x) __builtin_expect(!!(x), 0)
#define AP_NOINLINE __attribute__((noinline))
#define AP_COLD __attribute__((cold))
#define AP_INLINE static inline __attribute__((always_inline))
#define AP_HIDDEN __attribute__((visibility("hidden")))
#define AP_TLS __thread __attribute__((tls_model("initial-exec")))

#ifndef AP_DEBUG
#define AP_DEBUG 0
#endif

/* Reports through write(2) and aborts; never allocates. */
AP_NOINLINE AP_COLD void ap_assert_fail(const char *expr, const char *file, int line);

/* Level 1: cheap preconditions. Level 3: whole-structure validators. The
 * expression is always type-checked, and compiled away when disabled. */
#define AP_ASSERT_LEVEL(level, e)                                                                  \
    do {                                                                                           \
        if (AP_DEBUG >= (level) && ap_unlikely(!(e)))                                              \
            ap_assert_fail(#e, __FILE__, __LINE__);                                                \
    } while (0)
#define ap_assert(e) AP_ASSERT_LEVEL(1, e)
#define ap_assert_internal(e) AP_ASSERT_LEVEL(2, e)
#define ap_assert_expensive(e) AP_ASSERT_LEVEL(3, e)

/* ------------------------------------------------------------------------ */
/* Size classes (size_classes.c, generated table in size_classes.inc)       */
/* ------------------------------------------------------------------------ */

#include "size_classes.h"

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

#define AP_PAGE_SIZE ((size_t)1 << AP_PAGE_SHIFT)
#define AP_PAGE_MASK (AP_PAGE_SIZE - 1)
/* Allocations at or above this go straight to mmap and back to munmap. */
#define AP_HUGE_THRESHOLD ((size_t)32 << 20)
/* Class byte in the page map: low 7 bits = class, this bit = "flagged" span
 * (holds objects the caller asked to hear about on free: sampled objects). */
#define AP_CLASS_FLAG 0x80u

/* ------------------------------------------------------------------------ */
/* Locks (lock.c): a futex mutex; uncontended lock/unlock is one atomic each */
/* ------------------------------------------------------------------------ */

typedef struct {
    _Atomic uint32_t v; /* 0 free, 1 held, 2 held with waiters */
    int32_t pid;        /* ap_lock_pid when it was taken (lock.c: raw clones) */
} ap_lock_t;

extern int ap_lock_pid; /* the process the locks belong to: set at init and fork */
void ap_lock_slow(ap_lock_t *l);
void ap_unlock_wake(ap_lock_t *l);

AP_INLINE void ap_lock(ap_lock_t *l)
{
    uint32_t z = 0;
    if (ap_unlikely(!atomic_compare_exchange_strong_explicit(&l->v, &z, 1, memory_order_acquire,
                                                             memory_order_relaxed)))
        ap_lock_slow(l);
    l->pid = ap_lock_pid;
}

AP_INLINE void ap_unlock(ap_lock_t *l)
{
    if (ap_unlikely(atomic_exchange_explicit(&l->v, 0, memory_order_release) == 2))
        ap_unlock_wake(l);
}

AP_INLINE void ap_lock_init(ap_lock_t *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_relaxed);
    l->pid = 0;
}

/* ------------------------------------------------------------------------ */
/* OS memory (os.c): the only file that calls mmap/munmap/madvise           */
/* ------------------------------------------------------------------------ */

/* An ops table so tests can inject failures (OOM) and count calls. */
typedef struct {
    void *(*map)(size_t bytes); /* zeroed, AP_PAGE_SIZE-aligned, or NULL */
    void (*unmap)(void *p, size_t bytes);
    void (*release)(void *p, size_t bytes); /* drop pages; they read back as zero */
    /* in place when to is NULL, else moved onto the mapping at to; NULL on failure */
    void *(*remap)(void *p, size_t old_bytes, size_t new_bytes, void *to);
    /* address space only (no access, no memory): AP_PAGE_SIZE-aligned, or NULL */
    void *(*reserve)(size_t bytes);
    /* make [p, p+bytes) of a reservation usable (zero); false on failure */
    bool (*commit)(void *p, size_t bytes);
    /* a coarse monotonic clock in milliseconds (page-heap decay) */
    uint64_t (*now_ms)(void);
} ap_os_ops_t;

extern const ap_os_ops_t ap_os_default_ops;
extern const ap_os_ops_t *ap_os_ops;
/* CPUs this process may run on, at least 1 (os.c: a system call of its own). */
uint32_t ap_os_ncpus(void);

AP_INLINE void *ap_os_map(size_t bytes)
{
    return ap_os_ops->map(bytes);
}
AP_INLINE void ap_os_unmap(void *p, size_t bytes)
{
    ap_os_ops->unmap(p, bytes);
}
AP_INLINE void ap_os_release(void *p, size_t bytes)
{
    ap_os_ops->release(p, bytes);
}
AP_INLINE void *ap_os_remap(void *p, size_t o, size_t n, void *to)
{
    return ap_os_ops->remap(p, o, n, to);
}
AP_INLINE void *ap_os_reserve(size_t bytes)
{
    return ap_os_ops->reserve ? ap_os_ops->reserve(bytes) : NULL;
}
AP_INLINE bool ap_os_commit(void *p, size_t bytes)
{
    return ap_os_ops->commit(p, bytes);
}
AP_INLINE uint64_t ap_os_now_ms(void)
{
    return ap_os_ops->now_ms();
}

/* ------------------------------------------------------------------------ */
/* Spans (pageheap.c)                                                       */
/* ------------------------------------------------------------------------ */

enum ap_span_state {
    AP_SPAN_FREE = 1,  /* in the page heap's free lists */
    AP_SPAN_SMALL = 2, /* carved into objects of one size class (central.c) */
    AP_SPAN_LARGE = 3, /* one allocation of whole pages */
    AP_SPAN_HUGE = 4,  /* one allocation mapped on its own (large.c) */
};

typedef struct ap_span {
    uintptr_t start;      /* address of the first page */
    size_t npages;        /* length in pages (HUGE: mapping length in pages) */
    struct ap_span *next; /* free list (page heap) or span list (central) */
    struct ap_span *prev;
    void *freelist;     /* SMALL: objects returned to this span */
    char *bump;         /* SMALL: next never-handed-out object */
    char *limit;        /* SMALL: end of the last whole object */
    uint32_t allocated; /* SMALL: objects handed out and not returned */
    uint32_t nfree;     /* SMALL: objects on freelist */
    uint8_t sizeclass;  /* SMALL: its class; else 0 */
    uint8_t state;      /* enum ap_span_state */
    uint8_t flagged;    /* SMALL: pages marked: 0 none, 1 flag_page only, 2 several */
    uint8_t shard;      /* SMALL: the central shard whose lists own it */
    uint32_t flag_page; /* SMALL: the marked page (its index in the span) when 1 */
    uint32_t ntags;     /* records attached to its objects (ap_tag) */
    uintptr_t tag_ptr;  /* one of them kept here (0: none), the rest in a table */
    uint64_t tag_data[AP_TAG_WORDS];
    uint8_t in_list;  /* SMALL: on its central nonempty list */
    size_t requested; /* LARGE/HUGE: bytes asked for (usable size is whole pages) */
    size_t ndirty;    /* FREE: pages that may be resident (their page-map dirty bits) */
} ap_span_t;

/* The usable size of an object of span s: its class's size (SMALL), or the
 * whole span (LARGE, HUGE). */
AP_INLINE size_t ap_span_obj_size(const ap_span_t *s)
{
    return s->sizeclass ? ap_class_size[s->sizeclass] : s->npages << AP_PAGE_SHIFT;
}

/* ------------------------------------------------------------------------ */
/* Page map (pagemap.c): page number -> span and class byte                 */
/* ------------------------------------------------------------------------ */

#define AP_ADDR_BITS 48
#define AP_LEAF_BITS 15
#define AP_ROOT_BITS (AP_ADDR_BITS - AP_PAGE_SHIFT - AP_LEAF_BITS)
#define AP_LEAF_LEN ((size_t)1 << AP_LEAF_BITS)
#define AP_ROOT_LEN ((size_t)1 << AP_ROOT_BITS)

typedef struct {
    uint8_t cls[AP_LEAF_LEN];     /* read by the free fast path */
    ap_span_t *span[AP_LEAF_LEN]; /* read by slow paths */
    /* free pages only: bit set = the page may be resident (written since it
     * was last released); clear = released or never used, reads as zero */
    uint64_t dirty[AP_LEAF_LEN / 64];
} ap_pagemap_leaf_t;

/* Root entries hold (leaf address - &ap_pagemap_empty_leaf), so the zeroed
 * root of a fresh process points every address at an all-zero leaf and the
 * fast path needs no NULL check: unknown pointers read class 0. */
extern intptr_t ap_pagemap_root[AP_ROOT_LEN];
extern ap_pagemap_leaf_t ap_pagemap_empty_leaf;

AP_INLINE ap_pagemap_leaf_t *ap_pagemap_leaf(uintptr_t page)
{
    intptr_t off = ap_pagemap_root[(page >> AP_LEAF_BITS) & (AP_ROOT_LEN - 1)];
    return (ap_pagemap_leaf_t *)((char *)&ap_pagemap_empty_leaf + off);
}

/* Class byte of the page holding p (0: not a small object of ours). */
AP_INLINE uint32_t ap_pagemap_class(const void *p)
{
    uintptr_t page = (uintptr_t)p >> AP_PAGE_SHIFT;
    return ap_pagemap_leaf(page)->cls[page & (AP_LEAF_LEN - 1)];
}

AP_INLINE ap_span_t *ap_pagemap_span(const void *p)
{
    uintptr_t page = (uintptr_t)p >> AP_PAGE_SHIFT;
    return ap_pagemap_leaf(page)->span[page & (AP_LEAF_LEN - 1)];
}

/* Setters: page heap lock held. They return -ENOMEM when a leaf cannot be mapped. */
int ap_pagemap_ensure(uintptr_t first_page, size_t npages);
/* One page's class byte (the span entry stays). */
AP_INLINE void ap_pagemap_set_class(uintptr_t page, uint8_t cls)
{
    ap_pagemap_leaf(page)->cls[page & (AP_LEAF_LEN - 1)] = cls;
}
void ap_pagemap_set(uintptr_t page, ap_span_t *s, uint8_t cls);
void ap_pagemap_set_range(uintptr_t first_page, size_t npages, ap_span_t *s, uint8_t cls);
void ap_pagemap_set_class_range(uintptr_t first_page, size_t npages, uint8_t cls);
size_t ap_pagemap_bytes(void); /* metadata mapped for leaves */
/* Dirty bits of a page range (page heap lock held). */
void ap_pagemap_set_dirty(uintptr_t first_page, size_t npages, bool dirty);
size_t ap_pagemap_count_dirty(uintptr_t first_page, size_t npages);
AP_INLINE bool ap_pagemap_is_dirty(uintptr_t page)
{
    size_t i = page & (AP_LEAF_LEN - 1);
    return (ap_pagemap_leaf(page)->dirty[i >> 6] >> (i & 63)) & 1;
}
/* The first run of dirty pages at or after *page and before end: true with
 * *page its first page and *len its length; false when there is none. */
bool ap_pagemap_next_dirty_run(uintptr_t *page, uintptr_t end, size_t *len);

/* ------------------------------------------------------------------------ */
/* Page heap (pageheap.c): free spans by length, coalescing, OS return       */
/* ------------------------------------------------------------------------ */

#define AP_HEAP_EXACT_LISTS 128 /* free spans of 1..128 pages; longer ones in one list */

typedef struct {
    ap_lock_t lock;
    ap_span_t exact[AP_HEAP_EXACT_LISTS + 1]; /* sentinels, index = length */
    ap_span_t longer;                         /* sentinel: spans > 128 pages */
    uint64_t nonempty[3];                     /* bit n: exact[n] has spans */
    ap_span_t *span_freelist;                 /* recycled span structs */
    uintptr_t span_carve, span_carve_end;     /* never-used span structs */
    size_t free_dirty_pages;                  /* free, still backed by memory */
    size_t free_clean_pages;                  /* free, released to the OS */
    size_t inuse_pages;                       /* SMALL + LARGE spans */
    size_t mapped_bytes;                      /* page heap mappings + huge mappings */
    size_t huge_bytes;                        /* huge mappings in use */
    size_t huge_count;
    size_t large_inuse_bytes; /* LARGE spans' pages */
    size_t large_count;
    size_t meta_bytes;           /* span structs */
    size_t release_count;        /* madvise calls */
    size_t released_bytes_total; /* bytes ever released to the OS */
    size_t dirty_limit_pages;    /* scavenge above this (0: default) */
    uint64_t epoch_ms;           /* decay: when the current epoch began */
    size_t dirty_low;            /* decay: fewest free dirty pages in this epoch */
    size_t recent_peak_pages;    /* in-use high-water mark, its excess halved each epoch */
    uintptr_t arena_commit;      /* end of the usable part of the reservation */
    uintptr_t arena_end;         /* end of the reservation (0: none yet) */
} ap_pageheap_t;

extern ap_pageheap_t ap_heap;

void ap_pageheap_init(void);
/* All take and drop the page heap lock themselves. */
/* A span of npages whose first page is a multiple of align_pages (a power of
 * two). cls > 0 makes it a SMALL span of that class (every page mapped);
 * else LARGE. *ndirty: how many of its pages may be resident and not zero
 * (0: all read as zero); the page map's dirty bits tell which, until the
 * span is freed. */
ap_span_t *ap_pageheap_alloc(size_t npages, size_t align_pages, uint8_t cls, size_t *ndirty);
void ap_pageheap_free(ap_span_t *s);
bool ap_pageheap_try_grow(ap_span_t *s, size_t new_npages);
void ap_pageheap_shrink(ap_span_t *s, size_t new_npages);
size_t ap_pageheap_release_all(void);
/* A thread's working set ended (thread exit): forget the recent peak and
 * release down to the base dirty limit (64 MiB + 1/4 in use). */
void ap_pageheap_working_set_ended(void);
/* Decay (from slow paths, no lock held): when an epoch (AP_DECAY_MS) has
 * passed, release the free dirty pages no allocation needed during it. */
void ap_pageheap_tick(void);
#define AP_DECAY_MS 1000
bool ap_pageheap_tag(ap_span_t *s, void *p, const uint64_t *data);
bool ap_pageheap_untag(ap_span_t *s, const void *p, uint64_t *data);
bool ap_pageheap_retag(ap_span_t *s, const void *p, const uint64_t *in, unsigned nin,
                       uint64_t *old);
static inline bool ap_tag(void *p, const uint64_t data[AP_TAG_WORDS])
{
    ap_span_t *s = ap_pagemap_span(p);
    return s && ap_pageheap_tag(s, p, data);
}
static inline bool ap_untag(const void *p, uint64_t data[AP_TAG_WORDS])
{
    ap_span_t *s = ap_pagemap_span(p);
    return s && ap_pageheap_untag(s, p, data);
}
/* Locks of span tags (striped by span), for the fork handlers. */
#define AP_FLAG_LOCKS 16
extern ap_lock_t ap_flag_locks[AP_FLAG_LOCKS];
/* Span structs for huge mappings (locked inside). */
ap_span_t *ap_pageheap_new_span(void);
void ap_pageheap_delete_span(ap_span_t *s);
/* For tests and validators: walk every free span, lock held by the caller. */
bool ap_pageheap_validate_locked(void);

/* ------------------------------------------------------------------------ */
/* Central free lists (central.c): one per shard and class, each with its   */
/* own lock. A thread uses one shard (tcache.c assigns it).                 */
/* ------------------------------------------------------------------------ */

#define AP_MAX_SHARDS 16

typedef struct {
    ap_lock_t lock;
    uint32_t cls;
    uint32_t shard;
    uint32_t tc_count; /* transfer cache: objects in tc_slots */
    uint32_t tc_cap;
    void **tc_slots;
    ap_span_t nonempty;    /* sentinel: spans with objects to hand out */
    size_t nspans;         /* SMALL spans owned by this class */
    size_t nout;           /* objects handed to thread caches minus returned */
    size_t span_objs_free; /* objects free inside owned spans (freelist + bump) */
} __attribute__((aligned(64))) ap_central_t;

extern ap_central_t ap_central[AP_MAX_SHARDS][AP_NUM_CLASSES];
/* Shards there may be: the CPUs this process may run on, at most
 * AP_MAX_SHARDS (set once by ap_central_init). */
extern uint32_t ap_nshards;
/* ap_shard_ready[s]: shard s is set up (its lists, its transfer caches). */
extern _Atomic bool ap_shard_ready[AP_MAX_SHARDS];

void ap_central_init(void); /* and shard 0 */
/* Set up shard s if it is not yet (idempotent; serialised by the caller). */
void ap_central_shard_init(uint32_t s);
/* Fill out[0..n) with up to n objects; returns how many (0: out of memory). */
int ap_central_remove(uint32_t shard, uint32_t cls, void **out, int n);
/* Give back n <= 64 objects of class cls, to the shard that owns the first
 * one's span (objects of other shards' spans reach their own when they go
 * back to spans). */
void ap_central_insert(uint32_t cls, void **objs, int n);
/* A thread cache's miss: like ap_central_remove, except that when the
 * transfer cache is empty (and max_chain is not 0) objects may come without
 * being listed in out: the next span's free list when it holds at most
 * max_chain objects, handed over as it is (*chain, NULL-terminated, *stride
 * 0), for the caller to walk outside the lock; or up to n never-used objects
 * of a span, *chain the first and each *stride bytes after the last.
 * Returns the count; *chain NULL: they are in out. */
int ap_central_refill(uint32_t shard, uint32_t cls, void **out, int n, uint32_t max_chain,
                      void **chain, uint32_t *stride);
/* Move transfer-cache objects back into their spans (malloc_trim). */
void ap_central_drain(uint32_t shard, uint32_t cls);

/* ------------------------------------------------------------------------ */
/* Thread caches (tcache.c, fast paths in tcache_inline.h)                  */
/* ------------------------------------------------------------------------ */

/* One class's cache: a stack of object pointers in an array of
 * ap_class_cap[c] slots (the thread's slot block, at ap_tcache_slot_off[c]),
 * growing down from its end. head is the top (the next object to hand out);
 * the list is empty when head is at the array's end and full when it holds
 * max objects. The fast paths compare only head's low 16 bits with lo_empty
 * and lo_full (an array is at most 8 KiB, so they tell positions apart): no
 * count to update, and no read of the objects' memory. All zero (a new or
 * an exited thread): head's low bits equal both, so every call is slow. */
typedef struct {
    void **head;
    uint16_t lo_empty; /* low 16 bits of head when the list is empty */
    uint16_t lo_full;  /* low 16 bits of head when it holds max objects */
    uint16_t max;      /* capacity now (slow start, tcache.c); 0: not set up */
    uint16_t unused;
} ap_tlist_t;

enum ap_tcache_state { AP_TC_NEW = 0, AP_TC_LIVE = 1, AP_TC_DEAD = 2 };

typedef struct ap_tcache {
    ap_tlist_t list[AP_NUM_CLASSES];
    void **slots;                  /* the slot block (own mapping) */
    struct ap_tcache *next, *prev; /* registry of live caches */
    uint32_t state;
    uint32_t shard;      /* the central shard this thread refills from and flushes to */
    uint32_t tick_count; /* misses since the page heap's decay clock was last looked at */
    uint32_t grown;      /* sum over classes of (max - 1) * size: what the budget counts */
    uint32_t steal_next; /* the class the budget takes capacity from next */
} ap_tcache_t;

/* Where each class's slots start in a slot block, and the block's length
 * in slots (set by ap_tcache_init, from ap_class_cap). */
extern uint32_t ap_tcache_slot_off[AP_NUM_CLASSES];
extern uint32_t ap_tcache_slot_total;
void ap_tcache_init(void);
/* Objects in list cls of tc (tc's own thread, or a racy look from stats). */
uint32_t ap_tlist_count(const ap_tcache_t *tc, uint32_t cls);

extern AP_TLS ap_tcache_t ap_tls_tcache;

/* What a thread's lists may hold beyond one object per class, in bytes:
 * the sum over classes of (max - 1) * size (the classes' caps alone would
 * allow 1.4 MiB). Bounds what an idle thread keeps, and what a busy one keeps of
 * classes it has moved away from. 1 MiB costs bench mixed, which uses every
 * class, no time; 256 KiB cost it 37 % (capacity stolen back and forth) for
 * 0.1 MiB less peak RSS on threads. */
#define AP_TCACHE_BUDGET (1u << 20)
/* ... and, with many threads, a share of what all live threads' caches may
 * hold together (tcmalloc's overall thread-cache limit is 32 MiB too), but
 * never below AP_TCACHE_BUDGET_MIN: ap_tcache_budget() = clamp(32 MiB /
 * live threads, 128 KiB, 1 MiB). A thread pool of 256 then holds at most
 * 32 MiB beyond one object per class per thread, not 256 MiB. It applies as
 * a thread's lists grow: a thread that filled them before the others
 * started keeps what it has until it grows again. */
#define AP_TCACHE_BUDGET_ALL (32u << 20)
#define AP_TCACHE_BUDGET_MIN (128u << 10)
uint32_t ap_tcache_budget(void);

/* The central shard a thread takes objects of class cls from: its own, but
 * shard 0 for classes of AP_SHARED_FROM bytes and more. Shards keep threads'
 * small objects off each other's cache lines; a 1 KiB object shares a line
 * with its neighbour only at its two ends, and each shard's own partly used
 * spans of the 1-64 KiB classes (8 KiB to 128 KiB each) cost more than that:
 * one shard for them cut peak RSS on bench threads 8.5 -> 8.0 MiB and server
 * 14.1 -> 12.2 MiB, for threads' time +6 % (3 runs; its 1-16 KiB blocks now
 * share a lock per class). */
#define AP_SHARED_FROM 1024
static inline uint32_t ap_class_shard(const ap_tcache_t *tc, uint32_t cls)
{
    return ap_class_size[cls] >= AP_SHARED_FROM ? 0 : tc->shard;
}

AP_NOINLINE void *ap_tcache_alloc_slow(uint32_t cls);
AP_NOINLINE void ap_tcache_free_slow(uint32_t cls, void *p);
void ap_tcache_flush_all(ap_tcache_t *tc);
/* Unmaps the slot blocks kept from exited threads (malloc_trim); their bytes. */
size_t ap_tcache_trim(void);
/* Sum of the objects cached by every live thread, per class (stats). */
void ap_tcache_cached_counts(size_t counts[AP_NUM_CLASSES]);
void ap_tcache_fork_prepare(void);
void ap_tcache_fork_parent(void);
void ap_tcache_fork_child(void);

/* ------------------------------------------------------------------------ */
/* Large and huge allocations (large.c)                                     */
/* ------------------------------------------------------------------------ */

void *ap_large_alloc(size_t n, size_t align, bool zero);
void ap_large_free(ap_span_t *s);
bool ap_large_resize_in_place(ap_span_t *s, size_t n);
void *ap_large_move(ap_span_t *s, size_t n);

/* ------------------------------------------------------------------------ */
/* Global state (alloc.c)                                                   */
/* ------------------------------------------------------------------------ */

extern _Atomic int ap_initialized;
AP_NOINLINE void ap_init_slow(void);
AP_INLINE void ap_ensure_init(void)
{
    if (ap_unlikely(!atomic_load_explicit(&ap_initialized, memory_order_acquire)))
        ap_init_slow();
}

/* Small-object allocation that never touches a thread cache. */
void *ap_small_alloc_nocache(uint32_t cls);

#pragma GCC visibility pop

#endif
