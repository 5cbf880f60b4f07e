/*
 * stack.c — stack capture and the stack table.
 *
 * Capture uses libunwind's unw_backtrace (DWARF CFI with a per-thread trace
 * cache). libunwind is loaded privately with dlopen(RTLD_LOCAL) rather than
 * linked: linked, libunwind.so.8 would put its `backtrace` and
 * `_Unwind_Backtrace` into the program's global symbol scope, and a program
 * that uses another libunwind (LLVM's exports the same unw_* names) would
 * bind to the wrong one. Leading frames inside liballocprof.so itself (the
 * profiler and the malloc entry point) are dropped, so frame 0 is the return
 * address in the code that called malloc/new/realloc.
 *
 * The stack table interns stacks: a hash index over an append-only array of
 * entries and an append-only frame arena, all in our own mappings. Ids are
 * dense (0, 1, ...) and entries never move, so the dumper reads them without
 * the lock once it has read the count (published with release order).
 */
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "id_index.h"
#include "profiler_internal.h"

#define MAX_STACKS (1u << 22)
#define MAX_FRAMES ((size_t)1 << 26)

typedef int (*backtrace_fn)(void **, int);
static backtrace_fn unw_bt;
static uintptr_t self_lo, self_hi; /* our own executable segment(s) */

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

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

int ap_stack_init(char *err, size_t errlen)
{
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&ap_stack_init);
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load libunwind.so.8 (install libunwind8): %s", dlerror());
        return -1;
    }
    unw_bt = (backtrace_fn)dlsym(h, "unw_backtrace");
    if (!unw_bt) {
        snprintf(err, errlen, "libunwind.so.8 has no unw_backtrace");
        return -1;
    }
    /* Per-thread unwind caches: no lock shared between sampling threads.
     * (libunwind's names: _ULx86_64_* are what unw_set_caching_policy and
     * unw_local_addr_space expand to; the value is UNW_CACHE_PER_THREAD.) */
    typedef int (*policy_fn)(void *, int);
    policy_fn set_policy = (policy_fn)dlsym(h, "_ULx86_64_set_caching_policy");
    void **local_as = (void **)dlsym(h, "_ULx86_64_local_addr_space");
    if (set_policy && local_as)
        set_policy(*local_as, 2);
    stacks = ap_os_map(MAX_STACKS * sizeof *stacks);
    frames_arena = ap_os_map(MAX_FRAMES * sizeof *frames_arena);
    if (!stacks || !frames_arena || !ap_id_index_init(&stack_index, 1u << 12)) {
        snprintf(err, errlen, "cannot map the stack table");
        return -1;
    }
    return 0;
}

int ap_stack_capture(uint64_t *out, int max)
{
    void *raw[AP_MAX_DEPTH + 32];
    int n = unw_bt(raw, max + 32);
    int i = 0;
    while (i < n && (uintptr_t)raw[i] >= self_lo && (uintptr_t)raw[i] < self_hi)
        i++;
    int d = 0;
    for (; i < n && d < max; i++)
        out[d++] = (uint64_t)(uintptr_t)raw[i];
    return d;
}

static uint64_t hash_frames(const uint64_t *f, int depth)
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
    return e->hash == k->hash && e->depth == k->depth &&
           !memcmp(frames_arena + e->off, k->frames, (size_t)k->depth * sizeof *k->frames);
}

static uint32_t stack_hash_of(uint32_t id)
{
    return (uint32_t)stacks[id].hash;
}

uint32_t ap_stack_intern_locked(const uint64_t *f, int depth)
{
    struct stack_key k = {f, hash_frames(f, depth), (uint32_t)depth};
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
