/*
 * fork_threads — fork while other threads are inside the allocator, run with
 * LD_PRELOAD=liballocprof.so.
 *
 * Four threads allocate and free in a tight loop (so at any instant some allocator lock is
 * likely held) while the main thread forks NFORKS times. Each child allocates and frees
 * (small, large, realloc), creates a thread that does the same, joins it and leaves with
 * _exit(0). Some children also fork a grandchild, leave through exit() (atexit and stdio
 * teardown), or exec /bin/true. The parent waits for each child and checks its exit
 * status. A child that deadlocks is killed by its own alarm() and is reported as such,
 * so a hang shows up as a precise failure instead of a ctest timeout.
 *
 * Exit status 0 when every child exited 0; 1 otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NTHREADS 4
#define NFORKS 50
#define CHILD_ALARM 20

static atomic_int stop_flag;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    void *keep[64] = {0};
    while (!atomic_load(&stop_flag)) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % 64;
        size_t n = 16 + (seed >> 12) % 8192;
        if ((seed >> 4) % 97 == 0)
            n = 300000 + (seed >> 16) % 100000; /* an occasional large one */
        free(keep[i]);
        keep[i] = malloc(n);
        if (keep[i] != NULL)
            memset(keep[i], (int)i, n < 256 ? n : 256);
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    return NULL;
}

/* Allocator use in a child; returns 0 if everything came back sane. */
static int child_work(unsigned salt)
{
    int bad = 0;
    void *v[200];
    for (int i = 0; i < 200; i++) {
        size_t n = 1 + (size_t)((i * 7919u + salt) % 20000u);
        v[i] = malloc(n);
        if (v[i] == NULL) {
            bad = 1;
            continue;
        }
        memset(v[i], i, n);
    }
    for (int i = 0; i < 200; i += 2) {
        void *r = realloc(v[i], 50000);
        if (r == NULL)
            bad = 1;
        else
            v[i] = r;
    }
    for (int i = 0; i < 200; i++)
        free(v[i]);
    void *big = malloc(4 << 20);
    if (big == NULL)
        bad = 1;
    else
        memset(big, 1, 4 << 20);
    free(big);
    void *c = calloc(1000, 100);
    if (c == NULL)
        bad = 1;
    free(c);
    return bad;
}

static void *child_thread(void *arg)
{
    return (void *)(intptr_t)child_work((unsigned)(uintptr_t)arg);
}

static void run_child(int k)
{
    alarm(CHILD_ALARM);
    int bad = child_work((unsigned)k);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, (void *)(intptr_t)(k + 1000)) != 0) {
        _exit(3);
    }
    void *ret = NULL;
    pthread_join(t, &ret);
    if (ret != NULL)
        bad = 1;

    if (k % 10 == 3) {
        /* A grandchild forked from a child that has already been multi-threaded. */
        pid_t g = fork();
        if (g == 0) {
            alarm(CHILD_ALARM);
            _exit(child_work((unsigned)k + 7) ? 4 : 0);
        }
        int st = 0;
        if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad = 1;
    }
    if (k % 10 == 7) {
        /* Leave through exit(): atexit handlers and stdio teardown run in the child. */
        char *s = strdup("stdio in the child");
        fprintf(stdout, "%s", "");
        free(s);
        exit(bad ? 2 : 0);
    }
    _exit(bad ? 2 : 0);
}

static int check_status(const char *what, int k, pid_t pid, int st)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        fprintf(stderr, "fork_threads: %s %d (pid %d) exited with %d\n", what, k, (int)pid,
                WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        fprintf(stderr, "fork_threads: %s %d (pid %d) killed by signal %d (%s)%s\n", what, k,
                (int)pid, WTERMSIG(st), strsignal(WTERMSIG(st)),
                WTERMSIG(st) == SIGALRM ? " - deadlocked in the child?" : "");
    else
        fprintf(stderr, "fork_threads: %s %d (pid %d) status 0x%x\n", what, k, (int)pid, st);
    return 1;
}

int main(void)
{
    /* Nothing buffered may be duplicated into the children. */
    setvbuf(stdout, NULL, _IONBF, 0);

    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        if (pthread_create(&th[i], NULL, churn, (void *)(intptr_t)i) != 0) {
            perror("pthread_create");
            return 2;
        }
    }
    usleep(20000); /* let them get going */

    int failures = 0;
    for (int k = 0; k < NFORKS; k++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            failures++;
            continue;
        }
        if (pid == 0)
            run_child(k); /* never returns */
        /* The parent keeps allocating too between forks. */
        void *p = malloc(1000 + (size_t)k * 100);
        free(p);
        int st = 0;
        if (waitpid(pid, &st, 0) != pid) {
            perror("waitpid");
            failures++;
            continue;
        }
        failures += check_status("child", k, pid, st);
    }

    /* A child that execs: the new image must start normally (with the preload, if set). */
    pid_t pid = fork();
    if (pid == 0) {
        alarm(CHILD_ALARM);
        void *p = malloc(123);
        free(p);
        execl("/bin/true", "true", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid)
        failures++;
    else
        failures += check_status("exec child", 0, pid, st);

    atomic_store(&stop_flag, 1);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);

    printf("fork_threads: %d forks + 1 exec, %d failure(s)\n", NFORKS, failures);
    return failures == 0 ? 0 : 1;
}
