/*
 * util.c — allocation wrappers, the uint64 hash map, string interning and a
 * growable buffer (see util.h for the design).
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
    fputs("allocprof: out of memory\n", stderr);
    exit(1);
}

void *ap_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *ap_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *ap_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

char *ap_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ap_xmalloc(n), s, n);
}

/* vasprintf that exits on failure; *len gets the length when not NULL. */
static char *xvasprintf(const char *fmt, va_list ap, size_t *len)
{
    char *s;
    int r = vasprintf(&s, fmt, ap);
    if (r < 0)
        oom();
    if (len)
        *len = (size_t)r;
    return s;
}

char *ap_xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap, NULL);
    va_end(ap);
    return s;
}

void ap_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void **p = pp;
    *p = ap_xrealloc(*p, n * elem);
    *cap = n;
}

uint64_t ap_hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

uint64_t ap_hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return ap_hash_u64(h);
}

void ap_map_free(ap_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static void map_rehash(ap_map *m)
{
    ap_map n = {0};
    n.cap = m->cap ? m->cap * 2 : 64;
    n.keys = ap_xmalloc(n.cap * sizeof *n.keys);
    n.vals = ap_xmalloc(n.cap * sizeof *n.vals);
    n.used = ap_xcalloc(n.cap, 1);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i])
            continue;
        size_t j = ap_hash_u64(m->keys[i]) & (n.cap - 1);
        while (n.used[j])
            j = (j + 1) & (n.cap - 1);
        n.used[j] = 1;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
    }
    n.len = m->len;
    ap_map_free(m);
    *m = n;
}

uint64_t *ap_map_put(ap_map *m, uint64_t key, bool *created)
{
    if ((m->len + 1) * 4 > m->cap * 3)
        map_rehash(m);
    size_t j = ap_hash_u64(key) & (m->cap - 1);
    while (m->used[j]) {
        if (m->keys[j] == key) {
            if (created)
                *created = false;
            return &m->vals[j];
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->used[j] = 1;
    m->keys[j] = key;
    m->vals[j] = 0;
    m->len++;
    if (created)
        *created = true;
    return &m->vals[j];
}

uint64_t *ap_map_get(const ap_map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    size_t j = ap_hash_u64(key) & (m->cap - 1);
    while (m->used[j]) {
        if (m->keys[j] == key)
            return &m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

static void strtab_rehash(ap_strtab *t)
{
    size_t cap = t->cap ? t->cap * 2 : 256;
    char **slots = ap_xcalloc(cap, sizeof *slots);
    for (size_t i = 0; i < t->cap; i++) {
        char *s = t->slots[i];
        if (!s)
            continue;
        size_t j = ap_hash_bytes(s, strlen(s), 0) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = s;
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
}

const char *ap_intern(ap_strtab *t, const char *s)
{
    if (!s)
        return NULL;
    if ((t->len + 1) * 2 > t->cap)
        strtab_rehash(t);
    size_t j = ap_hash_bytes(s, strlen(s), 0) & (t->cap - 1);
    while (t->slots[j]) {
        if (!strcmp(t->slots[j], s))
            return t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j] = ap_xstrdup(s);
    t->len++;
    return t->slots[j];
}

void ap_strtab_free(ap_strtab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i]);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

void ap_buf_put(ap_buf *b, const void *data, size_t n)
{
    ap_grow(&b->p, &b->cap, b->len + n + 1, 1);
    memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
}

void ap_buf_puts(ap_buf *b, const char *s)
{
    ap_buf_put(b, s, strlen(s));
}

void ap_buf_printf(ap_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n;
    char *s = xvasprintf(fmt, ap, &n);
    va_end(ap);
    ap_buf_put(b, s, n);
    free(s);
}

void ap_buf_free(ap_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}
