#!/usr/bin/env python3
"""eventpoll benchmark: the wfcqueue ready list against a mutex-protected one.

A port of Eric Wong's "eponeshotmt" idea to wfcloop's design.  F eventfds
are kept readable; every event is taken once, the eventfd is read, 1 is
written back (so it is readable again) and the fd is re-armed.  For each
T (poller threads, or Python threads for select.epoll) these variants run,
alternating round by round, each in its own process:

  c-wfcq        benchmarks/ep_bench.c, wfcqueue ready list, T pollers, one C
                consumer calling wfc_ep_wait(maxevents) in a tight loop
  c-mutex       the same with the mutex-protected ready list
  c-wfcq-work   c-wfcq with --work-ns of busy work per event in the consumer
  c-mutex-work  c-mutex likewise (pollers queue up while the consumer works)
  py-wfcq       wfcloop.EventPoll(pollers=T) consumed by poll() in Python
  py-mutex      wfcloop.EventPoll(pollers=T, _ready_list="mutex")
  select        plain select.epoll driven from T Python threads exactly like
                eponeshotmt: fds registered EPOLLIN|EPOLLONESHOT, each thread
                poll(maxevents=1), read, write back, modify() to re-arm

Results: the median over rounds of events/s per (T, variant) and, for each
pair, the median of per-round ratios (a round runs both variants back to
back, so pairing cancels slow drifts of the machine).  A JSON file goes to
benchmarks/out/ (or --out-dir), a markdown table next to it, and with
--write-results a section of benchmarks/RESULTS.md is (re)written.

Each run also records how much CPU other processes used meanwhile (from
/proc/stat) and the hypervisor's steal time; --wait-quiet waits for a quiet
machine and re-runs disturbed runs.  The measured code is fingerprinted
(git HEAD, sha256 of the core sources, of ep_bench and of the wfcloop
extension); ep_bench is built once before the runs and the EventPoll
children import a private copy of the installed package, so a rebuild in
the middle of a run does not mix versions.

Options that change what is measured, off by default: --pin (consumer on
one CPU, pollers on the others), --no-io (C consumer leaves the eventfds
alone), --no-snapshot (the core's snapshot mode off, as the event loop
runs it), --work-ns (busy work per event in the +work variants).

    .venv/bin/python benchmarks/eventpoll_bench.py                # ~1 min on 2 cores
    .venv/bin/python benchmarks/eventpoll_bench.py --full         # longer, more T
    .venv/bin/python benchmarks/eventpoll_bench.py --threads 1,2,4,8 --fds 64 \\
        --seconds 2 --rounds 3 --write-results
    bash benchmarks/device_scaling.sh                              # T = 1..8, many cores
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
BUILD_DIR = BENCH_DIR / "build"
BINARY = BUILD_DIR / "ep_bench"
C_SOURCES = ["benchmarks/ep_bench.c", "cython/eventpoll_core.c"]
C_DEPS = C_SOURCES + ["cython/eventpoll_core.h", "cython/wfcqueue.h"]
RESULTS_MD = BENCH_DIR / "RESULTS.md"

# name -> (kind, ready list, consumer work?, column label)
VARIANTS = {
    "c-wfcq": ("c", "wfcqueue", False, "C wfcqueue"),
    "c-mutex": ("c", "mutex", False, "C mutex"),
    "c-wfcq-work": ("c", "wfcqueue", True, "C wfcqueue +work"),
    "c-mutex-work": ("c", "mutex", True, "C mutex +work"),
    "py-wfcq": ("py", "wfcqueue", False, "EventPoll wfcqueue"),
    "py-mutex": ("py", "mutex", False, "EventPoll mutex"),
    "select": ("select", None, False, "select.epoll T threads"),
}
# (numerator, denominator, label): the ratios the table shows
RATIOS = [
    ("c-wfcq", "c-mutex", "C wfcq/mutex"),
    ("c-wfcq-work", "c-mutex-work", "C+work wfcq/mutex"),
    ("py-wfcq", "py-mutex", "EventPoll wfcq/mutex"),
    ("py-wfcq", "select", "EventPoll wfcq/select.epoll"),
]
# the pairs that the issue's goal is about ("wfcqueue ahead of the mutex
# list at every T > 1")
GOAL_PAIRS = [r for r in RATIOS if r[1] != "select"]

PROFILES = {
    # default: about a minute on a 2-core machine
    "default": dict(threads="1,2,4,8", fds=64, seconds=0.5, warmup=0.15, rounds=3),
    "full": dict(threads="0,1,2,3,4,6,8,12,16", fds=64, seconds=2.0, warmup=0.3, rounds=5),
}


# --------------------------------------------------------------------------
# children: one measurement each, printed as one JSON line
# --------------------------------------------------------------------------

def _open_eventfds(n):
    return [os.eventfd(1, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(n)]


def _rusage():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF)


def _cpu_fields(r0, r1, secs):
    user = r1.ru_utime - r0.ru_utime
    sys_ = r1.ru_stime - r0.ru_stime
    return {
        "cpu_user_s": round(user, 4),
        "cpu_sys_s": round(sys_, 4),
        "cpu_util": round((user + sys_) / secs, 3) if secs > 0 else 0.0,
        "vol_ctx_switches": r1.ru_nvcsw - r0.ru_nvcsw,
        "invol_ctx_switches": r1.ru_nivcsw - r0.ru_nivcsw,
    }


def _stats_dict(ep):
    """EventPoll.stats() as a plain dict (dict, namedtuple or object)."""
    try:
        st = ep.stats()
    except Exception:  # noqa: BLE001 - stats are optional in the report
        return None
    if isinstance(st, dict):
        return dict(st)
    if hasattr(st, "_asdict"):
        return dict(st._asdict())
    return {k: getattr(st, k) for k in dir(st)
            if not k.startswith("_") and isinstance(getattr(st, k), int)}


_GAUGES = ("pollers", "registered")


def _pin_threads():
    """Like ep_bench --pin: this (consumer) thread on the first allowed CPU,
    every other thread of the process (the core's pollers) on the rest.
    Returns how many other threads were moved, -1 with a single CPU."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return -1
    me = threading.get_native_id()
    moved = 0
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        if tid != me:
            try:
                os.sched_setaffinity(tid, allowed[1:])
                moved += 1
            except OSError:
                pass
    os.sched_setaffinity(0, allowed[:1])
    return moved


def child_eventpoll(a):
    """wfcloop.EventPoll consumed by poll() in a Python loop."""
    import wfcloop

    kwargs = {"pollers": a.pollers}
    if a.ready_list != "wfcqueue":
        kwargs["_ready_list"] = a.ready_list
    ep = wfcloop.EventPoll(**kwargs)
    fds = _open_eventfds(a.fds)
    for fd in fds:
        ep.register(fd, select.EPOLLIN)  # level-triggered
    if a.no_snapshot:
        ep._set_snapshot(False)
    pinned = _pin_threads() if a.pin else -1
    poll, rd, wr, mono = ep.poll, os.eventfd_read, os.eventfd_write, time.monotonic
    maxevents = a.maxevents
    eagain = 0

    def run(duration):
        nonlocal eagain
        n = waits = 0
        end = mono() + duration
        while True:
            evs = poll(0.1, maxevents)
            waits += 1
            for fd, _ev in evs:
                try:
                    rd(fd)
                except BlockingIOError:
                    eagain += 1
                wr(fd, 1)
            n += len(evs)
            if mono() >= end:
                return n, waits

    run(a.warmup)
    eagain = 0
    s0 = _stats_dict(ep)
    r0 = _rusage()
    t0 = time.perf_counter()
    events, waits = run(a.seconds)
    secs = time.perf_counter() - t0
    r1 = _rusage()
    s1 = _stats_dict(ep)
    ep.close()
    for fd in fds:
        os.close(fd)
    out = {
        "bench": "eventpoll_py", "ready_list": a.ready_list, "pollers": a.pollers,
        "fds": a.fds, "maxevents": maxevents, "pinned_threads": pinned, "events": events,
        "seconds": round(secs, 6), "events_per_s": round(events / secs, 1),
        "waits": waits, "events_per_wait": round(events / waits, 3) if waits else 0,
        "errors": {"eagain": eagain},
    }
    out.update(_cpu_fields(r0, r1, secs))
    if s0 is not None and s1 is not None:
        out["stats"] = {k: (v if k in _GAUGES else v - s0.get(k, 0))
                        for k, v in s1.items() if isinstance(v, int)}
    return out


def child_select(a):
    """select.epoll from T Python threads, eponeshotmt style."""
    nthreads = max(1, a.pollers)
    ep = select.epoll()
    fds = _open_eventfds(a.fds)
    flags = select.EPOLLIN | select.EPOLLONESHOT
    for fd in fds:
        ep.register(fd, flags)
    counts = [0] * nthreads
    eagain = [0] * nthreads
    stop = [False]

    def worker(i):
        poll, modify = ep.poll, ep.modify
        rd, wr = os.eventfd_read, os.eventfd_write
        n = 0
        while not stop[0]:
            for fd, _ev in poll(0.05, 1):
                try:
                    rd(fd)
                except BlockingIOError:
                    eagain[i] += 1
                wr(fd, 1)
                modify(fd, flags)
                n += 1
            counts[i] = n

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(nthreads)]
    for t in threads:
        t.start()
    time.sleep(a.warmup)
    c0, e0, r0, t0 = sum(counts), sum(eagain), _rusage(), time.perf_counter()
    time.sleep(a.seconds)
    c1, e1, r1, t1 = sum(counts), sum(eagain), _rusage(), time.perf_counter()
    stop[0] = True
    for t in threads:
        t.join()
    ep.close()
    for fd in fds:
        os.close(fd)
    secs = t1 - t0
    events = c1 - c0
    out = {
        "bench": "select_epoll_threads", "threads": nthreads, "pollers": a.pollers,
        "fds": a.fds, "maxevents": 1, "events": events, "seconds": round(secs, 6),
        "events_per_s": round(events / secs, 1), "errors": {"eagain": e1 - e0},
    }
    out.update(_cpu_fields(r0, r1, secs))
    return out


def child_main(a):
    if a._child == "select":
        res = child_select(a)
    else:
        res = child_eventpoll(a)
    print(json.dumps(res), flush=True)


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------

def log(msg):
    print(msg, flush=True)


def build_binary(cc, force=False):
    """Compile ep_bench when a source is newer than the binary."""
    deps = [ROOT / d for d in C_DEPS]
    missing = [str(d) for d in deps if not d.exists()]
    if missing:
        if BINARY.exists():
            log(f"note: {', '.join(missing)} missing; using existing {BINARY}")
            return True
        log(f"cannot build ep_bench: missing {', '.join(missing)}")
        return False
    if BINARY.exists() and not force:
        newest = max(d.stat().st_mtime for d in deps)
        if BINARY.stat().st_mtime >= newest:
            return True
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [cc, "-O2", "-std=gnu11", "-pthread", "-Icython", *C_SOURCES,
           "-o", str(BINARY.relative_to(ROOT))]
    log("build: " + " ".join(cmd))
    try:
        subprocess.run(cmd, cwd=ROOT, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        log(f"build failed: {exc}")
        if BINARY.exists():
            log(f"using the existing {BINARY}")
            return True
        return False
    return True


CHILD_ENV = None   # environment of the Python children (a private wfcloop copy)


def probe_eventpoll(env=None):
    """(None, package dir) when wfcloop.EventPoll works in a child, else
    (why not, None)."""
    code = ("import wfcloop, select, os\n"
            "ep = wfcloop.EventPoll(pollers=1)\n"
            "ep2 = wfcloop.EventPoll(pollers=1, _ready_list='mutex')\n"
            "fd = os.eventfd(1, os.EFD_NONBLOCK)\n"
            "ep.register(fd, select.EPOLLIN)\n"
            "assert ep.poll(5, 8), 'no event'\n"
            "ep.close(); ep2.close(); os.close(fd)\n"
            "print(os.path.dirname(wfcloop.__file__))\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=30, cwd=BENCH_DIR, env=env)
    except subprocess.TimeoutExpired:
        return "probe timed out", None
    if p.returncode != 0:
        lines = (p.stderr or p.stdout).strip().splitlines()
        return (lines[-1] if lines else f"probe exited {p.returncode}"), None
    return None, p.stdout.strip().splitlines()[-1]


def private_wfcloop(pkg_dir, tmp):
    """Copy the wfcloop package the probe found into tmp, so that every
    Python child of this run imports the same build even if the package is
    reinstalled meanwhile.  Returns the children's environment."""
    shutil.copytree(pkg_dir, os.path.join(tmp, "wfcloop"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ)
    env["PYTHONPATH"] = tmp + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def fingerprint(pkg_dir=None):
    """Which code is measured: git HEAD, whether the core is modified
    against it, sha256 (16 hex digits) of the C sources, of ep_bench and
    of the wfcloop extension modules."""
    fp = {}
    try:
        fp["git_head"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
            text=True, timeout=10).stdout.strip() or None
        st = subprocess.run(
            ["git", "status", "--porcelain", "--", "cython", "benchmarks/ep_bench.c"],
            cwd=ROOT, capture_output=True, text=True, timeout=10).stdout
        fp["git_dirty"] = [ln[3:] for ln in st.splitlines()]
    except (OSError, subprocess.TimeoutExpired):
        fp["git_head"] = None
    for rel in C_DEPS:
        if (ROOT / rel).exists():
            fp[rel] = _sha(ROOT / rel)
    if BINARY.exists():
        fp["ep_bench"] = _sha(BINARY)
    if pkg_dir and os.path.isdir(pkg_dir):
        for name in sorted(os.listdir(pkg_dir)):
            if name.endswith(".so"):
                fp["wfcloop/" + name.split(".")[0]] = _sha(os.path.join(pkg_dir, name))
    return fp


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks():
    """(busy, steal) seconds summed over all CPUs, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            parts = f.readline().split()
    except OSError:
        return None
    v = [int(x) for x in parts[1:]]
    v += [0] * (8 - len(v))
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / _HZ, steal / _HZ


def foreign_load(seconds=0.5):
    """CPUs kept busy by other processes over `seconds` (this one sleeps)."""
    a = _cpu_ticks()
    time.sleep(seconds)
    b = _cpu_ticks()
    if a is None or b is None:
        return None
    return (b[0] - a[0]) / seconds


def wait_for_quiet(max_s, threshold=0.2, need=3, sample=0.5):
    """Wait until other processes use < threshold CPUs in `need` consecutive
    samples, at most max_s seconds.  Returns (quiet?, seconds waited)."""
    t0 = time.monotonic()
    ok = 0
    while time.monotonic() - t0 < max_s:
        fl = foreign_load(sample)
        if fl is None:
            return True, 0.0
        ok = ok + 1 if fl < threshold else 0
        if ok >= need:
            return True, time.monotonic() - t0
    return False, time.monotonic() - t0


NOISY = 0.25   # CPUs used by other processes during a run that make it "noisy"


def run_one(variant, T, a):
    """One measurement in a child process; adds how much CPU the rest of the
    machine used meanwhile ("foreign_cpus": busy CPUs from /proc/stat minus
    the child's own CPU time, over the child's wall time) and steal time."""
    import resource
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    k0 = _cpu_ticks()
    w0 = time.monotonic()
    res = _run_one(variant, T, a)
    wall = time.monotonic() - w0
    k1 = _cpu_ticks()
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if k0 and k1 and wall > 0:
        child = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
        res["foreign_cpus"] = round(max(0.0, (k1[0] - k0[0]) - child) / wall, 3)
        res["steal_cpus"] = round((k1[1] - k0[1]) / wall, 3)
    return res


def _run_one(variant, T, a):
    kind, ready_list, work, _label = VARIANTS[variant]
    common = ["--fds", str(a.fds), "--seconds", str(a.seconds),
              "--warmup", str(a.warmup), "--maxevents", str(a.maxevents)]
    if kind == "c":
        cmd = [str(BINARY), "--pollers", str(T), "--ready-list", ready_list, *common]
        if work and a.work_ns:
            cmd += ["--work-ns", str(a.work_ns)]
        if a.no_io:
            cmd += ["--no-io"]
        if a.pin:
            cmd += ["--pin"]
        if a.no_snapshot:
            cmd += ["--no-snapshot"]
    elif kind == "py":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", "eventpoll",
               "--pollers", str(T), "--ready-list", ready_list, *common]
        if a.pin:
            cmd += ["--pin"]
        if a.no_snapshot:
            cmd += ["--no-snapshot"]
    else:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", "select",
               "--pollers", str(T), *common]
    timeout = a.seconds + a.warmup + 30
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           cwd=BENCH_DIR, env=CHILD_ENV if kind == "py" else None)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s", "cmd": cmd}
    res = None
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            try:
                res = json.loads(line)
            except ValueError:
                pass
    if res is None or p.returncode not in (0, 3):
        err = (p.stderr or p.stdout).strip().splitlines()
        return {"error": f"exit {p.returncode}: " + (err[-1] if err else "no output"),
                "cmd": cmd}
    if p.returncode == 3:
        res["error"] = "consistency check failed (see errors)"
    return res


def fmt_rate(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    return f"{x / 1e3:.0f} k"


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info():
    model = cpu_model()
    try:
        cc = subprocess.run([os.environ.get("CC", "cc"), "--version"],
                            capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        cc = None
    return {
        "cpu_count": os.cpu_count(),
        "sched_getaffinity": len(os.sched_getaffinity(0)),
        "cpu_model": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "python_impl": platform.python_implementation(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cc": cc,
    }


def summarize(runs, threads, variants):
    """Per (T, variant): median events/s and friends; per (T, pair): ratios."""
    by = {}
    for r in runs:
        if "error" in r or "events_per_s" not in r or r.get("partial_round"):
            continue
        by.setdefault((r["T"], r["variant"]), {})[r["round"]] = r
    summary = {}
    for T in threads:
        row = {}
        for v in variants:
            rs = by.get((T, v), {})
            vals = [r["events_per_s"] for r in rs.values()]
            if not vals:
                continue
            ent = {"median": statistics.median(vals), "min": min(vals),
                   "max": max(vals), "rounds": len(vals)}
            fc = [r["foreign_cpus"] for r in rs.values() if "foreign_cpus" in r]
            if fc:
                ent["foreign_cpus_max"] = max(fc)
            # per-event view of the core's stats and of CPU use (medians)
            derived = {}
            for r in rs.values():
                ev = r.get("events") or 0
                st = r.get("stats") or {}
                d = {"cpu_util": r.get("cpu_util"),
                     "events_per_wait": r.get("events_per_wait"),
                     "invol_cs_per_s": (r.get("invol_ctx_switches", 0) / r["seconds"])
                     if r.get("seconds") else None,
                     "vol_cs_per_kev": 1000 * r.get("vol_ctx_switches", 0) / ev if ev else None}
                cons = r.get("consumer")
                if cons and ev:
                    d["consumer_cpu"] = cons["cpu_util"]
                    d["consumer_invol_per_kev"] = 1000 * cons["invol_ctx_switches"] / ev
                if r.get("yields") is not None and ev:
                    d["consumer_yields_per_kev"] = 1000 * (r["yields"]["consumer"]
                                                           + r["naps"]["consumer"]) / ev
                if ev and st:
                    for k in ("wakeups", "sleeps", "splices", "enqueued",
                              "enqueued_found_empty", "coalesced", "rearms",
                              "harvested", "harvested_inline", "stale"):
                        if k in st:
                            d[k + "_per_kev"] = 1000 * st[k] / ev
                    if st.get("splices"):
                        d["events_per_splice"] = ev / st["splices"]
                for k, x in d.items():
                    if x is not None:
                        derived.setdefault(k, []).append(x)
            ent["derived"] = {k: statistics.median(x) for k, x in derived.items()}
            row[v] = ent
        ratios = {}
        for num, den, label in RATIOS:
            a, b = by.get((T, num), {}), by.get((T, den), {})
            per_round = [a[k]["events_per_s"] / b[k]["events_per_s"]
                         for k in sorted(set(a) & set(b)) if b[k]["events_per_s"]]
            if per_round:
                ratios[label] = {"median": statistics.median(per_round),
                                 "min": min(per_round), "max": max(per_round),
                                 "per_round": per_round}
        summary[T] = {"variants": row, "ratios": ratios}
    return summary


def classify(r):
    """ahead / behind / inconclusive from the per-round ratios."""
    if r["min"] > 1.0:
        return "ahead"
    if r["max"] < 1.0:
        return "behind"
    return "inconclusive"


def verdict_lines(summary, threads, cpus):
    """Per goal pair: is wfcqueue ahead at every T > 1?  "ahead" needs every
    round's paired ratio above 1; "behind" every round's below 1; otherwise
    the rounds disagree and the cell is called inconclusive."""
    lines = []
    for _num, _den, label in GOAL_PAIRS:
        cells = []
        for T in threads:
            if T <= 1:
                continue
            r = summary[T]["ratios"].get(label)
            if r is not None:
                cells.append((T, r, classify(r)))
        if not cells:
            lines.append(f"- {label}: not measured.")
            continue
        kinds = {c for _, _, c in cells}
        if kinds == {"ahead"}:
            head = "**met**: wfcqueue ahead in every round at every measured T > 1"
        elif "behind" in kinds:
            head = "**not met**: the mutex list was ahead in every round at some T"
        else:
            head = "**not shown**: at some T the rounds disagree"
        parts = []
        for T, r, c in cells:
            over = " (oversubscribed)" if T + 1 > cpus else ""
            parts.append(f"T={T} {r['median']:.2f} {c}{over}")
        lines.append(f"- {label}: {head}. " + "; ".join(parts) + ".")
    return lines


def markdown(meta, summary, threads, variants, section):
    m = meta["machine"]
    cpus = m["sched_getaffinity"]
    out = [f"#### eventpoll benchmark: {section}", ""]
    out.append(f"- date: {meta['date']}")
    out.append(f"- command: `{meta['command']}`")
    out.append(f"- CPUs: os.cpu_count() = {m['cpu_count']}, "
               f"len(os.sched_getaffinity(0)) = {cpus}; CPU model: {m['cpu_model']}")
    out.append(f"- Python {m['python']} ({m['python_impl']}), kernel {m['kernel']}, "
               f"{m['machine']}, compiler: {m['cc']}")
    code = meta.get("code") or {}
    if code:
        dirty = code.get("git_dirty") or []
        out.append(f"- code: git {code.get('git_head')}"
                   + (f" with uncommitted changes to {', '.join(dirty)}" if dirty else "")
                   + "; sha256/16: " + ", ".join(
                       f"{k} {v}" for k, v in code.items()
                       if k not in ("git_head", "git_dirty")))
    p = meta["params"]
    out.append(f"- parameters: {p['fds']} eventfds, {p['seconds']} s measured "
               f"(+{p['warmup']} s warm-up) per run, {meta['rounds_done']} rounds "
               f"(of {p['rounds']} asked), maxevents {p['maxevents']} "
               f"(select.epoll: 1), consumer work {p['work_ns']} ns/event in the "
               f"+work columns, {'no fd I/O' if p['no_io'] else 'read + write back per event'}, "
               + ("consumer pinned to one CPU and pollers to the others (--pin)"
                  if p.get("pin") else "threads not pinned")
               + (", snapshot mode off (--no-snapshot)" if p.get("snapshot") is False
                  else ", snapshot mode on (the core's default)"))
    fl = meta.get("foreign_load")
    if fl:
        out.append(f"- other processes during the runs: median {fl['median']:.2f} CPUs busy, "
                   f"max {fl['max']:.2f}; {fl['noisy_runs']} of {fl['runs']} runs had "
                   f">= 0.25 CPUs used by others; steal max {fl['steal_max']:.2f}"
                   + (f"; {fl['redone']} noisy runs were discarded and run again "
                      f"(--wait-quiet)" if fl.get("redone") else ""))
    if meta.get("notes"):
        for n in meta["notes"]:
            out.append(f"- note: {n}")
    out.append("")
    out.append("Events per second, median over rounds (T = poller threads; "
               "for select.epoll, Python threads sharing the epoll). Ratios are "
               "medians of per-round ratios, with the per-round min-max.")
    out.append("")
    cols = [v for v in variants]
    ratio_labels = [lab for num, den, lab in RATIOS if num in variants and den in variants]
    head = ["T"] + [VARIANTS[v][3] for v in cols] + ratio_labels
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---:"] * len(head)) + "|")
    for T in threads:
        row = summary[T]
        cells = [str(T)]
        for v in cols:
            e = row["variants"].get(v)
            cells.append(fmt_rate(e["median"]) if e else "n/a")
        for lab in ratio_labels:
            r = row["ratios"].get(lab)
            cells.append(f"{r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})" if r else "n/a")
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append("Goal: \"the wfcqueue list ahead of the mutex list at every T > 1\".")
    out.append("")
    out.extend(verdict_lines(summary, threads, cpus))
    n = meta["rounds_done"]
    if n:
        out.append("")
        chance = 2 / 2 ** n
        out.append(f"\"ahead\"/\"behind\" = every one of the {n} rounds' paired ratios "
                   f"on that side of 1; \"inconclusive\" = the rounds disagree. With "
                   f"{n} rounds, noise alone puts all rounds on one side with "
                   f"probability {chance:.2g} per cell"
                   + (", so a lone ahead/behind cell is weak evidence; more rounds "
                      "(--rounds, --full) sharpen it." if chance > 0.05 else
                      " (the table has several cells, so expect a chance one now "
                      "and then)."))
    out.append("")
    # the core's counters per 1000 delivered events (medians over rounds)
    cv = [v for v in variants if VARIANTS[v][0] in ("c", "py")]
    if cv:
        out.append("Per 1000 delivered events unless said otherwise (medians over "
                   "rounds): ev/wait = events per wait call; ev/splice = events per "
                   "non-empty splice of the ready list; inline = events the consumer "
                   "harvested from the kernel itself; wakeups = consumer woken by a "
                   "poller; sleeps = consumer went to sleep; found-empty = enqueues "
                   "that found the list empty; yields = sched_yield + nanosleep calls "
                   "by the consumer inside the core, waiting for a poller (wfcqueue's "
                   "link wait, snapshot mode's settle; counted by ep_bench); CPU = (user+sys)/wall of the whole process; "
                   "consumer CPU = the same for the consumer thread; consumer "
                   "preempted = involuntary context switches of the consumer thread.")
        out.append("")
        hd = ["T", "variant", "ev/wait", "ev/splice", "inline", "wakeups", "sleeps",
              "found-empty", "coalesced", "yields", "CPU", "consumer CPU",
              "consumer preempted"]
        out.append("| " + " | ".join(hd) + " |")
        out.append("|" + "|".join(["---:"] * len(hd)) + "|")

        def f(d, k, fmt="{:.1f}"):
            x = d.get(k)
            return fmt.format(x) if x is not None else "-"

        for T in threads:
            for v in cv:
                e = summary[T]["variants"].get(v)
                if not e:
                    continue
                d = e["derived"]
                out.append("| " + " | ".join([
                    str(T), v, f(d, "events_per_wait"), f(d, "events_per_splice"),
                    f(d, "harvested_inline_per_kev", "{:.0f}"),
                    f(d, "wakeups_per_kev", "{:.2f}"), f(d, "sleeps_per_kev", "{:.2f}"),
                    f(d, "enqueued_found_empty_per_kev"), f(d, "coalesced_per_kev"),
                    f(d, "consumer_yields_per_kev", "{:.2f}"),
                    f(d, "cpu_util", "{:.2f}"), f(d, "consumer_cpu", "{:.2f}"),
                    f(d, "consumer_invol_per_kev", "{:.0f}"),
                ]) + " |")
        out.append("")
    return "\n".join(out) + "\n"


def write_results_section(md_text, section, path=RESULTS_MD):
    begin = f"<!-- BEGIN eventpoll-bench {section} (generated by benchmarks/eventpoll_bench.py) -->"
    end = f"<!-- END eventpoll-bench {section} -->"
    block = f"{begin}\n{md_text.rstrip()}\n{end}\n"
    if path.exists():
        text = path.read_text()
    else:
        text = ("# Benchmark results\n\n"
                "Sections between BEGIN/END markers are rewritten by the benchmark "
                "scripts (`--write-results`); text outside them is kept.\n\n")
    i, j = text.find(begin), text.find(end)
    if i >= 0 and j > i:
        text = text[:i] + block.rstrip("\n") + text[j + len(end):]
    else:
        if not text.endswith("\n"):
            text += "\n"
        text += "\n" + block
    path.write_text(text)


def parse_threads(s):
    vals = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            vals.extend(range(int(lo), int(hi) + 1))
        else:
            vals.append(int(part))
    if not vals or min(vals) < 0:
        raise argparse.ArgumentTypeError(f"bad --threads {s!r}")
    return vals


def driver_main(a, argv):
    prof = PROFILES["full" if a.full else "default"]
    for k, v in prof.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    threads = parse_threads(a.threads) if isinstance(a.threads, str) else a.threads
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"unknown variant {v!r}; known: {', '.join(VARIANTS)}")
    if a.work_ns == 0:
        variants = [v for v in variants if not VARIANTS[v][2]]

    notes = []
    machine = machine_info()
    cpus = machine["sched_getaffinity"]
    log(f"machine: {machine['cpu_model']}; os.cpu_count()={machine['cpu_count']}, "
        f"sched_getaffinity={cpus}; Python {machine['python']}")

    if any(VARIANTS[v][0] == "c" for v in variants):
        if a.no_build:
            ok = BINARY.exists()
            if not ok:
                log(f"--no-build given but {BINARY} does not exist")
        else:
            ok = build_binary(a.cc, force=a.rebuild)
        if not ok:
            variants = [v for v in variants if VARIANTS[v][0] != "c"]
            notes.append("C variants skipped: ep_bench could not be built")
            log("C variants skipped")
    global CHILD_ENV
    pkg_dir = None
    tmpdir = tempfile.TemporaryDirectory(prefix="eventpoll-bench-")
    if any(VARIANTS[v][0] == "py" for v in variants):
        why, found = probe_eventpoll()
        if not why:
            CHILD_ENV = private_wfcloop(found, tmpdir.name)
            why, pkg_dir = probe_eventpoll(CHILD_ENV)
            log(f"wfcloop: {found} (copied to {pkg_dir} for this run)")
        if why:
            variants = [v for v in variants if VARIANTS[v][0] != "py"]
            notes.append(f"wfcloop.EventPoll variants skipped: {why}")
            log(f"EventPoll variants skipped: {why}")
    if not variants:
        sys.exit("nothing to run")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(a.out_dir) if a.out_dir else BENCH_DIR / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"eventpoll-{stamp}.json"
    md_path = out_dir / f"eventpoll-{stamp}.md"
    section = a.section or (f"{cpus} CPUs" + (", --pin" if a.pin else "")
                            + (", --no-io" if a.no_io else "")
                            + (", --no-snapshot" if a.no_snapshot else ""))

    cmdline = " ".join(shlex.quote(x) for x in
                       [os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else sys.executable,
                        os.path.relpath(Path(__file__).resolve(), ROOT), *argv])
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "command": cmdline,
        "machine": machine,
        "params": {"threads": threads, "variants": variants, "fds": a.fds,
                   "seconds": a.seconds, "warmup": a.warmup, "rounds": a.rounds,
                   "maxevents": a.maxevents, "work_ns": a.work_ns, "no_io": a.no_io,
                   "pin": a.pin, "snapshot": not a.no_snapshot,
                   "budget_s": a.budget_s},
        "notes": notes,
        "rounds_done": 0,
        "code": fingerprint(pkg_dir),
    }
    select_T0 = "select" in variants and 0 in threads
    if select_T0:
        notes.append("select.epoll has no T = 0 (inline) form; its T = 0 cell is empty")

    jobs_per_round = [(T, v) for T in threads for v in variants
                      if not (v == "select" and T == 0)]
    total = len(jobs_per_round) * a.rounds
    est = total * (a.seconds + a.warmup + 0.1)
    log(f"{len(variants)} variants x {len(threads)} T x {a.rounds} rounds = {total} runs, "
        f"~{est:.0f} s; output {json_path}")
    for T in threads:
        if T + 1 > cpus:
            log(f"note: T={T}: {T} pollers + 1 consumer > {cpus} CPUs (oversubscribed)")

    fl = foreign_load(1.0)
    if a.wait_quiet and fl is not None and fl >= 0.2:
        log(f"other processes keep {fl:.2f} CPUs busy; waiting up to {a.wait_quiet:.0f} s for quiet")
        quiet, waited = wait_for_quiet(a.wait_quiet)
        log(f"{'quiet' if quiet else 'still busy'} after {waited:.0f} s")
        fl = foreign_load(1.0)
    meta["foreign_cpus_before"] = fl
    discarded = []
    if fl is not None and fl >= 0.2:
        log(f"warning: other processes keep {fl:.2f} CPUs busy: results will be noisy")

    runs = []
    t_start = time.monotonic()
    done = 0
    round_times = []

    def dump():
        summary = summarize(runs, threads, variants)
        data = {"meta": meta, "summary": {str(T): s for T, s in summary.items()},
                "runs": runs, "discarded_runs": discarded}
        tmp = json_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(json_path)
        return summary

    try:
        for rnd in range(a.rounds):
            if a.budget_s and round_times:
                elapsed = time.monotonic() - t_start
                if elapsed + max(round_times) > a.budget_s:
                    msg = (f"stopped after {rnd} of {a.rounds} rounds: the next round "
                           f"would pass --budget-s {a.budget_s:.0f}")
                    notes.append(msg)
                    log(msg)
                    break
            t_round = time.monotonic()
            # rotate the variant order each round so that no variant always runs
            # first (or right after the same neighbour)
            k = rnd % len(variants)
            order = variants[k:] + variants[:k]
            for T in threads:
                for v in order:
                    if v == "select" and T == 0:
                        continue
                    res = run_one(v, T, a)
                    redo = 0
                    while (a.wait_quiet and redo < 2
                           and res.get("foreign_cpus", 0) >= NOISY):
                        redo += 1
                        log(f"    T={T} {v}: other processes used "
                            f"{res['foreign_cpus']:.2f} CPUs during the run; waiting "
                            f"for quiet and running it again ({redo}/2)")
                        discarded.append(dict(res, variant=v, T=T, round=rnd,
                                              discarded="noisy"))
                        wait_for_quiet(a.wait_quiet)
                        res = run_one(v, T, a)
                    res.update({"variant": v, "T": T, "round": rnd})
                    runs.append(res)
                    done += 1
                    el = time.monotonic() - t_start
                    eta = el / done * (total - done)
                    if "error" in res and "events_per_s" not in res:
                        txt = "ERROR " + res["error"]
                    else:
                        txt = f"{res['events_per_s']:>13,.0f} ev/s"
                        if "error" in res:
                            txt += "  (" + res["error"] + ")"
                    if res.get("foreign_cpus", 0) >= 0.2:
                        txt += f"  [other processes used {res['foreign_cpus']:.2f} CPUs]"
                    log(f"[{done:3d}/{total} {el:5.0f}s eta {eta:4.0f}s] round {rnd + 1}/{a.rounds} "
                        f"T={T:<2d} {v:<13s} {txt}")
            round_times.append(time.monotonic() - t_round)
            meta["rounds_done"] = rnd + 1
            dump()
    except KeyboardInterrupt:
        # the results of finished rounds are kept; a partial round is
        # recorded in the JSON runs but not summarized
        runs[:] = [r for r in runs if r["round"] < meta["rounds_done"]] + \
            [dict(r, partial_round=True) for r in runs if r["round"] >= meta["rounds_done"]]
        notes.append(f"interrupted during round {meta['rounds_done'] + 1}; "
                     f"the table uses {meta['rounds_done']} complete rounds")
        log("interrupted: " + notes[-1])

    meta["elapsed_s"] = round(time.monotonic() - t_start, 1)
    after = fingerprint(pkg_dir)
    changed = sorted(k for k in set(after) | set(meta["code"])
                     if k != "git_dirty" and after.get(k) != meta["code"].get(k))
    if changed:
        # ep_bench is built once before the runs and the EventPoll children
        # import a private copy, so the measured code did not change; the
        # sources in the tree did.
        notes.append("the sources changed during the run (" + ", ".join(changed)
                     + "); the runs used the versions fingerprinted at the start")
        meta["code_after"] = after
    fcs = [r["foreign_cpus"] for r in runs if "foreign_cpus" in r]
    if fcs:
        meta["foreign_load"] = {
            "median": statistics.median(fcs), "max": max(fcs), "runs": len(fcs),
            "noisy_runs": sum(1 for x in fcs if x >= 0.25),
            "steal_max": max(r.get("steal_cpus", 0) for r in runs),
            "redone": len(discarded)}
    summary = dump()
    md = markdown(meta, summary, threads, variants, section)
    md_path.write_text(md)
    log("")
    log(md)
    log(f"JSON: {json_path}")
    log(f"markdown: {md_path}")
    if a.write_results:
        write_results_section(md, section, Path(a.results_file) if a.results_file else RESULTS_MD)
        log(f"updated section '{section}' of {a.results_file or RESULTS_MD}")
    tmpdir.cleanup()
    errors = [r for r in runs if "error" in r]
    if errors:
        log(f"{len(errors)} runs reported errors (see the JSON)")
        return 1
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default=None,
                   help="comma list (ranges ok: 1-8) of T; 0 = inline (no pollers). "
                        "Default 1,2,4,8; --full: 0,1,2,3,4,6,8,12,16")
    p.add_argument("--fds", type=int, default=None, help="eventfds kept readable (64)")
    p.add_argument("--seconds", type=float, default=None,
                   help="measured seconds per run (0.5; --full 2)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per run")
    p.add_argument("--rounds", type=int, default=None, help="rounds (3; --full 5)")
    p.add_argument("--full", action="store_true", help="more rounds, longer runs, more T")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma list of: " + ", ".join(VARIANTS))
    p.add_argument("--maxevents", type=int, default=64,
                   help="maxevents per wfc_ep_wait / EventPoll.poll (64)")
    p.add_argument("--work-ns", type=int, default=300,
                   help="consumer busy work per event in the +work variants (300; 0 drops them)")
    p.add_argument("--no-io", action="store_true",
                   help="C variants: do not read/write the eventfds")
    p.add_argument("--pin", action="store_true",
                   help="C and EventPoll variants: consumer on the first allowed CPU, "
                        "pollers on the others (select.epoll threads stay unpinned)")
    p.add_argument("--no-snapshot", action="store_true",
                   help="C and EventPoll variants: turn the core's snapshot mode off "
                        "(no settling before a partial batch; the event loop's setting)")
    p.add_argument("--cc", default=os.environ.get("CC", "cc"))
    p.add_argument("--no-build", action="store_true", help="use the existing benchmarks/build/ep_bench")
    p.add_argument("--rebuild", action="store_true", help="rebuild ep_bench even if up to date")
    p.add_argument("--out-dir", default=None, help="where the JSON and markdown go (benchmarks/out)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="start no round that would end after this many seconds")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                   help="wait up to S seconds for other processes to go idle before "
                        "starting, and re-run (twice at most, after waiting again) a "
                        "run during which they used >= 0.25 CPUs")
    p.add_argument("--write-results", action="store_true",
                   help="(re)write this machine's section of benchmarks/RESULTS.md")
    p.add_argument("--results-file", default=None, help=argparse.SUPPRESS)
    p.add_argument("--section", default=None,
                   help="RESULTS.md section name (default: '<N> CPUs' plus the "
                        "--pin/--no-io/--no-snapshot flags given)")
    # child mode (one measurement, JSON on stdout)
    p.add_argument("--_child", choices=["eventpoll", "select"], help=argparse.SUPPRESS)
    p.add_argument("--pollers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--ready-list", default="wfcqueue", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._child:
        for k in ("fds", "seconds", "warmup"):
            if getattr(a, k) is None:
                setattr(a, k, PROFILES["default"][k])
        child_main(a)
        return 0
    return driver_main(a, argv)


if __name__ == "__main__":
    sys.exit(main())
