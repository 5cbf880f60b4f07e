/*
 * util.h — small containers shared by the allocprof command's reports.
 *
 * Design: the reports work on tens of thousands of buckets and addresses, so
 * everything is keyed by 64-bit integers (addresses, ids, or pointers to
 * interned records) in one open-addressing hash map, and every string that
 * names a function or a file is interned once (pointer equality = string
 * equality). Allocation failure is fatal (ap_xmalloc prints one line and
 * exits): a report that runs out of memory has nothing useful to return.
 */
#ifndef AP_CLI_UTIL_H
#define AP_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *ap_xmalloc(size_t n);
void *ap_xcalloc(size_t n, size_t size);
void *ap_xrealloc(void *p, size_t n);
char *ap_xstrdup(const char *s);
char *ap_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Grows *p (element size elem) so that it holds at least need elements. */
void ap_grow(void *pp, size_t *cap, size_t need, size_t elem);

/* uint64 -> uint64 map, open addressing, linear probing. */
typedef struct ap_map {
    uint64_t *keys;
    uint64_t *vals;
    uint8_t *used;
    size_t cap, len;
} ap_map;

void ap_map_free(ap_map *m);
/* Returns a pointer to the value slot for key; *created tells whether the key
 * was new (its value is then 0). The pointer is valid until the next put. */
uint64_t *ap_map_put(ap_map *m, uint64_t key, bool *created);
/* Returns the value slot for key, or NULL. */
uint64_t *ap_map_get(const ap_map *m, uint64_t key);

uint64_t ap_hash_bytes(const void *p, size_t n, uint64_t seed);
uint64_t ap_hash_u64(uint64_t x);

/* String interning: equal strings give the same pointer; NULL stays NULL. */
typedef struct ap_strtab {
    char **slots;
    size_t cap, len;
} ap_strtab;

const char *ap_intern(ap_strtab *t, const char *s);
void ap_strtab_free(ap_strtab *t);

/* Growable text buffer. */
typedef struct ap_buf {
    char *p;
    size_t len, cap;
} ap_buf;

void ap_buf_put(ap_buf *b, const void *data, size_t n);
void ap_buf_puts(ap_buf *b, const char *s);
void ap_buf_printf(ap_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ap_buf_free(ap_buf *b);

#endif
