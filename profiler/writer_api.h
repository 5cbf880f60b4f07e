/*
 * writer_api.h — the boundary between liballocprof.so and its SQLite writer
 * plugin, liballocprof-writer.so (db_writer.c + a private static SQLite).
 *
 * The writer is a separate object, dlopen'ed (RTLD_LOCAL) only when
 * profiling is on, so a program that uses the library as an allocator alone
 * maps neither SQLite nor the libm it needs (~0.5 MB of RSS). The host hands
 * the plugin the few functions it needs (ap_host_t); the plugin hands back
 * its entry points (ap_writer_t) from its one exported symbol.
 */
#ifndef AP_WRITER_API_H
#define AP_WRITER_API_H

#include "profiler_internal.h"

#pragma GCC visibility push(hidden)

typedef struct {
    uint32_t (*bucket_count)(void);
    ap_bucket_t *(*bucket_at)(uint32_t idx);
    uint32_t (*stack_count)(void);
    const uint64_t *(*stack_frames)(uint32_t id, int *depth);
    uint32_t (*thread_count)(void);
    ap_thread_rec_t *(*thread_at)(uint32_t i);
    void (*stats_get)(ap_stats_t *st);
    void *(*malloc)(size_t n);
    void (*free)(void *p);
    void *(*realloc)(void *p, size_t n);
    void *(*calloc)(size_t n, size_t size);
    size_t (*usable_size)(const void *p);
    const ap_prof_config_t *cfg;
    /* every descriptor SQLite opens goes through these (fdguard.c) */
    int (*fd_adopt)(int fd);
    int (*fd_check)(int fd);
    int (*fd_close)(int fd);
    uint64_t (*fd_lost)(void);       /* checks every descriptor first */
    uint64_t (*fd_lost_count)(void); /* no check */
} ap_host_t;

typedef struct {
    void (*process_info)(ap_process_info_t *pi, double now);
    int (*open)(ap_db_t **db, const char *path, char *err, size_t errlen);
    int (*add_process)(ap_db_t *db, const ap_process_info_t *pi, char *err, size_t errlen);
    /* the state now, or (at != NULL) the state a peak snapshot holds */
    int (*write_dump)(ap_db_t *db, const char *reason, double now, bool at_exit,
                      const ap_peak_snap_t *at, char *err, size_t errlen);
    /* write_dump: 0, -1 (the dump failed), or -2 (the profile cannot be
     * opened: the process cannot be profiled further). Every call opens the
     * profile and closes it again (open leaves its connection to the
     * add_process that follows it): no descriptor is held between calls. */
    void (*close)(ap_db_t *db); /* frees the handle */
} ap_writer_t;

#define AP_WRITER_ENTRY "allocprof_writer_entry"
typedef const ap_writer_t *(*ap_writer_entry_fn)(const ap_host_t *host);

#pragma GCC visibility pop

#endif
