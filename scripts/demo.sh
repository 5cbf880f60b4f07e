#!/usr/bin/env bash
# Sets up, builds, and runs the bundled demo program under allocprof.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
exec build/cli/allocprof run -- build/demo/allocprof-demo
