"""Does poller-side socket I/O pay where there are spare cores?

A measurement for the design question wfcloop left open, not part of
wfcloop: ``benchmarks/poller_io_proto.c`` is a minimal echo server with a
Python callback per message (``data_received(data)`` calling ``write(data)``,
as a protocol calls ``transport.write``), run two ways:

- ``proto-inline``: the loop thread does ``epoll_wait``, ``recv``, the
  callback and ``send`` (wfcloop's inline mode in miniature);
- ``proto-pN``: N poller threads do the ``recv``, the ``send`` and the
  ``EPOLLONESHOT`` re-arm; the loop thread only runs the callbacks, taking
  reads off a wait-free queue and handing each batch's sends back with one
  eventfd write.

Against ``uvloop`` and ``wfcloop`` (inline) running ``examples/echo_protocol.py``
under the same C load client (``benchmarks/build/load_client``), rounds
rotating the order.  Builds the extension with ``cc`` for this Python.

    python benchmarks/poller_io_proto.py --pollers 1,2,4,8 --rounds 3 --threads 4
"""
import argparse
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import echo_bench  # noqa: E402  (its server and client plumbing)

SRC = HERE / "poller_io_proto.c"
BUILD = HERE / "build"
EXT = BUILD / ("poller_io_proto" + sysconfig.get_config_var("EXT_SUFFIX"))

SERVE = """
import sys
sys.path.insert(0, {build!r})
import poller_io_proto
write = poller_io_proto.write
def data_received(data):
    write(data)
poller_io_proto.serve(0, {pollers}, data_received, {seconds})
"""


def build():
    if EXT.exists() and EXT.stat().st_mtime >= SRC.stat().st_mtime:
        return
    BUILD.mkdir(exist_ok=True)
    cmd = ["cc", "-O2", "-Wall", "-Wextra", "-shared", "-fPIC", "-std=gnu11", "-pthread",
           f"-I{HERE.parent / 'cython'}", f"-I{sysconfig.get_paths()['include']}",
           str(SRC), "-o", str(EXT)]
    print("build: " + " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)


def server_argv(name, a):
    seconds = a.warmup + a.duration + 30
    if name.startswith("proto-"):
        pollers = 0 if name == "proto-inline" else int(name[len("proto-p"):])
        return [sys.executable, "-c", SERVE.format(build=str(BUILD), pollers=pollers,
                                                   seconds=seconds)]
    loop = "wfcloop" if name == "wfcloop" else "uvloop"
    argv = [sys.executable, str(HERE.parent / "examples" / "echo_protocol.py"),
            "--loop", loop, "--port", "0"]
    return argv + (["--pollers", "0"] if loop == "wfcloop" else [])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pollers", default="1,2,4,8", help="proto-pN variants (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    p.add_argument("--duration", type=float, default=2, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup", type=float, default=0.5, help="warm-up seconds (default %(default)s)")
    p.add_argument("--conns", type=int, default=100, help="connections (default %(default)s)")
    p.add_argument("--size", type=int, default=1024, help="message bytes (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="client threads (default %(default)s)")
    a = p.parse_args()
    a.host = "127.0.0.1"
    build()
    echo_bench.build()
    names = (["uvloop", "wfcloop", "proto-inline"]
             + [f"proto-p{n}" for n in a.pollers.split(",") if n])
    cell = {"mode": "protocol", "size": a.size, "conns": a.conns}
    runs = {n: {} for n in names}
    logs = Path(tempfile.mkdtemp(prefix="poller_io_proto-"))
    for rnd in range(a.rounds):
        k = rnd % len(names)
        for name in names[k:] + names[:k]:
            srv = echo_bench.Server(server_argv(name, a), logs / f"{name}.stderr")
            try:
                srv.start()
                res = echo_bench.run_client(srv, cell, SimpleNamespace(**vars(a)))
                if res.get("errors"):   # a wrong or missing echo: not a measurement
                    res.update(ok=False, why=f"{res['errors']} client errors: {res.get('error')}")
            finally:
                srv.stop()
            runs[name][rnd] = res
            print(f"round {rnd + 1}/{a.rounds} {name:13} "
                  + (f"{res['rps'] / 1e3:7.1f} k req/s, server CPU "
                     f"{res.get('server_cpu_pct', 0):.0f}% (loop thread "
                     f"{res.get('loop_thread_cpu_pct', 0):.0f}%)"
                     if res.get("ok") else f"FAILED {res.get('why')}"), flush=True)
    print(f"\nprotocol echo, {a.size} B, {a.conns} connections, {a.threads} client "
          f"threads, {a.rounds} rounds x {a.duration:g} s; Python {sys.version.split()[0]}; "
          "x uvloop: median of per-round ratios")
    print("| server | req/s | x uvloop | server CPU | loop thread CPU |\n|---|---:|---:|---:|---:|")
    for name in names:
        ok = {r: x for r, x in runs[name].items() if x.get("ok")}
        if not ok:
            print(f"| {name} | failed | | | |")
            continue
        rat = [x["rps"] / runs["uvloop"][r]["rps"] for r, x in ok.items()
               if runs["uvloop"].get(r, {}).get("ok")]
        med = lambda key: statistics.median([x.get(key) or 0 for x in ok.values()])  # noqa: E731
        print(f"| {name} | {med('rps') / 1e3:.1f} k | "
              f"{statistics.median(rat) if rat else float('nan'):.2f} | "
              f"{med('server_cpu_pct'):.0f}% | {med('loop_thread_cpu_pct'):.0f}% |")


if __name__ == "__main__":
    main()
