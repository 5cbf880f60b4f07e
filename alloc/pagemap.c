/*
 * pagemap.c — the page map: from any address to the span that owns its
 * 8 KiB page, and to a one-byte class (0 = not a small object of ours; low 7
 * bits = size class; AP_CLASS_FLAG = span holds flagged objects).
 *
 * A two-level radix tree over 48-bit addresses: a root of 2^20 entries in
 * .bss (8 MiB of address space, touched only where used) and leaves of 2^15
 * pages (256 MiB of address space each; 32 KiB of class bytes + 256 KiB of
 * span pointers), mapped on demand and never freed. A root entry stores the
 * leaf's offset from ap_pagemap_empty_leaf, so a never-set entry reads as the
 * all-zero leaf and the free fast path (ap_pagemap_class) is two dependent
 * loads with no branch.
 *
 * Each leaf also has one dirty bit per page, meaningful for free pages only:
 * set when the page may be resident (it was in use since it was last
 * released), clear when it reads as zero without a fault. The page heap
 * keeps them, so free runs in different states can merge and calloc still
 * knows which pages to clear.
 *
 * Invariants: every span's first and last page map to it; every page of a
 * SMALL span maps to it with its class byte; class bytes are 0 elsewhere.
 * Writers hold the page heap lock; readers take no lock (a leaf is published
 * with a release store and never moves).
 */
#include <string.h>

#include "alloc_internal.h"

AP_HIDDEN intptr_t ap_pagemap_root[AP_ROOT_LEN];
AP_HIDDEN ap_pagemap_leaf_t ap_pagemap_empty_leaf;
static size_t leaves_bytes;

int ap_pagemap_ensure(uintptr_t first_page, size_t npages)
{
    uintptr_t last = first_page + (npages ? npages - 1 : 0);
    for (uintptr_t i = first_page >> AP_LEAF_BITS; i <= last >> AP_LEAF_BITS; i++) {
        size_t r = i & (AP_ROOT_LEN - 1);
        if (atomic_load_explicit((_Atomic intptr_t *)&ap_pagemap_root[r], memory_order_relaxed))
            continue;
        size_t bytes = (sizeof(ap_pagemap_leaf_t) + AP_PAGE_MASK) & ~AP_PAGE_MASK;
        ap_pagemap_leaf_t *leaf = ap_os_map(bytes);
        if (!leaf)
            return -12; /* -ENOMEM */
        leaves_bytes += bytes;
        intptr_t off = (char *)leaf - (char *)&ap_pagemap_empty_leaf;
        atomic_store_explicit((_Atomic intptr_t *)&ap_pagemap_root[r], off, memory_order_release);
    }
    return 0;
}

void ap_pagemap_set(uintptr_t page, ap_span_t *s, uint8_t cls)
{
    ap_pagemap_leaf_t *leaf = ap_pagemap_leaf(page);
    ap_assert(leaf != &ap_pagemap_empty_leaf);
    leaf->span[page & (AP_LEAF_LEN - 1)] = s;
    leaf->cls[page & (AP_LEAF_LEN - 1)] = cls;
}

void ap_pagemap_set_range(uintptr_t first_page, size_t npages, ap_span_t *s, uint8_t cls)
{
    for (size_t i = 0; i < npages; i++)
        ap_pagemap_set(first_page + i, s, cls);
}

void ap_pagemap_set_class_range(uintptr_t first_page, size_t npages, uint8_t cls)
{
    while (npages > 0) { /* one leaf lookup and one memset per leaf covered */
        size_t off = first_page & (AP_LEAF_LEN - 1), n = AP_LEAF_LEN - off;
        if (n > npages)
            n = npages;
        memset(&ap_pagemap_leaf(first_page)->cls[off], cls, n);
        first_page += n;
        npages -= n;
    }
}

/* Runs body with word and mask set to each dirty-bit word and the mask of
 * its bits that cover pages [first, first+n). */
#define FOR_DIRTY_WORDS(first, n, word, mask, body)                                                \
    do {                                                                                           \
        uintptr_t pg_ = (first);                                                                   \
        size_t left_ = (n);                                                                        \
        while (left_ > 0) {                                                                        \
            size_t i_ = pg_ & (AP_LEAF_LEN - 1), bit_ = i_ & 63;                                   \
            size_t k_ = 64 - bit_ < left_ ? 64 - bit_ : left_;                                     \
            uint64_t *word = &ap_pagemap_leaf(pg_)->dirty[i_ >> 6];                                \
            uint64_t mask = (k_ == 64 ? ~(uint64_t)0 : (((uint64_t)1 << k_) - 1)) << bit_;         \
            body;                                                                                  \
            pg_ += k_;                                                                             \
            left_ -= k_;                                                                           \
        }                                                                                          \
    } while (0)

void ap_pagemap_set_dirty(uintptr_t first_page, size_t npages, bool dirty)
{
    if (dirty)
        FOR_DIRTY_WORDS(first_page, npages, w, m, *w |= m);
    else
        FOR_DIRTY_WORDS(first_page, npages, w, m, *w &= ~m);
}

size_t ap_pagemap_count_dirty(uintptr_t first_page, size_t npages)
{
    size_t n = 0;
    FOR_DIRTY_WORDS(first_page, npages, w, m, n += (size_t)__builtin_popcountll(*w & m));
    return n;
}

bool ap_pagemap_next_dirty_run(uintptr_t *page, uintptr_t end, size_t *len)
{
    uintptr_t p = *page;
    while (p < end && !ap_pagemap_is_dirty(p)) { /* skip clean words whole */
        size_t i = p & (AP_LEAF_LEN - 1);
        uint64_t w = ap_pagemap_leaf(p)->dirty[i >> 6] >> (i & 63);
        p += w ? (uintptr_t)__builtin_ctzll(w) : 64 - (i & 63);
    }
    if (p >= end)
        return false;
    uintptr_t q = p;
    while (q < end && ap_pagemap_is_dirty(q)) {
        size_t i = q & (AP_LEAF_LEN - 1);
        uint64_t w = ~(ap_pagemap_leaf(q)->dirty[i >> 6] >> (i & 63));
        q += w ? (uintptr_t)__builtin_ctzll(w) : 64 - (i & 63);
    }
    *page = p;
    *len = (q < end ? q : end) - p;
    return true;
}

size_t ap_pagemap_bytes(void)
{
    return leaves_bytes;
}
