/*
 * symbolize.c — addresses to (function, file, line) chains with libdw, with
 * the per-file symbol cache (design in symbolize.h).
 *
 * Objects (one per recorded path + build id, per profile file) are opened
 * lazily on their first uncached address. A resolved address is a
 * sym_result: its ap_line chain, innermost first. Results are kept per
 * object by ELF address, so each address of a binary is resolved once per
 * run even when it appears in thousands of stacks.
 */
#include "symbolize.h"

#include <dwarf.h>
#include <elfutils/libdwfl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define MAX_INLINE 64

enum { OBJ_NEW, OBJ_OK, OBJ_MISSING };

typedef struct sym_result {
    const ap_line **lines; /* innermost first */
    uint32_t n;
} sym_result;

typedef struct ap_object {
    const ap_file *file; /* whose cache this object reads and fills */
    char *path, *build_id, *build_key;
    int state;
    Dwfl *dwfl;
    Dwfl_Module *mod;
    Dwarf_Addr bias;
    ap_map results; /* ELF address -> index in s->results */
    bool cache_loaded;
} ap_object;

typedef struct pending {
    uint32_t obj, result;
    uint64_t addr;
} pending;

struct ap_symbolizer {
    ap_strtab strs;
    ap_func **funcs;
    size_t nfuncs, capf;
    ap_map func_index;
    ap_line **lines;
    size_t nlines, capl;
    ap_map line_index;
    ap_object *objs;
    size_t nobjs, capo;
    sym_result *results;
    size_t nresults, capr;
    pending *pend;
    size_t npend, cappend;
};

typedef struct raw_frame {
    const char *name, *file; /* interned */
    int64_t line;
} raw_frame;

const char *ap_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

ap_symbolizer *ap_sym_new(void)
{
    return ap_xcalloc(1, sizeof(ap_symbolizer));
}

void ap_sym_free(ap_symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nobjs; i++) {
        ap_object *o = &s->objs[i];
        if (o->dwfl)
            dwfl_end(o->dwfl);
        ap_map_free(&o->results);
        free(o->path);
        free(o->build_id);
        free(o->build_key);
    }
    for (size_t i = 0; i < s->nresults; i++)
        free(s->results[i].lines);
    for (size_t i = 0; i < s->nfuncs; i++)
        free(s->funcs[i]);
    for (size_t i = 0; i < s->nlines; i++)
        free(s->lines[i]);
    free(s->objs);
    free(s->results);
    free(s->funcs);
    free(s->lines);
    free(s->pend);
    ap_map_free(&s->func_index);
    ap_map_free(&s->line_index);
    ap_strtab_free(&s->strs);
    free(s);
}

const ap_func *const *ap_sym_funcs(const ap_symbolizer *s, size_t *n)
{
    *n = s->nfuncs;
    return (const ap_func *const *)s->funcs;
}

/* Interns the (name, file) function record. */
static const ap_func *intern_func(ap_symbolizer *s, const char *name, const char *file, bool unk)
{
    uint64_t key = ap_hash_u64((uintptr_t)name) ^ ap_hash_u64((uintptr_t)file + 1) ^ unk;
    for (;;) {
        bool created;
        uint64_t *slot = ap_map_put(&s->func_index, key, &created);
        if (!created) {
            ap_func *f = s->funcs[*slot];
            if (f->name == name && f->file == file && f->unknown == unk)
                return f;
            key = ap_hash_u64(key + 1);
            continue;
        }
        ap_func *f = ap_xcalloc(1, sizeof *f);
        *f = (ap_func){name, file, (uint32_t)s->nfuncs + 1, unk};
        ap_grow(&s->funcs, &s->capf, s->nfuncs + 1, sizeof *s->funcs);
        *slot = s->nfuncs;
        s->funcs[s->nfuncs++] = f;
        return f;
    }
}

static const ap_line *intern_line(ap_symbolizer *s, const ap_func *func, int64_t line)
{
    uint64_t key = ap_hash_u64((uintptr_t)func) ^ ap_hash_u64((uint64_t)line);
    for (;;) {
        bool created;
        uint64_t *slot = ap_map_put(&s->line_index, key, &created);
        if (!created) {
            ap_line *l = s->lines[*slot];
            if (l->func == func && l->line == line)
                return l;
            key = ap_hash_u64(key + 1);
            continue;
        }
        ap_line *l = ap_xcalloc(1, sizeof *l);
        *l = (ap_line){func, line, (uint32_t)s->nlines + 1};
        ap_grow(&s->lines, &s->capl, s->nlines + 1, sizeof *s->lines);
        *slot = s->nlines;
        s->lines[s->nlines++] = l;
        return l;
    }
}

/* Stores a result made of raw frames (innermost first); returns its index. */
static uint32_t add_result(ap_symbolizer *s, const raw_frame *fr, size_t n, bool unknown)
{
    ap_grow(&s->results, &s->capr, s->nresults + 1, sizeof *s->results);
    sym_result *r = &s->results[s->nresults];
    r->lines = ap_xmalloc(n * sizeof *r->lines);
    r->n = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        r->lines[i] = intern_line(s, intern_func(s, fr[i].name, fr[i].file, unknown), fr[i].line);
    return (uint32_t)s->nresults++;
}

/* A marker result: "[tag] name+0xaddr" or "[tag] 0xaddr". */
static uint32_t marker_result(ap_symbolizer *s, const char *tag, const char *obj, uint64_t addr)
{
    char buf[512];
    if (obj)
        snprintf(buf, sizeof buf, "[%s] %s+0x%" PRIx64, tag, ap_basename(obj), addr);
    else
        snprintf(buf, sizeof buf, "[%s] 0x%" PRIx64, tag, addr);
    raw_frame f = {ap_intern(&s->strs, buf), NULL, 0};
    return add_result(s, &f, 1, true);
}

/* ---- objects ----------------------------------------------------------- */

static uint32_t find_object(ap_symbolizer *s, const ap_file *file, const ap_mapping *m)
{
    for (size_t i = 0; i < s->nobjs; i++) {
        ap_object *o = &s->objs[i];
        if (o->file == file && !strcmp(o->path, m->path) &&
            (o->build_id == m->build_id || (o->build_id && m->build_id &&
                                            !strcasecmp(o->build_id, m->build_id))))
            return (uint32_t)i;
    }
    ap_grow(&s->objs, &s->capo, s->nobjs + 1, sizeof *s->objs);
    ap_object *o = &s->objs[s->nobjs];
    memset(o, 0, sizeof *o);
    o->file = file;
    o->path = ap_xstrdup(m->path);
    o->build_id = m->build_id ? ap_xstrdup(m->build_id) : NULL;
    struct stat st;
    if (o->build_id)
        o->build_key = ap_xstrdup(o->build_id);
    else if (m->path[0] == '/' && stat(m->path, &st) == 0)
        o->build_key = ap_xasprintf("%s:%lld:%lld", m->path, (long long)st.st_size,
                                    (long long)st.st_mtime);
    return (uint32_t)s->nobjs++;
}

static bool build_id_matches(Dwfl_Module *mod, const char *want)
{
    const unsigned char *bits;
    GElf_Addr vaddr;
    int len = dwfl_module_build_id(mod, &bits, &vaddr);
    if (len <= 0 || strlen(want) != (size_t)len * 2)
        return false;
    for (int i = 0; i < len; i++) {
        char hex[3];
        snprintf(hex, sizeof hex, "%02x", bits[i]);
        if (strncasecmp(hex, want + 2 * i, 2))
            return false;
    }
    return true;
}

static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
};

static bool try_open(ap_object *o, const char *path)
{
    if (access(path, R_OK) != 0)
        return false;
    Dwfl *d = dwfl_begin(&offline_callbacks);
    if (!d)
        return false;
    dwfl_report_begin(d);
    Dwfl_Module *m = dwfl_report_elf(d, ap_basename(o->path), path, -1, 0, false);
    dwfl_report_end(d, NULL, NULL);
    Dwarf_Addr bias = 0;
    if (!m || (o->build_id && !build_id_matches(m, o->build_id)) ||
        !dwfl_module_getelf(m, &bias)) {
        dwfl_end(d);
        return false;
    }
    o->dwfl = d;
    o->mod = m;
    o->bias = bias;
    return true;
}

static void open_object(ap_object *o)
{
    o->state = OBJ_MISSING;
    if (o->path[0] == '/' && try_open(o, o->path)) {
        o->state = OBJ_OK;
        return;
    }
    if (o->build_id && strlen(o->build_id) > 2) {
        char *p = ap_xasprintf("/usr/lib/debug/.build-id/%.2s/%s.debug", o->build_id,
                               o->build_id + 2);
        if (try_open(o, p))
            o->state = OBJ_OK;
        free(p);
    }
}

/* ---- the cache --------------------------------------------------------- */

/* Reads every cached row of the object's build key. */
static void load_cache(ap_symbolizer *s, ap_object *o)
{
    o->cache_loaded = true;
    sqlite3_stmt *st;
    if (!o->build_key ||
        sqlite3_prepare_v2(o->file->db,
                           "SELECT address, depth, function, file, line FROM symbol "
                           "WHERE build_key = ?1 ORDER BY address, depth DESC",
                           -1, &st, NULL) != SQLITE_OK)
        return; /* no key, or no symbol table: nothing cached */
    sqlite3_bind_text(st, 1, o->build_key, -1, SQLITE_STATIC);
    raw_frame fr[MAX_INLINE];
    size_t n = 0;
    int64_t cur = -1;
    bool unknown = false;
    for (;;) {
        int rc = sqlite3_step(st);
        int64_t addr = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
        if (n && addr != cur) {
            uint32_t r = unknown ? marker_result(s, "unknown", o->path, (uint64_t)cur)
                                 : add_result(s, fr, n, false);
            *ap_map_put(&o->results, (uint64_t)cur, NULL) = r;
            n = 0;
            unknown = false;
        }
        if (rc != SQLITE_ROW)
            break;
        cur = addr;
        const char *fn = (const char *)sqlite3_column_text(st, 2);
        const char *file = (const char *)sqlite3_column_text(st, 3);
        unknown |= !fn;
        if (n < MAX_INLINE)
            fr[n++] = (raw_frame){ap_intern(&s->strs, fn ? fn : "?"), ap_intern(&s->strs, file),
                                  sqlite3_column_int64(st, 4)};
    }
    sqlite3_finalize(st);
}

static bool write_rows(ap_symbolizer *s, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO symbol (build_key, address, depth, function, "
                           "file, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    bool ok = true;
    for (size_t i = 0; i < s->npend && ok; i++) {
        const pending *p = &s->pend[i];
        const sym_result *r = &s->results[p->result];
        for (uint32_t k = 0; k < r->n && ok; k++) {
            const ap_line *l = r->lines[r->n - 1 - k]; /* depth 0 = outermost */
            bool unk = l->func->unknown;
            sqlite3_reset(st);
            sqlite3_bind_text(st, 1, s->objs[p->obj].build_key, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (int64_t)p->addr);
            sqlite3_bind_int64(st, 3, k);
            if (unk)
                sqlite3_bind_null(st, 4);
            else
                sqlite3_bind_text(st, 4, l->func->name, -1, SQLITE_STATIC);
            if (unk || !l->func->file)
                sqlite3_bind_null(st, 5);
            else
                sqlite3_bind_text(st, 5, l->func->file, -1, SQLITE_STATIC);
            if (unk || !l->line)
                sqlite3_bind_null(st, 6);
            else
                sqlite3_bind_int64(st, 6, l->line);
            ok = sqlite3_step(st) == SQLITE_DONE;
        }
    }
    sqlite3_finalize(st);
    return ok;
}

/* Writes the results resolved in this run; failure (read-only file, locked
 * database) only means they are not cached. */
static void write_cache(ap_symbolizer *s, const ap_file *f)
{
    if (!s->npend || access(f->path, W_OK) != 0)
        return;
    sqlite3 *db;
    if (sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 1000);
        if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK) {
            bool ok = write_rows(s, db);
            sqlite3_exec(db, ok ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
        }
    }
    sqlite3_close(db);
}

/* ---- libdw ------------------------------------------------------------- */

/* The demangled linkage name of a function DIE, else its plain name. */
static const char *die_name(ap_symbolizer *s, Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *link = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!link)
        link = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    char *dem = link ? ap_demangle(link) : NULL;
    if (dem) {
        const char *r = ap_intern(&s->strs, dem);
        free(dem);
        return r;
    }
    const char *name = dwarf_diename(die);
    return ap_intern(&s->strs, name ? name : link ? link : "??");
}

static const char *sym_name(ap_symbolizer *s, const char *name)
{
    char *dem = ap_demangle(name);
    const char *r = ap_intern(&s->strs, dem ? dem : name);
    free(dem);
    return r;
}

/* The inline chain at module address a, innermost first. */
static size_t dwarf_chain(ap_symbolizer *s, ap_object *o, Dwarf_Addr a, raw_frame *out)
{
    Dwarf_Addr cubias;
    Dwarf_Die *cu = dwfl_module_addrdie(o->mod, a, &cubias);
    if (!cu)
        return 0;
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *l = dwfl_module_getsrc(o->mod, a);
    if (l)
        file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
    Dwarf_Files *files = NULL;
    size_t nfiles = 0;
    if (dwarf_getsrcfiles(cu, &files, &nfiles) != 0)
        files = NULL;
    /* dwarf_getscopes continues from an inlined instance into its abstract
     * definition; the physical nesting (inline instance inside its caller)
     * comes from dwarf_getscopes_die on the innermost scope. */
    Dwarf_Die *scopes = NULL, inner;
    int ns = dwarf_getscopes(cu, a - cubias, &scopes);
    bool inlined = false;
    for (int i = 0; i < ns && !inlined; i++)
        inlined = dwarf_tag(&scopes[i]) == DW_TAG_inlined_subroutine;
    if (inlined) { /* otherwise the chain is already the physical nesting */
        inner = scopes[0];
        free(scopes);
        scopes = NULL;
        ns = dwarf_getscopes_die(&inner, &scopes);
    }
    size_t n = 0;
    for (int i = 0; i < ns && n < MAX_INLINE; i++) {
        int tag = dwarf_tag(&scopes[i]);
        if (tag != DW_TAG_subprogram && tag != DW_TAG_inlined_subroutine)
            continue;
        out[n++] = (raw_frame){die_name(s, &scopes[i]), ap_intern(&s->strs, file), line};
        if (tag == DW_TAG_subprogram)
            break;
        /* The caller's position is this inlined call's site. */
        Dwarf_Attribute attr;
        Dwarf_Word w;
        file = NULL;
        line = 0;
        if (files && dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &w) == 0)
            file = dwarf_filesrc(files, w, NULL, NULL);
        if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &w) == 0)
            line = (int)w;
    }
    free(scopes);
    return n;
}

/* Resolves one ELF address of an opened object. */
static uint32_t resolve(ap_symbolizer *s, ap_object *o, uint64_t elf_addr)
{
    Dwarf_Addr a = elf_addr + o->bias;
    raw_frame fr[MAX_INLINE];
    size_t n = dwarf_chain(s, o, a, fr);
    if (n)
        return add_result(s, fr, n, false);
    GElf_Off off;
    GElf_Sym sym;
    const char *name = dwfl_module_addrinfo(o->mod, a, &off, &sym, NULL, NULL, NULL);
    if (!name)
        return marker_result(s, "unknown", o->path, elf_addr);
    int line = 0;
    const char *file = NULL;
    Dwfl_Line *l = dwfl_module_getsrc(o->mod, a);
    if (l)
        file = dwfl_lineinfo(l, NULL, &line, NULL, NULL, NULL);
    fr[0] = (raw_frame){sym_name(s, name), ap_intern(&s->strs, file), line};
    return add_result(s, fr, 1, false);
}

/* ---- profiles ---------------------------------------------------------- */

static int find_map(const ap_profile *p, uint64_t a)
{
    size_t lo = 0, hi = p->nmaps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->maps[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && a < p->maps[lo - 1].end ? (int)lo - 1 : -1;
}

/* Collects the distinct frame addresses of the stacks that buckets use. */
static void collect_addrs(ap_profile *p)
{
    size_t cap = 0;
    for (size_t i = 0; i < p->nbuckets; i++) {
        const ap_stack *st = p->buckets[i].stack;
        for (uint32_t k = 0; st && k < st->depth; k++) {
            bool created;
            uint64_t *slot = ap_map_put(&p->addr_index, st->frames[k], &created);
            if (!created)
                continue;
            ap_grow(&p->addrs, &cap, p->naddrs + 1, sizeof *p->addrs);
            *slot = p->naddrs;
            p->addrs[p->naddrs++] = (ap_addr){st->frames[k], find_map(p, st->frames[k]), NULL, 0};
        }
    }
}

static uint32_t resolve_addr(ap_symbolizer *s, const ap_profile *p, const uint32_t *objs,
                             const ap_addr *ad)
{
    if (ad->map < 0)
        return marker_result(s, "unknown", NULL, ad->addr);
    uint32_t oi = objs[ad->map];
    ap_object *o = &s->objs[oi];
    uint64_t elf = ad->addr - 1 - p->maps[ad->map].bias;
    if (!o->cache_loaded)
        load_cache(s, o);
    uint64_t *hit = ap_map_get(&o->results, elf);
    if (hit)
        return (uint32_t)*hit;
    if (o->state == OBJ_NEW)
        open_object(o);
    if (o->state != OBJ_OK)
        return marker_result(s, "missing", o->path, elf);
    uint32_t r = resolve(s, o, elf);
    *ap_map_put(&o->results, elf, NULL) = r;
    if (o->build_key) {
        ap_grow(&s->pend, &s->cappend, s->npend + 1, sizeof *s->pend);
        s->pend[s->npend++] = (pending){oi, r, elf};
    }
    return r;
}

static void progress(size_t done, size_t total, bool tty)
{
    if (!tty || total < 2000 || (done % 500 && done != total))
        return;
    if (done == total)
        fputs("\r\033[K", stderr);
    else
        fprintf(stderr, "\rallocprof: symbolizing %zu/%zu addresses", done, total);
}

static void build_stack_syms(ap_profile *p)
{
    for (size_t i = 0; i < p->nstacks; i++) {
        ap_stack *st = &p->stacks[i];
        size_t n = 0;
        for (uint32_t k = 0; k < st->depth; k++) {
            uint64_t *ix = ap_map_get(&p->addr_index, st->frames[k]);
            n += ix ? p->addrs[*ix].nlines : 0;
        }
        free(st->sym);
        st->sym = ap_xmalloc(n * sizeof *st->sym);
        st->nsym = 0;
        for (uint32_t k = 0; k < st->depth; k++) {
            uint64_t *ix = ap_map_get(&p->addr_index, st->frames[k]);
            for (uint32_t j = 0; ix && j < p->addrs[*ix].nlines; j++)
                st->sym[st->nsym++] = p->addrs[*ix].lines[j];
        }
    }
}

int ap_sym_profile(ap_symbolizer *s, ap_profile *p)
{
    uint32_t *objs = ap_xmalloc((p->nmaps ? p->nmaps : 1) * sizeof *objs);
    for (size_t i = 0; i < p->nmaps; i++)
        objs[i] = find_object(s, p->file, &p->maps[i]);
    collect_addrs(p);
    s->npend = 0;
    bool tty = isatty(2);
    for (size_t i = 0; i < p->naddrs; i++) {
        uint32_t ri = resolve_addr(s, p, objs, &p->addrs[i]);
        const sym_result *r = &s->results[ri];
        p->addrs[i].lines = r->lines;
        p->addrs[i].nlines = r->n;
        progress(i + 1, p->naddrs, tty);
    }
    free(objs);
    build_stack_syms(p);
    write_cache(s, p->file);
    s->npend = 0;
    return 0;
}
