#!/bin/sh
# Install wrk (the HTTP load generator of `benchmarks/echo_bench.py --http`)
# from Debian's packages when it is not on PATH.  Needs root for apt-get.
set -eu
if command -v wrk >/dev/null 2>&1; then
    echo "install-wrk: $(command -v wrk) is there already"
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends wrk
command -v wrk >/dev/null 2>&1 || { echo "install-wrk: wrk still missing" >&2; exit 1; }
echo "install-wrk: ok"
