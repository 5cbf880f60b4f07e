/*
 * unwind.c — how a sample gets its stack.
 *
 * The fast walker. Every x86-64 module carries DWARF call-frame information
 * (.eh_frame, indexed by .eh_frame_hdr) in its loaded image. For almost every
 * return address it boils down to three numbers: the caller's stack pointer
 * (the CFA) is rsp or rbp plus an offset, the return address sits at CFA - 8,
 * and the caller's rbp is either untouched or saved at CFA + k. We read that
 * rule once per return address, straight from memory (no files, no malloc),
 * and keep it in a global cache; a sample then costs a hash probe and two or
 * three loads per frame (~20 instructions) instead of libunwind's ~100.
 *
 * The cache is read without locks: each slot is two words, the rule and
 * rule ^ ip, written rule first and check second (release); a reader that
 * sees a torn slot fails the xor check and treats it as a miss. Rules carry
 * the generation of the loaded-module set, bumped on dlclose (the shim
 * interposes dlclose), so rules of an unloaded module are never reused for
 * whatever is mapped there next. Inserts take a small lock that guards
 * nothing else. A miss calls dl_iterate_phdr (never under our lock: a
 * thread inside dlopen may be allocating) and parses the FDE.
 *
 * Safety: memory is only read between the thread's current stack pointer
 * and the top of its stack (stack_top), and each CFA must be above the last. Anything the rules
 * cannot describe — signal frames, CFA expressions (realigned stacks), registers other than rsp/rbp
 * as CFA base, a stack we do not know the bounds of (sigaltstack,
 * coroutines), a module without .eh_frame_hdr — falls back to libunwind's
 * unw_backtrace for that one sample. Code without an FDE (JIT code, or
 * generated code linked in, as node's builtins) is unwound through its frame
 * pointer (rbp chain), as libunwind does; a chain that leaves the stack hands
 * the sample to libunwind.
 *
 * libunwind is loaded privately with dlopen(RTLD_LOCAL) rather than linked:
 * linked, libunwind.so.8 would put `backtrace` and `_Unwind_Backtrace` into
 * the program's global scope, and a program using LLVM's libunwind (same
 * unw_* names) would bind to the wrong one.
 *
 * ALLOCPROF_UNWIND=libunwind uses libunwind for every sample; =check walks
 * both ways, compares, and reports the count of differing stacks at exit
 * (the integration tests run real programs this way).
 *
 * Fork: libunwind's locks and the loader's are taken on the slow paths only;
 * fork waits for slow paths in flight and holds new ones (ap_unwind_fork_*).
 */
#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "profiler_internal.h"

/* ---- the rule cache ---- */

/* Kinds, bit 0 = "CFA from rbp", bit 1 = "no walking on": RSP and RBP are
 * rules, BAD hands the sample to libunwind, END is the outermost frame. */
enum { K_RSP = 0, K_RBP = 1, K_BAD = 2, K_END = 3 };
#define RULE_RBP_BASE ((uint64_t)1 << 48)
#define RULE_STOP ((uint64_t)2 << 48)

#define RULE_GEN(r) ((uint32_t)((r) >> 50))
#define RULE_CFA_OFF(r) ((int64_t)(int32_t)(uint32_t)(r))
#define RULE_RBP_OFF(r) ((int64_t)(int16_t)(uint16_t)((r) >> 32))
#define GEN_MASK AP_UNWIND_GEN_MASK

#define CACHE_BITS 15
#define CACHE_SLOTS (1u << CACHE_BITS)
#define PROBES 8

typedef struct {
    _Atomic uint64_t check; /* rule ^ ip */
    _Atomic uint64_t rule;
} slot_t;

static slot_t *cache;
AP_HIDDEN _Atomic uint32_t ap_unwind_gen;
static ap_lock_t insert_lock;

static inline uint64_t make_rule(unsigned kind, int64_t cfa_off, int64_t rbp_off, uint32_t g)
{
    return (uint64_t)(uint32_t)(int32_t)cfa_off | (uint64_t)(uint16_t)(int16_t)rbp_off << 32 |
           (uint64_t)kind << 48 | (uint64_t)(g & GEN_MASK) << 50;
}

static inline size_t slot_of(uint64_t ip)
{
    return (size_t)((ip * 0x9E3779B97F4A7C15ull) >> (64 - CACHE_BITS));
}

/* The cache key: the address with the generation above its 48 bits. */
static inline uint64_t key_of(uint64_t ip, uint32_t g)
{
    return ip | (uint64_t)g << 48;
}

static inline bool cache_get(uint64_t ip, uint32_t g, uint64_t *rule)
{
    size_t h = slot_of(ip);
    uint64_t key = key_of(ip, g);
    for (unsigned i = 0; i < PROBES; i++) {
        slot_t *s = &cache[(h + i) & (CACHE_SLOTS - 1)];
        uint64_t c = atomic_load_explicit(&s->check, memory_order_acquire);
        uint64_t r = atomic_load_explicit(&s->rule, memory_order_relaxed);
        if ((c ^ r) == key) {
            *rule = r;
            return true;
        }
        if (!c)
            return false;
    }
    return false;
}

static void cache_put(uint64_t ip, uint64_t rule)
{
    size_t h = slot_of(ip), pick = h;
    uint32_t g = RULE_GEN(rule);
    uint64_t key = key_of(ip, g);
    ap_lock(&insert_lock);
    for (unsigned i = 0; i < PROBES; i++) {
        slot_t *s = &cache[(h + i) & (CACHE_SLOTS - 1)];
        uint64_t c = atomic_load_explicit(&s->check, memory_order_relaxed);
        uint64_t r = atomic_load_explicit(&s->rule, memory_order_relaxed);
        if (!c || (c ^ r) >> 48 != g || (c ^ r) == key) { /* empty, stale or ours */
            pick = (h + i) & (CACHE_SLOTS - 1);
            break;
        }
    }
    /* all probes live: the home slot is overwritten (this is a cache) */
    slot_t *s = &cache[pick];
    atomic_store_explicit(&s->check, 0, memory_order_relaxed);
    atomic_store_explicit(&s->rule, rule, memory_order_release);
    atomic_store_explicit(&s->check, rule ^ key, memory_order_release);
    ap_unlock(&insert_lock);
}

void ap_unwind_invalidate(void)
{
    atomic_fetch_add_explicit(&ap_unwind_gen, 1, memory_order_release);
}

/* ---- reading .eh_frame_hdr and .eh_frame ---- */

enum {
    PE_ABSPTR = 0x00,
    PE_ULEB = 0x01,
    PE_UDATA2 = 0x02,
    PE_UDATA4 = 0x03,
    PE_UDATA8 = 0x04,
    PE_SLEB = 0x09,
    PE_SDATA2 = 0x0a,
    PE_SDATA4 = 0x0b,
    PE_SDATA8 = 0x0c,
    PE_PCREL = 0x10,
    PE_DATAREL = 0x30,
    PE_INDIRECT = 0x80,
    PE_OMIT = 0xff
};

typedef struct {
    const uint8_t *p, *end;
    bool bad;
} rd_t;

static uint64_t rd_uleb(rd_t *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static int64_t rd_sleb(rd_t *r)
{
    int64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0x80;
    while (r->p < r->end && (b & 0x80)) {
        b = *r->p++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
    }
    if (b & 0x80)
        r->bad = true;
    else if (shift < 64 && (b & 0x40))
        v = (int64_t)((uint64_t)v | ~(((uint64_t)1 << shift) - 1)); /* sign-extend */
    return v;
}

static uint64_t rd_fixed(rd_t *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, r->p, n);
    r->p += n;
    return v;
}

/* A pointer in one of the encodings GNU ld, gold and lld emit. */
static uint64_t rd_enc(rd_t *r, uint8_t enc, uintptr_t datarel)
{
    uintptr_t here = (uintptr_t)r->p;
    uint64_t v;
    switch (enc & 0x0f) {
    case PE_ABSPTR:
    case PE_UDATA8:
    case PE_SDATA8:
        v = rd_fixed(r, 8);
        break;
    case PE_ULEB:
        v = rd_uleb(r);
        break;
    case PE_SLEB:
        v = (uint64_t)rd_sleb(r);
        break;
    case PE_UDATA2:
        v = rd_fixed(r, 2);
        break;
    case PE_SDATA2:
        v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2);
        break;
    case PE_UDATA4:
        v = rd_fixed(r, 4);
        break;
    case PE_SDATA4:
        v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4);
        break;
    default:
        r->bad = true;
        return 0;
    }
    switch (enc & 0x70) {
    case 0:
        break;
    case PE_PCREL:
        v += here;
        break;
    case PE_DATAREL:
        v += datarel;
        break;
    default:
        r->bad = true;
        return 0;
    }
    return v; /* PE_INDIRECT (personality only) is skipped, never followed */
}

/* The unwind state we track: the CFA and the rules for rbp and the return
 * address. Other registers cannot be a CFA base we accept, so they are not
 * followed. */
enum { R_SAME = 0, R_OFFSET, R_UNDEF, R_OTHER };

typedef struct {
    int cfa_reg; /* DWARF number: 6 rbp, 7 rsp; -1 = expression or other */
    int64_t cfa_off;
    uint8_t rbp_how, ra_how;
    int64_t rbp_off, ra_off;
} cfa_state_t;

#define DW_RBP 6
#define DW_RSP 7
#define STATE_STACK 16

typedef struct {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    bool has_z;
    const uint8_t *insns, *insns_end;
} cie_t;

static void set_reg(cfa_state_t *s, uint64_t reg, uint64_t ra_reg, uint8_t how, int64_t off)
{
    if (reg == DW_RBP) {
        s->rbp_how = how;
        s->rbp_off = off;
    } else if (reg == ra_reg) {
        s->ra_how = how;
        s->ra_off = off;
    }
}

static void restore_reg(cfa_state_t *s, const cfa_state_t *init, uint64_t reg, uint64_t ra_reg)
{
    if (reg == DW_RBP) {
        s->rbp_how = init->rbp_how;
        s->rbp_off = init->rbp_off;
    } else if (reg == ra_reg) {
        s->ra_how = init->ra_how;
        s->ra_off = init->ra_off;
    }
}

/* Runs a CFA program up to and including location pc. init is the state
 * after the CIE's initial instructions (NULL while running those). false on
 * anything malformed or not understood. */
static bool run_cfa(const cie_t *cie, const uint8_t *p, const uint8_t *end, uintptr_t loc,
                    uintptr_t pc, cfa_state_t *s, const cfa_state_t *init)
{
    rd_t r = {p, end, false};
    cfa_state_t stack[STATE_STACK];
    int sp = 0;
    while (r.p < r.end && !r.bad) {
        uint8_t op = *r.p++;
        uint64_t reg, delta = 0;
        switch (op >> 6) {
        case 1:
            delta = op & 0x3f;
            goto advance;
        case 2:
            set_reg(s, op & 0x3f, cie->ra_reg, R_OFFSET, (int64_t)rd_uleb(&r) * cie->data_align);
            continue;
        case 3:
            if (!init)
                return false;
            restore_reg(s, init, op & 0x3f, cie->ra_reg);
            continue;
        default:
            break;
        }
        switch (op) {
        case 0x00:
            break; /* nop */
        case 0x01:
            return false; /* set_loc: not emitted for x86-64 */
        case 0x02:
            delta = rd_fixed(&r, 1);
            goto advance;
        case 0x03:
            delta = rd_fixed(&r, 2);
            goto advance;
        case 0x04:
            delta = rd_fixed(&r, 4);
            goto advance;
        case 0x05: /* offset_extended */
            reg = rd_uleb(&r);
            set_reg(s, reg, cie->ra_reg, R_OFFSET, (int64_t)rd_uleb(&r) * cie->data_align);
            break;
        case 0x06: /* restore_extended */
            if (!init)
                return false;
            restore_reg(s, init, rd_uleb(&r), cie->ra_reg);
            break;
        case 0x07:
            set_reg(s, rd_uleb(&r), cie->ra_reg, R_UNDEF, 0);
            break;
        case 0x08:
            set_reg(s, rd_uleb(&r), cie->ra_reg, R_SAME, 0);
            break;
        case 0x09: /* register: saved in another register */
            reg = rd_uleb(&r);
            (void)rd_uleb(&r);
            set_reg(s, reg, cie->ra_reg, R_OTHER, 0);
            break;
        case 0x0a:
            if (sp == STATE_STACK)
                return false;
            stack[sp++] = *s;
            break;
        case 0x0b:
            if (sp == 0)
                return false;
            *s = stack[--sp];
            break;
        case 0x0c: /* def_cfa */
            s->cfa_reg = (int)rd_uleb(&r);
            s->cfa_off = (int64_t)rd_uleb(&r);
            break;
        case 0x0d:
            s->cfa_reg = (int)rd_uleb(&r);
            break;
        case 0x0e:
            s->cfa_off = (int64_t)rd_uleb(&r);
            break;
        case 0x0f: { /* def_cfa_expression */
            uint64_t len = rd_uleb(&r);
            if (len > (uint64_t)(r.end - r.p))
                return false;
            r.p += len;
            s->cfa_reg = -1;
            break;
        }
        case 0x10:   /* expression */
        case 0x16: { /* val_expression */
            reg = rd_uleb(&r);
            uint64_t len = rd_uleb(&r);
            if (len > (uint64_t)(r.end - r.p))
                return false;
            r.p += len;
            set_reg(s, reg, cie->ra_reg, R_OTHER, 0);
            break;
        }
        case 0x11: /* offset_extended_sf */
            reg = rd_uleb(&r);
            set_reg(s, reg, cie->ra_reg, R_OFFSET, rd_sleb(&r) * cie->data_align);
            break;
        case 0x12: /* def_cfa_sf */
            s->cfa_reg = (int)rd_uleb(&r);
            s->cfa_off = rd_sleb(&r) * cie->data_align;
            break;
        case 0x13:
            s->cfa_off = rd_sleb(&r) * cie->data_align;
            break;
        case 0x14:   /* val_offset */
        case 0x15: { /* val_offset_sf */
            reg = rd_uleb(&r);
            if (op == 0x14)
                (void)rd_uleb(&r);
            else
                (void)rd_sleb(&r);
            set_reg(s, reg, cie->ra_reg, R_OTHER, 0);
            break;
        }
        case 0x2e:
            (void)rd_uleb(&r);
            break; /* GNU_args_size */
        case 0x2f: /* GNU_negative_offset_extended */
            reg = rd_uleb(&r);
            set_reg(s, reg, cie->ra_reg, R_OFFSET, -(int64_t)rd_uleb(&r) * cie->data_align);
            break;
        default:
            return false;
        }
        continue;
    advance:
        loc += delta * cie->code_align;
        if (loc > pc)
            return !r.bad;
    }
    return !r.bad;
}

static bool parse_cie(const uint8_t *p, cie_t *cie)
{
    rd_t r = {p, p + 12, false};
    uint64_t len = rd_fixed(&r, 4);
    if (len == 0xffffffffu) {
        len = rd_fixed(&r, 8);
        r.end = r.p + len;
        if (rd_fixed(&r, 8) != 0)
            return false;
    } else {
        r.end = r.p + len;
        if (len == 0 || rd_fixed(&r, 4) != 0)
            return false;
    }
    uint8_t version = (uint8_t)rd_fixed(&r, 1);
    if (version != 1 && version != 3)
        return false;
    const char *aug = (const char *)r.p;
    size_t alen = strnlen(aug, (size_t)(r.end - r.p));
    r.p += alen + 1;
    if (r.p > r.end)
        return false;
    cie->code_align = rd_uleb(&r);
    cie->data_align = rd_sleb(&r);
    cie->ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
    cie->fde_enc = PE_ABSPTR;
    cie->has_z = aug[0] == 'z';
    if (alen && !cie->has_z)
        return false; /* pre-'z' augmentations ("eh") */
    if (cie->has_z) {
        uint64_t zlen = rd_uleb(&r);
        const uint8_t *after = r.p + zlen;
        if (r.bad || zlen > (uint64_t)(r.end - r.p))
            return false;
        for (size_t i = 1; i < alen; i++) {
            switch (aug[i]) {
            case 'R':
                cie->fde_enc = (uint8_t)rd_fixed(&r, 1);
                break;
            case 'L':
                (void)rd_fixed(&r, 1);
                break;
            case 'P': {
                uint8_t enc = (uint8_t)rd_fixed(&r, 1);
                (void)rd_enc(&r, enc & 0x7f, 0);
                break;
            }
            default:
                return false; /* 'S' (signal frame) and anything unknown */
            }
        }
        r.p = after;
    }
    if (r.bad || cie->code_align == 0)
        return false;
    cie->insns = r.p;
    cie->insns_end = r.end;
    return true;
}

/* The rule for code address pc (a return address minus one) in the module
 * whose .eh_frame_hdr is at hdr. */
static uint64_t rule_from_eh(uintptr_t hdr, uintptr_t pc, uint32_t g)
{
    const uint8_t *h = (const uint8_t *)hdr;
    if (h[0] != 1 || h[3] != (PE_DATAREL | PE_SDATA4) || h[2] == PE_OMIT)
        return make_rule(K_BAD, 0, 0, g);
    rd_t r = {h + 4, h + 4 + 16, false};
    (void)rd_enc(&r, h[1], hdr);
    uint64_t count = rd_enc(&r, h[2], hdr);
    if (r.bad || count == 0)
        return make_rule(K_BAD, 0, 0, g);
    const int32_t *table = (const int32_t *)(const void *)r.p;
    int64_t rel = (int64_t)(pc - hdr);
    uint64_t lo = 0, hi = count; /* last entry with initial location <= pc */
    if (table[0] > rel)
        return make_rule(K_RBP, 16, -16, g); /* no FDE: the frame pointer, as for JIT code */
    while (hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (table[2 * mid] <= rel)
            lo = mid;
        else
            hi = mid;
    }
    const uint8_t *fde = h + table[2 * lo + 1];

    rd_t f = {fde, fde + 12, false};
    uint64_t len = rd_fixed(&f, 4);
    const uint8_t *cie_ptr_at;
    uint64_t cie_off;
    if (len == 0xffffffffu) {
        len = rd_fixed(&f, 8);
        f.end = f.p + len;
        cie_ptr_at = f.p;
        cie_off = rd_fixed(&f, 8);
    } else {
        f.end = f.p + len;
        cie_ptr_at = f.p;
        cie_off = rd_fixed(&f, 4);
    }
    cie_t cie;
    if (f.bad || len == 0 || cie_off == 0 || !parse_cie(cie_ptr_at - cie_off, &cie))
        return make_rule(K_BAD, 0, 0, g);
    uint64_t begin = rd_enc(&f, cie.fde_enc, hdr);
    uint64_t range = rd_enc(&f, cie.fde_enc & 0x0f, hdr);
    if (cie.has_z) {
        uint64_t zlen = rd_uleb(&f);
        if (zlen > (uint64_t)(f.end - f.p))
            return make_rule(K_BAD, 0, 0, g);
        f.p += zlen;
    }
    if (f.bad)
        return make_rule(K_BAD, 0, 0, g);
    if (pc < begin || pc - begin >= range) /* no FDE covers pc (generated code linked in) */
        return make_rule(K_RBP, 16, -16, g);

    cfa_state_t init = {-1, 0, R_SAME, R_SAME, 0, 0};
    if (!run_cfa(&cie, cie.insns, cie.insns_end, begin, UINTPTR_MAX, &init, NULL))
        return make_rule(K_BAD, 0, 0, g);
    cfa_state_t s = init;
    if (!run_cfa(&cie, f.p, f.end, begin, pc, &s, &init))
        return make_rule(K_BAD, 0, 0, g);

    if (s.ra_how == R_UNDEF)
        return make_rule(K_END, 0, 0, g); /* outermost frame (_start, thread start) */
    if ((s.cfa_reg != DW_RSP && s.cfa_reg != DW_RBP) || s.cfa_off <= 0 || s.cfa_off > INT32_MAX ||
        s.ra_how != R_OFFSET || s.ra_off != -8)
        return make_rule(K_BAD, 0, 0, g);
    int64_t rbp_off = 0;
    if (s.rbp_how == R_OFFSET) {
        if (s.rbp_off > -8 || s.rbp_off < INT16_MIN)
            return make_rule(K_BAD, 0, 0, g);
        rbp_off = s.rbp_off;
    } else if (s.rbp_how != R_SAME) {
        return make_rule(K_BAD, 0, 0, g);
    }
    return make_rule(s.cfa_reg == DW_RSP ? K_RSP : K_RBP, s.cfa_off, rbp_off, g);
}

struct find_mod {
    uintptr_t pc;
    uintptr_t hdr;            /* 0: module has no .eh_frame_hdr */
    uintptr_t seg_lo, seg_hi; /* the loaded segment holding pc */
    bool found;
};

static int find_mod_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find_mod *m = arg;
    const ElfW(Phdr) *eh = NULL;
    bool in = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            if (m->pc >= lo && m->pc - lo < ph->p_memsz) {
                in = true;
                m->seg_lo = lo;
                m->seg_hi = lo + ph->p_memsz;
            }
        } else if (ph->p_type == PT_GNU_EH_FRAME) {
            eh = ph;
        }
    }
    if (!in)
        return 0;
    m->found = true;
    m->hdr = eh ? info->dlpi_addr + eh->p_vaddr : 0;
    return 1;
}

/* ---- the fork guard around the slow paths ---- */

/* seq_cst on both sides: either the sampler sees `forking`, or fork sees the
 * sampler in `slow`. */
static _Atomic int slow, forking;

static void slow_enter(void)
{
    for (;;) {
        atomic_fetch_add(&slow, 1);
        if (!atomic_load(&forking))
            return;
        atomic_fetch_sub(&slow, 1);
        sched_yield();
    }
}

static void slow_leave(void)
{
    atomic_fetch_sub(&slow, 1);
}

void ap_unwind_fork_wait(void)
{
    atomic_store(&forking, 1);
    while (atomic_load(&slow))
        sched_yield();
}

void ap_unwind_fork_done(void)
{
    atomic_store(&forking, 0);
}

static uint64_t derive(uint64_t ip, uint32_t g)
{
    struct find_mod m = {.pc = (uintptr_t)ip - 1};
    slow_enter(); /* the loader's lock and our insert lock: not across a fork */
    dl_iterate_phdr(find_mod_cb, &m);
    uint64_t rule;
    if (!m.found) /* not in any module (JIT code): follow the frame pointer, as libunwind does */
        rule = make_rule(K_RBP, 16, -16, g);
    else if (!m.hdr)
        rule = make_rule(K_BAD, 0, 0, g);
    else
        rule = rule_from_eh(m.hdr, (uintptr_t)ip - 1, g);
    cache_put(ip, rule);
    slow_leave();
    return rule;
}

/* ---- the walk ---- */

AP_HIDDEN int ap_unwind_mode;      /* 0 fast, 1 libunwind, 2 check */
static uintptr_t self_lo, self_hi; /* our own code: frames dropped from stacks */

extern void *__libc_stack_end; /* ld.so: near the top of the main thread's stack */

#define MAX_STACK ((uintptr_t)256 << 20)

/* The top of the stack sp is on, or 0 when we cannot tell. No libc call
 * here: pthread_getattr_np, for one, allocates while holding the thread's
 * lock, and this runs inside malloc. A glibc thread's stack ends where its
 * thread control block starts (the thread pointer, %fs:0), user-supplied
 * stacks included; the main thread's ends above __libc_stack_end. */
static inline uintptr_t stack_top(uintptr_t sp)
{
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    if (sp < tp && tp - sp <= MAX_STACK)
        return tp;
    uintptr_t main_top = ((uintptr_t)__libc_stack_end | 4095) + 1;
    if (sp < main_top && main_top - sp <= MAX_STACK)
        return main_top;
    return 0; /* sigaltstack, a coroutine's stack: libunwind */
}

static inline bool is_self(uint64_t ip)
{
    return ip >= self_lo && ip < self_hi;
}

bool ap_unwind_is_self(uintptr_t ip)
{
    return is_self(ip);
}

static __attribute__((noinline)) uint64_t rule_slow(uint64_t ip, uint32_t g)
{
    uint64_t rule;
    if (cache_get(ip, g, &rule))
        return rule;
    return derive(ip, g);
}

/* Reads a stack word and remembers it for the walk memo (unwind_inline.h). */
static inline __attribute__((always_inline)) uintptr_t read_word(uintptr_t at, ap_reads_t *rd)
{
    uintptr_t v = *(const uintptr_t *)at;
    if (rd->n < AP_MEMO_READS) {
        rd->addr[rd->n] = at;
        rd->val[rd->n] = v;
    }
    rd->n++;
    return v;
}

/* One frame outwards: 0, or 1 at the outermost frame, or -1 for libunwind. */
static inline __attribute__((always_inline)) int step(uintptr_t *ip, uintptr_t *sp, uintptr_t *bp,
                                                      uintptr_t hi, uint32_t g, ap_reads_t *rd)
{
    /* the home slot first, inline; other probes and misses out of line */
    const slot_t *s = &cache[slot_of(*ip)];
    uint64_t c = atomic_load_explicit(&s->check, memory_order_acquire);
    uint64_t rule = atomic_load_explicit(&s->rule, memory_order_relaxed);
    if (ap_unlikely((c ^ rule) != key_of(*ip, g)))
        rule = rule_slow(*ip, g);
    if (ap_unlikely(rule & RULE_STOP))
        return rule & RULE_RBP_BASE ? 1 : -1; /* K_END : K_BAD */
    if (rule & RULE_RBP_BASE) {               /* rbp matters only where a CFA is computed from it */
        if (!rd->bp_src)
            rd->bp_input = true;
        else
            (void)read_word(rd->bp_src, rd);
    }
    uintptr_t cfa = (rule & RULE_RBP_BASE ? *bp : *sp) + (uintptr_t)RULE_CFA_OFF(rule);
    if (ap_unlikely(cfa < *sp + 8 || cfa > hi)) /* the return address lies at or above sp */
        return -1;
    int64_t ro = RULE_RBP_OFF(rule);
    if (ro) { /* ro <= -8, so at + 8 <= cfa <= hi */
        uintptr_t at = cfa + (uintptr_t)ro;
        if (ap_unlikely(at < *sp))
            return -1;
        *bp = *(const uintptr_t *)at;
        rd->bp_src = at;
    }
    *ip = read_word(cfa - 8, rd);
    *sp = cfa;
    return *ip ? 0 : 1;
}

AP_HIDDEN AP_TLS ap_walk_memo_t ap_unwind_memo;

/* A full walk (walk_repeat missed): the depth, or -1 when a frame needs
 * libunwind. Frames inside liballocprof.so at the top of the stack are
 * dropped. *walk_id: this walk's id, or 0 when it is not remembered. */
static __attribute__((noinline)) int walk_fast(uint64_t *out, int max, const ap_unwind_ctx_t *from,
                                               uint64_t *walk_id)
{
    uintptr_t ip = from->ip, sp = from->sp, bp = from->bp;
    *walk_id = 0;
    uintptr_t hi = stack_top(sp);
    if (!hi)
        return -1;
    uint32_t g = atomic_load_explicit(&ap_unwind_gen, memory_order_acquire) & GEN_MASK;
    ap_walk_memo_t *m = &ap_unwind_memo;
    uintptr_t ip0 = ip, sp0 = sp, bp0 = bp;
    ap_reads_t *rd = &m->rd;
    rd->n = 0;
    rd->bp_input = false;
    rd->bp_src = 0;
    m->ip0 = 0; /* invalid until this walk has finished */
    int r = 0, n = 0;
    for (int own = 0; is_self(ip); own++) /* our own frames: walked, not kept */
        if (own > 64 || (r = step(&ip, &sp, &bp, hi, g, rd)) != 0)
            return r < 0 ? -1 : 0;
    while (n < max) {
        out[n++] = ip;
        if ((r = step(&ip, &sp, &bp, hi, g, rd)) != 0)
            break;
    }
    if (r < 0)
        return -1;
    if (rd->n <= AP_MEMO_READS && n <= AP_MEMO_FRAMES) {
        memcpy(m->frames, out, (size_t)n * sizeof *out);
        m->depth = n;
        m->max = max;
        m->gen = g;
        m->sp0 = sp0;
        m->bp0 = bp0;
        m->ip0 = ip0;
        *walk_id = ++m->id;
    }
    return n;
}

/* ---- libunwind ---- */

typedef int (*backtrace_fn)(void **, int);
static backtrace_fn unw_bt;

static _Atomic uint64_t n_fallback, n_checked, n_differ;

static int walk_libunwind(uint64_t *out, int max)
{
    void *raw[AP_MAX_DEPTH + 32];
    slow_enter();
    int n = unw_bt(raw, max + 32 < AP_MAX_DEPTH + 32 ? max + 32 : AP_MAX_DEPTH + 32);
    slow_leave();
    int i = 0;
    while (i < n && is_self((uint64_t)(uintptr_t)raw[i]))
        i++;
    int d = 0;
    for (; i < n && d < max; i++)
        out[d++] = (uint64_t)(uintptr_t)raw[i];
    return d;
}

int ap_unwind_init(const char *how, char *err, size_t errlen)
{
    if (!how || !*how || !strcmp(how, "fast"))
        ap_unwind_mode = 0;
    else if (!strcmp(how, "libunwind"))
        ap_unwind_mode = 1;
    else if (!strcmp(how, "check"))
        ap_unwind_mode = 2;
    else {
        snprintf(err, errlen, "ALLOCPROF_UNWIND=%s: expected fast, libunwind or check", how);
        return -1;
    }
    struct find_mod self = {.pc = (uintptr_t)&ap_unwind_init}; /* our own code segment */
    dl_iterate_phdr(find_mod_cb, &self);
    self_lo = self.seg_lo;
    self_hi = self.seg_hi;
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load libunwind.so.8 (install libunwind8): %s", dlerror());
        return -1;
    }
    if (ap_fd_guard_imports(h) != 0) {
        snprintf(err, errlen, "cannot guard libunwind's descriptors");
        return -1;
    }
    unw_bt = (backtrace_fn)dlsym(h, "unw_backtrace");
    if (!unw_bt) {
        snprintf(err, errlen, "libunwind.so.8 has no unw_backtrace");
        return -1;
    }
    /* Per-thread unwind caches: no lock shared between sampling threads.
     * (libunwind's names: _ULx86_64_* are what unw_set_caching_policy and
     * unw_local_addr_space expand to; the value is UNW_CACHE_PER_THREAD.) */
    typedef int (*policy_fn)(void *, int);
    policy_fn set_policy = (policy_fn)dlsym(h, "_ULx86_64_set_caching_policy");
    void **local_as = (void **)dlsym(h, "_ULx86_64_local_addr_space");
    if (set_policy && local_as)
        set_policy(*local_as, 2);
    cache = ap_os_map(CACHE_SLOTS * sizeof *cache);
    if (!cache) {
        snprintf(err, errlen, "cannot map the unwind cache");
        return -1;
    }
    return 0;
}

static void report_difference(const uint64_t *a, int na, const uint64_t *b, int nb)
{
    if (atomic_load(&n_differ) > 3)
        return;
    fprintf(stderr, "allocprof: unwind check: fast walk (%d frames) differs from libunwind (%d):\n",
            na, nb);
    for (int i = 0; i < na || i < nb; i++) {
        Dl_info di = {0};
        uint64_t x = i < nb ? b[i] : a[i];
        dladdr((void *)(uintptr_t)x, &di);
        fprintf(stderr, "  %2d %#18llx %#18llx %s %s\n", i,
                i < na ? (unsigned long long)a[i] : 0ull, i < nb ? (unsigned long long)b[i] : 0ull,
                di.dli_fname ? di.dli_fname : "?", di.dli_sname ? di.dli_sname : "?");
    }
}

/* Everything but a repeat (ap_unwind_capture, unwind_inline.h): a full
 * walk, libunwind, or both (check mode). */
int ap_unwind_capture_slow(uint64_t *out, int max, const ap_unwind_ctx_t *from, uint64_t *walk_id)
{
    if (ap_likely(ap_unwind_mode == 0)) {
        int n = walk_fast(out, max, from, walk_id);
        if (ap_likely(n >= 0))
            return n;
        atomic_fetch_add_explicit(&n_fallback, 1, memory_order_relaxed);
        *walk_id = 0;
        return walk_libunwind(out, max);
    }
    *walk_id = 0;
    if (ap_unwind_mode == 1)
        return walk_libunwind(out, max);
    uint64_t other[AP_MAX_DEPTH], unused = 0;
    int n = walk_libunwind(out, max);
    int m = walk_fast(other, max, from, &unused);
    if (m < 0) {
        atomic_fetch_add_explicit(&n_fallback, 1, memory_order_relaxed);
        return n;
    }
    atomic_fetch_add_explicit(&n_checked, 1, memory_order_relaxed);
    if (m != n || memcmp(out, other, (size_t)n * sizeof *out)) {
        report_difference(other, m, out, n);
        atomic_fetch_add_explicit(&n_differ, 1, memory_order_relaxed);
    }
    return n;
}

void ap_unwind_report(void)
{
    if (ap_unwind_mode == 2)
        fprintf(
            stderr,
            "allocprof: unwind check: %llu stacks compared, %llu differ, %llu needed libunwind\n",
            (unsigned long long)atomic_load(&n_checked), (unsigned long long)atomic_load(&n_differ),
            (unsigned long long)atomic_load(&n_fallback));
}
