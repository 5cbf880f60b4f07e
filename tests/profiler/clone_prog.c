/*
 * clone_prog.c — processes made with a raw clone system call, as Chromium's
 * zygote makes them (no glibc fork, so no atfork handler runs), while other
 * threads allocate. For the profiler's exactness test (run_tests.py, case
 * raw_clone): every child must be profiled as its own process, and none may
 * hang on a lock that a thread of its parent held at the clone.
 *
 * usage: clone_prog N [wait]   (N children, one after another; with wait,
 * each prints "child PID" and waits for a line on stdin before it exits)
 * Each child allocates 2000 blocks of 1 KiB at site_clone_child, frees
 * half, and exits with exit(0); the parent prints "clone done N" with the
 * number of children that exited 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int stop;
static void *volatile sink;

static void *churn(void *arg)
{
    void *keep[256] = {0};
    for (unsigned i = 0; !atomic_load(&stop); i++) {
        unsigned j = i % 256;
        free(keep[j]);
        keep[j] = malloc(16 + (i * 7919) % 4000);
        sink = keep[j];
    }
    for (int j = 0; j < 256; j++)
        free(keep[j]);
    return NULL;
}

__attribute__((noinline)) static void *site_clone_child(size_t n)
{
    void *p = malloc(n);
    sink = p;
    return p;
}

static int wait_mode; /* "wait": the child waits for a line on stdin before it exits */

static void child(void)
{
    static void *v[2000];
    for (int i = 0; i < 2000; i++)
        v[i] = site_clone_child(1024);
    for (int i = 0; i < 2000; i += 2)
        free(v[i]);
    if (wait_mode) { /* `allocprof dump CHILD` meanwhile */
        printf("child %d\n", (int)syscall(SYS_getpid));
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            exit(4);
    }
    exit(0);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    wait_mode = argc > 2 && !strcmp(argv[2], "wait");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, NULL);
    usleep(50000);
    int ok = 0;
    for (int k = 0; k < n; k++) {
        long pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            child();
        if (pid < 0)
            return perror("clone"), 3;
        int st;
        if (waitpid((pid_t)pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
        usleep(20000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("clone done %d\n", ok);
    return 0;
}
