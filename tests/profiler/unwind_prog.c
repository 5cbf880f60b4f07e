/*
 * unwind_prog — frame shapes the fast unwinder (profiler/unwind.c) must walk
 * exactly as libunwind does, run with ALLOCPROF_UNWIND=check by
 * run_tests.py (case unwind_check): plain -O2 frames without a frame
 * pointer, deep recursion, alloca and a realigned stack (CFA from rbp),
 * signal handlers on the thread's own stack and on an alternate stack (the
 * signal frame is libunwind's job), and threads.
 */
#define _GNU_SOURCE
#include <alloca.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *volatile sink;
static volatile int handled;

__attribute__((noinline)) static void leaf_alloc(size_t n)
{
    void *p = malloc(n);
    sink = p; /* escapes, so the pair is not optimized away; the free uses the
               * local: four threads share sink, and free(sink) freed another
               * thread's block (a double free that crashed this test) */
    free(p);
}

__attribute__((noinline)) static int recurse(int d)
{
    if (d == 0) {
        leaf_alloc(100);
        return 0;
    }
    return recurse(d - 1) + 1; /* not a tail call */
}

__attribute__((noinline)) static void with_alloca(size_t k)
{
    char *b = alloca(k);
    memset(b, 1, k);
    sink = b;
    leaf_alloc(200 + (size_t)b[k - 1]);
}

__attribute__((noinline, force_align_arg_pointer)) static void realigned(void)
{
    _Alignas(64) char local[64];
    memset(local, 2, sizeof local);
    sink = local;
    leaf_alloc(300);
}

static void handler(int sig)
{
    (void)sig;
    leaf_alloc(400);
    handled++;
}

static void *thread_main(void *arg)
{
    for (int i = 0; i < 2000; i++) {
        recurse(i % 40);
        with_alloca(16 + (size_t)(i % 100));
    }
    return arg;
}

int main(void)
{
    stack_t ss = {.ss_sp = malloc(1 << 16), .ss_size = 1 << 16};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_ONSTACK;
    sigaction(SIGUSR2, &sa, NULL);

    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, thread_main, NULL);
    for (int i = 0; i < 2000; i++) {
        recurse(i % 60);
        with_alloca(32 + (size_t)(i % 200));
        realigned();
        if (i % 20 == 0) {
            raise(SIGUSR1);
            raise(SIGUSR2);
        }
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("unwind_prog done %d\n", handled);
    return handled != 200;
}
