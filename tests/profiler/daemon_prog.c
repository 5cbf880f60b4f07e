/*
 * daemon_prog.c — a program that does with its descriptors what daemons do,
 * for the profiler's exactness tests (run_tests.py, case daemon_*).
 *
 * usage: daemon_prog MODE DIR [wait]
 *   MODE closeloop   close(fd) for every fd from 3 to the descriptor limit
 *        closerange  close_range(3, ~0U, 0)
 *        dup2        leave everything open, but dup2 its own files onto
 *                    every descriptor >= 3 it did not open (the library's)
 * It allocates for a while (dumps before), prints "closed T" (T: the
 * wall-clock time, seconds), does MODE, opens DIR/f0..f5 and writes 10 bytes
 * to each; with "wait" it prints "ready" and waits for a line on stdin
 * (`allocprof dump PID` meanwhile); allocates again (dumps after), writes 10
 * more bytes to each file and closes them. The files must end up holding
 * exactly those 20 bytes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *volatile sink;

__attribute__((noinline)) static void churn(double seconds)
{
    double end = now() + seconds;
    void *keep[64] = {0};
    for (unsigned i = 0; now() < end; i++) {
        for (int k = 0; k < 1000; k++) {
            unsigned j = (i * 1000 + k) % 64;
            free(keep[j]);
            keep[j] = malloc(64 + (k % 16) * 256);
            sink = keep[j];
        }
        usleep(1000);
    }
    for (int j = 0; j < 64; j++)
        free(keep[j]);
}

/* descriptors >= 3 that are open now (the library's), excluding the listing's own */
static int others(int *out, int max)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0, self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 3 && fd != self)
            out[n++] = fd;
    }
    closedir(d);
    return n;
}

static void put(int fd, int i, char tag)
{
    char b[11];
    snprintf(b, sizeof b, "f%d-%c-abcd\n", i, tag);
    if (write(fd, b, 10) != 10)
        perror("write"), exit(3);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1], *dir = argv[2];
    int wait = argc > 3 && !strcmp(argv[3], "wait");
    churn(0.4);
    int theirs[256], nt = 0;
    if (!strcmp(mode, "dup2"))
        nt = others(theirs, 256);
    printf("closed %.6f\n", now());
    fflush(stdout);
    if (!strcmp(mode, "closeloop")) {
        long max = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < max; fd++)
            close((int)fd);
    } else if (!strcmp(mode, "closerange")) {
        if (syscall(SYS_close_range, 3u, ~0u, 0) != 0)
            perror("close_range"), exit(3);
    } else if (strcmp(mode, "dup2")) {
        return 2;
    }
    int fds[6];
    for (int i = 0; i < 6; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        fds[i] = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fds[i] < 0)
            perror(path), exit(3);
        put(fds[i], i, 'a');
    }
    for (int k = 0; k < nt; k++) /* the library's numbers now name our files */
        if (dup2(fds[k % 6], theirs[k]) < 0)
            perror("dup2"), exit(3);
    if (wait) {
        printf("ready %d\n", nt);
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin))
            return 4;
    }
    churn(0.5);
    for (int i = 0; i < 6; i++) {
        put(fds[i], i, 'b');
        close(fds[i]);
    }
    printf("daemon done\n");
    return 0;
}
