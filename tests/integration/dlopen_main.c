/*
 * dlopen_main — dynamic loading under liballocprof.so.
 *
 * Loads libm.so.6 and calls cos() through dlsym; loads the library given as argv[1]
 * (dlmod.c: it allocates in its constructor and destructor, returns memory for us to
 * free and frees memory we allocated) ROUNDS times, dlclose()-ing it each time; asks
 * for a library that does not exist (dlerror allocates its message). Prints a
 * deterministic transcript, compared with a run without the library by compare.sh.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUNDS 200

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s PATH-TO-dlmod.so\n", argv[0]);
        return 2;
    }
    void *libm = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
    if (libm == NULL) {
        fprintf(stderr, "dlopen libm.so.6: %s\n", dlerror());
        return 1;
    }
    double (*cosp)(double) = (double (*)(double))dlsym(libm, "cos");
    if (cosp == NULL) {
        fprintf(stderr, "dlsym cos: %s\n", dlerror());
        return 1;
    }
    printf("cos(0) = %.6f, cos(1) = %.6f\n", cosp(0.0), cosp(1.0));

    int failures = 0;
    size_t total = 0;
    for (int r = 0; r < ROUNDS; r++) {
        void *h = dlopen(argv[1], (r % 2 ? RTLD_LAZY : RTLD_NOW) | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "dlopen %s: %s\n", argv[1], dlerror());
            return 1;
        }
        char *(*describe)(int) = (char *(*)(int))dlsym(h, "dlmod_describe");
        size_t (*consume)(char *, size_t) = (size_t(*)(char *, size_t))dlsym(h, "dlmod_consume");
        if (describe == NULL || consume == NULL) {
            fprintf(stderr, "dlsym: %s\n", dlerror());
            return 1;
        }
        char *s = describe(r);
        if (strstr(s, "intact") == NULL)
            failures++;
        if (r == 0 || r == ROUNDS - 1)
            printf("%s\n", s);
        free(s); /* allocated in the module, freed here */
        size_t n = 1000 + (size_t)r * 37;
        char *mine = malloc(n);
        if (mine == NULL)
            return 1;
        memset(mine, 1, n);
        total += consume(mine, n); /* allocated here, freed in the module */
        if (dlclose(h) != 0) {
            fprintf(stderr, "dlclose: %s\n", dlerror());
            failures++;
        }
    }
    printf("rounds %d, consumed %zu bytes\n", ROUNDS, total);

    void *none = dlopen("libdoes-not-exist-allocprof.so.9", RTLD_NOW);
    const char *err = dlerror();
    printf("missing library: %s\n", none == NULL && err != NULL ? "error reported" : "WRONG");
    if (none != NULL || err == NULL)
        failures++;

    dlclose(libm);
    printf("failures: %d\n", failures);
    return failures == 0 ? 0 : 1;
}
