/*
 * server_sim.c — a long-running "server" for measuring profile database
 * growth: two worker threads handle requests of 20 kinds; each kind reaches
 * its allocations through a call chain of its own depth (1..8 frames), so
 * the profile has a few hundred distinct stacks, like a real service. Most
 * request memory is freed at once; 1 in 50 requests adds to a bounded cache.
 * usage: bench_server_sim SECONDS
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE 20000
static void *cache[2][CACHE];
static double seconds;
static volatile unsigned long sink;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((noinline)) static void *leaf_alloc(int kind, unsigned r)
{
    size_t n = 16 + (size_t)((kind * 97 + r) % 2048);
    char *p = malloc(n);
    memset(p, kind, n < 64 ? n : 64);
    return p;
}

__attribute__((noinline)) static void *descend(int kind, int depth, unsigned r)
{
    if (depth == 0)
        return leaf_alloc(kind, r);
    void *p = descend(kind, depth - 1, r * 31 + 7);
    sink += (unsigned long)p & 1;
    return p;
}

static void *worker(void *arg)
{
    int w = (int)(long)arg;
    unsigned r = 12345u + (unsigned)w;
    double end = now() + seconds;
    unsigned long n = 0;
    while (now() < end) {
        for (int i = 0; i < 1000; i++, n++) {
            r = r * 1103515245u + 12345u;
            int kind = (int)(r >> 16) % 20;
            void *p = descend(kind, 1 + kind % 8, r);
            if (n % 50 == 0) {
                size_t slot = (r >> 8) % CACHE;
                free(cache[w][slot]);
                cache[w][slot] = p;
            } else {
                free(p);
            }
        }
        struct timespec ts = {0, 1000000}; /* 1 ms: a server is not a busy loop */
        nanosleep(&ts, NULL);
    }
    return (void *)n;
}

int main(int argc, char **argv)
{
    seconds = argc > 1 ? atof(argv[1]) : 60;
    pthread_t t[2];
    for (long i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    unsigned long total = 0;
    for (int i = 0; i < 2; i++) {
        void *n;
        pthread_join(t[i], &n);
        total += (unsigned long)n;
    }
    printf("RESULT name=server_sim requests=%lu\n", total);
    return 0;
}
