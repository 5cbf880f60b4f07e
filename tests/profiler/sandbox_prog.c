/*
 * sandbox_prog.c — a program that sandboxes itself after start-up, as
 * Chromium's renderers, OpenSSH and services with SystemCallFilter= do: a
 * seccomp filter makes open and openat fail with EPERM. For the profiler's
 * exactness test (run_tests.py, case sandbox): the library must not be the
 * reason it fails; it stops profiling the process and says so.
 *
 * usage: sandbox_prog [all]   allocates for 0.4 s, prints "sandboxed",
 * installs the filter (for the calling thread, or with "all" for every
 * thread, SECCOMP_FILTER_FLAG_TSYNC, as Chromium does), allocates for 0.4 s
 * more, checks that its own open() fails with EPERM, prints "sandbox done"
 * and exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void churn(double seconds)
{
    double end = now() + seconds;
    while (now() < end) {
        for (int k = 0; k < 1000; k++) {
            sink = malloc(64 + (k % 16) * 256);
            free(sink);
        }
        usleep(1000);
    }
}

static void deny_open(bool all_threads)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, all_threads ? SECCOMP_FILTER_FLAG_TSYNC : 0,
                &prog) != 0)
        perror("seccomp"), exit(3);
}

int main(int argc, char **argv)
{
    churn(0.4);
    printf("sandboxed\n");
    fflush(stdout);
    deny_open(argc > 1 && !strcmp(argv[1], "all"));
    churn(0.4);
    if (open("/dev/null", O_RDONLY) != -1 || errno != EPERM)
        return 4;
    printf("sandbox done\n");
    return 0;
}
