/*
 * jit_prog.c — a program that generates code at run time and tells perf
 * about it, as JITs do (run_tests.py, case jit): it writes a function into
 * an executable mapping and names it in /tmp/perf-PID.map. The generated
 * function keeps a frame pointer (push rbp; mov rbp, rsp) and calls
 * site_jit, which allocates, so every sample's stack passes through it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *volatile sink;

__attribute__((noinline)) void *site_jit(size_t n)
{
    void *p = malloc(n);
    memset(p, 3, n);
    return p;
}

int main(void)
{
    unsigned char *code =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED)
        return 3;
    unsigned char *c = code + 64; /* the function starts inside the page */
    uintptr_t target = (uintptr_t)site_jit;
    const unsigned char pro[] = {0x55, 0x48, 0x89,
                                 0xe5, 0x48, 0xb8}; /* push rbp; mov rbp,rsp; mov rax, */
    memcpy(c, pro, sizeof pro);
    memcpy(c + sizeof pro, &target, 8);
    const unsigned char epi[] = {0xff, 0xd0, 0x5d, 0xc3}; /* call rax; pop rbp; ret */
    memcpy(c + sizeof pro + 8, epi, sizeof epi);
    size_t len = sizeof pro + 8 + sizeof epi;
    if (mprotect(code, 4096, PROT_READ | PROT_EXEC))
        return 3;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%d.map", (int)getpid());
    FILE *m = fopen(path, "w");
    if (!m)
        return 3;
    fprintf(m, "%lx %zx JS:jitted_alloc generated.js:7\n", (unsigned long)(uintptr_t)c, len);
    fclose(m);
    void *(*fn)(size_t) = (void *(*)(size_t))c;
    for (int i = 0; i < 1000; i++)
        free(fn(100 + i % 50));
    printf("jit done\n");
    return 0;
}
