/*
 * suppress.c — leak suppressions in LeakSanitizer's format, for `leaks`.
 *
 * A suppression list is lines of "leak:PATTERN" ('#' starts a comment;
 * blank lines are skipped). As in LSan, PATTERN matches a stack when it
 * matches any frame's function name or source file (or, for a frame with no
 * symbol, the module its marker names): '*' matches any run of characters,
 * a leading '^' and a trailing '$' anchor the match, and otherwise the
 * pattern may match anywhere in the name.
 *
 * Three sources, in this order: the built-in list (what every program
 * leaks by design: the dynamic loader's structures, libc's stdio buffers,
 * locale, iconv and time-zone caches), the program's own
 * __lsan_default_suppressions (the library calls it at start-up and stores
 * its text in the profile, as heaptrack honours it), and the files given
 * with --suppressions. A suppressed stack is not listed as a leak; the
 * report counts what each pattern suppressed.
 */
#include "suppress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

const char ap_supp_builtin[] = "# the dynamic loader: link maps, TLS, search paths\n"
                               "leak:^_dl_\n"
                               "leak:ld-linux\n"
                               "# libc: stdio buffers, locale data, iconv modules, time zones\n"
                               "leak:^_IO_file_doallocate$\n"
                               "leak:^_nl_\n"
                               "leak:^setlocale$\n"
                               "leak:^__gconv\n"
                               "leak:^__tzfile_read$\n";

void ap_supp_init(ap_supp *s)
{
    memset(s, 0, sizeof *s);
}

void ap_supp_free(ap_supp *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->rules[i].pattern);
    free(s->rules);
    memset(s, 0, sizeof *s);
}

int ap_supp_add_text(ap_supp *s, const char *text, const char *origin)
{
    size_t cap = s->n;
    int lineno = 0;
    for (const char *p = text; p && *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        lineno++;
        char *line = ap_xasprintf("%.*s", (int)len, p);
        p = end ? end + 1 : NULL;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *a = line, *z = line + strlen(line);
        while (*a == ' ' || *a == '\t' || *a == '\r')
            a++;
        while (z > a && (z[-1] == ' ' || z[-1] == '\t' || z[-1] == '\r'))
            *--z = 0;
        if (!*a) {
            free(line);
            continue;
        }
        if (strncmp(a, "leak:", 5) || !a[5]) {
            ap_cli_error("%s:%d: '%s' is not a suppression (expected leak:PATTERN)", origin, lineno,
                         a);
            free(line);
            return -1;
        }
        ap_grow(&s->rules, &cap, s->n + 1, sizeof *s->rules);
        s->rules[s->n++] = (ap_supp_rule){ap_xstrdup(a + 5), origin, 0, 0, 0};
        free(line);
    }
    return 0;
}

int ap_supp_add_file(ap_supp *s, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        ap_cli_error("leaks: --suppressions %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0, n = 0;
    char chunk[4096];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) {
        ap_grow(&buf, &cap, n + r + 1, 1);
        memcpy(buf + n, chunk, r);
        n += r;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        ap_cli_error("leaks: --suppressions %s: read error", path);
        free(buf);
        return -1;
    }
    if (buf)
        buf[n] = 0;
    int rc = ap_supp_add_text(s, buf ? buf : "", path);
    free(buf);
    return rc;
}

/* LSan's template match: '*' any run, leading '^' / trailing '$' anchors. */
static bool match_at(const char *pat, const char *s, bool anchored_end)
{
    for (; *pat; pat++, s++) {
        if (*pat == '*') {
            while (pat[1] == '*')
                pat++;
            if (!pat[1] && !anchored_end)
                return true;
            for (const char *t = s;; t++) {
                if (match_at(pat + 1, t, anchored_end))
                    return true;
                if (!*t)
                    return false;
            }
        }
        if (*pat == '$' && !pat[1] && anchored_end)
            return !*s;
        if (!*s || *pat != *s)
            return false;
    }
    return !anchored_end || !*s;
}

bool ap_supp_match(const char *pattern, const char *name)
{
    if (!name || !*name)
        return false;
    size_t len = strlen(pattern);
    bool end = len > 0 && pattern[len - 1] == '$';
    char *pat = ap_xasprintf("%.*s", (int)(end ? len - 1 : len), pattern);
    bool ok = false;
    if (pat[0] == '^') {
        ok = match_at(pat + 1, name, end);
    } else {
        for (const char *s = name; !ok; s++) {
            ok = match_at(pat, s, end);
            if (!*s)
                break;
        }
    }
    free(pat);
    return ok;
}

const ap_supp_rule *ap_supp_find(ap_supp *s, const ap_line *const *frames, uint32_t n)
{
    for (size_t r = 0; r < s->n; r++)
        for (uint32_t i = 0; i < n; i++) {
            const ap_func *f = frames[i]->func;
            const char *file = f->file ? strrchr(f->file, '/') : NULL;
            if (ap_supp_match(s->rules[r].pattern, f->name) ||
                (f->file && ap_supp_match(s->rules[r].pattern, file ? file + 1 : f->file)) ||
                (f->file && ap_supp_match(s->rules[r].pattern, f->file)))
                return &s->rules[r];
        }
    return NULL;
}
