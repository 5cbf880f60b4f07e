/*
 * tcache_inline.h — the allocator's fast paths, inlined into the shim's
 * malloc and free. Budget: malloc = size lookup (1-2 loads) + pop (3 loads,
 * 1 store); free = page-map lookup (2 loads) + push (2 loads, 2 stores); one
 * predictable branch each for the miss. The lists are arrays of pointers
 * (see ap_tlist_t), so neither touches the object's memory and the only
 * chain from one call to the next is the list's head. Everything else is in
 * tcache.c, out of line.
 *
 * A thread's cache starts all-zero, which reads as empty and full at once,
 * so the first malloc and the first free of each thread take the slow path,
 * which sets the cache up. After thread exit the lists are zero again.
 */
#ifndef AP_TCACHE_INLINE_H
#define AP_TCACHE_INLINE_H

#include "alloc_internal.h"

/* Pop into *out; false when the list is empty. Callers that branch on the
 * result test the list, not the object pointer it held (one test less than
 * checking a returned pointer for NULL). */
AP_INLINE bool ap_tcache_try_pop(uint32_t cls, void **out)
{
    ap_tlist_t *l = &ap_tls_tcache.list[cls];
    void **h = l->head;
    if (ap_unlikely((uint16_t)(uintptr_t)h == l->lo_empty))
        return false;
    l->head = h + 1;
    *out = *h;
    return true;
}

/* Pop an object of class cls, or NULL when the list is empty. */
AP_INLINE void *ap_tcache_pop(uint32_t cls)
{
    void *p;
    return ap_tcache_try_pop(cls, &p) ? p : NULL;
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
    void **h = l->head;
    if (ap_unlikely((uint16_t)(uintptr_t)h == l->lo_full))
        return false;
    *--h = p;
    l->head = h;
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
