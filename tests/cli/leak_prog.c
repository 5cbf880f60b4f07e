/*
 * leak_prog.c — a program that leaks on purpose, for `allocprof leaks`'
 * suppression tests (test_cli.py, case leaks_suppressions): one leak it
 * knows of and names in __lsan_default_suppressions (exported: linked with
 * -rdynamic, as LSan's own hook must be visible), one it does not, and
 * what libc keeps for good (a stdio buffer, locale data).
 */
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *volatile keep[64];

__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void)
{
    return "# known and accepted\nleak:leak_known\n";
}

__attribute__((noinline)) void leak_known(int i)
{
    keep[i] = malloc(300);
    memset(keep[i], 1, 300);
}

__attribute__((noinline)) void leak_real(int i)
{
    keep[32 + i] = malloc(700);
    memset(keep[32 + i], 2, 700);
}

int main(void)
{
    for (int i = 0; i < 10; i++) {
        leak_known(i);
        leak_real(i);
    }
    FILE *f = fopen("/proc/self/status", "r"); /* libc gives it a buffer */
    char line[256];
    if (f && fgets(line, sizeof line, f))
        printf("%.4s\n", line);
    setlocale(LC_ALL, "C.UTF-8");
    return 0; /* f stays open, as many programs leave theirs */
}
