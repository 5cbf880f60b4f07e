/*
 * report.h — aggregating a symbolized profile into report rows, and the
 * option parsing shared by the report subcommands.
 *
 * Design: a row is one key of the chosen granularity (--by): a function
 * (name + file), a line (function + line), a whole symbolized stack, or a
 * thread. Each row has, per side (0 = the profile, 1 = the second profile of
 * a diff), "flat" figures (the key is the innermost frame: the allocation
 * call site) and "cumulative" ones (the key appears anywhere in the stack,
 * counted once per stack even under recursion), for all four metrics at
 * once. Buckets are first summed per stack, so the stack walk is per
 * distinct stack, not per bucket. Keys are interned pointers, so the two
 * sides of a diff (symbolized by one symbolizer) meet on the same rows.
 */
#ifndef AP_CLI_REPORT_H
#define AP_CLI_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "profile.h"
#include "symbolize.h"
#include "util.h"

enum { AP_BY_FUNCTION, AP_BY_LINE, AP_BY_STACK, AP_BY_THREAD };

typedef struct ap_row {
    const ap_func *func;       /* BY_FUNCTION, BY_LINE */
    const ap_line *line;       /* BY_LINE */
    const ap_line *const *sym; /* BY_STACK: innermost first */
    uint32_t nsym;
    int64_t tid;        /* BY_THREAD */
    int64_t process_id; /* BY_THREAD: for the thread's name */
    int64_t flat[2][AP_NMETRICS], cum[2][AP_NMETRICS];
    uint32_t stamp;
} ap_row;

typedef struct ap_report {
    int by;
    ap_row *rows;
    size_t nrows, cap;
    ap_map index;
    int64_t total[2][AP_NMETRICS];
    uint32_t stamp;
} ap_report;

void ap_report_init(ap_report *r, int by);
/* Adds a symbolized profile's buckets to side 0 or 1. */
void ap_report_add(ap_report *r, const ap_profile *p, int side);
/* Sorts by the metric: descending value of side 0 (cum or flat); with
 * delta, descending absolute value of side 1 - side 0. Rows whose figures
 * are all zero are dropped. */
void ap_report_sort(ap_report *r, int metric, bool cum, bool delta);
void ap_report_free(ap_report *r);

/* "name", "name file.c:12", "tid 123 (name)", or the innermost frame of a
 * stack; full paths when full_path. Returns a malloc'ed string. */
char *ap_row_label(const ap_report *r, const ap_row *row, const ap_file *f, bool full_path);
/* --by stack: the row's frames after the first, one indented row each, under
 * the row (its label is the first); the other cells empty. top and diff. */
struct ap_table;
void ap_table_stack_rows(struct ap_table *t, const ap_report *r, const ap_row *row);
/* One symbolic frame as "name file.c:12" (basename) into a malloc'ed string. */
char *ap_line_label(const ap_line *l);

/* ---- options ----------------------------------------------------------- */

enum {
    AP_OPT_SELECT = 1 << 0, /* -p/--process, -d/--dump */
    AP_OPT_SORT = 1 << 1,   /* --sort (alias --metric) */
    AP_OPT_BY = 1 << 2,     /* --by */
    AP_OPT_N = 1 << 3,      /* -n */
    AP_OPT_CUM = 1 << 4,    /* --cum */
    AP_OPT_FORMAT = 1 << 5, /* --format text|json */
    AP_OPT_OUT = 1 << 6,    /* -o */
    AP_OPT_FOLDED = 1 << 7, /* --folded */
    AP_OPT_BASE = 1 << 8,   /* --base-dump */
    AP_OPT_MIN = 1 << 9,    /* --min SIZE */
    AP_OPT_SUPP = 1 << 10,  /* --suppressions FILE (repeatable), --no-suppress */
    AP_OPT_ALL = 1 << 11,   /* --all */
};

typedef struct ap_opts {
    const char *files[2];
    int nfiles;
    int64_t process, dump, base_dump; /* -1 when not given */
    int metric, by, n;                /* n 0 = all */
    bool cum, json, folded;
    const char *out;
    uint64_t min;
    bool prefer_peak; /* the command reports in-use figures: see ap_select_dump */
    const char *supp_files[8];
    int nsupp;
    bool no_suppress;
    bool all;
} ap_opts;

/* Parses argv (argv[0] is the subcommand name). Returns 0 to go on, 1 when
 * --help was printed (exit 0), -1 after printing an error (exit 2). */
int ap_parse_opts(int argc, char **argv, unsigned allowed, int min_files, int max_files,
                  const char *help, ap_opts *o);

extern const char *const ap_metric_names[AP_NMETRICS];

/* The standard error of a sampled estimate (docs/sampling.md): a byte figure
 * B estimated from samples one per `rate` bytes on average has a variance of
 * about B x rate (each sample stands for about `rate` bytes), so an error of
 * sqrt(B x rate); an object count shares its bytes' relative error. 0 at
 * rate 1 (every allocation recorded). v: the row's four metrics. */
double ap_sampling_error(const int64_t v[AP_NMETRICS], int metric, int64_t rate);
/* One line for a report's totals: how many samples at what rate, and the
 * allocator's exact in-use bytes beside the estimate when the dump has
 * them. malloc'd. */
char *ap_estimate_note(const ap_profile *p);
/* The same in JSON: , "samples": N, "exact_inuse_bytes": X|null */
void ap_json_estimate(FILE *out, const ap_profile *p);
extern const char *const ap_by_names[4];

/* Whether a metric counts bytes (else objects). */
static inline bool ap_metric_is_bytes(int m)
{
    return m == AP_INUSE_BYTES || m == AP_ALLOC_BYTES;
}

/* JSON: {"inuse_bytes": .., "inuse_objects": .., "alloc_bytes": .., "alloc_objects": ..} */
void ap_json_metrics(FILE *out, const int64_t *v);
/* JSON members naming a row's key ("name", "file", "line", "tid", "stack"...),
 * without braces. */
void ap_json_row_key(FILE *out, const ap_report *r, const ap_row *row, const ap_file *f);
/* JSON array of symbolic frames, innermost first. */
void ap_json_frames(FILE *out, const ap_line *const *sym, uint32_t n);
/* JSON members "process" and "dump" describing a profile, without braces. */
void ap_json_profile_head(FILE *out, const ap_profile *p);
char *ap_process_choice(const ap_profile *p);
/* One text line: "process 1 (pid 1234) /bin/prog, dump 3 (exit, seq 3, 1.20 s)". */
void ap_print_profile_head(FILE *out, const ap_profile *p);

/* Formats a metric value in its unit. */
char *ap_fmt_metric(int metric, int64_t v, bool plus, char *buf);

/* Opens FILE[@DUMP], selects the dump (-p/-d), loads and symbolizes it. */
ap_file *ap_open_profile(const char *spec, const ap_opts *o, int64_t dump_override,
                         ap_symbolizer *sym, ap_profile *out);

#endif
