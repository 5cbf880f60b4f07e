/*
 * cli_realprog.c — a real program for the CLI tests on `allocprof run`
 * output: real_leak leaks 100 x 4096 B, real_keep keeps 10 x 1000 B until
 * exit, real_temp allocates and frees 50 x 64 B. Built -O0 -g.
 */
#include <stdio.h>
#include <stdlib.h>

static void *leaked[100], *kept[10];

__attribute__((noinline)) static void real_leak(void)
{
    for (int i = 0; i < 100; i++)
        leaked[i] = malloc(4096);
}

__attribute__((noinline)) static void real_keep(void)
{
    for (int i = 0; i < 10; i++)
        kept[i] = malloc(1000);
}

__attribute__((noinline)) static void real_temp(void)
{
    for (int i = 0; i < 50; i++)
        free(malloc(64));
}

int main(void)
{
    real_leak();
    real_keep();
    real_temp();
    printf("%p %p\n", leaked[0], kept[0]);
    return 0;
}
