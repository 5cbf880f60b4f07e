/*
 * bootstrap.c — start-up and process events for the interposer.
 *   - first call: the allocator initialises itself lazily on its first slow
 *     path (alloc.c), so malloc works from the dynamic loader's first call,
 *     before any constructor, with no libc allocation;
 *   - fork: a constructor registers the allocator's atfork handlers. It runs
 *     among the earliest constructors, so the allocator's prepare handler
 *     runs after every later-registered one (which may still allocate) and
 *     its child handler runs first (so the others' can allocate);
 *   - thread exit: the thread cache arms a pthread key whose destructor
 *     drains it (tcache.c);
 *   - profiling: ap_prof_init reads ALLOCPROF_* and starts the profiler
 *     when ALLOCPROF_OUTPUT is set; the destructor writes the exit dump;
 *   - dlclose: interposed so that the profiler's cached unwind rules for the
 *     unloaded code are dropped (profiler/unwind.c).
 */
#include <dlfcn.h>
#include <pthread.h>

#include "shim_internal.h"

__attribute__((constructor(101))) static void ap_shim_start(void)
{
    ap_ensure_init();
    pthread_atfork(ap_fork_prepare, ap_fork_parent, ap_fork_child);
    /* after the allocator's: its prepare runs first, its child handler last */
    ap_prof_init();
}

__attribute__((destructor(101))) static void ap_shim_stop(void)
{
    ap_prof_exit();
}

AP_EXPORT int dlclose(void *handle)
{
    static int (*next)(void *);
    if (!next)
        next = (int (*)(void *))dlsym(RTLD_NEXT, "dlclose");
    int r = next(handle);
    ap_unwind_invalidate();
    return r;
}
