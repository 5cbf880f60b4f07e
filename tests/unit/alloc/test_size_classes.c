/*
 * alloc.size_classes — the generated table keeps the promises its header
 * states: every size maps to a class that fits it, 16-byte multiples,
 * waste <= max(15 B, 12.5 %) for classes up to 512 B and <= 25 % above,
 * span tail <= 12.5 %, sane batches.
 */
#include "test_helpers.h"

static void every_size_fits_with_bounded_waste(void **state)
{
    for (size_t n = 0; n <= AP_MAX_SMALL; n++) {
        uint32_t c = ap_size_class(n);
        assert_true(c >= 1 && c < AP_NUM_CLASSES);
        uint32_t s = ap_class_size[c];
        assert_true(s >= n);
        size_t m = n ? n : 1;
        if (s <= 512)
            assert_true(s <= m + 15 || (uint64_t)s * 8 <= (uint64_t)m * 9);
        else
            assert_true((uint64_t)s * 4 <= (uint64_t)m * 5);
        if (c > 1)
            assert_true(ap_class_size[c - 1] < (n ? n : 1)); /* smallest class that fits */
    }
}

static void classes_are_aligned_and_increasing(void **state)
{
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        assert_int_equal(ap_class_size[c] % 16, 0);
        if (c > 1)
            assert_true(ap_class_size[c] > ap_class_size[c - 1]);
    }
    assert_int_equal(ap_class_size[AP_NUM_CLASSES - 1], AP_MAX_SMALL);
    assert_true(AP_NUM_CLASSES <= 128); /* class ids must fit in 7 bits */
}

static void spans_hold_objects_with_small_tail(void **state)
{
    for (uint32_t c = 1; c < AP_NUM_CLASSES; c++) {
        size_t span = (size_t)ap_class_pages[c] << AP_PAGE_SHIFT;
        assert_int_equal(ap_class_objs[c], span / ap_class_size[c]);
        assert_true(ap_class_objs[c] >= 1);
        assert_true((span - (size_t)ap_class_objs[c] * ap_class_size[c]) * 8 <= span);
        assert_true(ap_class_batch[c] >= 2 && ap_class_batch[c] <= 64);
        assert_true(ap_class_cap[c] >= ap_class_batch[c]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_size_fits_with_bounded_waste),
        cmocka_unit_test(classes_are_aligned_and_increasing),
        cmocka_unit_test(spans_hold_objects_with_small_tail),
    };
    return cmocka_run_group_tests_name("alloc.size_classes", tests, NULL, NULL);
}
