/*
 * cmd_report.c — `allocprof report FILE`: one self-contained HTML file to
 * explore a profile in a browser (html_report.c writes it, cli/report/ is
 * its page). Works from file:// and makes no network request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "html_report.h"
#include "report.h"

static const char help[] =
    "usage: allocprof report FILE[@DUMP] [-o OUT.html] [-p PROCESS] [-d DUMP]\n"
    "\n"
    "Writes one self-contained HTML file (data, script and style inline; no network\n"
    "request; opens from file://): a timeline of in-use memory over the dumps, by the\n"
    "top sites, with the allocator's exact figures and the process's RSS; a flame\n"
    "graph of the selected dump (in-use or allocated, bytes or objects; search,\n"
    "zoom, a thread filter), or of the difference between two dumps; tables of\n"
    "functions, leaks at exit, threads, processes and the allocator's statistics.\n"
    "Click a dump on the timeline to select it, shift-click a second to compare.\n" AP_HELP_CHOICE
    "\n"
    "  -o, --output OUT   output file (default: FILE with .html)\n"
    "  -p, --process ID   the process the page opens on ('allocprof list')\n"
    "  -d, --dump ID      the dump the page opens on (also FILE@ID)\n"
    "  -h, --help         this text\n";

int ap_cmd_report(int argc, char **argv)
{
    ap_opts o;
    int r = ap_parse_opts(argc, argv, AP_OPT_SELECT | AP_OPT_OUT, 1, 1, help, &o);
    if (r)
        return r > 0 ? 0 : 2;
    int64_t at;
    char *path = ap_split_dump_spec(o.files[0], &at);
    ap_file *f = ap_file_open(path);
    if (!f) {
        free(path);
        return 1;
    }
    char *out = o.out ? ap_xstrdup(o.out) : ap_default_output(path, -1, ".html");
    if (!strcmp(out, "-")) {
        ap_cli_error("report: -o -: the report is a file (give its name)");
        r = 2;
    } else {
        r = ap_html_report(f, o.process, at >= 0 ? at : o.dump, out);
        if (r == 0)
            fprintf(stderr, "allocprof: wrote %s (open it in a browser)\n", out);
    }
    free(out);
    free(path);
    ap_file_close(f);
    return r;
}
