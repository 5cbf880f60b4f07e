/*
 * alloc.alloc_api — the allocator's entry points as the shim uses them:
 * alignment and usable size of every small size, calloc zeroing of reused
 * memory, realloc across classes with contents kept, memalign, foreign and
 * NULL pointers, the tag hook the profiler relies on, and trim.
 */
#include <errno.h>
#include <string.h>

#include "test_helpers.h"

static void every_small_size_aligned_and_usable(void **state)
{
    for (size_t n = 0; n <= 70000; n += (n < 4096 ? 1 : 61)) {
        unsigned char *p = ap_malloc(n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        size_t u = ap_usable_size(p);
        assert_true(u >= n);
        memset(p, 0xcd, u);
        ap_free(p);
    }
}

static void calloc_zeroes_reused_memory(void **state)
{
    size_t sizes[] = {8, 100, 4000, 100000, 300000, 2 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i];
        for (int r = 0; r < 3; r++) {
            unsigned char *p = ap_malloc(n);
            memset(p, 0xff, n);
            ap_free(p);
            unsigned char *q = ap_calloc(1, n);
            assert_non_null(q);
            for (size_t k = 0; k < n; k++)
                if (q[k])
                    fail_msg("calloc(%zu) byte %zu not zero", n, k);
            ap_free(q);
        }
    }
}

static void realloc_across_classes_keeps_data(void **state)
{
    size_t steps[] = {1,       15,       16,      17,     100,   1000, 5000, 70000, 300000,
                      3 << 20, 40 << 20, 3 << 20, 300000, 70000, 1000, 17,   1};
    unsigned char *p = NULL;
    size_t have = 0;
    for (size_t i = 0; i < sizeof steps / sizeof *steps; i++) {
        size_t n = steps[i];
        p = ap_realloc(p, n);
        assert_non_null(p);
        size_t keep = have < n ? have : n;
        for (size_t k = 0; k < keep; k++)
            if (p[k] != (unsigned char)(k * 13 + 1))
                fail_msg("step %zu: byte %zu lost", i, k);
        for (size_t k = keep; k < n; k++)
            p[k] = (unsigned char)(k * 13 + 1);
        have = n;
    }
    assert_null(ap_realloc(p, 0)); /* frees, like glibc */
}

static void memalign_small(void **state)
{
    for (size_t al = 32; al <= 8192; al *= 2)
        for (size_t n = 1; n < 3 * al; n += al / 3 + 1) {
            void *p = ap_memalign(al, n);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % al, 0);
            assert_true(ap_usable_size(p) >= n);
            ap_free(p);
        }
}

static void foreign_and_null_pointers(void **state)
{
    ap_free(NULL);
    assert_int_equal(ap_usable_size(NULL), 0);
    int local;
    ap_free(&local); /* not ours: ignored, nothing corrupted */
    assert_int_equal(ap_usable_size(&local), 0);
    assert_false(ap_owns(&local));
    void *p = ap_malloc(10);
    assert_true(ap_owns(p));
    ap_free(p);
    errno = 0;
    assert_null(ap_realloc(&local, 10));
    assert_int_equal(errno, EINVAL);
}

static void tag_makes_free_slow(void **state)
{
    const uint64_t in[AP_TAG_WORDS] = {1, 2, 3};
    uint64_t out[AP_TAG_WORDS];
    void *p = ap_malloc(200);
    uint32_t c = ap_pagemap_class(p);
    assert_true(ap_class_is_plain(c));
    assert_true(ap_tag(p, in));
    uint32_t f = ap_pagemap_class(p);
    assert_int_equal(f, c | AP_CLASS_FLAG);
    assert_false(ap_class_is_plain(f));
    assert_int_equal(ap_usable_size(p), ap_class_size[c]);
    ap_free(p); /* slow path, still correct */
    void *big = ap_malloc(1 << 20);
    assert_false(ap_untag(big, out));
    assert_true(ap_tag(big, in));
    assert_true(ap_untag(big, out));
    assert_memory_equal(out, in, sizeof in);
    assert_false(ap_untag(big, out)); /* taken once */
    ap_free(big);
    int local;
    assert_false(ap_tag(&local, in)); /* not ours */
    assert_false(ap_untag(&local, out));
}

/* A tag marks the page the object starts on; the marks stay until the
 * span's last tag is taken back, then every page is clear. Each object gets
 * its own record back. */
static void tag_marks_until_last_untag(void **state)
{
    uint32_t c = ap_size_class(3000); /* a span of several pages */
    assert_true(ap_class_pages[c] > 1);
    void *v[64];
    int n = 0;
    while (n < 64) {
        v[n] = ap_malloc(3000);
        n++;
    }
    /* two objects of one span on different pages */
    int a = -1, b = -1;
    for (int i = 0; i < n && b < 0; i++)
        for (int j = i + 1; j < n; j++)
            if (ap_pagemap_span(v[i]) == ap_pagemap_span(v[j]) &&
                (uintptr_t)v[i] >> AP_PAGE_SHIFT != (uintptr_t)v[j] >> AP_PAGE_SHIFT) {
                a = i;
                b = j;
                break;
            }
    assert_true(b >= 0);
    const uint64_t ta[AP_TAG_WORDS] = {10, 11, 12}, tb[AP_TAG_WORDS] = {20, 21, 22};
    uint64_t out[AP_TAG_WORDS];
    assert_true(ap_tag(v[a], ta));
    assert_false(ap_class_is_plain(ap_pagemap_class(v[a])));
    assert_true(ap_class_is_plain(ap_pagemap_class(v[b]))); /* another page: untouched */
    assert_true(ap_tag(v[b], tb));
    assert_false(ap_class_is_plain(ap_pagemap_class(v[b])));
    assert_true(ap_untag(v[a], out)); /* b still tagged: marks stay */
    assert_memory_equal(out, ta, sizeof ta);
    assert_false(ap_class_is_plain(ap_pagemap_class(v[b])));
    assert_true(ap_untag(v[b], out)); /* the last: the whole span is clear */
    assert_memory_equal(out, tb, sizeof tb);
    ap_span_t *s = ap_pagemap_span(v[a]);
    for (size_t i = 0; i < s->npages; i++)
        assert_true(ap_class_is_plain(ap_pagemap_class((void *)(s->start + (i << AP_PAGE_SHIFT)))));
    for (int i = 0; i < n; i++)
        ap_free(v[i]);
}

static void trim_releases_free_memory(void **state)
{
    void *v[64];
    for (int i = 0; i < 64; i++)
        v[i] = ap_malloc(200000);
    for (int i = 0; i < 64; i++) {
        memset(v[i], 1, 200000);
        ap_free(v[i]);
    }
    ap_trim();
    ap_stats_t st;
    ap_stats_get(&st);
    assert_int_equal(st.free_bytes, 0);
    assert_true(st.returned_bytes > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_small_size_aligned_and_usable),
        cmocka_unit_test(calloc_zeroes_reused_memory),
        cmocka_unit_test(realloc_across_classes_keeps_data),
        cmocka_unit_test(memalign_small),
        cmocka_unit_test(foreign_and_null_pointers),
        cmocka_unit_test(tag_makes_free_slow),
        cmocka_unit_test(tag_marks_until_last_untag),
        cmocka_unit_test(trim_releases_free_memory),
    };
    return cmocka_run_group_tests_name("alloc.alloc_api", tests, NULL, NULL);
}
