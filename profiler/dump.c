/*
 * dump.c — when dumps happen, and the profiler's life cycle.
 *
 * Start (ap_prof_init, from the library constructor): read the ALLOCPROF_*
 * configuration, load libunwind, open the database and record the process.
 * Any failure prints one "allocprof: ..." line on stderr and leaves the
 * program running unprofiled (the allocator alone).
 *
 * The program's threads, signals and descriptors stay its own
 * (docs/architecture.md, "What the library owns"):
 *   - no thread at start-up. The dump thread starts at the first dump that
 *     needs it (a request, the first interval, a peak), so a program starts
 *     single-threaded (user namespaces, sandboxes, zygotes need that);
 *   - the dump signal is never blocked in a program thread. The library
 *     installs a handler for it (SA_SIGINFO) and interposes sigaction and
 *     signal for that one signal, so the program sees and sets its own
 *     disposition; a signal that is not a request (no AP_DUMP_TOKEN) goes to
 *     the program's handler, or is ignored if it ignores it;
 *   - descriptors: fdguard.c; the dump thread has a table of its own
 *     (writer_main), so its dumps never take a number of the program's.
 *
 * Triggers, all written by the dump thread (never sampled) except exit:
 *   request  `allocprof dump PID` (dump_protocol.h). The handler sets a flag
 *            and wakes the dump thread (a futex); when there is no thread
 *            yet it starts one, unless the signal interrupted the allocator,
 *            the profiler or the dynamic loader: then the thread's next
 *            sample starts it, and the CLI sends the request again;
 *   interval every ALLOCPROF_INTERVAL seconds, from the first sample after
 *            the first interval on;
 *   peak     when the estimated in-use bytes pass the last peak's by the
 *            fraction ALLOCPROF_PEAK (tcmalloc's peak heap profile). The
 *            allocating thread that passes the mark copies every bucket's
 *            counters and the allocator's statistics at once (a snapshot,
 *            O(buckets), taken at most log(peak/rate)/log(1+fraction)
 *            times), and the dump thread writes that snapshot, so a peak
 *            that lasts a microsecond is still in the file and the last peak
 *            dump is within the fraction of the highest sampled in-use. Two
 *            snapshot buffers: the dump thread writes one while a newer peak
 *            replaces the other. Any dump writes a pending peak first;
 *   exit     in the library destructor: written by the dump thread when it
 *            runs with a descriptor table of its own, the exiting thread
 *            waiting (up to 60 s), else in the exiting thread.
 * A dump lock serialises dumps. fork, and a raw clone (a new pid without
 * glibc's fork): the child keeps the profile it inherited, and at its first
 * sample or dump opens its own connection, records itself as a new process
 * (parent_id = the parent's row) and starts its own dump thread when one is
 * needed. exec: the new image starts afresh.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "dump_protocol.h"
#include "writer_api.h"

#define AP_CLOSE_RANGE_UNSHARE (1u << 1) /* linux/close_range.h */

static ap_db_t *db;
static const ap_writer_t *W; /* the SQLite writer plugin */

static const ap_host_t host = {ap_bucket_count, ap_bucket_at,    ap_stack_count, ap_stack_frames,
                               ap_thread_count, ap_thread_at,    ap_stats_get,   ap_malloc,
                               ap_free,         ap_realloc,      ap_calloc,      ap_usable_size,
                               &ap_prof_cfg,    ap_fd_adopt,     ap_fd_check,    ap_fd_close,
                               ap_fd_lost,      ap_fd_lost_count};

/* dlopen liballocprof-writer.so from the directory liballocprof.so is in. */
static int load_writer(char *err, size_t errlen)
{
    Dl_info info;
    char path[4096];
    if (!dladdr((void *)load_writer, &info) || !info.dli_fname) {
        snprintf(err, errlen, "cannot locate liballocprof.so");
        return -1;
    }
    const char *slash = strrchr(info.dli_fname, '/');
    int dir = slash ? (int)(slash - info.dli_fname + 1) : 0;
    snprintf(path, sizeof path, "%.*sliballocprof-writer.so", dir, info.dli_fname);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ap_writer_entry_fn entry = h ? (ap_writer_entry_fn)dlsym(h, AP_WRITER_ENTRY) : NULL;
    if (!entry) {
        snprintf(err, errlen, "cannot load %s: %s", path, dlerror());
        return -1;
    }
    W = entry(&host);
    return 0;
}
static ap_lock_t dump_lock;
static pthread_t writer;
static _Atomic int writer_running;   /* the dump thread exists */
static _Atomic int writer_starting;  /* someone is starting it */
static _Atomic uint32_t wake_word;   /* the dump thread sleeps on it (futex) */
static _Atomic int writer_own_table; /* ... with a descriptor table of its own */
static _Atomic int exit_pending;     /* the exiting thread asks it for the exit dump */
static _Atomic uint32_t exit_done;   /* futex: 1 once that dump is written */
static _Atomic int peak_pending;
static _Atomic int request_pending;
static _Atomic int64_t next_peak;
static ap_lock_t peak_lock; /* guards the two indices below, held while a snapshot is filled */
static ap_peak_snap_t *peak_buf[2];
static int peak_ready = -1;   /* buffer holding a snapshot not yet written */
static int peak_writing = -1; /* buffer the dump thread is writing */
static double first_interval; /* when the interval dumps begin */
static int my_pid;            /* the process the library's state belongs to */
AP_HIDDEN _Atomic int ap_dump_attention;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Set in the dump thread once it has a descriptor table of its own. */
static AP_TLS bool own_fd_table;
/* Messages the dump thread could not write (a sandbox denies it the open of
 * /proc/self/fd/2): the next sample, or the exit, writes them to fd 2. */
static ap_lock_t said_lock;
static char said[1024];
static size_t nsaid;

static void flush_said(void)
{
    ap_lock(&said_lock);
    if (nsaid) {
        ssize_t r = write(2, said, nsaid);
        (void)r;
        nsaid = 0;
    }
    ap_unlock(&said_lock);
}

static void say(const char *what, const char *why)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "allocprof: %s: %s\n", what, why);
    if (n <= 0)
        return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    if (!own_fd_table) {
        ssize_t r = write(2, buf, len);
        (void)r;
        return;
    }
    /* the dump thread reaches the program's stderr by name (a new open file
     * description: appending, never blocking; a socket cannot be reached) */
    int fd = open("/proc/self/fd/2", O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = write(fd, buf, len);
        (void)r;
        close(fd);
        return;
    }
    ap_lock(&said_lock);
    if (nsaid + len <= sizeof said) {
        memcpy(said + nsaid, buf, len);
        nsaid += len;
    }
    ap_unlock(&said_lock);
    atomic_fetch_or(&ap_dump_attention, AP_ATTN_SAY);
}

static void child_reset(bool raw);
static void child_restart(void);

/* Under dump_lock: writes the pending peak snapshot, if any. */
static void write_pending_peak(void)
{
    char err[512];
    ap_lock(&peak_lock);
    int s = peak_ready;
    peak_ready = -1;
    peak_writing = s;
    ap_unlock(&peak_lock);
    if (s < 0)
        return;
    const ap_peak_snap_t *p = peak_buf[s];
    int rc = db ? W->write_dump(db, "peak", p->time, false, p, err, sizeof err) : 0;
    if (rc != 0)
        say(ap_prof_cfg.output, err);
    ap_lock(&peak_lock);
    peak_writing = -1;
    ap_unlock(&peak_lock);
}

/* A dump of the state now with this reason (NULL: only a pending peak). */
static void do_dump(const char *reason, bool at_exit)
{
    char err[512];
    ap_lock(&dump_lock);
    write_pending_peak();
    int rc = db && reason ? W->write_dump(db, reason, now_s(), at_exit, NULL, err, sizeof err) : 0;
    if (rc == -2) { /* a sandbox, a chroot, a deleted directory: stop here */
        size_t n = strlen(err);
        snprintf(err + n, sizeof err - n, "; profiling of process %d stops", (int)getpid());
        db = NULL;
        ap_prof_active = 0;
    }
    if (rc != 0)
        say(ap_prof_cfg.output, err);
    if (at_exit && db) { /* the last dump: the dump thread, still running, writes no more */
        W->close(db);
        db = NULL;
    }
    ap_unlock(&dump_lock);
}

static void wake_writer(void) /* async-signal-safe */
{
    atomic_fetch_add(&wake_word, 1);
    syscall(SYS_futex, &wake_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *writer_main(void *arg);

/* Starts the dump thread once. From a sample (no allocator lock held), or
 * from the dump signal's handler when start_safe said so. */
static void ensure_writer(void)
{
    if (atomic_load(&writer_running) || atomic_exchange(&writer_starting, 1))
        return;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256 * 1024);
    if (pthread_create(&writer, &a, writer_main, NULL) == 0)
        atomic_store(&writer_running, 1);
    else
        atomic_store(&writer_starting, 0); /* try again at the next need */
    pthread_attr_destroy(&a);
}

/* In the allocating thread (busy, no allocator lock held), after its sample
 * moved the in-use estimate. */
void ap_dump_request_peak(void)
{
    int64_t in = atomic_load_explicit(&ap_prof_inuse_bytes, memory_order_relaxed);
    int64_t mark = atomic_load_explicit(&next_peak, memory_order_relaxed);
    if (in < mark)
        return;
    int64_t next = (int64_t)((double)in * (1.0 + ap_prof_cfg.peak)) + 1;
    if (!atomic_compare_exchange_strong(&next_peak, &mark, next))
        return;             /* another thread took this peak */
    if (getpid() != my_pid) /* a raw clone's child: its own process first */
        ap_dump_attend();
    ap_lock(&peak_lock);
    int s = peak_writing == 0 ? 1 : 0;
    if (!peak_buf[s])
        peak_buf[s] = ap_os_map(sizeof(ap_peak_snap_t) + AP_MAX_BUCKETS * sizeof(ap_bucket_snap_t));
    ap_peak_snap_t *p = peak_buf[s];
    if (p) {
        p->time = now_s();
        p->n = ap_bucket_count();
        for (uint32_t i = 0; i < p->n; i++)
            ap_bucket_snap_read(ap_bucket_at(i), &p->b[i]);
        ap_stats_get(&p->stats);
        peak_ready = s;
    }
    ap_unlock(&peak_lock);
    if (!p)
        return;
    atomic_store(&peak_pending, 1);
    if (atomic_load(&writer_running))
        wake_writer();
    else
        ensure_writer();
}

/* ---- the dump signal, and the program's view of it ---- */

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction;
static _Atomic int sig_owned;        /* our handler is installed */
static struct sigaction prog_action; /* what the program has set (or had) */
static uintptr_t ldso_lo, ldso_hi;   /* the dynamic loader's code */

/* May the handler, interrupting the context uc, create a thread? Not when it
 * interrupted the profiler, the allocator (its code, or a system call it
 * made under a lock: the return address is ours) or the loader. */
static bool start_safe(const ucontext_t *uc)
{
    if (ap_prof_tls.busy)
        return false;
    uintptr_t ip = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    const uintptr_t *sp = (const uintptr_t *)uc->uc_mcontext.gregs[REG_RSP];
    if (ap_unwind_is_self(ip) || (ip >= ldso_lo && ip < ldso_hi))
        return false;
    return !ap_unwind_is_self(sp[0]) && !ap_unwind_is_self(sp[1]);
}

static void to_program(int sig, siginfo_t *si, void *uc)
{
    struct sigaction a = prog_action;
    if (a.sa_flags & SA_SIGINFO) {
        if (a.sa_sigaction) {
            sigset_t old;
            pthread_sigmask(SIG_BLOCK, &a.sa_mask, &old);
            a.sa_sigaction(sig, si, uc);
            pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
    } else if (a.sa_handler != SIG_IGN && a.sa_handler != SIG_DFL) {
        sigset_t old;
        pthread_sigmask(SIG_BLOCK, &a.sa_mask, &old);
        a.sa_handler(sig);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    } else {
        return;
    }
    if (a.sa_flags & SA_RESETHAND) {
        memset(&prog_action, 0, sizeof prog_action);
        prog_action.sa_handler = SIG_DFL;
    }
}

static void on_dump_signal(int sig, siginfo_t *si, void *uc)
{
    int saved = errno;
    bool token = si->si_code == SI_QUEUE && si->si_value.sival_int == AP_DUMP_TOKEN;
    bool prog_default = !(prog_action.sa_flags & SA_SIGINFO) && prog_action.sa_handler == SIG_DFL;
    if (!token && !prog_default) { /* the program's own signal (kill -SIG with no token: ours) */
        to_program(sig, si, uc);
        errno = saved;
        return;
    }
    atomic_store(&request_pending, 1);
    if (getpid() != my_pid) { /* a child of a raw clone: no dump thread of its own yet */
        atomic_fetch_or(&ap_dump_attention, AP_ATTN_RESTART | AP_ATTN_START);
        if (start_safe(uc)) { /* the flags are the parent's copy: start one here */
            atomic_store(&writer_running, 0);
            atomic_store(&writer_starting, 0);
            ensure_writer(); /* it sets the new process up first (writer_main) */
        }
    } else if (atomic_load(&writer_running))
        wake_writer();
    else if (!(atomic_load(&ap_dump_attention) & AP_ATTN_RESTART) && start_safe(uc))
        ensure_writer();
    else
        atomic_fetch_or(&ap_dump_attention, AP_ATTN_START);
    errno = saved;
}

typedef void (*handler_fn)(int);
typedef handler_fn (*signal_fn)(int, handler_fn);
static signal_fn real_signal;

/* libc's sigaction and signal, behind ours (shim/signals.c): resolved in the
 * constructor, before a program's signal handler could call them. */
static void resolve_real(void)
{
    if (!real_sigaction)
        real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (!real_signal)
        real_signal = (signal_fn)dlsym(RTLD_NEXT, "signal");
}

bool ap_dump_owns_signal(int sig)
{
    return atomic_load(&sig_owned) && sig == ap_prof_cfg.signal;
}

ap_sighandler_t ap_dump_real_signal(int sig, ap_sighandler_t handler)
{
    resolve_real();
    if (!real_signal) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    return real_signal(sig, handler);
}

/* The program's sigaction (shim/signals.c), for every signal: the dump
 * signal's disposition as the program set it, the others as they are. */
int ap_dump_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    resolve_real();
    if (!real_sigaction) {
        errno = ENOSYS;
        return -1;
    }
    if (!atomic_load(&sig_owned) || sig != ap_prof_cfg.signal)
        return real_sigaction(sig, act, old);
    struct sigaction prev = prog_action;
    if (act)
        prog_action = *act;
    if (old)
        *old = prev;
    return 0;
}

static int ldso_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (!info->dlpi_name || !strstr(info->dlpi_name, "/ld-linux"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD && (info->dlpi_phdr[i].p_flags & PF_X)) {
            ldso_lo = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            ldso_hi = ldso_lo + info->dlpi_phdr[i].p_memsz;
        }
    return 1;
}

static void own_signal(void)
{
    dl_iterate_phdr(ldso_cb, NULL);
    resolve_real();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_dump_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    if (real_sigaction && real_sigaction(ap_prof_cfg.signal, &sa, &prog_action) == 0)
        atomic_store(&sig_owned, 1);
}

/* ---- the dump thread ---- */

static void *writer_main(void *arg)
{
    ap_prof_tls.busy = 1;     /* nothing this thread allocates is sampled */
    if (getpid() != my_pid) { /* started by a request in a raw clone's child */
        child_reset(true);
        atomic_fetch_and(&ap_dump_attention, ~(AP_ATTN_RESTART | AP_ATTN_START));
        child_restart();
        atomic_store(&writer_starting, 1);
        atomic_store(&writer_running, 1);
    }
    pthread_setname_np(pthread_self(), AP_DUMP_THREAD_NAME);
    /* A descriptor table of its own, empty: nothing of the program's is
     * copied into it (so no file of the program's gets another reference,
     * and none is closed), and what a dump opens never takes a number in the
     * program's table, not even for the moment before fdguard moves it up. A
     * program opening files while a dump ran got another number than it would
     * without us (profiler.dump_fd_numbers: 1,300 of 400,000 opens with a dump
     * every 10 ms), and a daemon listing its descriptors saw ours. Without
     * close_range (before Linux 5.9, or a seccomp filter) the dumps use the
     * shared table, as the exit dump always does. */
    own_fd_table = syscall(SYS_close_range, 0u, ~0u, AP_CLOSE_RANGE_UNSHARE) == 0;
    atomic_store(&writer_own_table, own_fd_table);
    sigset_t set; /* this thread takes the dump signal and no signal of the program's */
    sigfillset(&set);
    sigdelset(&set, ap_prof_cfg.signal);
    pthread_sigmask(SIG_SETMASK, &set, NULL);
    double interval = ap_prof_cfg.interval;
    double next = interval > 0 ? first_interval : 0;
    for (;;) {
        uint32_t w = atomic_load(&wake_word);
        if (!atomic_load(&peak_pending) && !atomic_load(&request_pending) &&
            !atomic_load(&exit_pending)) {
            struct timespec ts = {1, 0};
            if (interval > 0) {
                double wait = next - now_s();
                if (wait < 0)
                    wait = 0;
                ts.tv_sec = (time_t)wait;
                ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
            }
            syscall(SYS_futex, &wake_word, FUTEX_WAIT_PRIVATE, w, &ts, NULL, 0);
        }
        if (atomic_load(&exit_pending)) { /* the last dump: then nothing more */
            do_dump("exit", true);
            atomic_store(&exit_done, 1);
            syscall(SYS_futex, &exit_done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
            for (;;) /* until the process is gone */
                syscall(SYS_futex, &exit_done, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
        }
        if (atomic_exchange(&peak_pending, 0))
            do_dump(NULL, false); /* the pending peak snapshot */
        if (atomic_exchange(&request_pending, 0))
            do_dump("request", false);
        if (interval > 0 && now_s() >= next) {
            do_dump("interval", false);
            next += interval;
            if (next < now_s())
                next = now_s() + interval;
        }
    }
    return NULL;
}

static int open_and_register(char *err, size_t errlen)
{
    ap_process_info_t pi;
    W->process_info(&pi, now_s());
    int rc = W->open(&db, ap_prof_cfg.output, err, errlen);
    if (rc == 0 && (rc = W->add_process(db, &pi, err, errlen)) != 0) {
        W->close(db); /* the file stays consistent, we just stop */
        db = NULL;
    }
    ap_free(pi.cmdline_json);
    ap_free(pi.suppressions);
    return rc;
}

static void fork_prepare(void)
{
    ap_lock(&dump_lock);
    ap_unwind_fork_wait();
    ap_bucket_fork_prepare();
}

static void fork_parent(void)
{
    ap_bucket_fork_parent();
    ap_unwind_fork_done();
    ap_unlock(&dump_lock);
}

/* The state of a new process whose only thread is the one that forked.
 * raw: created without glibc's fork (no atfork handler ran), so the locks
 * of threads that do not exist here are reset too. */
static void child_reset(bool raw)
{
    if (raw) {
        ap_fd_fork_child();
        ap_bucket_fork_child();
    }
    my_pid = getpid();
    ap_lock_init(&dump_lock);
    ap_lock_init(&said_lock);
    nsaid = 0; /* the parent's to print */
    ap_prof_tls.tid = 0;
    db = NULL; /* the parent's connection must not be used here; it is left as is */
    atomic_store(&writer_running, 0);
    atomic_store(&writer_starting, 0);
    atomic_store(&writer_own_table, 0);
    atomic_store(&exit_pending, 0);
    atomic_store(&exit_done, 0);
    atomic_store(&peak_pending, 0);
    ap_lock_init(&peak_lock);
    peak_ready = peak_writing = -1; /* a peak of the parent's is the parent's to write */
    if (!raw) /* a raw clone's child may have taken a request before it noticed its pid */
        atomic_store(&request_pending, 0);
    int a = AP_ATTN_RESTART;
    if (ap_prof_cfg.interval > 0) {
        first_interval = now_s() + ap_prof_cfg.interval;
        a |= AP_ATTN_INTERVAL;
    }
    atomic_store(&ap_dump_attention, a);
}

static void fork_child(void)
{
    ap_fd_fork_child();
    ap_bucket_fork_child();
    ap_unwind_fork_done();
    child_reset(false);
}

/* In a new process (fork, raw clone), at its first sample or dump: its own
 * connection and process row. The parent's connection is left as it is. */
static void child_restart(void)
{
    char err[512];
    ap_lock(&dump_lock);
    if (open_and_register(err, sizeof err) != 0) {
        say(ap_prof_cfg.output, err);
        ap_prof_active = 0;
    }
    ap_unlock(&dump_lock);
}

/* In a sample (busy, no allocator lock held): what the signal handler, a
 * fork or the interval left to do in a safe place. */
void ap_dump_attend(void)
{
    if (atomic_load(&ap_dump_attention) & AP_ATTN_SAY) {
        atomic_fetch_and(&ap_dump_attention, ~AP_ATTN_SAY);
        flush_said();
    }
    if (getpid() != my_pid)
        atomic_fetch_or(&ap_dump_attention, AP_ATTN_RESTART);
    int a = atomic_load(&ap_dump_attention);
    if (a & AP_ATTN_RESTART) {
        if (getpid() != my_pid)
            child_reset(true); /* a raw clone: no atfork handler ran */
        atomic_fetch_and(&ap_dump_attention, ~AP_ATTN_RESTART);
        child_restart();
    }
    if (a & AP_ATTN_START) {
        atomic_fetch_and(&ap_dump_attention, ~AP_ATTN_START);
        if (ap_prof_active)
            ensure_writer();
    }
    if ((a & AP_ATTN_INTERVAL) && now_s() >= first_interval) {
        atomic_fetch_and(&ap_dump_attention, ~AP_ATTN_INTERVAL);
        if (ap_prof_active)
            ensure_writer();
    }
}

void ap_prof_init(void)
{
    char err[512];
    resolve_real(); /* the exported sigaction and signal pass through, profiling or not */
    int on = ap_sampler_config_from_env(&ap_prof_cfg, err, sizeof err);
    if (on < 0)
        say("configuration", err);
    if (on <= 0) {
        ap_prof_decided = 1;
        return;
    }
    ap_prof_tls.busy = 1;
    if (ap_unwind_init(getenv("ALLOCPROF_UNWIND"), err, sizeof err) != 0 ||
        ap_stack_init(err, sizeof err) != 0 || ap_bucket_init() != 0 ||
        load_writer(err, sizeof err) != 0) {
        say("profiling disabled", err);
    } else if (open_and_register(err, sizeof err) != 0) {
        size_t n = strlen(err);
        snprintf(err + n, sizeof err - n, " (running unprofiled)");
        say(ap_prof_cfg.output, err);
    } else {
        my_pid = getpid();
        own_signal();
        /* the first peak at four samples' worth (2 MiB at the default rate): one
         * sample's estimate is the rate itself, and a program's first sample
         * is no peak (nor a reason to start a thread at its start-up) */
        atomic_store(&next_peak, ap_prof_cfg.peak > 0 ? 4 * (int64_t)ap_prof_cfg.rate : INT64_MAX);
        if (ap_prof_cfg.interval > 0) {
            first_interval = now_s() + ap_prof_cfg.interval;
            atomic_store(&ap_dump_attention, AP_ATTN_INTERVAL);
        }
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        ap_prof_active = 1;
    }
    ap_prof_decided = 1;
    ap_sample_left = 0; /* this thread's next allocation sets its sampler up */
    ap_prof_tls.busy = 0;
}

/* The exit dump, written by the dump thread when it has a descriptor table
 * of its own (so the files it opens take no number of the program's, whose
 * other threads may still run), while the exiting thread waits. False when
 * there is no such thread, or it has not written it within 60 s (a lock held
 * elsewhere): the caller writes it. */
static bool exit_dump_by_writer(void)
{
    if (getpid() != my_pid || !atomic_load(&writer_running) || !atomic_load(&writer_own_table))
        return false;
    atomic_store(&exit_pending, 1);
    wake_writer();
    for (int i = 0; i < 60 && !atomic_load(&exit_done); i++) {
        struct timespec ts = {1, 0};
        syscall(SYS_futex, &exit_done, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
    }
    return atomic_load(&exit_done);
}

void ap_prof_exit(void)
{
    if (!ap_prof_active) {
        flush_said(); /* the dump thread's last words, if any */
        return;
    }
    ap_prof_tls.busy = 1;
    if (getpid() != my_pid) {
        child_reset(true); /* a raw clone that never sampled */
        child_restart();
    } else if (atomic_load(&ap_dump_attention) & AP_ATTN_RESTART) {
        atomic_fetch_and(&ap_dump_attention, ~AP_ATTN_RESTART);
        child_restart();
    }
    if (!exit_dump_by_writer())
        do_dump("exit", true);
    flush_said();
    ap_unwind_report();
    ap_prof_active = 0; /* later frees (other destructors) need no accounting */
}
