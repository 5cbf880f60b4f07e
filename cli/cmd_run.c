/*
 * cmd_run.c — `allocprof run [-o FILE] [--rate BYTES] [--interval SECONDS]
 * -- CMD [ARGS...]`: runs CMD with liballocprof.so preloaded (prepended to any
 * LD_PRELOAD the user has), and exits with CMD's status, or 128 + signal
 * number when it is killed by a signal, as a shell does.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

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
    const char *candidates[] = {"/../shim/liballocprof.so", "/../" AP_INSTALL_LIBDIR "/liballocprof.so",
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

int ap_cmd_run(int argc, char **argv)
{
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "--")) {
            i++;
            break;
        }
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: allocprof run [-o FILE] [--rate BYTES] [--interval SECONDS] -- CMD "
                   "[ARGS...]\n");
            return 0;
        }
        if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--rate") ||
            !strcmp(argv[i], "--interval")) {
            if (i + 1 >= argc) {
                ap_cli_error("run: %s needs a value", argv[i]);
                return 2;
            }
            i++;
            continue;
        }
        if (argv[i][0] == '-') {
            ap_cli_error("run: unknown option %s", argv[i]);
            return 2;
        }
        break;
    }
    if (i >= argc) {
        ap_cli_error("run: no command given (usage: allocprof run [options] -- CMD [ARGS...])");
        return 2;
    }
    const char *lib = ap_cli_find_library();
    if (!lib) {
        ap_cli_error("run: cannot find liballocprof.so (set ALLOCPROF_LIB)");
        return 2;
    }
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
        execvp(argv[i], argv + i);
        ap_cli_error("run: %s: %s", argv[i], strerror(errno));
        _exit(127);
    }
    free(preload);
    /* The child gets terminal signals itself; we wait for it. */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            ap_cli_error("run: waitpid: %s", strerror(errno));
            return 2;
        }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}
