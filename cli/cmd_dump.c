/*
 * cmd_dump.c — `allocprof dump PID`: asks a running profiled program for a
 * heap dump and waits until it is in the database.
 *
 * Protocol: profiler/dump_protocol.h. We find the target's database from
 * ALLOCPROF_OUTPUT in /proc/PID/environ, count its request dumps, send the
 * signal with the token (to the library's dump thread when it has one, else
 * to the process, again every second while no dump thread answers) and
 * poll until one more request dump appears (10 s at most).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../profiler/dump_protocol.h"
#include "cli.h"

/* Value of NAME in /proc/PID/environ, or NULL. */
static char *target_env(int pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return NULL;
    size_t len = strlen(name);
    char *line = NULL, *val = NULL;
    size_t cap = 0;
    while (getdelim(&line, &cap, 0, f) > 0)
        if (!strncmp(line, name, len) && line[len] == '=') {
            val = strdup(line + len + 1);
            break;
        }
    free(line);
    fclose(f);
    return val;
}

static int is_profiled(int pid)
{
    char path[64], line[4096];
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int found = 0;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "liballocprof.so") != NULL;
    fclose(f);
    return found;
}

/* Number of 'request' dumps of pid in db (-1 if unreadable). */
static long count_requests(const char *db_path, int pid)
{
    sqlite3 *db;
    long n = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT count(*) FROM dump d JOIN process p ON d.process_id = p.id"
                               " WHERE p.pid = ? AND d.reason = 'request'",
                               -1, &st, 0) == SQLITE_OK) {
            sqlite3_bind_int(st, 1, pid);
            if (sqlite3_step(st) == SQLITE_ROW)
                n = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return n;
}

int ap_dump_signal(const char *value)
{
    int s = value ? atoi(value) : 0;
    return s > 0 ? s : AP_DUMP_SIGNAL_DEFAULT;
}

/* The library's dump thread in pid, or 0. */
static int dump_thread(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int tid = 0;
    while (!tid && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char comm_path[320], comm[32] = {0};
        snprintf(comm_path, sizeof comm_path, "/proc/%d/task/%s/comm", pid, e->d_name);
        FILE *f = fopen(comm_path, "re");
        if (f) {
            if (fgets(comm, sizeof comm, f) && !strncmp(comm, AP_DUMP_THREAD_NAME, 15))
                tid = atoi(e->d_name);
            fclose(f);
        }
    }
    closedir(d);
    return tid;
}

/* The dump signal with the request token: to the dump thread alone when
 * there is one (no program thread is interrupted), else to the process. */
static int send_request(int pid, int sig)
{
    union sigval v = {.sival_int = AP_DUMP_TOKEN};
    int tid = dump_thread(pid);
    if (tid) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_signo = sig;
        si.si_code = SI_QUEUE;
        si.si_pid = getpid();
        si.si_uid = getuid();
        si.si_value = v;
        if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &si) == 0)
            return 0;
    }
    return sigqueue((pid_t)pid, sig, v);
}

int ap_request_dump(int pid, const char *db_path, int sig, int timeout_ms)
{
    long before = count_requests(db_path, pid);
    if (send_request(pid, sig) != 0)
        return -1;
    for (int waited = 0; waited < timeout_ms && before >= 0; waited += 50) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (count_requests(db_path, pid) > before)
            return 0;
        /* a request that found no dump thread and could not start one (it
         * interrupted the allocator) starts it at the next sample: ask again */
        if (waited % 1000 == 950 && !dump_thread(pid) && send_request(pid, sig) != 0)
            return -1;
    }
    return 1;
}

static char *resolve_output(int pid, const char *out)
{
    if (out[0] == '/')
        return strdup(out);
    char cwd_link[64], cwd[PATH_MAX];
    snprintf(cwd_link, sizeof cwd_link, "/proc/%d/cwd", pid);
    ssize_t n = readlink(cwd_link, cwd, sizeof cwd - 1);
    if (n <= 0)
        return strdup(out);
    cwd[n] = 0;
    char *path;
    return asprintf(&path, "%s/%s", cwd, out) < 0 ? NULL : path;
}

int ap_cmd_dump(int argc, char **argv)
{
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: allocprof dump PID\n\nAsk the running program PID (started with "
               "allocprof run, or with LD_PRELOAD and ALLOCPROF_OUTPUT) for a heap dump.\n");
        return 0;
    }
    if (argc != 2) {
        ap_cli_error("dump: usage: allocprof dump PID");
        return 2;
    }
    char *end;
    long pid = strtol(argv[1], &end, 10);
    if (*end || pid <= 0 || pid > INT_MAX) {
        ap_cli_error("dump: %s: not a process id", argv[1]);
        return 2;
    }
    int prof = is_profiled((int)pid);
    if (prof < 0) {
        ap_cli_error("dump: %ld: no such process (or not ours to inspect)", pid);
        return 1;
    }
    char *out = target_env((int)pid, "ALLOCPROF_OUTPUT");
    if (!prof || !out || !*out) {
        ap_cli_error("dump: %ld: not profiled by allocprof", pid);
        free(out);
        return 1;
    }
    char *sigs = target_env((int)pid, "ALLOCPROF_SIGNAL");
    int sig = ap_dump_signal(sigs);
    free(sigs);
    char *db = resolve_output((int)pid, out);
    free(out);
    int rc = ap_request_dump((int)pid, db, sig, 10000);
    if (rc == 0) {
        fprintf(stderr, "allocprof: dump of %ld written to %s\n", pid, db);
        free(db);
        return 0;
    }
    if (rc < 0) {
        ap_cli_error("dump: %ld: %s", pid, strerror(errno));
        free(db);
        return 1;
    }
    ap_cli_error("dump: %ld: no dump appeared in %s within 10 s", pid, db);
    free(db);
    return 1;
}
