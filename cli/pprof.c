/*
 * pprof.c — hand-written profile.proto encoder and gzip writer (design in
 * pprof.h). Field numbers are those of profile.proto:
 *   Profile: sample_type 1, sample 2, mapping 3, location 4, function 5,
 *            string_table 6, time_nanos 9, duration_nanos 10,
 *            period_type 11, period 12, comment 13, default_sample_type 14
 *   ValueType: type 1, unit 2      Sample: location_id 1, value 2, label 3
 *   Label: key 1, str 2, num 3     Line: function_id 1, line 2
 *   Mapping: id 1, memory_start 2, memory_limit 3, file_offset 4,
 *            filename 5, build_id 6, has_functions 7 .. has_inline_frames 10
 *   Location: id 1, mapping_id 2, address 3, line 4
 *   Function: id 1, name 2, system_name 3, filename 4, start_line 5
 */
#include "pprof.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "symbolize.h"

void ap_pb_varint(ap_buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (unsigned char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    ap_buf_put(b, tmp, n);
}

static void tag(ap_buf *b, int field, int wire)
{
    ap_pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

void ap_pb_uint(ap_buf *b, int field, uint64_t v)
{
    if (!v)
        return;
    tag(b, field, 0);
    ap_pb_varint(b, v);
}

void ap_pb_bytes(ap_buf *b, int field, const void *data, size_t n)
{
    tag(b, field, 2);
    ap_pb_varint(b, n);
    ap_buf_put(b, data, n);
}

void ap_pb_packed(ap_buf *b, int field, const uint64_t *v, size_t n)
{
    if (!n)
        return;
    ap_buf tmp = {0};
    for (size_t i = 0; i < n; i++)
        ap_pb_varint(&tmp, v[i]);
    ap_pb_bytes(b, field, tmp.p, tmp.len);
    ap_buf_free(&tmp);
}

/* Appends a finished sub-message and empties it. */
static void sub(ap_buf *b, int field, ap_buf *msg)
{
    ap_pb_bytes(b, field, msg->p ? msg->p : "", msg->len);
    msg->len = 0;
}

typedef struct enc {
    ap_buf out, msg, tmp;
    ap_strtab strs;
    ap_map str_index; /* interned pointer -> string table index */
    size_t nstrs;
    ap_map funcs; /* ap_func pointer -> 1 when written */
} enc;

static uint64_t str(enc *e, const char *s)
{
    if (!s || !*s)
        return 0;
    s = ap_intern(&e->strs, s);
    bool created;
    uint64_t *slot = ap_map_put(&e->str_index, (uintptr_t)s, &created);
    if (created) {
        *slot = ++e->nstrs;
        ap_pb_bytes(&e->out, 6, s, strlen(s));
    }
    return *slot;
}

static void value_type(enc *e, int field, const char *type, const char *unit)
{
    uint64_t t = str(e, type), u = str(e, unit);
    ap_pb_uint(&e->msg, 1, t);
    ap_pb_uint(&e->msg, 2, u);
    sub(&e->out, field, &e->msg);
}

static void write_mappings(enc *e, const ap_profile *p)
{
    for (size_t i = 0; i < p->nmaps; i++) {
        const ap_mapping *m = &p->maps[i];
        uint64_t file = str(e, m->path), bid = str(e, m->build_id);
        ap_pb_uint(&e->msg, 1, i + 1);
        ap_pb_uint(&e->msg, 2, m->start);
        ap_pb_uint(&e->msg, 3, m->end);
        ap_pb_uint(&e->msg, 4, m->file_offset);
        ap_pb_uint(&e->msg, 5, file);
        ap_pb_uint(&e->msg, 6, bid);
        for (int f = 7; f <= 10; f++)
            ap_pb_uint(&e->msg, f, 1);
        sub(&e->out, 3, &e->msg);
    }
}

static void write_function(enc *e, const ap_func *f)
{
    bool created;
    ap_map_put(&e->funcs, (uintptr_t)f, &created);
    if (!created)
        return;
    uint64_t name = str(e, f->name), file = str(e, f->file);
    ap_buf fm = {0};
    ap_pb_uint(&fm, 1, (uint64_t)(uintptr_t)f->id);
    ap_pb_uint(&fm, 2, name);
    ap_pb_uint(&fm, 3, name);
    ap_pb_uint(&fm, 4, file);
    sub(&e->out, 5, &fm);
    ap_buf_free(&fm);
}

static void write_locations(enc *e, const ap_profile *p)
{
    for (size_t i = 0; i < p->naddrs; i++) {
        const ap_addr *a = &p->addrs[i];
        for (uint32_t k = 0; k < a->nlines; k++)
            write_function(e, a->lines[k]->func);
        ap_pb_uint(&e->msg, 1, i + 1);
        ap_pb_uint(&e->msg, 2, a->map >= 0 ? (uint64_t)a->map + 1 : 0);
        ap_pb_uint(&e->msg, 3, a->addr ? a->addr - 1 : 0);
        for (uint32_t k = 0; k < a->nlines; k++) {
            ap_pb_uint(&e->tmp, 1, a->lines[k]->func->id);
            ap_pb_uint(&e->tmp, 2, (uint64_t)a->lines[k]->line);
            sub(&e->msg, 4, &e->tmp);
        }
        sub(&e->out, 4, &e->msg);
    }
}

static void write_label(enc *e, const char *key, const char *s, int64_t num)
{
    ap_buf l = {0};
    uint64_t k = str(e, key), v = str(e, s);
    ap_pb_uint(&l, 1, k);
    ap_pb_uint(&l, 2, v);
    ap_pb_uint(&l, 3, (uint64_t)num);
    sub(&e->msg, 3, &l);
    ap_buf_free(&l);
}

static void write_samples(enc *e, const ap_profile *p)
{
    uint64_t *locs = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < p->nbuckets; i++) {
        const ap_bucket *b = &p->buckets[i];
        if (!b->v[AP_ALLOC_OBJECTS] && !b->v[AP_INUSE_BYTES] && !b->v[AP_ALLOC_BYTES])
            continue;
        size_t n = b->stack ? b->stack->depth : 0;
        ap_grow(&locs, &cap, n + 1, sizeof *locs);
        for (size_t k = 0; k < n; k++)
            locs[k] = *ap_map_get(&p->addr_index, b->stack->frames[k]) + 1;
        uint64_t v[4] = {(uint64_t)b->v[AP_ALLOC_OBJECTS], (uint64_t)b->v[AP_ALLOC_BYTES],
                         (uint64_t)b->v[AP_INUSE_OBJECTS], (uint64_t)b->v[AP_INUSE_BYTES]};
        ap_pb_packed(&e->msg, 1, locs, n);
        ap_pb_packed(&e->msg, 2, v, 4);
        write_label(e, "tid", NULL, b->tid);
        const char *name = ap_thread_name(p->file, p->proc->id, b->tid);
        if (name)
            write_label(e, "thread", name, 0);
        sub(&e->out, 2, &e->msg);
    }
    free(locs);
}

void ap_pprof_encode(const ap_profile *p, ap_buf *out)
{
    enc e = {0};
    ap_pb_bytes(&e.out, 6, "", 0); /* string_table[0] must be "" */
    value_type(&e, 1, "alloc_objects", "count");
    value_type(&e, 1, "alloc_space", "bytes");
    value_type(&e, 1, "inuse_objects", "count");
    value_type(&e, 1, "inuse_space", "bytes");
    write_mappings(&e, p);
    write_locations(&e, p);
    write_samples(&e, p);
    ap_pb_uint(&e.out, 9, (uint64_t)(p->dump->time * 1e9));
    double dur = p->dump->time - p->proc->start_time;
    ap_pb_uint(&e.out, 10, dur > 0 ? (uint64_t)(dur * 1e9) : 0);
    value_type(&e, 11, "space", "bytes");
    ap_pb_uint(&e.out, 12, (uint64_t)(p->proc->rate > 0 ? p->proc->rate : 1));
    char comment[512];
    snprintf(comment, sizeof comment, "allocprof: %s, process %lld (pid %lld), dump %lld (%s)",
             p->proc->exe ? p->proc->exe : "?", (long long)p->proc->id, (long long)p->proc->pid,
             (long long)p->dump->id, p->dump->reason);
    uint64_t c = str(&e, comment);
    ap_pb_uint(&e.out, 13, c);
    uint64_t def = str(&e, "inuse_space");
    ap_pb_uint(&e.out, 14, def);
    *out = e.out;
    ap_buf_free(&e.msg);
    ap_buf_free(&e.tmp);
    ap_strtab_free(&e.strs);
    ap_map_free(&e.str_index);
    ap_map_free(&e.funcs);
}

int ap_gzip_write(const char *path, const void *data, size_t n)
{
    int fd =
        strcmp(path, "-") ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : dup(1);
    if (fd < 0)
        return -1;
    gzFile gz = gzdopen(fd, "wb");
    if (!gz) {
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    const char *p = data;
    while (n) {
        unsigned chunk = n > (1u << 30) ? 1u << 30 : (unsigned)n;
        if (gzwrite(gz, p, chunk) != (int)chunk) {
            gzclose(gz);
            errno = errno ? errno : EIO;
            return -1;
        }
        p += chunk;
        n -= chunk;
    }
    return gzclose(gz) == Z_OK ? 0 : (errno = errno ? errno : EIO, -1);
}
