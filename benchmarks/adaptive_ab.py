"""A/B of wfcloop builds and poller configurations on one echo server.

Used to find why adaptive poller mode, while its pollers were parked, served
fewer requests than inline mode on the 16-core device (RESULTS.md).  Each
configuration is a wfcloop build (a directory for PYTHONPATH, made with
``pip install --target``), a ``--pollers`` count and an environment; the
server is ``examples/echo_protocol.py`` and the load the C client
(``benchmarks/build/load_client``).  Rounds rotate the configurations' order;
the table gives req/s medians and the median of per-round ratios to the
first configuration.  Also prints what a wait costs (``EventPoll.poll(0)``)
per build and configuration, and the machine's clock source.

    python benchmarks/adaptive_ab.py --build old=build/device_py \\
        --build new=build/device_fix --config old:0 --config old:2 \\
        --config new:0 --config new:2 --rounds 4 --duration 3
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "examples" / "echo_protocol.py"
LOGS = Path(tempfile.mkdtemp(prefix="adaptive_ab-"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import echo_bench  # noqa: E402  (its server and client plumbing)

WAIT_COST = r"""
import os, select, sys, time
from wfcloop import EventPoll
pollers, adaptive, n = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3])
ep = EventPoll(pollers=pollers)
if pollers and adaptive:
    ep._set_adaptive(True)
ep.poll(0)
efd = os.eventfd(1)                   # always readable: every wait delivers it
ep.register(efd, select.EPOLLIN)
for _ in range(1000):
    ep.poll(0)
best = None
for _ in range(3):
    t = time.perf_counter()
    for _ in range(n):
        ep.poll(0)
    dt = (time.perf_counter() - t) / n
    best = dt if best is None else min(best, dt)
ep.close()
os.close(efd)
print(f"{best * 1e9:.0f}")
"""


def env_for(site, extra=()):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(site)
    env.pop("WFCLOOP_ADAPTIVE", None)
    env.update(dict(extra))
    return env


def run_echo(site, pollers, extra_env, a):
    """One run of examples/echo_protocol.py on the build in `site`, through
    echo_bench's server and client plumbing; returns (req/s, None) or
    (None, why)."""
    argv = (["env", "-u", "WFCLOOP_ADAPTIVE", f"PYTHONPATH={site}"]
            + [f"{k}={v}" for k, v in extra_env.items()]
            + [sys.executable, str(SERVER), "--loop", "wfcloop", "--pollers", str(pollers),
               "--port", "0"])
    srv = echo_bench.Server(argv, LOGS / f"{site.name}-{pollers}.stderr")
    try:
        srv.start()
        res = echo_bench.run_client(srv, {"mode": "protocol", "size": 1024, "conns": a.conns},
                                    SimpleNamespace(**vars(a), host="127.0.0.1"))
    except (RuntimeError, OSError) as exc:
        return None, f"server: {exc}"
    finally:
        srv.stop()
    if not res.get("ok") or res.get("errors"):
        return None, res.get("why") or f"{res.get('errors')} client errors"
    return res["rps"], None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", action="append", required=True,
                   help="NAME=DIR: a wfcloop installed with pip install --target DIR")
    p.add_argument("--config", action="append", required=True,
                   help="BUILD:POLLERS[:pinned] (pinned: WFCLOOP_ADAPTIVE=0)")
    p.add_argument("--rounds", type=int, default=4,
                   help="rounds; each runs every configuration once (default %(default)s)")
    p.add_argument("--duration", type=float, default=3,
                   help="measured seconds per run (default %(default)s)")
    p.add_argument("--warmup", type=float, default=0.5,
                   help="warm-up seconds per run (default %(default)s)")
    p.add_argument("--conns", type=int, default=100,
                   help="client connections (default %(default)s)")
    p.add_argument("--threads", type=int, default=2,
                   help="client threads (default %(default)s)")
    p.add_argument("--wait-calls", type=int, default=200000,
                   help="EventPoll.poll(0) calls per wait-cost measurement "
                        "(default %(default)s)")
    a = p.parse_args()
    echo_bench.build()
    builds = dict(b.split("=", 1) for b in a.build)
    configs = []
    for c in a.config:
        parts = c.split(":")
        extra = {"WFCLOOP_ADAPTIVE": "0"} if parts[2:] == ["pinned"] else {}
        configs.append((c, (ROOT / builds[parts[0]]).resolve(), int(parts[1]), extra))

    try:
        cs = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource").read_text().strip()
    except OSError:
        cs = "?"
    t = time.perf_counter()
    for _ in range(1000000):
        time.monotonic()
    print(f"{os.cpu_count()} CPUs, kernel {os.uname().release}, Python {sys.version.split()[0]}, "
          f"clock source {cs}, time.monotonic() {(time.perf_counter() - t) * 1e3:.0f} ns",
          flush=True)

    print("\nEventPoll.poll(0) on one always-readable eventfd, best of 3 x "
          f"{a.wait_calls} calls (ns per call):", flush=True)
    for name, site in builds.items():
        for pollers, adaptive in ((0, 0), (2, 1)):
            out = subprocess.run([sys.executable, "-c", WAIT_COST, str(pollers), str(adaptive),
                                  str(a.wait_calls)], capture_output=True, text=True,
                                 env=env_for((ROOT / site).resolve()))
            label = "inline" if pollers == 0 else "pollers=2 adaptive (parked)"
            print(f"  {name:8} {label:28} {out.stdout.strip() or out.stderr[-200:]}", flush=True)

    rps = {c[0]: [] for c in configs}
    for rnd in range(a.rounds):
        order = configs[rnd % len(configs):] + configs[:rnd % len(configs)]
        for label, site, pollers, extra in order:
            r, err = run_echo(site, pollers, extra, a)
            rps[label].append((rnd, r))
            print(f"round {rnd + 1}/{a.rounds} {label:16} "
                  + (f"{r / 1e3:.1f} k req/s" if r else f"FAILED {err}"), flush=True)
    base = configs[0][0]
    print(f"\nprotocol echo, 1 KiB, {a.conns} connections, {a.threads} client threads, "
          f"{a.rounds} rounds x {a.duration} s; ratio: median of per-round ratios to {base}")
    print(f"| config | req/s (median) | x {base} (per round) |\n|---|---:|---:|")
    by_base = dict(rps[base])
    for label, *_ in configs:
        vals = [r for _, r in rps[label] if r]
        ratios = [r / by_base[rnd] for rnd, r in rps[label] if r and by_base.get(rnd)]
        med = statistics.median(vals) if vals else 0
        rr = statistics.median(ratios) if ratios else 0
        print(f"| {label} | {med / 1e3:.1f} k | {rr:.2f} ({', '.join(f'{x:.2f}' for x in ratios)}) |")


if __name__ == "__main__":
    main()
