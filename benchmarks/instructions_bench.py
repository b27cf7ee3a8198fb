#!/usr/bin/env python3
"""Instructions per request: the echo servers under callgrind.

A wall-clock A/B on a shared 2-CPU VM spreads 10-20% from round to round,
so it cannot see a change of a few percent.  This tool counts what such a
change is made of: the user-space instructions the server runs per request
(valgrind's callgrind, Ir), which do not depend on the neighbours.  Each
server runs under callgrind; the C load client (benchmarks/tools/
load_client.c) drives it, and at the client's "mark start" / "mark end"
lines (the measured window) the counters are zeroed and dumped with
callgrind_control.  Reported per request: the loop thread's instructions,
and those of every thread (poller threads included).

What it does not count: the kernel's work (the same system calls for every
loop here; echo_bench.py's req/CPU-s includes it) and cycles (a cache miss
costs as much as a hundred instructions).  Under valgrind the server runs
about 50x slower, and adaptive poller mode stays mostly inline, its steady
state on 2 CPUs (a trial of the pollers that falls in the window shows as
an all-threads count above the loop thread's).

    python benchmarks/instructions_bench.py                 # protocol, 1 KiB, 100 conns
    python benchmarks/instructions_bench.py --servers wfcloop,wfcloop-p2,uvloop \\
        --modes protocol,streams --build base=/tmp/base/.venv/bin/python \\
        --servers base:wfcloop-p2,wfcloop-p2

Servers and --build are echo_bench.py's (see its --help).  Needs valgrind
(Debian: apt-get install valgrind).
"""
import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import echo_bench as eb  # noqa: E402  (the servers, the client, the build)

MODES = ("protocol", "buffered", "streams", "sock", "tls")
TOTALS = re.compile(r"^(?:totals|summary):\s*(\d+)", re.M)
# Under valgrind a Python server takes seconds to import and listen.
START_TIMEOUT = 120.0


def callgrind_argv(server_argv, out_file):
    """server_argv run under callgrind (after an `env VAR=...` prefix, so
    that the process valgrind runs is the server itself)."""
    vg = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
          "--collect-atstart=yes", f"--callgrind-out-file={out_file}"]
    if server_argv[0] == "env":
        i = 1
        while i < len(server_argv) and "=" in server_argv[i]:
            i += 1
        return server_argv[:i] + vg + server_argv[i:]
    return vg + server_argv


def callgrind_control(pid, what):
    """Zero (-z) or dump (-d) the counters of the callgrind run `pid`."""
    p = subprocess.run(["callgrind_control", what, str(pid)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0 or "OK" not in p.stdout:
        raise RuntimeError(f"callgrind_control {what} {pid}: {(p.stdout + p.stderr).strip()[-200:]}")


def dump_totals(out_file):
    """{thread number: Ir} of the first dump callgrind wrote after the run's
    start (files out_file.1-NN; out_file.1 without --separate-threads)."""
    totals = {}
    for path in sorted(Path(out_file).parent.glob(Path(out_file).name + ".1*")):
        m = re.search(r"\.1(?:-(\d+))?$", path.name)
        if not m:
            continue
        found = TOTALS.search(path.read_text(errors="replace"))
        if found:
            totals[int(m[1] or 1)] = int(found[1])
    return totals


def measure(server_name, mode, a, work):
    """One server, one cell: {"requests", "loop_ir", "all_ir", ...} or
    {"ok": False, "why"}."""
    argv = eb.server_command(server_name, mode, a, a.size)
    if argv is None:
        return {"ok": False, "why": f"unknown server {server_name!r} (or its --build)"}
    out_file = work / f"{server_name.replace(':', '_')}-{mode}.cg"
    log = work / f"{server_name.replace(':', '_')}-{mode}.stderr"
    eb.SERVER_START_TIMEOUT = START_TIMEOUT
    server = eb.Server(callgrind_argv(argv, out_file), log)
    try:
        server.start()
    except RuntimeError as exc:
        return {"ok": False, "why": f"server: {exc}"}
    try:
        return drive(server, mode, a, out_file)
    finally:
        server.stop()


def drive(server, mode, a, out_file):
    client = [str(eb.CLIENT), "--host", a.host, "--port", str(server.port),
              "-c", str(a.conns), "-s", str(a.size), "-d", str(a.duration),
              "-w", str(a.warmup), "--marks"] + (["--tls"] if mode == "tls" else [])
    proc = subprocess.Popen(client, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    pid = server.proc.pid
    marks, errors = [], []

    def on_mark(line):
        # The counters follow the client's measured window: zeroed at its
        # start, dumped at its end (callgrind_control answers in a few ms,
        # the same at both ends).
        try:
            if line == "mark start":
                callgrind_control(pid, "-z")
                marks.append(time.monotonic())
            elif line == "mark end":
                callgrind_control(pid, "-d")
                marks.append(time.monotonic())
            elif line:
                errors.append(line)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
    out = eb.client_output(proc, on_mark, a.warmup + a.duration + 300, join_s=90)
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"ok": False, "why": "client: " + (" | ".join(errors)[-300:] or f"exit {proc.returncode}")}
    totals = dump_totals(out_file)
    if len(marks) != 2 or not totals or not res.get("requests"):
        return {"ok": False, "why": "no dump of the measured window: " + " | ".join(errors)[-300:]}
    requests = res["requests"]
    return {"ok": True, "requests": requests, "rps_under_valgrind": res.get("rps"),
            "threads": len(totals), "loop_ir": totals.get(1, 0),
            "all_ir": sum(totals.values()),
            "loop_ir_per_request": round(totals.get(1, 0) / requests, 1),
            "all_ir_per_request": round(sum(totals.values()) / requests, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="wfcloop,wfcloop-p2,uvloop,asyncio",
                   help="comma-separated, as echo_bench.py's (default: %(default)s)")
    p.add_argument("--build", action="append", type=eb.build_arg, default=[],
                   metavar="NAME=PYTHON", help="another build's interpreter (echo_bench.py's)")
    p.add_argument("--modes", default="protocol",
                   help=f"comma-separated, of {', '.join(MODES)} (default: %(default)s)")
    p.add_argument("--size", type=int, default=1024, help="message bytes (default 1024)")
    p.add_argument("--conns", type=int, default=100, help="connections (default 100)")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of load before the counted window (default 2)")
    p.add_argument("--duration", type=float, default=4.0,
                   help="seconds counted (default 4; tens of thousands of requests under valgrind)")
    p.add_argument("--rounds", type=int, default=1,
                   help="runs per server and mode (default 1: the counts repeat within about 1%%, but for a trial of the pollers in the window and sock_*, which depends on the load)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args(argv)
    a.poller_count = 2
    a.http_app = None
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        p.error("valgrind is not installed (Debian: apt-get install valgrind)")
    modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        p.error(f"unknown mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}")
    servers = [s for s in a.servers.split(",") if s and s != "c-server"]
    eb.build()
    if "tls" in modes:
        if not eb.client_has_tls():
            p.error("the load client was built without TLS (apt-get install libssl-dev, "
                    "then echo_bench.py --rebuild --build-only)")
    eb.raise_nofile()
    runs = []
    with tempfile.TemporaryDirectory(prefix="instructions_bench-") as tmp:
        work = Path(tmp)
        if "tls" in modes:
            a.tls_cert, a.tls_key = eb.make_certificate(work / "cert")
        for rnd in range(1, a.rounds + 1):
            for mode in modes:
                for server in servers:
                    eb.progress(f"[{rnd}/{a.rounds}] {mode} {server} under callgrind ...")
                    r = measure(server, mode, a, work)
                    r.update(server=server, mode=mode, round=rnd)
                    runs.append(r)
                    eb.progress(f"    {r['loop_ir_per_request']:.0f} instructions per request "
                                f"in the loop thread, {r['all_ir_per_request']:.0f} in all"
                                if r["ok"] else f"    failed: {r['why']}")
    print(report(runs, servers, modes, a))
    if a.json:
        Path(a.json).write_text(json.dumps({
            "benchmark": "instructions_bench", "command": " ".join(sys.argv),
            "machine": eb.machine_info(), "git": eb.git_head(),
            "params": {k: v for k, v in vars(a).items() if k not in ("build", "json")},
            "runs": runs}, indent=1, default=str))
    return 0 if all(r["ok"] for r in runs) else 1


def report(runs, servers, modes, a):
    """The table: median instructions per request by server and mode, and
    the ratio to uvloop's and asyncio's (fewer instructions: below 1)."""
    lines = [f"instructions per request (callgrind Ir, user space), {a.size} B, {a.conns} connections, "
             f"{a.duration:g} s counted after {a.warmup:g} s; medians of {a.rounds} round(s)",
             "", f"{'mode':<9} {'server':<22} {'loop thread':>12} {'all threads':>12} "
             f"{'×uvloop':>8} {'×asyncio':>8}"]

    def med(server, mode, key):
        xs = [r[key] for r in runs if r["ok"] and r["server"] == server and r["mode"] == mode]
        return eb.median(xs) if xs else None
    for mode in modes:
        uv, aio = med("uvloop", mode, "all_ir_per_request"), med("asyncio", mode, "all_ir_per_request")
        for server in servers:
            loop_ir, all_ir = med(server, mode, "loop_ir_per_request"), med(server, mode, "all_ir_per_request")
            if all_ir is None:
                lines.append(f"{mode:<9} {server:<22} {'failed':>12}")
                continue
            ratio = lambda ref: f"{all_ir / ref:8.3f}" if ref else f"{'-':>8}"  # noqa: E731
            lines.append(f"{mode:<9} {server:<22} {loop_ir:>12,.0f} {all_ir:>12,.0f} "
                         f"{ratio(uv)} {ratio(aio)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
