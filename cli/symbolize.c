/*
 * symbolize.c — addresses to (function, file, line) chains with libdw, with
 * the per-file symbol cache (design in symbolize.h).
 *
 * Objects (one per recorded path + build id, per profile file) are opened
 * lazily on their first uncached address. A resolved address is a
 * sym_result: its ap_line chain, innermost first. Results are kept per
 * object by ELF address, so each address of a binary is resolved once per
 * run even when it appears in thousands of stacks. What libdw would redo for
 * every address is done once: an object's ELF symbols are indexed (see "ELF
 * symbols"), and a unit's top-level scopes with their ranges (see "scopes"),
 * both giving exactly libdw's answers.
 */
#include "symbolize.h"

#include "../schema/frames.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <gelf.h>
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
    struct symtab *symtab; /* sorted ELF symbols (NULL: not built yet) */
    ap_map cus;            /* CU DIE address -> 1 + index in cu_idx */
    struct cu_index **cu_idx;
    size_t ncu, capcu;
    ap_map pcabbrev; /* Dwarf_Abbrev -> 1 has pc attributes, 2 not */
    /* a process's JIT code (path "[jit]"): the symbols of its perf map */
    struct jit_sym *jit;
    size_t njit;
    bool jit_read;
    int64_t pid;
} ap_object;

/* One line of /tmp/perf-PID.map: "START SIZE name", hex, as perf reads it. */
typedef struct jit_sym {
    uint64_t start, end;
    const char *name;
} jit_sym;

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
    bool verify; /* AP_SYMBOLIZE_VERIFY: check the indexes against libdw */
};

static void free_symtab(struct symtab *t);
static void free_cu_index(struct cu_index *c);

typedef struct raw_frame {
    const char *name, *file; /* interned */
    int64_t line;
} raw_frame;

const char *ap_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

const char *ap_addr_module(const ap_profile *p, const ap_addr *a)
{
    return a->map >= 0 ? ap_basename(p->maps[a->map].path) : "[jit or unknown]";
}

ap_symbolizer *ap_sym_new(void)
{
    ap_symbolizer *s = ap_xcalloc(1, sizeof(ap_symbolizer));
    const char *v = getenv("AP_SYMBOLIZE_VERIFY");
    s->verify = v && *v && strcmp(v, "0");
    return s;
}

/* AP_SYMBOLIZE_VERIFY found the indexes disagreeing with libdw (a test
 * setting, for libdw versions whose walk differs): exit 3. */
static void verify_failed(const ap_object *o, uint64_t a, const char *what)
{
    fprintf(stderr, "allocprof: symbolize check: %s+0x%" PRIx64 ": %s differs from libdw's\n",
            ap_basename(o->path), a, what);
    exit(3);
}

void ap_sym_free(ap_symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nobjs; i++) {
        ap_object *o = &s->objs[i];
        free_symtab(o->symtab);
        for (size_t k = 0; k < o->ncu; k++)
            free_cu_index(o->cu_idx[k]);
        free(o->cu_idx);
        ap_map_free(&o->cus);
        ap_map_free(&o->pcabbrev);
        if (o->dwfl)
            dwfl_end(o->dwfl);
        ap_map_free(&o->results);
        free(o->path);
        free(o->build_id);
        free(o->build_key);
        free(o->jit);
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
            (o->build_id == m->build_id ||
             (o->build_id && m->build_id && !strcasecmp(o->build_id, m->build_id))))
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
        o->build_key =
            ap_xasprintf("%s:%lld:%lld", m->path, (long long)st.st_size, (long long)st.st_mtime);
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
    if (!m || (o->build_id && !build_id_matches(m, o->build_id)) || !dwfl_module_getelf(m, &bias)) {
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
        char *p =
            ap_xasprintf("/usr/lib/debug/.build-id/%.2s/%s.debug", o->build_id, o->build_id + 2);
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

/* ---- ELF symbols --------------------------------------------------------
 *
 * dwfl_module_addrinfo reads the whole symbol table for every address (tens
 * of thousands of symbols in an interpreter). The same answer comes from an
 * index built once per object: the sized symbols that contain the address
 * are found in a value-sorted array (with the running maximum of their ends),
 * then elfutils' choice among them (__libdwfl_addrsym) is replayed in table
 * order: globals first, locals only when no global fits. What depends on
 * sizeless symbols (assembly labels, which elfutils matches by section) is
 * left to dwfl_module_addrinfo, as is PPC64 (function descriptors). */

typedef struct sym_ent {
    uint64_t value, size;
    const char *name;
    uint32_t ndx; /* index in the table: the order elfutils tries symbols */
    int bind;     /* elfutils' binding preference: global > weak > local */
} sym_ent;

typedef struct sym_pass {
    sym_ent *e;       /* sorted by value */
    uint64_t *maxend; /* greatest end of e[0..i] */
    size_t n, cap;
} sym_pass;

typedef struct symtab {
    bool usable;
    sym_pass pass[2];   /* globals, locals */
    uint64_t *sizeless; /* sorted values of the sizeless globals */
    size_t nsizeless, capsizeless;
    const sym_ent **cand;
    size_t capcand;
} symtab;

static int bind_value(const GElf_Sym *sym)
{
    switch (GELF_ST_BIND(sym->st_info)) {
    case STB_GLOBAL:
        return 3;
    case STB_WEAK:
        return 2;
    case STB_LOCAL:
        return 1;
    default:
        return 0;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_sym_value(const void *a, const void *b)
{
    const sym_ent *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return x->ndx < y->ndx ? -1 : x->ndx > y->ndx;
}

static int cmp_sym_ndx(const void *a, const void *b)
{
    const sym_ent *x = *(const sym_ent *const *)a, *y = *(const sym_ent *const *)b;
    return x->ndx < y->ndx ? -1 : x->ndx > y->ndx;
}

static symtab *build_symtab(Dwfl_Module *mod)
{
    symtab *t = ap_xcalloc(1, sizeof *t);
    int n = dwfl_module_getsymtab(mod);
    int first_global = dwfl_module_getsymtab_first_global(mod);
    Dwarf_Addr bias;
    Elf *elf = dwfl_module_getelf(mod, &bias);
    GElf_Ehdr eh;
    if (n < 0 || first_global < 0 || !elf || !gelf_getehdr(elf, &eh) || eh.e_machine == EM_PPC64)
        return t;
    int globals = first_global == 0 ? 1 : first_global;
    for (int i = 1; i < n; i++) {
        GElf_Sym sym;
        GElf_Addr value;
        GElf_Word shndx;
        Elf *symelf;
        Dwarf_Addr symbias;
        const char *name = dwfl_module_getsym_info(mod, i, &sym, &value, &shndx, &symelf, &symbias);
        int type = GELF_ST_TYPE(sym.st_info);
        if (!name || !name[0] || sym.st_shndx == SHN_UNDEF || type == STT_SECTION ||
            type == STT_FILE || type == STT_TLS)
            continue;
        if (!sym.st_size) {
            if (i >= globals) {
                ap_grow(&t->sizeless, &t->capsizeless, t->nsizeless + 1, sizeof *t->sizeless);
                t->sizeless[t->nsizeless++] = value;
            }
            continue;
        }
        sym_pass *p = &t->pass[i >= globals ? 0 : 1];
        ap_grow(&p->e, &p->cap, p->n + 1, sizeof *p->e);
        p->e[p->n++] = (sym_ent){value, sym.st_size, name, (uint32_t)i, bind_value(&sym)};
    }
    for (int k = 0; k < 2; k++) {
        sym_pass *p = &t->pass[k];
        if (p->n)
            qsort(p->e, p->n, sizeof *p->e, cmp_sym_value);
        p->maxend = ap_xmalloc((p->n ? p->n : 1) * sizeof *p->maxend);
        uint64_t m = 0;
        for (size_t i = 0; i < p->n; i++) {
            uint64_t end = p->e[i].value + p->e[i].size;
            if (end < p->e[i].value)
                end = UINT64_MAX;
            m = end > m ? end : m;
            p->maxend[i] = m;
        }
    }
    if (t->nsizeless)
        qsort(t->sizeless, t->nsizeless, sizeof *t->sizeless, cmp_u64);
    t->usable = true;
    return t;
}

static void free_symtab(symtab *t)
{
    if (!t)
        return;
    for (int k = 0; k < 2; k++) {
        free(t->pass[k].e);
        free(t->pass[k].maxend);
    }
    free(t->sizeless);
    free(t->cand);
    free(t);
}

/* The sized symbol of one pass that __libdwfl_addrsym would choose for a. */
static const sym_ent *pick_sized(symtab *t, const sym_pass *p, uint64_t a)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->e[mid].value <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t nc = 0;
    for (size_t i = lo; i-- > 0 && p->maxend[i] > a;) {
        if (a - p->e[i].value < p->e[i].size) {
            ap_grow(&t->cand, &t->capcand, nc + 1, sizeof *t->cand);
            t->cand[nc++] = &p->e[i];
        }
    }
    if (nc > 1)
        qsort(t->cand, nc, sizeof *t->cand, cmp_sym_ndx);
    const sym_ent *best = NULL;
    for (size_t i = 0; i < nc; i++) {
        const sym_ent *c = t->cand[i];
        if (!best || best->value < c->value || best->bind < c->bind)
            best = c;
        else if (best->value == c->value && ((best->size > c->size && best->bind <= c->bind) ||
                                             (best->size >= c->size && best->bind < c->bind)))
            best = c;
    }
    return best;
}

static bool has_sizeless_at(const symtab *t, uint64_t a)
{
    return t->nsizeless && bsearch(&a, t->sizeless, t->nsizeless, sizeof a, cmp_u64);
}

/* dwfl_module_addrinfo's symbol name for module address a. */
static const char *addr_name_fast(ap_object *o, Dwarf_Addr a)
{
    if (!o->symtab)
        o->symtab = build_symtab(o->mod);
    symtab *t = o->symtab;
    if (t->usable) {
        const sym_ent *e = pick_sized(t, &t->pass[0], a);
        if (!e && !has_sizeless_at(t, a))
            e = pick_sized(t, &t->pass[1], a);
        if (e)
            return e->name;
    }
    GElf_Off off;
    GElf_Sym sym;
    return dwfl_module_addrinfo(o->mod, a, &off, &sym, NULL, NULL, NULL);
}

static const char *addr_name(ap_object *o, Dwarf_Addr a, bool verify)
{
    const char *name = addr_name_fast(o, a);
    if (verify) {
        GElf_Off off;
        GElf_Sym sym;
        const char *want = dwfl_module_addrinfo(o->mod, a, &off, &sym, NULL, NULL, NULL);
        if (name != want && (!name || !want || strcmp(name, want)))
            verify_failed(o, a, "symbol");
    }
    return name;
}

/* ---- scopes -------------------------------------------------------------
 *
 * dwarf_getscopes walks a unit's DIEs from its start for every address (and
 * dwarf_getscopes_die walks it again for inlined code): on the large units
 * of an LTO build that is most of the time. The same walk (libdw's
 * __libdw_visit_scopes: imported units are walked in place, only DIEs that
 * can own scopes are entered, the first DIE containing the address is the
 * one entered) is replayed here with what does not depend on the address
 * computed once per unit: its top-level DIEs with their address ranges, and
 * for inlined code the set of every DIE the walk reaches (dwarf_getscopes
 * finds an inlined instance's abstract origin only among those). Anything
 * unusual (a walk error, a range error, scopes inside an imported unit) goes
 * through libdw's own calls. */

typedef struct imp_link {
    void *addr;
    const struct imp_link *up;
} imp_link;

/* 0: go on; > 0: stop with this value; < 0: error. */
typedef int (*visit_fn)(Dwarf_Die *die, const imp_link *imports, void *arg);

typedef struct top_range {
    uint64_t lo, hi;
    uint32_t top;
} top_range;

typedef struct cu_index {
    bool slow;        /* use libdw's walk */
    ap_map *pcabbrev; /* the object's may_have_pc cache */
    Dwarf_Die *top;
    bool *top_imported;
    size_t ntop, captop, capimp;
    top_range *r;
    uint64_t *maxend;
    size_t nr, capr;
    ap_map topsub;   /* top-level subprograms: DIE address -> 1 */
    int reach_state; /* 0 not built, 1 built, -1 walk error */
    ap_map reach;    /* every subprogram the walk reaches: DIE address -> 1 */
} cu_index;

static bool may_have_scopes(Dwarf_Die *die)
{
    switch (dwarf_tag(die)) {
    case DW_TAG_compile_unit:
    case DW_TAG_module:
    case DW_TAG_lexical_block:
    case DW_TAG_with_stmt:
    case DW_TAG_catch_block:
    case DW_TAG_try_block:
    case DW_TAG_entry_point:
    case DW_TAG_inlined_subroutine:
    case DW_TAG_subprogram:
    case DW_TAG_namespace:
    case DW_TAG_class_type:
    case DW_TAG_structure_type:
        return true;
    default:
        return false;
    }
}

/* libdw's walk over child and its siblings, imported units in place. */
static int walk_level(Dwarf_Die *child, const imp_link *imports, visit_fn fn, void *arg)
{
    int ret;
    do {
        while (dwarf_tag(child) == DW_TAG_imported_unit) {
            Dwarf_Die orig = *child;
            Dwarf_Attribute attr_mem;
            Dwarf_Attribute *attr = dwarf_attr(child, DW_AT_import, &attr_mem);
            if (dwarf_formref_die(attr, child) != NULL && dwarf_tag(child) != DW_TAG_compile_unit &&
                dwarf_child(child, child) == 0) {
                for (const imp_link *i = imports; i; i = i->up)
                    if (i->addr == orig.addr)
                        return -1;
                imp_link link = {orig.addr, imports};
                int r = walk_level(child, &link, fn, arg);
                if (r)
                    return r;
            }
            if ((ret = dwarf_siblingof(&orig, child)) != 0)
                return ret < 0 ? -1 : 0;
        }
        int r = fn(child, imports, arg);
        if (r)
            return r;
    } while ((ret = dwarf_siblingof(child, child)) == 0);
    return ret < 0 ? -1 : 0;
}

static int walk_children(Dwarf_Die *parent, const imp_link *imports, visit_fn fn, void *arg)
{
    Dwarf_Die child;
    int ret = dwarf_child(parent, &child);
    if (ret != 0)
        return ret < 0 ? -1 : 0;
    return walk_level(&child, imports, fn, arg);
}

/* Whether the DIE's abbreviation has DW_AT_high_pc or DW_AT_ranges: without
 * them (types, variables: most DIEs) dwarf_ranges finds no range and sets no
 * error, so it need not be asked. Cached per abbreviation in *cache. */
static bool may_have_pc(ap_map *cache, Dwarf_Die *die)
{
    if (dwarf_tag(die) == DW_TAG_invalid || !die->abbrev || die->abbrev == (Dwarf_Abbrev *)-1l)
        return true;
    bool created;
    uint64_t *slot = ap_map_put(cache, (uintptr_t)die->abbrev, &created);
    if (created) {
        size_t n = 0;
        bool pc = dwarf_getattrcnt(die->abbrev, &n) != 0; /* unknown: ask */
        for (size_t i = 0; i < n && !pc; i++) {
            unsigned int name, form;
            Dwarf_Off off;
            pc = dwarf_getabbrevattr(die->abbrev, i, &name, &form, &off) != 0 ||
                 name == DW_AT_high_pc || name == DW_AT_ranges;
        }
        *slot = pc ? 1 : 2;
    }
    return *slot == 1;
}

static int add_top(Dwarf_Die *die, const imp_link *imports, void *arg)
{
    cu_index *c = arg;
    uint32_t k = (uint32_t)c->ntop;
    ap_grow(&c->top, &c->captop, c->ntop + 1, sizeof *c->top);
    ap_grow(&c->top_imported, &c->capimp, c->ntop + 1, sizeof *c->top_imported);
    c->top[k] = *die;
    c->top_imported[k] = imports != NULL;
    c->ntop++;
    if (dwarf_tag(die) == DW_TAG_subprogram)
        *ap_map_put(&c->topsub, (uintptr_t)die->addr, NULL) = 1;
    if (!may_have_pc(c->pcabbrev, die))
        return 0;
    Dwarf_Addr base, lo, hi;
    ptrdiff_t off = 0;
    while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
        ap_grow(&c->r, &c->capr, c->nr + 1, sizeof *c->r);
        c->r[c->nr++] = (top_range){lo, hi, k};
    }
    if (off < 0) {
        dwarf_errno();
        return -1; /* dwarf_getscopes may fail or go on here: leave it to libdw */
    }
    return 0;
}

static int cmp_top_range(const void *a, const void *b)
{
    const top_range *x = a, *y = b;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return x->top < y->top ? -1 : x->top > y->top;
}

static cu_index *get_cu_index(ap_object *o, Dwarf_Die *cu)
{
    bool created;
    uint64_t *slot = ap_map_put(&o->cus, (uintptr_t)cu->addr, &created);
    if (!created)
        return o->cu_idx[*slot - 1];
    cu_index *c = ap_xcalloc(1, sizeof *c);
    c->pcabbrev = &o->pcabbrev;
    ap_grow(&o->cu_idx, &o->capcu, o->ncu + 1, sizeof *o->cu_idx);
    o->cu_idx[o->ncu++] = c;
    *slot = o->ncu;
    Dwarf_Die root = *cu;
    if (walk_children(&root, NULL, add_top, c) != 0) {
        c->slow = true;
        return c;
    }
    if (c->nr)
        qsort(c->r, c->nr, sizeof *c->r, cmp_top_range);
    c->maxend = ap_xmalloc((c->nr ? c->nr : 1) * sizeof *c->maxend);
    uint64_t m = 0;
    for (size_t i = 0; i < c->nr; i++) {
        m = c->r[i].hi > m ? c->r[i].hi : m;
        c->maxend[i] = m;
    }
    return c;
}

static void free_cu_index(cu_index *c)
{
    free(c->top);
    free(c->top_imported);
    free(c->r);
    free(c->maxend);
    ap_map_free(&c->topsub);
    ap_map_free(&c->reach);
    free(c);
}

/* The first top-level DIE (in walk order) whose ranges contain pc, or -1. */
static long top_at(const cu_index *c, uint64_t pc)
{
    size_t lo = 0, hi = c->nr;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->r[mid].lo <= pc)
            lo = mid + 1;
        else
            hi = mid;
    }
    long best = -1;
    for (size_t i = lo; i-- > 0 && c->maxend[i] > pc;)
        if (pc < c->r[i].hi && (best < 0 || c->r[i].top < (uint32_t)best))
            best = c->r[i].top;
    return best;
}

static int add_reach(Dwarf_Die *die, const imp_link *imports, void *arg)
{
    cu_index *c = arg;
    if (dwarf_tag(die) == DW_TAG_subprogram)
        *ap_map_put(&c->reach, (uintptr_t)die->addr, NULL) = 1;
    if (may_have_scopes(die) && dwarf_haschildren(die) != 0)
        return walk_children(die, imports, add_reach, c);
    return 0;
}

typedef struct pc_arg {
    ap_map *pcabbrev;
    uint64_t pc;
    Dwarf_Die found;
    bool hit, imported, error;
} pc_arg;

/* dwarf_getscopes' pc_match: the first child containing pc is entered. */
static int find_pc(Dwarf_Die *die, const imp_link *imports, void *arg)
{
    pc_arg *a = arg;
    if (!may_have_pc(a->pcabbrev, die))
        return 0;
    int r = dwarf_haspc(die, a->pc);
    if (r < 0) {
        dwarf_errno();
        a->error = true; /* libdw may fail or go on: let it decide */
        return -1;
    }
    if (r == 0)
        return 0;
    a->found = *die;
    a->imported = imports != NULL;
    a->hit = true;
    return 1;
}

enum { CHAIN_SLOW = -1 };

/* The scope chain dwarf_getscopes (and, for inlined code,
 * dwarf_getscopes_die) gives the old walk for pc: innermost first, into
 * *out (malloc'ed); returns their number, 0 for none, or CHAIN_SLOW when
 * libdw's own calls must decide. */
static int fast_scopes(ap_object *o, Dwarf_Die *cu, uint64_t pc, Dwarf_Die **out)
{
    cu_index *c = get_cu_index(o, cu);
    if (c->slow)
        return CHAIN_SLOW;
    long t = top_at(c, pc);
    if (t < 0)
        return 0; /* no scope: dwarf_getscopes returns 0 */
    if (c->top_imported[t] || c->top[t].cu != cu->cu)
        return CHAIN_SLOW;
    Dwarf_Die *path = NULL; /* outermost first, after the unit */
    size_t n = 0, cap = 0;
    ap_grow(&path, &cap, 1, sizeof *path);
    path[n++] = c->top[t];
    for (;;) {
        Dwarf_Die *cur = &path[n - 1];
        if (!may_have_scopes(cur) || dwarf_haschildren(cur) == 0)
            break;
        pc_arg a = {.pcabbrev = &o->pcabbrev, .pc = pc};
        Dwarf_Die parent = *cur;
        int r = walk_children(&parent, NULL, find_pc, &a);
        if (r < 0 || a.imported || (a.hit && a.found.cu != cu->cu)) {
            free(path);
            return CHAIN_SLOW;
        }
        if (!a.hit)
            break;
        ap_grow(&path, &cap, n + 1, sizeof *path);
        path[n++] = a.found;
    }
    size_t inl = SIZE_MAX; /* the innermost inlined instance */
    for (size_t i = 0; i < n; i++)
        if (dwarf_tag(&path[i]) == DW_TAG_inlined_subroutine)
            inl = i;
    if (inl != SIZE_MAX) {
        /* dwarf_getscopes gives a chain only when it finds the instance's
         * abstract origin in the unit; the chain we use is then
         * dwarf_getscopes_die's, the physical nesting. */
        Dwarf_Attribute attr_mem;
        Dwarf_Die origin;
        if (dwarf_formref_die(dwarf_attr(&path[inl], DW_AT_abstract_origin, &attr_mem), &origin) ==
            NULL) {
            free(path);
            return 0; /* dwarf_getscopes fails */
        }
        if (dwarf_tag(&origin) != DW_TAG_subprogram) {
            free(path);
            return CHAIN_SLOW;
        }
        if (ap_map_get(&c->topsub, (uintptr_t)origin.addr))
            goto found;
        /* The walk leaves its unit only through imported units, which (by
         * the DWARF standard) name whole units, and it does not enter
         * imported compile units: an origin in another compile unit (LTO)
         * is never found. */
        Dwarf_Die ounit;
        if (origin.cu != cu->cu && dwarf_diecu(&origin, &ounit, NULL, NULL) &&
            dwarf_tag(&ounit) == DW_TAG_compile_unit) {
            free(path);
            return 0;
        }
        if (c->reach_state == 0) {
            Dwarf_Die root = *cu;
            c->reach_state = walk_children(&root, NULL, add_reach, c) == 0 ? 1 : -1;
        }
        if (c->reach_state < 0) {
            free(path);
            return CHAIN_SLOW;
        }
        if (!ap_map_get(&c->reach, (uintptr_t)origin.addr)) {
            free(path);
            return 0; /* not found: dwarf_getscopes returns 0 */
        }
    }
found:;
    Dwarf_Die *sc = ap_xmalloc((n + 1) * sizeof *sc);
    for (size_t i = 0; i < n; i++)
        sc[i] = path[n - 1 - i];
    sc[n] = *cu;
    free(path);
    *out = sc;
    return (int)n + 1;
}

/* libdw's scope chain at pc: dwarf_getscopes, then for inlined code the
 * physical nesting from dwarf_getscopes_die. */
static int libdw_scopes(Dwarf_Die *cu, Dwarf_Addr pc, Dwarf_Die **out)
{
    Dwarf_Die *scopes = NULL;
    int ns = dwarf_getscopes(cu, pc, &scopes);
    bool inlined = false;
    for (int i = 0; i < ns && !inlined; i++)
        inlined = dwarf_tag(&scopes[i]) == DW_TAG_inlined_subroutine;
    if (inlined) { /* otherwise the chain is already the physical nesting */
        Dwarf_Die inner = scopes[0];
        free(scopes);
        scopes = NULL;
        ns = dwarf_getscopes_die(&inner, &scopes);
    }
    *out = scopes;
    return ns;
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
    Dwarf_Die *scopes = NULL;
    int ns = fast_scopes(o, cu, a - cubias, &scopes);
    if (ns == CHAIN_SLOW)
        ns = libdw_scopes(cu, a - cubias, &scopes);
    else if (s->verify) {
        Dwarf_Die *want = NULL;
        int nw = libdw_scopes(cu, a - cubias, &want);
        bool same = (ns > 0 ? ns : 0) == (nw > 0 ? nw : 0);
        for (int i = 0; same && i < ns; i++)
            same = scopes[i].addr == want[i].addr;
        free(want);
        if (!same)
            verify_failed(o, a - o->bias, "scope chain");
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
    const char *name = addr_name(o, a, s->verify);
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

/* ---- JIT code: perf maps ----------------------------------------------- */

/* The object standing for one process's JIT code: its cache key names the
 * process row (and its start, should the file be reused), and its symbols
 * come from /tmp/perf-PID.map, which JITs write for perf (node
 * --perf-basic-prof, Java's perf map agents, CPython 3.12's -X perf). The
 * map is read by the first symbolization after the run (`allocprof run`
 * does it as the program exits, while the map is surely the program's);
 * what it named is kept in the symbol cache, so later reports need no map. */
static uint32_t jit_object(ap_symbolizer *s, const ap_profile *p)
{
    for (size_t i = 0; i < s->nobjs; i++)
        if (s->objs[i].file == p->file && s->objs[i].pid && s->objs[i].pid == p->proc->id &&
            !strcmp(s->objs[i].path, "[jit]"))
            return (uint32_t)i;
    ap_grow(&s->objs, &s->capo, s->nobjs + 1, sizeof *s->objs);
    ap_object *o = &s->objs[s->nobjs];
    memset(o, 0, sizeof *o);
    o->file = p->file;
    o->path = ap_xstrdup("[jit]");
    o->pid = p->proc->id;
    o->state = OBJ_MISSING; /* no ELF file to open */
    o->build_key = ap_xasprintf("jit:%lld:%.6f", (long long)p->proc->id, p->proc->start_time);
    return (uint32_t)s->nobjs++;
}

static int cmp_jit(const void *a, const void *b)
{
    const jit_sym *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static void read_perf_map(ap_symbolizer *s, ap_object *o, int64_t os_pid)
{
    o->jit_read = true;
    char path[64];
    snprintf(path, sizeof path, "/tmp/perf-%lld.map", (long long)os_pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char *line = NULL;
    size_t cap = 0, capj = 0;
    while (getline(&line, &cap, f) > 0) {
        char *end;
        uint64_t start = strtoull(line, &end, 16);
        if (end == line || *end != ' ')
            continue;
        char *size_end;
        uint64_t size = strtoull(end + 1, &size_end, 16);
        if (size_end == end + 1 || *size_end != ' ' || !size)
            continue;
        char *name = size_end + 1;
        name[strcspn(name, "\n")] = 0;
        ap_grow(&o->jit, &capj, o->njit + 1, sizeof *o->jit);
        o->jit[o->njit++] = (jit_sym){start, start + size, ap_intern(&s->strs, name)};
    }
    free(line);
    fclose(f);
    qsort(o->jit, o->njit, sizeof *o->jit, cmp_jit);
}

/* A JIT symbol's name for return address a, or NULL. Later lines win over
 * earlier ones at the same place (code is regenerated there). */
static const char *jit_lookup(const ap_object *o, uint64_t a)
{
    const char *name = NULL;
    for (size_t lo = 0, hi = o->njit; lo < hi;) {
        size_t mid = lo + (hi - lo) / 2;
        if (o->jit[mid].start <= a)
            lo = mid + 1;
        else
            hi = mid;
        if (o->jit[mid].start <= a && a < o->jit[mid].end)
            name = o->jit[mid].name;
    }
    return name;
}

static uint32_t resolve_jit(ap_symbolizer *s, const ap_profile *p, uint64_t addr)
{
    uint32_t oi = jit_object(s, p);
    ap_object *o = &s->objs[oi];
    if (!o->cache_loaded)
        load_cache(s, o);
    uint64_t *hit = ap_map_get(&o->results, addr);
    if (hit)
        return (uint32_t)*hit;
    if (!o->jit_read)
        read_perf_map(s, o, p->proc->pid);
    const char *name = jit_lookup(o, addr - 1);
    if (!name)
        return marker_result(s, "unknown", NULL, addr);
    raw_frame f = {name, NULL, 0};
    uint32_t r = add_result(s, &f, 1, false);
    *ap_map_put(&o->results, addr, NULL) = r;
    ap_grow(&s->pend, &s->cappend, s->npend + 1, sizeof *s->pend);
    s->pend[s->npend++] = (pending){oi, r, addr};
    return r;
}

static uint32_t resolve_addr(ap_symbolizer *s, const ap_profile *p, const uint32_t *objs,
                             const ap_addr *ad)
{
    if (ad->addr == AP_FRAME_TRUNCATED) {
        raw_frame f = {ap_intern(&s->strs, "[truncated]"), NULL, 0};
        return add_result(s, &f, 1, true);
    }
    if (ad->map < 0)
        return resolve_jit(s, p, ad->addr);
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
