#!/usr/bin/env python3
"""Echo benchmark: wfcloop's echo servers against uvloop, asyncio and a C
epoll server, driven by a C load client.

Servers (each a fresh subprocess per run, started with --port 0, killed after):

  wfcloop           examples/echo_<mode>.py --loop wfcloop (default pollers:
                    wfcloop.default_pollers(), inline mode on <= 2 CPUs)
  wfcloop-pollers   the same with --pollers N (--poller-count, default 2):
                    adaptive poller mode, the default (pollers parked while
                    the loop thread reading the kernel itself does as well)
  wfcloop-pK        the same with --pollers K (any K; the pollers table uses them)
  wfcloop-pK-pinned the same with WFCLOOP_ADAPTIVE=0: the pollers always read
                    the kernel, and receive and send for the socket
                    transports (poller-side I/O, the default)
  ...-noio          any wfcloop-pK variant with WFCLOOP_POLLER_IO=0: the
                    pollers only read the kernel and hand every event over
                    (the seed's design); ...-io sets WFCLOOP_POLLER_IO=1
  uvloop            examples/echo_<mode>.py --loop uvloop
  asyncio           examples/echo_<mode>.py --loop asyncio
  c-server          benchmarks/tools/c_echo_server.c: one thread, epoll (the limit)

Modes: protocol (asyncio.Protocol), buffered (BufferedProtocol), streams
(StreamReader/Writer), sock (loop.sock_recv/sock_sendall), tls (protocol mode
over TLS: examples/echo_protocol.py --certfile/--keyfile with a certificate
made at run time, load_client --tls; needs OpenSSL's headers, else skipped
with a note), udp (examples/echo_udp.py under udp_load_client), and with --http
the HTTP stacks under wrk (-t1, keep-alive, 100 connections): a bare
asyncio.Protocol server (examples/http_raw.py), uvicorn + httptools
(examples/http_uvicorn.py) and aiohttp (examples/http_aiohttp.py), each plain
and over TLS (a certificate made at run time with trustme, else openssl),
plus raw over TLS with 64 KiB responses and with a new TLS connection per
request (wrk -H 'Connection: close': handshakes per second).

Client: benchmarks/tools/load_client.c, N connections ping-ponging messages of
one size over T threads (--threads, default 1), each with its own epoll;
req/s, p50/p99 latency, errors.  Both C programs are built with cc -O2 into
benchmarks/build/ (ignored by git).

Method: a round runs every server once in every cell (mode x size x
connections), in an order that rotates from round to round; the server's CPU
time (utime + stime from /proc/PID/stat, all its threads) is sampled at the
edges of the client's measured window.  A table cell shows the median over
rounds; a ratio (xuvloop, xasyncio, target checks) is the median of the
per-round ratios of the two servers in the same round and cell, so slow
drifts of the machine cancel.  Run-to-run spread on a shared 2-core VM is
about 20%: use --rounds 5 or more for figures worth quoting.

    .venv/bin/python benchmarks/echo_bench.py              # ~1.5 min: protocol,
                                                           # streams, sock, tls, udp;
                                                           # 1 KiB, 100 conns (sockets)
    .venv/bin/python benchmarks/echo_bench.py --full       # the whole matrix + pollers table
    .venv/bin/python benchmarks/echo_bench.py --modes protocol --sizes 1024,10240 \\
        --conns 10,100 --rounds 5 --duration 3 --json out.json --png out.png
    .venv/bin/python benchmarks/echo_bench.py --http       # adds the HTTP rows (needs wrk:
                                                           # scripts/install-wrk.sh)
    .venv/bin/python benchmarks/echo_bench.py --http-only --http-apps raw,uvicorn
    .venv/bin/python benchmarks/echo_bench.py --build before=../old/.venv/bin/python \\
        --servers wfcloop,before:wfcloop,uvloop --rounds 5   # two builds in the same rounds
    .venv/bin/python benchmarks/echo_bench.py --udp --modes protocol --rounds 3
                                  # adds the UDP echo cells (1 KiB x 10/100 sockets,
                                  # 65507 B x 10; client benchmarks/tools/udp_load_client.c;
                                  # datagrams of 8 KiB and more: the server gets
                                  # --rcvbuf 4 MiB, so bursts are not dropped)
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import queue
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from eventpoll_bench import cpu_model  # benchmarks/ is the script's own folder

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "benchmarks"
BUILD_DIR = BENCH_DIR / "build"
OUT_DIR = BENCH_DIR / "out"
EXAMPLES = ROOT / "examples"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
CLIENT = BUILD_DIR / "load_client"
C_SERVER = BUILD_DIR / "c_echo_server"
UDP_CLIENT = BUILD_DIR / "udp_load_client"
C_PROGRAMS = {
    CLIENT: (BENCH_DIR / "tools" / "load_client.c", ["-pthread"]),
    C_SERVER: (BENCH_DIR / "tools" / "c_echo_server.c", []),
    UDP_CLIENT: (BENCH_DIR / "tools" / "udp_load_client.c", []),
}
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]
# The load client's --tls (the tls mode): OpenSSL's headers and libraries.
# Where they are missing the client is built without it and the tls cells
# are skipped with a note (Debian/Ubuntu: apt-get install libssl-dev).
TLS_CFLAGS = ["-DWITH_TLS"]
TLS_LIBS = ["-lssl", "-lcrypto"]

MODES = {
    "protocol": "echo_protocol.py",
    "buffered": "echo_buffered.py",
    "streams": "echo_streams.py",
    "sock": "echo_sock.py",
    # protocol mode over TLS (examples/echo_protocol.py --certfile/--keyfile,
    # a certificate made at run time), driven by load_client --tls; no C
    # server for it.
    "tls": "echo_protocol.py",
    # UDP echo (create_datagram_endpoint, sendto back in datagram_received),
    # driven by benchmarks/tools/udp_load_client.c: one datagram in flight
    # per socket; no C server for it.
    "udp": "echo_udp.py",
}
# --http: the HTTP stacks, each an example server that takes --certfile/--keyfile
HTTP_APPS = {
    "raw": EXAMPLES / "http_raw.py",          # asyncio.Protocol, no framework
    "uvicorn": EXAMPLES / "http_uvicorn.py",  # uvicorn + httptools, raw ASGI hello
    "aiohttp": EXAMPLES / "http_aiohttp.py",  # aiohttp.web hello
}
# What each stack needs besides the loop.
HTTP_NEEDS = {"raw": (), "uvicorn": ("uvicorn", "httptools"), "aiohttp": ("aiohttp",)}
# Extra raw-over-TLS rows: 64 KiB responses, and a new connection (a TLS
# handshake) per request.
HTTP_EXTRA = ("https-raw-64k", "https-raw-close")
# --udp: the cells of issue 15 (65507 B: the largest IPv4 datagram).
UDP_CELLS = [(1024, 10), (1024, 100), (65507, 10)]
# The UDP echo server's SO_RCVBUF (examples/echo_udp.py --rcvbuf) for
# datagrams of UDP_RCVBUF_FROM bytes and more: the kernel's default (about
# 208 KiB) holds three 64 KiB datagrams, so 10 sockets' worth in flight
# drops some (capped at net.core.rmem_max).
UDP_RCVBUF = 4 * 1024 * 1024
UDP_RCVBUF_FROM = 8 * 1024
# Other processes' median CPU use during the runs above which the table
# carries a warning.
BUSY_OTHERS_CPUS = 0.5
# A median steal (the hypervisor running others on this VM's CPUs) at or
# above this share of CPU time makes the run's ratios suspect.
BUSY_STEAL_PCT = 5.0
# --max-steal: how many more times a run is measured before it is kept anyway.
STEAL_RETRIES = 3

DEFAULT_SERVERS = ["wfcloop", "wfcloop-pollers", "uvloop", "asyncio", "c-server"]

PROFILES = {
    # about a minute and a half on 2 cores: (3 cells x 5 servers + the tls
    # and udp cells x 4 servers: no C server) x 3 rounds x ~1.3 s
    "quick": dict(modes="protocol,streams,sock,tls,udp", sizes="1024", conns="100",
                  rounds=3, duration=0.8, warmup=0.2, pollers_table=False),
    # the whole matrix: 4 modes x 3 sizes x 3 conns x 5 servers x 5 rounds
    # x ~2.7 s (about 45 minutes), then the pollers table (about 6 minutes)
    "full": dict(modes="protocol,buffered,streams,sock", sizes="1024,10240,102400",
                 conns="10,100,1000", rounds=5, duration=2.0, warmup=0.5,
                 pollers_table=True),
}
POLLERS_TABLE = dict(mode="protocol", size=1024, conns="10,100,1000", pollers="0,1,2,4",
                     pinned="1,2,4")

LISTENING = re.compile(r"^listening on (?:\[(?P<v6>[^\]]+)\]|(?P<v4>[\d.]+)):(?P<port>\d+) \((?P<what>[^)]*)\)$")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_START_TIMEOUT = 20.0

# --------------------------------------------------------------------------
# targets of issue 4 ("The benchmark"); a target is checked on the median of
# the per-round paired ratios and says met / MISSED, never hidden
# --------------------------------------------------------------------------


def targets_for(cell, server):
    """[(label, kind, threshold)] for one row: kind is 'uvloop' (paired rps
    ratio to uvloop), 'c-server' (ratio to the C server) or 'eff' (req per
    server CPU-second, paired ratio to uvloop's)."""
    mode, size, conns = cell["mode"], cell["size"], cell["conns"]
    out = []
    if server == "wfcloop" and is_http(mode):
        # issue 15: TLS stacks >= 1.1x uvloop (64 KiB responses and
        # handshakes per second >= 1x); plaintext stacks stay >= 1x
        app, tls, path, close = http_mode(mode)
        out.append(("xuv", "uvloop", 1.1 if tls and path == "/" and not close else 1.0))
    elif server == "wfcloop":
        if mode in ("protocol", "buffered") and conns in (10, 100):
            out.append(("xuv", "uvloop", 1.0 if size >= 100 * 1024 else 1.1))
            out.append(("xC", "c-server", 0.9))
        elif mode == "streams":
            out.append(("xuv", "uvloop", 1.3))
        elif mode == "sock":
            out.append(("xuv", "uvloop", 2.5))
        elif mode == "udp":
            out.append(("xuv", "uvloop", 1.0 if size > 60000 else 1.2))
        elif mode == "tls":
            # issue 15: TLS >= 1.1x uvloop at 100 connections
            out.append(("xuv", "uvloop", 1.1))
        if not is_http(mode):
            out.append(("eff", "eff", 1.0))
    elif server == "wfcloop-pollers" or server.startswith("wfcloop-p"):
        if conns == 100 and not is_http(mode):
            out.append(("xuv", "uvloop", 1.0))
    return out


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def progress(msg):
    print(msg, file=sys.stderr, flush=True)


def build(cc=None, force=False):
    """Compile the client and the C server when a source is newer.  The
    load client is built with TLS (OpenSSL) where its headers are found,
    else without (client_has_tls() tells which)."""
    cc = cc or os.environ.get("CC", "cc")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    for binary, (src, extra) in C_PROGRAMS.items():
        if not force and binary.exists() and binary.stat().st_mtime >= src.stat().st_mtime:
            continue
        cmd = [cc, *CFLAGS, *extra, str(src), "-o", str(binary)]
        if binary == CLIENT:
            tls_cmd = cmd[:-3] + TLS_CFLAGS + cmd[-3:] + TLS_LIBS
            show(tls_cmd)
            p = subprocess.run(tls_cmd, capture_output=True, text=True)
            if p.returncode == 0:
                sys.stderr.write(p.stderr)
                continue
            tail = (p.stderr.strip().splitlines() or ["?"])[-1]
            progress(f"build: load_client without TLS (OpenSSL's headers or libraries are "
                     f"missing: {tail}); the tls mode will be skipped "
                     f"(Debian/Ubuntu: apt-get install libssl-dev, then --rebuild)")
        show(cmd)
        subprocess.run(cmd, check=True)


def show(cmd):
    progress("build: " + " ".join(os.path.relpath(c, ROOT) if c.startswith(str(ROOT)) else c
                                  for c in cmd))


def client_has_tls():
    """Whether the built load client takes --tls (its --help lists it)."""
    try:
        p = subprocess.run([str(CLIENT), "--help"], capture_output=True, text=True, timeout=10)
    except OSError:
        return False
    return "--tls" in p.stdout


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by children
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def proc_cpu(pid, thread=None):
    """utime + stime of a process (all its threads), or of one of its
    threads (`thread`: its tid), in seconds, or None."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        with open(path) as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def machine_ticks():
    """The whole machine's CPU time (all CPUs) from /proc/stat's first line:
    user, nice, system, idle, iowait, irq, softirq, steal, in ticks; or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return v + [0] * (8 - len(v))


def busy_s(ticks):
    """Busy CPU-seconds in a machine_ticks() sample (None for None)."""
    if ticks is None:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq) / CLK_TCK


def steal_pct(t0, t1):
    """Share of the machine's CPU time between two machine_ticks() samples
    that the hypervisor gave to others (steal): a VM whose host is busy runs
    every server slower, unevenly from run to run, and nothing inside the VM
    shows it otherwise.  0 where the kernel counts no steal; None without a
    sample."""
    if t0 is None or t1 is None:
        return None
    total = sum(t1) - sum(t0)
    return round(100 * (t1[7] - t0[7]) / total, 1) if total > 0 else None


def module_available(name):
    return importlib.util.find_spec(name) is not None


def module_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:  # noqa: BLE001
        return None


def git_head():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return head + (" (uncommitted changes)" if dirty else "")
    except OSError:
        return None


def machine_info():
    model = cpu_model()
    return {
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": model or platform.processor() or "unknown",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wfcloop": module_version("wfcloop"),
        "uvloop": module_version("uvloop"),
        "git": git_head(),
    }


def fmt_rate(x):
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e4:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def fmt_us(x):
    if x is None:
        return "-"
    return f"{x / 1000:.2f} ms" if x >= 1000 else f"{x:.0f} µs"


def fmt_size(n):
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def is_http(mode):
    """Whether a mode is one of --http's (http-APP, https-APP[-64k|-close])."""
    return mode.startswith("http")


def http_mode(mode):
    """http-APP / https-APP[-64k|-close] -> (app, tls, path, close)."""
    scheme, _, rest = mode.partition("-")
    app, _, variant = rest.partition("-")
    return app, scheme == "https", "/64k" if variant == "64k" else "/", variant == "close"


def cell_name(cell):
    if is_http(cell["mode"]):
        return f"{cell['mode']} {cell['conns']}c"
    return f"{cell['mode']} {fmt_size(cell['size'])} {cell['conns']}c"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------

def server_command(server, mode, a, size=0):
    """argv for a server variant in a mode (messages of ``size`` bytes),
    or None for an unknown name.
    ``BUILD:variant`` runs the variant with the interpreter that --build
    named BUILD (another build of wfcloop, for an A/B in one run)."""
    build, sep, variant = server.rpartition(":")
    if sep:
        python = dict(getattr(a, "build", None) or ()).get(build)
        argv = server_command(variant, mode, a, size) if python else None
        if argv is None or variant in ("c-server",):
            return None
        return [python if x == sys.executable else x for x in argv]
    if server == "c-server":
        return [str(C_SERVER), "--host", a.host, "--port", "0"]
    extra_args = []
    if is_http(mode):
        app, tls, _, _ = http_mode(mode)
        script = HTTP_APPS.get(app)
        if script is None:
            return None
        if app == "aiohttp" and a.http_app:
            script = Path(a.http_app)
        if tls:
            extra_args = ["--certfile", str(a.tls_cert), "--keyfile", str(a.tls_key)]
    else:
        script = EXAMPLES / MODES[mode]
        if mode == "tls":
            extra_args = ["--certfile", str(getattr(a, "tls_cert", "")),
                          "--keyfile", str(getattr(a, "tls_key", ""))]
        elif mode == "udp" and size >= UDP_RCVBUF_FROM:
            extra_args = ["--rcvbuf", str(UDP_RCVBUF)]
    base = [sys.executable, str(script), "--host", a.host, "--port", "0", *extra_args]
    if server == "wfcloop":
        return base + ["--loop", "wfcloop"]
    if server == "wfcloop-pollers":
        return base + ["--loop", "wfcloop", "--pollers", str(a.poller_count)]
    m = re.fullmatch(r"wfcloop-p(\d+)(-pinned)?(-io|-noio)?", server)
    if m:
        # -pinned: the pollers always read the kernel (no adaptive parking);
        # -io / -noio: with / without poller-side I/O (the default: with)
        env = ((["WFCLOOP_ADAPTIVE=0"] if m[2] else [])
               + ({"-io": ["WFCLOOP_POLLER_IO=1"], "-noio": ["WFCLOOP_POLLER_IO=0"]}.get(m[3], [])))
        return (["env"] + env if env else []) + base + ["--loop", "wfcloop", "--pollers", m[1]]
    if server in ("uvloop", "asyncio"):
        return base + ["--loop", server]
    return None


class Server:
    """A server subprocess; start() waits for its "listening on" line."""

    def __init__(self, argv, log_path):
        self.argv = argv
        self.log_path = log_path
        self.proc = None
        self.port = None
        self.what = None

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, cwd=ROOT)
        lines = queue.Queue()

        def reader():
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)
        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise RuntimeError(f"no 'listening on' line within {SERVER_START_TIMEOUT:.0f} s")
            if line is None:
                rc = self.proc.wait()
                raise RuntimeError(f"exited with code {rc} before listening: {self.stderr_tail()}")
            m = LISTENING.match(line)
            if m:
                self.port = int(m["port"])
                self.what = m["what"]
                return self

    def stderr_tail(self, n=300):
        try:
            self.log.flush()
            return Path(self.log_path).read_text()[-n:].strip().replace("\n", " | ")
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


# --------------------------------------------------------------------------
# one measurement
# --------------------------------------------------------------------------

def client_output(proc, on_stderr_line, timeout_s, join_s=5):
    """A load client's stdout, read here while a thread hands each line of
    its stderr (the --marks lines, errors) to on_stderr_line, stripped; a
    timer kills a client that runs past timeout_s."""
    def read_stderr():
        for line in proc.stderr:
            on_stderr_line(line.strip())
    t = threading.Thread(target=read_stderr, daemon=True)
    t.start()
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        out = proc.stdout.read()
        proc.wait()
    finally:
        timer.cancel()
    t.join(join_s)
    return out


def run_client(server, cell, a):
    """Run the load client against a started server; returns a result dict
    with the client's JSON plus server/client CPU over the measured window."""
    argv = [str(UDP_CLIENT if cell["mode"] == "udp" else CLIENT),
            "--host", a.host, "--port", str(server.port),
            "-c", str(cell["conns"]), "-s", str(cell["size"]),
            "-d", str(a.duration), "-w", str(a.warmup), "--marks"]
    if cell["mode"] != "udp":
        argv += ["-t", str(a.threads)]
    if cell["mode"] == "tls":
        argv += ["--tls"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    samples = {}
    errlines = []
    spid = server.proc.pid

    def on_mark(line):
        if line in ("mark start", "mark end"):
            # the main thread is the loop thread in every server here
            samples[line.split()[1]] = (time.monotonic(), proc_cpu(spid),
                                        machine_ticks(), proc_cpu(spid, spid))
        elif line:
            errlines.append(line)
    out = client_output(proc, on_mark, a.warmup + a.duration + 60 + cell["conns"] / 50)
    if proc.returncode == -9:
        return {"ok": False, "why": "client timed out"}
    res = {"ok": False, "client_rc": proc.returncode}
    try:
        res.update(json.loads(out.strip().splitlines()[-1]))
    except (IndexError, ValueError):
        res["why"] = "client failed: " + (" | ".join(errlines)[-300:] or f"exit {proc.returncode}")
        return res
    if "start" in samples and "end" in samples:
        (t0, s0, m0, l0), (t1, s1, m1, l1) = samples["start"], samples["end"]
        b0, b1 = busy_s(m0), busy_s(m1)
        wall = t1 - t0
        res["steal_pct"] = steal_pct(m0, m1)
        res["window_s"] = round(wall, 4)
        if s0 is not None and s1 is not None:
            res["server_cpu_s"] = round(s1 - s0, 3)
        if l0 is not None and l1 is not None:
            res["loop_thread_cpu_pct"] = round(100 * (l1 - l0) / a.duration, 1)
        if b0 is not None and b1 is not None and wall > 0:
            other = (b1 - b0) - res.get("server_cpu_s", 0) - res.get("client_cpu_s", 0)
            res["others_cpus"] = round(max(0.0, other / wall), 2)
    if res.get("server_cpu_s"):
        res["server_cpu_pct"] = round(100 * res["server_cpu_s"] / a.duration, 1)
        res["req_per_cpu_s"] = round(res["requests"] / res["server_cpu_s"], 1)
    if res.get("client_cpu_s", -1) >= 0:
        res["client_cpu_pct"] = round(100 * res["client_cpu_s"] / a.duration, 1)
    res["ok"] = res["requests"] > 0 and res.get("conns_alive", 0) > 0
    if not res["ok"]:
        res["why"] = res.get("error") or "no replies"
    return res


WRK_LAT = re.compile(r"^\s*(50|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$")


def run_wrk(server, cell, a):
    """wrk against the HTTP app: warm-up run, then the measured run with
    server CPU sampled before and after."""
    _, tls, path, close = http_mode(cell["mode"])
    url = f"{'https' if tls else 'http'}://{a.host}:{server.port}{path}"
    threads = max(1, min(a.threads, cell["conns"]))
    base = ["wrk", "-t", str(threads), "-c", str(cell["conns"]), "--latency"]
    if close:   # a new connection (and TLS handshake) per request
        base += ["-H", "Connection: close"]
    if a.warmup > 0:
        subprocess.run(base + ["-d", f"{max(1, round(a.warmup))}s", url],
                       capture_output=True, text=True, timeout=a.warmup + 30)
    secs = max(1, round(a.duration))
    t0, s0 = time.monotonic(), proc_cpu(server.proc.pid)
    m0 = machine_ticks()
    p = subprocess.run(base + ["-d", f"{secs}s", url], capture_output=True, text=True,
                       timeout=secs + 30)
    t1, s1 = time.monotonic(), proc_cpu(server.proc.pid)
    m1 = machine_ticks()
    res = {"ok": False, "client_rc": p.returncode, "seconds": secs,
           "steal_pct": steal_pct(m0, m1)}
    m = re.search(r"^Requests/sec:\s+([\d.]+)", p.stdout, re.M)
    if not m:
        res["why"] = "wrk failed: " + (p.stderr or p.stdout)[-300:]
        return res
    res["rps"] = float(m[1])
    m = re.search(r"^\s*(\d+) requests in", p.stdout, re.M)
    res["requests"] = int(m[1]) if m else int(res["rps"] * secs)
    for line in p.stdout.splitlines():
        lm = WRK_LAT.match(line)
        if lm:
            scale = {"us": 1, "ms": 1e3, "s": 1e6}[lm[3]]
            res[f"p{lm[1]}_us"] = float(lm[2]) * scale
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", p.stdout)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", p.stdout)
    if m:
        errors += int(m[1])
    res["errors"] = errors
    if s0 is not None and s1 is not None and s1 > s0:
        res["server_cpu_s"] = round(s1 - s0, 3)
        res["server_cpu_pct"] = round(100 * (s1 - s0) / (t1 - t0), 1)
        res["req_per_cpu_s"] = round(res["requests"] / (s1 - s0), 1)
    if m0 is not None and m1 is not None:
        res["window_s"] = round(t1 - t0, 3)
    res["ok"] = res["requests"] > 0
    return res


def measure(server_name, cell, a, log_dir):
    argv = server_command(server_name, cell["mode"], a, cell["size"])
    log = log_dir / f"{server_name}-{cell['mode']}.stderr"
    srv = Server(argv, log)
    res = {"server": server_name, **cell}
    try:
        srv.start()
    except (RuntimeError, OSError) as exc:
        srv.stop()
        res.update(ok=False, why=f"server did not start: {exc}")
        return res
    res["server_says"] = srv.what
    try:
        if is_http(cell["mode"]):
            res.update(run_wrk(srv, cell, a))
        else:
            res.update(run_client(srv, cell, a))
    finally:
        alive = srv.proc.poll() is None
        rc = srv.stop()
        if not alive:
            res["ok"] = False
            res["why"] = f"server died (exit {rc}): {srv.stderr_tail()}"
    return res


def measure_below_steal(server_name, cell, a, log_dir):
    """measure(), again (up to STEAL_RETRIES more times) while the host's
    steal over the run's window exceeds --max-steal; the run kept says how
    many were set aside (``steal_retries``) and their steal."""
    max_steal = getattr(a, "max_steal", None)
    r = measure(server_name, cell, a, log_dir)
    set_aside = []
    while (max_steal is not None and r.get("steal_pct") is not None
           and r["steal_pct"] > max_steal and len(set_aside) < STEAL_RETRIES):
        progress(f"  {cell_name(cell)} {server_name}: steal {r['steal_pct']:g}% > "
                 f"--max-steal {max_steal:g}%, measured again")
        set_aside.append(r["steal_pct"])
        r = measure(server_name, cell, a, log_dir)
    if max_steal is not None:
        r["steal_retries"] = len(set_aside)
        r["steal_set_aside"] = set_aside
    return r


# --------------------------------------------------------------------------
# the matrix
# --------------------------------------------------------------------------

def run_matrix(cells, servers, a, log_dir, label, t_start, est_total):
    """Rounds x cells x servers, the servers' order rotating (and, with
    --shuffle, shuffled) per round and cell.  Returns the list of runs."""
    runs = []
    n_total = a.rounds * len(cells) * len(servers)
    done = 0
    rng = random.Random(a.seed)
    for rnd in range(a.rounds):
        for ci, cell in enumerate(cells):
            k = (rnd + ci) % len(servers)
            order = servers[k:] + servers[:k]
            if a.shuffle:
                rng.shuffle(order)
            for server in order:
                t0 = time.monotonic()
                r = measure_below_steal(server, cell, a, log_dir)
                r["round"] = rnd
                r["run_s"] = round(time.monotonic() - t0, 2)
                runs.append(r)
                done += 1
                elapsed = time.monotonic() - t_start
                eta = est_total - elapsed if est_total else 0
                if r["ok"]:
                    msg = (f"{fmt_rate(r.get('rps'))} req/s, server CPU "
                           f"{r.get('server_cpu_pct', float('nan')):.0f}%, "
                           f"p99 {fmt_us(r.get('p99_us'))}")
                    if r.get("conns_idle"):
                        msg += f", {r['conns_idle']} connections got no reply"
                    if r.get("errors"):
                        msg += f", {r['errors']} ERRORS ({r.get('error', '')})"
                else:
                    msg = f"FAILED: {r.get('why')}"
                progress(f"[{label} {done}/{n_total}] round {rnd + 1}/{a.rounds} "
                         f"{cell_name(cell):<22} {server:<16} {msg}   "
                         f"(elapsed {elapsed:.0f} s, ~{max(0, eta):.0f} s left)")
    return runs


def paired(runs, cell, num, den, key):
    """Per-round ratios num/den of `key` in one cell, rounds where both ran."""
    by = {}
    for r in runs:
        if all(r[k] == cell[k] for k in ("mode", "size", "conns")) and r["ok"]:
            by[(r["server"], r["round"])] = r
    out = []
    for (s, rnd), r in sorted(by.items(), key=lambda kv: kv[0][1]):
        if s != num:
            continue
        d = by.get((den, rnd))
        if d and r.get(key) and d.get(key):
            out.append(r[key] / d[key])
    return out


def summarize(runs, cells, servers):
    summary = []
    for cell in cells:
        for server in servers:
            rs = [r for r in runs if r["server"] == server and r["ok"]
                  and all(r[k] == cell[k] for k in ("mode", "size", "conns"))]
            allr = [r for r in runs if r["server"] == server
                    and all(r[k] == cell[k] for k in ("mode", "size", "conns"))]
            row = {**cell, "server": server, "rounds_ok": len(rs), "rounds": len(allr),
                   "failures": [r.get("why") for r in allr if not r["ok"]],
                   "errors": sum(r.get("errors", 0) or 0 for r in allr)}
            for key in ("rps", "p50_us", "p99_us", "server_cpu_pct", "req_per_cpu_s",
                        "client_cpu_pct", "others_cpus", "loop_thread_cpu_pct", "steal_pct"):
                row[key] = median([r.get(key) for r in rs])
            for den in ("uvloop", "asyncio", "c-server"):
                if den != server:
                    rat = paired(runs, cell, server, den, "rps")
                    row[f"x_{den}"] = median(rat)
                    row[f"x_{den}_rounds"] = [round(x, 3) for x in rat]
            if server != "uvloop":
                rat = paired(runs, cell, server, "uvloop", "req_per_cpu_s")
                row["eff_x_uvloop"] = median(rat)
                row["eff_x_uvloop_rounds"] = [round(x, 3) for x in rat]
            checks = []
            for label, kind, thr in targets_for(cell, server):
                if kind == "eff":
                    val, rounds = row.get("eff_x_uvloop"), row.get("eff_x_uvloop_rounds", [])
                    desc = f"CPU-eff ≥{thr:g}×uv"
                elif kind == "uvloop":
                    val, rounds = row.get("x_uvloop"), row.get("x_uvloop_rounds", [])
                    desc = f"≥{thr:g}×uv"
                else:
                    val, rounds = row.get("x_c-server"), row.get("x_c-server_rounds", [])
                    desc = f"≥{thr:.0%} of C"
                if val is None:
                    checks.append({"target": desc, "verdict": "not measured"})
                    continue
                checks.append({"target": desc, "value": round(val, 3),
                               "verdict": "met" if val >= thr else "MISSED",
                               "rounds_meeting": sum(x >= thr for x in rounds),
                               "rounds_paired": len(rounds)})
            row["targets"] = checks
            summary.append(row)
    return summary


def target_text(checks):
    parts = []
    for c in checks:
        if c["verdict"] == "not measured":
            parts.append(f"{c['target']}: not measured")
        else:
            parts.append(f"{c['target']} {c['verdict']} ({c['value']:.2f}, "
                         f"{c['rounds_meeting']}/{c['rounds_paired']} rounds)")
    return "; ".join(parts)


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}"


def server_cpu_text(r):
    """The server's CPU, and its loop thread's where other threads (pollers)
    took a share of it: '180% (loop 99%)'."""
    cpu, loop = r["server_cpu_pct"], r.get("loop_thread_cpu_pct")
    if cpu is None:
        return "-"
    if loop is not None and cpu - loop >= 10:
        return f"{cpu:.0f}% (loop {loop:.0f}%)"
    return f"{cpu:.0f}%"


def table(summary, threads):
    head = ["cell", "server", "req/s", "×uvloop", "×asyncio", "server CPU", "client CPU",
            "req/CPU-s", "p50", "p99", "target"]
    rows = []
    for r in summary:
        if r["rounds_ok"] == 0:
            why = r["failures"][0] if r["failures"] else "not run"
            rows.append([cell_name(r), r["server"], "failed", "-", "-", "-", "-", "-", "-", "-",
                         f"{why}"[:100]])
            continue
        cli = r.get("client_cpu_pct")
        cli_s = "-" if cli is None else f"{cli:.0f}%"
        if cli is not None and cli >= 90 * threads:
            cli_s += " *"   # the client is saturated: the server may be faster
        note = target_text(r["targets"])
        if r["errors"]:
            note = (note + "; " if note else "") + f"{r['errors']} client ERRORS"
        if r["rounds_ok"] < r["rounds"]:
            note = (note + "; " if note else "") + f"{r['rounds'] - r['rounds_ok']} runs failed"
        rows.append([
            cell_name(r), r["server"], fmt_rate(r["rps"]),
            fmt_ratio(r.get("x_uvloop")), fmt_ratio(r.get("x_asyncio")),
            server_cpu_text(r), cli_s, fmt_rate(r["req_per_cpu_s"]),
            fmt_us(r["p50_us"]), fmt_us(r["p99_us"]), note])
    return head, rows


def render_text(head, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    widths[-1] = len(head[-1])
    out = ["  ".join(str(h).ljust(w) for h, w in zip(head, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    for row in rows:
        out.append("  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def render_md(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" if i < 2 or i == len(head) - 1 else "---:"
                          for i in range(len(head))) + "|"]
    for row in rows:
        out.append("| " + " | ".join(str(x) for x in row) + " |")
    return "\n".join(out)


def pollers_servers(pollers, pinned):
    """The pollers table's wfcloop variants: adaptive, then pinned."""
    return [f"wfcloop-p{k}" for k in pollers] + [f"wfcloop-p{k}-pinned" for k in pinned]


def pollers_table(summary, pollers, pinned, conns):
    """Throughput against pollers (rows: connections) with ×uvloop."""
    names = pollers_servers(pollers, pinned)
    head = (["connections"] + [f"pollers={p}" for p in pollers]
            + [f"pollers={p} pinned" for p in pinned] + ["uvloop"])
    rows = []
    for c in conns:
        row = [str(c)]
        for name in names:
            r = next((s for s in summary if s["server"] == name and s["conns"] == c), None)
            if r is None or r["rounds_ok"] == 0:
                row.append("failed")
            else:
                row.append(f"{fmt_rate(r['rps'])} ({fmt_ratio(r.get('x_uvloop'))}×uv)")
        u = next((s for s in summary if s["server"] == "uvloop" and s["conns"] == c), None)
        row.append(fmt_rate(u["rps"]) if u and u["rounds_ok"] else "-")
        rows.append(row)
    return head, rows


def chart(summary, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        progress("note: matplotlib is not installed (pip install matplotlib, or the "
                 "'bench' extra): no PNG chart")
        return None
    cells = []
    for r in summary:
        name = cell_name(r)
        if name not in cells:
            cells.append(name)
    servers = []
    for r in summary:
        if r["server"] not in servers:
            servers.append(r["server"])
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(cells) * max(1, len(servers)) / 4), 4.5))
    width = 0.8 / max(1, len(servers))
    for i, s in enumerate(servers):
        ys = []
        for c in cells:
            r = next((x for x in summary if x["server"] == s and cell_name(x) == c), None)
            ys.append((r["rps"] or 0) if r else 0)
        ax.bar([j + i * width for j in range(len(cells))], ys, width, label=s)
    ax.set_xticks([j + width * (len(servers) - 1) / 2 for j in range(len(cells))])
    ax.set_xticklabels(cells, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("requests/s (median over rounds)")
    # The title wrapped to the figure, the legend beside the bars (inside,
    # it covered the tallest ones).
    import textwrap
    ax.set_title("\n".join(textwrap.wrap(title, int(fig.get_figwidth() * 11))), fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_results_section(md, section):
    begin = f"<!-- BEGIN {section} (generated by benchmarks/echo_bench.py) -->"
    end = f"<!-- END {section} -->"
    text = RESULTS_MD.read_text() if RESULTS_MD.exists() else "# Benchmark results\n"
    block = f"{begin}\n{md.rstrip()}\n{end}"
    if begin in text and end in text:
        pre, _, rest = text.partition(begin)
        _, _, post = rest.partition(end)
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS_MD.write_text(text)


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def make_http_cells(a, notes, log_dir):
    """The --http cells that can run here (a note says why any is left
    out), and the TLS certificate they need, made under log_dir."""
    if shutil.which("wrk") is None:
        notes.append("wrk is not installed: HTTP rows skipped (scripts/install-wrk.sh)")
        progress("note: " + notes[-1])
        return []
    apps = parse_list(a.http_apps, str)
    kinds = parse_list(a.http_tls, str)
    for name in apps:
        if name not in HTTP_APPS:
            raise SystemExit(f"echo_bench: unknown HTTP app {name!r} "
                             f"(choose from {', '.join(HTTP_APPS)})")
    for kind in kinds:
        if kind not in ("plain", "tls"):
            raise SystemExit(f"echo_bench: --http-tls takes plain and/or tls, not {kind!r}")
    modes = []
    for name in apps:
        missing = [m for m in HTTP_NEEDS[name] if not module_available(m)]
        if missing and not (name == "aiohttp" and a.http_app):
            notes.append(f"{name} row skipped: pip install {' '.join(missing)}")
            progress("note: " + notes[-1])
            continue
        modes += [f"{'https' if k == 'tls' else 'http'}-{name}" for k in kinds]
    if "https-raw" in modes:
        modes += list(HTTP_EXTRA)
    if any(http_mode(m)[1] for m in modes):
        a.tls_cert, a.tls_key = make_certificate(log_dir / "tls")
    return [dict(mode=m, size=0, conns=c) for m in modes for c in parse_list(a.http_conns)]


def make_certificate(directory):
    """A throw-away certificate for 127.0.0.1 and localhost, and its key
    (PEM): trustme's if it is installed, else openssl's (self-signed)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        import trustme
    except ImportError:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"],
                       check=True, capture_output=True)
        return cert, key
    issued = trustme.CA().issue_cert("localhost", "127.0.0.1", "::1")
    issued.private_key_pem.write_to_path(str(key))
    issued.cert_chain_pems[0].write_to_path(str(cert))
    return cert, key


def build_arg(text):
    """--build NAME=PYTHON -> (NAME, PYTHON)."""
    name, sep, python = text.partition("=")
    if not sep or not name or not python or ":" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=PYTHON, got {text!r}")
    return name, python


def parse_list(s, conv=int):
    return [conv(x) for x in str(s).split(",") if x.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Echo benchmark: wfcloop vs uvloop vs asyncio vs a C epoll server, "
                    "driven by a C load client.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Quick default: protocol, streams, sock, tls (protocol over TLS) and udp at "
               "1 KiB with 100 connections (sockets), 3 rounds of 0.8 s (about a minute and "
               "a half on 2 cores; no C server for tls and udp). --full: every mode at "
               "1/10/100 KiB and 10/100/1000 connections, 5 rounds of 2 s, and the "
               "pollers table.")
    p.add_argument("--full", action="store_true", help="the whole matrix and the pollers table")
    p.add_argument("--rounds", type=int, help="rounds (quick 3, full 5)")
    p.add_argument("--duration", type=float, help="measured seconds per run (quick 0.8, full 2)")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (quick 0.2, full 0.5)")
    p.add_argument("--servers", default=",".join(DEFAULT_SERVERS),
                   help="comma-separated: wfcloop, wfcloop-pollers, wfcloop-pK (K "
                        "pollers, adaptive), wfcloop-pK-pinned (WFCLOOP_ADAPTIVE=0), "
                        "any of them with -noio or -io (WFCLOOP_POLLER_IO=0/1), "
                        "uvloop, asyncio, c-server (default: %(default)s)")
    p.add_argument("--build", action="append", type=build_arg, metavar="NAME=PYTHON",
                   help="another build's interpreter (a venv with that wfcloop installed): "
                        "servers NAME:wfcloop, NAME:wfcloop-pollers, ... run on it, so "
                        "two builds are compared in the same rounds (repeatable)")
    p.add_argument("--modes", help="comma-separated: " + ", ".join(MODES)
                   + " (quick: protocol,streams,sock,tls,udp)")
    p.add_argument("--sizes", help="message sizes in bytes, comma-separated (quick 1024)")
    p.add_argument("--conns", help="connection counts, comma-separated (quick 100)")
    p.add_argument("--threads", type=int, default=1,
                   help="client threads, each with its own epoll (default 1; more on "
                        "many-core machines when the client saturates, marked * in the table)")
    p.add_argument("--poller-count", type=int, default=2,
                   help="--pollers of the wfcloop-pollers variant (default 2)")
    p.add_argument("--pollers-table", action="store_true",
                   help="also run the pollers table (protocol, 1 KiB, pollers 0/1/2/4 "
                        "adaptive and 1/2/4 pinned x connections 10/100/1000; on with "
                        "--full)")
    p.add_argument("--no-pollers-table", action="store_true", help="skip it under --full")
    p.add_argument("--http", action="store_true",
                   help="also run the HTTP stacks under wrk (wfcloop, uvloop, asyncio): "
                        "raw asyncio.Protocol, uvicorn+httptools, aiohttp, plain and TLS")
    p.add_argument("--http-only", action="store_true", help="run only the HTTP rows")
    p.add_argument("--http-apps", default=",".join(HTTP_APPS),
                   help="HTTP stacks, comma-separated (default: %(default)s)")
    p.add_argument("--http-tls", default="plain,tls",
                   help="plain, tls or both (default: %(default)s; tls adds raw with "
                        "64 KiB responses and with a handshake per request)")
    p.add_argument("--udp", action="store_true",
                   help="also run the UDP echo cells (1 KiB x 10 and 100 sockets, 65507 B "
                        "x 10) for every server but c-server")
    p.add_argument("--http-app", help="HTTP app to run instead of examples/http_aiohttp.py")
    p.add_argument("--http-conns", default="100", help="wrk connections (default 100)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--shuffle", action="store_true",
                   help="shuffle the servers' order per round and cell instead of rotating it")
    p.add_argument("--seed", type=int, default=None, help="seed for --shuffle")
    p.add_argument("--max-steal", type=float, default=None, metavar="PCT",
                   help="measure a run again (up to 3 more times) while the host's steal "
                        "over its window is above PCT%% of the CPU time (default: keep "
                        "every run; the JSON records each run's steal_pct)")
    p.add_argument("--json", help="write the results as JSON here "
                                  "(default benchmarks/out/echo_bench-TIME.json)")
    p.add_argument("--png", help="write the chart here (default next to the JSON)")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--write-results", action="store_true",
                   help="(re)write this machine's section of benchmarks/RESULTS.md")
    p.add_argument("--rebuild", action="store_true", help="rebuild the C programs")
    p.add_argument("--build-only", action="store_true",
                   help="build the C programs, then exit (benchmarks/device_loop_scaling.sh)")
    p.add_argument("--no-build", action="store_true",
                   help="use the C programs already in benchmarks/build/ (a machine without "
                        "a compiler, or whose copied sources look newer)")
    a = p.parse_args(argv)
    if a.build_only:
        build(force=a.rebuild)
        return 0

    prof = PROFILES["full" if a.full else "quick"]
    a.rounds = a.rounds or prof["rounds"]
    a.duration = a.duration or prof["duration"]
    a.warmup = prof["warmup"] if a.warmup is None else a.warmup
    modes = parse_list(a.modes or prof["modes"], str)
    sizes = parse_list(a.sizes or prof["sizes"])
    conns = parse_list(a.conns or prof["conns"])
    servers = parse_list(a.servers, str)
    do_pollers = (a.pollers_table or prof["pollers_table"]) and not a.no_pollers_table
    if a.http_only:
        modes, do_pollers, a.http = [], False, True
    for m in modes:
        if m not in MODES:
            p.error(f"unknown mode {m!r} (choose from {', '.join(MODES)})")
    for s in servers:
        if server_command(s, "protocol", a) is None:
            p.error(f"unknown server {s!r}")
    if a.rounds < 1 or a.duration <= 0 or a.threads < 1:
        p.error("--rounds, --duration and --threads must be positive")

    notes = []
    if not module_available("uvloop"):
        notes.append("uvloop is not installed (pip install uvloop, or the 'bench' extra): "
                     "skipped; no ×uvloop ratios and no target checks against it")
        servers = [s for s in servers if s != "uvloop"]
    if not module_available("wfcloop"):
        notes.append("wfcloop is not importable by this Python (pip install . first): "
                     "its variants are skipped")
        servers = [s for s in servers if not s.startswith("wfcloop")]
    for n in notes:
        progress("note: " + n)
    if a.rounds < 3:
        notes.append(f"only {a.rounds} round(s): the ratios are not worth quoting")

    if not a.no_build:
        build(force=a.rebuild)
    elif not all(binary.exists() for binary in C_PROGRAMS):
        progress("--no-build: benchmarks/build/ lacks " + ", ".join(
            binary.name for binary in C_PROGRAMS if not binary.exists()))
        return 2
    nofile = raise_nofile()
    need = max(conns + [0]) + 100
    if nofile < need:
        notes.append(f"RLIMIT_NOFILE is {nofile}; {need} fds are needed for the largest cell")
        progress("note: " + notes[-1])

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    json_path = Path(a.json) if a.json else OUT_DIR / f"echo_bench-{stamp}.json"
    png_path = Path(a.png) if a.png else json_path.with_suffix(".png")
    # the servers' stderr, one file per server and mode, and the run's
    # throw-away certificate: always under benchmarks/out/ (ignored by git),
    # never next to a --json that lands in results/
    log_dir = OUT_DIR / (f"{json_path.stem}-logs" if stamp in json_path.stem
                         else f"{json_path.stem}-{stamp}-logs")
    log_dir.mkdir(parents=True, exist_ok=True)

    cells = [dict(mode=m, size=s, conns=c) for m in modes for s in sizes for c in conns
             if m not in ("udp", "tls")]
    # TLS cells: protocol mode over TLS under load_client --tls; every server
    # but the C one (it speaks plain TCP only).
    tls_cells = []
    if "tls" in modes:
        if client_has_tls():
            tls_cells = [dict(mode="tls", size=s, conns=c) for s in sizes for c in conns]
            a.tls_cert, a.tls_key = make_certificate(log_dir / "tls")
        else:
            notes.append("the load client was built without TLS (OpenSSL's headers are "
                         "missing): tls row skipped (apt-get install libssl-dev, then "
                         "--rebuild)")
            progress("note: " + notes[-1])
    # UDP cells: --udp's, and --modes udp with the given sizes and counts;
    # every server but the C one (it speaks TCP only).
    udp_cells = [dict(mode="udp", size=s, conns=c) for s in sizes for c in conns
                 if "udp" in modes and s <= 65507]
    if a.udp:
        udp_cells += [dict(mode="udp", size=s, conns=c) for s, c in UDP_CELLS
                      if dict(mode="udp", size=s, conns=c) not in udp_cells]
    udp_servers = [s for s in servers if s != "c-server"]
    tls_servers = udp_servers
    http_cells, http_servers = [], []
    if a.http:
        http_cells = make_http_cells(a, notes, log_dir)
        http_servers = [s for s in servers if s != "c-server"]
    pcells, pservers = [], []
    ptab = None
    if do_pollers and module_available("wfcloop"):
        pollers = parse_list(POLLERS_TABLE["pollers"])
        pconns = parse_list(POLLERS_TABLE["conns"])
        pcells = [dict(mode=POLLERS_TABLE["mode"], size=POLLERS_TABLE["size"], conns=c)
                  for c in pconns]
        pservers = (pollers_servers(pollers, parse_list(POLLERS_TABLE["pinned"]))
                    + (["uvloop"] if "uvloop" in servers else []))
    per_run = a.warmup + a.duration + 0.5
    est = per_run * a.rounds * (len(cells) * len(servers) + len(pcells) * len(pservers)
                                + len(udp_cells) * len(udp_servers)
                                + len(tls_cells) * len(tls_servers)
                                + len(http_cells) * len(http_servers) * 1.5)
    progress(f"echo_bench: {len(cells)} cells x {len(servers)} servers x {a.rounds} rounds"
             + (f", pollers table {len(pcells)} x {len(pservers)}" if pcells else "")
             + (f", tls {len(tls_cells)} x {len(tls_servers)}" if tls_cells else "")
             + (f", udp {len(udp_cells)} x {len(udp_servers)}" if udp_cells else "")
             + (f", http {len(http_cells)} x {len(http_servers)}" if http_cells else "")
             + f"; about {est / 60:.1f} min; {os.cpu_count()} CPUs")

    t_start = time.monotonic()
    runs = run_matrix(cells, servers, a, log_dir, "echo", t_start, est) if cells else []
    truns = run_matrix(tls_cells, tls_servers, a, log_dir, "tls", t_start, est) if tls_cells else []
    runs += truns
    hruns = run_matrix(http_cells, http_servers, a, log_dir, "http", t_start, est) if http_cells else []
    uruns = run_matrix(udp_cells, udp_servers, a, log_dir, "udp", t_start, est) if udp_cells else []
    runs += uruns
    pruns = run_matrix(pcells, pservers, a, log_dir, "pollers", t_start, est) if pcells else []
    elapsed = time.monotonic() - t_start

    summary = (summarize([r for r in runs if r["mode"] not in ("udp", "tls")], cells, servers)
               + summarize(truns, tls_cells, tls_servers)
               + summarize(uruns, udp_cells, udp_servers)
               + summarize(hruns, http_cells, http_servers))
    psummary = summarize(pruns, pcells, pservers) if pcells else []
    info = machine_info()
    others = median([r.get("others_cpus") for r in runs + pruns])
    steals = [r["steal_pct"] for r in runs + hruns + pruns if r.get("steal_pct") is not None]
    steal = median(steals)
    header = [
        f"echo benchmark, {info['cpu_count']} CPUs ({info['usable_cpus']} usable), "
        f"{info['cpu_model']}; Python {info['python']}, kernel {info['kernel']}; "
        f"wfcloop {info['wfcloop']} (git {info['git']}), uvloop {info['uvloop']}",
        f"{a.rounds} rounds x {a.duration:g} s (+{a.warmup:g} s warm-up) per run, client: "
        f"benchmarks/tools/load_client.c, {a.threads} thread(s); took {elapsed:.0f} s; "
        f"other processes used a median {others if others is not None else '?'} CPUs "
        f"during the runs"
        + (f"; the host took (steal) a median {steal:g}% of the CPU time, at most "
           f"{max(steals):g}%" if steals else ""),
        "req/s, CPU, latency: medians over rounds. ×uvloop, ×asyncio and targets: medians of "
        "per-round paired ratios (same round, same cell). server CPU: utime+stime of the "
        "server process over the measured window (100% = one CPU); req/CPU-s = requests "
        "per second of server CPU time; client CPU marked * = client saturated.",
    ]
    head, rows = table(summary, a.threads)
    text = "\n".join(header) + "\n\n" + render_text(head, rows)
    md = "\n".join("- " + h for h in header) + "\n\n" + render_md(head, rows)
    if psummary:
        phead, prows = pollers_table(psummary, parse_list(POLLERS_TABLE["pollers"]),
                                     parse_list(POLLERS_TABLE["pinned"]),
                                     parse_list(POLLERS_TABLE["conns"]))
        ptab = (phead, prows)
        ptitle = ("Poller mode: protocol, 1 KiB, req/s by pollers (median; ×uv = paired "
                  "ratio to uvloop); adaptive (the default) and pinned (WFCLOOP_ADAPTIVE=0); "
                  "target: ≥1.0×uvloop at 100 connections")
        text += "\n\n" + ptitle + "\n" + render_text(phead, prows)
        md += "\n\n" + ptitle + "\n\n" + render_md(phead, prows)
        pt = [target_text(r["targets"]) for r in psummary if r["targets"]]
        if pt:
            lines = [f"{r['server']} {r['conns']}c: {target_text(r['targets'])}"
                     for r in psummary if r["targets"]]
            text += "\n" + "\n".join(lines)
            md += "\n\n" + "\n".join("- " + x for x in lines)
    missed = [f"{cell_name(r)} {r['server']}: {c['target']} ({c['value']:.2f})"
              for r in summary + psummary for c in r["targets"] if c["verdict"] == "MISSED"]
    failed = [f"{cell_name(r)} {r['server']}" for r in summary + psummary if r["rounds_ok"] == 0]
    tail = []
    if missed:
        tail.append(f"targets MISSED: {len(missed)} of "
                    f"{sum(len(r['targets']) for r in summary + psummary)}")
    if failed:
        tail.append("failed cells: " + ", ".join(failed))
    if others is not None and others >= BUSY_OTHERS_CPUS:
        notes.append(f"WARNING: other processes used a median {others} CPUs during the "
                     f"runs; on a busy machine the ratios are unreliable (run again idle)")
    if steal is not None and steal >= BUSY_STEAL_PCT:
        notes.append(f"WARNING: the host took a median {steal:g}% of this machine's CPU time "
                     f"during the runs (steal; at most {max(steals):g}%): every server ran "
                     f"slower by an uneven amount, so the ratios are unreliable (run again)")
    tail += ["note: " + n for n in notes]
    if tail:
        text += "\n\n" + "\n".join(tail)
        md += "\n\n" + "\n".join("- " + t for t in tail)
    print(text)

    result = {
        "benchmark": "echo_bench", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + (argv if argv is not None else sys.argv[1:])),
        "machine": info,
        "params": {"rounds": a.rounds, "duration": a.duration, "warmup": a.warmup,
                   "threads": a.threads, "servers": servers, "modes": modes, "sizes": sizes,
                   "conns": conns, "poller_count": a.poller_count, "host": a.host},
        "notes": notes, "elapsed_s": round(elapsed, 1),
        "summary": summary, "pollers_summary": psummary, "runs": runs + hruns + pruns,
    }
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    progress(f"json: {json_path}")
    if not a.no_png and summary:
        if chart(summary, png_path, header[0]):
            progress(f"png: {png_path}")
    if a.write_results:
        section = f"echo-bench {info['cpu_count']} CPUs" + (" full" if a.full else "")
        write_results_section(f"#### echo benchmark: {info['cpu_count']} CPUs\n\n"
                              f"- command: `{result['command']}`\n" + md, section)
        progress(f"wrote the section '{section}' of {RESULTS_MD.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
