/*
 * cli.h — shared declarations of the allocprof command's files.
 */
#ifndef AP_CLI_H
#define AP_CLI_H

#include <stdint.h>

int ap_cmd_run(int argc, char **argv);
int ap_cmd_dump(int argc, char **argv);
/* Sends pid the dump signal and waits up to timeout_ms for a new 'request'
 * dump of it in db_path: 0 when it landed, 1 when it did not, -1 (errno)
 * when the signal could not be sent. */
int ap_request_dump(int pid, const char *db_path, int sig, int timeout_ms);
/* The dump signal a profiled program takes, from its ALLOCPROF_SIGNAL value
 * (NULL or not a positive number: the library's default, SIGRTMIN+6). */
int ap_dump_signal(const char *value);
int ap_cmd_list(int argc, char **argv);
int ap_cmd_top(int argc, char **argv);
int ap_cmd_diff(int argc, char **argv);
int ap_cmd_leaks(int argc, char **argv);
int ap_cmd_stats(int argc, char **argv);
int ap_cmd_report(int argc, char **argv);
int ap_cmd_flamegraph(int argc, char **argv);
int ap_cmd_pprof(int argc, char **argv);

/* "dir/prof.db", dump 41 -> "dir/prof.dump41.svg": a report's default output
 * file names its dump, so reports of two dumps do not overwrite each other;
 * dump -1 (a report of every dump) -> "dir/prof.html". */
char *ap_default_output(const char *path, int64_t dump, const char *ext);

/* Prints "allocprof: <message>" and a newline on stderr. */
void ap_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Path of liballocprof.so: $ALLOCPROF_LIB, else next to this executable
 * (build tree or install tree). NULL when not found. */
const char *ap_cli_find_library(void);

#endif
