#!/usr/bin/env bash
# Check the models of model/ (eventpoll, phases, pollerio, rxpool) with spin (see model/README.md):
#
#   model/check.sh             the correct model must pass, every BUG_*
#                              variant and every reachability probe must fail
#   model/check.sh --deep      the same, plus larger bounds (about 2.5 min
#                              on 2 CPUs, up to 2 GB per run)
#   model/check.sh -j N        N runs at a time (default: the number of CPUs)
#
# One line per run: states stored, depth reached, errors, seconds.  Exits
# non-zero when any run ends otherwise than expected.  The work files (pan
# sources, and the trail of a failed run, which `spin -t -p` replays as the
# line printed for it says) are under build/model/.  Needs spin and a C
# compiler (scripts/install-spin.sh installs spin).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="${MODEL_BUILD_DIR:-$root/build/model}"
cc="${CC:-cc}"
jobs="$(nproc 2>/dev/null || echo 2)"
deep=0

while [ $# -gt 0 ]; do
    case "$1" in
        --deep) deep=1 ;;
        -j) shift; jobs="$1" ;;
        -j*) jobs="${1#-j}" ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

command -v spin >/dev/null 2>&1 || { echo "check.sh: spin not found (scripts/install-spin.sh)" >&2; exit 2; }
command -v "$cc" >/dev/null 2>&1 || { echo "check.sh: C compiler $cc not found" >&2; exit 2; }

mkdir -p "$out"

# name | spin -D options | cc options | pan options | expected [| model]
#   expected: pass, or fail:REGEX (pan must report errors, and its first
#   error line must match REGEX: the property the variant is meant to break)
#   model: the .pml file under model/ (default eventpoll.pml)
SAFE="-O1 -DSAFETY -DNOCLAIM"
CYCLE="-O1 -DNP"
QUICK="-O0 -DSAFETY -DNOCLAIM"
ET="-DET_FD1 -DWRITES0=1 -DWRITES1=2"
runs=()
# (stored with the model before `expected`, whose REGEX may contain '|')
add() { runs+=("$1|$2|$3|$4|${6:-eventpoll.pml}|$5"); }

# The correct model: safety (assertions + invalid end states), then any
# cycle at all (-DNP without progress labels: pan -l reports every cycle).
# Longest first, so that -j2 finishes soonest.
# et-*: fd 1 edge-triggered (EPOLLET without EPOLLONESHOT), written twice.
if [ "$deep" = 1 ]; then
    add deep-et-cycles-p3 "-DNPOLLERS=3 $ET" "$CYCLE -DCOLLAPSE" "-l -m100000" pass
    add deep-d2-p2 "-DNPOLLERS=2 -DDELS=2" "$SAFE -DCOLLAPSE" "-m100000" pass
    add deep-w22-p3 "-DNPOLLERS=3 -DWRITES1=2" "$SAFE -DCOLLAPSE" "-m100000" pass
    add deep-et-safety-p3 "-DNPOLLERS=3 $ET" "$SAFE" "-m100000" pass
    add deep-et-cycles-p2 "-DNPOLLERS=2 $ET" "$CYCLE" "-l -m100000" pass
fi
add cycles-p3 "-DNPOLLERS=3" "$CYCLE" "-l -m100000" pass
add safety-p3 "-DNPOLLERS=3" "$SAFE" "-m100000" pass
add cycles-p2 "-DNPOLLERS=2" "$CYCLE" "-l -m100000" pass
add et-safety-p2 "-DNPOLLERS=2 $ET" "$SAFE" "-m100000" pass
add safety-p2 "-DNPOLLERS=2" "$SAFE" "-m100000" pass

# Bug variants: each must break the property it is about.  P_REVERSE
# (explore the last-started process first) finds every one in < 0.1 s;
# the default order finds them too, BUG_REARM_BEFORE_IDLE only after most
# of the state space.
for p in 2 3; do
    add "bug-no-recheck-p$p" "-DNPOLLERS=$p -DBUG_NO_RECHECK" "$QUICK -DP_REVERSE" "-m100000" \
        'fail:assertion violated \(\(nxt\[.*\]==[0-9]+\)&&\(tailR==.*\)\)'
    add "bug-no-fence-x-p$p" "-DNPOLLERS=$p -DBUG_NO_FENCE_X" "$QUICK -DP_REVERSE" "-m100000" \
        'fail:assertion violated \(\(nxt\[.*\]==[0-9]+\)&&\(tailR==.*\)\)'
    add "bug-no-gencheck-p$p" "-DNPOLLERS=$p -DBUG_NO_GENCHECK" "$QUICK -DP_REVERSE" "-m100000" \
        'fail:assertion violated \(wgen\[s[0-9]*\]==g[0-9]*\)'
    add "bug-rearm-before-idle-p$p" "-DNPOLLERS=$p -DBUG_REARM_BEFORE_IDLE" "$QUICK -DP_REVERSE" "-m100000" \
        'fail:assertion violated \( !\(kreg\[[01]\]\)\|\|\(level\[[01]\]==0\)\)'
    add "bug-retire-ready-free-p$p" "-DNPOLLERS=$p -DBUG_RETIRE_READY_FREE" "$QUICK -DP_REVERSE" "-m100000" \
        'fail:assertion violated .*(wstate\[(node|s)\]|onlist)'
done

# Reachability probes (the list is at the top of eventpoll.pml).
for k in $(seq 1 18); do
    defs="-DNPOLLERS=2 -DREACH=$k"
    [ "$k" = 18 ] && defs="$defs $ET"
    add "reach-$k" "$defs" "$QUICK" "-m100000" "fail:assertion violated \\($k!=$k\\)"
done

# phases.pml: poller mode's POLLERS/INLINE phases (park and unpark).
add phases-safety-p3 "-DNPOLLERS=3" "$SAFE" "-m100000" pass phases.pml
add phases-cycles-p2 "-DNPOLLERS=2" "$CYCLE" "-l -m100000" pass phases.pml
add phases-safety-p2 "-DNPOLLERS=2" "$SAFE" "-m100000" pass phases.pml
# (no-park-wait: in the default order the first error pan meets is a
# consumer left waiting at shutdown, after 41 million states (100 s);
# last-started first (P_REVERSE) it meets ALONE violated in 16 s)
add phases-bug-no-park-wait "-DNPOLLERS=2 -DBUG_NO_PARK_WAIT" "$QUICK -DP_REVERSE" "-m100000" \
    'fail:(assertion violated|invalid end state)' phases.pml
add phases-bug-clear-park-early "-DNPOLLERS=2 -DBUG_CLEAR_PARK_EARLY" "$QUICK" "-m100000" \
    'fail:invalid end state' phases.pml
add phases-bug-start-before-clear "-DNPOLLERS=2 -DBUG_START_BEFORE_CLEAR" "$QUICK" "-m100000" \
    'fail:invalid end state' phases.pml

# pollerio.pml: poller-side I/O (the BUSY state, reads and hand-backs).
add pollerio-safety-p3 "-DNPOLLERS=3 -DWRITES=3" "$SAFE" "-m200000" pass pollerio.pml
add pollerio-cycles-p2 "-DNPOLLERS=2" "$CYCLE" "-l -m100000" pass pollerio.pml
add pollerio-safety-p2 "-DNPOLLERS=2" "$SAFE" "-m100000" pass pollerio.pml
add pollerio-bug-del-no-busy-wait "-DBUG_DEL_NO_BUSY_WAIT" "$QUICK" "-m100000" \
    'fail:assertion violated \(open&&\(inc==mi\)\)' pollerio.pml
add pollerio-bug-no-handback-before-sleep "-DBUG_NO_HANDBACK_BEFORE_SLEEP" "$QUICK" "-m100000" \
    'fail:assertion violated \(sent==written\)' pollerio.pml
add pollerio-bug-no-more "-DBUG_NO_MORE" "$QUICK" "-m100000" \
    'fail:assertion violated \(sent==written\)' pollerio.pml
for k in $(seq 1 6); do
    add "pollerio-reach-$k" "-DREACH=$k" "$QUICK" "-m100000" "fail:assertion violated \\($k!=$k\\)" pollerio.pml
done

# rxpool.pml: poller-side I/O's pool of receive buffers (exchange-all take, CAS push).
add rxpool-safety-p2 "-DNPOLLERS=2 -DREADS=2" "$SAFE" "-m100000" pass rxpool.pml
add rxpool-safety-p3 "-DNPOLLERS=3 -DREADS=1" "$SAFE" "-m100000" pass rxpool.pml
add rxpool-cycles-p2 "-DNPOLLERS=2" "$CYCLE" "-l -m100000" pass rxpool.pml
add rxpool-safety-scarce "-DNBUF=2" "$SAFE" "-m100000" pass rxpool.pml
add rxpool-bug-pop-one "-DBUG_POP_ONE" "$QUICK" "-m100000" \
    'fail:assertion violated \((steps==pooled|steps==0|owner\[w\]==10|steps<=[0-9]+)\)' rxpool.pml
for k in $(seq 1 4); do
    defs="-DREACH=$k"
    [ "$k" = 4 ] && defs="$defs -DNBUF=2"
    add "rxpool-reach-$k" "$defs" "$QUICK" "-m100000" "fail:assertion violated \\($k!=$k\\)" rxpool.pml
done

# One run: writes its one-line result to $out/NAME/result, "OK ..." or "UNEXPECTED ...".
one() {
    local name="$1" defs="$2" ccopts="$3" panopts="$4" expect="$5" pml="$6"
    local dir="$out/$name" t0 t1 line errors states depth secs first verdict
    rm -rf "$dir"
    mkdir -p "$dir"
    cp "$here/$pml" "$dir/$pml"
    (
        cd "$dir"
        # shellcheck disable=SC2086
        spin $defs -a "$pml" > spin.log 2>&1 || { echo "UNEXPECTED $name: spin -a failed: $(tail -n 3 spin.log | tr '\n' ' ')" > result; exit 0; }
        # shellcheck disable=SC2086
        "$cc" -w $ccopts -o pan pan.c > cc.log 2>&1 || { echo "UNEXPECTED $name: $cc failed: $(tail -n 3 cc.log | tr '\n' ' ')" > result; exit 0; }
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086
        ./pan $panopts > pan.log 2>&1 || true
        t1=$(date +%s.%N)
        line="$(grep -m1 'errors:' pan.log || true)"
        errors="$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' <<< "$line")"
        depth="$(sed -n 's/.*depth reached \([0-9][0-9]*\).*/\1/p' <<< "$line")"
        states="$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' pan.log | head -n1)"
        secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
        first="$(grep -m1 -E '^pan:[0-9]+:' pan.log || true)"
        if [ -z "$errors" ]; then
            verdict="UNEXPECTED"; first="pan did not finish: $(tail -n 2 pan.log | tr '\n' ' ')"
        elif [ "$expect" = pass ] && grep -qE 'max search depth too small|Search not completed|out of memory' pan.log; then
            verdict="UNEXPECTED"; first="search incomplete: $(grep -m1 -E 'max search depth too small|Search not completed|out of memory' pan.log)"
        elif [ "$expect" = pass ]; then
            if [ "$errors" = 0 ]; then verdict="OK"; else verdict="UNEXPECTED"; fi
        else
            if [ "$errors" != 0 ] && grep -qE -- "${expect#fail:}" <<< "$first"; then verdict="OK"; else verdict="UNEXPECTED"; fi
        fi
        summary="$(printf '%-26s %-5s states=%-9s depth=%-4s errors=%-2s %6ss' \
            "$name" "$([ "$expect" = pass ] && echo pass || echo fail)" "${states:-?}" "${depth:-?}" "${errors:-?}" "$secs")"
        if [ "$verdict" = OK ]; then
            [ "$expect" = pass ] && rm -f pan pan.[bchmpt] || true
            echo "OK $summary${first:+  ($first)}" > result
        else
            echo "UNEXPECTED $summary  ${first:-}  [replay: cd $dir && spin -t -p $defs $pml]" > result
        fi
    )
}

start=$(date +%s)
running=0
for r in "${runs[@]}"; do
    IFS='|' read -r name defs ccopts panopts pml expect <<< "$r"
    one "$name" "$defs" "$ccopts" "$panopts" "$expect" "$pml" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

total=0; bad=0
for r in "${runs[@]}"; do
    name="${r%%|*}"
    total=$((total + 1))
    if [ -f "$out/$name/result" ]; then
        cat "$out/$name/result"
    else
        echo "UNEXPECTED $name: no result"
    fi
    grep -q '^OK ' "$out/$name/result" 2>/dev/null || bad=$((bad + 1))
done
echo "model/check.sh: $((total - bad))/$total runs as expected in $(( $(date +%s) - start ))s (spin $(spin -V | sed -n 's/^Spin Version \([^ ]*\).*/\1/p'), $jobs at a time)"
[ "$bad" = 0 ]
