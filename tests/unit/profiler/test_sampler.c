/*
 * profiler.sampler — the countdown intervals are exponential with mean
 * `rate` (mean, median, tails), rate 1 samples everything, the weights are
 * 1 / (1 - exp(-n/rate)) in fixed point, and sizes parse with suffixes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "profiler_internal.h"

static void intervals_are_exponential(void **state)
{
    ap_prof_cfg.rate = 4096;
    ap_prof_tls.rng = 88172645463325252ull;
    enum { N = 400000 };
    double sum = 0;
    int above_mean = 0, above_3mean = 0, below_tenth = 0;
    for (int i = 0; i < N; i++) {
        int64_t x = ap_sampler_next_interval();
        assert_true(x >= 0);
        sum += (double)x;
        above_mean += x > 4096;
        above_3mean += x > 3 * 4096;
        below_tenth += x < 410;
    }
    double mean = sum / N;
    /* standard error of the mean is rate / sqrt(N) = 0.16 % */
    assert_true(fabs(mean - 4096) < 4096 * 0.01);
    assert_true(fabs((double)above_mean / N - exp(-1)) < 0.005);
    assert_true(fabs((double)above_3mean / N - exp(-3)) < 0.003);
    assert_true(fabs((double)below_tenth / N - (1 - exp(-0.1))) < 0.003);
}

/* The table logarithm behind the intervals agrees with libm to 1e-10 over
 * the whole range of u, from 2^-53 to 1 (where the interval is 0). */
static void interval_log_is_accurate(void **state)
{
    uint64_t top = (uint64_t)1 << 53, x = 88172645463325252ull;
    assert_true(fabs(ap_sampler_neg_ln(top)) < 1e-10);
    assert_true(fabs(ap_sampler_neg_ln(1) - 53 * log(2)) < 1e-10);
    for (int i = 0; i < 1000000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t k = (x >> (11 + i % 53)) + 1; /* every magnitude */
        double want = -log((double)k / (double)top);
        assert_true(fabs(ap_sampler_neg_ln(k) - want) < 1e-10 * (1 + want));
    }
}

static void rate_one_samples_everything(void **state)
{
    ap_prof_cfg.rate = 1;
    for (int i = 0; i < 100; i++)
        assert_int_equal(ap_sampler_next_interval(), 0);
    assert_int_equal(ap_sampler_weight_fp(1), 1u << AP_WFP_SHIFT);
    assert_int_equal(ap_sampler_weight_fp(100000), 1u << AP_WFP_SHIFT);
}

static void weights_unbias(void **state)
{
    ap_prof_cfg.rate = 512 * 1024;
    size_t sizes[] = {1, 16, 100, 4096, 524288, 10 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        double n = (double)sizes[i];
        double want = 1.0 / (1.0 - exp(-n / (512 * 1024))) * 256.0;
        double got = (double)ap_sampler_weight_fp(sizes[i]);
        assert_true(fabs(got - want) <= 0.5 + want * 1e-9);
        assert_true(got >= 256.0); /* never below one object */
    }
}

static void sizes_parse(void **state)
{
    uint64_t v;
    assert_int_equal(ap_parse_size("512K", &v), 0);
    assert_int_equal(v, 524288);
    assert_int_equal(ap_parse_size("2M", &v), 0);
    assert_int_equal(v, 2u << 20);
    assert_int_equal(ap_parse_size("1", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(ap_parse_size("1.5KiB", &v), 0);
    assert_int_equal(v, 1536);
    assert_int_equal(ap_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_not_equal(ap_parse_size("abc", &v), 0);
    assert_int_not_equal(ap_parse_size("-1", &v), 0);
    assert_int_not_equal(ap_parse_size("5X", &v), 0);
    assert_int_not_equal(ap_parse_size("", &v), 0);
}

/* Live samples travel with their objects: every record comes back exactly
 * once, for its own object, whatever else shares the span; objects never
 * tagged, foreign pointers and NULL have none. */
static void live_samples_round_trip(void **state)
{
    assert_int_equal(ap_bucket_init(), 0);
    enum { N = 50000 };
    static void *obj[N + 1];
    for (uintptr_t i = 1; i <= N; i++) {
        obj[i] = ap_malloc(i % 3 == 0 ? 100000 : 16 + i % 200); /* small and large */
        assert_non_null(obj[i]);
        if (i % 5 == 0)
            continue; /* a neighbour never sampled */
        ap_live_t r = {(uintptr_t)obj[i], (uint32_t)i, 16, i, i * 3};
        assert_true(ap_live_insert(&r));
    }
    ap_live_t out;
    for (uintptr_t i = 1; i <= N; i += 2) {
        assert_int_equal(ap_live_remove((uintptr_t)obj[i], &out), i % 5 != 0);
        if (i % 5 != 0) {
            assert_int_equal(out.ptr, (uintptr_t)obj[i]);
            assert_int_equal(out.bucket, (uint32_t)i);
            assert_int_equal(out.class_bytes, 16);
            assert_int_equal(out.size, i);
            assert_int_equal(out.wfp, i * 3);
        }
    }
    for (uintptr_t i = 1; i <= N; i++)
        assert_int_equal(ap_live_remove((uintptr_t)obj[i], &out), i % 2 == 0 && i % 5 != 0);
    for (uintptr_t i = 1; i <= N; i++) {
        assert_false(ap_pagemap_class(obj[i]) & AP_CLASS_FLAG); /* the last tag took the mark */
        ap_free(obj[i]);
    }
    int local;
    assert_false(ap_live_remove((uintptr_t)&local, &out));
    assert_false(ap_live_remove(0x12345670, &out));
}

static void buckets_keyed_by_stack_and_thread(void **state)
{
    ap_lock(&ap_prof_lock);
    uint32_t a = ap_bucket_get_locked(1, 100), b = ap_bucket_get_locked(1, 101);
    uint32_t c = ap_bucket_get_locked(2, 100);
    assert_true(a != b && a != c && b != c);
    assert_int_equal(ap_bucket_get_locked(1, 100), a);
    for (uint32_t i = 0; i < 20000; i++) /* forces the index to grow */
        ap_bucket_get_locked(1000 + i, 7);
    assert_int_equal(ap_bucket_get_locked(2, 100), c);
    assert_int_equal(ap_bucket_get_locked(1000 + 19999, 7), ap_bucket_count() - 1);
    ap_unlock(&ap_prof_lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(intervals_are_exponential),
        cmocka_unit_test(interval_log_is_accurate),
        cmocka_unit_test(rate_one_samples_everything),
        cmocka_unit_test(weights_unbias),
        cmocka_unit_test(sizes_parse),
        cmocka_unit_test(live_samples_round_trip),
        cmocka_unit_test(buckets_keyed_by_stack_and_thread),
    };
    return cmocka_run_group_tests_name("profiler.sampler", tests, NULL, NULL);
}
