/*
 * unwind_inline.h — the common case of a stack capture, inline in the
 * sampler: a repeat of the thread's last walk (unwind.c has the design and
 * everything else). Internal to liballocprof.so.
 */
#ifndef AP_UNWIND_INLINE_H
#define AP_UNWIND_INLINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "../alloc/alloc_internal.h"

#pragma GCC visibility push(hidden)

typedef struct {
    uintptr_t ip, sp, bp;
} ap_unwind_ctx_t;

#define AP_MEMO_READS 40
#define AP_MEMO_FRAMES 20
#define AP_UNWIND_GEN_MASK 0x3fffu

extern _Atomic uint32_t ap_unwind_gen; /* bumped by dlclose: cached rules are stale */
extern int ap_unwind_mode;             /* 0 fast, 1 libunwind, 2 check */

/* The stack words a walk read, in order; with the same starting registers,
 * the same words give the same walk (see walk_fast in unwind.c). */
typedef struct {
    int n;            /* > AP_MEMO_READS: too many to remember */
    bool bp_input;    /* the starting rbp was used as a CFA base */
    uintptr_t bp_src; /* where the current rbp was read from (0: the starting register) */
    uintptr_t addr[AP_MEMO_READS], val[AP_MEMO_READS];
} ap_reads_t;

/* The last walk of this thread: where it started, the words it read and
 * the frames it found. A walk from the same registers (ip, sp, rbp) is a
 * function of the words it reads: each rule depends only on ip, each CFA on
 * sp or rbp, and the next ip and rbp are read from the stack. So when every
 * remembered word still holds its value, the walk would come out the same,
 * and the frames are reused after ~2 loads per frame instead of a rule
 * lookup each (a hot allocation site samples from the same stack depth). */
typedef struct {
    uintptr_t ip0, sp0, bp0;
    uint64_t id; /* this thread's walks remembered so far; names the frames below */
    uint32_t gen;
    int max, depth;
    ap_reads_t rd;
    uint64_t frames[AP_MEMO_FRAMES];
} ap_walk_memo_t;

extern AP_TLS ap_walk_memo_t ap_unwind_memo;

/* A repeat of this thread's last walk: its depth, with *walk_id set to its
 * id and the frames copied to out unless *walk_id already named them on
 * entry; -1 when it is not a repeat (*walk_id untouched). Inline in
 * ap_unwind_capture: a repeat is the common case, a handful of loads. */
static inline __attribute__((always_inline)) int
ap_walk_repeat(uint64_t *out, int max, const ap_unwind_ctx_t *from, uint64_t *walk_id)
{
    const ap_walk_memo_t *m = &ap_unwind_memo;
    uintptr_t sp = from->sp;
    /* The same sp on the same thread is on the same stack (stack_top(sp)
     * depends only on sp, the thread pointer and __libc_stack_end), so every
     * remembered address still lies in [sp, top - 8], as the first walk
     * checked: no bounds check here. */
    if (m->ip0 != from->ip || m->sp0 != sp || (m->rd.bp_input && m->bp0 != from->bp) ||
        m->max != max ||
        m->gen != (atomic_load_explicit(&ap_unwind_gen, memory_order_acquire) & AP_UNWIND_GEN_MASK))
        return -1;
    /* all words compared, no early exit: one branch per pair of words */
    uintptr_t diff = 0;
    int k = 0, n = m->rd.n;
    for (; k + 1 < n; k += 2)
        diff |= (*(const uintptr_t *)m->rd.addr[k] ^ m->rd.val[k]) |
                (*(const uintptr_t *)m->rd.addr[k + 1] ^ m->rd.val[k + 1]);
    if (k < n)
        diff |= *(const uintptr_t *)m->rd.addr[k] ^ m->rd.val[k];
    if (diff)
        return -1;
    if (m->id != *walk_id)
        memcpy(out, m->frames, (size_t)m->depth * sizeof *out);
    *walk_id = m->id;
    return m->depth;
}

int ap_unwind_capture_slow(uint64_t *out, int max, const ap_unwind_ctx_t *from, uint64_t *walk_id);

/* The stack from `from` outwards, our own frames dropped: its depth.
 * *walk_id: on entry, the id of this thread's walk whose frames the caller
 * holds (0: none); on return, when not 0, the id that names these exact
 * frames (the same id again from this thread means the same stack). When it
 * equals the id passed in, frames were not written. */
static inline __attribute__((always_inline)) int
ap_unwind_capture(uint64_t *frames, int max, const ap_unwind_ctx_t *from, uint64_t *walk_id)
{
    if (ap_likely(ap_unwind_mode == 0)) {
        int n = ap_walk_repeat(frames, max, from, walk_id);
        if (ap_likely(n >= 0))
            return n;
    }
    return ap_unwind_capture_slow(frames, max, from, walk_id);
}

#pragma GCC visibility pop

#endif
