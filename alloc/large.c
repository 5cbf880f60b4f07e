/*
 * large.c — allocations above AP_MAX_SMALL (64 KiB).
 *   - large (< AP_HUGE_THRESHOLD, 32 MiB): a LARGE span of whole pages from
 *     the page heap; realloc grows in place into a free neighbour, or shrinks
 *     by giving the tail back;
 *   - huge (>= 32 MiB): a mapping of its own, unmapped on free; realloc uses
 *     mremap, so growing a huge block copies nothing.
 * Huge blocks get a span struct and a page-map entry for their first page,
 * like any span, so free and malloc_usable_size find them the same way.
 */
#include <errno.h>
#include <string.h>

#include "alloc_internal.h"

#define AP_MAX_REQUEST ((size_t)1 << 46)

static size_t pages_for(size_t n)
{
    return (n + AP_PAGE_MASK) >> AP_PAGE_SHIFT;
}

static void *huge_alloc(size_t n, size_t align)
{
    size_t bytes = pages_for(n) << AP_PAGE_SHIFT;
    size_t extra = align > AP_PAGE_SIZE ? align - AP_PAGE_SIZE : 0;
    char *m = ap_os_map(bytes + extra);
    if (!m)
        return NULL;
    char *p = m;
    if (extra) {
        p = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
        if (p > m)
            ap_os_unmap(m, (size_t)(p - m));
        if ((size_t)(p - m) < extra)
            ap_os_unmap(p + bytes, extra - (size_t)(p - m));
    }
    ap_span_t *s = ap_pageheap_new_span();
    if (!s) {
        ap_os_unmap(p, bytes);
        return NULL;
    }
    s->start = (uintptr_t)p;
    s->npages = bytes >> AP_PAGE_SHIFT;
    s->state = AP_SPAN_HUGE;
    s->requested = n;
    ap_lock(&ap_heap.lock);
    uintptr_t page = (uintptr_t)p >> AP_PAGE_SHIFT;
    if (ap_pagemap_ensure(page, 1) != 0) {
        ap_unlock(&ap_heap.lock);
        ap_os_unmap(p, bytes);
        ap_pageheap_delete_span(s);
        return NULL;
    }
    ap_pagemap_set(page, s, 0);
    ap_heap.huge_bytes += bytes;
    ap_heap.huge_count++;
    ap_heap.mapped_bytes += bytes;
    ap_unlock(&ap_heap.lock);
    return p;
}

/* Zero the first n bytes of new span s, of whose pages ndirty may not read
 * as zero: all of them when most are dirty, else only the dirty runs (the
 * others would be faulted in for nothing). */
static void clear_dirty(ap_span_t *s, size_t n, size_t ndirty)
{
    if (ndirty * 4 >= s->npages * 3) {
        memset((void *)s->start, 0, n);
        return;
    }
    uintptr_t page = s->start >> AP_PAGE_SHIFT, end = page + s->npages;
    size_t len;
    while (ap_pagemap_next_dirty_run(&page, end, &len)) {
        uintptr_t from = page << AP_PAGE_SHIFT, to = (page + len) << AP_PAGE_SHIFT;
        if (to > s->start + n)
            to = s->start + n;
        if (from < to)
            memset((void *)from, 0, to - from);
        page += len;
    }
}

void *ap_large_alloc(size_t n, size_t align, bool zero)
{
    ap_ensure_init();
    if (n > AP_MAX_REQUEST || align > AP_MAX_REQUEST) {
        errno = ENOMEM;
        return NULL;
    }
    if (n >= AP_HUGE_THRESHOLD) {
        void *p = huge_alloc(n, align);
        if (!p)
            errno = ENOMEM;
        return p; /* fresh mappings are zero */
    }
    size_t align_pages = align > AP_PAGE_SIZE ? align >> AP_PAGE_SHIFT : 1;
    size_t ndirty;
    ap_span_t *s = ap_pageheap_alloc(pages_for(n ? n : 1), align_pages, 0, &ndirty);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->requested = n;
    if (zero && ndirty)
        clear_dirty(s, n, ndirty);
    return (void *)s->start;
}

static void huge_forget(ap_span_t *s, bool unmap);

void ap_large_free(ap_span_t *s)
{
    if (s->state == AP_SPAN_LARGE) {
        ap_pageheap_free(s);
        return;
    }
    huge_forget(s, true);
}

/* Drop a huge span's index entry and counters; unmap its pages if asked. */
static void huge_forget(ap_span_t *s, bool unmap)
{
    ap_assert(s->state == AP_SPAN_HUGE);
    size_t bytes = s->npages << AP_PAGE_SHIFT;
    void *p = (void *)s->start;
    ap_lock(&ap_heap.lock);
    ap_pagemap_set((uintptr_t)p >> AP_PAGE_SHIFT, NULL, 0);
    ap_heap.huge_bytes -= bytes;
    ap_heap.huge_count--;
    ap_heap.mapped_bytes -= bytes;
    ap_unlock(&ap_heap.lock);
    if (unmap)
        ap_os_unmap(p, bytes);
    ap_pageheap_delete_span(s);
}

/* Huge, resized in place: the same pages, or the mapping grown or shrunk
 * where it is (mremap without MAYMOVE). */
static bool huge_resize_in_place(ap_span_t *s, size_t n)
{
    if (n < AP_HUGE_THRESHOLD / 2)
        return false;
    size_t old_bytes = s->npages << AP_PAGE_SHIFT;
    size_t new_bytes = pages_for(n) << AP_PAGE_SHIFT;
    void *old = (void *)s->start;
    if (new_bytes != old_bytes && !ap_os_remap(old, old_bytes, new_bytes, NULL))
        return false;
    ap_lock(&ap_heap.lock);
    ap_heap.huge_bytes += new_bytes - old_bytes;
    ap_heap.mapped_bytes += new_bytes - old_bytes;
    ap_unlock(&ap_heap.lock);
    s->npages = new_bytes >> AP_PAGE_SHIFT;
    s->requested = n;
    return true;
}

/* Resize in place: true when the block now holds n bytes where it is; false
 * when it must move (too far from its kind's sizes, or no room here). */
bool ap_large_resize_in_place(ap_span_t *s, size_t n)
{
    if (n > AP_MAX_REQUEST)
        return false;
    if (s->state == AP_SPAN_HUGE)
        return huge_resize_in_place(s, n);
    ap_assert(s->state == AP_SPAN_LARGE);
    if (n <= AP_MAX_SMALL || n >= AP_HUGE_THRESHOLD)
        return false;
    size_t want = pages_for(n);
    if (want <= s->npages) {
        if (want < s->npages)
            ap_pageheap_shrink(s, want);
        s->requested = n;
        return true;
    }
    if (ap_pageheap_try_grow(s, want)) {
        s->requested = n;
        return true;
    }
    return false;
}

/* A huge block that cannot stay: move its pages (no copy) onto a fresh,
 * already indexed huge mapping. NULL when the caller must allocate, copy and
 * free (any large block, or a huge one becoming large). */
void *ap_large_move(ap_span_t *s, size_t n)
{
    if (s->state != AP_SPAN_HUGE || n < AP_HUGE_THRESHOLD / 2 || n > AP_MAX_REQUEST)
        return NULL;
    size_t old_bytes = s->npages << AP_PAGE_SHIFT;
    size_t new_bytes = pages_for(n) << AP_PAGE_SHIFT;
    void *old = (void *)s->start;
    void *q = huge_alloc(n, 0);
    if (!q)
        return NULL;
    bool moved = ap_os_remap(old, old_bytes, new_bytes, q) != NULL;
    if (!moved)
        memcpy(q, old, old_bytes < new_bytes ? old_bytes : new_bytes);
    huge_forget(s, !moved); /* once moved, the old range is unmapped already */
    return q;
}
