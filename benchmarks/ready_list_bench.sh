#!/usr/bin/env bash
# The ready list in isolation (benchmarks/ready_list_bench.c): producers
# T = 1..N against one consumer, wfcqueue and mutex lists alternating round
# by round.  Prints JSON lines and a markdown table of medians.
#   benchmarks/ready_list_bench.sh [MAX_T=8] [ROUNDS=3] [SECONDS=1] [ITEMS=256]
set -eu
cd "$(dirname "$0")/.."
MAX_T=${1:-8}; ROUNDS=${2:-3}; SECS=${3:-1}; ITEMS=${4:-256}
mkdir -p benchmarks/build
${CC:-cc} -O2 -std=gnu11 -pthread -DWFC_BENCH_HOOKS -Icython \
    benchmarks/ready_list_bench.c cython/eventpoll_core.c -o benchmarks/build/ready_list_bench
ulimit -n 65536 2>/dev/null || true
# The numbers swing by 10x when other processes share the CPUs: say so.
load=$(cut -d' ' -f1 /proc/loadavg)
echo "$(nproc) CPUs, load average $load before the runs" >&2
if python3 -c "import sys; sys.exit(not float('$load') > 0.5)"; then
    echo "warning: the machine is busy (load $load); the ratios will be noisy" >&2
fi
results=$(mktemp)
for r in $(seq 1 "$ROUNDS"); do
    for t in $(seq 1 "$MAX_T"); do
        if [ $(( (r + t) % 2 )) -eq 0 ]; then order="wfcqueue mutex"; else order="mutex wfcqueue"; fi
        for kind in $order; do
            line=$(benchmarks/build/ready_list_bench "$t" "$ITEMS" "$SECS" "$kind")
            echo "round $r: $line" >&2
            echo "$line" >> "$results"
        done
    done
done
python3 - "$results" "$MAX_T" "$(nproc)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
max_t, cpus = int(sys.argv[2]), sys.argv[3]
print(f"\n{cpus} CPUs; delivered events/s (medians), ratio = median of per-round wfcqueue/mutex\n")
print("| producers T | wfcqueue | mutex | wfcqueue/mutex (min-max) |")
print("|---:|---:|---:|---:|")
for t in range(1, max_t + 1):
    w = [r["delivered_per_s"] for r in rows if r["producers"] == t and r["list"] == "wfcqueue"]
    m = [r["delivered_per_s"] for r in rows if r["producers"] == t and r["list"] == "mutex"]
    ratios = [a / b for a, b in zip(w, m) if b]
    print(f"| {t} | {statistics.median(w)/1e6:.2f} M | {statistics.median(m)/1e6:.2f} M | "
          f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |")
PY
rm -f "$results"
