/*
 * tcache_inline.h — the allocator's fast paths, inlined into the shim's
 * malloc and free. Budget (checked with callgrind in bench/): malloc = size
 * lookup (1-2 loads) + pop (3 loads, 2 stores); free = page-map lookup
 * (2 loads) + push (2 loads, 3 stores); one predictable branch each for the
 * miss. Everything else is in tcache.c, out of line.
 *
 * A thread's cache starts all-zero: every list empty with max 0, so the first
 * malloc and the first free of each thread take the slow path, which sets the
 * cache up. After thread exit, max is 0 again and stays so.
 */
#ifndef AP_TCACHE_INLINE_H
#define AP_TCACHE_INLINE_H

#include "alloc_internal.h"

/* Pop an object of class cls, or NULL when the list is empty. */
AP_INLINE void *ap_tcache_pop(uint32_t cls)
{
    ap_tlist_t *l = &ap_tls_tcache.list[cls];
    void *p = l->head;
    if (ap_likely(p != NULL)) {
        l->head = *(void **)p;
        l->count--;
    }
    return p;
}

/* Is this page-map class byte a plain small class (no flag, not 0)? */
AP_INLINE bool ap_class_is_plain(uint32_t cls_byte)
{
    return cls_byte - 1u < (uint32_t)(AP_NUM_CLASSES - 1);
}

/* Push p (of plain class cls); false when the list is full (or not set up). */
AP_INLINE bool ap_tcache_push(uint32_t cls, void *p)
{
    ap_tlist_t *l = &ap_tls_tcache.list[cls];
    if (ap_unlikely(l->count >= l->max))
        return false;
    *(void **)p = l->head;
    l->head = p;
    l->count++;
    return true;
}

/* Can a small object of class cls (no flag bit) hold n bytes where it is?
 * realloc keeps it when n fits and does not waste more than half. */
AP_INLINE bool ap_small_resize_fits(uint32_t cls, size_t n)
{
    size_t old = ap_class_size[cls];
    return n <= old && (n > old / 2 || old <= 64);
}

#endif
