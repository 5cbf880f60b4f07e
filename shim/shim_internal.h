/*
 * shim_internal.h — shared by the interposer's files (interpose.c, cxx.c,
 * bootstrap.c). Debug hooks are inline helpers that compile to nothing when
 * AP_DEBUG is 0, so the fast paths read the same in every build.
 */
#ifndef AP_SHIM_INTERNAL_H
#define AP_SHIM_INTERNAL_H

#include <string.h>

#include "../alloc/alloc_internal.h"
#include "../profiler/profiler.h"

#define AP_EXPORT __attribute__((visibility("default")))

AP_NOINLINE void *ap_shim_malloc_slow(size_t n);
AP_NOINLINE void ap_shim_free_slow(void *p, uint32_t cls_byte);
AP_NOINLINE void *ap_shim_realloc_sampled(void *p, size_t n, uint32_t cls_byte);
void *ap_shim_memalign(size_t align, size_t n);

/* Charge an allocation made outside malloc's fast path; sample it if due. */
AP_INLINE void *ap_shim_after_alloc(void *p, size_t n)
{
    if (ap_unlikely(ap_sampler_charge(n)))
        return ap_prof_sampled(p, n);
    return p;
}

#define AP_FILL_ALLOC 0xA5 /* fresh blocks in debug builds */
#define AP_FILL_FREE 0xDB  /* freed blocks in debug builds (after the link word) */

AP_INLINE void ap_debug_on_alloc(void *p, size_t n)
{
    if (AP_DEBUG >= 1 && p)
        memset(p, AP_FILL_ALLOC, n);
}

AP_INLINE void ap_debug_on_free(void *p, uint32_t cls_byte)
{
    uint32_t c = cls_byte & ~AP_CLASS_FLAG;
    if (AP_DEBUG >= 1 && c && ap_class_size[c] > sizeof(void *))
        memset((char *)p + sizeof(void *), AP_FILL_FREE, ap_class_size[c] - sizeof(void *));
}

#endif
