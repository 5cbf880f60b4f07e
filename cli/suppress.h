/*
 * suppress.h — leak suppressions in LeakSanitizer's format (suppress.c).
 */
#ifndef AP_SUPPRESS_H
#define AP_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

typedef struct ap_supp_rule {
    char *pattern;      /* after "leak:" */
    const char *origin; /* "built-in", the program's, or a file name (not owned) */
    /* what it suppressed in one report */
    size_t stacks;
    int64_t bytes, objects;
} ap_supp_rule;

typedef struct ap_supp {
    ap_supp_rule *rules;
    size_t n;
} ap_supp;

/* The built-in list (leaks every program has). */
extern const char ap_supp_builtin[];

void ap_supp_init(ap_supp *s);
void ap_supp_free(ap_supp *s);
/* Adds the rules of a suppression text; origin names it in messages and
 * must outlive s. 0, or -1 after one error line. */
int ap_supp_add_text(ap_supp *s, const char *text, const char *origin);
int ap_supp_add_file(ap_supp *s, const char *path);
/* LSan's pattern match of one name. */
bool ap_supp_match(const char *pattern, const char *name);
/* The first rule that matches any frame (function name, source file), or NULL. */
const ap_supp_rule *ap_supp_find(ap_supp *s, const ap_line *const *frames, uint32_t n);

#endif
