/*
 * api_conformance — the malloc family as glibc programs see it, run with
 * LD_PRELOAD=liballocprof.so.
 *
 * Checks the contract a drop-in replacement must keep: 16-byte alignment of every
 * malloc size 0..70000 and of large sizes up to 64 MiB; calloc zeroing, also of memory
 * that was just freed dirty; calloc/reallocarray multiplication overflow (NULL +
 * ENOMEM); realloc across size classes in both directions with contents preserved;
 * realloc(NULL, n) and realloc(p, 0); malloc_usable_size; posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc; EINVAL from posix_memalign; huge
 * requests failing with ENOMEM; the glibc extras (mallinfo, mallinfo2, malloc_trim,
 * malloc_stats, mallopt); memory allocated inside libc (strdup, getline, ...) freed
 * by the program; and that the malloc family really resolves to liballocprof.so
 * (so the rest of this file is not silently testing glibc).
 *
 * The expected library name for the interposition check is "liballocprof"; the
 * environment variable AP_EXPECT_LIB overrides it (used to validate this test against
 * another allocator such as jemalloc).
 *
 * Built with -fno-builtin so that the compiler cannot fold or elide the calls.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <unistd.h>
#include <dirent.h>

#include <cmocka.h>

#define KiB ((size_t)1024)
#define MiB (KiB * 1024)

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static int is_aligned(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

/* Byte pattern that depends on position and a seed, so a moved or truncated block shows. */
static unsigned char pat(size_t i, unsigned seed)
{
    return (unsigned char)((i * 131u + (i >> 8) * 7u + seed * 29u + 1u) & 0xff);
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pat(i, seed);
}

/* Returns the first index that differs from the pattern, or n. */
static size_t check_fill(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed))
            return i;
    return n;
}

static size_t first_nonzero(const unsigned char *p, size_t n)
{
    /* Word-wise for speed on the 40 MiB blocks. */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != 0)
            break;
    }
    for (; i < n; i++)
        if (p[i] != 0)
            return i;
    return n;
}

/* ---- interposition --------------------------------------------------------------------- */

static void test_interposed(void **state)
{
    (void)state;
    const char *want = getenv("AP_EXPECT_LIB");
    if (want == NULL || *want == '\0')
        want = "liballocprof";
    /* Every entry point whose glibc version would hand out or accept glibc heap memory. */
    static const char *const names[] = {
        "malloc",        "free",     "calloc", "realloc", "posix_memalign",
        "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        memset(&info, 0, sizeof info);
        if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
            print_error("%s: cannot resolve (%s)\n", names[i], dlerror());
            bad++;
            continue;
        }
        if (strstr(info.dli_fname, want) == NULL) {
            print_error("%s resolves into %s, expected a library containing \"%s\"\n", names[i],
                        info.dli_fname, want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* ---- malloc alignment ------------------------------------------------------------------ */

static void test_malloc_alignment_small(void **state)
{
    (void)state;
    for (size_t n = 0; n <= 70000; n++) {
        unsigned char *p = malloc(n);
        if (n == 0 && p == NULL)
            continue; /* malloc(0) may return NULL */
        assert_non_null(p);
        if (!is_aligned(p, 16)) {
            print_error("malloc(%zu) = %p is not 16-byte aligned\n", n, (void *)p);
            fail();
        }
        if (n > 0) {
            p[0] = 0xa5;
            p[n - 1] = 0x5a;
        }
        free(p);
    }
}

static void test_malloc_alignment_large(void **state)
{
    (void)state;
    /* Powers of two and their neighbours, plus odd multiples of a page, up to 64 MiB. */
    for (size_t base = 64 * KiB; base <= 64 * MiB; base *= 2) {
        const size_t sizes[] = {base - 17, base - 1,        base,
                                base + 1,  base + 4096 + 3, base + base / 2};
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            unsigned char *p = malloc(n);
            assert_non_null(p);
            if (!is_aligned(p, 16)) {
                print_error("malloc(%zu) = %p is not 16-byte aligned\n", n, (void *)p);
                fail();
            }
            p[0] = 1;
            p[n / 2] = 2;
            p[n - 1] = 3;
            assert_true(malloc_usable_size(p) >= n);
            free(p);
        }
    }
    /* Many live at once: alignment must not depend on an empty heap. */
    void *live[512];
    for (size_t i = 0; i < 512; i++) {
        size_t n = 1 + (i * 7919) % (300 * KiB);
        live[i] = malloc(n);
        assert_non_null(live[i]);
        assert_true(is_aligned(live[i], 16));
        memset(live[i], (int)i, n);
    }
    for (size_t i = 0; i < 512; i++)
        free(live[i]);
}

/* ---- calloc ---------------------------------------------------------------------------- */

static void calloc_dirty_roundtrip(size_t n, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        unsigned char *p = malloc(n);
        assert_non_null(p);
        memset(p, 0xff, n);
        free(p);
        unsigned char *q = calloc(1, n);
        assert_non_null(q);
        assert_true(is_aligned(q, 16));
        size_t at = first_nonzero(q, n);
        if (at != n) {
            print_error("calloc(1, %zu) round %d: byte %zu is 0x%02x, not zero\n", n, r, at, q[at]);
            fail();
        }
        /* Dirty it again so that the next round reuses dirty memory too. */
        memset(q, 0xff, n);
        free(q);
    }
}

static void test_calloc_zeroes(void **state)
{
    (void)state;
    /* Fresh calloc across sizes and nmemb/size splits. */
    for (size_t n = 1; n <= 5000; n += 7) {
        unsigned char *p = calloc(n, 3);
        assert_non_null(p);
        assert_int_equal(first_nonzero(p, n * 3), n * 3);
        free(p);
    }
    unsigned char *z = calloc(0, 16);
    free(z);
    z = calloc(16, 0);
    free(z);
}

static void test_calloc_after_dirty_free(void **state)
{
    (void)state;
    for (size_t n = 1; n <= 2048; n++)
        calloc_dirty_roundtrip(n, 1);
    const size_t sizes[] = {3000,          4096,    8192,          32 * KiB, 100 * KiB,
                            256 * KiB + 5, 2 * MiB, 2 * MiB + 100, 40 * MiB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        calloc_dirty_roundtrip(sizes[k], 3);
    /* A dirty neighbour population, then calloc of the same class. */
    void *dirty[64];
    for (int i = 0; i < 64; i++) {
        dirty[i] = malloc(100 * KiB);
        assert_non_null(dirty[i]);
        memset(dirty[i], 0xee, 100 * KiB);
    }
    for (int i = 0; i < 64; i++)
        free(dirty[i]);
    for (int i = 0; i < 64; i++) {
        dirty[i] = calloc(100, KiB);
        assert_non_null(dirty[i]);
        assert_int_equal(first_nonzero(dirty[i], 100 * KiB), 100 * KiB);
    }
    for (int i = 0; i < 64; i++)
        free(dirty[i]);
}

static void test_calloc_overflow(void **state)
{
    (void)state;
    volatile size_t big = SIZE_MAX / 2 + 2;
    errno = 0;
    void *p = calloc(big, 2);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);

    volatile size_t half = (size_t)1 << 33;
    errno = 0;
    p = calloc(half, half);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);

    volatile size_t max = SIZE_MAX;
    errno = 0;
    p = calloc(max, max);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);

    /* No overflow but no memory: (2^32) * (2^31) = 2^63. */
    volatile size_t a = (size_t)1 << 32, b = (size_t)1 << 31;
    errno = 0;
    p = calloc(a, b);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);
}

/* ---- reallocarray ---------------------------------------------------------------------- */

/* After a failed reallocarray/realloc the old block is still valid; GCC cannot know that. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

static void test_reallocarray(void **state)
{
    (void)state;
    volatile size_t big = SIZE_MAX / 4;
    errno = 0;
    void *p = reallocarray(NULL, big, 8);
    assert_null(p);
    assert_int_equal(errno, ENOMEM);

    unsigned char *q = reallocarray(NULL, 100, 10);
    assert_non_null(q);
    fill(q, 1000, 9);
    errno = 0;
    void *r = reallocarray(q, big, 16);
    assert_null(r);
    assert_int_equal(errno, ENOMEM);
    /* The original block is untouched and still ours. */
    assert_int_equal(check_fill(q, 1000, 9), 1000);
    q = reallocarray(q, 1000, 100);
    assert_non_null(q);
    assert_int_equal(check_fill(q, 1000, 9), 1000);
    q = reallocarray(q, 3, 5);
    assert_non_null(q);
    assert_int_equal(check_fill(q, 15, 9), 15);
    free(q);
}

/* ---- realloc --------------------------------------------------------------------------- */

static void test_realloc_sequence(void **state)
{
    (void)state;
    size_t seq[128];
    size_t n = 0;
    for (size_t s = 1; s <= 17; s++)
        seq[n++] = s;
    const size_t more[] = {24,      31,           32,           33,    48,        63,     64,
                           65,      100,          127,          128,   129,       255,    256,
                           257,     511,          1000,         1024,  2047,      4096,   5000,
                           8191,    16 * KiB,     32 * KiB + 1, 70000, 128 * KiB, 300000, 1 * MiB,
                           3 * MiB, 16 * MiB + 7, 70 * MiB};
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
        seq[n++] = more[k];
    /* Grow through the sequence, then shrink back down through it. */
    size_t up = n;
    for (size_t k = up - 1; k-- > 0;)
        seq[n++] = seq[k];
    assert_true(n <= sizeof seq / sizeof seq[0]);

    unsigned char *p = NULL;
    size_t old = 0;
    for (size_t k = 0; k < n; k++) {
        size_t sz = seq[k];
        unsigned char *q = realloc(p, sz);
        if (q == NULL) {
            print_error("realloc(%p, %zu) failed (from %zu)\n", (void *)p, sz, old);
            fail();
        }
        assert_true(is_aligned(q, 16));
        size_t keep = old < sz ? old : sz;
        size_t bad = check_fill(q, keep, (unsigned)k);
        if (bad != keep) {
            print_error("realloc %zu -> %zu: byte %zu not preserved\n", old, sz, bad);
            fail();
        }
        assert_true(malloc_usable_size(q) >= sz);
        fill(q, sz, (unsigned)k + 1);
        p = q;
        old = sz;
    }
    free(p);
}

static void test_realloc_edge_cases(void **state)
{
    (void)state;
    /* realloc(NULL, n) behaves like malloc(n). */
    unsigned char *p = realloc(NULL, 77);
    assert_non_null(p);
    assert_true(is_aligned(p, 16));
    assert_true(malloc_usable_size(p) >= 77);
    memset(p, 1, 77);
    free(p);

    /* realloc(p, 0): glibc frees and returns NULL; a valid freeable pointer is also fine. */
    const size_t sizes[] = {1, 100, 5000, 200 * KiB, 5 * MiB};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        p = malloc(sizes[k]);
        assert_non_null(p);
        memset(p, 2, sizes[k]);
        void *q = realloc(p, 0);
        free(q);
    }

    /* Same-size and slightly different sizes keep the contents. */
    p = malloc(1000);
    assert_non_null(p);
    fill(p, 1000, 3);
    for (size_t s = 1000; s > 900; s--) {
        p = realloc(p, s);
        assert_non_null(p);
        assert_int_equal(check_fill(p, s, 3), s);
    }
    free(p);

    /* Huge realloc fails with ENOMEM and leaves the block alone. */
    p = malloc(64);
    assert_non_null(p);
    fill(p, 64, 4);
    volatile size_t huge = SIZE_MAX / 2;
    errno = 0;
    void *q = realloc(p, huge);
    assert_null(q);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(check_fill(p, 64, 4), 64);
    free(p);
}

/* ---- malloc_usable_size ---------------------------------------------------------------- */

static void test_usable_size(void **state)
{
    (void)state;
    assert_int_equal(malloc_usable_size(NULL), 0);
    for (size_t n = 1; n < 100000; n = n < 64 ? n + 1 : n + n / 5 + 3) {
        unsigned char *p = malloc(n);
        assert_non_null(p);
        size_t u = malloc_usable_size(p);
        if (u < n) {
            print_error("malloc_usable_size(malloc(%zu)) = %zu\n", n, u);
            fail();
        }
        memset(p, 0x3c, u); /* all of it is ours to write */
        p = realloc(p, n + 1);
        assert_non_null(p);
        assert_true(malloc_usable_size(p) >= n + 1);
        free(p);
    }
    const size_t big[] = {1 * MiB, 3 * MiB + 1, 33 * MiB};
    for (size_t k = 0; k < 3; k++) {
        unsigned char *p = malloc(big[k]);
        assert_non_null(p);
        size_t u = malloc_usable_size(p);
        assert_true(u >= big[k]);
        memset(p, 0x3c, u);
        free(p);
    }
}

/* ---- aligned allocation ---------------------------------------------------------------- */

typedef void *(*align_fn)(size_t align, size_t size);

static void *via_posix_memalign(size_t align, size_t size)
{
    void *p = NULL;
    int rc = posix_memalign(&p, align, size);
    if (rc != 0) {
        print_error("posix_memalign(%zu, %zu) = %d\n", align, size, rc);
        return NULL;
    }
    return p;
}

static void *via_aligned_alloc(size_t align, size_t size)
{
    return aligned_alloc(align, size);
}

static void *via_memalign(size_t align, size_t size)
{
    return memalign(align, size);
}

static void check_aligned_family(align_fn fn, const char *name)
{
    for (size_t a = 8; a <= 1 * MiB; a *= 2) {
        const size_t sizes[] = {1, 8, 16, a / 2 + 1, a - 1, a, a + 1, 3 * a + 5, 100, 5000};
        void *hold[sizeof sizes / sizeof sizes[0]];
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k];
            unsigned char *p = fn(a, n);
            if (p == NULL || !is_aligned(p, a)) {
                print_error("%s(%zu, %zu) = %p\n", name, a, n, (void *)p);
                fail();
            }
            size_t u = malloc_usable_size(p);
            if (u < n) {
                print_error("%s(%zu, %zu): usable size %zu\n", name, a, n, u);
                fail();
            }
            memset(p, 0x77, u);
            hold[k] = p;
        }
        /* Free in an order different from allocation; realloc one of them first. */
        hold[0] = realloc(hold[0], 4 * KiB);
        assert_non_null(hold[0]);
        for (size_t k = sizeof hold / sizeof hold[0]; k-- > 0;)
            free(hold[k]);
    }
}

static void test_posix_memalign(void **state)
{
    (void)state;
    check_aligned_family(via_posix_memalign, "posix_memalign");

    /* EINVAL: not a power of two, or not a multiple of sizeof(void *). */
    const size_t badalign[] = {0, 1, 2, 4, 3, 12, 24, 48, 100, 4097, (size_t)1 << 63 | 8};
    for (size_t k = 0; k < sizeof badalign / sizeof badalign[0]; k++) {
        if (badalign[k] == sizeof(void *))
            continue;
        void *p = (void *)0x1;
        int rc = posix_memalign(&p, badalign[k], 64);
        if (rc != EINVAL) {
            print_error("posix_memalign(align=%zu) = %d, expected EINVAL\n", badalign[k], rc);
            fail();
        }
    }
    /* ENOMEM is returned (not set in errno) for impossible sizes. */
    void *p = NULL;
    volatile size_t huge = SIZE_MAX / 2;
    assert_int_equal(posix_memalign(&p, 64, huge), ENOMEM);
    /* Size 0 gives NULL or a freeable pointer. */
    p = NULL;
    assert_int_equal(posix_memalign(&p, 256, 0), 0);
    free(p);
}

static void test_aligned_alloc(void **state)
{
    (void)state;
    check_aligned_family(via_aligned_alloc, "aligned_alloc");
}

static void test_memalign(void **state)
{
    (void)state;
    check_aligned_family(via_memalign, "memalign");
    /* Small alignments are allowed for memalign (anything up to malloc's own works). */
    for (size_t a = 1; a <= 16; a *= 2) {
        void *p = memalign(a, 40);
        assert_non_null(p);
        assert_true(is_aligned(p, a));
        free(p);
    }
}

static void test_valloc(void **state)
{
    (void)state;
    size_t ps = page_size();
    const size_t sizes[] = {1, 100, ps - 1, ps, ps + 1, 3 * ps + 17, 200 * KiB, 3 * MiB + 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *p = valloc(n);
        assert_non_null(p);
        assert_true(is_aligned(p, ps));
        assert_true(malloc_usable_size(p) >= n);
        memset(p, 0x11, n);
        free(p);
    }
}

static void test_pvalloc(void **state)
{
    (void)state;
    size_t ps = page_size();
    const size_t sizes[] = {1, 100, ps - 1, ps, ps + 1, 3 * ps + 17, 200 * KiB, 3 * MiB + 1};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        unsigned char *p = pvalloc(n);
        assert_non_null(p);
        assert_true(is_aligned(p, ps));
        size_t rounded = (n + ps - 1) / ps * ps;
        size_t u = malloc_usable_size(p);
        if (u < rounded) {
            print_error("pvalloc(%zu): usable %zu < %zu\n", n, u, rounded);
            fail();
        }
        memset(p, 0x22, rounded);
        free(p);
    }
}

/* ---- failure and odds and ends ---------------------------------------------------------- */

static void test_huge_malloc_fails(void **state)
{
    (void)state;
    volatile size_t sizes[] = {SIZE_MAX / 2, (size_t)1 << 47, SIZE_MAX, SIZE_MAX - 4096};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        errno = 0;
        void *p = malloc(sizes[k]);
        if (p != NULL || errno != ENOMEM) {
            print_error("malloc(%zu) = %p, errno %d\n", (size_t)sizes[k], p, errno);
            fail();
        }
    }
    /* Still fine afterwards. */
    void *p = malloc(100);
    assert_non_null(p);
    free(p);
}

static void test_free_null(void **state)
{
    (void)state;
    free(NULL);
    errno = 1234;
    free(NULL);
    void *p = malloc(10);
    free(p);
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static void test_glibc_extras(void **state)
{
    (void)state;
    void *p = malloc(100000);
    assert_non_null(p);
    struct mallinfo2 mi2 = mallinfo2();
    struct mallinfo mi = mallinfo();
    (void)mi2;
    (void)mi;
    int t = malloc_trim(0);
    assert_true(t == 0 || t == 1);
    malloc_stats(); /* prints to stderr */
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 256 * 1024), 1);
    assert_int_equal(mallopt(M_TRIM_THRESHOLD, 512 * 1024), 1);
    assert_int_equal(mallopt(M_TOP_PAD, 64 * 1024), 1);
    assert_int_equal(mallopt(M_ARENA_MAX, 4), 1);
    free(p);
}
#pragma GCC diagnostic pop

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Memory that libc allocates internally is released by the program with free(). */
static void test_libc_internal_allocations(void **state)
{
    (void)state;
    char *s = strdup("allocprof");
    assert_string_equal(s, "allocprof");
    free(s);
    s = strndup("allocprofiler", 5);
    assert_string_equal(s, "alloc");
    free(s);
    assert_true(asprintf(&s, "%d-%s-%0500d", 42, "x", 7) > 500);
    assert_true(malloc_usable_size(s) > 500);
    free(s);

    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    assert_non_null(ms);
    for (int i = 0; i < 20000; i++)
        fprintf(ms, "%d,", i);
    fclose(ms);
    assert_true(len > 20000);
    buf = realloc(buf, len * 2);
    assert_non_null(buf);
    free(buf);

    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int lines = 0;
    while (getline(&line, &cap, f) > 0)
        lines++;
    assert_true(lines > 0);
    free(line);
    fclose(f);

    char *rp = realpath("/proc/self/exe", NULL);
    assert_non_null(rp);
    free(rp);

    struct dirent **ents = NULL;
    int n = scandir("/proc/self/fd", &ents, NULL, cmp_names);
    assert_true(n > 0);
    for (int i = 0; i < n; i++)
        free(ents[i]);
    free(ents);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interposed),
        cmocka_unit_test(test_malloc_alignment_small),
        cmocka_unit_test(test_malloc_alignment_large),
        cmocka_unit_test(test_calloc_zeroes),
        cmocka_unit_test(test_calloc_after_dirty_free),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_reallocarray),
        cmocka_unit_test(test_realloc_sequence),
        cmocka_unit_test(test_realloc_edge_cases),
        cmocka_unit_test(test_usable_size),
        cmocka_unit_test(test_posix_memalign),
        cmocka_unit_test(test_aligned_alloc),
        cmocka_unit_test(test_memalign),
        cmocka_unit_test(test_valloc),
        cmocka_unit_test(test_pvalloc),
        cmocka_unit_test(test_huge_malloc_fails),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_glibc_extras),
        cmocka_unit_test(test_libc_internal_allocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
