/*
 * test_cli_units.c — cmocka tests of the allocprof command's modules: human
 * units and size parsing (format.c), JSON string arrays, the hash map and
 * interning (util.c), C++ and Rust demangling (demangle.c; the Rust names
 * are real symbols of a Rust 1.8x standard library, expected strings as
 * c++filt prints them without crate hashes), and the protobuf encoding
 * primitives (pprof.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "format.h"
#include "pprof.h"
#include "symbolize.h"
#include "util.h"

/* The report library reports errors through ap_cli_error (cmd_run.c in the
 * command). */
void ap_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void test_bytes(void **state)
{
    char b[AP_FMT_LEN];
    assert_string_equal(ap_fmt_bytes(0, false, b), "0 B");
    assert_string_equal(ap_fmt_bytes(1000, false, b), "1000 B");
    assert_string_equal(ap_fmt_bytes(1024, false, b), "1.00 KiB");
    assert_string_equal(ap_fmt_bytes(1400, false, b), "1.37 KiB");
    assert_string_equal(ap_fmt_bytes(15 << 20, false, b), "15.0 MiB");
    assert_string_equal(ap_fmt_bytes(150LL << 30, false, b), "150 GiB");
    assert_string_equal(ap_fmt_bytes(1023LL * 1024 + 1000, false, b), "1.00 MiB");
    assert_string_equal(ap_fmt_bytes(-2048, false, b), "-2.00 KiB");
    assert_string_equal(ap_fmt_bytes(2048, true, b), "+2.00 KiB");
    assert_string_equal(ap_fmt_count(99999, false, b), "99999");
    assert_string_equal(ap_fmt_count(123456, false, b), "123k");
    assert_string_equal(ap_fmt_count(4567890, false, b), "4.57M");
    assert_string_equal(ap_fmt_percent(1, 3, b), "33.33%");
    assert_string_equal(ap_fmt_percent(1, 0, b), "0.00%");
}

static void test_parse_size(void **state)
{
    uint64_t v;
    assert_true(ap_parse_size("512", &v) && v == 512);
    assert_true(ap_parse_size("512K", &v) && v == 512 * 1024);
    assert_true(ap_parse_size("2M", &v) && v == 2 << 20);
    assert_true(ap_parse_size("1g", &v) && v == 1ULL << 30);
    assert_true(ap_parse_size("64KiB", &v) && v == 65536);
    assert_true(ap_parse_size("3 MB", &v) && v == 3 << 20);
    assert_false(ap_parse_size("", &v));
    assert_false(ap_parse_size("K", &v));
    assert_false(ap_parse_size("12Q", &v));
    assert_false(ap_parse_size("-1", &v));
    assert_false(ap_parse_size("99999999999999999999", &v));
    assert_false(ap_parse_size("16E", &v));
    assert_true(ap_parse_uint("42", &v) && v == 42);
    assert_false(ap_parse_uint("42x", &v));
}

static void test_json_array(void **state)
{
    char **v = ap_json_string_array("[\"/bin/prog\", \"a b\", \"q\\\"\\n\\u00e9\"]");
    assert_non_null(v);
    assert_string_equal(v[0], "/bin/prog");
    assert_string_equal(v[1], "a b");
    assert_string_equal(v[2], "q\"\n\xc3\xa9");
    assert_null(v[3]);
    char *s = ap_shell_join(v);
    assert_string_equal(s, "/bin/prog 'a b' 'q\"\n\xc3\xa9'");
    free(s);
    ap_strv_free(v);
    v = ap_json_string_array("[]");
    assert_non_null(v);
    assert_null(v[0]);
    ap_strv_free(v);
    assert_null(ap_json_string_array("[\"a\""));
    assert_null(ap_json_string_array("[\"a\"] x"));
    assert_null(ap_json_string_array("not json"));
    assert_null(ap_json_string_array(NULL));
}

static void test_map_intern(void **state)
{
    ap_map m = {0};
    for (uint64_t i = 0; i < 10000; i++)
        *ap_map_put(&m, i * 7919, NULL) = i;
    for (uint64_t i = 0; i < 10000; i++)
        assert_int_equal(*ap_map_get(&m, i * 7919), i);
    assert_null(ap_map_get(&m, 3));
    assert_int_equal(m.len, 10000);
    ap_map_free(&m);
    ap_strtab t = {0};
    char a[] = "malloc", b[] = "malloc";
    assert_ptr_equal(ap_intern(&t, a), ap_intern(&t, b));
    assert_ptr_not_equal(ap_intern(&t, "free"), ap_intern(&t, a));
    assert_null(ap_intern(&t, NULL));
    ap_strtab_free(&t);
}

static void check_demangle(const char *in, const char *want)
{
    char *got = ap_demangle(in);
    if (!want) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_demangle(void **state)
{
    check_demangle("main", NULL);
    check_demangle("_ZN7fixture6Widget4makeEm", "fixture::Widget::make(unsigned long)");
    check_demangle("_ZNSt6vectorIiSaIiEE9push_backERKi",
                   "std::vector<int, std::allocator<int> >::push_back(int const&)");
    /* Rust legacy: hash dropped, $..$ escapes undone */
    check_demangle("_ZN1r4main17h086b0cfd890a8ea9E", "r::main");
    check_demangle("_ZN1r5outer14Thing$LT$T$GT$4grow17hf1392b85dec18e27E",
                   "r::outer::Thing<T>::grow");
    /* Rust v0 */
    check_demangle("_RNvMs3_NtCslNYArtu3iFV_5alloc7raw_vecINtB5_6RawVecINtNtB7_3vec3VechEE"
                   "8grow_oneCsjrHSEGnQ3l9_3std",
                   "<alloc::raw_vec::RawVec<alloc::vec::Vec<u8>>>::grow_one");
    check_demangle("_RNCNCNCNvNtCsjrHSEGnQ3l9_3std2rt19lang_start_internal00s_0B9_",
                   "std::rt::lang_start_internal::{closure#0}::{closure#0}::{closure#1}");
    check_demangle("_RNCINvNtNtCsjrHSEGnQ3l9_3std6thread7current17with_current_name"
                   "NCNCNvNtB8_9panicking12default_hook00uE0B8_",
                   "std::thread::current::with_current_name::<std::panicking::default_hook::"
                   "{closure#0}::{closure#0}, ()>::{closure#0}");
    check_demangle("_RNvNCNKNvNtNtCsjrHSEGnQ3l9_3std2io5stdio14OUTPUT_CAPTURE0023___RUST_STD_"
                   "INTERNAL_VAL",
                   "std::io::stdio::OUTPUT_CAPTURE::{K#0}::{closure#0}::__RUST_STD_INTERNAL_VAL");
    /* malformed: no crash, no name */
    check_demangle("_RNvB99999_3foo", NULL);
    check_demangle("_RNv", NULL);
    check_demangle("_R", NULL);
    check_demangle(
        "_RIC3fooRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRRE",
        NULL);
}

static void test_protobuf(void **state)
{
    ap_buf b = {0};
    ap_pb_varint(&b, 0);
    ap_pb_varint(&b, 1);
    ap_pb_varint(&b, 300);
    ap_pb_varint(&b, UINT64_MAX);
    static const unsigned char want[] = {0x00, 0x01, 0xAC, 0x02, 0xFF, 0xFF, 0xFF,
                                         0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    b.len = 0;
    ap_pb_uint(&b, 1, 0); /* omitted */
    ap_pb_uint(&b, 2, 150);
    ap_pb_bytes(&b, 6, "hi", 2);
    uint64_t v[] = {1, 300};
    ap_pb_packed(&b, 1, v, 2);
    static const unsigned char want2[] = {0x10, 0x96, 0x01, 0x32, 0x02, 'h',
                                          'i',  0x0A, 0x03, 0x01, 0xAC, 0x02};
    assert_int_equal(b.len, sizeof want2);
    assert_memory_equal(b.p, want2, sizeof want2);
    ap_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),      cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_json_array), cmocka_unit_test(test_map_intern),
        cmocka_unit_test(test_demangle),   cmocka_unit_test(test_protobuf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
