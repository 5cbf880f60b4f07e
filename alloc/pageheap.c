/*
 * pageheap.c — the page heap: runs of 8 KiB pages ("spans") taken from the OS
 * in chunks, handed out whole (to central lists, which carve them into
 * objects, or as large allocations), and coalesced when they come back.
 *
 * Free spans sit in 128 exact-length lists (1..128 pages) and one list for
 * longer runs (best fit). Each free page is dirty (may be resident) or
 * returned (released with MADV_DONTNEED, or never touched: reads as zero);
 * the page map keeps one dirty bit per page and a free span counts its dirty
 * pages (ndirty). Free neighbours always coalesce, whatever their state, so
 * a request that fits a run of released and dirty pages together takes it
 * rather than fresh memory; calloc clears only the dirty pages it gets.
 * Spans with dirty pages go to the front of a list and fully returned ones
 * to the back, so allocation reuses resident memory first.
 *
 * Releasing memory, by how long pages have been idle and how much the
 * program has used recently, never by the size of one free:
 *   - the dirty limit is 64 MiB + 1/4 of the pages in use, or what the
 *     program had in use recently above what it has now, if more: the
 *     recent peak is the in-use high-water mark, whose excess over the
 *     pages in use halves at every epoch. A program that builds a large
 *     heap, drops it and builds it again (a request, a round, a frame)
 *     keeps its pages and faults none of them back in; one that shrank for
 *     good sees its allowance halve each second, and decay (below) returns
 *     the pages meanwhile; a thread's exit ends a working set and drops the
 *     recent peak at once. Above the limit, the free spans with the most
 *     dirty pages have their dirty runs released until 3/4 of it remains.
 *     (Releasing everything above 64 MiB + 1/4 of in use as soon as a heap
 *     was freed cost the transient benchmark, 4 threads rebuilding a
 *     200 MiB heap every round, 2.5 times glibc's time, nearly all of it
 *     page faults: 6.9 s, 6.1 s of it system time; now 1.0 s.)
 * Below the limit, decay: once per epoch (AP_DECAY_MS, checked by the page
 * heap and by every 64th thread-cache miss) the free dirty pages that no
 * allocation needed in the epoch (its low-water mark) are released, so a
 * heap that is freed and not used again goes back to the OS within two
 * epochs. malloc_trim releases them all.
 *
 * Growing: memory comes from an arena, 1 GiB of reserved address space
 * used from the bottom up like a brk heap. When nothing fits, the arena's
 * usable part grows by what the free run at its top lacks (at least 8 MiB),
 * and that run grows with it; best fit takes the top run only when no other
 * run fits, so fragments below are reused first. A new arena is reserved
 * when one is full; plain mappings serve when none can be reserved.
 *
 * One lock (ap_heap.lock) guards everything here, the page map's writers and
 * the span-struct pool. Callers may hold a central lock (order: central ->
 * page heap). See docs/architecture.md.
 */
#include <string.h>

#include "alloc_internal.h"

#define AP_GROW_MIN_PAGES ((size_t)(8u << 20) >> AP_PAGE_SHIFT) /* map at least 8 MiB */
#define AP_DIRTY_LIMIT_PAGES ((size_t)(64u << 20) >> AP_PAGE_SHIFT)
#define AP_MAX_PAGES (((size_t)1 << 46) >> AP_PAGE_SHIFT)
#define AP_ARENA_BYTES ((size_t)1 << 30) /* address space reserved at a time */

AP_HIDDEN ap_pageheap_t ap_heap;

/* ---- intrusive circular lists with a sentinel ---- */

static void list_init(ap_span_t *h)
{
    h->next = h->prev = h;
}
static bool list_empty(const ap_span_t *h)
{
    return h->next == h;
}

static void list_insert_after(ap_span_t *pos, ap_span_t *s)
{
    s->prev = pos;
    s->next = pos->next;
    pos->next->prev = s;
    pos->next = s;
}

static void list_remove(ap_span_t *s)
{
    s->prev->next = s->next;
    s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

/* ---- span structs, from our own mapped chunks ---- */

static ap_span_t *span_new_locked(void)
{
    ap_span_t *s = ap_heap.span_freelist;
    if (!s) {
        /* carve from a 64 KiB chunk as needed: untouched structs stay unresident */
        if (ap_heap.span_carve + sizeof(ap_span_t) > ap_heap.span_carve_end) {
            size_t chunk = 64u << 10;
            char *m = ap_os_map(chunk);
            if (!m)
                return NULL;
            ap_heap.meta_bytes += chunk;
            ap_heap.span_carve = (uintptr_t)m;
            ap_heap.span_carve_end = (uintptr_t)m + chunk;
        }
        s = (ap_span_t *)ap_heap.span_carve;
        ap_heap.span_carve += sizeof(ap_span_t);
    } else {
        ap_heap.span_freelist = s->next;
    }
    memset(s, 0, sizeof *s);
    return s;
}

static void span_delete_locked(ap_span_t *s)
{
    s->state = 0;
    s->next = ap_heap.span_freelist;
    ap_heap.span_freelist = s;
}

ap_span_t *ap_pageheap_new_span(void)
{
    ap_lock(&ap_heap.lock);
    ap_span_t *s = span_new_locked();
    ap_unlock(&ap_heap.lock);
    return s;
}

void ap_pageheap_delete_span(ap_span_t *s)
{
    ap_lock(&ap_heap.lock);
    span_delete_locked(s);
    ap_unlock(&ap_heap.lock);
}

/* ---- free lists ---- */

static uintptr_t first_page(const ap_span_t *s)
{
    return s->start >> AP_PAGE_SHIFT;
}
static uintptr_t last_page(const ap_span_t *s)
{
    return first_page(s) + s->npages - 1;
}

static ap_span_t *free_list(size_t npages)
{
    return npages <= AP_HEAP_EXACT_LISTS ? &ap_heap.exact[npages] : &ap_heap.longer;
}

/* Put s in the free lists as is (no coalescing). */
static void free_insert_locked(ap_span_t *s)
{
    ap_span_t *h = free_list(s->npages);
    s->state = AP_SPAN_FREE;
    s->sizeclass = 0;
    s->flagged = 0;
    s->ntags = 0;
    s->tag_ptr = 0;
    ap_pagemap_set(first_page(s), s, 0);
    ap_pagemap_set(last_page(s), s, 0);
    if (s->npages <= AP_HEAP_EXACT_LISTS)
        ap_heap.nonempty[s->npages >> 6] |= (uint64_t)1 << (s->npages & 63);
    ap_assert_internal(s->ndirty == ap_pagemap_count_dirty(first_page(s), s->npages));
    list_insert_after(s->ndirty ? h : h->prev, s);
    ap_heap.free_dirty_pages += s->ndirty;
    ap_heap.free_clean_pages += s->npages - s->ndirty;
}

static void free_remove_locked(ap_span_t *s)
{
    ap_assert(s->state == AP_SPAN_FREE);
    list_remove(s);
    if (s->npages <= AP_HEAP_EXACT_LISTS && list_empty(&ap_heap.exact[s->npages]))
        ap_heap.nonempty[s->npages >> 6] &= ~((uint64_t)1 << (s->npages & 63));
    ap_heap.free_dirty_pages -= s->ndirty;
    ap_heap.free_clean_pages -= s->npages - s->ndirty;
}

/* The free neighbour of s, or NULL. */
static ap_span_t *free_neighbour(const ap_span_t *s, bool before)
{
    uintptr_t page = before ? first_page(s) - 1 : last_page(s) + 1;
    ap_span_t *n = ap_pagemap_leaf(page)->span[page & (AP_LEAF_LEN - 1)];
    if (!n || n->state != AP_SPAN_FREE)
        return NULL;
    bool adjacent = before ? n->start + (n->npages << AP_PAGE_SHIFT) == s->start
                           : s->start + (s->npages << AP_PAGE_SHIFT) == n->start;
    return adjacent ? n : NULL;
}

/* Insert s, merging it with its free neighbours. */
static void free_coalesce_insert_locked(ap_span_t *s)
{
    ap_span_t *n;
    if ((n = free_neighbour(s, true))) {
        free_remove_locked(n);
        s->start = n->start;
        s->npages += n->npages;
        s->ndirty += n->ndirty;
        span_delete_locked(n);
    }
    if ((n = free_neighbour(s, false))) {
        free_remove_locked(n);
        s->npages += n->npages;
        s->ndirty += n->ndirty;
        span_delete_locked(n);
    }
    free_insert_locked(s);
}

/* Dirty pages of the part of free span s that is n pages long, from page
 * first (s->ndirty counts the whole). */
static size_t part_dirty(const ap_span_t *s, uintptr_t first, size_t n)
{
    if (s->ndirty == 0 || s->ndirty == s->npages)
        return s->ndirty ? n : 0;
    return ap_pagemap_count_dirty(first, n);
}

/* Split the first npages off free-list-less span s; the rest goes back free. */
static int split_tail_locked(ap_span_t *s, size_t npages)
{
    if (s->npages == npages)
        return 0;
    ap_span_t *rest = span_new_locked();
    if (!rest)
        return -12;
    rest->start = s->start + (npages << AP_PAGE_SHIFT);
    rest->npages = s->npages - npages;
    rest->ndirty = part_dirty(s, first_page(rest), rest->npages);
    s->ndirty -= rest->ndirty;
    s->npages = npages;
    free_insert_locked(rest);
    return 0;
}

/* The free run that ends where the arena's usable part ends, or NULL. */
static ap_span_t *top_free_locked(void)
{
    if (!ap_heap.arena_end)
        return NULL;
    ap_span_t *top = ap_pagemap_span((void *)(ap_heap.arena_commit - AP_PAGE_SIZE));
    if (top && top->state == AP_SPAN_FREE &&
        top->start + (top->npages << AP_PAGE_SHIFT) == ap_heap.arena_commit)
        return top;
    return NULL;
}

static ap_span_t *find_free_locked(size_t npages)
{
    /* the shortest non-empty exact list of at least npages, by bitmap */
    for (size_t w = npages >> 6; npages <= AP_HEAP_EXACT_LISTS && w < 3; w++) {
        uint64_t bits = ap_heap.nonempty[w];
        if (w == npages >> 6)
            bits &= ~(uint64_t)0 << (npages & 63);
        if (bits)
            return ap_heap.exact[(w << 6) + (size_t)__builtin_ctzll(bits)].next;
    }
    /* best fit; the lowest address among equals; the run at the top of the
     * arena only when nothing else fits (it is where the arena grows, so
     * keeping it whole lets growth extend it rather than add a new run) */
    ap_span_t *best = NULL, *top = top_free_locked();
    for (ap_span_t *s = ap_heap.longer.next; s != &ap_heap.longer; s = s->next)
        if (s != top && s->npages >= npages &&
            (!best || s->npages < best->npages ||
             (s->npages == best->npages && s->start < best->start)))
            best = s;
    return best ? best : top && top->npages >= npages ? top : NULL;
}

/* Add n fresh pages at m (zero, not resident) as a free span, merged with a
 * free neighbour. False when the page map cannot cover them. */
static bool add_fresh_locked(uintptr_t m, size_t n)
{
    uintptr_t page = m >> AP_PAGE_SHIFT;
    ap_span_t *s = span_new_locked();
    if (!s || ap_pagemap_ensure(page, n) != 0) {
        if (s)
            span_delete_locked(s);
        return false;
    }
    ap_heap.mapped_bytes += n << AP_PAGE_SHIFT;
    s->start = m;
    s->npages = n;
    s->ndirty = 0;
    ap_pagemap_set_dirty(page, n, false);
    free_coalesce_insert_locked(s);
    return true;
}

/* Grow the arena (one reserved range used from the bottom up, like a brk
 * heap) so that a free run of npages exists: when the top of what is in use
 * is a free run, only the difference is added and merges with it. A new
 * reservation when this one is full. False when the OS refuses. */
static bool arena_grow_locked(size_t npages)
{
    ap_span_t *top = top_free_locked();
    size_t have = top ? top->npages : 0;
    size_t n = npages - (have < npages ? have : 0);
    if (n < AP_GROW_MIN_PAGES)
        n = AP_GROW_MIN_PAGES;
    if (!ap_heap.arena_end || ((ap_heap.arena_end - ap_heap.arena_commit) >> AP_PAGE_SHIFT) < n) {
        if ((npages << AP_PAGE_SHIFT) > AP_ARENA_BYTES / 2)
            return false;
        char *r = ap_os_reserve(AP_ARENA_BYTES);
        if (!r)
            return false;
        ap_heap.arena_commit = (uintptr_t)r;
        ap_heap.arena_end = (uintptr_t)r + AP_ARENA_BYTES;
        n = npages < AP_GROW_MIN_PAGES ? AP_GROW_MIN_PAGES : npages;
    }
    uintptr_t m = ap_heap.arena_commit;
    if (!ap_os_commit((void *)m, n << AP_PAGE_SHIFT) || !add_fresh_locked(m, n))
        return false;
    ap_heap.arena_commit += n << AP_PAGE_SHIFT;
    return true;
}

static bool grow_locked(size_t npages)
{
    if (arena_grow_locked(npages))
        return true;
    /* no reservation to be had (address-space limits): a mapping of its own */
    size_t n = npages < AP_GROW_MIN_PAGES ? AP_GROW_MIN_PAGES : npages;
    void *m = ap_os_map(n << AP_PAGE_SHIFT);
    if (!m && n > npages) {
        n = npages;
        m = ap_os_map(n << AP_PAGE_SHIFT);
    }
    if (!m)
        return false;
    if (!add_fresh_locked((uintptr_t)m, n)) {
        ap_os_unmap(m, n << AP_PAGE_SHIFT);
        return false;
    }
    return true;
}

/* ---- releasing memory to the OS ---- */

static size_t dirty_limit(void)
{
    if (ap_heap.dirty_limit_pages)
        return ap_heap.dirty_limit_pages;
    size_t base = AP_DIRTY_LIMIT_PAGES + ap_heap.inuse_pages / 4;
    size_t recent = ap_heap.recent_peak_pages - ap_heap.inuse_pages; /* peak >= in use */
    return recent > base ? recent : base;
}

/* Release the dirty pages of free span s, one call per run of them. */
static void release_span_locked(ap_span_t *s)
{
    free_remove_locked(s);
    uintptr_t page = first_page(s), end = page + s->npages;
    size_t len;
    while (ap_pagemap_next_dirty_run(&page, end, &len)) {
        ap_os_release((void *)(page << AP_PAGE_SHIFT), len << AP_PAGE_SHIFT);
        ap_heap.release_count++;
        ap_heap.released_bytes_total += len << AP_PAGE_SHIFT;
        page += len;
    }
    ap_pagemap_set_dirty(first_page(s), s->npages, false);
    s->ndirty = 0;
    free_insert_locked(s);
}

/* The decay's low-water mark follows the free dirty pages down. */
static void note_low_locked(void)
{
    if (ap_heap.free_dirty_pages < ap_heap.dirty_low)
        ap_heap.dirty_low = ap_heap.free_dirty_pages;
}

static size_t scavenge_locked(size_t target);

/* Decay, once per epoch: the dirty_low pages that stayed free and dirty for
 * the whole epoch were not needed by any allocation in it; release them.
 * Pages in steady reuse stay (the low-water mark counts only what no
 * allocation touched), and a heap freed and left alone is released within
 * two epochs, as long as the program still calls malloc now and then. */
static void decay_locked(uint64_t now)
{
    if (now - ap_heap.epoch_ms < AP_DECAY_MS)
        return;
    note_low_locked();
    if (ap_heap.dirty_low)
        scavenge_locked(ap_heap.free_dirty_pages - ap_heap.dirty_low);
    ap_heap.epoch_ms = now;
    ap_heap.dirty_low = ap_heap.free_dirty_pages;
    ap_heap.recent_peak_pages -= (ap_heap.recent_peak_pages - ap_heap.inuse_pages) / 2;
}

void ap_pageheap_tick(void)
{
    uint64_t now = ap_os_now_ms();
    /* racy read: at worst one extra or one late look under the lock */
    if (now - __atomic_load_n(&ap_heap.epoch_ms, __ATOMIC_RELAXED) < AP_DECAY_MS)
        return;
    ap_lock(&ap_heap.lock);
    decay_locked(now);
    ap_unlock(&ap_heap.lock);
}

/* Release free spans, most dirty pages first, until at most target dirty
 * pages remain. Spans with dirty pages sit at the front of their lists. */
static size_t scavenge_locked(size_t target)
{
    size_t released = 0;
    while (ap_heap.free_dirty_pages > target) {
        ap_span_t *pick = NULL;
        for (ap_span_t *s = ap_heap.longer.next; s != &ap_heap.longer; s = s->next)
            if (s->ndirty && (!pick || s->ndirty > pick->ndirty))
                pick = s;
        for (size_t n = AP_HEAP_EXACT_LISTS; n > 0 && (!pick || pick->ndirty < n); n--) {
            ap_span_t *h = &ap_heap.exact[n];
            if (!list_empty(h) && h->next->ndirty && (!pick || h->next->ndirty > pick->ndirty))
                pick = h->next;
        }
        if (!pick)
            break;
        released += pick->ndirty << AP_PAGE_SHIFT;
        release_span_locked(pick);
    }
    note_low_locked();
    return released;
}

size_t ap_pageheap_release_all(void)
{
    ap_lock(&ap_heap.lock);
    ap_heap.recent_peak_pages = ap_heap.inuse_pages; /* malloc_trim, memory pressure: all */
    size_t r = scavenge_locked(0);
    ap_unlock(&ap_heap.lock);
    return r;
}

void ap_pageheap_working_set_ended(void)
{
    ap_lock(&ap_heap.lock);
    ap_heap.recent_peak_pages = ap_heap.inuse_pages;
    size_t limit = dirty_limit();
    if (ap_heap.free_dirty_pages > limit)
        scavenge_locked(limit - limit / 4);
    ap_unlock(&ap_heap.lock);
}

/* ---- the API ---- */

void ap_pageheap_init(void)
{
    ap_lock_init(&ap_heap.lock);
    ap_heap.epoch_ms = ap_os_now_ms();
    for (size_t i = 0; i <= AP_HEAP_EXACT_LISTS; i++)
        list_init(&ap_heap.exact[i]);
    list_init(&ap_heap.longer);
}

ap_span_t *ap_pageheap_alloc(size_t npages, size_t align_pages, uint8_t cls, size_t *ndirty)
{
    ap_assert(npages > 0 && align_pages > 0 && (align_pages & (align_pages - 1)) == 0);
    if (npages > AP_MAX_PAGES || align_pages > AP_MAX_PAGES)
        return NULL;
    size_t want = npages + align_pages - 1;
    ap_lock(&ap_heap.lock);
    ap_span_t *s = find_free_locked(want);
    if (!s && grow_locked(want))
        s = find_free_locked(want);
    if (!s)
        goto fail;
    free_remove_locked(s);
    size_t lead = (align_pages - (first_page(s) & (align_pages - 1))) & (align_pages - 1);
    if (lead) {
        ap_span_t *head = span_new_locked();
        if (!head) {
            free_insert_locked(s);
            goto fail;
        }
        head->start = s->start;
        head->npages = lead;
        head->ndirty = part_dirty(s, first_page(head), lead);
        s->ndirty -= head->ndirty;
        s->start += lead << AP_PAGE_SHIFT;
        s->npages -= lead;
        free_insert_locked(head);
    }
    if (split_tail_locked(s, npages) != 0) {
        free_coalesce_insert_locked(s);
        goto fail;
    }
    *ndirty = s->ndirty;
    s->ndirty = 0;
    s->sizeclass = cls;
    s->state = cls ? AP_SPAN_SMALL : AP_SPAN_LARGE;
    if (cls) {
        ap_pagemap_set_range(first_page(s), npages, s, cls);
    } else {
        ap_pagemap_set(first_page(s), s, 0);
        ap_pagemap_set(last_page(s), s, 0);
        ap_heap.large_inuse_bytes += npages << AP_PAGE_SHIFT;
        ap_heap.large_count++;
    }
    ap_heap.inuse_pages += npages;
    if (ap_heap.inuse_pages > ap_heap.recent_peak_pages)
        ap_heap.recent_peak_pages = ap_heap.inuse_pages;
    note_low_locked();
    decay_locked(ap_os_now_ms());
    ap_unlock(&ap_heap.lock);
    return s;
fail:
    ap_unlock(&ap_heap.lock);
    return NULL;
}

void ap_pageheap_free(ap_span_t *s)
{
    ap_lock(&ap_heap.lock);
    ap_assert(s->state == AP_SPAN_SMALL || s->state == AP_SPAN_LARGE);
    if (s->state == AP_SPAN_SMALL) {
        ap_pagemap_set_class_range(first_page(s), s->npages, 0);
    } else {
        ap_heap.large_inuse_bytes -= s->npages << AP_PAGE_SHIFT;
        ap_heap.large_count--;
    }
    ap_heap.inuse_pages -= s->npages;
    ap_pagemap_set_dirty(first_page(s), s->npages, true);
    s->ndirty = s->npages;
    s->freelist = NULL;
    s->nfree = 0;
    s->bump = s->limit = NULL;
    s->allocated = 0;
    s->in_list = 0;
    free_coalesce_insert_locked(s);
    size_t limit = dirty_limit();
    if (ap_heap.free_dirty_pages > limit)
        scavenge_locked(limit - limit / 4);
    decay_locked(ap_os_now_ms());
    ap_unlock(&ap_heap.lock);
}

bool ap_pageheap_try_grow(ap_span_t *s, size_t new_npages)
{
    ap_assert(s->state == AP_SPAN_LARGE && new_npages > s->npages);
    bool ok = false;
    ap_lock(&ap_heap.lock);
    size_t extra = new_npages - s->npages;
    uintptr_t page = last_page(s) + 1;
    ap_span_t *n = ap_pagemap_leaf(page)->span[page & (AP_LEAF_LEN - 1)];
    if (n && n->state == AP_SPAN_FREE && n->start == s->start + (s->npages << AP_PAGE_SHIFT) &&
        n->npages >= extra) {
        free_remove_locked(n);
        if (split_tail_locked(n, extra) == 0) {
            span_delete_locked(n);
            s->npages = new_npages;
            ap_pagemap_set(last_page(s), s, 0);
            ap_heap.inuse_pages += extra;
            if (ap_heap.inuse_pages > ap_heap.recent_peak_pages)
                ap_heap.recent_peak_pages = ap_heap.inuse_pages;
            ap_heap.large_inuse_bytes += extra << AP_PAGE_SHIFT;
            note_low_locked();
            ok = true;
        } else {
            free_insert_locked(n);
        }
    }
    ap_unlock(&ap_heap.lock);
    return ok;
}

void ap_pageheap_shrink(ap_span_t *s, size_t new_npages)
{
    ap_assert(s->state == AP_SPAN_LARGE && new_npages > 0 && new_npages <= s->npages);
    ap_lock(&ap_heap.lock);
    ap_span_t *rest = new_npages < s->npages ? span_new_locked() : NULL;
    if (rest) {
        size_t cut = s->npages - new_npages;
        rest->start = s->start + (new_npages << AP_PAGE_SHIFT);
        rest->npages = cut;
        rest->ndirty = cut;
        ap_pagemap_set_dirty(first_page(rest), cut, true);
        s->npages = new_npages;
        ap_pagemap_set(last_page(s), s, 0);
        ap_heap.inuse_pages -= cut;
        ap_heap.large_inuse_bytes -= cut << AP_PAGE_SHIFT;
        free_coalesce_insert_locked(rest);
    }
    ap_unlock(&ap_heap.lock);
}

/* Tags: a caller's record attached to one object (the profiler keeps its
 * live samples here). A tagged small object marks the page where it starts
 * (free looks only there; its page neighbours take the slow path too); the
 * marks stay until the span's last tag goes (its count, ntags), which clears
 * every marked page. The records live in AP_FLAG_LOCKS open-addressing
 * tables keyed by address, one per tag lock; a span's tags go to the table
 * of its lock (by span address), so one lock covers the record and the
 * span's count and marks, and the fork handlers take them all. A lookup
 * costs the same with one tag in a span (the default sampling rate) as with
 * every object tagged (rate 1); and the first tag of a span is kept in the
 * span itself, where the default rate's one tag per span is found without a
 * table at all. The span holds the object being tagged or
 * untagged, so it cannot be freed meanwhile: no page-heap lock is needed.
 * LARGE and HUGE spans only count: their frees always take the slow path.
 * A span handed out again starts with no tags (free_insert_locked); entries
 * of objects freed while the caller was not looking (profiling stopped for
 * good) stay in the table unread. */
typedef struct {
    uintptr_t ptr; /* 0: empty, 1: deleted */
    uint64_t data[AP_TAG_WORDS];
} tag_rec_t;

AP_HIDDEN ap_lock_t ap_flag_locks[AP_FLAG_LOCKS];
static struct {
    tag_rec_t *tab;
    uint32_t cap, used, deleted;
} __attribute__((aligned(64))) tag_tabs[AP_FLAG_LOCKS];

static unsigned tag_stripe(const ap_span_t *s)
{
    return (unsigned)(((uintptr_t)s >> 6) % AP_FLAG_LOCKS);
}

static uint32_t tag_hash(uintptr_t p)
{
    return (uint32_t)(((uint64_t)(p >> 4) * 0x9E3779B97F4A7C15ull) >> 32);
}

/* Table i's slot holding p, or NULL (its lock held). */
static tag_rec_t *tag_find_locked(unsigned i, uintptr_t p)
{
    uint32_t mask = tag_tabs[i].cap - 1;
    tag_rec_t *t = tag_tabs[i].tab;
    if (!t)
        return NULL;
    for (uint32_t h = tag_hash(p) & mask;; h = (h + 1) & mask) {
        if (t[h].ptr == p)
            return &t[h];
        if (t[h].ptr == 0)
            return NULL;
    }
}

/* Table i at a size for one more record, its deleted slots dropped (lock
 * held). False when out of memory. */
static __attribute__((noinline, cold)) bool tag_grow_locked(unsigned i)
{
    uint32_t cap = tag_tabs[i].cap ? tag_tabs[i].cap : 256;
    while ((tag_tabs[i].used + 1) * 2 > cap)
        cap *= 2;
    tag_rec_t *t = ap_os_map((size_t)cap * sizeof *t);
    if (!t)
        return false;
    for (uint32_t j = 0; j < tag_tabs[i].cap; j++) {
        const tag_rec_t *e = &tag_tabs[i].tab[j];
        if (e->ptr <= 1)
            continue;
        uint32_t h = tag_hash(e->ptr) & (cap - 1);
        while (t[h].ptr)
            h = (h + 1) & (cap - 1);
        t[h] = *e;
    }
    if (tag_tabs[i].tab)
        ap_os_unmap(tag_tabs[i].tab, (size_t)tag_tabs[i].cap * sizeof *t);
    tag_tabs[i].tab = t;
    tag_tabs[i].cap = cap;
    tag_tabs[i].deleted = 0;
    return true;
}

static bool tag_insert_locked(unsigned i, uintptr_t p, const uint64_t *data)
{
    if (ap_unlikely((tag_tabs[i].used + tag_tabs[i].deleted + 1) * 4 > tag_tabs[i].cap * 3) &&
        !tag_grow_locked(i))
        return false;
    uint32_t mask = tag_tabs[i].cap - 1;
    tag_rec_t *t = tag_tabs[i].tab;
    uint32_t h = tag_hash(p) & mask;
    while (t[h].ptr > 1)
        h = (h + 1) & mask;
    if (t[h].ptr == 1)
        tag_tabs[i].deleted--;
    t[h].ptr = p;
    for (int k = 0; k < AP_TAG_WORDS; k++)
        t[h].data[k] = data[k];
    tag_tabs[i].used++;
    return true;
}

/* The record of p in span s: in the span or in table i (lock held); NULL
 * when p has none. *rec: its table slot, NULL when it is the span's own. */
static uint64_t *tag_data_locked(ap_span_t *s, unsigned i, uintptr_t p, tag_rec_t **rec)
{
    *rec = NULL;
    if (s->tag_ptr == p)
        return s->tag_data;
    if (s->ntags <= (s->tag_ptr != 0)) /* nothing in the table for this span */
        return NULL;
    *rec = tag_find_locked(i, p);
    return *rec ? (*rec)->data : NULL;
}

bool ap_pageheap_tag(ap_span_t *s, void *p, const uint64_t *data)
{
    unsigned i = tag_stripe(s);
    ap_lock(&ap_flag_locks[i]);
    if (!s->tag_ptr) {
        s->tag_ptr = (uintptr_t)p;
        for (int k = 0; k < AP_TAG_WORDS; k++)
            s->tag_data[k] = data[k];
    } else if (!tag_insert_locked(i, (uintptr_t)p, data)) {
        ap_unlock(&ap_flag_locks[i]);
        return false;
    }
    s->ntags++;
    if (s->state == AP_SPAN_SMALL) {
        uintptr_t page = (uintptr_t)p >> AP_PAGE_SHIFT;
        ap_pagemap_set_class(page, (uint8_t)(s->sizeclass | AP_CLASS_FLAG));
        uint32_t idx = (uint32_t)(page - first_page(s));
        if (!s->flagged) {
            s->flagged = 1;
            s->flag_page = idx;
        } else if (s->flagged == 1 && s->flag_page != idx) {
            s->flagged = 2;
        }
    }
    ap_unlock(&ap_flag_locks[i]);
    return true;
}

bool ap_pageheap_untag(ap_span_t *s, const void *p, uint64_t *data)
{
    unsigned i = tag_stripe(s);
    ap_lock(&ap_flag_locks[i]);
    tag_rec_t *e;
    uint64_t *d = tag_data_locked(s, i, (uintptr_t)p, &e);
    if (!d) {
        ap_unlock(&ap_flag_locks[i]);
        return false;
    }
    for (int k = 0; k < AP_TAG_WORDS; k++)
        data[k] = d[k];
    if (e) {
        e->ptr = 1;
        tag_tabs[i].used--;
        tag_tabs[i].deleted++;
    } else {
        s->tag_ptr = 0;
    }
    if (--s->ntags == 0 && s->flagged) {
        uintptr_t page = first_page(s);
        if (s->flagged == 1) /* one page marked: clear just that one */
            ap_pagemap_set_class(page + s->flag_page, s->sizeclass);
        else
            ap_pagemap_set_class_range(page, s->npages, s->sizeclass);
        s->flagged = 0;
    }
    ap_unlock(&ap_flag_locks[i]);
    return true;
}

bool ap_pageheap_retag(ap_span_t *s, const void *p, const uint64_t *in, unsigned nin, uint64_t *old)
{
    unsigned i = tag_stripe(s);
    ap_lock(&ap_flag_locks[i]);
    tag_rec_t *e;
    uint64_t *d = tag_data_locked(s, i, (uintptr_t)p, &e);
    if (d) {
        _Static_assert(AP_TAG_WORDS == 3, "unrolled for three words");
        old[0] = d[0];
        old[1] = d[1];
        old[2] = d[2];
        switch (nin) { /* no memcpy call for a word or two */
        case 3:
            d[2] = in[2];
            /* fall through */
        case 2:
            d[1] = in[1];
            /* fall through */
        case 1:
            d[0] = in[0];
            break;
        default:
            break;
        }
    }
    ap_unlock(&ap_flag_locks[i]);
    return d != NULL;
}

static bool validate_list_locked(ap_span_t *h, size_t lo, size_t hi, size_t *dirty, size_t *clean)
{
    for (ap_span_t *s = h->next; s != h; s = s->next) {
        if (s->state != AP_SPAN_FREE || s->npages < lo || s->npages > hi)
            return false;
        if (ap_pagemap_span((void *)s->start) != s ||
            ap_pagemap_span((void *)(s->start + ((s->npages - 1) << AP_PAGE_SHIFT))) != s)
            return false;
        if (ap_pagemap_class((void *)s->start) != 0)
            return false;
        if (free_neighbour(s, true) || free_neighbour(s, false))
            return false; /* should have been coalesced */
        if (s->ndirty != ap_pagemap_count_dirty(first_page(s), s->npages))
            return false;
        *dirty += s->ndirty;
        *clean += s->npages - s->ndirty;
    }
    return true;
}

bool ap_pageheap_validate_locked(void)
{
    size_t dirty = 0, clean = 0;
    for (size_t n = 1; n <= AP_HEAP_EXACT_LISTS; n++) {
        if (!validate_list_locked(&ap_heap.exact[n], n, n, &dirty, &clean))
            return false;
        bool bit = (ap_heap.nonempty[n >> 6] >> (n & 63)) & 1;
        if (bit == list_empty(&ap_heap.exact[n]))
            return false; /* the bitmap must mirror the lists */
    }
    if (!validate_list_locked(&ap_heap.longer, AP_HEAP_EXACT_LISTS + 1, SIZE_MAX, &dirty, &clean))
        return false;
    if (ap_heap.recent_peak_pages < ap_heap.inuse_pages)
        return false; /* the recent peak is a high-water mark of in use */
    return dirty == ap_heap.free_dirty_pages && clean == ap_heap.free_clean_pages;
}
