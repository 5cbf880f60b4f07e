/* spawn — runs one benchmark command and reports its wall time and peak RSS.
 *
 * Not a workload: bench/run starts every workload through this helper. A child's ru_maxrss
 * on Linux includes the resident set of the process it was exec'd from (the kernel carries
 * the old mm's high-water mark across exec), so a child started straight from Python would
 * report Python's ~10 MB or more as its floor. Started from this small program instead, the
 * floor is about 1 MB, below any workload's own.
 *
 *     bench-spawn [-p PRELOAD] PROG [ARG...]
 *
 * sets LD_PRELOAD=PRELOAD for PROG only (this helper runs on glibc), lets PROG inherit
 * stdout and stderr, and once PROG has exited appends to stdout:
 *
 *     SPAWN status=<exit status or -1> signal=<signal or 0> wall_ns=<n> maxrss_kb=<n>
 *           user_ns=<n> sys_ns=<n>
 *
 * (user and system CPU time of PROG and its threads, from wait4's rusage: system time is
 * where an allocator's page faults, madvise and mmap calls, and thread set-up show).
 *
 * It exits with PROG's status (128 + signal if PROG was killed; 127 if PROG cannot start).
 */
#include "bench.h"

#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

/* environ without any LD_PRELOAD, plus LD_PRELOAD=preload if preload is given. */
static char **child_env(const char *preload)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
            env[k++] = environ[i];
    if (preload) {
        size_t len = strlen(preload) + 12;
        env[k] = malloc(len);
        if (!env[k])
            return NULL;
        snprintf(env[k++], len, "LD_PRELOAD=%s", preload);
    }
    env[k] = NULL;
    return env;
}

int main(int argc, char **argv)
{
    const char *preload = NULL;
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-p") == 0) {
        preload = argv[2];
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: bench-spawn [-p PRELOAD] PROG [ARG...]\n");
        return 2;
    }
    char **env = child_env(preload);
    if (!env) {
        fprintf(stderr, "bench-spawn: out of memory\n");
        return 127;
    }
    fflush(stdout);

    pid_t pid;
    uint64_t t0 = bm_now_ns();
    int err = posix_spawnp(&pid, argv[first], NULL, NULL, argv + first, env);
    if (err) {
        fprintf(stderr, "bench-spawn: cannot run %s: %s\n", argv[first], strerror(err));
        return 127;
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid) {
        perror("bench-spawn: wait4");
        return 127;
    }
    uint64_t wall = bm_now_ns() - t0;

    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    unsigned long long user = (unsigned long long)ru.ru_utime.tv_sec * 1000000000ull +
                              (unsigned long long)ru.ru_utime.tv_usec * 1000ull;
    unsigned long long sys = (unsigned long long)ru.ru_stime.tv_sec * 1000000000ull +
                             (unsigned long long)ru.ru_stime.tv_usec * 1000ull;
    printf("SPAWN status=%d signal=%d wall_ns=%llu maxrss_kb=%ld user_ns=%llu sys_ns=%llu\n", code,
           sig, (unsigned long long)wall, ru.ru_maxrss, user, sys);
    return sig ? 128 + sig : code;
}
