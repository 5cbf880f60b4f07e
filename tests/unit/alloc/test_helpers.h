/* test_helpers.h — cmocka includes and small helpers shared by alloc/ unit tests. */
#ifndef AP_TEST_HELPERS_H
#define AP_TEST_HELPERS_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "alloc_internal.h"
#include "tcache_inline.h"

/* Heap statistics of the allocator under test. */
static inline void stats(ap_stats_t *st)
{
    ap_stats_get(st);
}

#endif
