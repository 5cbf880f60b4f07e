/*
 * alloc.pagemap — lookups of unknown addresses read class 0 without faulting;
 * entries set across leaf boundaries read back; the flag bit survives.
 */
#include "test_helpers.h"

static void unknown_addresses_read_zero(void **state)
{
    assert_int_equal(ap_pagemap_class(NULL), 0);
    assert_null(ap_pagemap_span(NULL));
    int on_stack;
    assert_int_equal(ap_pagemap_class(&on_stack), 0);
    assert_int_equal(ap_pagemap_class((void *)((uintptr_t)1 << 46)), 0);
    assert_int_equal(ap_pagemap_class((void *)UINTPTR_MAX), 0);
}

static void set_and_get_across_leaves(void **state)
{
    ap_ensure_init();
    /* a range straddling a leaf boundary, at an address we never map */
    uintptr_t first = ((uintptr_t)0x7000 << AP_LEAF_BITS) - 3;
    ap_span_t fake;
    ap_lock(&ap_heap.lock);
    assert_int_equal(ap_pagemap_ensure(first, 8), 0);
    ap_pagemap_set_range(first, 8, &fake, 5);
    ap_unlock(&ap_heap.lock);
    for (uintptr_t p = first; p < first + 8; p++) {
        void *addr = (void *)((p << AP_PAGE_SHIFT) + 123);
        assert_ptr_equal(ap_pagemap_span(addr), &fake);
        assert_int_equal(ap_pagemap_class(addr), 5);
    }
    assert_int_equal(ap_pagemap_class((void *)((first + 8) << AP_PAGE_SHIFT)), 0);
    ap_lock(&ap_heap.lock);
    ap_pagemap_set_class_range(first, 8, 5 | AP_CLASS_FLAG);
    ap_unlock(&ap_heap.lock);
    assert_int_equal(ap_pagemap_class((void *)(first << AP_PAGE_SHIFT)), 5 | AP_CLASS_FLAG);
    ap_lock(&ap_heap.lock);
    ap_pagemap_set_range(first, 8, NULL, 0);
    ap_unlock(&ap_heap.lock);
}

static void objects_map_to_their_span(void **state)
{
    void *p = ap_malloc(100);
    assert_non_null(p);
    uint32_t c = ap_pagemap_class(p);
    assert_int_equal(c, ap_size_class(100));
    ap_span_t *s = ap_pagemap_span(p);
    assert_non_null(s);
    assert_int_equal(s->state, AP_SPAN_SMALL);
    assert_true((uintptr_t)p >= s->start && (uintptr_t)p < s->start + (s->npages << AP_PAGE_SHIFT));
    ap_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_addresses_read_zero),
        cmocka_unit_test(set_and_get_across_leaves),
        cmocka_unit_test(objects_map_to_their_span),
    };
    return cmocka_run_group_tests_name("alloc.pagemap", tests, NULL, NULL);
}
