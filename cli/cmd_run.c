/*
 * cmd_run.c — `allocprof run [-o FILE] [--rate BYTES] [--interval SECONDS]
 * -- CMD [ARGS...]`: runs CMD with liballocprof.so preloaded (prepended to any
 * LD_PRELOAD the user has), and exits with CMD's status, or dies of the
 * signal that killed it. SIGTERM and SIGHUP sent to us reach CMD after it
 * has written a dump (docs/cli.md, "Stopping").
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "profile.h"
#include "symbolize.h"

void ap_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("allocprof: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

const char *ap_cli_find_library(void)
{
    static char path[PATH_MAX];
    const char *env = getenv("ALLOCPROF_LIB");
    if (env && *env)
        return access(env, R_OK) == 0 ? env : NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    const char *candidates[] = {"/../shim/liballocprof.so",
                                "/../" AP_INSTALL_LIBDIR "/liballocprof.so",
                                "/../lib/liballocprof.so", "/liballocprof.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        snprintf(path, sizeof path, "%s%s", exe, candidates[i]);
        char *real = realpath(path, NULL);
        if (real) {
            snprintf(path, sizeof path, "%s", real);
            free(real);
            return path;
        }
    }
    return NULL;
}

static void run_usage(FILE *f)
{
    fprintf(f,
            "usage: allocprof run [-o FILE] [--rate BYTES] [--interval SECONDS] [--peak FRACTION]"
            " -- CMD [ARGS...]\n\n"
            "Runs CMD under liballocprof.so and writes its heap profile to FILE\n"
            "(default allocprof.db; an existing FILE is renamed FILE.old).\n"
            "  -o FILE             the profile database\n"
            "  --rate BYTES        mean bytes between samples (512K default; 1 = every\n"
            "                      allocation; 0 = allocator only, no profile)\n"
            "  --interval SECONDS  also dump every SECONDS\n"
            "  --peak FRACTION     also dump at each new peak of in-use bytes, FRACTION\n"
            "                      above the last peak dump (e.g. 0.1)\n"
            "  --no-symbolize      do not fill the symbol cache after the program exits\n"
            "  -q, --quiet         no summary line on stderr at the end\n"
            "Children (fork, exec) are profiled into the same file. After the program\n"
            "exits, its stacks are symbolized into FILE, so reports need no binaries'\n"
            "debug info again and start at once.\n");
}

static int valid_size(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0)
        return 0;
    if (*end && strchr("kKmMgG", *end))
        end++;
    if (*end == 'i' || *end == 'I')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    return *end == 0;
}

static int valid_number(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    return end != s && !*end && !errno && v >= 0;
}

struct run_opts {
    const char *out, *rate, *interval, *peak;
    int no_symbolize, quiet;
};

/* Parses options up to the command; returns the command's index, or -1 after
 * printing an error (or -2 after --help). */
static int parse_run(int argc, char **argv, struct run_opts *o)
{
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            run_usage(stdout);
            return -2;
        }
        if (!strcmp(a, "--no-symbolize")) {
            o->no_symbolize = 1;
            continue;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        const char **slot = !strcmp(a, "-o") || !strcmp(a, "--output") ? &o->out
                            : !strcmp(a, "--rate")                     ? &o->rate
                            : !strcmp(a, "--interval")                 ? &o->interval
                            : !strcmp(a, "--peak")                     ? &o->peak
                                                                       : NULL;
        if (!slot) {
            if (a[0] == '-') {
                ap_cli_error("run: unknown option %s (see allocprof run --help)", a);
                return -1;
            }
            break;
        }
        if (i + 1 >= argc) {
            ap_cli_error("run: %s needs a value", a);
            return -1;
        }
        *slot = argv[++i];
    }
    if (o->rate && !valid_size(o->rate)) {
        ap_cli_error("run: --rate %s: not a size (examples: 1, 4096, 512K, 2M)", o->rate);
        return -1;
    }
    if (o->interval && !valid_number(o->interval)) {
        ap_cli_error("run: --interval %s: not a number of seconds", o->interval);
        return -1;
    }
    if (o->peak && !valid_number(o->peak)) {
        ap_cli_error("run: --peak %s: not a fraction (example: 0.1)", o->peak);
        return -1;
    }
    if (i >= argc) {
        ap_cli_error("run: no command given (usage: allocprof run [options] -- CMD [ARGS...])");
        return -1;
    }
    return i;
}

/* Absolute path of the output; an existing file (and its WAL) becomes .old. */
static char *prepare_output(const char *out)
{
    char *abs = NULL;
    if (out[0] == '/') {
        abs = strdup(out);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) || asprintf(&abs, "%s/%s", cwd, out) < 0)
            return NULL;
    }
    if (access(abs, F_OK) == 0) {
        char *old;
        if (asprintf(&old, "%s.old", abs) >= 0) {
            if (rename(abs, old) != 0) {
                ap_cli_error("run: %s: cannot move the old profile aside: %s", abs,
                             strerror(errno));
                free(old);
                free(abs);
                return NULL;
            }
            const char *sfx[] = {"-wal", "-shm"};
            for (int k = 0; k < 2; k++) {
                char *a, *b;
                if (asprintf(&a, "%s%s", abs, sfx[k]) >= 0 &&
                    asprintf(&b, "%s%s", old, sfx[k]) >= 0) {
                    rename(a, b);
                    free(b);
                }
                free(a);
            }
            free(old);
        }
    }
    return abs;
}

/* Fills the profile's symbol cache for the last dump of every process, the
 * way heaptrack interprets its trace at the end of a run: the binaries are
 * surely there now, and every later report is a cache read. Quiet when the
 * run left no profile (profiling disabled, output unwritable). */
static volatile sig_atomic_t pending_signal;

static void note_signal(int sig)
{
    pending_signal = sig;
}

static void presymbolize(const char *path)
{
    if (access(path, W_OK) != 0)
        return;
    ap_file *f = ap_file_open(path);
    if (!f)
        return;
    ap_symbolizer *sym = ap_sym_new();
    for (size_t i = 0; i < f->nprocs; i++) {
        const ap_dump *last = ap_last_dump(f, f->procs[i].id);
        ap_profile p;
        if (last && ap_profile_load(f, last, &p) == 0) {
            ap_sym_profile(sym, &p);
            ap_profile_free(&p);
        }
    }
    ap_sym_free(sym);
    ap_file_close(f);
    /* The symbols went in through a second connection while the read-only
     * one was open, so neither close could fold the WAL back: one more
     * writable connection, closed last, leaves a single file behind. */
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK)
        sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(db);
}

/* One line at the end: what was written, and what to try next. Nothing
 * when no profile was written (the library has said why). */
static void summary(const char *path)
{
    if (access(path, R_OK) != 0)
        return;
    ap_file *f = ap_file_open(path);
    if (!f)
        return;
    size_t with = ap_processes_with_dumps(f);
    const char *shown = path;
    char cwd[PATH_MAX];
    size_t n = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
    if (n && !strncmp(path, cwd, n) && path[n] == '/')
        shown = path + n + 1; /* as the user would type it */
    fprintf(stderr,
            "allocprof: wrote %s: %zu process%s (%zu with dumps), %zu dump%s; next: "
            "allocprof top %s (or list, leaks, flamegraph, pprof)\n",
            shown, f->nprocs, f->nprocs == 1 ? "" : "es", with, f->ndumps,
            f->ndumps == 1 ? "" : "s", shown);
    ap_file_close(f);
}

int ap_cmd_run(int argc, char **argv)
{
    struct run_opts o = {"allocprof.db", NULL, NULL, NULL, 0, 0};
    int i = parse_run(argc, argv, &o);
    if (i < 0)
        return i == -2 ? 0 : 2;
    const char *lib = ap_cli_find_library();
    if (!lib) {
        ap_cli_error("run: cannot find liballocprof.so (set ALLOCPROF_LIB)");
        return 2;
    }
    char *out = prepare_output(o.out);
    if (!out)
        return 2;
    const char *old = getenv("LD_PRELOAD");
    char *preload;
    if (asprintf(&preload, "%s%s%s", lib, old && *old ? ":" : "", old ? old : "") < 0) {
        ap_cli_error("run: out of memory");
        return 2;
    }
    pid_t pid = fork();
    if (pid < 0) {
        ap_cli_error("run: fork: %s", strerror(errno));
        return 2;
    }
    if (pid == 0) {
        setenv("LD_PRELOAD", preload, 1);
        setenv("ALLOCPROF_OUTPUT", out, 1);
        if (o.rate)
            setenv("ALLOCPROF_RATE", o.rate, 1);
        if (o.interval)
            setenv("ALLOCPROF_INTERVAL", o.interval, 1);
        if (o.peak)
            setenv("ALLOCPROF_PEAK", o.peak, 1);
        execvp(argv[i], argv + i);
        ap_cli_error("run: %s: %s", argv[i], strerror(errno));
        _exit(127);
    }
    free(preload);
    /* The child gets terminal signals itself; we wait for it. SIGTERM and
     * SIGHUP sent to us (a service manager stopping "the" process) are passed
     * on, after the child has written a dump: a program that dies of them
     * runs no exit handlers, so without it everything since its last dump
     * would be lost. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_signal; /* no SA_RESTART: waitpid returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    int dsig = ap_dump_signal(getenv("ALLOCPROF_SIGNAL"));
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            ap_cli_error("run: waitpid: %s", strerror(errno));
            return 2;
        }
        int sig = pending_signal;
        if (sig) {
            pending_signal = 0;
            (void)ap_request_dump(pid, out, dsig, 5000);
            kill(pid, sig);
        }
    }
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    if (!o.no_symbolize)
        presymbolize(out);
    if (!o.quiet)
        summary(out);
    free(out);
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    /* die the way the program died, so callers see the same signal (the
     * program already wrote any core; we must not add ours) */
    int sig = WTERMSIG(status);
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    raise(sig);
    return 128 + sig;
}
