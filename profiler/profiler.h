/*
 * profiler.h — what the shim calls into. See docs/architecture.md
 * ("A sampled allocation") and docs/sampling.md.
 *   ap_prof_init/ap_prof_exit: constructor and destructor of the library;
 *   ap_prof_sampled(p, n): the countdown crossed zero for the allocation p of
 *     n requested bytes (p may be NULL: then only the countdown is reset);
 *   ap_prof_free(p): p, about to be freed, may be a sampled object;
 *   ap_prof_take/ap_prof_put_back: realloc's "free" half when the block
 *     moves, undone on failure;
 *   ap_prof_resized(p, n): p, maybe sampled, was resized in place by realloc;
 *   ap_unwind_invalidate: called by the shim's dlclose;
 *   ap_dump_sigaction: the shim's sigaction and signal.
 */
#ifndef AP_PROFILER_H
#define AP_PROFILER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler_inline.h"

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

/* True while sampling is on (an output is open and the rate is not 0). */
extern int ap_prof_active;
/* Non-zero when the dump layer has work for a safe place (profiler_internal.h,
 * AP_ATTN_*): the shim's malloc slow path calls ap_prof_attend then. */
extern _Atomic int ap_dump_attention;
void ap_prof_attend(void);

void ap_prof_init(void);
void ap_prof_exit(void);
void *ap_prof_sampled(void *p, size_t n);
void ap_prof_free(void *p);
void ap_prof_resized(void *p, size_t n);
/* dlclose ran: cached unwind rules of unloaded code must not be reused */
void ap_unwind_invalidate(void);
/* the program's sigaction: its own view of the dump signal (dump.c) */
struct sigaction;
int ap_dump_sigaction(int sig, const struct sigaction *act, struct sigaction *old);
bool ap_dump_owns_signal(int sig); /* the library's handler is on sig */
typedef void (*ap_sighandler_t)(int);
ap_sighandler_t ap_dump_real_signal(int sig, ap_sighandler_t handler); /* libc's signal() */

typedef struct {
    uintptr_t ptr;
    uint32_t bucket;
    uint32_t class_bytes;
    uint64_t size;
    uint64_t wfp; /* weight, fixed point (x256) */
} ap_live_t;

bool ap_prof_take(void *p, ap_live_t *rec);
void ap_prof_put_back(const ap_live_t *rec);
void ap_prof_count_free(const ap_live_t *rec);

#pragma GCC visibility pop

#endif
