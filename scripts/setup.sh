#!/usr/bin/env bash
# Installs what allocprof needs to build and test on Debian 12, when missing.
# Uses sudo when not root. Safe to run again: installs only absent packages.
#   setup.sh           what building and the demo need
#   setup.sh --tests   and what the test suite runs under the profiler: CPython's
#                      own test suites, Chromium, unshare (util-linux)
set -euo pipefail
PKGS=(build-essential g++ cmake pkg-config libunwind-dev libsqlite3-dev libcmocka-dev
      libdw-dev libelf-dev zlib1g-dev python3 sqlite3 git valgrind golang-go
      libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0)
if [ "${1:-}" = "--tests" ]; then
    PKGS+=(libpython3.11-testsuite chromium util-linux)
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
