#!/usr/bin/env bash
# cli_top_bench.sh — times `allocprof top` on a large synthetic profile: the
# first report (symbolizing every frame address with libdw, filling the
# symbol cache) and the second (from the cache), next to `go tool pprof -top`
# on the same data exported with `allocprof pprof`. Not a ctest.
#
#   tests/cli/cli_top_bench.sh BUILD_DIR [NBUCKETS]     (default 100000)
set -euo pipefail
build=${1:?usage: cli_top_bench.sh BUILD_DIR [NBUCKETS]}
n=${2:-100000}
allocprof=$build/cli/allocprof
mkprofile=$build/tests/cli/mkprofile
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

secs() { # command... -> wall seconds on stdout, command output discarded
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

"$mkprofile" "$tmp/big.db" --synthetic "$n"
echo "profile: $n buckets, $(sqlite3 "$tmp/big.db" 'SELECT count(*) FROM stack') stacks," \
     "$(du -h "$tmp/big.db" | cut -f1)"
echo "allocprof top, first (symbolizing):  $(secs "$allocprof" top "$tmp/big.db") s"
echo "allocprof top, second (cached):      $(secs "$allocprof" top "$tmp/big.db") s"
echo "allocprof top --by stack (cached):   $(secs "$allocprof" top "$tmp/big.db" --by stack) s"
"$allocprof" pprof "$tmp/big.db" -o "$tmp/big.pb.gz" 2>/dev/null
if command -v go >/dev/null; then
    HOME=$tmp GOCACHE=$tmp/gocache go tool pprof -top "$tmp/big.pb.gz" >/dev/null 2>&1 || true
    echo "go tool pprof -top (same data):      $(secs env HOME="$tmp" GOCACHE="$tmp/gocache" \
        go tool pprof -top -sample_index=inuse_space "$tmp/big.pb.gz") s"
fi
