/*
 * interpose.c — every malloc-family entry point a glibc program may call,
 * exported from liballocprof.so so that LD_PRELOAD puts them ahead of libc's.
 * Each is a thin wrapper: argument checks and glibc's exact edge cases here,
 * the work in alloc/. malloc and free inline the allocator's fast paths
 * (alloc/tcache_inline.h); any miss calls an out-of-line slow path.
 *
 * Edge cases follow glibc 2.36: realloc(p, 0) frees and returns NULL;
 * memalign rounds a non-power-of-two alignment up; posix_memalign returns
 * EINVAL/ENOMEM and leaves errno alone; calloc and reallocarray detect
 * overflow; failures return NULL with errno = ENOMEM.
 * See docs/architecture.md for the layers below.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../alloc/tcache_inline.h"
#include "shim_internal.h"

/* ---- the hot pair ---- */

AP_EXPORT void *malloc(size_t n)
{
    if (ap_likely(n <= AP_MAX_SMALL) && ap_likely(!ap_sampler_charge(n))) {
        void *p;
        if (ap_likely(ap_tcache_try_pop(ap_size_class(n), &p))) {
            ap_debug_on_alloc(p, n);
            return p;
        }
    }
    return ap_shim_malloc_slow(n);
}

AP_EXPORT void free(void *p)
{
    uint32_t c = ap_pagemap_class(p);
    ap_debug_on_free(p, c);
    if (ap_likely(ap_class_is_plain(c)) && ap_likely(ap_tcache_push(c, p)))
        return;
    ap_shim_free_slow(p, c);
}

/* Reached on a cache miss, a large size, or a sample (countdown below 0).
 * Small sizes were charged in malloc already; larger ones are charged here. */
AP_NOINLINE void *ap_shim_malloc_slow(size_t n)
{
    if (n > AP_MAX_SMALL)
        (void)ap_sampler_charge(n);
    void *p = ap_malloc_slow(n);
    ap_debug_on_alloc(p, n);
    if (ap_unlikely(ap_sample_left < 0))
        return ap_prof_sampled(p, n);
    if (ap_unlikely(atomic_load_explicit(&ap_dump_attention, memory_order_relaxed)))
        ap_prof_attend();
    return p;
}

AP_NOINLINE void ap_shim_free_slow(void *p, uint32_t c)
{
    /* flagged pages hold sampled objects; class 0 is large, huge, NULL or foreign */
    if (c & AP_CLASS_FLAG) {
        if (ap_prof_active)
            ap_prof_free(p);
        c &= ~AP_CLASS_FLAG; /* now a plain small object: the fast push, if there is room */
        if (ap_likely(ap_tcache_push(c, p)))
            return;
    } else if (c == 0 && p && ap_prof_active) {
        ap_prof_free(p);
    }
    ap_free_slow(p, c);
}

/* ---- the rest of the family ---- */

AP_EXPORT void *calloc(size_t nmemb, size_t size)
{
    void *p = ap_calloc(nmemb, size);
    return ap_shim_after_alloc(p, nmemb * size);
}

/* realloc counts as a free of the old block plus an allocation of the new.
 * A block that stays where it is keeps the sampling decision it got when it
 * was allocated (docs/sampling.md): unsampled, nothing to record and nothing
 * charged; sampled, ap_prof_resized records the free and the allocation with
 * its weight. A block that moves is a new allocation, charged and sampled
 * like malloc's. Only blocks on flagged pages or large ones can be sampled. */
static inline void *shim_realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    uint32_t c = ap_pagemap_class(p); /* read once, for the profiler and the allocator */
    bool maybe_sampled = ap_unlikely(!ap_class_is_plain(c)) && ap_prof_active;
    uint32_t cls = c & ~AP_CLASS_FLAG;
    /* a small block's test is inline: the common case */
    if (cls ? ap_small_resize_fits(cls, n) : ap_resize_in_place(p, n, c)) {
        if (maybe_sampled)
            ap_prof_resized(p, n);
        return p;
    }
    if (maybe_sampled)
        return ap_shim_realloc_sampled(p, n, c);
    void *q = ap_realloc_move(p, n, c);
    return q ? ap_shim_after_alloc(q, n) : NULL;
}

AP_EXPORT void *realloc(void *p, size_t n)
{
    return shim_realloc(p, n);
}

/* realloc of a block that may be sampled and has to move */
AP_NOINLINE void *ap_shim_realloc_sampled(void *p, size_t n, uint32_t c)
{
    ap_live_t rec;
    bool had = ap_prof_take(p, &rec);
    void *q = ap_realloc_move(p, n, c);
    if (!q) {
        if (had)
            ap_prof_put_back(&rec);
        return NULL;
    }
    if (had)
        ap_prof_count_free(&rec);
    return ap_shim_after_alloc(q, n);
}

AP_EXPORT void *reallocarray(void *p, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return shim_realloc(p, n); /* profiled like realloc */
}

static bool is_pow2(size_t a)
{
    return a && (a & (a - 1)) == 0;
}

AP_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (!is_pow2(align) || align % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = ap_shim_memalign(align, n);
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

AP_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    if (!is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return ap_shim_memalign(align, n);
}

AP_EXPORT void *memalign(size_t align, size_t n)
{
    if (align > ((size_t)1 << 62)) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_pow2(align)) {
        size_t a = 1;
        while (a < align)
            a <<= 1;
        align = a;
    }
    return ap_shim_memalign(align, n);
}

static size_t os_page(void)
{
    static size_t page;
    if (!page)
        page = (size_t)sysconf(_SC_PAGESIZE);
    return page;
}

AP_EXPORT void *valloc(size_t n)
{
    return ap_shim_memalign(os_page(), n);
}

AP_EXPORT void *pvalloc(size_t n)
{
    size_t pg = os_page();
    size_t r;
    if (__builtin_add_overflow(n, pg - 1, &r)) {
        errno = ENOMEM;
        return NULL;
    }
    r &= ~(pg - 1);
    return ap_shim_memalign(pg, r ? r : pg);
}

AP_EXPORT size_t malloc_usable_size(void *p)
{
    return ap_usable_size(p);
}

void *ap_shim_memalign(size_t align, size_t n)
{
    return ap_shim_after_alloc(ap_memalign(align, n), n);
}

AP_EXPORT void free_sized(void *p, size_t n)
{
    free(p);
}
AP_EXPORT void free_aligned_sized(void *p, size_t align, size_t n)
{
    free(p);
}
AP_EXPORT void cfree(void *p)
{
    free(p);
}

/* ---- glibc's internal names, which a few programs call directly ---- */

AP_EXPORT void *__libc_malloc(size_t n)
{
    return malloc(n);
}
AP_EXPORT void __libc_free(void *p)
{
    free(p);
}
AP_EXPORT void *__libc_calloc(size_t a, size_t b)
{
    return calloc(a, b);
}
AP_EXPORT void *__libc_realloc(void *p, size_t n)
{
    return realloc(p, n);
}
AP_EXPORT void *__libc_memalign(size_t a, size_t n)
{
    return memalign(a, n);
}
AP_EXPORT void *__libc_valloc(size_t n)
{
    return valloc(n);
}
AP_EXPORT void *__libc_pvalloc(size_t n)
{
    return pvalloc(n);
}
AP_EXPORT int __posix_memalign(void **o, size_t a, size_t n)
{
    return posix_memalign(o, a, n);
}

/* ---- introspection and tuning ---- */

static int clamp_int(uint64_t v)
{
    return v > 0x7fffffff ? 0x7fffffff : (int)v;
}

AP_EXPORT struct mallinfo2 mallinfo2(void)
{
    static ap_stats_t st;
    ap_stats_get(&st);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = st.mapped_bytes - st.huge_inuse_bytes;
    mi.ordblks = 0;
    mi.hblks = st.huge_count;
    mi.hblkhd = st.huge_inuse_bytes;
    mi.uordblks = st.small_inuse_bytes + st.large_inuse_bytes;
    mi.fordblks = st.free_bytes + st.cached_bytes;
    mi.fsmblks = st.cached_bytes;
    mi.keepcost = st.returned_bytes;
    return mi;
}

AP_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = clamp_int(m.arena);
    mi.hblks = clamp_int(m.hblks);
    mi.hblkhd = clamp_int(m.hblkhd);
    mi.uordblks = clamp_int(m.uordblks);
    mi.fordblks = clamp_int(m.fordblks);
    mi.fsmblks = clamp_int(m.fsmblks);
    mi.keepcost = clamp_int(m.keepcost);
    return mi;
}

AP_EXPORT int malloc_trim(size_t pad)
{
    return ap_trim() > 0;
}

AP_EXPORT void malloc_stats(void)
{
    ap_stats_print(2);
}

/* Accepted for compatibility; our allocator has no such knobs. */
AP_EXPORT int mallopt(int param, int value)
{
    return 1;
}

AP_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    static ap_stats_t st;
    ap_stats_get(&st);
    fprintf(fp, "<malloc version=\"allocprof-1\">\n");
    for (uint32_t c = 1; c < st.nclasses; c++)
        if (st.cls[c].spans)
            fprintf(fp, "<size from=\"%u\" to=\"%u\" total=\"%llu\" count=\"%llu\"/>\n",
                    c > 1 ? st.cls[c - 1].size + 1 : 1, st.cls[c].size,
                    (unsigned long long)(st.cls[c].cached_objs + st.cls[c].central_objs) *
                        st.cls[c].size,
                    (unsigned long long)(st.cls[c].cached_objs + st.cls[c].central_objs));
    fprintf(fp, "<total type=\"mmap\" count=\"%llu\" size=\"%llu\"/>\n",
            (unsigned long long)st.huge_count, (unsigned long long)st.huge_inuse_bytes);
    fprintf(fp, "<system type=\"current\" size=\"%llu\"/>\n", (unsigned long long)st.mapped_bytes);
    fprintf(fp, "<aspace type=\"total\" size=\"%llu\"/>\n", (unsigned long long)st.mapped_bytes);
    fprintf(fp, "</malloc>\n");
    return 0;
}
