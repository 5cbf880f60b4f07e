/*
 * mksizeclasses — generates alloc/size_classes.inc, the size-class table of
 * the bundled allocator (see docs/architecture.md, "Size classes").
 *
 * Design (the numbers are ours; the idea of a generated, self-checked table is
 * the Go runtime's mksizeclasses.go):
 *   - every class size is a multiple of 16, so every small object is 16-byte
 *     aligned (max_align_t on x86_64);
 *   - sizes 16..256 step by 16; then 8 classes per power of two up to
 *     1 KiB (step = 2^k / 8) and 4 per power of two above (step = 2^k / 4, as
 *     jemalloc's), up to AP_MAX_SMALL = 64 KiB. 8 rather than 4 between
 *     512 B and 1 KiB: redis-server storing 512-byte values (sds of ~530 B)
 *     peaked at 319 MiB, 1.22 of glibc, with a 640 B class, and at 303 MiB,
 *     1.16, with 576 B (bench/redis_rss), for the same peak RSS on bench
 *     threads and churn and +0.8 MiB (1.6 %) on mixed; 8 per power of two up
 *     to 2 KiB cost threads +0.4 MiB, all the way +1.8 MiB. Each class keeps its own
 *     pool of cached and partly used spans, so a class used now and then
 *     costs memory whatever its traffic: 4 per power of two above 512 B cut
 *     peak RSS on bench threads 8.8 -> 8.0 MiB, mixed 53.2 -> 50.8, realloc
 *     7.4 -> 6.4 (and 6 % fewer instructions there: fewer moves), with the
 *     same instructions on mixed and threads. Larger blocks are
 *     page-heap spans of their own (LARGE): a class of one object per span
 *     gains little from caching, and cached ones hold whole spans that the
 *     page heap could merge and hand to any size (256 KiB: bench realloc
 *     13.1 MiB peak RSS, calloc 43.6 MiB; 64 KiB: 7.3 and 34.6, same time);
 *   - internal waste bound: a request of n bytes lands in a class of at most
 *     max(n + 15, n * 9/8) bytes while that is at most 1 KiB, i.e. per-object
 *     waste <= max(15 B, 12.5 %), and above that of at most n * 5/4 (25 %);
 *   - span bound: each class gets the fewest 8 KiB pages that hold at least
 *     min(8 objects, 64 KiB worth) and leave a tail of at most 1/8 of the span;
 *   - batch (objects moved between a thread cache and the central list at
 *     once) = clamp(8 KiB / size, 2, 32); per-thread cache cap =
 *     clamp(32 KiB / size, batch, 256) objects. (64 KiB of both cost 12 %
 *     more peak RSS on bench threads, objects of rarely used classes sitting
 *     in each thread's cache, for 2.3 % fewer instructions on bench mixed.)
 *     A thread that only frees a class (a consumer) holds up to a batch of
 *     it, and one that only allocates it gets a batch per miss: with 32 KiB
 *     batches (32 objects up to 1 KiB) each held up to 32 KiB per class.
 *     8 KiB: peak RSS prodcons 4.81 -> 4.56 MiB, server 11.12 -> 10.31
 *     (5 interleaved runs); instructions prodcons +5.6 %, server, mixed and
 *     threads within 0.1 % (callgrind, scale 0.1). At most 256 objects
 *     (jemalloc's tcache holds at most 200 of a small class): a list's
 *     slots are 8 bytes an object, so 16..112-byte classes, capped at 1024,
 *     made the slot block 64 KiB, most of it touched by a thread using them
 *     all; now 36 KiB. Peak RSS (5 interleaved runs) churn 3.19 -> 3.06
 *     MiB, threads 7.56 -> 7.50; instructions within 1 % on tree, churn
 *     and mixed (callgrind, scale 0.1).
 *     From 1 KiB up: cap = clamp(16 KiB / size, batch, 256) and batch =
 *     clamp(8 KiB / size, 2, 32), so a list still holds two batches. Blocks
 *     of 1..16 KiB are rare in most programs, yet each such class cached up
 *     to 32 KiB per thread: bench threads held 680 KB of its 1.15 MB of
 *     thread-cached objects in them for 0.7 MB in use. 16 KiB: peak RSS
 *     threads 7.8 -> 7.5 MiB, server 11.7 -> 11.2, for 1.8 % more
 *     instructions on mixed and 1 % on server (callgrind, scale 0.1). 16 KiB
 *     for every class cost mixed 1.7 MiB more and saved no more on threads.
 * The program fails (exit 1) when any bound is broken, so a change to the
 * rules cannot silently produce a bad table. ctest runs it and diffs the
 * output against the checked-in copy.
 *
 * Usage: mksizeclasses [OUT]   (stdout when OUT is absent)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define PAGE_SHIFT 13
#define PAGE_SIZE (1u << PAGE_SHIFT)
#define MAX_SMALL (64u * 1024u)
#define LO_MAX 1024u /* sizes <= LO_MAX use the 16-byte-step lookup table */
#define HI_STEP 128u /* sizes above use a 128-byte-step lookup table */
#define MAX_CLASSES 127
#define SMALL_CACHE (32u * 1024u) /* what a thread caches of a class below COARSE_FROM */
#define BIG_CACHE (16u * 1024u)   /* ... and of one from COARSE_FROM up */
#define COARSE_FROM 1024u         /* 4 classes per power of two above this, 8 below */

struct cls {
    unsigned size, pages, objs, batch, cap;
};

static struct cls classes[MAX_CLASSES + 1];
static int nclasses = 1; /* class 0 = "not a small object" */

static void fail(const char *what, unsigned size)
{
    fprintf(stderr, "mksizeclasses: bound broken: %s (class size %u)\n", what, size);
    exit(1);
}

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static void add_class(unsigned size)
{
    if (nclasses > MAX_CLASSES)
        fail("too many classes for a 7-bit class id", size);
    if (size % 16 != 0)
        fail("class size not a multiple of 16", size);
    unsigned want_objs = clampu(64u * 1024u / size, 1, 8);
    unsigned pages = (size * want_objs + PAGE_SIZE - 1) / PAGE_SIZE;
    for (;; pages++) {
        unsigned span = pages * PAGE_SIZE;
        unsigned tail = span % size;
        if (tail * 8 <= span)
            break;
    }
    struct cls *c = &classes[nclasses++];
    c->size = size;
    c->pages = pages;
    c->objs = pages * PAGE_SIZE / size;
    bool coarse = size >= COARSE_FROM;
    c->batch = clampu((coarse ? BIG_CACHE / 2 : SMALL_CACHE / 4) / size, 2, 32);
    c->cap = clampu((coarse ? BIG_CACHE : SMALL_CACHE) / size, c->batch, 256);
}

static int class_of(unsigned n)
{
    for (int i = 1; i < nclasses; i++)
        if (classes[i].size >= n)
            return i;
    return -1;
}

static void check_waste(void)
{
    for (unsigned n = 1; n <= MAX_SMALL; n++) {
        int c = class_of(n);
        if (c < 0)
            fail("size not covered", n);
        unsigned s = classes[c].size;
        if (s <= COARSE_FROM && s > n + 15 && (unsigned long)s * 8 > (unsigned long)n * 9)
            fail("internal waste above max(15 B, 12.5 %)", s);
        if (s > COARSE_FROM && (unsigned long)s * 4 > (unsigned long)n * 5)
            fail("internal waste above 25 %", s);
    }
}

int main(int argc, char **argv)
{
    FILE *out = stdout;
    if (argc > 1 && !(out = fopen(argv[1], "w"))) {
        perror(argv[1]);
        return 1;
    }
    for (unsigned s = 16; s <= 256; s += 16)
        add_class(s);
    for (unsigned base = 256; base < MAX_SMALL; base *= 2)
        for (unsigned step = base / (base >= COARSE_FROM ? 4 : 8), s = base + step; s <= base * 2;
             s += step)
            add_class(s);
    if (classes[nclasses - 1].size != MAX_SMALL)
        fail("last class is not AP_MAX_SMALL", classes[nclasses - 1].size);
    check_waste();

    fprintf(out, "/* Generated by alloc/gen/mksizeclasses.c; do not edit. */\n");
    fprintf(out, "/* clang-format off */\n");
    fprintf(out,
            "/*\n * Bounds: per-object waste <= max(15 B, 12.5%%) up to %u B, <= 25%% above;\n"
            " * span tail <= 12.5%%.\n *\n",
            COARSE_FROM);
    fprintf(out, " * class  bytes/obj  bytes/span  objects  tail-waste  batch  cache-cap\n");
    for (int i = 1; i < nclasses; i++) {
        struct cls *c = &classes[i];
        unsigned span = c->pages * PAGE_SIZE;
        fprintf(out, " * %5d  %9u  %10u  %7u  %9.2f%%  %5u  %9u\n", i, c->size, span, c->objs,
                100.0 * (span - c->objs * c->size) / span, c->batch, c->cap);
    }
    fprintf(out, " */\n\n");
    fprintf(out, "#define AP_PAGE_SHIFT %d\n", PAGE_SHIFT);
    fprintf(out, "#define AP_NUM_CLASSES %d\n", nclasses);
    fprintf(out, "#define AP_MAX_SMALL %u\n", MAX_SMALL);
    fprintf(out, "#define AP_LOOKUP_LO_MAX %u\n\n", LO_MAX);

    fprintf(out, "const uint32_t ap_class_size[AP_NUM_CLASSES] = {0");
    for (int i = 1; i < nclasses; i++)
        fprintf(out, ",%s%u", i % 8 == 0 ? "\n    " : " ", classes[i].size);
    fprintf(out, "};\n\nconst uint16_t ap_class_pages[AP_NUM_CLASSES] = {0");
    for (int i = 1; i < nclasses; i++)
        fprintf(out, ",%s%u", i % 12 == 0 ? "\n    " : " ", classes[i].pages);
    fprintf(out, "};\n\nconst uint16_t ap_class_objs[AP_NUM_CLASSES] = {0");
    for (int i = 1; i < nclasses; i++)
        fprintf(out, ",%s%u", i % 12 == 0 ? "\n    " : " ", classes[i].objs);
    fprintf(out, "};\n\nconst uint16_t ap_class_batch[AP_NUM_CLASSES] = {0");
    for (int i = 1; i < nclasses; i++)
        fprintf(out, ",%s%u", i % 12 == 0 ? "\n    " : " ", classes[i].batch);
    fprintf(out, "};\n\nconst uint16_t ap_class_cap[AP_NUM_CLASSES] = {0");
    for (int i = 1; i < nclasses; i++)
        fprintf(out, ",%s%u", i % 12 == 0 ? "\n    " : " ", classes[i].cap);

    fprintf(out, "};\n\n/* class of n for n <= %u: ap_class_lo[(n + 15) >> 4] */\n", LO_MAX);
    fprintf(out, "const uint8_t ap_class_lo[%u] = {", LO_MAX / 16 + 1);
    for (unsigned i = 0; i <= LO_MAX / 16; i++)
        fprintf(out, "%s%s%d", i ? "," : "", i % 16 == 0 ? "\n    " : " ",
                class_of(i ? i * 16 : 1));
    fprintf(out, "};\n\n/* class of n for %u < n <= %u: ap_class_hi[(n + 127) >> 7] */\n", LO_MAX,
            MAX_SMALL);
    fprintf(out, "const uint8_t ap_class_hi[%u] = {", MAX_SMALL / HI_STEP + 1);
    for (unsigned i = 0; i <= MAX_SMALL / HI_STEP; i++)
        fprintf(out, "%s%s%d", i ? "," : "", i % 16 == 0 ? "\n    " : " ",
                class_of(i ? i * HI_STEP : 1));
    fprintf(out, "};\n");
    if (out != stdout && fclose(out) != 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
