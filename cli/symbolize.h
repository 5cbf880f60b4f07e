/*
 * symbolize.h — turning recorded return addresses into functions, files and
 * lines, in the allocprof command (never in the profiled process).
 *
 * Design: a frame address A belongs to the mapping with start <= A < end;
 * its address in the ELF file is A - 1 - bias (inside the call instruction).
 * Each mapped object is opened once with libdw (Dwfl, offline), checked
 * against the recorded build id (a rebuilt file is not trusted; the
 * /usr/lib/debug/.build-id file is tried instead), and queried for the
 * inline chain (dwarf_getscopes: inlined subroutines up to the subprogram,
 * each with its call site's file:line), falling back to the ELF symbol
 * tables. Names are demangled (C++, Rust). Results are cached per object
 * (build id, or "path:size:mtime") in the profile's `symbol` table, so a
 * second report is a table read; when the file is not writable the results
 * are simply not cached. What cannot be resolved gets a marker instead of a
 * name: "[missing] libfoo.so+0x1234" (file gone or rebuilt), "[unknown]
 * libfoo.so+0x1234" (no symbol there), "[unknown] 0x7f..." (no mapping).
 *
 * Symbolic frames are interned: one ap_func per (name, file), one ap_line per
 * (function, line), so reports compare and hash pointers.
 */
#ifndef AP_CLI_SYMBOLIZE_H
#define AP_CLI_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "profile.h"

typedef struct ap_func {
    const char *name; /* demangled, or a marker; interned */
    const char *file; /* full path or NULL; interned */
    uint32_t id;      /* 1, 2, ... in order of creation */
    bool unknown;     /* a marker, not a resolved name */
} ap_func;

typedef struct ap_line {
    const ap_func *func;
    int64_t line; /* 0 when unknown */
    uint32_t id;
} ap_line;

typedef struct ap_symbolizer ap_symbolizer;

ap_symbolizer *ap_sym_new(void);
void ap_sym_free(ap_symbolizer *s);

/* Symbolizes every frame of the profile's stacks (sets stack.sym and
 * p->addrs). Uses and fills the symbol cache of p->file. Returns 0. */
int ap_sym_profile(ap_symbolizer *s, ap_profile *p);

/* Every function and line created so far, in id order. */
const ap_func *const *ap_sym_funcs(const ap_symbolizer *s, size_t *n);

/* The last path component. */
const char *ap_basename(const char *path);
/* The module an address's code is in: its mapping's file name, or
 * "[jit or unknown]" (what the flame graphs colour and list). */
const char *ap_addr_module(const ap_profile *p, const ap_addr *a);

/* Demangles a C++ or Rust symbol; returns a malloc'ed string, or NULL when
 * the name is not mangled (demangle.c). */
char *ap_demangle(const char *sym);

#endif
