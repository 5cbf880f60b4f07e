/*
 * stack.c — the stack table (stacks are captured by unwind.c; frame 0 is the
 * return address in the code that called malloc/new/realloc).
 *
 * The stack table interns stacks: a hash index over an append-only array of
 * entries and an append-only frame arena, all in our own mappings. Ids are
 * dense (0, 1, ...) and entries never move, so the dumper reads them without
 * the lock once it has read the count (published with release order).
 */
#include <stdio.h>
#include <string.h>

#include "id_index.h"
#include "profiler_internal.h"

#define MAX_STACKS (1u << 22)
#define MAX_FRAMES ((size_t)1 << 26)

typedef struct {
    uint64_t hash;
    uint32_t off;
    uint32_t depth;
} stack_entry_t;

static stack_entry_t *stacks;
static uint64_t *frames_arena;
static size_t frames_used;
static _Atomic uint32_t nstacks;
static ap_id_index_t stack_index;

int ap_stack_init(char *err, size_t errlen)
{
    stacks = ap_os_map(MAX_STACKS * sizeof *stacks);
    frames_arena = ap_os_map(MAX_FRAMES * sizeof *frames_arena);
    if (!stacks || !frames_arena || !ap_id_index_init(&stack_index, 1u << 12)) {
        snprintf(err, errlen, "cannot map the stack table");
        return -1;
    }
    return 0;
}

uint64_t ap_stack_hash(const uint64_t *f, int depth)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)depth;
    for (int i = 0; i < depth; i++) {
        h ^= f[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

struct stack_key {
    const uint64_t *frames;
    uint64_t hash;
    uint32_t depth;
};

static bool stack_matches(uint32_t id, const void *key)
{
    const struct stack_key *k = key;
    const stack_entry_t *e = &stacks[id];
    if (e->hash != k->hash || e->depth != k->depth)
        return false;
    const uint64_t *f = frames_arena + e->off;
    for (uint32_t i = 0; i < k->depth; i++) /* short: no call to memcmp */
        if (f[i] != k->frames[i])
            return false;
    return true;
}

static uint32_t stack_hash_of(uint32_t id)
{
    return (uint32_t)stacks[id].hash;
}

uint32_t ap_stack_intern_locked(const uint64_t *f, int depth, uint64_t hash)
{
    struct stack_key k = {f, hash, (uint32_t)depth};
    uint32_t slot;
    uint32_t id = ap_id_index_find(&stack_index, (uint32_t)k.hash, stack_matches, &k, &slot);
    if (id != UINT32_MAX)
        return id;
    id = atomic_load_explicit(&nstacks, memory_order_relaxed);
    if (id >= MAX_STACKS || frames_used + (size_t)depth > MAX_FRAMES ||
        !ap_id_index_add(&stack_index, id, (uint32_t)k.hash, slot, stack_hash_of))
        return UINT32_MAX;
    memcpy(frames_arena + frames_used, f, (size_t)depth * sizeof *f);
    stacks[id] = (stack_entry_t){k.hash, (uint32_t)frames_used, (uint32_t)depth};
    frames_used += (size_t)depth;
    atomic_store_explicit(&nstacks, id + 1, memory_order_release);
    return id;
}

uint32_t ap_stack_count(void)
{
    return atomic_load_explicit(&nstacks, memory_order_acquire);
}

const uint64_t *ap_stack_frames(uint32_t id, int *depth)
{
    *depth = (int)stacks[id].depth;
    return frames_arena + stacks[id].off;
}
