/*
 * lock.c — the slow half of ap_lock_t, a futex mutex (three states: free,
 * held, held with waiters). Spins briefly before sleeping; both cores of a
 * small machine are often busy, so the spin is short. No allocation, no libc
 * locks: usable from inside malloc and across fork (the child re-inits).
 */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc_internal.h"

static void futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void ap_lock_slow(ap_lock_t *l)
{
    for (int i = 0; i < 64; i++) {
        __builtin_ia32_pause();
        uint32_t z = 0;
        if (atomic_load_explicit(&l->v, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->v, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
    }
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        futex_wait(&l->v, 2);
}

void ap_unlock_wake(ap_lock_t *l)
{
    syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void ap_assert_fail(const char *expr, const char *file, int line)
{
    char buf[512];
    size_t n = 0;
    const char *parts[] = {"allocprof: assertion failed: ", expr, " at ", file, ":"};
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        for (const char *s = parts[i]; *s && n < sizeof buf - 16; s++)
            buf[n++] = *s;
    char num[12];
    int k = 0;
    for (unsigned v = (unsigned)line; k == 0 || v; v /= 10)
        num[k++] = (char)('0' + v % 10);
    while (k)
        buf[n++] = num[--k];
    buf[n++] = '\n';
    ssize_t r = write(2, buf, n);
    (void)r;
    __builtin_trap();
}
