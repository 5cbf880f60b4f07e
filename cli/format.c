/*
 * format.c — human units, size parsing, JSON strings and aligned tables
 * (see format.h for the conventions).
 */
#include "format.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

static char *fmt_scaled(int64_t v, bool plus, const char *const *units, double base,
                        int64_t plain_max, const char *sep, char *buf)
{
    const char *sign = v < 0 ? "-" : (plus && v > 0 ? "+" : "");
    double a = v < 0 ? -(double)v : (double)v;
    if (a <= (double)plain_max) {
        snprintf(buf, AP_FMT_LEN, "%s%.0f%s%s", sign, a, units[0][0] ? sep : "", units[0]);
        return buf;
    }
    int u = 0;
    while (a >= base && units[u + 1]) {
        a /= base;
        u++;
    }
    /* Three significant digits; rounding may carry to the next unit. */
    if (a >= 999.5 && units[u + 1]) {
        a /= base;
        u++;
    }
    const char *f = a < 9.995 ? "%s%.2f%s%s" : a < 99.95 ? "%s%.1f%s%s" : "%s%.0f%s%s";
    snprintf(buf, AP_FMT_LEN, f, sign, a, sep, units[u]);
    return buf;
}

char *ap_fmt_bytes(int64_t v, bool plus, char buf[AP_FMT_LEN])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", NULL};
    return fmt_scaled(v, plus, units, 1024.0, 1023, " ", buf);
}

char *ap_fmt_count(int64_t v, bool plus, char buf[AP_FMT_LEN])
{
    static const char *const units[] = {"", "k", "M", "G", "T", "P", "E", NULL};
    return fmt_scaled(v, plus, units, 1000.0, 99999, "", buf);
}

char *ap_fmt_percent(double part, double whole, char buf[AP_FMT_LEN])
{
    double p = whole != 0 ? 100.0 * part / whole : 0.0;
    snprintf(buf, AP_FMT_LEN, "%.2f%%", p);
    return buf;
}

char *ap_fmt_time(double t, char buf[AP_FMT_LEN])
{
    time_t s = (time_t)t;
    struct tm tm;
    if (!localtime_r(&s, &tm) || !strftime(buf, AP_FMT_LEN, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, AP_FMT_LEN, "%.3f", t);
    return buf;
}

bool ap_parse_uint(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    uint64_t v = 0;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (*s)
        return false;
    *out = v;
    return true;
}

static int size_shift(const char *suffix)
{
    static const char letters[] = "KMGTPE";
    if (!*suffix || !strcasecmp(suffix, "B"))
        return 0;
    const char *p = strchr(letters, toupper((unsigned char)suffix[0]));
    if (!p || !*p)
        return -1;
    const char *rest = suffix + 1;
    if (*rest && strcasecmp(rest, "B") && strcasecmp(rest, "iB"))
        return -1;
    return 10 * (int)(p - letters + 1);
}

bool ap_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    while (*end == ' ')
        end++;
    int shift = size_shift(end);
    if (shift < 0 || (shift && v > (UINT64_MAX >> shift)))
        return false;
    *out = (uint64_t)v << shift;
    return true;
}

void ap_json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

void ap_table_init(ap_table *t, size_t cols)
{
    memset(t, 0, sizeof *t);
    t->cols = cols;
    t->left = (int)cols - 1;
}

void ap_table_row(ap_table *t, const char *const *cells)
{
    ap_grow(&t->cells, &t->cap, (t->rows + 1) * t->cols, sizeof *t->cells);
    for (size_t c = 0; c < t->cols; c++)
        t->cells[t->rows * t->cols + c] = ap_xstrdup(cells[c] ? cells[c] : "");
    t->rows++;
}

/* Display width: counts UTF-8 lead bytes only. */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void ap_table_print(const ap_table *t, FILE *f, const char *indent)
{
    size_t *w = ap_xcalloc(t->cols, sizeof *w);
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t n = text_width(t->cells[r * t->cols + c]);
            if (n > w[c])
                w[c] = n;
        }
    for (size_t r = 0; r < t->rows; r++) {
        fputs(indent ? indent : "", f);
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * t->cols + c];
            size_t pad = w[c] - text_width(s);
            bool last = c + 1 == t->cols;
            if ((int)c == t->left)
                fprintf(f, "%s%*s", s, last ? 0 : (int)pad, "");
            else
                fprintf(f, "%*s%s", (int)pad, "", s);
            if (!last)
                fputs("  ", f);
        }
        fputc('\n', f);
    }
    free(w);
}

void ap_table_free(ap_table *t)
{
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}

static const char *json_skip(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    return s;
}

static void utf8_put(ap_buf *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    }
    ap_buf_put(b, u, n);
}

/* Parses one JSON string at s (at its quote); returns the end or NULL. */
static const char *json_string(const char *s, ap_buf *b)
{
    if (*s++ != '"')
        return NULL;
    ap_buf_put(b, "", 0);
    for (; *s != '"'; s++) {
        if (!*s)
            return NULL;
        if (*s != '\\') {
            ap_buf_put(b, s, 1);
            continue;
        }
        s++;
        static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
        const char *e = *s ? strchr(from, *s) : NULL;
        unsigned cp;
        if (e)
            ap_buf_put(b, &to[e - from], 1);
        else if (*s == 'u' && sscanf(s + 1, "%4x", &cp) == 1 && isxdigit((unsigned char)s[4])) {
            utf8_put(b, cp);
            s += 4;
        } else
            return NULL;
    }
    return s + 1;
}

char **ap_json_string_array(const char *s)
{
    if (!s)
        return NULL;
    s = json_skip(s);
    if (*s++ != '[')
        return NULL;
    char **v = NULL;
    size_t n = 0, cap = 0;
    s = json_skip(s);
    while (*s != ']') {
        ap_buf b = {0};
        s = json_string(s, &b);
        ap_grow(&v, &cap, n + 2, sizeof *v);
        v[n++] = b.p;
        v[n] = NULL;
        if (!s)
            break;
        s = json_skip(s);
        if (*s == ',')
            s = json_skip(s + 1);
        else if (*s != ']')
            s = NULL;
        if (!s)
            break;
    }
    if (!s || *json_skip(s + 1)) {
        ap_strv_free(v);
        return NULL;
    }
    if (!v)
        v = ap_xcalloc(1, sizeof *v);
    return v;
}

void ap_strv_free(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

char *ap_shell_join(char *const *v)
{
    ap_buf b = {0};
    ap_buf_put(&b, "", 0);
    for (size_t i = 0; v[i]; i++) {
        if (i)
            ap_buf_puts(&b, " ");
        if (*v[i] && !strpbrk(v[i], " \t\n'\"\\$`")) {
            ap_buf_puts(&b, v[i]);
            continue;
        }
        ap_buf_puts(&b, "'");
        for (const char *p = v[i]; *p; p++)
            ap_buf_puts(&b, *p == '\'' ? "'\\''" : (char[]){*p, 0});
        ap_buf_puts(&b, "'");
    }
    return b.p;
}
