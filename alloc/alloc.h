/*
 * alloc.h — the bundled allocator's API, used by shim/ (the interposer) and
 * the profiler. The allocator knows nothing of profiling; it offers one hook:
 * a small record can be attached to an object (ap_tag), which makes the free
 * fast path miss for the objects on the page it starts on (until the span's
 * last tag goes), so the caller's slow path can take the record back
 * (ap_untag) before the free. See docs/architecture.md.
 *
 * Fast paths (malloc/free of small objects) are inline in tcache_inline.h;
 * everything here is the out-of-line part.
 */
#ifndef AP_ALLOC_H
#define AP_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

/* Allocation entry points, also valid before any initialisation. All return
 * NULL with errno = ENOMEM on failure. */
void *ap_malloc(size_t n);
void ap_free(void *p);
void *ap_calloc(size_t nmemb, size_t size);
void *ap_realloc(void *p, size_t n);
/* realloc's first try: true when p (ours, live; n > 0) now holds n bytes
 * where it is, false when it would have to move (nothing done). */
bool ap_resize_in_place(void *p, size_t n, uint32_t cls_byte);
/* realloc's second half, once ap_resize_in_place said no: a new block with
 * p's contents (p freed), or NULL with errno set (p untouched). */
void *ap_realloc_move(void *p, size_t n, uint32_t cls_byte);
void *ap_memalign(size_t align, size_t n); /* align: power of two */
size_t ap_usable_size(const void *p);      /* 0 for NULL or foreign pointers */

/* Slow paths the shim's inline fast paths fall back on. */
void *ap_malloc_slow(size_t n);
void ap_free_slow(void *p, uint32_t cls_byte);

/* Is p an object of ours (small, large or huge)? */
bool ap_owns(const void *p);
/* Attach AP_TAG_WORDS words to the object p (ours, live, not tagged yet),
 * so its free (and those of its page's neighbours) takes the slow path until
 * the span's tags are all taken back. False when out of memory. */
#define AP_TAG_WORDS 3
static inline bool ap_tag(void *p, const uint64_t data[AP_TAG_WORDS]);
/* Take p's record back (before p is freed or moved): false when p has none.
 * (Both inline, in alloc_internal.h; ap_pageheap_retag there rewrites a
 * record in place.) */
static inline bool ap_untag(const void *p, uint64_t data[AP_TAG_WORDS]);

/* Return free memory to the OS and empty the caller's thread cache. Returns
 * the bytes released. */
size_t ap_trim(void);
/* Drain the calling thread's cache; later frees and mallocs of this thread
 * bypass the cache (called at thread exit). */
void ap_thread_exit(void);

/* fork: prepare takes every allocator lock; parent and child release them. */
void ap_fork_prepare(void);
void ap_fork_parent(void);
void ap_fork_child(void);

/* Statistics (stats.c). Figures are consistent per layer, not a snapshot of
 * the whole allocator: thread caches are read without their owners stopping. */
typedef struct {
    uint32_t size;          /* bytes per object */
    uint64_t inuse_objs;    /* handed to the program */
    uint64_t cached_objs;   /* in thread caches */
    uint64_t central_objs;  /* in transfer caches and span free lists */
    uint64_t transfer_objs; /* of central_objs, those in transfer caches */
    uint64_t fresh_objs;    /* of central_objs, never handed out (untouched unless its page is) */
    uint64_t spans;
    uint64_t span_bytes; /* pages owned by the class */
} ap_class_stats_t;

#define AP_STATS_CLASSES 57

typedef struct {
    uint64_t inuse_bytes; /* small + large + huge objects handed out (class/page rounded) */
    uint64_t small_inuse_bytes;
    uint64_t large_inuse_bytes;
    uint64_t huge_inuse_bytes;
    uint64_t large_count;
    uint64_t huge_count;
    uint64_t mapped_bytes;   /* address space taken from the OS */
    uint64_t returned_bytes; /* mapped, free, and released to the OS */
    uint64_t free_bytes;     /* mapped, free in the page heap, still resident */
    uint64_t cached_bytes;   /* in thread caches and central lists */
    uint64_t metadata_bytes; /* spans, page map, transfer caches */
    uint64_t released_total; /* bytes ever released to the OS */
    uint32_t nclasses;
    ap_class_stats_t cls[AP_STATS_CLASSES];
} ap_stats_t;

void ap_stats_get(ap_stats_t *st);
/* Human-readable report to fd (malloc_stats). No allocation. */
void ap_stats_print(int fd);

#pragma GCC visibility pop

#endif
