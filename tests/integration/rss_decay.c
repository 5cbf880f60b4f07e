/*
 * rss_decay — RSS falls back after a program frees a large heap, run with
 * LD_PRELOAD=liballocprof.so.
 *
 * Allocates and writes 40 MB in 1,000-byte blocks (below the page heap's 64 MiB limit on
 * dirty free pages, so nothing is released at the free itself), frees them all, then goes
 * on with light work: small mallocs and frees every millisecond. Within three decay epochs
 * (AP_DECAY_MS, 1 s) the freed pages must go back to the OS: RSS below 1/4 of what it was.
 * glibc's malloc keeps them (its heap top is not free); this test is for our library.
 * Exit status 0 on success, 1 with one line on stderr otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long rss_kb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        fprintf(stderr, "rss_decay: cannot read /proc/self/statm\n");
        exit(1);
    }
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(void)
{
    enum { N = 40000, SIZE = 1000 };
    static void *blocks[N];
    long base = rss_kb();
    for (int i = 0; i < N; i++) {
        if (!(blocks[i] = malloc(SIZE))) {
            fprintf(stderr, "rss_decay: malloc failed\n");
            return 1;
        }
        memset(blocks[i], i, SIZE);
    }
    long full = rss_kb();
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    long grown = full - base, left = 0;
    double t0 = now_s();
    unsigned long k = 0;
    while (now_s() - t0 < 3.5) { /* light work: the allocator's slow paths still run */
        void *q[64];
        for (int j = 0; j < 64; j++)
            q[j] = malloc(16 + k++ % 2000);
        for (int j = 0; j < 64; j++)
            free(q[j]);
        usleep(1000);
        left = rss_kb() - base;
        if (left < grown / 4)
            break;
    }
    printf("rss_decay: heap grew by %ld KiB, %ld KiB left after %.1f s\n", grown, left,
           now_s() - t0);
    if (grown < 30000 || left >= grown / 4) {
        fprintf(stderr, "rss_decay: RSS did not fall back (grew %ld KiB, %ld KiB left)\n", grown,
                left);
        return 1;
    }
    return 0;
}
