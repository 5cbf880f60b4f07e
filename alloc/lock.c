/*
 * lock.c — the slow half of ap_lock_t, a futex mutex (three states: free,
 * held, held with waiters). Spins briefly before sleeping; both cores of a
 * small machine are often busy, so the spin is short. No allocation, no libc
 * locks: usable from inside malloc and across fork (the child re-inits).
 *
 * A raw clone (a new process made without glibc's fork, so no atfork
 * handler ran: Chromium's zygote) copies locks that other threads held at
 * that instant, and those threads do not exist in the child. Each lock
 * records the process that took it. A waiter that has slept 100 ms checks
 * its pid: in a new process, the allocator's locks and thread registry are
 * reset as after a fork (ap_fork_child), and a lock taken by the old
 * process is taken over. What the vanished thread was changing under that
 * lock stays as it was; a fork would have been no safer without handlers.
 */
#include <errno.h>
#include <linux/futex.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "alloc_internal.h"

AP_HIDDEN int ap_lock_pid;

/* 1 when the wait timed out */
static int futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    struct timespec ts = {0, 100 * 1000 * 1000};
    return syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0) != 0 &&
           errno == ETIMEDOUT;
}

/* After a long wait: is l held by a thread of a process we were cloned from?
 * Then take it (returns true). */
static bool orphaned(ap_lock_t *l)
{
    int pid = (int)syscall(SYS_getpid);
    if (!ap_lock_pid || pid == ap_lock_pid) {
        if (!ap_lock_pid || l->pid == pid)
            return false; /* a live holder: wait on */
    } else {
        ap_lock_pid = pid; /* first notice of the new process */
        ap_fork_child();
    }
    if (l->pid == pid)
        return false;
    atomic_store(&l->v, 1);
    return true;
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
    int saved = errno;
    while (atomic_exchange_explicit(&l->v, 2, memory_order_acquire) != 0)
        if (futex_wait(&l->v, 2) && orphaned(l))
            break;
    errno = saved;
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
