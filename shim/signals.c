/*
 * signals.c — sigaction and signal, exported so that the program's calls
 * for the dump signal (ALLOCPROF_SIGNAL) see and set the program's own
 * disposition, not the handler the profiler installed (profiler/dump.c).
 * Every other signal goes straight to libc. glibc's signal() calls its
 * internal sigaction, which an interposer does not see, so it is here too.
 */
#include <signal.h>
#include <string.h>

#include "shim_internal.h"

AP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return ap_dump_sigaction(sig, act, old);
}

AP_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
    if (!ap_dump_owns_signal(sig)) /* glibc's own, siginterrupt() and all */
        return ap_dump_real_signal(sig, handler);
    struct sigaction a, old;
    memset(&a, 0, sizeof a);
    a.sa_handler = handler;
    a.sa_flags = SA_RESTART; /* glibc's signal() has BSD semantics */
    sigemptyset(&a.sa_mask);
    sigaddset(&a.sa_mask, sig);
    if (ap_dump_sigaction(sig, &a, &old) != 0)
        return SIG_ERR;
    return old.sa_handler;
}

AP_EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler)
{
    return signal(sig, handler);
}
