#!/usr/bin/env python3
"""test_cli.py — end-to-end tests of the allocprof command's reports.

Each case runs `allocprof` on profiles written by mkprofile (exact, known
allocation sites and figures; see mkprofile.c for the scenario) and checks
the right functions, lines and figures. usage:

    test_cli.py --allocprof PATH --mkprofile PATH CASE

Exit 0 passed, 1 failed, 77 skipped (go or the profiler library missing).
"""
import argparse
import gzip
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ARGS = None
TMP = None

# Figures of the scenario (variant a) at the exit dump of process 1.
INUSE_A = {"thread_epsilon": 1400, "leak_alpha": 1000, "inlined_helper": 320,
           "fixture::Widget::make(unsigned long)": 144, "recurse_zeta": 64}
ALLOC_A = dict(INUSE_A, big_gamma=1 << 20, temp_beta=20000)


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


def run(*args, rc=0, env=None):
    p = subprocess.run([ARGS.allocprof, *args], capture_output=True, text=True, env=env)
    if rc is not None and p.returncode != rc:
        raise Fail(f"allocprof {' '.join(args)}: exit {p.returncode}, want {rc}\n"
                   f"stdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def run_json(*args):
    return json.loads(run(*args, "--format", "json").stdout)


def make(name, *extra):
    """Writes TMP/name.db with mkprofile; returns (path, expectations)."""
    db = os.path.join(TMP, name + ".db")
    exp = os.path.join(TMP, name + ".json")
    subprocess.run([ARGS.mkprofile, db, "--expect", exp, *extra], check=True)
    with open(exp) as f:
        return db, json.load(f)


def flat(rows, metric="inuse_bytes"):
    return {r["name"]: r["flat"][metric] for r in rows if r["flat"][metric]}


# ---- cases ---------------------------------------------------------------

def at_exit(db, process=1):
    """FILE@ID of the process's exit dump: the figures the scenario's constants give (a
    report's default is the dump with the most in use when the last holds much less)"""
    con = sqlite3.connect(db)
    (dump,) = con.execute("SELECT id FROM dump WHERE process_id = ? AND reason = 'exit'",
                          (process,)).fetchone()
    con.close()
    return f"{db}@{dump}"


def case_list():
    db, _ = make("a")
    j = run_json("list", db)
    procs = j["processes"]
    check(len(procs) == 2, "two processes")
    p1, p2 = procs
    check(p2["parent_id"] == p1["id"], "child names its parent")
    check([d["reason"] for d in p1["dumps"]] == ["interval", "peak", "exit"], "reasons")
    d1, d3 = p1["dumps"][0], p1["dumps"][2]
    check(d1["inuse_bytes"] == 1000 + 20000 + (1 << 20) and d1["inuse_objects"] == 31, "dump 1")
    check(d3["inuse_bytes"] == 2928 and d3["inuse_objects"] == 27 and d3["samples"] == 48,
          "exit dump figures")
    check(p1["cmdline"][0].endswith("mkprofile"), "cmdline parsed")
    text = run("list", db).stdout
    check(re.search(r"\binterval\s+1\.02 MiB\s+31\b", text), "text list: " + text)
    check("(1 more process, each of which allocated less than 10% of the busiest one: 1.00 KiB "
          "in all, 0 with no dump; --all lists them)" in text, text)
    text = run("list", db, "--all").stdout
    check("forked from process 1" in text and "every allocation recorded" in text, text)


def case_top():
    db, exp = make("a")
    exit_db = at_exit(db)
    j = run_json("top", exit_db)
    rows = j["rows"]
    check([r["name"] for r in rows[:5]] == list(INUSE_A), f"order {[r['name'] for r in rows]}")
    check(flat(rows) == INUSE_A, f"figures {flat(rows)}")
    check(j["total"]["inuse_bytes"] == 2928 and j["dump"]["reason"] == "exit", "total, dump")
    for r in rows:
        if r["name"] in ("main", "scenario"):
            check(r["cum"]["inuse_bytes"] == 2928 - 1400, f"cum of {r['name']}")
    # alloc-bytes: the 1 MiB block first, then the temporaries
    j = run_json("top", exit_db, "--sort", "alloc-bytes", "-n", "2")
    check([(r["name"], r["flat"]["alloc_bytes"]) for r in j["rows"]] ==
          [("big_gamma", 1 << 20), ("temp_beta", 20000)], "alloc-bytes order")
    j = run_json("top", exit_db, "--sort", "alloc-objects", "-n", "0")
    check(flat(j["rows"], "alloc_objects")["temp_beta"] == 20, "alloc-objects")
    # recursion counts once in cum
    j = run_json("top", exit_db, "-n", "0")
    z = [r for r in j["rows"] if r["name"] == "recurse_zeta"][0]
    check(z["cum"]["inuse_bytes"] == 64, "recursion counted once")
    text = run("top", exit_db, "-n", "3").stdout
    check(re.search(r"1\.37 KiB\s+47\.81%\s+47\.81%\s+1\.37 KiB\s+47\.81%\s+thread_epsilon", text),
          text)
    check("showing 3 of" in text, text)


def case_top_lines():
    db, exp = make("a")
    rows = run_json("top", db, "--by", "line", "--sort", "alloc-bytes", "-n", "0")["rows"]
    got = {(r["name"], os.path.basename(r["file"] or ""), r["line"]) for r in rows}
    for name in ["leak_alpha", "thread_epsilon", "inlined_helper", "recurse_zeta",
                 "fixture::Widget::make(unsigned long)", "temp_beta", "big_gamma"]:
        e = exp["sites"][name]
        check((name, e["file"], e["line"]) in got, f"{name} at {e}: {sorted(got)}")
    text = run("top", db, "--by", "line").stdout
    check(f"leak_alpha mkprofile.c:{exp['sites']['leak_alpha']['line']}" in text, text)


def case_top_stack():
    db, exp = make("a")
    rows = run_json("top", at_exit(db), "--by", "stack", "-n", "0")["rows"]
    by = {r["stack"][0]["function"]: r for r in rows}
    inl = [(f["function"], f["line"]) for f in by["inlined_helper"]["stack"][:3]]
    s = exp["sites"]
    check(inl == [("inlined_helper", s["inlined_helper"]["line"]),
                  ("outer_delta", s["outer_delta"]["line"]), ("phase2", inl[2][1])],
          f"inline chain {inl}")
    zeta = [f["function"] for f in by["recurse_zeta"]["stack"][:5]]
    check(zeta == ["recurse_zeta"] * 4 + ["phase3"], f"recursion {zeta}")
    w = [f["function"] for f in by["fixture::Widget::make(unsigned long)"]["stack"][:3]]
    check(w == ["fixture::Widget::make(unsigned long)", "cxx_site", "widget_site"], str(w))
    check(by["thread_epsilon"]["flat"]["inuse_objects"] == 7, "epsilon objects")


def case_top_thread():
    db, _ = make("a")
    rows = run_json("top", at_exit(db), "--by", "thread", "--sort", "alloc-bytes")["rows"]
    names = {r["thread_name"]: r["flat"]["alloc_bytes"] for r in rows}
    check(names == {"mkprofile": sum(ALLOC_A.values()) - 1400, "worker": 1400}, str(names))
    text = run("top", at_exit(db), "--by", "thread").stdout
    check(re.search(r"thread \d+ \(worker\)", text), text)


def case_top_dumps():
    db, _ = make("a")
    dumps = run_json("list", db)["processes"][0]["dumps"]
    # dump 1: the temporaries are still held
    j = run_json("top", db, "-d", str(dumps[0]["id"]), "-n", "0")
    check(flat(j["rows"]) == {"big_gamma": 1 << 20, "temp_beta": 20000, "leak_alpha": 1000},
          str(flat(j["rows"])))
    # dump 2 stores only changed buckets: leak_alpha comes from dump 1's row
    j = run_json("top", f"{db}@{dumps[1]['id']}", "-n", "0")
    f = flat(j["rows"])
    check(f.get("leak_alpha") == 1000 and "temp_beta" not in f and f["big_gamma"] == 1 << 20,
          f"delta-only state: {f}")
    # process 2 (the forked child)
    j = run_json("top", db, "-p", "2")
    check(flat(j["rows"]) == {"child_site": 1024} and j["process"]["id"] == 2, str(j["rows"]))


def case_diff():
    a, _ = make("a")
    b, _ = make("b", "--variant", "b")
    j = run_json("diff", at_exit(a), at_exit(b))
    ch = [(r["name"], r["change"]["inuse_bytes"]) for r in j["rows"]]
    check(ch == [("leak_alpha", 2000), ("only_in_b", 1024), ("thread_epsilon", -1000)], str(ch))
    check(j["total"]["base"]["inuse_bytes"] == 2928 and
          j["total"]["new"]["inuse_bytes"] == 2928 + 2000 + 1024 - 1000, "totals")
    text = run("diff", at_exit(a), at_exit(b)).stdout
    check(re.search(r"\+1\.95 KiB\s+\+200\.00%\s+\S+\s+1000 B\s+2\.93 KiB\s+leak_alpha", text), text)
    check(re.search(r"-1000 B\s+-71\.43%\s+\S+\s+1\.37 KiB\s+400 B\s+thread_epsilon", text), text)
    # --by stack prints the whole stack under each row, as top does
    text = run("diff", at_exit(a), at_exit(b), "--by", "stack", "-n", "1").stdout
    check(re.search(r"leak_alpha [^\n]*\n\s+phase1 [^\n]*\n\s+scenario [^\n]*\n\s+main ", text),
          text)
    # two dumps of one file, both spellings
    d = run_json("list", a)["processes"][0]["dumps"]
    j1 = run_json("diff", f"{a}@{d[0]['id']}", f"{a}@{d[2]['id']}", "-n", "2")
    j2 = run_json("diff", a, "--base-dump", str(d[0]["id"]), "-d", str(d[2]["id"]), "-n", "2")
    ch = [(r["name"], r["change"]["inuse_bytes"]) for r in j1["rows"]]
    check(ch == [("big_gamma", -(1 << 20)), ("temp_beta", -20000)], str(ch))
    check(j1["rows"] == j2["rows"], "FILE@ID and --base-dump/-d agree")


def case_leaks():
    db, exp = make("a")
    j = run_json("leaks", db)
    check(j["dump"]["reason"] == "exit" and j["total"]["inuse_bytes"] == 2928, "exit dump")
    got = [(l["stack"][0]["function"], l["figures"]["inuse_bytes"]) for l in j["leaks"]]
    check(got == list(INUSE_A.items()), str(got))
    alpha = j["leaks"][1]["stack"]
    check([f["function"] for f in alpha[:4]] == ["leak_alpha", "phase1", "scenario", "main"],
          str(alpha))
    check(alpha[0]["line"] == exp["sites"]["leak_alpha"]["line"], "leak line")
    text = run("leaks", db).stdout
    check("Still in use at exit: 2.86 KiB in 27 objects from 5 call stacks" in text, text)
    check(re.search(r"#2\s+1000 B in 10 objects", text), text)
    j = run_json("leaks", db, "--min", "1K")
    check(len(j["leaks"]) == 1, "--min 1K keeps thread_epsilon only")
    j = run_json("leaks", db, "-p", "2")
    check([l["figures"]["inuse_bytes"] for l in j["leaks"]] == [1024], "child leaks")


def case_stats():
    db, _ = make("a")
    j = run_json("stats", db)
    s = j["alloc_stats"]
    check(s["inuse_bytes"] == 2928 and s["mapped_bytes"] == 8 << 20, str(s))
    c = {x["size"]: x["inuse_objects"] for x in j["classes"]}
    check(c[112] == 10 and c[208] == 7 and c[64] == 5, str(c))
    check([d["exact_inuse_bytes"] for d in j["dumps"]] == [1069576, 1051440, 2928], "history")
    check(all(d["after"] >= 0 and d["time"] > 1e9 for d in j["dumps"]), "dump times")
    check(j["dumps"][0]["after"] <= j["dumps"][-1]["after"], "dump order")
    text = run("stats", db).stdout
    check(re.search(r"in use\s+2\.86 KiB", text) and "fragmentation" in text, text)
    check("not the process's RSS" in text and "returned to OS" not in text, text)
    check(re.search(r"dump\s+after\s+reason\s+estimate\s+exact\s+mapped\s+RSS\s+estimate, to scale",
                    text), text)
    check(re.search(r"interval\s+1\.02 MiB\s+1\.02 MiB\s+8\.00 MiB\s+5\.02 MiB\s+#{40}", text), text)
    # the process's RSS beside the allocator's figures (mkprofile: 4 MiB + in use)
    check(re.search(r"RSS\s+4\.00 MiB\s+\(the allocator's in use is 0\.07% of it\)", text), text)
    check(re.search(r"peak RSS\s+5\.02 MiB\s+\(high-water mark since start, VmHWM\)", text), text)
    check("highest exact in use: 1.02 MiB at dump 1 (interval); the process's RSS peaked at "
          "5.02 MiB" in text, text)
    check(j["process_memory"] == {"rss_bytes": (4 << 20) + 2928, "hwm_bytes": (4 << 20) + 1069576},
          str(j["process_memory"]))
    check([d["process_memory"]["rss_bytes"] for d in j["dumps"]] ==
          [(4 << 20) + x for x in (1069576, 1051440, 2928)], "RSS per dump")


def case_flamegraph():
    db, _ = make("a")
    folded = run("flamegraph", at_exit(db), "--folded").stdout.splitlines()
    check("_start;__libc_start_main_impl;__libc_start_call_main;main;scenario;phase1;"
          "leak_alpha 1000" in folded, "\n".join(folded))
    check(any(l.endswith("outer_delta;inlined_helper 320") for l in folded), "inline frames")
    check(sum(int(l.rsplit(" ", 1)[1]) for l in folded) == 2928, "folded total")
    svg = os.path.join(TMP, "a.svg")
    p = run("flamegraph", db, "-o", svg, "--sort", "alloc-bytes")
    tree = ET.parse(svg)
    root = tree.getroot()
    ns = "{http://www.w3.org/2000/svg}"
    check(root.find(ns + "script") is not None, "embedded script")
    titles = [t.text for t in root.iter(ns + "title")]
    check(any(re.fullmatch(r"big_gamma \(\S*mkprofile\.c\) in mkprofile — 1\.00 MiB \(\S+%\)", t)
              for t in titles), str(titles[:5]))
    check(any(t.startswith("all — 1.02 MiB (100.00%)") for t in titles), "root frame")
    data = open(svg).read()
    check(not re.search(r"(href|src)\s*=", data), "no external resources")
    # the default output names the dump: the peak's (dump 1, the most in use) and the exit's
    # do not overwrite each other
    check(run("flamegraph", db).returncode == 0 and os.path.exists(db[:-3] + ".dump1.svg"),
          "default output FILE.dump1.svg")
    exit_id = at_exit(db).rsplit("@", 1)[1]
    check(run("flamegraph", at_exit(db)).returncode == 0 and
          os.path.exists(db[:-3] + f".dump{exit_id}.svg"), "default output of the exit dump")


PB_WIRE = {0: "varint", 2: "bytes"}


def pb_fields(buf):
    """Decodes one protobuf message into [(field, value)]."""
    out, i = [], 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise Fail(f"wire type {wire}")
        out.append((field, v))
    return out


def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def packed(b):
    out, i = [], 0
    while i < len(b):
        v, i = varint(b, i)
        out.append(v)
    return out


def case_pprof():
    db, exp = make("a")
    out = os.path.join(TMP, "a.pb.gz")
    run("pprof", at_exit(db), "-o", out)
    prof = pb_fields(gzip.open(out).read())
    strs = [v.decode() for f, v in prof if f == 6]
    check(strs[0] == "", "string_table[0]")
    types = [tuple(strs[x] for _, x in pb_fields(v)) for f, v in prof if f == 1]
    check(types == [("alloc_objects", "count"), ("alloc_space", "bytes"),
                    ("inuse_objects", "count"), ("inuse_space", "bytes")], str(types))
    samples = [dict((f, v) for f, v in pb_fields(v)) for f, v in prof if f == 2]
    inuse = sum(packed(s[2])[3] for s in samples)
    alloc = sum(packed(s[2])[1] for s in samples)
    check(inuse == 2928 and alloc == sum(ALLOC_A.values()), f"values {inuse} {alloc}")
    funcs = {}
    for f, v in prof:
        if f == 5:
            d = dict(pb_fields(v))
            funcs[d[1]] = (strs[d.get(2, 0)], strs[d.get(4, 0)])
    names = {n for n, _ in funcs.values()}
    check(set(INUSE_A) <= names and "outer_delta" in names, str(names))
    locs = [pb_fields(v) for f, v in prof if f == 4]
    multi = [[funcs[dict(pb_fields(l))[1]][0] for f, l in loc if f == 4]
             for loc in locs if sum(1 for f, _ in loc if f == 4) > 1]
    check(["inlined_helper", "outer_delta"] in multi, f"inline Lines {multi}")
    maps = [dict(pb_fields(v)) for f, v in prof if f == 3]
    check(any(strs[m.get(6, 0)] and strs[m[5]].endswith("mkprofile") for m in maps), "build id")


def case_pprof_go():
    go = shutil.which("go")
    if not go:
        print("go not installed: skipped")
        sys.exit(77)
    db, _ = make("a")
    out = os.path.join(TMP, "a.pb.gz")
    run("pprof", at_exit(db), "-o", out)
    env = dict(os.environ, HOME=TMP, GOCACHE=os.path.join(TMP, "gocache"), PPROF_BINARY_PATH=TMP,
               GOFLAGS="-mod=mod")
    p = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=inuse_space", out],
                       capture_output=True, text=True, env=env, timeout=300)
    check(p.returncode == 0, p.stderr)
    check(re.search(r"1400B\s+47\.81%\s+47\.81%\s+1400B\s+47\.81%\s+thread_epsilon", p.stdout),
          p.stdout)
    check(re.search(r"1000B\s+34\.15%.*leak_alpha", p.stdout), p.stdout)
    p = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=alloc_space", out],
                       capture_output=True, text=True, env=env, timeout=300)
    check(re.search(r"1024kB\s+97\.86%.*big_gamma", p.stdout), p.stdout)


def case_cache():
    db, _ = make("a")
    first = run("top", db, "--by", "stack", "-n", "0").stdout
    con = sqlite3.connect(db)
    n = con.execute("SELECT count(*) FROM symbol").fetchone()[0]
    check(n > 10, f"symbol cache rows: {n}")
    second = run("top", db, "--by", "stack", "-n", "0").stdout
    check(first == second, "same report from the cache")
    check(con.execute("SELECT count(*) FROM symbol").fetchone()[0] == n, "no new rows")
    # The second report reads names from the cache, not from the binary.
    con.execute("UPDATE symbol SET function = 'cached_name' WHERE function = 'leak_alpha'")
    con.commit()
    con.close()
    check("cached_name" in run("top", db).stdout, "cache used")


def case_missing_binary():
    exe = os.path.join(TMP, "mkprofile-copy")
    shutil.copy(ARGS.mkprofile, exe)
    db = os.path.join(TMP, "m.db")
    subprocess.run([exe, db], check=True)
    os.unlink(exe)
    p = run("top", db, "-n", "0")
    check(re.search(r"\[missing\] mkprofile-copy\+0x[0-9a-f]+", p.stdout), p.stdout)
    check("__libc_start_call_main" in p.stdout, "other objects still symbolized")
    p = run("leaks", db)
    check("[missing] mkprofile-copy+0x" in p.stdout, p.stdout)


def case_readonly():
    """A profile in a directory we cannot write: reports work, nothing is cached."""
    db, _ = make("a")
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")  # as the profiler writes it
    con.close()
    ro = os.path.join(TMP, "ro")
    os.mkdir(ro)
    shutil.copy(db, ro)
    rdb = os.path.join(ro, "a.db")
    os.chmod(rdb, 0o444)
    os.chmod(ro, 0o555)
    os.chmod(TMP, 0o755)
    kw = {}
    if os.geteuid() == 0:  # root writes anyway: run as nobody
        kw = {"user": "nobody"}
    try:
        p = subprocess.run([ARGS.allocprof, "top", at_exit(rdb), "--format", "json"],
                           capture_output=True,
                           text=True, **kw)
    except (PermissionError, KeyError, OSError) as e:
        print(f"cannot run as another user ({e}): skipped")
        sys.exit(77)
    if p.returncode in (126, 127) or "Permission denied" in p.stderr and "allocprof:" not in p.stderr:
        print(f"allocprof not reachable as nobody: skipped\n{p.stderr}")
        sys.exit(77)
    check(p.returncode == 0, p.stderr)
    check(flat(json.loads(p.stdout)["rows"]) == INUSE_A, p.stdout)
    check(p.stderr == "", p.stderr)
    os.chmod(ro, 0o755)
    n = sqlite3.connect(rdb).execute("SELECT count(*) FROM symbol").fetchone()[0]
    check(n == 0, f"nothing cached in a read-only file ({n} rows)")


def case_errors():
    db, _ = make("a")
    cases = []

    def bad(args, pattern, rc=1):
        cases.append((args, pattern, rc))

    bad(["top", os.path.join(TMP, "nosuch.db")], r"nosuch\.db: No such file or directory")
    txt = os.path.join(TMP, "t.txt")
    open(txt, "w").write("hello\n" * 100)
    bad(["top", txt], r"t\.txt: not an allocprof profile \(not an SQLite database\)")
    empty = os.path.join(TMP, "empty.db")
    open(empty, "w").close()
    bad(["list", empty], r"empty\.db: not an allocprof profile \(empty file\)")
    bad(["list", TMP], r"is a directory")
    data = open(db, "rb").read()
    trunc = os.path.join(TMP, "trunc.db")
    open(trunc, "wb").write(data[:len(data) // 2])
    bad(["top", trunc], r"trunc\.db: truncated database")
    corrupt = os.path.join(TMP, "corrupt.db")
    page = 4096
    buf = bytearray(data)
    for off in range(page, len(buf), page):
        buf[off + 8:off + 200] = b"\xff" * 192
    open(corrupt, "wb").write(bytes(buf))
    bad(["top", corrupt], r"corrupt\.db: corrupt or truncated database")
    newer = os.path.join(TMP, "newer.db")
    shutil.copy(db, newer)
    con = sqlite3.connect(newer)
    (version,) = con.execute("PRAGMA user_version").fetchone()
    con.execute(f"PRAGMA user_version = {version + 1}")
    con.commit()
    con.close()
    bad(["top", newer], r"newer\.db: was written by a newer allocprof")
    other = os.path.join(TMP, "other.db")
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    bad(["top", other], r"not an allocprof profile \(no table 'process'\)")
    bad(["top", db, "-d", "99"], r"no dump 99")
    bad(["top", db + "@abc"], r"a\.db@abc: 'abc' is not a dump id \(FILE@ID takes a number")
    bad(["top", db + "@99"], r"no dump 99")
    bad(["top", db, "-p", "9"], r"no process 9")
    bad(["report", db, "-p", "9"], r"no process 9")
    bad(["report", db + "@99"], r"no dump 99")
    bad(["report", db, "-o", os.path.join(TMP, "no", "dir.html")], r"dir\.html: No such file or directory")
    bad(["report", db, "-o", "-"], r"report: -o -: the report is a file", 2)
    bad(["top", db, "--bogus"], r"^allocprof: top: unknown option --bogus$", 2)
    bad(["leaks", db, "--sort", "inuse-bytes"], r"leaks: unknown option --sort", 2)
    bad(["top", db, "--sort", "nope"], r"--sort: unknown value 'nope'", 2)
    bad(["top", db, "--by", "nope"], r"--by: unknown value 'nope'", 2)
    bad(["top", db, "-n", "x"], r"-n: 'x' is not a number", 2)
    bad(["leaks", db, "--min", "12Q"], r"--min: '12Q' is not a size", 2)
    bad(["top"], r"top: missing FILE", 2)
    bad(["top", db, db], r"unexpected argument", 2)
    bad(["diff", db], r"diff: needs BASE and NEW", 2)
    bad(["nosuchcommand"], r"nosuchcommand: unknown command", 2)
    bad(["pprof", db, "-o", os.path.join(TMP, "nodir", "x.pb.gz")], r"pprof: .*No such file")
    for cmd in ["list", "top", "leaks", "stats", "flamegraph", "pprof"]:
        bad([cmd, corrupt], r"corrupt or truncated database")
        bad([cmd, txt], r"not an allocprof profile")
    for args, pattern, rc in cases:
        p = run(*args, rc=rc)
        err = p.stderr.strip()
        check(len(err.splitlines()) == 1, f"{args}: one line, got {err!r}")
        check(err.startswith("allocprof: ") and re.search(pattern, err), f"{args}: {err!r}")
        check(p.stdout == "", f"{args}: nothing on stdout")


def case_help():
    for cmd in ["list", "top", "diff", "leaks", "stats", "flamegraph", "pprof"]:
        p = run(cmd, "--help")
        check(p.stdout.startswith(f"usage: allocprof {cmd}"), p.stdout)
        check(run(cmd, "-h").stdout == p.stdout, "-h")
    check("flamegraph" in run("help").stdout, "main help")


def case_real():
    """A real program under `allocprof run` (skipped until the profiler writes dumps)."""
    prog = os.path.join(os.path.dirname(ARGS.mkprofile), "cli_realprog")
    db = os.path.join(TMP, "real.db")
    p = run("run", "--rate", "1", "-o", db, "--", prog, rc=None)
    if p.returncode != 0 or not os.path.exists(db):
        print(f"allocprof run did not produce a profile (exit {p.returncode}): skipped\n"
              f"{p.stderr}")
        sys.exit(77)
    con = sqlite3.connect(db)
    if not con.execute("SELECT count(*) FROM dump").fetchone()[0]:
        print("no dump rows yet: skipped")
        sys.exit(77)
    con.close()
    j = run_json("top", db, "-n", "0")
    f = flat(j["rows"])
    check(f.get("real_leak") == 100 * 4096, f"real_leak: {f}")
    check(f.get("real_keep") == 10 * 1000, f"real_keep: {f}")
    j = run_json("leaks", db)
    top = j["leaks"][0]["stack"]
    check(top[0]["function"] == "real_leak" and top[1]["function"] == "main", str(top[:3]))
    out = os.path.join(TMP, "real.pb.gz")
    run("pprof", db, "-o", out)
    run("flamegraph", db, "--folded")
    run("stats", db)


def case_shell_choice():
    """`run` of a shell loop records the shell, launchers and three interpreters; every
    report picks an interpreter's process (the one that allocated the most) and says so,
    and none fails because the first process (the shell) has no dump."""
    lib = os.environ.get("ALLOCPROF_LIB", "")
    if not os.path.exists(lib):
        sys.exit(77)
    db = os.path.join(TMP, "shell.db")
    py = "x = [bytearray(1000) for i in range(20000)]"
    run("run", "-o", db, "--", "sh", "-c", f"for i in 1 2 3; do python3 -c '{py}'; done")
    con = sqlite3.connect(db)
    rows = con.execute("SELECT p.id, p.exe, max(d.alloc_bytes) FROM process p"
                       " LEFT JOIN dump d ON d.process_id = p.id GROUP BY p.id").fetchall()
    check(len(rows) >= 4, f"processes {rows}")
    best = max((r for r in rows if r[2] is not None), key=lambda r: (r[2], -r[0]))
    check("python" in os.path.basename(best[1]), f"the most allocating process: {best}")
    note = "the one that allocated the most"
    for args in (["top", db], ["leaks", db], ["stats", db], ["diff", db, db]):
        p = run(*args)
        check(f"process {best[0]} " in p.stdout and note in p.stdout,
              f"{args[0]} picked: {p.stdout[:400]}")
    j = run_json("top", db)
    check(j["process"]["id"] == best[0] and note in j["process_choice"], str(j["process"]))
    for args in (["flamegraph", db, "-o", os.path.join(TMP, "shell.svg")],
                 ["pprof", db, "-o", os.path.join(TMP, "shell.pb.gz")]):
        p = run(*args)
        check(f"of process {best[0]}: " in p.stderr and note in p.stderr, p.stderr)
    # list folds the processes that allocated next to nothing (the shell: no dump at all)
    text = run("list", db).stdout
    listed = re.findall(r"^process (\d+):", text, re.M)
    folded = re.search(r"^\((\d+) more process(es)?, each of which allocated less than 10% of the "
                       r"busiest one: .*; --all lists them\)$", text, re.M)
    check(folded and int(folded.group(1)) + len(listed) == len(rows), text[-600:])
    check(str(best[0]) in listed and str(rows[0][0]) not in listed, f"listed {listed}")
    check(len(re.findall(r"^process \d+:", run("list", db, "--all").stdout, re.M)) == len(rows),
          "--all")
    first = rows[0][0]
    p = run("top", db, "-p", str(first), rc=None)
    check(f"process {first} " in p.stdout or "has no dump" in p.stderr, p.stdout + p.stderr)


def case_run_summary():
    """`run` ends with one line on stderr: the file, processes and dumps, and the next
    command; -q leaves it out; a run that writes no profile prints none"""
    lib = os.environ.get("ALLOCPROF_LIB", "")
    if not os.path.exists(lib):
        sys.exit(77)
    db = os.path.join(TMP, "summary.db")
    p = run("run", "-o", db, "--", sys.executable, "-c", "x = [bytearray(100) for i in range(9999)]")
    lines = p.stderr.splitlines()
    check(len(lines) == 1, f"stderr: {p.stderr!r}")
    check(re.fullmatch(r"allocprof: wrote \S*summary\.db: 1 process \(1 with dumps\), 1 dump; "
                       r"next: allocprof top \S*summary\.db \(or list, leaks, flamegraph, pprof\)",
                       lines[0]) is not None, lines[0])
    p = run("run", "-q", "-o", db, "--", "true")
    check(p.stderr == "", f"-q: {p.stderr!r}")
    p = run("run", "--rate", "0", "-o", os.path.join(TMP, "none.db"), "--", "true")
    check(p.stderr == "", f"no profile: {p.stderr!r}")


def case_default_peak():
    """a program that frees all at exit: reports on in-use figures default to the dump with
    the most in use and say why; alloc figures and leaks keep the last dump"""
    db, _ = make("a")
    j = run_json("top", db)
    check(j["dump"]["id"] == 1 and j["total"]["inuse_bytes"] > 1 << 20, str(j["dump"]))
    check("the one with the most in use" in j["dump_choice"] and "holds 2.86 KiB" in
          j["dump_choice"], j["dump_choice"])
    text = run("top", db, "-n", "1").stdout
    check("(dump 1: the one with the most in use (1.02 MiB); the last, dump 4 (exit), holds "
          "2.86 KiB; -d ID chooses another)" in text.splitlines()[1], text)
    j = run_json("top", db, "--sort", "alloc-bytes")
    check(j["dump"]["reason"] == "exit" and "the process's last" in j["dump_choice"], str(j))
    j = run_json("leaks", db)
    check(j["dump"]["reason"] == "exit", str(j["dump"]))
    j = run_json("top", at_exit(db))
    check("dump_choice" not in j, "an explicit dump needs no reason")


def case_sampling_error():
    """reports say how many samples stand behind their totals and give the allocator's exact
    in-use beside the estimate; diff warns when the rates differ and marks changes within
    their sampling error with ~, after the others"""
    a, _ = make("a")
    b, _ = make("b", "--variant", "b")
    j = run_json("top", at_exit(a))
    check(j["samples"] > 0 and j["exact_inuse_bytes"] == 2928, str(j))
    text = run("top", at_exit(a)).stdout
    check("(exact: every allocation recorded" in text and "the allocator counts 2.86 KiB in use)" in text,
          text)
    sampled = os.path.join(TMP, "b-sampled.db")
    shutil.copy(b, sampled)
    con = sqlite3.connect(sampled)
    con.execute("UPDATE process SET rate = 65536")
    con.commit()
    con.close()
    text = run("top", at_exit(sampled)).stdout
    check(re.search(r"\(estimated from samples, one per 64\.0 KiB allocated on average \(\d+ so "
                    r"far\); the allocator counts [\d.]+ KiB in use, exactly\)", text), text)
    j = run_json("diff", at_exit(a), at_exit(sampled))
    check(len(j["warnings"]) == 1 and "differ in precision" in j["warnings"][0], str(j["warnings"]))
    rows = {r["name"]: r for r in j["rows"]}
    # +2000 B against an error of 2 sqrt(3000 x 64 KiB) = 27.4 KiB (the base is exact): noise
    check(rows["leak_alpha"]["within_error"] and rows["leak_alpha"]["error"] == 28043, str(rows))
    text = run("diff", at_exit(a), at_exit(sampled)).stdout
    check("warning: base sampled one per 1 B, new one per 64.0 KiB" in text, text)
    check(re.search(r"~\+1\.95 KiB\s+\+200\.00%\s+±[\d.]+ KiB\s+1000 B\s+2\.93 KiB\s+leak_alpha",
                    text), text)
    j = run_json("diff", at_exit(a), at_exit(b))  # both exact: nothing is noise
    check(j["warnings"] == [] and not any(r["within_error"] for r in j["rows"]), str(j))


def case_leaks_suppressions():
    """leaks: the loader's and libc's own leaks are suppressed by default, the program's
    __lsan_default_suppressions and --suppressions FILE are honoured, all are counted as
    suppressed; --no-suppress shows everything; at a sampling rate the report says what it
    may miss"""
    lib = os.environ.get("ALLOCPROF_LIB", "")
    if not os.path.exists(lib):
        sys.exit(77)
    prog = os.path.join(os.path.dirname(ARGS.mkprofile), "leak_prog")
    db = os.path.join(TMP, "leak.db")
    run("run", "-q", "--rate", "1", "-o", db, "--", prog)
    j = run_json("leaks", db)
    sites = {l["stack"][0]["function"]: l["figures"]["inuse_bytes"] for l in j["leaks"]}
    check(sites.get("leak_real") == 7000, str(sites))
    check(not any(f in ("setlocale", "__strdup", "new_composite_name") for f in sites), str(sites))
    check("leak_known" not in sites, f"the program's suppression: {sites}")
    check(j["leaked"]["inuse_bytes"] == sum(sites.values()), str(j["leaked"]))
    sup = {s["pattern"]: s for s in j["suppressed"]}
    check(sup.get("leak_known", {}).get("inuse_bytes") == 3000 and
          sup["leak_known"]["origin"] == "the program's __lsan_default_suppressions", str(sup))
    check(any(s["origin"] == "built-in" for s in j["suppressed"]), f"no built-in match: {sup}")
    check(not any(f.startswith("_IO_file_doallocate") for f in sites), str(sites))
    text = run("leaks", db).stdout
    check(re.search(r"Suppressed: .* \(--no-suppress shows them\):\n(  leak:.*\n)*"
                    r"  leak:leak_known \(the program's __lsan_default_suppressions\): 2\.93 KiB in "
                    r"10 objects, 1 stack", text), text)
    supp = os.path.join(TMP, "mine.supp")
    open(supp, "w").write("# ours\n\nleak:^leak_re*l$\n")
    j = run_json("leaks", db, "--suppressions", supp)
    check(not any(l["stack"][0]["function"] == "leak_real" for l in j["leaks"]), str(j["leaks"]))
    check(any(s["origin"] == supp and s["stacks"] == 1 for s in j["suppressed"]), str(j))
    j = run_json("leaks", db, "--no-suppress")
    names = {l["stack"][0]["function"] for l in j["leaks"]}
    check({"leak_real", "leak_known"} <= names and j["suppressed"] == [], str(names))
    bad = os.path.join(TMP, "bad.supp")
    open(bad, "w").write("leak:ok\nnonsense here\n")
    p = run("leaks", db, "--suppressions", bad, rc=2)
    check(p.stderr == f"allocprof: {bad}:2: 'nonsense here' is not a suppression (expected "
          "leak:PATTERN)\n" and p.stdout == "", p.stderr)
    run("leaks", db, "--suppressions", os.path.join(TMP, "missing.supp"), rc=2)
    # at the default rate: the estimate, and what it may miss
    db2 = os.path.join(TMP, "leak-sampled.db")
    run("run", "-q", "-o", db2, "--", prog)
    text = run("leaks", db2).stdout
    check("(a leak of S bytes in all is seen with probability 1 - e^(-S/rate): half the time at "
          "355 KiB, a tenth at 53.9 KiB; smaller leaks may be missed. Run with --rate 1 for "
          "exact figures)" in text, text)
    check(run_json("leaks", db2)["caveat"].startswith("a leak of S bytes"), "caveat in JSON")


def case_docs():
    """the man page and the bash/zsh completions are generated from the --help texts and
    installed by cmake --install; bash completes subcommands, options and --sort/--by"""
    build = os.path.dirname(os.path.dirname(ARGS.allocprof))  # the build tree
    prefix = os.path.join(TMP, "prefix")
    r = subprocess.run(["cmake", "--install", build, "--prefix", prefix], capture_output=True,
                       text=True)
    check(r.returncode == 0, r.stderr)
    manpage = os.path.join(prefix, "share/man/man1/allocprof.1")
    comp = os.path.join(prefix, "share/bash-completion/completions/allocprof")
    zsh = os.path.join(prefix, "share/zsh/site-functions/_allocprof")
    for f in (manpage, comp, zsh):
        check(os.path.exists(f), f"not installed: {f}")
    text = open(manpage).read()
    check(text.startswith(".TH ALLOCPROF 1"), text[:80])
    for c in ("run", "dump", "list", "top", "diff", "leaks", "stats", "flamegraph", "pprof"):
        check(f"\n.SS {c}\n" in text, f"no section {c}")
    top_help = run("top", "--help").stdout
    check(top_help.splitlines()[0] in text, "the man page is not top's --help")
    stub = ("_init_completion() { words=(\"${COMP_WORDS[@]}\"); cword=$COMP_CWORD; "
            "cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }; "
            "_filedir() { COMPREPLY=(FILES); }; ")

    def complete(*words):
        script = (stub + f"source {comp}; COMP_WORDS=({' '.join(repr(w) for w in words)}); "
                  f"COMP_CWORD={len(words) - 1}; _allocprof; echo \"${{COMPREPLY[@]}}\"")
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                              check=True).stdout.split()

    check(complete("allocprof", "fl") == ["flamegraph"], str(complete("allocprof", "fl")))
    check(complete("allocprof", "top", "--so") == ["--sort"], str(complete("allocprof", "top", "--so")))
    check(complete("allocprof", "top", "--sort", "alloc") == ["alloc-bytes", "alloc-objects"],
          str(complete("allocprof", "top", "--sort", "alloc")))
    check(complete("allocprof", "diff", "--by", "") == ["function", "line", "stack", "thread"],
          "--by values")
    check("--suppressions" in complete("allocprof", "leaks", "--"), "leaks options")
    check(complete("allocprof", "top", "") == ["FILES"], "files")
    if shutil.which("zsh"):
        r = subprocess.run(["zsh", "-n", zsh], capture_output=True, text=True)
        check(r.returncode == 0, r.stderr)


def case_flamegraph_browser():
    """the flame graph SVG as a person sees it, in headless Chromium: an icicle (the root on
    top) under a title with the total and the rate; a legend of modules; search paints the
    matching frames and sums them (a match inside a match counted once); a click zooms and
    the picture gets shorter; Escape restores; no console error, no request"""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import browser
    if not browser.CHROMIUM:
        print("no chromium: skipped")
        sys.exit(77)
    db, _ = make("a")
    svg = os.path.join(TMP, "fg.svg")
    run("flamegraph", at_exit(db), "-o", svg, "--sort", "alloc-bytes")
    with browser.Browser() as b:
        page = b.open("file://" + svg)
        title = b.eval(page, "document.getElementById('title').textContent")
        check(title.startswith("1.02 MiB alloc-bytes — a.db, dump"), title)
        sub = b.eval(page, "document.getElementById('subtitle').textContent")
        check(sub.startswith("exact: every allocation recorded"), sub)
        ys = b.eval(page, "Array.from(document.querySelectorAll('#frames g')).map(g => "
                          "[+g.dataset.d, g.getBoundingClientRect().top])")
        root_y = [y for d, y in ys if d == 0][0]
        check(all(y > root_y for d, y in ys if d > 0), "the root is not on top")
        legend = b.eval(page, "Array.from(document.querySelectorAll('#legend text'))"
                              ".map(t => t.textContent)")
        check(any(t.startswith("mkprofile ") for t in legend), str(legend))
        # search: big_gamma and temp_beta are disjoint; scenario contains them both
        b.eval(page, "search('big_gamma|temp_beta')")
        got = b.eval(page, "document.getElementById('matched').textContent")
        w = b.eval(page, "Array.from(document.querySelectorAll('#frames g')).filter(g => "
                         "/^(big_gamma|temp_beta)$/.test(g.dataset.n)).map(g => +g.dataset.w)")
        total = b.eval(page, "+document.querySelector('#frames g[data-d=\"0\"]').dataset.w")
        check(sum(w) == (1 << 20) + 20000 and
              got == f"Matched: 1.02 MiB ({100 * sum(w) / total:.2f}%)", f"{got} {w} {total}")
        painted = b.eval(page, "Array.from(document.querySelectorAll('#frames g[data-hit=\"1\"]'))"
                               ".map(g => g.dataset.n)")
        check(sorted(painted) == ["big_gamma", "temp_beta"], str(painted))
        b.eval(page, "search('scenario|big_gamma')")  # big_gamma is under scenario: once
        check(b.eval(page, "+document.getElementById('matched').dataset.sum") ==
              b.eval(page, "+Array.from(document.querySelectorAll('#frames g'))"
                           ".find(g => g.dataset.n === 'scenario').dataset.w"), "nested match")
        b.screenshot(page, os.path.join(TMP, "flamegraph.png"))
        h0 = b.eval(page, "document.documentElement.getBoundingClientRect().height")
        b.eval(page, "zoom(Array.from(document.querySelectorAll('#frames g'))"
                     ".find(g => g.dataset.n === 'big_gamma'))")
        h1 = b.eval(page, "document.documentElement.getBoundingClientRect().height")
        check(h1 < h0, f"zooming kept the height: {h0} -> {h1}")
        w = b.eval(page, "+Array.from(document.querySelectorAll('#frames g'))"
                         ".find(g => g.dataset.n === 'big_gamma').querySelector('rect')"
                         ".getAttribute('width')")
        check(w > 1100, f"the zoomed frame is {w} wide")
        b.call("Input.dispatchKeyEvent", page, type="keyDown", key="Escape", code="Escape",
               windowsVirtualKeyCode=27)
        h2 = b.eval(page, "document.documentElement.getBoundingClientRect().height")
        check(h2 == h0, f"Escape: {h2} != {h0}")
        check(b.console_errors(page) == [], str(b.console_errors(page)))
        check(all(u.startswith("file://") for u in b.requests(page)), str(b.requests(page)))


class Page:
    """A report page in headless Chromium, used the way a person uses it: real clicks,
    key presses and hovers (Input.dispatch*), and what the page shows."""

    def __init__(self, b, url):
        self.b, self.page = b, b.open(url)
        deadline = time.time() + 60  # the page inflates its data after the load event
        while not self.js("!!(window.apReport && apReport.readyMs)"):
            check(time.time() < deadline, f"the page never got ready: "
                  f"{b.console_errors(self.page)}")
            time.sleep(0.05)

    def js(self, expr):
        return self.b.eval(self.page, expr)

    def center(self, selector, index=0):
        r = self.js(f"(() => {{ const e = document.querySelectorAll({json.dumps(selector)})"
                    f"[{index}]; e.scrollIntoView({{block: 'center'}}); const r = "
                    f"e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + "
                    f"r.height / 2]; }})()")
        return r

    def click(self, selector, index=0, shift=False):
        x, y = self.center(selector, index)
        for t in ("mousePressed", "mouseReleased"):
            self.b.call("Input.dispatchMouseEvent", self.page, type=t, x=x, y=y, button="left",
                        clickCount=1, modifiers=8 if shift else 0)

    def hover(self, selector, index=0):
        x, y = self.center(selector, index)
        self.b.call("Input.dispatchMouseEvent", self.page, type="mouseMoved", x=x, y=y)
        return self.js("document.getElementById('tip').textContent")

    def type(self, selector, text):
        self.click(selector)
        self.b.call("Input.insertText", self.page, text=text)

    def widest_frame(self):
        """(index, name, depth) of the widest frame below the root, the shallowest on a tie"""
        fr = self.js("Array.from(document.querySelectorAll('#flame .fr')).map((e, i) => [i, "
                     "e.textContent, e.getBoundingClientRect().width, parseFloat(e.style.top),"
                     " e.classList.contains('root') || e.classList.contains('anc')])")
        fr = [f for f in fr if not f[4]]
        i, name, _, top, _ = max(fr, key=lambda f: (round(f[2], 1), -f[3]))
        return i, name


def page_functions(p):
    return {(r["name"], r["file"]): r for r in p.js("apReport.functions()")}


def check_same_as_top(p, spec, what):
    """every function's flat and cum figures, four metrics, equal top's for the dump (top
    lists, for each --sort, the functions with a figure in that metric)"""
    got = page_functions(p)
    names = ("inuse_bytes", "inuse_objects", "alloc_bytes", "alloc_objects")
    for m, sort in enumerate(("inuse-bytes", "inuse-objects", "alloc-bytes", "alloc-objects")):
        j = run_json("top", spec, "-n", "0", "--sort", sort)
        want = {(r["name"], r.get("file")): r for r in j["rows"]}
        for k, r in want.items():
            g = got.get(k)
            check(g is not None, f"{what}: {k} is in top, not in the page")
            check([g["flat"][i] for i in range(4)] == [r["flat"][n] for n in names] and
                  [g["cum"][i] for i in range(4)] == [r["cum"][n] for n in names],
                  f"{what}: {k}: page {g}, top {r}")
        extra = [k for k, g in got.items() if k not in want and (g["flat"][m] or g["cum"][m])]
        check(not extra, f"{what}, {sort}: in the page, not in top: {extra}")


def check_widest_frame(p, spec, sort, what):
    """the flame graph's widest frame and the figure its hover shows are top's largest
    cumulative figure for the metric"""
    i, name = p.widest_frame()
    tip = p.hover("#flame .fr", i)
    m = re.search(r"\(([\d,]+) (B|objects)\)", tip)
    check(m, f"{what}: hover shows {tip!r}")
    shown = int(m.group(1).replace(",", ""))
    j = run_json("top", spec, "-n", "0", "--cum", "--sort", sort)
    key = sort.replace("-", "_")
    best = j["rows"][0]["cum"][key]
    mine = [r["cum"][key] for r in j["rows"] if r["name"] == name]
    check(mine and shown == mine[0] == best, f"{what}: widest frame {name} shows {shown}; "
          f"top: {name} {mine}, largest {best}")
    check(tip.startswith(name), f"{what}: {tip!r}")


def open_report(html=None):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import browser
    if not browser.CHROMIUM:
        print("no chromium: skipped")
        sys.exit(77)
    return browser.Browser(width=1300, height=900, timeout=60)


def case_report_browser():
    """allocprof report on mkprofile's scenario, as a person sees it in headless Chromium:
    one timeline point per dump; the widest frame and its figure, and every function's
    figures, are top's for the dump, for each metric; search paints the frames it names;
    two dumps selected show what grew as grown; the leak table is leaks'; processes can be
    switched; no console error, no request but the file"""
    db, _ = make("a")
    html = os.path.join(TMP, "a.html")
    p = run("report", db, "-o", html)
    check(f"wrote {html}" in p.stderr, p.stderr)
    data = open(html).read()
    check(not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", data), "a link outside the file")
    lst = run_json("list", db)
    procs = {pr["id"]: pr for pr in lst["processes"]}
    with open_report(html) as b:
        p = Page(b, "file://" + html)
        pts = p.js("Array.from(document.querySelectorAll('#timeline .pt')).map(e => +e.dataset.dump)")
        check(pts == [d["id"] for d in procs[1]["dumps"]], f"points {pts} vs list {procs[1]['dumps']}")
        # opens on the dump top takes by default, and says so
        j = run_json("top", db)
        sel = p.js("document.getElementById('selection').textContent")
        check(f"dump {j['dump']['id']} " in sel, f"{sel} vs top's dump {j['dump']}")
        for k, d in enumerate(procs[1]["dumps"]):
            p.click("#timeline .pt", k)
            check(p.js("apReport.state.sel") == k, f"click on point {k}")
            spec = f"{db}@{d['id']}"
            check_same_as_top(p, spec, f"dump {d['id']}")
        exit_id = procs[1]["dumps"][-1]["id"]
        spec = f"{db}@{exit_id}"
        check_widest_frame(p, spec, "inuse-bytes", "inuse-bytes")
        for m, sort in enumerate(("inuse-objects", "alloc-bytes", "alloc-objects"), 1):
            p.click(f"#metric input[value='{m}']")
            check_widest_frame(p, spec, sort, sort)
            first = p.js("document.querySelector('#tab-functions tbody tr').dataset.func")
            want = run_json("top", spec, "--sort", sort)["rows"][0]["name"]
            check(first == want, f"{sort}: first function {first}, top's {want}")
        p.click("#metric input[value='0']")
        # search paints the frames it names, and sums them
        p.type("#search", "leak_alpha|thread_epsilon")
        time.sleep(0.4)
        painted = sorted(set(p.js("Array.from(document.querySelectorAll('#flame .fr.match'))"
                                  ".map(e => e.textContent)")))
        check(painted == ["leak_alpha", "thread_epsilon"], f"painted {painted}")
        res = p.js("document.getElementById('search-result').textContent")
        check(res.startswith("2 frames match: 2.34 KiB ("), res)
        # two dumps: from the first to the peak, thread_epsilon grew and temp_beta shrank
        p.click("#timeline .pt", 0)
        p.click("#timeline .pt", 1, shift=True)
        check(p.js("[apReport.state.base, apReport.state.sel]") == [0, 1], "compare")
        grown = p.js("Array.from(document.querySelectorAll('#flame .fr')).filter(e => "
                     "e.textContent === 'thread_epsilon').map(e => e.dataset.change)")
        check(grown == ["grow"], f"thread_epsilon in the flame graph: {grown}")
        rows = p.js("Object.fromEntries(Array.from(document.querySelectorAll("
                    "'#tab-functions tbody tr')).map(r => [r.dataset.func, [r.cells[1]"
                    ".className, r.cells[1].textContent]]))")
        check(rows["thread_epsilon"] == ["grow", "+1.37 KiB"], f"table: {rows.get('thread_epsilon')}")
        check(rows["temp_beta"] == ["shrink", "-19.5 KiB"], f"table: {rows.get('temp_beta')}")
        check("compared with dump" in p.js("document.getElementById('selection').textContent"),
              "the header says what is compared")
        # zoom makes the picture shorter, Escape restores it
        p.click("#clear-compare")
        p.click("#timeline .pt", len(procs[1]["dumps"]) - 1)  # exit: thread_epsilon is wide
        h0 = p.js("document.getElementById('flame').clientHeight")
        idx = p.js("Array.from(document.querySelectorAll('#flame .fr')).findIndex(e => "
                   "e.textContent === 'thread_epsilon')")
        p.click("#flame .fr", idx)
        h1 = p.js("document.getElementById('flame').clientHeight")
        check(h1 < h0, f"zoom kept the height {h0} -> {h1}")
        p.b.call("Input.dispatchKeyEvent", p.page, type="keyDown", key="Escape", code="Escape",
                 windowsVirtualKeyCode=27)
        check(p.js("document.getElementById('flame').clientHeight") == h0, "Escape")
        # leaks: the leak report's figures
        lk = run_json("leaks", db)
        p.click("#tabs button[data-tab='leaks']")
        text = p.js("document.getElementById('tab-leaks').textContent")
        check(f"Still in use at exit (dump {exit_id}): 2.86 KiB in 27 objects from 5 call "
              f"stacks" in text and lk["leaked"]["inuse_bytes"] == 2928, text[:300])
        # the forked child is a process of its own
        p.click("#tabs button[data-tab='processes']")
        p.click("#tab-processes button[data-proc='2']")
        pts = p.js("document.querySelectorAll('#timeline .pt').length")
        check(pts == len(procs[2]["dumps"]), f"child: {pts} points")
        check_same_as_top(p, f"{db}@{procs[2]['dumps'][-1]['id']}", "child")
        b.screenshot(p.page, os.path.join(TMP, "report.png"))
        check(b.console_errors(p.page) == [], str(b.console_errors(p.page)))
        check(b.requests(p.page) == ["file://" + html], str(b.requests(p.page)))


def check_report_of(db, what, other_process=None, min_threads=1):
    """the report of a real program's profile: one point per dump of the chosen process,
    every function's figures top's at the dump it opens on and at the first and last, the
    processes table complete; optionally another process shown the same way"""
    html = os.path.join(TMP, what + ".html")
    run("report", db, "-o", html)
    lst = run_json("list", db, "--all")
    procs = {pr["id"]: pr for pr in lst["processes"]}
    top = run_json("top", db)
    pid, dump = top["process"]["id"], top["dump"]["id"]
    with open_report(html) as b:
        p = Page(b, "file://" + html)
        check(p.js("apReport.state.proc.id") == pid, f"{what}: opens on process "
              f"{p.js('apReport.state.proc.id')}, top on {pid}")
        pts = p.js("Array.from(document.querySelectorAll('#timeline .pt')).map(e => +e.dataset.dump)")
        check(pts == [d["id"] for d in procs[pid]["dumps"]], f"{what}: points {pts}")
        check_same_as_top(p, f"{db}@{dump}", f"{what}, dump {dump}")
        for k in (0, len(pts) - 1):
            p.click("#timeline .pt", k)
            check_same_as_top(p, f"{db}@{pts[k]}", f"{what}, dump {pts[k]}")
        nrows = p.js("document.querySelectorAll('#tab-processes tbody tr').length")
        check(nrows == len(procs), f"{what}: {nrows} processes in the table, {len(procs)} in list")
        threads = p.js("document.querySelectorAll('#tab-threads tbody tr').length")
        check(threads >= min_threads, f"{what}: {threads} threads")
        if other_process:
            p.click("#tabs button[data-tab='processes']")
            p.click(f"#tab-processes button[data-proc='{other_process}']")
            pts = p.js("document.querySelectorAll('#timeline .pt').length")
            check(pts == len(procs[other_process]["dumps"]), f"{what}: process {other_process}")
            check_same_as_top(p, f"{db}@{procs[other_process]['dumps'][-1]['id']}",
                              f"{what}, process {other_process}")
        b.screenshot(p.page, os.path.join(TMP, what + ".png"))
        check(b.console_errors(p.page) == [], f"{what}: {b.console_errors(p.page)}")
        check(b.requests(p.page) == ["file://" + html], f"{what}: {b.requests(p.page)}")


def case_report_real():
    """allocprof report on real programs' profiles (issue 15): a Python script with
    --interval, a multi-process build (make running the compiler), and a threaded
    server with --interval; each page agrees with top and list"""
    lib = os.environ.get("ALLOCPROF_LIB", "")
    if not os.path.exists(lib):
        sys.exit(77)
    open_report(None).close()  # skips without chromium
    # a Python script: grows, then frees half
    py = os.path.join(TMP, "grow.py")
    open(py, "w").write("import time\nkeep = []\nfor i in range(30):\n"
                        "    keep.append([str(j) * 20 for j in range(20000)])\n"
                        "    time.sleep(0.01)\n"
                        "del keep[::2]\ntime.sleep(0.1)\n")
    db = os.path.join(TMP, "py.db")
    run("run", "-q", "-o", db, "--interval", "0.05", "--", "python3", py)
    check_report_of(db, "python")
    # a multi-process build: make runs cc, which runs cc1 and as
    src = os.path.join(TMP, "build")
    os.makedirs(src, exist_ok=True)
    for i in range(3):
        open(os.path.join(src, f"u{i}.c"), "w").write(
            "#include <stdio.h>\n" + "".join(f"int f{i}_{k}(int x) {{ return x * {k} + {i}; }}\n"
                                             for k in range(300)))
    open(os.path.join(src, "Makefile"), "w").write(
        "all: u0.o u1.o u2.o\n%.o: %.c\n\tcc -O2 -c $< -o $@\n")
    db = os.path.join(TMP, "make.db")
    run("run", "-q", "-o", db, "--", "make", "-s", "-j2", "-C", src)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT p.id, p.exe, max(d.alloc_bytes) FROM process p JOIN dump d"
                       " ON d.process_id = p.id GROUP BY p.id ORDER BY 3 DESC").fetchall()
    con.close()
    check(len(rows) >= 4, f"make: {rows}")
    check_report_of(db, "make", other_process=rows[1][0])
    # a threaded server with --interval: 4 client threads, 200 requests
    srv = os.path.join(TMP, "server.py")
    open(srv, "w").write(
        "import http.server, threading, urllib.request\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = ('x' * 2000 + self.path).encode() * 20\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
        "threading.Thread(target=s.serve_forever, name='server', daemon=True).start()\n"
        "def client(n):\n"
        "    for i in range(50):\n"
        "        urllib.request.urlopen(f'http://127.0.0.1:{s.server_port}/{n}/{i}').read()\n"
        "ts = [threading.Thread(target=client, args=(n,), name=f'client{n}') for n in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n"
        "s.shutdown()\n")
    db = os.path.join(TMP, "server.db")
    run("run", "-q", "-o", db, "--interval", "0.1", "--", "python3", srv)
    check_report_of(db, "server", min_threads=3)


def case_symcheck():
    """The symbolizer's indexes (ELF symbols, per-unit scopes) give libdw's own
    answers: AP_SYMBOLIZE_VERIFY makes it ask libdw too and exit 3 on any
    difference. On mkprofile's profile and, when `run` works, on this Python
    interpreter (large units, libc)."""
    env = dict(os.environ, AP_SYMBOLIZE_VERIFY="1")
    db, _ = make("a")
    run("top", db, "--by", "stack", "-n", "0", env=env)
    py = os.path.join(TMP, "py.db")
    p = run("run", "--rate", "1", "-o", py, "--", sys.executable, "-c",
            "import json; json.dumps({i: str(i) for i in range(20000)})", rc=None)
    if p.returncode != 0 or not os.path.exists(py):
        print(f"allocprof run did not produce a profile (exit {p.returncode}): "
              f"checked mkprofile's profile only\n{p.stderr}")
        return
    run("top", py, "--by", "stack", "-n", "0", env=env)


def main():
    global ARGS, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--allocprof", required=True)
    ap.add_argument("--mkprofile", required=True)
    ap.add_argument("case")
    ARGS = ap.parse_args()
    fn = globals().get("case_" + ARGS.case)
    if not fn:
        print(f"unknown case {ARGS.case}")
        return 2
    TMP = tempfile.mkdtemp(prefix="allocprof-cli-")
    try:
        fn()
    except Fail as e:
        print(f"FAIL {ARGS.case}: {e}")
        return 1
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    print(f"ok {ARGS.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
