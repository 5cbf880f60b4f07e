/*
 * leaks.h — what is still allocated at a dump, by call stack, with the
 * leak suppressions applied: the figures of `allocprof leaks` and of the
 * HTML report's leak table (leaks.c), computed once for both.
 */
#ifndef AP_CLI_LEAKS_H
#define AP_CLI_LEAKS_H

#include <stdbool.h>
#include <stdint.h>

#include "report.h"
#include "suppress.h"

typedef struct ap_leaks {
    ap_report rep;          /* by stack, largest in-use first; only stacks still holding memory */
    ap_supp sup;            /* the rules, with what each suppressed */
    char *prog;             /* the program's __lsan_default_suppressions text, or NULL */
    int64_t bytes, objects; /* the stacks reported */
    size_t sup_stacks;      /* suppressed */
    int64_t sup_bytes, sup_objects;
} ap_leaks;

/* Fills l from a loaded, symbolized profile: stacks holding at least min
 * bytes, minus those the built-in rules, the program's own and the files
 * suppress (none with no_suppress). 0, or -1 after one error line (a bad
 * suppression file); l is to be freed either way. */
int ap_leaks_find(ap_leaks *l, ap_file *f, const ap_profile *p, uint64_t min, bool no_suppress,
                  const char *const *files, int nfiles);
void ap_leaks_free(ap_leaks *l);
/* What a sampled leak report cannot see: NULL at rate 1, else one malloc'd
 * line. */
char *ap_leaks_caveat(const ap_profile *p);

#endif
