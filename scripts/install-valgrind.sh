#!/bin/sh
# Install valgrind (callgrind: benchmarks/instructions_bench.py counts the
# instructions per request under it) from Debian's packages when it is not
# on PATH.  Needs root for apt-get.
set -eu
if command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then
    echo "install-valgrind: $(command -v valgrind) is there already"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends valgrind
command -v callgrind_control >/dev/null 2>&1 || { echo "install-valgrind: valgrind still missing" >&2; exit 1; }
echo "install-valgrind: ok"
