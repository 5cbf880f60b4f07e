/*
 * leaks.c — the memory still allocated at a dump, by call stack, minus the
 * suppressed leaks (leaks.h). A leak of S bytes in all is seen with
 * probability 1 - e^(-S/rate) at a sampling rate, which the caveat says.
 */
#include "leaks.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format.h"

/* The program's own __lsan_default_suppressions text, as the library stored it. */
static char *program_suppressions(ap_file *f, int64_t process_id)
{
    sqlite3_stmt *s;
    char *text = NULL;
    if (sqlite3_prepare_v2(f->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL) !=
        SQLITE_OK)
        return NULL;
    char key[64];
    snprintf(key, sizeof key, "lsan_default_suppressions:%lld", (long long)process_id);
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        text = ap_xstrdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    return text;
}

/* Drops the rows a suppression matches, counting them; totals what stays. */
static void suppress(ap_leaks *l)
{
    ap_report *r = &l->rep;
    size_t n = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        const int64_t *v = r->rows[i].flat[0];
        ap_supp_rule *rule = (ap_supp_rule *)ap_supp_find(&l->sup, r->rows[i].sym, r->rows[i].nsym);
        if (rule) {
            rule->stacks++;
            rule->bytes += v[AP_INUSE_BYTES];
            rule->objects += v[AP_INUSE_OBJECTS];
            l->sup_stacks++;
            l->sup_bytes += v[AP_INUSE_BYTES];
            l->sup_objects += v[AP_INUSE_OBJECTS];
            continue;
        }
        l->bytes += v[AP_INUSE_BYTES];
        l->objects += v[AP_INUSE_OBJECTS];
        r->rows[n++] = r->rows[i];
    }
    r->nrows = n;
}

/* Keeps the rows that still hold memory (and at least min bytes). */
static void keep_leaks(ap_report *r, uint64_t min)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nrows; i++) {
        const int64_t *v = r->rows[i].flat[0];
        if ((v[AP_INUSE_BYTES] > 0 || v[AP_INUSE_OBJECTS] > 0) &&
            (uint64_t)(v[AP_INUSE_BYTES] > 0 ? v[AP_INUSE_BYTES] : 0) >= min)
            r->rows[n++] = r->rows[i];
    }
    r->nrows = n;
}

int ap_leaks_find(ap_leaks *l, ap_file *f, const ap_profile *p, uint64_t min, bool no_suppress,
                  const char *const *files, int nfiles)
{
    memset(l, 0, sizeof *l);
    ap_report_init(&l->rep, AP_BY_STACK);
    ap_report_add(&l->rep, p, 0);
    ap_report_sort(&l->rep, AP_INUSE_BYTES, false, false);
    keep_leaks(&l->rep, min);
    ap_supp_init(&l->sup);
    int bad = 0;
    if (!no_suppress) {
        l->prog = program_suppressions(f, p->proc->id);
        bad |= ap_supp_add_text(&l->sup, ap_supp_builtin, "built-in");
        if (l->prog)
            bad |= ap_supp_add_text(&l->sup, l->prog, "the program's __lsan_default_suppressions");
        for (int i = 0; i < nfiles && !bad; i++)
            bad |= ap_supp_add_file(&l->sup, files[i]);
    }
    if (bad)
        return -1;
    suppress(l);
    return 0;
}

void ap_leaks_free(ap_leaks *l)
{
    ap_supp_free(&l->sup);
    free(l->prog);
    ap_report_free(&l->rep);
    memset(l, 0, sizeof *l);
}

char *ap_leaks_caveat(const ap_profile *p)
{
    if (p->proc->rate <= 1)
        return NULL;
    char a[AP_FMT_LEN], b[AP_FMT_LEN];
    double r = (double)p->proc->rate;
    return ap_xasprintf("a leak of S bytes in all is seen with probability 1 - e^(-S/rate): half "
                        "the time at %s, a tenth at %s; smaller leaks may be missed. Run with "
                        "--rate 1 for exact figures",
                        ap_fmt_bytes((int64_t)(r * log(2.0)), false, a),
                        ap_fmt_bytes((int64_t)(r * -log(0.9)), false, b));
}
