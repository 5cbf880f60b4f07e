/*
 * html_report.h — `allocprof report`'s HTML file (html_report.c).
 */
#ifndef AP_CLI_HTML_REPORT_H
#define AP_CLI_HTML_REPORT_H

#include <stdint.h>

#include "profile.h"

/* Writes the report of every process in f (the data of the busiest
 * AP_REPORT_PROCESSES, and process_id's) to out_path, opening on process_id
 * (-1: the main process) and the dump a report would choose. The file is
 * written beside and renamed into place. 0, or 1 after an error line. */
int ap_html_report(ap_file *f, int64_t process_id, int64_t dump_id, const char *out_path);

#endif
