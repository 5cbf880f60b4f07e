/*
 * alloc.large — large spans and huge mappings: sizes and alignment, realloc
 * growing in place (large) or by mremap (huge) with contents kept, huge
 * blocks unmapped on free, RSS falling after a big heap is freed, and
 * ENOMEM when the OS refuses.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "test_helpers.h"

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void large_blocks(void **state)
{
    size_t sizes[] = {AP_MAX_SMALL + 1, 300000, 1 << 20, 5 << 20, AP_HUGE_THRESHOLD - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char *p = ap_malloc(sizes[i]);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % AP_PAGE_SIZE, 0);
        assert_true(ap_usable_size(p) >= sizes[i]);
        ap_span_t *s = ap_pagemap_span(p);
        assert_int_equal(s->state, AP_SPAN_LARGE);
        memset(p, 1, sizes[i]);
        ap_free(p);
    }
}

static void huge_blocks_are_mapped_and_unmapped(void **state)
{
    ap_stats_t st;
    ap_stats_get(&st);
    uint64_t huge0 = st.huge_inuse_bytes;
    char *p = ap_malloc(AP_HUGE_THRESHOLD + 12345);
    assert_non_null(p);
    assert_int_equal(ap_pagemap_span(p)->state, AP_SPAN_HUGE);
    ap_stats_get(&st);
    assert_true(st.huge_inuse_bytes >= huge0 + AP_HUGE_THRESHOLD);
    ap_free(p);
    ap_stats_get(&st);
    assert_int_equal(st.huge_inuse_bytes, huge0);
    assert_null(ap_pagemap_span(p));
}

static void realloc_grows_in_place_and_keeps_data(void **state)
{
    size_t n = 300000;
    unsigned char *p = ap_malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7);
    /* large -> larger: usually in place (the neighbour is free) */
    unsigned char *q = ap_realloc(p, 3 * n);
    assert_non_null(q);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(q[i], (unsigned char)(i * 7));
    /* large -> huge -> bigger huge (mremap) -> back down to small */
    q = ap_realloc(q, AP_HUGE_THRESHOLD + 1);
    assert_non_null(q);
    q = ap_realloc(q, 4 * AP_HUGE_THRESHOLD);
    assert_non_null(q);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(q[i], (unsigned char)(i * 7));
    q = ap_realloc(q, 100);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(q[i], (unsigned char)(i * 7));
    ap_free(q);
}

static void aligned_large(void **state)
{
    for (size_t al = 4096; al <= ((size_t)4 << 20); al *= 2) {
        void *p = ap_memalign(al, 100);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % al, 0);
        void *h = ap_memalign(al, AP_HUGE_THRESHOLD + 1);
        assert_non_null(h);
        assert_int_equal((uintptr_t)h % al, 0);
        ap_free(p);
        ap_free(h);
    }
}

static void rss_falls_after_big_heap_freed(void **state)
{
    enum { N = 4000 };
    static void *v[N];
    long base = rss_kib();
    for (int i = 0; i < N; i++) {
        v[i] = ap_malloc(64 * 1024 + (size_t)(i % 7) * 4096); /* ~280 MiB in all */
        memset(v[i], 0x5a, 64 * 1024);
    }
    long peak = rss_kib();
    assert_true(peak - base > 200 * 1024);
    for (int i = 0; i < N; i++)
        ap_free(v[i]);
    ap_thread_exit(); /* what thread exit does; then RSS must be mostly back */
    long after = rss_kib();
    assert_true(after - base < (peak - base) / 4);
}

/* calloc of large blocks whose pages are partly released, partly dirty
 * (freed after being written): every byte reads as zero. */
static void calloc_over_dirty_and_released_pages(void **state)
{
    enum { N = 6 };
    size_t sizes[N] = {300 << 10, 700 << 10, 1 << 20, 2 << 20, 3 << 20, 5 << 20};
    void *p[N];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < N; i++) {
            p[i] = ap_malloc(sizes[i]);
            assert_non_null(p[i]);
            memset(p[i], 0xee, sizes[i]);
        }
        for (int i = round & 1; i < N; i += 2) /* every other one freed, then released */
            ap_free(p[i]);
        ap_trim();
        for (int i = 1 - (round & 1); i < N; i += 2) /* the others freed dirty */
            ap_free(p[i]);
        for (int i = N; i-- > 0;) {
            size_t n = sizes[i] + (size_t)round * 12345;
            unsigned char *q = ap_calloc(1, n);
            assert_non_null(q);
            for (size_t k = 0; k < n; k += 61)
                assert_int_equal(q[k], 0);
            assert_int_equal(q[n - 1], 0);
            memset(q, 0xee, n);
            p[i] = q;
        }
        for (int i = 0; i < N; i++)
            ap_free(p[i]);
    }
}

static void *fail_map(size_t n)
{
    return NULL;
}

static void oom_sets_enomem(void **state)
{
    ap_os_ops_t failing = ap_os_default_ops;
    failing.map = fail_map;
    ap_os_ops = &failing;
    errno = 0;
    assert_null(ap_malloc((size_t)1 << 40));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(ap_malloc(AP_HUGE_THRESHOLD * 2));
    assert_int_equal(errno, ENOMEM);
    ap_os_ops = &ap_os_default_ops;
    errno = 0;
    assert_null(ap_malloc(SIZE_MAX - 100));
    assert_int_equal(errno, ENOMEM);
    assert_null(ap_calloc(SIZE_MAX / 2, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(large_blocks),
        cmocka_unit_test(huge_blocks_are_mapped_and_unmapped),
        cmocka_unit_test(realloc_grows_in_place_and_keeps_data),
        cmocka_unit_test(aligned_large),
        cmocka_unit_test(calloc_over_dirty_and_released_pages),
        cmocka_unit_test(oom_sets_enomem),
        cmocka_unit_test(rss_falls_after_big_heap_freed),
    };
    return cmocka_run_group_tests_name("alloc.large", tests, NULL, NULL);
}
