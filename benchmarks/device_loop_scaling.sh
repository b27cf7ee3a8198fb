#!/usr/bin/env bash
# device_loop_scaling.sh - issue 4's many-core loop run, prepared to run
# unattended on a lent machine without network access: one wfcloop loop
# inline (pollers=0), with 1/2/4/8 pollers pinned (WFCLOOP_ADAPTIVE=0: the
# pollers always read the kernel, and receive and send for the transports:
# poller-side I/O), 8 pinned without poller-side I/O (-noio, the same-run
# baseline of the last design), and 8 adaptive, against one uvloop loop and
# the C server, under the C load client with several epoll threads (9
# servers x 2 modes x 2 connection counts x 3 rounds: about 4 minutes).
# The target it answers: "on a machine with >= 8 cores, one wfcloop loop
# with pollers >= 2x one uvloop loop".  The table's server CPU column also
# gives the loop thread's share where pollers took some.
#
# Two steps:
#
#   PYTHON=/path/to/python3.X bash benchmarks/device_loop_scaling.sh prepare
#       here, on the development machine, with a CPython of the device's
#       minor version (the lent machines have 3.12: e.g. pyenv's
#       ~/.pyenv/versions/3.12.1/bin/python3.12, in a venv with Cython,
#       setuptools and uvloop): installs wfcloop (built) and a copy of that
#       interpreter's uvloop into build/device_py/ (ignored by git, about
#       20 MB) and builds the C programs into benchmarks/build/;
#
#   OUT=/some/dir bash benchmarks/device_loop_scaling.sh run
#       on the device (carry build/device_py and benchmarks/build): the
#       echo benchmark, about 4 minutes with the defaults, hard stop at
#       BUDGET_S (360 s).  If build/device_py was prepared for another
#       Python minor version, it builds wfcloop there with the device's own
#       Cython and compiler (no network needed) and uses the device's
#       uvloop.  Writes to $OUT (default benchmarks/out): device_loop.json,
#       device_loop.md (the table) and device_loop_scaling.log (everything
#       printed).
#
# Knobs (environment): MODES=protocol,sock  CONNS=100,1000  SIZES=1024
#   SERVERS=(see below)  CLIENT_THREADS=(CPUs/4, 2..4)  ROUNDS=3
#   DURATION=1.5  WARMUP=0.3  BUDGET_S=360
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
SITE="$ROOT/build/device_py"

py_minor() {   # "3.12" for the interpreter $1
    "$1" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")'
}

prepare() {
    local py=${PYTHON:-.venv/bin/python}
    rm -rf "$SITE" && mkdir -p "$SITE"
    "$py" -m pip install -q --no-deps --no-build-isolation --target "$SITE" . || return 1
    local uv
    uv=$("$py" -c 'import os, uvloop; print(os.path.dirname(uvloop.__file__))') || {
        echo "uvloop is not installed for $py (pip install '.[bench]')"; return 1; }
    cp -r "$uv" "$SITE/" || return 1
    "$py" benchmarks/echo_bench.py --build-only || return 1
    py_minor "$py" > "$SITE/PYTHON_VERSION"
    du -sh "$SITE" benchmarks/build
    echo "prepared: carry build/device_py and benchmarks/build"
}

run() {
    OUT=${OUT:-benchmarks/out}
    mkdir -p "$OUT"
    local cpus t0 py want have threads servers rc
    t0=$(date +%s)
    cpus=$(nproc)
    py=${PYTHON:-$(command -v python3)}
    echo "[device_loop_scaling] $cpus CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), kernel $(uname -r)"
    want=$(cat "$SITE/PYTHON_VERSION" 2>/dev/null || echo "?")
    have=$(py_minor "$py")
    if [ "$want" != "$have" ]; then
        # build here: the image has Cython, setuptools and a compiler
        echo "[device_loop_scaling] build/device_py was prepared for Python $want, this is $have ($py): building wfcloop here"
        SITE=$(mktemp -d /tmp/wfcloop_site.XXXXXX)
        "$py" -m pip install -q --no-deps --no-build-isolation --no-index --target "$SITE" . \
            || { echo "[device_loop_scaling] the build failed"; return 2; }
        echo "[device_loop_scaling] built in $(( $(date +%s) - t0 )) s; uvloop: the device's own"
    fi
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
    "$py" -c 'import sys, wfcloop, uvloop; print("Python", sys.version.split()[0], "wfcloop", wfcloop.__file__, "uvloop", uvloop.__version__, uvloop.__file__)' || return 2
    threads=${CLIENT_THREADS:-$(( cpus / 4 ))}
    [ "$threads" -lt 2 ] && threads=2
    [ "$threads" -gt 4 ] && threads=4
    servers=${SERVERS:-wfcloop-p0,wfcloop-p1-pinned,wfcloop-p2-pinned,wfcloop-p4-pinned,wfcloop-p8-pinned,wfcloop-p8-pinned-noio,wfcloop-p8,uvloop,c-server}
    echo "[device_loop_scaling] client threads $threads; servers $servers"
    timeout --signal=INT --kill-after=10 "${BUDGET_S:-360}" \
        "$py" benchmarks/echo_bench.py --no-build \
            --modes "${MODES:-protocol,sock}" --sizes "${SIZES:-1024}" \
            --conns "${CONNS:-100,1000}" --servers "$servers" --threads "$threads" \
            --rounds "${ROUNDS:-3}" --duration "${DURATION:-1.5}" --warmup "${WARMUP:-0.3}" \
            --json "$OUT/device_loop.json" --no-png
    rc=$?
    echo "[device_loop_scaling] echo_bench exited $rc after $(( $(date +%s) - t0 )) s"
    return $rc
}

case "${1:-}" in
    prepare) prepare ;;
    run)
        set -o pipefail
        OUT=${OUT:-benchmarks/out}
        mkdir -p "$OUT"
        run 2>&1 | tee "$OUT/device_loop_scaling.log"
        rc=$?
        # the table alone, for RESULTS.md
        sed -n '/^cell /,/^json:/p' "$OUT/device_loop_scaling.log" | grep -v '^json:' > "$OUT/device_loop.md"
        exit $rc ;;
    *) sed -n '2,28p' "$0"; exit 2 ;;
esac
