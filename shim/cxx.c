/*
 * cxx.c — the C++ allocation operators (new, new[], their nothrow and
 * aligned forms, and every delete), exported under their Itanium-ABI names so
 * C++ programs reach the allocator without going through libstdc++'s
 * wrappers. Written in C so the library does not pull libstdc++ into C
 * programs. When a throwing operator new cannot get memory, it hands the
 * request to the next definition (libstdc++'s), which runs the
 * new_handler loop and throws std::bad_alloc exactly as without us; that
 * one calls malloc, which is ours.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "shim_internal.h"

void *malloc(size_t n);
void free(void *p);

typedef void *(*new_fn)(size_t);
typedef void *(*new_aligned_fn)(size_t, size_t);

AP_NOINLINE AP_COLD static void *next_new(const char *name, size_t n)
{
    new_fn f = (new_fn)dlsym(RTLD_NEXT, name);
    if (!f)
        abort();
    return f(n);
}

AP_NOINLINE AP_COLD static void *next_new_aligned(const char *name, size_t n, size_t al)
{
    new_aligned_fn f = (new_aligned_fn)dlsym(RTLD_NEXT, name);
    if (!f)
        abort();
    return f(n, al);
}

static void *aligned(size_t n, size_t al)
{
    return ap_shim_memalign(al, n);
}

AP_EXPORT void *_Znwm(size_t n)
{
    void *p = malloc(n);
    return ap_likely(p != NULL) ? p : next_new("_Znwm", n);
}

AP_EXPORT void *_Znam(size_t n)
{
    void *p = malloc(n);
    return ap_likely(p != NULL) ? p : next_new("_Znam", n);
}

AP_EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt)
{
    return malloc(n);
}
AP_EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt)
{
    return malloc(n);
}

AP_EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t al)
{
    void *p = aligned(n, al);
    return p ? p : next_new_aligned("_ZnwmSt11align_val_t", n, al);
}

AP_EXPORT void *_ZnamSt11align_val_t(size_t n, size_t al)
{
    void *p = aligned(n, al);
    return p ? p : next_new_aligned("_ZnamSt11align_val_t", n, al);
}

AP_EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    return aligned(n, al);
}

AP_EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt)
{
    return aligned(n, al);
}

AP_EXPORT void _ZdlPv(void *p)
{
    free(p);
}
AP_EXPORT void _ZdaPv(void *p)
{
    free(p);
}
AP_EXPORT void _ZdlPvm(void *p, size_t n)
{
    free(p);
}
AP_EXPORT void _ZdaPvm(void *p, size_t n)
{
    free(p);
}
AP_EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt)
{
    free(p);
}
AP_EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt)
{
    free(p);
}
AP_EXPORT void _ZdlPvSt11align_val_t(void *p, size_t al)
{
    free(p);
}
AP_EXPORT void _ZdaPvSt11align_val_t(void *p, size_t al)
{
    free(p);
}
AP_EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al)
{
    free(p);
}
AP_EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al)
{
    free(p);
}
AP_EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    free(p);
}
AP_EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt)
{
    free(p);
}
