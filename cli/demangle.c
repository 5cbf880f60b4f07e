/*
 * demangle.c — readable names for C++ and Rust symbols.
 *
 * C++ (and Rust's legacy mangling, which is Itanium-shaped) go through the
 * C++ runtime's __cxa_demangle; for Rust legacy names the trailing hash
 * ("::h0123456789abcdef") is dropped and the $..$ escapes are undone, as
 * rustc-demangle's alternate form does. Rust v0 names ("_R...") are decoded
 * here by a small recursive-descent printer of the RFC 2603 grammar (paths,
 * generic arguments, basic and compound types, backrefs, consts); anything
 * it does not understand makes it give up, and the caller keeps the raw
 * name.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize.h"
#include "util.h"

char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* ---- Rust legacy -------------------------------------------------------- */

static bool is_rust_hash(const char *s, size_t n)
{
    if (n < 19 || strncmp(s + n - 19, "::h", 3))
        return false;
    for (size_t i = n - 16; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

static const char *rust_escape(const char *p, char *out)
{
    static const char *const esc[][2] = {{"$LT$", "<"}, {"$GT$", ">"}, {"$RF$", "&"},
                                         {"$BP$", "*"}, {"$C$", ","},  {"$SP$", "@"}};
    for (size_t i = 0; i < sizeof esc / sizeof *esc; i++)
        if (!strncmp(p, esc[i][0], strlen(esc[i][0]))) {
            strcpy(out, esc[i][1]);
            return p + strlen(esc[i][0]);
        }
    unsigned v;
    int used;
    if (sscanf(p, "$u%2x$%n", &v, &used) == 1 && used == 5 && v >= 0x20 && v < 0x7f) {
        out[0] = (char)v;
        out[1] = 0;
        return p + used;
    }
    return NULL;
}

static char *rust_legacy(char *dem)
{
    size_t n = strlen(dem);
    if (!is_rust_hash(dem, n))
        return dem;
    dem[n - 19] = 0;
    ap_buf b = {0};
    for (const char *p = dem; *p;) {
        char rep[2];
        const char *next = *p == '$' ? rust_escape(p, rep) : NULL;
        if (next) {
            ap_buf_puts(&b, rep);
            p = next;
        } else if (p[0] == '.' && p[1] == '.') {
            ap_buf_puts(&b, "::");
            p += 2;
        } else if (p[0] == '_' && p[1] == '$' && (p == dem || p[-1] == ':')) {
            p++; /* "_$LT$" at the start of a segment */
        } else {
            ap_buf_put(&b, p++, 1);
        }
    }
    free(dem);
    return b.p ? b.p : ap_xstrdup("");
}

/* ---- Rust v0 ----------------------------------------------------------- */

typedef struct v0 {
    const char *s; /* after "_R" */
    size_t pos, len;
    ap_buf out;
    int depth;
    bool bad;
} v0;

static void v0_path(v0 *d, bool value);
static void v0_type(v0 *d);

static char v0_peek(v0 *d)
{
    return d->pos < d->len ? d->s[d->pos] : 0;
}

static bool v0_eat(v0 *d, char c)
{
    if (v0_peek(d) != c)
        return false;
    d->pos++;
    return true;
}

static uint64_t v0_base62(v0 *d)
{
    if (v0_eat(d, '_'))
        return 0;
    uint64_t v = 0;
    for (char c; (c = v0_peek(d)) != '_';) {
        int dg = isdigit((unsigned char)c)   ? c - '0'
                 : islower((unsigned char)c) ? c - 'a' + 10
                 : isupper((unsigned char)c) ? c - 'A' + 36
                                             : -1;
        if (dg < 0 || v > UINT64_MAX / 62) {
            d->bad = true;
            return 0;
        }
        v = v * 62 + (uint64_t)dg;
        d->pos++;
    }
    d->pos++;
    return v + 1;
}

static uint64_t v0_opt62(v0 *d, char tag)
{
    return v0_eat(d, tag) ? v0_base62(d) + 1 : 0;
}

static uint64_t v0_decimal(v0 *d)
{
    uint64_t v = 0;
    if (!isdigit((unsigned char)v0_peek(d)))
        d->bad = true;
    if (v0_peek(d) == '0') { /* "0" alone: numbers have no leading zeros */
        d->pos++;
        return 0;
    }
    while (isdigit((unsigned char)v0_peek(d)) && v < (1u << 30))
        v = v * 10 + (uint64_t)(d->s[d->pos++] - '0');
    return v;
}

/* undisambiguated-identifier; returns a pointer into the symbol. */
static const char *v0_ident(v0 *d, size_t *n, bool *puny)
{
    *puny = v0_eat(d, 'u');
    uint64_t len = v0_decimal(d);
    v0_eat(d, '_');
    if (d->bad || len > d->len - d->pos) {
        d->bad = true;
        *n = 0;
        return "";
    }
    const char *p = d->s + d->pos;
    d->pos += len;
    *n = len;
    return p;
}

/* Runs f at a backref position and comes back. */
static void v0_backref(v0 *d, void (*f)(v0 *, bool), bool arg)
{
    uint64_t at = v0_base62(d);
    if (d->bad || at >= d->pos || ++d->depth > 64) {
        d->bad = true;
        return;
    }
    size_t save = d->pos;
    d->pos = at;
    f(d, arg);
    d->pos = save;
    d->depth--;
}

static void v0_type_arg(v0 *d, bool unused)
{
    v0_type(d);
}

static void v0_const(v0 *d)
{
    if (v0_eat(d, 'p')) {
        ap_buf_puts(&d->out, "_");
        return;
    }
    if (v0_peek(d) == 'B') {
        d->pos++;
        uint64_t at = v0_base62(d);
        if (d->bad || at >= d->pos) {
            d->bad = true;
            return;
        }
        size_t save = d->pos;
        d->pos = at;
        v0_const(d);
        d->pos = save;
        return;
    }
    char ty = v0_peek(d);
    d->pos++;
    bool neg = v0_eat(d, 'n');
    uint64_t v = 0;
    while (isxdigit((unsigned char)v0_peek(d)))
        v = v * 16 + (uint64_t)(isdigit((unsigned char)d->s[d->pos])
                                    ? d->s[d->pos] - '0'
                                    : (tolower((unsigned char)d->s[d->pos]) - 'a' + 10)),
        d->pos++;
    if (!v0_eat(d, '_'))
        d->bad = true;
    if (ty == 'b')
        ap_buf_puts(&d->out, v ? "true" : "false");
    else
        ap_buf_printf(&d->out, "%s%llu", neg ? "-" : "", (unsigned long long)v);
}

static void v0_generic_args(v0 *d, bool value)
{
    ap_buf_puts(&d->out, value ? "::<" : "<");
    for (int i = 0; !d->bad && !v0_eat(d, 'E'); i++) {
        if (d->pos >= d->len) {
            d->bad = true;
            break;
        }
        if (i)
            ap_buf_puts(&d->out, ", ");
        if (v0_eat(d, 'L')) {
            v0_base62(d);
            ap_buf_puts(&d->out, "'_");
        } else if (v0_eat(d, 'K')) {
            v0_const(d);
        } else {
            v0_type(d);
        }
    }
    ap_buf_puts(&d->out, ">");
}

static void v0_ident_out(v0 *d, char ns)
{
    uint64_t dis = v0_opt62(d, 's');
    size_t n;
    bool puny;
    const char *id = v0_ident(d, &n, &puny);
    if (ns) { /* special namespaces: {closure#N}, {shim:name#N}, {K#N}... */
        if (ns == 'C' || ns == 'S')
            ap_buf_printf(&d->out, "{%s", ns == 'C' ? "closure" : "shim");
        else
            ap_buf_printf(&d->out, "{%c", ns);
        if (n)
            ap_buf_printf(&d->out, ":%.*s", (int)n, id);
        ap_buf_printf(&d->out, "#%llu}", (unsigned long long)dis);
        return;
    }
    if (puny)
        ap_buf_puts(&d->out, "u");
    ap_buf_put(&d->out, id, n);
}

static void v0_path(v0 *d, bool value)
{
    if (++d->depth > 64 || d->pos >= d->len) {
        d->bad = true;
        return;
    }
    char c = d->s[d->pos++];
    switch (c) {
    case 'C': /* crate root */
        v0_ident_out(d, 0);
        break;
    case 'N': { /* nested */
        char ns = v0_peek(d);
        d->pos++;
        v0_path(d, value);
        ap_buf_puts(&d->out, "::");
        v0_ident_out(d, isupper((unsigned char)ns) ? ns : 0);
        break;
    }
    case 'M': /* inherent impl: <T> */
        v0_opt62(d, 's');
        {
            ap_buf b = d->out;
            d->out = (ap_buf){0};
            v0_path(d, false);
            ap_buf_free(&d->out);
            d->out = b;
        }
        ap_buf_puts(&d->out, "<");
        v0_type(d);
        ap_buf_puts(&d->out, ">");
        break;
    case 'X': /* trait impl: <T as Trait> */
        v0_opt62(d, 's');
        {
            ap_buf b = d->out;
            d->out = (ap_buf){0};
            v0_path(d, false);
            ap_buf_free(&d->out);
            d->out = b;
        }
        /* fall through */
    case 'Y': /* trait definition: <T as Trait> */
        ap_buf_puts(&d->out, "<");
        v0_type(d);
        ap_buf_puts(&d->out, " as ");
        v0_path(d, false);
        ap_buf_puts(&d->out, ">");
        break;
    case 'I': /* generic arguments */
        v0_path(d, value);
        v0_generic_args(d, value);
        break;
    case 'B':
        v0_backref(d, v0_path, value);
        break;
    default:
        d->bad = true;
    }
    d->depth--;
}

static const char *v0_basic(char c)
{
    switch (c) {
    case 'a':
        return "i8";
    case 'b':
        return "bool";
    case 'c':
        return "char";
    case 'd':
        return "f64";
    case 'e':
        return "str";
    case 'f':
        return "f32";
    case 'h':
        return "u8";
    case 'i':
        return "isize";
    case 'j':
        return "usize";
    case 'l':
        return "i32";
    case 'm':
        return "u32";
    case 'n':
        return "i128";
    case 'o':
        return "u128";
    case 's':
        return "i16";
    case 't':
        return "u16";
    case 'u':
        return "()";
    case 'v':
        return "...";
    case 'x':
        return "i64";
    case 'y':
        return "u64";
    case 'z':
        return "!";
    case 'p':
        return "_";
    default:
        return NULL;
    }
}

static int v0_list(v0 *d, const char *sep)
{
    int i = 0;
    for (; !d->bad && !v0_eat(d, 'E'); i++) {
        if (d->pos >= d->len)
            d->bad = true;
        else {
            if (i)
                ap_buf_puts(&d->out, sep);
            v0_type(d);
        }
    }
    return i;
}

static void v0_fnsig(v0 *d)
{
    v0_opt62(d, 'G');
    if (v0_eat(d, 'U'))
        ap_buf_puts(&d->out, "unsafe ");
    if (v0_eat(d, 'K')) {
        if (v0_eat(d, 'C'))
            ap_buf_puts(&d->out, "extern \"C\" ");
        else {
            size_t n;
            bool puny;
            const char *abi = v0_ident(d, &n, &puny);
            ap_buf_printf(&d->out, "extern \"%.*s\" ", (int)n, abi);
        }
    }
    ap_buf_puts(&d->out, "fn(");
    v0_list(d, ", ");
    ap_buf_puts(&d->out, ")");
    if (v0_peek(d) == 'u') {
        d->pos++;
        return;
    }
    ap_buf_puts(&d->out, " -> ");
    v0_type(d);
}

static void v0_dyn(v0 *d)
{
    v0_opt62(d, 'G');
    ap_buf_puts(&d->out, "dyn ");
    for (int i = 0; !d->bad && !v0_eat(d, 'E'); i++) {
        if (d->pos >= d->len) {
            d->bad = true;
            break;
        }
        if (i)
            ap_buf_puts(&d->out, " + ");
        v0_path(d, false);
        /* Associated type bindings join the trait's generic arguments. */
        bool open = false;
        while (!d->bad && v0_eat(d, 'p')) {
            size_t n;
            bool puny;
            const char *id = v0_ident(d, &n, &puny);
            if (!open && d->out.len && d->out.p[d->out.len - 1] == '>') {
                d->out.p[--d->out.len] = 0;
                ap_buf_puts(&d->out, ", ");
            } else {
                ap_buf_puts(&d->out, open ? ", " : "<");
            }
            open = true;
            ap_buf_printf(&d->out, "%.*s = ", (int)n, id);
            v0_type(d);
        }
        if (open)
            ap_buf_puts(&d->out, ">");
    }
    if (v0_eat(d, 'L'))
        v0_base62(d);
}

static void v0_type(v0 *d)
{
    if (++d->depth > 64 || d->pos >= d->len) {
        d->bad = true;
        return;
    }
    char c = d->s[d->pos];
    const char *basic = v0_basic(c);
    if (basic) {
        d->pos++;
        ap_buf_puts(&d->out, basic);
    } else {
        d->pos++;
        switch (c) {
        case 'R':
        case 'Q':
            ap_buf_puts(&d->out, c == 'R' ? "&" : "&mut ");
            if (v0_eat(d, 'L'))
                v0_base62(d);
            v0_type(d);
            break;
        case 'P':
        case 'O':
            ap_buf_puts(&d->out, c == 'P' ? "*const " : "*mut ");
            v0_type(d);
            break;
        case 'A':
        case 'S':
            ap_buf_puts(&d->out, "[");
            v0_type(d);
            if (c == 'A') {
                ap_buf_puts(&d->out, "; ");
                v0_const(d);
            }
            ap_buf_puts(&d->out, "]");
            break;
        case 'T': {
            ap_buf_puts(&d->out, "(");
            size_t at = d->out.len;
            int n = v0_list(d, ", ");
            ap_buf_puts(&d->out, n == 1 && d->out.len > at ? ",)" : ")");
            break;
        }
        case 'F':
            v0_fnsig(d);
            break;
        case 'D':
            v0_dyn(d);
            break;
        case 'B':
            v0_backref(d, v0_type_arg, false);
            break;
        default:
            d->pos--;
            v0_path(d, false);
        }
    }
    d->depth--;
}

static char *rust_v0(const char *sym)
{
    v0 d = {.s = sym + 2, .len = strlen(sym + 2)};
    if (isdigit((unsigned char)v0_peek(&d)))
        v0_decimal(&d); /* encoding version */
    v0_path(&d, true);
    if (d.bad || !d.out.p) {
        ap_buf_free(&d.out);
        return NULL;
    }
    return d.out.p; /* an instantiating crate may follow: not shown */
}

char *ap_demangle(const char *sym)
{
    if (!sym)
        return NULL;
    if (!strncmp(sym, "_R", 2))
        return rust_v0(sym);
    if (strncmp(sym, "_Z", 2))
        return NULL;
    int status = 0;
    char *dem = __cxa_demangle(sym, NULL, NULL, &status);
    if (status != 0 || !dem) {
        free(dem);
        return NULL;
    }
    return rust_legacy(dem);
}
