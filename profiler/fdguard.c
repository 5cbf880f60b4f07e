/*
 * fdguard.c — the library's descriptors, kept apart from the program's.
 *
 * A program owns every descriptor number. Daemons close all they inherited
 * (close loops, close_range, closefrom) and reuse the numbers; supervisors
 * start programs with 0, 1 and 2 closed; test suites list what is open. So
 * every descriptor the library opens, itself or through a library it loads
 * (SQLite in the writer plugin, libunwind's memory-validation pipe), goes
 * through ap_fd_adopt:
 *   - it is moved out of the program's way: F_DUPFD_CLOEXEC to the lowest
 *     free number at or above a high base (64 below the soft descriptor
 *     limit, at most 4096 - 64), so the program's own open() returns the
 *     number it would return without us, 0, 1 and 2 are never taken, and
 *     an exec'd child inherits none of ours;
 *   - its device and inode are remembered.
 * Before every use (read, write, lock, truncate, map, close) the user calls
 * ap_fd_check, which compares them with fstat. A mismatch means the program
 * closed the descriptor and may have reused the number: the entry is
 * forgotten, the descriptor is never touched again (no write, no close),
 * the caller gets EBADF, and ap_fd_lost counts it (the writer then reopens
 * the profile by its absolute path). The window between the check and the
 * use is one system call in the library's own thread.
 *
 * The table is small (a connection holds three files, libunwind one pipe)
 * and taken under its own lock; a check is one fstat.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "profiler_internal.h"

#define SLOTS 32

typedef struct {
    int fd; /* -1: free */
    dev_t dev;
    ino_t ino;
} slot_t;

static ap_lock_t lock;
static slot_t slots[SLOTS];
static int nslots; /* slots[0..nslots) have been used */
static int base;
static _Atomic uint64_t lost;

static int high_base(void)
{
    if (base)
        return base;
    struct rlimit r;
    long lim = 1024;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
        lim = (long)r.rlim_cur;
    if (lim > 4096)
        lim = 4096;
    long b = lim - 64;
    if (b < lim / 2)
        b = lim / 2;
    base = b < 3 ? 3 : (int)b;
    return base;
}

static slot_t *find_locked(int fd)
{
    for (int i = 0; i < nslots; i++)
        if (slots[i].fd == fd)
            return &slots[i];
    return NULL;
}

int ap_fd_adopt(int fd)
{
    if (fd < 0)
        return fd;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, high_base());
    if (hi < 0) /* no room up there (a tiny limit): anywhere but 0..2 */
        hi = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int saved = errno;
    close(fd);
    if (hi < 0) {
        errno = saved;
        return -1;
    }
    struct stat st;
    if (fstat(hi, &st) != 0) {
        close(hi);
        return -1;
    }
    ap_lock(&lock);
    slot_t *s = find_locked(-1);
    if (!s && nslots < SLOTS)
        s = &slots[nslots++];
    if (s) {
        s->fd = hi;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    ap_unlock(&lock);
    if (!s) { /* cannot guard it: do not use it */
        close(hi);
        errno = EMFILE;
        return -1;
    }
    return hi;
}

/* 0: fd is still the library's. -1 (errno EBADF): it is not, or no longer. */
int ap_fd_check(int fd)
{
    struct stat st;
    int r = fstat(fd, &st);
    ap_lock(&lock);
    slot_t *s = find_locked(fd);
    int ok = s && r == 0 && st.st_dev == s->dev && st.st_ino == s->ino;
    if (s && !ok) {
        s->fd = -1; /* the program's now: never touched again */
        atomic_fetch_add(&lost, 1);
    }
    ap_unlock(&lock);
    if (!ok)
        errno = EBADF;
    return ok ? 0 : -1;
}

/* Closes fd if it is still the library's; forgets it either way. */
int ap_fd_close(int fd)
{
    if (ap_fd_check(fd) != 0)
        return 0; /* already gone from our side: nothing to close */
    ap_lock(&lock);
    slot_t *s = find_locked(fd);
    if (s)
        s->fd = -1;
    ap_unlock(&lock);
    return close(fd);
}

/* Checks every descriptor the library holds; returns ap_fd_lost(). */
uint64_t ap_fd_lost(void)
{
    int fds[SLOTS], n = 0;
    ap_lock(&lock);
    for (int i = 0; i < nslots; i++)
        if (slots[i].fd >= 0)
            fds[n++] = slots[i].fd;
    ap_unlock(&lock);
    for (int i = 0; i < n; i++)
        (void)ap_fd_check(fds[i]);
    return atomic_load(&lost);
}

uint64_t ap_fd_lost_count(void)
{
    return atomic_load(&lost);
}

/* fork child: the table is the parent's and still true (descriptors are
 * inherited); only the lock may be held by a thread that is gone. */
void ap_fd_fork_child(void)
{
    ap_lock_init(&lock);
}
