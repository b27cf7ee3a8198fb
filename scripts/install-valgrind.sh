#!/bin/sh
# Install valgrind (callgrind: benchmarks/instructions_bench.py counts the
# instructions per request under it) from Debian's packages when it is not
# on PATH.  Needs root for apt-get.
exec "$(dirname "$0")/apt-install-missing.sh" callgrind_control valgrind
