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
 * SQLite reaches the system through its VFS's table of calls, which the
 * writer points here. libunwind calls libc directly (its memory-validation
 * pipe, /proc/self/maps, the ELF files it reads), so ap_fd_guard_imports
 * rewrites its GOT entries for open, pipe2, read, write, close, fstat and
 * mmap to the guarded versions below: it can then never write a byte of
 * memory into, or close, a descriptor of the program's, nor take 0..2.
 *
 * The dump thread (dump.c) has a descriptor table of its own: what it opens
 * is invisible to the program, even between open() and the move up. The
 * guard still applies there (the same calls), and matters for the process
 * row at start-up, a forked child's first connection and the exit dump of a
 * process whose dump thread never started, which use the program's table.
 *
 * The table is small (a connection holds three files, libunwind a pipe
 * and the odd file) and taken under its own lock; a check is one fstat.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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

/* ---- a loaded library's calls to libc, guarded ---- */

static int g_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    return ap_fd_adopt(open(path, flags | O_CLOEXEC, mode));
}

/* libunwind's only pipe is its memory-validation pipe: it writes one byte
 * from an address into it to learn whether the address is readable, and
 * reads it back. No descriptor is needed for that: pipe2 hands out two
 * numbers no descriptor can have, a write to the one answers with
 * process_vm_readv on our own memory (fails with EFAULT where the byte is
 * unreadable, as the pipe write would), and a read from the other says the
 * pipe is empty (EAGAIN), which libunwind takes as "still open". */
#define FAKE_READ_END (-64)
#define FAKE_WRITE_END (-65)

static int g_pipe2(int fds[2], int flags)
{
    (void)flags;
    fds[0] = FAKE_READ_END;
    fds[1] = FAKE_WRITE_END;
    return 0;
}

static ssize_t validate_byte(const void *addr)
{
    char byte;
    struct iovec local = {&byte, 1}, remote = {(void *)addr, 1};
    ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (r == 1)
        return 1;
    if (r < 0 && (errno == ENOSYS || errno == EPERM))
        return 1; /* cannot ask (a sandbox): libunwind's mincore check stands */
    errno = EFAULT;
    return -1;
}

static ssize_t g_read(int fd, void *buf, size_t n)
{
    if (fd == FAKE_READ_END) {
        errno = EAGAIN;
        return -1;
    }
    return ap_fd_check(fd) ? -1 : read(fd, buf, n);
}

static ssize_t g_write(int fd, const void *buf, size_t n)
{
    if (fd == FAKE_WRITE_END)
        return validate_byte(buf);
    return ap_fd_check(fd) ? -1 : write(fd, buf, n);
}

/* Debian's libunwind reads and writes its pipe with syscall(SYS_read/write) */
static long g_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (nr == SYS_read)
        return g_read((int)a[0], (void *)a[1], (size_t)a[2]);
    if (nr == SYS_write)
        return g_write((int)a[0], (const void *)a[1], (size_t)a[2]);
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static int g_close(int fd)
{
    if (fd == FAKE_READ_END || fd == FAKE_WRITE_END)
        return 0;
    return ap_fd_close(fd);
}

static int g_fstat(int fd, struct stat *st)
{
    return ap_fd_check(fd) ? -1 : fstat(fd, st);
}

static void *g_mmap(void *addr, size_t n, int prot, int flags, int fd, off_t off)
{
    if (fd >= 0 && !(flags & MAP_ANONYMOUS) && ap_fd_check(fd))
        return MAP_FAILED;
    return mmap(addr, n, prot, flags, fd, off);
}

static const struct {
    const char *name;
    void *fn;
} guarded[] = {
    {"open", (void *)g_open},   {"open64", (void *)g_open},     {"pipe2", (void *)g_pipe2},
    {"read", (void *)g_read},   {"write", (void *)g_write},     {"close", (void *)g_close},
    {"fstat", (void *)g_fstat}, {"fstat64", (void *)g_fstat},   {"mmap", (void *)g_mmap},
    {"mmap64", (void *)g_mmap}, {"syscall", (void *)g_syscall},
};

struct relro {
    uintptr_t base, lo, hi;
};

static int relro_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct relro *r = arg;
    if (info->dlpi_addr != r->base)
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            r->lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            r->hi = r->lo + info->dlpi_phdr[i].p_memsz;
        }
    return 1;
}

static int patch_slot(void **slot, void *fn, const struct relro *r)
{
    uintptr_t a = (uintptr_t)slot;
    if (a >= r->lo && a < r->hi) { /* read-only after relocation: open it for the store */
        uintptr_t page = a & ~(uintptr_t)4095;
        if (mprotect((void *)page, 4096, PROT_READ | PROT_WRITE) != 0)
            return -1;
        *slot = fn;
        mprotect((void *)page, 4096, PROT_READ);
    } else {
        *slot = fn;
    }
    return 0;
}

/* Points the GOT entries of the library behind handle for the calls in
 * guarded[] at our versions. 0, or -1 if it could not (then do not use it). */
int ap_fd_guard_imports(void *handle)
{
    struct link_map *lm;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm || !lm->l_ld)
        return -1;
    uintptr_t base = lm->l_addr;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) * rel[2] = {NULL, NULL};
    size_t relsz[2] = {0, 0};
    for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
        /* the loader has relocated these pointers in place on x86-64; allow either */
        uintptr_t p = d->d_un.d_ptr < base ? d->d_un.d_ptr + base : d->d_un.d_ptr;
        switch (d->d_tag) {
        case DT_SYMTAB:
            symtab = (const ElfW(Sym) *)p;
            break;
        case DT_STRTAB:
            strtab = (const char *)p;
            break;
        case DT_JMPREL:
            rel[0] = (const ElfW(Rela) *)p;
            break;
        case DT_PLTRELSZ:
            relsz[0] = d->d_un.d_val;
            break;
        case DT_RELA:
            rel[1] = (const ElfW(Rela) *)p;
            break;
        case DT_RELASZ:
            relsz[1] = d->d_un.d_val;
            break;
        }
    }
    if (!symtab || !strtab)
        return -1;
    struct relro r = {base, 0, 0};
    dl_iterate_phdr(relro_cb, &r);
    int found = 0;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; rel[k] && i < relsz[k] / sizeof(ElfW(Rela)); i++) {
            const ElfW(Rela) *e = &rel[k][i];
            unsigned type = ELF64_R_TYPE(e->r_info);
            if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
                continue;
            const char *name = strtab + symtab[ELF64_R_SYM(e->r_info)].st_name;
            for (size_t g = 0; g < sizeof guarded / sizeof guarded[0]; g++)
                if (!strcmp(name, guarded[g].name)) {
                    if (patch_slot((void **)(base + e->r_offset), guarded[g].fn, &r) != 0)
                        return -1;
                    found++;
                }
        }
    }
    return found ? 0 : -1;
}
