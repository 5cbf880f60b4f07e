#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite:
#   build/        RelWithDebInfo: unit (+ valgrind) and integration tests (LD_PRELOAD)
#   build-asan/   ASan+UBSan: unit tests and the CLI (the interposer is never sanitized)
#   build-debug/  AP_DEBUG_FULL: the LD_PRELOAD integration suite with every check on
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
JOBS=$(nproc)
run() { # name, cmake args..., -- ctest args...
    local dir=$1; shift
    local cargs=() targs=()
    while (($#)) && [ "$1" != "--" ]; do cargs+=("$1"); shift; done
    (($#)) && shift
    targs=("$@")
    echo "=== $dir: configure and build" >&2
    cmake -S . -B "$dir" "${cargs[@]}" >/dev/null
    cmake --build "$dir" -j"$JOBS" >/dev/null
    echo "=== $dir: ctest ${targs[*]}" >&2
    ctest --test-dir "$dir" --output-on-failure -j"$JOBS" "${targs[@]}"
}
run build -DCMAKE_BUILD_TYPE=RelWithDebInfo --
run build-asan -DCMAKE_BUILD_TYPE=Debug -DAP_SANITIZE=ON -- -L unit -LE valgrind
run build-debug -DCMAKE_BUILD_TYPE=Debug -DAP_DEBUG_FULL=ON -- -L integration
