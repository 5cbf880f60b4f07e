/*
 * fds_prog.c — what a program sees of its descriptors, for the profiler's
 * exactness tests (run_tests.py, case std_closed and own_numbers).
 *
 * usage: fds_prog OUT | fds_prog --race SECONDS
 * Allocates (so that the profiler samples and, with ALLOCPROF_UNWIND=
 * libunwind, libunwind opens its validation pipe), then writes to OUT, one
 * per line: whether 0, 1 and 2 are open, what a write to 1 and 2 returns
 * (and errno), the number open() returns, and every open descriptor below
 * 512. Run with and without the library, the files must be the same.
 * --race: for SECONDS, allocates and opens /dev/null over and over, and
 * prints how many of those open() calls did not return the lowest free
 * number (what it returns without the library), out of how many: a dump
 * that opens a descriptor in the program's table, however briefly, takes
 * that number from time to time. Then it returns from main while a second
 * thread goes on opening, and that thread writes "wrong at exit" to stderr
 * for each open() that the exit dump disturbs.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) static void allocate(void)
{
    for (int i = 0; i < 20000; i++) {
        sink = malloc(32 + i % 512);
        free(sink);
    }
}

static int lowest;

static void *watch_exit(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd != lowest) {
            static const char msg[] = "wrong at exit\n";
            if (write(2, msg, sizeof msg - 1) < 0)
                return NULL;
        }
        close(fd);
    }
    return NULL;
}

static int race(double seconds)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int want = open("/dev/null", O_RDONLY); /* the lowest free number */
    close(want);
    long opens = 0, wrong = 0;
    do {
        for (int i = 0; i < 100; i++) {
            sink = malloc(64 + (size_t)(opens % 4096));
            int fd = open("/dev/null", O_RDONLY);
            wrong += fd != want;
            opens++;
            close(fd);
            free(sink);
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) * 1e-9 < seconds);
    printf("wrong %ld of %ld\n", wrong, opens);
    fflush(stdout);
    lowest = want;
    pthread_t watcher;
    if (pthread_create(&watcher, NULL, watch_exit, NULL) != 0)
        return 3;
    usleep(20000);
    return 0; /* exit, and the exit dump, while watch_exit opens */
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "--race"))
        return race(argc > 2 ? atof(argv[2]) : 1.0);
    allocate();
    char report[8192];
    int n = 0;
    for (int fd = 0; fd < 3; fd++)
        n += snprintf(report + n, sizeof report - n, "fd %d open %d\n", fd,
                      fcntl(fd, F_GETFD) != -1);
    for (int fd = 1; fd < 3; fd++) {
        errno = 0;
        ssize_t r = write(fd, "x\n", 2);
        n += snprintf(report + n, sizeof report - n, "write %d -> %zd %s\n", fd, r,
                      r < 0 ? strerrorname_np(errno) : "");
    }
    int mine = open("/dev/null", O_RDONLY);
    n += snprintf(report + n, sizeof report - n, "open -> %d\n", mine);
    allocate();
    DIR *d = opendir("/proc/self/fd");
    int self = dirfd(d);
    struct dirent *e;
    int fds[512], nfds = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && atoi(e->d_name) != self && atoi(e->d_name) < 512 && nfds < 512)
            fds[nfds++] = atoi(e->d_name);
    closedir(d);
    for (int i = 0; i < nfds; i++) /* readdir order is the kernel's: sort */
        for (int j = i + 1; j < nfds; j++)
            if (fds[j] < fds[i]) {
                int t = fds[i];
                fds[i] = fds[j];
                fds[j] = t;
            }
    n += snprintf(report + n, sizeof report - n, "open below 512:");
    for (int i = 0; i < nfds; i++)
        n += snprintf(report + n, sizeof report - n, " %d", fds[i]);
    n += snprintf(report + n, sizeof report - n, "\n");
    FILE *f = fopen(argv[1], "w");
    if (!f)
        return 3;
    fputs(report, f);
    fclose(f);
    return 0;
}
