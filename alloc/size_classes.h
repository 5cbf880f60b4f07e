/*
 * size_classes.h — the size-class table (generated into size_classes.inc by
 * alloc/gen/mksizeclasses.c; its header states the waste bounds) and the
 * inline size -> class lookup used by the malloc fast path.
 */
#ifndef AP_SIZE_CLASSES_H
#define AP_SIZE_CLASSES_H

#include <stddef.h>
#include <stdint.h>

/* Everything declared here is internal to liballocprof.so: hidden, so the
 * compiler addresses it directly instead of through the GOT. */
#pragma GCC visibility push(hidden)

#define AP_PAGE_SHIFT 13
#define AP_NUM_CLASSES 57
#define AP_MAX_SMALL 65536
#define AP_LOOKUP_LO_MAX 1024

extern const uint32_t ap_class_size[AP_NUM_CLASSES];
extern const uint16_t ap_class_pages[AP_NUM_CLASSES];
extern const uint16_t ap_class_objs[AP_NUM_CLASSES];
extern const uint16_t ap_class_batch[AP_NUM_CLASSES];
extern const uint16_t ap_class_cap[AP_NUM_CLASSES];
extern const uint8_t ap_class_lo[AP_LOOKUP_LO_MAX / 16 + 1];
extern const uint8_t ap_class_hi[AP_MAX_SMALL / 128 + 1];

/* n <= AP_MAX_SMALL. Two loads at most; malloc(0) gets the 16-byte class. */
static inline __attribute__((always_inline)) uint32_t ap_size_class(size_t n)
{
    if (n <= AP_LOOKUP_LO_MAX)
        return ap_class_lo[(n + 15) >> 4];
    return ap_class_hi[(n + 127) >> 7];
}

#pragma GCC visibility pop

#endif
