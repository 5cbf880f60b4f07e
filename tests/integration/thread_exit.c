/*
 * thread_exit — many short-lived threads, run with LD_PRELOAD=liballocprof.so.
 *
 * A per-thread cache must be handed back when its thread exits, and memory a dead thread
 * allocated must still be usable and freeable by others. ROUNDS rounds each start BATCH
 * threads (joinable and detached, some with small stacks) that allocate and free in a
 * mix of sizes, leave some blocks behind for the main thread, free blocks the main thread
 * gave them, and use thread-local storage with a destructor (pthread_key_create) that
 * frees at exit. The main thread checks the patterns of the blocks left behind after the
 * threads are gone. Exit status 0 when every check passed.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROUNDS 150
#define BATCH 16
#define LEFT 8

struct job {
    int id;
    void *given; /* allocated by main, freed by the thread */
    size_t given_size;
    void *left[LEFT]; /* allocated by the thread, checked and freed by main */
    size_t left_size[LEFT];
};

static atomic_int failures;
static atomic_int detached_done;
static pthread_key_t tls_key;
static __thread char *tls_block;

static void tls_destructor(void *p)
{
    /* Runs at thread exit, after the thread's own code: must still be able to free. */
    unsigned char *b = p;
    if (b[0] != 0xd7)
        atomic_fetch_add(&failures, 1);
    free(p);
}

static size_t size_for(int id, int k)
{
    static const size_t sizes[] = {8, 24, 100, 700, 4000, 20000, 70000, 300000};
    return sizes[(unsigned)(id + k) % 8] + (size_t)k;
}

static void *thread_main(void *arg)
{
    struct job *j = arg;
    char *t = malloc(64);
    if (t == NULL) {
        atomic_fetch_add(&failures, 1);
        return NULL;
    }
    t[0] = (char)0xd7;
    pthread_setspecific(tls_key, t);
    tls_block = malloc(128);

    void *tmp[32];
    for (int k = 0; k < 32; k++) {
        tmp[k] = malloc(size_for(j->id, k));
        if (tmp[k] != NULL)
            memset(tmp[k], k, size_for(j->id, k));
    }
    for (int k = 0; k < 32; k += 2)
        free(tmp[k]);
    for (int k = 0; k < LEFT; k++) {
        j->left_size[k] = size_for(j->id, k * 3);
        j->left[k] = malloc(j->left_size[k]);
        if (j->left[k] != NULL)
            memset(j->left[k], (j->id + k) & 0xff, j->left_size[k]);
    }
    for (int k = 1; k < 32; k += 2)
        free(tmp[k]);
    if (j->given != NULL) {
        const unsigned char *g = j->given;
        for (size_t i = 0; i < j->given_size; i++) {
            if (g[i] != 0x5e) {
                atomic_fetch_add(&failures, 1);
                break;
            }
        }
        free(j->given);
        j->given = NULL;
    }
    free(tls_block);
    return NULL;
}

static void *detached_main(void *arg)
{
    (void)arg;
    for (int k = 0; k < 50; k++) {
        void *p = malloc(size_for(k, k));
        free(p);
    }
    void *keep = malloc(1000); /* handed to the TLS destructor */
    if (keep != NULL) {
        memset(keep, 0xd7, 1000);
        pthread_setspecific(tls_key, keep);
    }
    atomic_fetch_add(&detached_done, 1);
    return NULL;
}

int main(void)
{
    if (pthread_key_create(&tls_key, tls_destructor) != 0)
        return 2;
    pthread_attr_t small;
    pthread_attr_init(&small);
    pthread_attr_setstacksize(&small, 64 * 1024);
    pthread_attr_t det;
    pthread_attr_init(&det);
    pthread_attr_setdetachstate(&det, PTHREAD_CREATE_DETACHED);

    static struct job jobs[BATCH];
    int detached_started = 0;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[BATCH];
        for (int i = 0; i < BATCH; i++) {
            struct job *j = &jobs[i];
            memset(j, 0, sizeof *j);
            j->id = r * BATCH + i;
            j->given_size = size_for(j->id, 5);
            j->given = malloc(j->given_size);
            if (j->given == NULL)
                return 3;
            memset(j->given, 0x5e, j->given_size);
            if (pthread_create(&th[i], i % 2 ? &small : NULL, thread_main, j) != 0) {
                fprintf(stderr, "thread_exit: pthread_create failed\n");
                return 2;
            }
        }
        pthread_t d;
        if (pthread_create(&d, &det, detached_main, NULL) == 0)
            detached_started++;
        for (int i = 0; i < BATCH; i++)
            pthread_join(th[i], NULL);
        /* The threads are gone; what they left must be intact and freeable here. */
        for (int i = 0; i < BATCH; i++) {
            struct job *j = &jobs[i];
            if (j->given != NULL)
                atomic_fetch_add(&failures, 1);
            for (int k = 0; k < LEFT; k++) {
                const unsigned char *b = j->left[k];
                if (b == NULL) {
                    atomic_fetch_add(&failures, 1);
                    continue;
                }
                for (size_t x = 0; x < j->left_size[k]; x++) {
                    if (b[x] != ((j->id + k) & 0xff)) {
                        fprintf(stderr, "thread_exit: block from dead thread %d corrupted\n",
                                j->id);
                        atomic_fetch_add(&failures, 1);
                        break;
                    }
                }
                free(j->left[k]);
            }
        }
    }
    /* Wait (bounded) for the detached threads to finish. */
    for (int w = 0; w < 2000 && atomic_load(&detached_done) < detached_started; w++)
        usleep(1000);
    if (atomic_load(&detached_done) < detached_started) {
        fprintf(stderr, "thread_exit: only %d of %d detached threads finished\n",
                atomic_load(&detached_done), detached_started);
        atomic_fetch_add(&failures, 1);
    }
    usleep(20000); /* let the last ones run their TLS destructors and exit */

    int f = atomic_load(&failures);
    printf("thread_exit: %d threads + %d detached, %d failure(s)\n", ROUNDS * BATCH,
           detached_started, f);
    return f == 0 ? 0 : 1;
}
