#!/bin/sh
# Install wrk (the HTTP load generator of `benchmarks/echo_bench.py --http`)
# from Debian's packages when it is not on PATH.  Needs root for apt-get.
exec "$(dirname "$0")/apt-install-missing.sh" wrk wrk
