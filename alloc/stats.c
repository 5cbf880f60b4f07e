/*
 * stats.c — the allocator's statistics: per size class (objects in use, in
 * thread caches, in central lists; spans) and for the whole heap (in use,
 * mapped, free but resident, returned to the OS, metadata). Read by
 * malloc_stats/mallinfo2 in the shim and by the profiler at each dump.
 * Takes each lock briefly in the documented order; never allocates.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc_internal.h"

_Static_assert(AP_STATS_CLASSES == AP_NUM_CLASSES, "ap_stats_t sized for the class table");

void ap_stats_get(ap_stats_t *st)
{
    memset(st, 0, sizeof *st);
    st->nclasses = AP_NUM_CLASSES;
    if (!atomic_load_explicit(&ap_initialized, memory_order_acquire))
        return;
    size_t cached[AP_NUM_CLASSES] = {0};
    ap_tcache_cached_counts(cached);
    uint64_t tc_bytes = 0;
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        ap_class_stats_t *cs = &st->cls[c];
        size_t nout = 0, tc = 0, spans = 0, sfree = 0, fresh = 0; /* a shard's nout may wrap */
        for (uint32_t sh = 0; sh < AP_MAX_SHARDS; sh++) {
            if (!atomic_load_explicit(&ap_shard_ready[sh], memory_order_acquire))
                continue;
            ap_central_t *ce = &ap_central[sh][c];
            ap_lock(&ce->lock);
            nout += ce->nout;
            tc += ce->tc_count;
            spans += ce->nspans;
            sfree += ce->span_objs_free;
            for (ap_span_t *s = ce->nonempty.next; s != &ce->nonempty; s = s->next)
                fresh += (size_t)(s->limit - s->bump) / ap_class_size[c];
            tc_bytes += ce->tc_cap * sizeof(void *);
            ap_unlock(&ce->lock);
        }
        cs->size = ap_class_size[c];
        cs->cached_objs = cached[c] < nout ? cached[c] : nout;
        cs->inuse_objs = nout - cs->cached_objs;
        cs->central_objs = tc + sfree;
        cs->transfer_objs = tc;
        cs->fresh_objs = fresh;
        cs->spans = spans;
        cs->span_bytes = (uint64_t)spans * ap_class_pages[c] << AP_PAGE_SHIFT;
        st->small_inuse_bytes += cs->inuse_objs * cs->size;
        st->cached_bytes += (cs->cached_objs + cs->central_objs) * cs->size;
    }
    ap_lock(&ap_heap.lock);
    st->large_inuse_bytes = ap_heap.large_inuse_bytes;
    st->large_count = ap_heap.large_count;
    st->huge_inuse_bytes = ap_heap.huge_bytes;
    st->huge_count = ap_heap.huge_count;
    st->mapped_bytes = ap_heap.mapped_bytes;
    st->returned_bytes = (uint64_t)ap_heap.free_clean_pages << AP_PAGE_SHIFT;
    st->free_bytes = (uint64_t)ap_heap.free_dirty_pages << AP_PAGE_SHIFT;
    st->metadata_bytes = ap_heap.meta_bytes + ap_pagemap_bytes() + tc_bytes;
    st->released_total = ap_heap.released_bytes_total;
    ap_unlock(&ap_heap.lock);
    st->inuse_bytes = st->small_inuse_bytes + st->large_inuse_bytes + st->huge_inuse_bytes;
}

static void out(int fd, char *buf, int n)
{
    if (n > 0) {
        ssize_t r = write(fd, buf, (size_t)n);
        (void)r;
    }
}

void ap_stats_print(int fd)
{
    static ap_stats_t st; /* large; malloc_stats is not reentrant in glibc either */
    char b[256];
    ap_stats_get(&st);
    out(fd, b, snprintf(b, sizeof b, "allocprof allocator statistics\n"));
    out(fd, b,
        snprintf(b, sizeof b,
                 "in use:    %12llu bytes (small %llu, large %llu in %llu, huge %llu in %llu)\n",
                 (unsigned long long)st.inuse_bytes, (unsigned long long)st.small_inuse_bytes,
                 (unsigned long long)st.large_inuse_bytes, (unsigned long long)st.large_count,
                 (unsigned long long)st.huge_inuse_bytes, (unsigned long long)st.huge_count));
    out(fd, b,
        snprintf(b, sizeof b,
                 "mapped:    %12llu bytes\ncached:    %12llu bytes\nfree:      %12llu bytes\n"
                 "returned:  %12llu bytes\nmetadata:  %12llu bytes\n",
                 (unsigned long long)st.mapped_bytes, (unsigned long long)st.cached_bytes,
                 (unsigned long long)st.free_bytes, (unsigned long long)st.returned_bytes,
                 (unsigned long long)st.metadata_bytes));
    out(fd, b,
        snprintf(b, sizeof b, "%5s %8s %12s %12s %12s %10s %10s %8s\n", "class", "size", "in use",
                 "cached", "central", "transfer", "fresh", "spans"));
    for (uint32_t c = 1; c < st.nclasses; c++) {
        ap_class_stats_t *cs = &st.cls[c];
        if (!cs->spans && !cs->inuse_objs)
            continue;
        out(fd, b,
            snprintf(b, sizeof b, "%5u %8u %12llu %12llu %12llu %10llu %10llu %8llu\n", c, cs->size,
                     (unsigned long long)cs->inuse_objs, (unsigned long long)cs->cached_objs,
                     (unsigned long long)cs->central_objs, (unsigned long long)cs->transfer_objs,
                     (unsigned long long)cs->fresh_objs, (unsigned long long)cs->spans));
    }
}
