#!/usr/bin/env bash
# Sets up, builds, runs the bundled demo program under allocprof, and reports
# where its memory went (in use at its peak by function, then allocated bytes),
# then writes the HTML report and says where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
out=build/demo.db
build/cli/allocprof run -o "$out" --rate 64K --peak 0.25 -- build/demo/allocprof-demo
echo
build/cli/allocprof list "$out"
echo
build/cli/allocprof top "$out" --sort inuse-bytes -n 5
echo
build/cli/allocprof top "$out" --sort alloc-bytes -n 5
echo
build/cli/allocprof report "$out" -o build/demo.html
echo "Open $(pwd)/build/demo.html in a browser: memory over time, a flame graph, tables."
