#!/usr/bin/env bash
# compare.sh — run a program once plainly and once with the allocator preloaded, and fail
# if the two runs differ in standard output or exit status.
#
# The brief's contract: "a program the library runs behaves exactly as without it". This
# checks it on real programs (python3, sqlite3, git, our own C/C++ programs).
#
# Usage: compare.sh [--preload LIB] [--require PROG]... [--env NAME=VALUE]... CMD [ARGS...]
#   --preload LIB   the library for LD_PRELOAD; default $AP_PRELOAD, else the LD_PRELOAD
#                   this script was started with (which is then removed for the plain run)
#   --require PROG  skip (exit 77) unless PROG is an executable or on PATH; CMD itself is
#                   always required
#   --env NAME=VAL  set in both runs
# Each run starts in a fresh empty directory, so pass absolute paths. Standard error is
# not compared (it is shown when the runs differ). Exit: 0 same, 1 different, 77 skipped,
# 2 usage error.
set -u

preload="${AP_PRELOAD:-${LD_PRELOAD:-}}"
unset LD_PRELOAD
required=()
envs=()
while [ $# -gt 0 ]; do
    case "$1" in
    --preload) preload="$2"; shift 2 ;;
    --require) required+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) break ;;
    esac
done
if [ $# -eq 0 ]; then
    echo "usage: compare.sh [--preload LIB] [--require PROG] [--env N=V] CMD [ARGS...]" >&2
    exit 2
fi
if [ -z "$preload" ] || [ ! -f "$preload" ]; then
    echo "compare.sh: preload library '${preload}' not found" >&2
    exit 2
fi
for prog in "$1" ${required[@]+"${required[@]}"}; do
    if ! command -v "$prog" >/dev/null 2>&1; then
        echo "compare.sh: SKIP: '$prog' is not installed"
        exit 77
    fi
done

# ld.so only warns when a preload cannot be loaded: make sure it really is in the process.
real_preload="$(readlink -f "$preload")"
if ! env LD_PRELOAD="$preload" cat /proc/self/maps 2>/dev/null | grep -qF "$real_preload"; then
    echo "compare.sh: $preload is not mapped into a preloaded process:" >&2
    env LD_PRELOAD="$preload" true 2>&1 | head -n 5 >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/apcompare.XXXXXX")" || exit 2
trap 'rm -rf "$work"' EXIT

# run NAME [VAR=VALUE...]: runs the command in $work/NAME.d, output in $work/NAME.{out,err}
run() {
    local name="$1"
    shift
    mkdir -p "$work/$name.d"
    local t0 t1
    t0=$(date +%s%N)
    (cd "$work/$name.d" && exec env ${envs[@]+"${envs[@]}"} "$@" "${cmd[@]}") \
        >"$work/$name.out" 2>"$work/$name.err" </dev/null
    echo $? >"$work/$name.rc"
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000)) >"$work/$name.ms"
}

cmd=("$@")
run plain
run preload "LD_PRELOAD=$preload"

rc_plain=$(cat "$work/plain.rc")
rc_pre=$(cat "$work/preload.rc")
echo "compare.sh: ${cmd[*]}"
echo "  plain:   exit $rc_plain, $(wc -c <"$work/plain.out") bytes out," \
    "$(cat "$work/plain.ms") ms"
echo "  preload: exit $rc_pre, $(wc -c <"$work/preload.out") bytes out," \
    "$(cat "$work/preload.ms") ms"

status=0
if [ "$rc_plain" != "$rc_pre" ]; then
    echo "FAIL: exit status differs: plain $rc_plain, with LD_PRELOAD=$preload $rc_pre"
    if [ "$rc_pre" -gt 128 ]; then
        echo "      (the preloaded run died of signal $((rc_pre - 128)))"
    fi
    status=1
fi
if ! cmp -s "$work/plain.out" "$work/preload.out"; then
    echo "FAIL: standard output differs (--- plain, +++ preloaded):"
    diff -u "$work/plain.out" "$work/preload.out" | head -n 200
    status=1
fi
if [ "$rc_plain" != 0 ]; then
    # The plain run is the reference, but a reference that fails is worth a look.
    echo "note: the plain run exited $rc_plain; its stderr:"
    tail -n 20 "$work/plain.err"
fi
if [ $status -ne 0 ]; then
    echo "--- stderr of the preloaded run (last 40 lines):"
    tail -n 40 "$work/preload.err"
    echo "--- stderr of the plain run (last 20 lines):"
    tail -n 20 "$work/plain.err"
else
    echo "  same output and exit status"
fi
exit $status
