/*
 * dump.c — when dumps happen, and the profiler's life cycle.
 *
 * Start (ap_prof_init, from the library constructor): read the ALLOCPROF_*
 * configuration, load libunwind, open the database and record the process.
 * Any failure prints one "allocprof: ..." line on stderr and leaves the
 * program running unprofiled (the allocator alone).
 *
 * Triggers, all written by one writer thread (never sampled) except exit:
 *   request  `allocprof dump PID` sends the dump signal (default SIGRTMIN+6)
 *            to the process. The signal is blocked in the thread that starts
 *            the library, hence in every thread it creates, and the writer
 *            takes it with sigtimedwait, so no program thread sees it and no
 *            system call of the program is interrupted. If a program unblocks
 *            it anyway, a handler forwards it to the writer;
 *   interval every ALLOCPROF_INTERVAL seconds;
 *   peak     when the estimated in-use bytes pass the last peak dump's by the
 *            fraction ALLOCPROF_PEAK (tcmalloc's peak heap profile);
 *   exit     in the library destructor, in the exiting thread.
 * A dump lock serialises dumps. fork: the child keeps the profile it
 * inherited, and at its first sample or exit opens its own connection,
 * records itself as a new process (parent_id = the parent's row) and starts
 * its own writer. exec: the new image starts afresh.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>

#include "writer_api.h"

static ap_db_t *db;
static const ap_writer_t *W; /* the SQLite writer plugin */

static const ap_host_t host = {ap_bucket_count, ap_bucket_at, ap_stack_count, ap_stack_frames,
                               ap_thread_count, ap_thread_at, ap_stats_get,   ap_malloc,
                               ap_free,         ap_realloc,   ap_calloc,      ap_usable_size,
                               &ap_prof_cfg,    ap_fd_adopt,  ap_fd_check,    ap_fd_close,
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
static _Atomic int writer_running;
static _Atomic int peak_pending;
static _Atomic int request_pending;
static _Atomic int64_t next_peak;
AP_HIDDEN _Atomic int ap_dump_need_restart;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void say(const char *what, const char *why)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "allocprof: %s: %s\n", what, why);
    if (n > 0) {
        ssize_t r = write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)r;
    }
}

static void do_dump(const char *reason, bool at_exit)
{
    char err[512];
    ap_lock(&dump_lock);
    if (db && W->write_dump(db, reason, now_s(), at_exit, err, sizeof err) != 0)
        say(ap_prof_cfg.output, err);
    if (!strcmp(reason, "peak")) {
        int64_t in = atomic_load(&ap_prof_inuse_bytes);
        atomic_store(&next_peak, (int64_t)((double)in * (1.0 + ap_prof_cfg.peak)) + 1);
    }
    ap_unlock(&dump_lock);
}

void ap_dump_request_peak(void)
{
    int64_t in = atomic_load_explicit(&ap_prof_inuse_bytes, memory_order_relaxed);
    int64_t mark = atomic_load_explicit(&next_peak, memory_order_relaxed);
    if (in < mark || !atomic_load_explicit(&writer_running, memory_order_relaxed))
        return;
    /* raise the mark now so one peak asks once; the dump sets the real one */
    atomic_store_explicit(&next_peak, (int64_t)((double)in * (1.0 + ap_prof_cfg.peak)) + 1,
                          memory_order_relaxed);
    atomic_store(&peak_pending, 1);
    pthread_kill(writer, ap_prof_cfg.signal);
}

static void forward_signal(int sig)
{
    int saved = errno;
    atomic_store(&request_pending, 1);
    if (atomic_load(&writer_running) && !pthread_equal(pthread_self(), writer))
        pthread_kill(writer, sig);
    errno = saved;
}

static void *writer_main(void *arg)
{
    ap_prof_tls.busy = 1; /* nothing this thread allocates is sampled */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, ap_prof_cfg.signal);
    double interval = ap_prof_cfg.interval, next = interval > 0 ? now_s() + interval : 0;
    for (;;) {
        struct timespec ts = {1, 0};
        if (interval > 0) {
            double wait = next - now_s();
            if (wait < 0.001)
                wait = 0.001;
            ts.tv_sec = (time_t)wait;
            ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
        }
        siginfo_t si;
        int sig = sigtimedwait(&set, &si, &ts);
        if (atomic_exchange(&peak_pending, 0))
            do_dump("peak", false);
        if ((sig > 0 && si.si_code != SI_TKILL) || atomic_exchange(&request_pending, 0))
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

static void start_writer(void)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 256 * 1024);
    if (pthread_create(&writer, &a, writer_main, NULL) == 0)
        atomic_store(&writer_running, 1);
    pthread_attr_destroy(&a);
}

static int open_and_register(char *err, size_t errlen)
{
    ap_process_info_t pi;
    W->process_info(&pi, now_s());
    int rc = W->open(&db, ap_prof_cfg.output, err, errlen);
    if (rc == 0 && (rc = W->add_process(db, &pi, err, errlen)) != 0)
        db = NULL; /* left open: the file stays consistent, we just stop */
    ap_free(pi.cmdline_json);
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

static void fork_child(void)
{
    ap_fd_fork_child();
    ap_bucket_fork_child();
    ap_unwind_fork_done();
    ap_lock_init(&dump_lock);
    ap_prof_tls.tid = 0;
    db = NULL; /* the parent's connection must not be used here; it is left as is */
    atomic_store(&writer_running, 0);
    atomic_store(&ap_dump_need_restart, 1);
}

/* In a forked child, at its first sample or at exit. */
void ap_dump_child_restart(void)
{
    if (!atomic_exchange(&ap_dump_need_restart, 0))
        return;
    char err[512];
    ap_lock(&dump_lock);
    if (open_and_register(err, sizeof err) != 0) {
        say(ap_prof_cfg.output, err);
        ap_prof_active = 0;
    }
    ap_unlock(&dump_lock);
    if (db)
        start_writer();
}

void ap_prof_init(void)
{
    char err[512];
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
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, ap_prof_cfg.signal);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = forward_signal;
        sa.sa_flags = SA_RESTART;
        sigaction(ap_prof_cfg.signal, &sa, NULL);
        atomic_store(&next_peak, ap_prof_cfg.peak > 0 ? (int64_t)ap_prof_cfg.rate : INT64_MAX);
        pthread_atfork(fork_prepare, fork_parent, fork_child);
        start_writer();
        ap_prof_active = 1;
    }
    ap_prof_decided = 1;
    ap_sample_left = 0; /* this thread's next allocation sets its sampler up */
    ap_prof_tls.busy = 0;
}

void ap_prof_exit(void)
{
    if (!ap_prof_active)
        return;
    ap_prof_tls.busy = 1;
    if (atomic_load(&ap_dump_need_restart))
        ap_dump_child_restart();
    do_dump("exit", true);
    ap_unwind_report();
    ap_prof_active = 0; /* later frees (other destructors) need no accounting */
    ap_lock(&dump_lock);
    if (db) /* the last connection out folds the WAL into the file */
        W->close(db);
    db = NULL;
    ap_unlock(&dump_lock);
}
