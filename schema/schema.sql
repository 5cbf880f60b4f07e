-- allocprof profile database, schema version 2.
-- Written by liballocprof.so (profiler/db_writer.c), read by the allocprof
-- command (cli/). One file may hold several processes (a program, its forked
-- children, programs they exec), each with its own dumps. Table by table:
-- docs/schema.md. The version is PRAGMA user_version; readers refuse a newer
-- one. Every statement is IF NOT EXISTS, so a version that only adds tables
-- needs no migration: the writer runs this file again on an older profile
-- and raises its version (1 -> 2 added process_memory). A change to an
-- existing table would need a migration file in schema/migrations/NNN.sql.

-- Key/value facts about the file: 'schema_version', 'writer' (library version),
-- 'lsan_default_suppressions:<process id>' (the text a program's
-- __lsan_default_suppressions returned, for `leaks`).
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per profiled process.
CREATE TABLE IF NOT EXISTS process (
    id          INTEGER PRIMARY KEY,       -- unique in this file
    pid         INTEGER NOT NULL,
    ppid        INTEGER NOT NULL,
    parent_id   INTEGER REFERENCES process(id), -- the parent's row when it is in this file (fork)
    exe         TEXT NOT NULL,             -- /proc/self/exe at start
    cmdline     TEXT NOT NULL,             -- JSON array of the arguments
    build_id    TEXT,                      -- hex GNU build id of the executable, NULL if none
    start_time  REAL NOT NULL,             -- Unix time, seconds
    rate        INTEGER NOT NULL,          -- mean sampling interval in bytes; 1 = every allocation
    end_time    REAL                       -- set by the exit dump
);

-- Executable segments of the objects loaded in a process, for symbolization
-- outside the process. A frame address A belongs to the row with
-- start <= A < end; its address inside the ELF file is A - bias.
CREATE TABLE IF NOT EXISTS mapping (
    process_id  INTEGER NOT NULL REFERENCES process(id),
    start       INTEGER NOT NULL,          -- first address of the segment
    end         INTEGER NOT NULL,          -- one past its last address
    file_offset INTEGER NOT NULL,          -- offset of the segment in the file
    bias        INTEGER NOT NULL,          -- load bias (dlpi_addr)
    path        TEXT NOT NULL,             -- absolute path, or a name such as [vdso]
    build_id    TEXT,                      -- hex GNU build id, NULL if none
    PRIMARY KEY (process_id, start)
) WITHOUT ROWID;

-- Threads seen allocating.
CREATE TABLE IF NOT EXISTS thread (
    process_id  INTEGER NOT NULL REFERENCES process(id),
    tid         INTEGER NOT NULL,          -- kernel thread id
    name        TEXT,                      -- from /proc/self/task/TID/comm at first sight
    PRIMARY KEY (process_id, tid)
) WITHOUT ROWID;

-- Distinct call stacks, innermost frame first. frames is a BLOB of
-- little-endian 64-bit addresses: the first is the allocation call site's
-- return address inside the caller of malloc; all are return addresses
-- (symbolize A - 1 to land inside the call instruction).
CREATE TABLE IF NOT EXISTS stack (
    process_id  INTEGER NOT NULL REFERENCES process(id),
    stack_id    INTEGER NOT NULL,          -- the process's own id
    depth       INTEGER NOT NULL,
    frames      BLOB NOT NULL,
    PRIMARY KEY (process_id, stack_id)
);

-- A snapshot of the process's profile.
CREATE TABLE IF NOT EXISTS dump (
    id            INTEGER PRIMARY KEY,
    process_id    INTEGER NOT NULL REFERENCES process(id),
    seq           INTEGER NOT NULL,        -- 1, 2, ... within the process
    time          REAL NOT NULL,           -- Unix time, seconds
    reason        TEXT NOT NULL CHECK (reason IN ('exit', 'request', 'interval', 'peak')),
    inuse_bytes   INTEGER NOT NULL,        -- estimated bytes in use (sum over buckets)
    inuse_objects INTEGER NOT NULL,
    alloc_bytes   INTEGER NOT NULL,        -- estimated bytes allocated since start
    alloc_objects INTEGER NOT NULL,
    samples       INTEGER NOT NULL,        -- sampled allocations since start
    UNIQUE (process_id, seq)
);

-- Per (stack, thread) counters, cumulative since the process started, as
-- unbiased estimates (docs/sampling.md). A dump stores only the buckets that
-- changed since the previous dump of the same process: the state at dump
-- seq N is, for each (stack_id, tid), its row with the greatest seq <= N.
-- In use = alloc - free.
CREATE TABLE IF NOT EXISTS bucket (
    dump_id        INTEGER NOT NULL REFERENCES dump(id),
    stack_id       INTEGER NOT NULL,
    tid            INTEGER NOT NULL,
    alloc_objects  INTEGER NOT NULL,
    alloc_bytes    INTEGER NOT NULL,       -- requested bytes
    free_objects   INTEGER NOT NULL,
    free_bytes     INTEGER NOT NULL,
    alloc_class_bytes INTEGER NOT NULL,    -- bytes after size-class rounding
    samples        INTEGER NOT NULL,       -- raw sampled allocations
    PRIMARY KEY (dump_id, stack_id, tid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bucket_stack ON bucket (stack_id, tid);

-- The allocator's statistics at each dump (exact, not sampled).
CREATE TABLE IF NOT EXISTS alloc_stats (
    dump_id         INTEGER PRIMARY KEY REFERENCES dump(id),
    inuse_bytes     INTEGER NOT NULL,
    small_bytes     INTEGER NOT NULL,
    large_bytes     INTEGER NOT NULL,
    huge_bytes      INTEGER NOT NULL,
    mapped_bytes    INTEGER NOT NULL,
    free_bytes      INTEGER NOT NULL,      -- free pages still resident
    returned_bytes  INTEGER NOT NULL,      -- free pages released to the OS
    cached_bytes    INTEGER NOT NULL,      -- objects in thread caches and central lists
    metadata_bytes  INTEGER NOT NULL,
    released_total  INTEGER NOT NULL       -- bytes ever released to the OS
);

-- The process's memory as the kernel counts it (/proc/self/status, read when
-- the dump was written; for a peak dump that is a few milliseconds after its
-- snapshot). Since schema version 2; readers treat a missing table or row as
-- unknown.
CREATE TABLE IF NOT EXISTS process_memory (
    dump_id         INTEGER PRIMARY KEY REFERENCES dump(id),
    rss_bytes       INTEGER NOT NULL,      -- resident set (VmRSS)
    hwm_bytes       INTEGER NOT NULL       -- its high-water mark since start (VmHWM)
);

CREATE TABLE IF NOT EXISTS class_stats (
    dump_id         INTEGER NOT NULL REFERENCES dump(id),
    class           INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    inuse_objects   INTEGER NOT NULL,
    cached_objects  INTEGER NOT NULL,
    central_objects INTEGER NOT NULL,
    spans           INTEGER NOT NULL,
    span_bytes      INTEGER NOT NULL,
    PRIMARY KEY (dump_id, class)
) WITHOUT ROWID;

-- Symbol cache, filled by the allocprof command (never by the library).
-- One row per (object, address) per inline level; depth 0 is the outermost
-- function containing the address, higher depths are inlined callees.
CREATE TABLE IF NOT EXISTS symbol (
    build_key   TEXT NOT NULL,             -- build id, or "path:size:mtime" without one
    address     INTEGER NOT NULL,          -- address inside the ELF file (A - 1 - bias)
    depth       INTEGER NOT NULL,
    function    TEXT,                      -- demangled; NULL if unknown
    file        TEXT,
    line        INTEGER,
    PRIMARY KEY (build_key, address, depth)
) WITHOUT ROWID;
