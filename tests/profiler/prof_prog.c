/*
 * prof_prog.c — a program with known allocation sites, run under the
 * profiler by run_tests.py. Each mode exercises one thing the profiler must
 * get right; the site functions are noinline so their names are frame 0.
 *   sites     three sites of known counts and sizes (statistics, rate 1 exactness)
 *   threads   two named threads, each with its own site (thread attribution)
 *   realloc   blocks resized in place and moved by realloc (free + alloc each)
 *   wait      allocate, print "ready", block on stdin (dump on request)
 *   interval  allocate for about 1.5 s (interval dumps)
 *   peak      grow to 64 MiB, free it all, exit (peak dumps)
 *   shortpeak grow to 64 MiB and free it at once, then hold 16 MiB for a while
 *             (a peak shorter than any dump takes)
 *   deep      allocate 40 calls deep (stacks cut at a small ALLOCPROF_DEPTH)
 *   fork      allocate, fork two children that allocate and exit (separate processes)
 *   exec      fork and exec this program in "sites" mode
 *   crash     allocate, wait for interval dumps, then abort()
 *   race      threads allocate while the main thread dlopens and dlcloses
 *             libraries, then a worker calls exit() while the others run
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static volatile unsigned long sink;

NOINLINE void *site_small(size_t n)
{
    void *p = malloc(n);
    memset(p, 1, n);
    return p;
}
NOINLINE void *site_big(size_t n)
{
    void *p = malloc(n);
    memset(p, 2, 64);
    return p;
}
NOINLINE void *site_mid(size_t n)
{
    void *p = malloc(n);
    memset(p, 3, n);
    return p;
}
NOINLINE void *site_thread_a(size_t n)
{
    void *p = malloc(n);
    memset(p, 4, n);
    return p;
}
NOINLINE void *site_thread_b(size_t n)
{
    void *p = malloc(n);
    memset(p, 5, n);
    return p;
}
NOINLINE void *site_child(size_t n)
{
    void *p = malloc(n);
    memset(p, 6, n);
    return p;
}
NOINLINE void *site_parent(size_t n)
{
    void *p = malloc(n);
    memset(p, 7, n);
    return p;
}

/* realloc sites: each block is allocated at site_r_start, resized in place
 * at site_r_stay (a shrink within its size class), moved at site_r_move (to a
 * larger class), then freed. The memsets keep the realloc calls from being
 * tail calls, so each site's own frame is frame 0. */
NOINLINE void *site_r_start(size_t n)
{
    void *p = malloc(n);
    memset(p, 8, n);
    return p;
}
NOINLINE void *site_r_stay(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q != p) {
        fprintf(stderr, "realloc(%zu) moved a block it should keep\n", n);
        exit(3);
    }
    memset(q, 9, n);
    return q;
}
NOINLINE void *site_r_move(void *p, size_t n)
{
    void *q = realloc(p, n);
    memset(q, 10, 64);
    return q;
}

/* 500,000 blocks: 2000 B, then 1900 B in place, then 20000 B moved, freed */
static void mode_realloc(void)
{
    for (int i = 0; i < 500000; i++) {
        char *p = site_r_start(2000);
        p = site_r_stay(p, 1900);
        p = site_r_move(p, 20000);
        sink += (unsigned char)p[i % 64];
        free(p);
    }
    printf("realloc done\n");
}

/* small: 2,000,000 x 48 B freed; big: 1000 x 100000 B kept; mid: 20000 x 3000 B kept */
static void mode_sites(void)
{
    for (int i = 0; i < 2000000; i++) {
        char *p = site_small(48);
        sink += (unsigned char)p[i % 48];
        free(p);
    }
    void **big = calloc(1000, sizeof *big), **mid = calloc(20000, sizeof *mid);
    for (int i = 0; i < 1000; i++)
        big[i] = site_big(100000);
    for (int i = 0; i < 20000; i++)
        mid[i] = site_mid(3000);
    printf("sites done\n");
}

static void *thread_main(void *arg)
{
    int which = (int)(long)arg;
    pthread_setname_np(pthread_self(), which ? "worker-b" : "worker-a");
    for (int i = 0; i < 3000; i++) {
        void *p = which ? site_thread_b(200) : site_thread_a(100);
        if (i % 2)
            free(p);
    }
    return NULL;
}

static void mode_threads(void)
{
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    printf("threads done\n");
}

static void mode_wait(void)
{
    for (int i = 0; i < 1000; i++)
        site_mid(3000);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char buf[64];
    while (fgets(buf, sizeof buf, stdin))
        ;
    printf("wait done\n");
}

static void spin_alloc(double seconds)
{
    for (int r = 0; r < (int)(seconds * 20); r++) {
        for (int i = 0; i < 2000; i++)
            free(site_small(64));
        site_mid(3000);
        usleep(50000);
    }
}

static void mode_peak(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++)
        memset(v[i] = site_big(1 << 20), 1, 1 << 20); /* resident: the dump's RSS shows it */
    usleep(300000);                                   /* let the writer take the peak dump */
    for (int i = 0; i < 64; i++)
        free(v[i]);
    printf("peak done\n");
}

static void mode_shortpeak(void)
{
    void *v[64];
    for (int i = 0; i < 64; i++)
        v[i] = site_big(1 << 20);
    for (int i = 0; i < 64; i++)
        free(v[i]);
    for (int i = 0; i < 16; i++)
        v[i] = site_big(1 << 20);
    usleep(300000);
    for (int i = 0; i < 16; i++)
        free(v[i]);
    printf("shortpeak done\n");
}

/* 40 frames of recursion above each allocation: deeper than a small
 * ALLOCPROF_DEPTH, so the stacks are cut */
NOINLINE static void deep(int level)
{
    if (level == 0) {
        for (int i = 0; i < 200; i++)
            free(site_small(1000));
        return;
    }
    deep(level - 1);
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

static void mode_fork(void)
{
    for (int i = 0; i < 500; i++)
        site_parent(1000);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            for (int i = 0; i < 800; i++)
                site_child(500);
            exit(0);
        }
    }
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    printf("fork done %d\n", ok);
}

static volatile int race_stop;

static void *race_worker(void *arg)
{
    long id = (long)arg;
    for (unsigned long i = 0;; i++) {
        free(site_thread_a(64 + (i % 512)));
        if (id == 0 && i == 300000) {
            printf("race done\n");
            fflush(stdout);
            exit(0); /* while the other workers still allocate */
        }
        if (race_stop)
            return NULL;
    }
}

static void mode_race(void)
{
    pthread_t t[3];
    for (long i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, race_worker, (void *)i);
    const char *libs[] = {"libm.so.6", "libz.so.1", "libdl.so.2"};
    for (int i = 0; i < 60; i++) {
        void *h = dlopen(libs[i % 3], RTLD_NOW | RTLD_LOCAL);
        if (h)
            dlclose(h);
    }
    for (;;)
        pause(); /* worker 0 ends the process */
}

static void mode_exec(const char *self)
{
    for (int i = 0; i < 100; i++)
        site_parent(1000);
    pid_t pid = fork();
    if (pid == 0) {
        execl(self, self, "sites", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("exec done %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "sites";
    if (!strcmp(mode, "sites"))
        mode_sites();
    else if (!strcmp(mode, "threads"))
        mode_threads();
    else if (!strcmp(mode, "realloc"))
        mode_realloc();
    else if (!strcmp(mode, "wait"))
        mode_wait();
    else if (!strcmp(mode, "interval"))
        spin_alloc(1.5), printf("interval done\n");
    else if (!strcmp(mode, "peak"))
        mode_peak();
    else if (!strcmp(mode, "shortpeak"))
        mode_shortpeak();
    else if (!strcmp(mode, "deep"))
        deep(40), printf("deep done\n");
    else if (!strcmp(mode, "fork"))
        mode_fork();
    else if (!strcmp(mode, "exec"))
        mode_exec(argv[0]);
    else if (!strcmp(mode, "race"))
        mode_race();
    else if (!strcmp(mode, "crash")) {
        spin_alloc(0.8);
        fflush(stdout);
        abort();
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
