#!/usr/bin/env bash
# device_scaling.sh - the eventpoll benchmark (benchmarks/eventpoll_bench.py)
# on a many-core machine, pollers T = 1..8, prepared to run unattended in
# about 5 minutes (hard stop at 6) on a machine without network access.
#
#   OUT=/some/dir bash benchmarks/device_scaling.sh
#
# Writes to $OUT (default benchmarks/out): eventpoll-<stamp>.json,
# eventpoll-<stamp>.md (the table) and device_scaling.log (everything
# printed).  Nothing else is written there, and the names use only letters,
# digits, '.', '-' and '_'.
#
# Python: $PYTHON if set, else .venv/bin/python if it runs here, else
# python3.  wfcloop.EventPoll is used if it imports; otherwise the script
# builds it into a temporary directory with that interpreter (needs Cython,
# setuptools and a C compiler there, no network); if that fails too, the
# EventPoll columns are left out and the C and select.epoll ones still run.
# ep_bench is compiled with $CC (default cc); without a compiler, a carried
# benchmarks/build/ep_bench is used.
#
# Environment knobs (defaults sized for the time budget):
#   THREADS=1,2,3,4,5,6,7,8  ROUNDS=3  SECONDS_PER_RUN=1  FDS=64
#   BUDGET_S=270 (no benchmark round starts that would end later)
set -u
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)

OUT=${OUT:-benchmarks/out}
mkdir -p "$OUT"
LOG="$OUT/device_scaling.log"
T_START=$(date +%s)
elapsed() { echo $(( $(date +%s) - T_START )); }
say() { echo "[device_scaling +$(elapsed)s] $*"; }

THREADS=${THREADS:-1,2,3,4,5,6,7,8}
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-1}
FDS=${FDS:-64}
BUDGET_S=${BUDGET_S:-270}
export PYTHONUNBUFFERED=1

main() {

say "machine: $(nproc) CPUs online ($(getconf _NPROCESSORS_ONLN) configured), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
say "kernel $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- pick an interpreter ---------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ] && .venv/bin/python -c 'import sys' 2>/dev/null; then
        PY=.venv/bin/python
    else
        PY=$(command -v python3 || true)
    fi
fi
if [ -z "$PY" ]; then
    say "no Python interpreter found"; return 1
fi
# absolute, but not through realpath: a venv's python must keep its path
case "$PY" in
    /*) ;;
    */*) PY="$ROOT/$PY" ;;
    *) PY=$(command -v "$PY") ;;
esac
say "python: $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"

# --- wfcloop.EventPoll: importable as is, or built here ----------------------
have_eventpoll() {
    (cd benchmarks && "$PY" -c 'import wfcloop; wfcloop.EventPoll(pollers=1).close()') >/dev/null 2>&1
}
if have_eventpoll; then
    say "wfcloop imports as is"
else
    SITE=$(mktemp -d /tmp/wfcloop-site.XXXXXX)
    say "wfcloop does not import; building it into $SITE (pip --no-build-isolation, no network)"
    if timeout 150 "$PY" -m pip install -q --no-build-isolation --no-deps --no-index \
            --no-cache-dir --target "$SITE" . ; then
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
    else
        say "pip could not build it; trying setup.py build_ext"
        if timeout 120 "$PY" setup.py -q build_ext --build-lib "$SITE" \
                && cp src/wfcloop/*.py "$SITE/wfcloop/" 2>/dev/null; then
            cp src/wfcloop/py.typed "$SITE/wfcloop/" 2>/dev/null
            export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        else
            say "building wfcloop failed"
        fi
    fi
    if have_eventpoll; then
        say "wfcloop built and imports"
    else
        say "wfcloop.EventPoll unavailable: its columns will be missing"
    fi
fi

# --- ep_bench: built by the driver when a compiler exists --------------------
BUILD_ARGS=()
if ! command -v "${CC:-cc}" >/dev/null 2>&1; then
    if [ -x benchmarks/build/ep_bench ] && benchmarks/build/ep_bench --help >/dev/null 2>&1; then
        say "no C compiler; using the carried benchmarks/build/ep_bench"
        BUILD_ARGS=(--no-build)
    else
        say "no C compiler and no usable benchmarks/build/ep_bench: C columns will be missing"
        BUILD_ARGS=(--no-build)
    fi
else
    BUILD_ARGS=(--rebuild)
fi

# --- the benchmark ----------------------------------------------------------
# Hard stop at ~5m45s after the start; rounds are planned to end 25 s before.
REMAIN=$(( 345 - $(elapsed) ))
[ "$REMAIN" -lt 60 ] && REMAIN=60
BUDGET=$(( REMAIN - 25 ))
[ "$BUDGET" -gt "$BUDGET_S" ] && BUDGET=$BUDGET_S
say "running: THREADS=$THREADS ROUNDS=$ROUNDS SECONDS_PER_RUN=$SECONDS_PER_RUN FDS=$FDS, round budget ${BUDGET}s, hard stop in ${REMAIN}s"
timeout --signal=INT --kill-after=10 "$REMAIN" \
    "$PY" benchmarks/eventpoll_bench.py "${BUILD_ARGS[@]}" \
        --threads "$THREADS" --fds "$FDS" --seconds "$SECONDS_PER_RUN" \
        --warmup 0.2 --rounds "$ROUNDS" --budget-s "$BUDGET" \
        --section "$(nproc) CPUs (device_scaling.sh)" --out-dir "$OUT"
rc=$?
say "eventpoll_bench.py exited $rc; files in $OUT:"
ls -l "$OUT"
return $rc
}

set -o pipefail
main 2>&1 | tee -a "$LOG"
