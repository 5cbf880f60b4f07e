/*
 * format.h — human units, size parsing, JSON strings and aligned tables for
 * the allocprof reports.
 *
 * Design: sizes are printed in binary units with three significant digits
 * ("0 B", "512 B", "1.50 KiB", "15.0 MiB", "150 GiB"), counts plainly up to
 * 99999 and then with k/M/G; parsing accepts the same suffixes and the short
 * forms users type (512K, 2M, 1g, 64KiB). A table is a grid of cells whose
 * columns are right-aligned except the last (a name), so reports line up
 * whatever the magnitudes.
 */
#ifndef AP_CLI_FORMAT_H
#define AP_CLI_FORMAT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define AP_FMT_LEN 32

/* Binary units, e.g. "1.50 MiB"; negative values keep their sign; plus adds a
 * '+' to positive values (for differences). Returns buf. */
char *ap_fmt_bytes(int64_t v, bool plus, char buf[AP_FMT_LEN]);
/* Counts, e.g. "1234", "123k", "4.57M". */
char *ap_fmt_count(int64_t v, bool plus, char buf[AP_FMT_LEN]);
/* Percentage with two decimals of part/whole ("0.00%" when whole is 0). */
char *ap_fmt_percent(double part, double whole, char buf[AP_FMT_LEN]);
/* Local time "YYYY-MM-DD HH:MM:SS" of a Unix time. */
char *ap_fmt_time(double t, char buf[AP_FMT_LEN]);

/* Parses "512", "512K", "2M", "1G", "64KiB", "3 MB" (binary multiples).
 * Returns false for anything else or an overflow. */
bool ap_parse_size(const char *s, uint64_t *out);
/* Parses a non-negative decimal integer. */
bool ap_parse_uint(const char *s, uint64_t *out);

/* Writes s as a JSON string literal (with quotes); NULL writes null. */
void ap_json_str(FILE *f, const char *s);

/* Aligned text table. */
typedef struct ap_table {
    char **cells; /* rows * cols */
    size_t rows, cols, cap;
    int left; /* the left-aligned column (default: the last), -1 for none */
} ap_table;

void ap_table_init(ap_table *t, size_t cols);
/* Appends a row of cols strings (copied). */
void ap_table_row(ap_table *t, const char *const *cells);
/* Prints with two spaces between columns, column t->left left-aligned (a
 * name), the others right-aligned; the first row is a header. */
void ap_table_print(const ap_table *t, FILE *f, const char *indent);
void ap_table_free(ap_table *t);

/* Parses a JSON array of strings (the process.cmdline column). Returns a
 * malloc'ed NULL-terminated vector (free with ap_strv_free), or NULL when s
 * is not such an array. */
char **ap_json_string_array(const char *s);
void ap_strv_free(char **v);
/* Joins a vector with spaces, quoting words with spaces or quotes as a shell
 * would show them; a malloc'ed string. */
char *ap_shell_join(char *const *v);

#endif
