#!/usr/bin/env bash
# cli_top.sh — how fast `allocprof top` reports, against go tool pprof -top and
# heaptrack_print on the same data:
#   1. a synthetic profile of 100,000 buckets (tests/cli/mkprofile --synthetic):
#      allocprof top first (symbolizing) and cached, go tool pprof -top on the
#      same profile exported with `allocprof pprof`;
#   2. a real program (python3 building and dumping a large dict), recorded
#      with --rate 1 both by allocprof and by heaptrack: allocprof top first
#      (symbolizing, recorded with --no-symbolize), cached, and after a plain
#      `allocprof run` (which symbolizes when the program exits); heaptrack_print.
# Median of 3 runs each. Usage: bench/cli_top.sh [BUILD_DIR] [--write FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=${3:-}
[ "${2:-}" = "--write" ] || out=""
cmake -S . -B "$build" >/dev/null && cmake --build "$build" -j"$(nproc)" >/dev/null
ap=$build/cli/allocprof
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

secs() { # median wall seconds of 3 runs of: command...
    local ts=() t0 t1
    for _ in 1 2 3; do
        t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
        ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p
}
fresh() { # time a first report: copy the profile without its symbol cache each run
    local db=$1; shift
    local ts=() t0 t1
    for _ in 1 2 3; do
        cp "$db" "$tmp/f.db"; sqlite3 "$tmp/f.db" "DELETE FROM symbol"
        t0=$(date +%s.%N); "$ap" top "$tmp/f.db" "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
        ts+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
    done
    printf '%s\n' "${ts[@]}" | sort -n | sed -n 2p
}

"$build/tests/cli/mkprofile" "$tmp/big.db" --synthetic 100000 >/dev/null
"$ap" pprof "$tmp/big.db" -o "$tmp/big.pb.gz" 2>/dev/null
s_first=$(fresh "$tmp/big.db")
"$ap" top "$tmp/big.db" >/dev/null 2>&1
s_cached=$(secs "$ap" top "$tmp/big.db")
s_go=n/a
command -v go >/dev/null && s_go=$(secs go tool pprof -top "$tmp/big.pb.gz")

script='import json; d = {i: str(i) * 3 for i in range(200000)}; print(len(json.dumps(d)))'
"$ap" run --rate 1 --no-symbolize -o "$tmp/py.db" -- python3 -c "$script" >/dev/null
r_first=$(fresh "$tmp/py.db")
"$ap" run --rate 1 -o "$tmp/py2.db" -- python3 -c "$script" >/dev/null
r_after_run=$(secs "$ap" top "$tmp/py2.db")
r_ht=n/a
if command -v heaptrack >/dev/null; then
    heaptrack -o "$tmp/ht" python3 -c "$script" >/dev/null 2>&1
    r_ht=$(secs heaptrack_print "$tmp"/ht.*)
fi

report=$(cat <<EOT
# allocprof top: report speed

$(date +%F), $(nproc) cores. Produced by \`bench/cli_top.sh\`; median of 3 runs, seconds.

| data | allocprof top, first (symbolizing) | allocprof top, cached | go tool pprof -top | heaptrack_print |
|---|---:|---:|---:|---:|
| synthetic, 100,000 buckets | $s_first | $s_cached | $s_go | |
| python3, --rate 1 | $r_first | $r_after_run (symbolized by \`run\`) | | $r_ht |
EOT
)
echo "$report"
[ -n "$out" ] && echo "$report" > "$out"
exit 0
