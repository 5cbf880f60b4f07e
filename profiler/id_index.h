/*
 * id_index.h — a hash index over dense ids 0..n-1, shared by the stack table
 * (stack.c) and the bucket table (bucket.c). Open addressing with linear
 * probing; a slot holds id + 1 (0 = empty); the table lives in our own
 * mappings and doubles when half full. The owner keeps the keys: lookups
 * hand the index a predicate, growth a function giving an id's hash. The
 * owner's lock is held for every call.
 */
#ifndef AP_ID_INDEX_H
#define AP_ID_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "../alloc/alloc_internal.h"

#pragma GCC visibility push(hidden)

typedef struct {
    uint32_t *tab;
    uint32_t cap; /* a power of two */
} ap_id_index_t;

static inline bool ap_id_index_init(ap_id_index_t *x, uint32_t cap)
{
    x->cap = cap;
    x->tab = ap_os_map(cap * sizeof *x->tab);
    return x->tab != NULL;
}

/* The id on hash h's probe sequence for which match(id, key) holds, else
 * UINT32_MAX with *slot set to the empty slot that ends the sequence. */
static inline uint32_t ap_id_index_find(const ap_id_index_t *x, uint32_t h,
                                        bool (*match)(uint32_t id, const void *key),
                                        const void *key, uint32_t *slot)
{
    uint32_t s = h & (x->cap - 1);
    for (uint32_t v; (v = x->tab[s]); s = (s + 1) & (x->cap - 1))
        if (match(v - 1, key))
            return v - 1;
    *slot = s;
    return UINT32_MAX;
}

/* Adds id n (ids 0..n-1 are in) at the slot ap_id_index_find returned for
 * hash h; first doubles the table when it would be over half full,
 * re-placing every id by hash_of(id). False when the bigger table cannot be
 * mapped (nothing changes then). */
static inline bool ap_id_index_add(ap_id_index_t *x, uint32_t n, uint32_t h, uint32_t slot,
                                   uint32_t (*hash_of)(uint32_t id))
{
    if ((n + 1) * 2 > x->cap) {
        uint32_t cap = x->cap * 2;
        uint32_t *t = ap_os_map(cap * sizeof *t);
        if (!t)
            return false;
        for (uint32_t id = 0; id < n; id++) {
            uint32_t s = hash_of(id) & (cap - 1);
            while (t[s])
                s = (s + 1) & (cap - 1);
            t[s] = id + 1;
        }
        ap_os_unmap(x->tab, x->cap * sizeof *x->tab);
        x->tab = t;
        x->cap = cap;
        for (slot = h & (cap - 1); t[slot]; slot = (slot + 1) & (cap - 1))
            ;
    }
    x->tab[slot] = n + 1;
    return true;
}

#pragma GCC visibility pop

#endif
