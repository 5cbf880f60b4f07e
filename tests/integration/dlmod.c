/*
 * dlmod — a tiny shared library that dlopen_main loads and unloads repeatedly.
 *
 * It allocates in its constructor (which runs inside dlopen, with the dynamic loader's
 * lock held), hands memory to its caller to free, frees memory its caller allocated, and
 * releases the constructor's memory in its destructor (inside dlclose). All of that must
 * go through the same preloaded allocator as the main program.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *ctor_block;
static size_t ctor_size;

__attribute__((constructor)) static void dlmod_init(void)
{
    ctor_size = 100000;
    ctor_block = malloc(ctor_size);
    if (ctor_block != NULL)
        memset(ctor_block, 'c', ctor_size);
}

__attribute__((destructor)) static void dlmod_fini(void)
{
    free(ctor_block);
    ctor_block = NULL;
}

/* Returns a malloc'd string the caller must free; 0-length string on failure. */
char *dlmod_describe(int n)
{
    char *s = NULL;
    int ok = ctor_block != NULL && ctor_block[0] == 'c' && ctor_block[ctor_size - 1] == 'c';
    if (asprintf(&s, "dlmod %d: ctor block %s", n, ok ? "intact" : "BROKEN") < 0)
        return calloc(1, 1);
    return s;
}

/* Takes ownership of a block the caller allocated; grows it once before freeing. */
size_t dlmod_consume(char *p, size_t n)
{
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (unsigned char)p[i];
    char *q = realloc(p, n * 3);
    if (q == NULL) {
        free(p);
        return 0;
    }
    free(q);
    return sum;
}
