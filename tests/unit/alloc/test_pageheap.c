/*
 * alloc.pageheap — spans split off a free run and coalesce when they come
 * back; alignment; in-place grow and shrink; dirty pages are released to the
 * OS above the limit (counted through the os ops table) and read back as zero.
 */
#include <string.h>

#include "test_helpers.h"

static size_t releases, released_bytes;
static void counting_release(void *p, size_t n)
{
    releases++;
    released_bytes += n;
    ap_os_default_ops.release(p, n);
}
static ap_os_ops_t ops;
/* the decay's clock stands still unless a test moves it */
static uint64_t fake_now;
static uint64_t fake_clock(void)
{
    return fake_now;
}

static int setup(void **state)
{
    ap_ensure_init();
    ops = ap_os_default_ops;
    ops.release = counting_release;
    fake_now = ap_os_default_ops.now_ms() + AP_DECAY_MS; /* past the epoch init began */
    ops.now_ms = fake_clock;
    ap_os_ops = &ops;
    ap_pageheap_tick(); /* start an epoch at fake_now */
    return 0;
}

static int teardown(void **state)
{
    ap_os_ops = &ap_os_default_ops;
    return 0;
}

static bool validate(void)
{
    ap_lock(&ap_heap.lock);
    bool ok = ap_pageheap_validate_locked();
    ap_unlock(&ap_heap.lock);
    return ok;
}

static void split_and_coalesce(void **state)
{
    size_t z;
    ap_span_t *a = ap_pageheap_alloc(3, 1, 0, &z);
    ap_span_t *b = ap_pageheap_alloc(5, 1, 0, &z);
    ap_span_t *c = ap_pageheap_alloc(7, 1, 0, &z);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    /* carved in order from one free run */
    assert_int_equal(b->start, a->start + (3 << AP_PAGE_SHIFT));
    assert_int_equal(c->start, b->start + (5 << AP_PAGE_SHIFT));
    uintptr_t base = a->start;
    assert_ptr_equal(ap_pagemap_span((void *)(c->start + (6 << AP_PAGE_SHIFT))), c);
    assert_true(validate());
    ap_pageheap_free(a);
    ap_pageheap_free(c);
    assert_true(validate());
    ap_pageheap_free(b); /* joins a's and c's runs into one */
    assert_true(validate());
    ap_span_t *s = ap_pagemap_span((void *)base);
    assert_non_null(s);
    assert_int_equal(s->state, AP_SPAN_FREE);
    assert_int_equal(s->start, base);
    assert_true(s->npages >= 15);
    /* the same 15 pages come back as one allocation */
    ap_span_t *d = ap_pageheap_alloc(15, 1, 0, &z);
    assert_int_equal(d->start, base);
    ap_pageheap_free(d);
    assert_true(validate());
}

static void alignment(void **state)
{
    size_t z;
    for (size_t al = 1; al <= 256; al *= 2) {
        ap_span_t *s = ap_pageheap_alloc(3, al, 0, &z);
        assert_non_null(s);
        assert_int_equal((s->start >> AP_PAGE_SHIFT) % al, 0);
        ap_pageheap_free(s);
    }
    assert_true(validate());
}

static void grow_and_shrink_in_place(void **state)
{
    size_t z;
    ap_span_t *s = ap_pageheap_alloc(64, 1, 0, &z);
    uintptr_t start = s->start;
    ap_pageheap_shrink(s, 4); /* the 60-page tail is free again, right after s */
    assert_int_equal(s->npages, 4);
    assert_true(validate());
    assert_true(ap_pageheap_try_grow(s, 10));
    assert_int_equal(s->start, start);
    assert_int_equal(s->npages, 10);
    assert_ptr_equal(ap_pagemap_span((void *)(start + (9 << AP_PAGE_SHIFT))), s);
    ap_pageheap_shrink(s, 2);
    assert_int_equal(s->npages, 2);
    assert_true(validate());
    assert_true(ap_pageheap_try_grow(s, 9)); /* into the tail it gave back */
    /* a neighbour in use stops growth: put a span right after s */
    ap_span_t *t = ap_pageheap_alloc(64, 1, 0, &z);
    ap_pageheap_shrink(t, 1);
    ap_pageheap_free(s);
    s = ap_pageheap_alloc(64, 1, 0, &z); /* t's former tail or anything: grow until blocked */
    while (ap_pageheap_try_grow(s, s->npages + 1))
        ;
    ap_span_t *next = ap_pagemap_span((void *)(s->start + (s->npages << AP_PAGE_SHIFT)));
    assert_true(next == NULL || next->state != AP_SPAN_FREE);
    assert_true(validate());
    ap_pageheap_free(s);
    ap_pageheap_free(t);
    assert_true(validate());
}

static void dirty_pages_return_to_os(void **state)
{
    size_t z;
    enum { N = 64, PAGES = 32 };
    ap_span_t *spans[N];
    ap_heap.dirty_limit_pages = 64; /* 512 KiB */
    for (int i = 0; i < N; i++) {
        spans[i] = ap_pageheap_alloc(PAGES, 1, 0, &z);
        assert_non_null(spans[i]);
        memset((void *)spans[i]->start, 0xab, PAGES << AP_PAGE_SHIFT);
    }
    size_t before = releases;
    for (int i = 0; i < N; i++)
        ap_pageheap_free(spans[i]);
    assert_true(releases > before);
    assert_true(ap_heap.free_dirty_pages <= 64);
    assert_true(validate());
    /* released memory reads back as zero, and the heap says so */
    ap_pageheap_release_all();
    assert_int_equal(ap_heap.free_dirty_pages, 0);
    ap_span_t *s = ap_pageheap_alloc(PAGES, 1, 0, &z);
    assert_int_equal(z, 0); /* every page reads as zero */
    const unsigned char *p = (const unsigned char *)s->start;
    for (size_t i = 0; i < (PAGES << AP_PAGE_SHIFT); i += 997)
        assert_int_equal(p[i], 0);
    ap_pageheap_free(s);
    ap_heap.dirty_limit_pages = 0;
}

/* A released run and a dirty run next to each other merge into one free
 * span that knows which of its pages are dirty; a span carved from it
 * reports them, and releasing it clears them. */
static void dirty_and_released_runs_merge(void **state)
{
    size_t z;
    ap_span_t *a = ap_pageheap_alloc(4, 1, 0, &z);
    ap_span_t *b = ap_pageheap_alloc(4, 1, 0, &z);
    ap_span_t *guard = ap_pageheap_alloc(1, 1, 0, &z);
    assert_int_equal(b->start, a->start + (4 << AP_PAGE_SHIFT));
    assert_int_equal(guard->start, b->start + (4 << AP_PAGE_SHIFT));
    uintptr_t base = a->start, page = base >> AP_PAGE_SHIFT;
    memset((void *)a->start, 0x5a, 8 << AP_PAGE_SHIFT);
    ap_pageheap_free(a);
    ap_pageheap_release_all(); /* a's pages: released */
    ap_pageheap_free(b);       /* b's pages: dirty, merged with a's */
    assert_true(validate());
    ap_span_t *f = ap_pagemap_span((void *)base);
    assert_int_equal(f->state, AP_SPAN_FREE);
    assert_int_equal(f->start, base);
    assert_int_equal(f->npages, 8);
    assert_int_equal(f->ndirty, 4);
    for (int i = 0; i < 8; i++)
        assert_int_equal(ap_pagemap_is_dirty(page + i), i >= 4);
    ap_span_t *c = ap_pageheap_alloc(8, 1, 0, &z);
    assert_int_equal(c->start, base);
    assert_int_equal(z, 4);
    assert_int_equal(*(unsigned char *)base, 0); /* released: reads as zero */
    assert_int_equal(*(unsigned char *)(base + (4 << AP_PAGE_SHIFT)), 0x5a);
    ap_pageheap_free(c);
    ap_pageheap_free(guard);
    ap_pageheap_release_all();
    assert_int_equal(ap_heap.free_dirty_pages, 0);
    for (int i = 0; i < 8; i++)
        assert_false(ap_pagemap_is_dirty(page + i));
    assert_true(validate());
}

/* When nothing fits, the arena grows by what the free run at its top lacks
 * (at least the growth minimum), and the request is served from that run
 * extended, not from a new run of its own. */
static void growth_extends_the_top_run(void **state)
{
    size_t z, longest = AP_HEAP_EXACT_LISTS;
    ap_lock(&ap_heap.lock);
    for (ap_span_t *s = ap_heap.longer.next; s != &ap_heap.longer; s = s->next)
        if (s->npages > longest)
            longest = s->npages;
    ap_span_t *top = ap_pagemap_span((void *)(ap_heap.arena_commit - AP_PAGE_SIZE));
    ap_unlock(&ap_heap.lock);
    assert_non_null(top);
    if (top->state != AP_SPAN_FREE) { /* make the top free: take the arena's growth */
        ap_span_t *t = ap_pageheap_alloc(longest + 1, 1, 0, &z);
        ap_pageheap_shrink(t, 1);
        top = ap_pagemap_span((void *)(ap_heap.arena_commit - AP_PAGE_SIZE));
        assert_int_equal(top->state, AP_SPAN_FREE);
        longest = top->npages > longest ? top->npages : longest;
    }
    uintptr_t start = top->start, end = ap_heap.arena_commit;
    size_t mapped = ap_heap.mapped_bytes;
    ap_span_t *s = ap_pageheap_alloc(longest + 10, 1, 0, &z);
    assert_non_null(s);
    assert_int_equal(s->start, start);
    assert_true(ap_heap.arena_commit > end);
    assert_int_equal(ap_heap.mapped_bytes - mapped, ap_heap.arena_commit - end);
    ap_pageheap_free(s);
    assert_true(validate());
}

static void *fail_map(size_t n)
{
    return NULL;
}

/* Free dirty pages that no allocation needs for a whole epoch are released
 * (RSS falls without malloc_trim); not before. */
static void decay_releases_unused_dirty_pages(void **state)
{
    size_t z;
    ap_pageheap_release_all();
    ap_span_t *a = ap_pageheap_alloc(64, 1, 0, &z);
    assert_non_null(a);
    ap_pageheap_free(a);
    size_t dirty = ap_heap.free_dirty_pages;
    assert_true(dirty >= 64);
    /* the epoch in which they were freed began with none dirty: nothing goes */
    fake_now += AP_DECAY_MS;
    ap_pageheap_tick();
    assert_int_equal(ap_heap.free_dirty_pages, dirty);
    /* mid-way through the next epoch: nothing yet */
    size_t before = releases;
    fake_now += AP_DECAY_MS / 2;
    ap_pageheap_tick();
    assert_int_equal(ap_heap.free_dirty_pages, dirty);
    assert_int_equal(releases, before);
    /* untouched for the whole epoch: released */
    fake_now += AP_DECAY_MS / 2;
    ap_pageheap_tick();
    assert_int_equal(ap_heap.free_dirty_pages, 0);
    assert_true(releases > before);
    assert_true(validate());
}

/* Dirty pages an allocation takes during the epoch are not released at its
 * end: the low-water mark falls with them. */
static void decay_keeps_reused_pages(void **state)
{
    size_t z;
    ap_pageheap_release_all();
    ap_span_t *a = ap_pageheap_alloc(64, 1, 0, &z);
    ap_pageheap_free(a);
    fake_now += AP_DECAY_MS; /* new epoch; its low-water mark starts at all of them */
    ap_pageheap_tick();
    size_t dirty = ap_heap.free_dirty_pages;
    a = ap_pageheap_alloc(dirty, 1, 0, &z); /* takes every dirty page */
    assert_non_null(a);
    assert_int_equal(z, dirty);
    assert_int_equal(ap_heap.dirty_low, 0);
    ap_pageheap_free(a);
    fake_now += AP_DECAY_MS;
    ap_pageheap_tick();
    assert_int_equal(ap_heap.free_dirty_pages, dirty); /* needed this epoch: kept */
    assert_true(validate());
}

/* A heap dropped and built again within an epoch keeps its pages: freeing
 * more than 64 MiB + 1/4 in use releases nothing while the program had that
 * much in use recently, the rebuild takes the same dirty pages (no fault),
 * and once the program stops using them decay returns them. */
static void rebuilt_heap_keeps_its_pages(void **state)
{
    size_t z;
    enum { N = 48, PAGES = 256 }; /* 48 x 2 MiB = 96 MiB */
    ap_span_t *spans[N];
    ap_pageheap_release_all();
    for (int round = 0; round < 3; round++) {
        size_t before = releases, dirty_got = 0;
        for (int i = 0; i < N; i++) {
            spans[i] = ap_pageheap_alloc(PAGES, 1, 0, &z);
            assert_non_null(spans[i]);
            dirty_got += z;
        }
        if (round > 0)
            assert_int_equal(dirty_got, N * PAGES); /* the dropped heap's own pages */
        for (int i = 0; i < N; i++)
            ap_pageheap_free(spans[i]);
        assert_int_equal(releases, before);
        assert_true(ap_heap.free_dirty_pages >= N * PAGES);
        assert_true(validate());
    }
    /* not used again: within a few epochs it is back with the OS */
    for (int e = 0; e < 4; e++) {
        fake_now += AP_DECAY_MS;
        ap_pageheap_tick();
    }
    assert_int_equal(ap_heap.free_dirty_pages, 0);
    assert_true(validate());
}

static void out_of_memory_is_clean(void **state)
{
    ap_os_ops_t failing = ap_os_default_ops;
    failing.map = fail_map;
    ap_os_ops = &failing;
    size_t z;
    /* more than any free run: needs the OS, which refuses */
    assert_null(ap_pageheap_alloc((size_t)1 << 20, 1, 0, &z));
    ap_os_ops = &ops;
    assert_true(validate());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_and_coalesce),
        cmocka_unit_test(alignment),
        cmocka_unit_test(grow_and_shrink_in_place),
        cmocka_unit_test(dirty_pages_return_to_os),
        cmocka_unit_test(dirty_and_released_runs_merge),
        cmocka_unit_test(growth_extends_the_top_run),
        cmocka_unit_test(decay_releases_unused_dirty_pages),
        cmocka_unit_test(decay_keeps_reused_pages),
        cmocka_unit_test(rebuilt_heap_keeps_its_pages),
        cmocka_unit_test(out_of_memory_is_clean),
    };
    return cmocka_run_group_tests_name("alloc.pageheap", tests, setup, teardown);
}
