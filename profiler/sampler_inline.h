/*
 * sampler_inline.h — the profiler's one fast-path cost: a per-thread byte
 * countdown, charged with the requested size of every allocation. When it
 * goes negative the allocation is sampled (profiler/sampler.c draws the next
 * countdown from an exponential distribution). One decrement and one
 * predictable branch; the countdown starts at 0, so each thread's first
 * allocation takes the slow path once to set itself up.
 */
#ifndef AP_SAMPLER_INLINE_H
#define AP_SAMPLER_INLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

extern __thread int64_t ap_sample_left __attribute__((tls_model("initial-exec")));

static inline __attribute__((always_inline)) bool ap_sampler_charge(size_t n)
{
    return __builtin_expect((ap_sample_left -= (int64_t)n) < 0, 0);
}

#pragma GCC visibility pop

#endif
