#!/usr/bin/env python3
"""Micro-benchmarks of the event loops (wfcloop, uvloop, asyncio): the loop's
own operations, the memory of idle connections, the rate of accepting, and
how the cost of an event scales with idle connections.  Each part runs on
its own:

  calls     call_soon (N callbacks), call_later (N timers at random delays
            <= 10 ms), call_soon_threadsafe from another thread, create_task
            (task of a trivial coroutine, awaited) and future round trips
            (create_future, call_soon(set_result), await), datagram_burst
            (n / 5 1 KiB datagrams queued 32 at a time in a UDP endpoint's socket,
            the loop's reading and datagram_received() timed, the median
            burst's: datagrams/s);
            operations/s, each (test, loop) in a fresh process, loops
            alternating per round
  memory    bytes per idle TCP connection: examples/echo_protocol.py on the
            loop, 10,000 connections from benchmarks/tools/load_client.c --hold (one
            round trip each, then idle); server VmRSS delta / connections;
            with --tls, bytes per idle TLS connection (handshake done, one
            round trip, then idle; the certificate made at run time)
  accept    connections per second: 1,000 clients connecting at once to
            examples/echo_protocol.py (one round trip each), timed until
            every one has answered
  scaling   cost per event: µs per ping-pong round trip (and server CPU µs
            per request) on 1 active connection, with 1, 100, 1,000, 10,000
            idle connections held open to the same server

Ratios are medians of per-round paired ratios (same round).  The project's
targets are checked and reported met / MISSED: every call test >= uvloop;
bytes per idle connection <= uvloop's; cost at 10,000 idle connections
within 20% of the cost at 1 (server CPU time per request; 20% is the
run-to-run spread of these machines).  call_later's time includes the wait
for the last timer (at most 10 ms).

    .venv/bin/python benchmarks/micro_bench.py                 # all four, quick
    .venv/bin/python benchmarks/micro_bench.py calls --rounds 5
    .venv/bin/python benchmarks/micro_bench.py memory --conns 10000
    .venv/bin/python benchmarks/micro_bench.py memory --tls
    .venv/bin/python benchmarks/micro_bench.py accept --rounds 5
    .venv/bin/python benchmarks/micro_bench.py scaling --idle 1,100,1000,10000
    .venv/bin/python benchmarks/micro_bench.py --full --json out.json
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import echo_bench as eb  # noqa: E402  (build, Server, run_client, helpers)

LOOPS = ["wfcloop", "uvloop", "asyncio"]
CALL_TESTS = ["call_soon", "call_later", "call_soon_threadsafe", "create_task", "future",
              "datagram_burst"]
PROFILES = {
    "quick": dict(rounds=3, n=100_000, mem_conns=10_000, mem_rounds=1,
                  idle="1,100,1000,10000", duration=1.0, warmup=0.3),
    "full": dict(rounds=7, n=300_000, mem_conns=10_000, mem_rounds=3,
                 idle="1,100,1000,10000", duration=2.0, warmup=0.5),
}
FLAT = 1.2   # scaling target: cost(max idle) / cost(1 idle) at most this


# --------------------------------------------------------------------------
# child: one call test on one loop, prints {"ops_per_s": ...}
# --------------------------------------------------------------------------

def new_loop(name, pollers):
    if name == "wfcloop":
        import wfcloop
        return wfcloop.new_event_loop(pollers=pollers) if pollers is not None \
            else wfcloop.new_event_loop()
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    import asyncio
    return asyncio.new_event_loop()


def child_calls(test, loop_name, n, pollers):
    import asyncio
    import random
    if test == "datagram_burst":
        # A fifth: asyncio's one 256 KiB recvfrom() per iteration takes
        # seconds for the full n.
        n = max(n // 5 // 32, 1) * 32
    loop = new_loop(loop_name, pollers)
    asyncio.set_event_loop(loop)

    async def run():
        lp = asyncio.get_running_loop()
        done = lp.create_future()
        count = 0

        def cb():
            nonlocal count
            count += 1
            if count == n:
                done.set_result(None)

        t0 = time.perf_counter()
        if test == "call_soon":
            for _ in range(n):
                lp.call_soon(cb)
            await done
        elif test == "call_later":
            rnd = random.Random(1).random
            for _ in range(n):
                lp.call_later(rnd() * 0.01, cb)
            await done
        elif test == "call_soon_threadsafe":
            go = threading.Event()

            def producer():
                go.wait()
                cst = lp.call_soon_threadsafe
                for _ in range(n):
                    cst(cb)
            th = threading.Thread(target=producer)
            th.start()
            t0 = time.perf_counter()
            go.set()
            await done
            th.join()
        elif test == "create_task":
            async def noop():
                return None
            ct = lp.create_task
            for _ in range(n):
                await ct(noop())
        elif test == "datagram_burst":
            # n 1 KiB datagrams in bursts of 32 (n a multiple of 32), each burst queued in the
            # socket before the loop reads (sent from a plain socket);
            # only the loop's part is timed: from the burst's last send to
            # its last datagram_received().
            import socket

            class Counter(asyncio.DatagramProtocol):
                def datagram_received(self, data, addr):
                    cb()
            transport, _ = await lp.create_datagram_endpoint(Counter, local_addr=("127.0.0.1", 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
                sender.connect(transport.get_extra_info("sockname"))
                payload = b"d" * 1024
                bursts = []
                while count + 32 <= n:
                    until = count + 32
                    for _ in range(32):
                        sender.send(payload)
                    t0 = time.perf_counter()
                    while count < until:
                        await asyncio.sleep(0)
                    bursts.append(time.perf_counter() - t0)
            transport.close()
            # The median burst's time for all n (a shared VM's preemptions
            # land in a few bursts and would swamp a sum).
            return statistics.median(bursts) * n / 32
        elif test == "future":
            cf, cs = lp.create_future, lp.call_soon
            for _ in range(n):
                f = cf()
                cs(f.set_result, None)
                await f
        else:
            raise SystemExit(f"unknown test {test}")
        return time.perf_counter() - t0

    try:
        secs = loop.run_until_complete(run())
    finally:
        loop.close()
    print(json.dumps({"test": test, "loop": loop_name, "n": n, "seconds": secs,
                      "ops_per_s": n / secs}))


# --------------------------------------------------------------------------
# driver parts
# --------------------------------------------------------------------------

def paired_ratio(results, key, num, den, group):
    """Median and list of per-round ratios num/den of results[...][key] for
    entries sharing `group` (a tuple of fields) and the round."""
    by = {}
    for r in results:
        if r.get(key) is not None:
            by[(r["loop"], r["round"]) + tuple(r[g] for g in group)] = r[key]
    rats = []
    for k, v in by.items():
        if k[0] == num:
            d = by.get((den,) + k[1:])
            if d:
                rats.append(v / d)
    return (statistics.median(rats) if rats else None), rats


def verdict(val, rats, ok):
    if val is None:
        return "not measured"
    meeting = sum(ok(x) for x in rats)
    return f"{'met' if ok(val) else 'MISSED'} ({meeting}/{len(rats)} rounds)"


def part_calls(a, loops, log):
    results = []
    tests = a.tests
    total = a.rounds * len(tests) * len(loops)
    i = 0
    for rnd in range(a.rounds):
        for ti, test in enumerate(tests):
            k = (rnd + ti) % len(loops)
            for loop in loops[k:] + loops[:k]:
                argv = [sys.executable, __file__, "--child", test, "--loop", loop, "--n", str(a.n)]
                if loop == "wfcloop" and a.pollers is not None:
                    argv += ["--pollers", str(a.pollers)]
                p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                i += 1
                try:
                    r = json.loads(p.stdout.strip().splitlines()[-1])
                except (IndexError, ValueError):
                    r = {"test": test, "loop": loop, "ops_per_s": None,
                         "why": (p.stderr.strip().splitlines() or ["?"])[-1]}
                r["round"] = rnd
                results.append(r)
                log(f"[calls {i}/{total}] round {rnd + 1} {test:<21} {loop:<8} "
                    + (f"{r['ops_per_s'] / 1e3:.0f} k ops/s" if r["ops_per_s"]
                       else f"FAILED: {r.get('why')}"))
    rows = []
    for test in tests:
        row = [test]
        for loop in loops:
            v = [r["ops_per_s"] for r in results if r["test"] == test and r["loop"] == loop
                 and r["ops_per_s"]]
            row.append(eb.fmt_rate(statistics.median(v)) if v else "failed")
        val = rats = None
        if "wfcloop" in loops and "uvloop" in loops:
            val, rats = paired_ratio([r for r in results if r["test"] == test], "ops_per_s",
                                     "wfcloop", "uvloop", ())
        row.append(eb.fmt_ratio(val))
        if "wfcloop" in loops and "asyncio" in loops:
            v2, _ = paired_ratio([r for r in results if r["test"] == test], "ops_per_s",
                                 "wfcloop", "asyncio", ())
            row.append(eb.fmt_ratio(v2))
        else:
            row.append("-")
        row.append("≥1×uv " + verdict(val, rats or [], lambda x: x >= 1.0)
                   if "uvloop" in loops else "no uvloop")
        rows.append(row)
    head = ["test (ops/s)"] + loops + ["wfcloop ×uvloop", "wfcloop ×asyncio", "target"]
    return results, head, rows


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def hold(port, n, a):
    """Start a --hold client with n connections; returns (proc, its JSON)."""
    argv = [str(eb.CLIENT), "--host", a.host, "--port", str(port), "-c", str(n),
            "-s", "64", "--hold", "--connect-timeout", "20"]
    if a.tls:
        argv.append("--tls")
    p = subprocess.Popen(argv,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    line = p.stdout.readline()
    try:
        info = json.loads(line)
    except ValueError:
        p.kill()
        p.wait()
        raise RuntimeError("hold client failed: " + p.stderr.read().strip()[-300:])
    if info.get("held") != n:
        release(p)
        raise RuntimeError(f"hold client held {info.get('held')} of {n}: {info.get('error')}")
    return p, info


def release(p):
    try:
        p.stdin.close()
    except OSError:
        pass
    try:
        p.wait(20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def start_server(loop, a, log_dir, tag):
    name = loop
    if loop == "wfcloop" and a.pollers is not None:
        name = f"wfcloop-p{a.pollers}"   # the example with --pollers
    argv = eb.server_command(name, "tls" if a.tls else "protocol", a)
    srv = eb.Server(argv, log_dir / f"{tag}-{loop}.stderr")
    srv.start()
    return srv


def server_rounds(part, rounds, servers, a, log, log_dir, measure):
    """Run ``measure(srv)`` on a fresh examples/echo_protocol.py server of
    each of ``servers``, ``rounds`` times, the order rotating from round to
    round.  measure returns (fields for the result, a line for the log).
    Returns the results, one dict per run ('why' where it failed)."""
    results = []
    for rnd in range(rounds):
        k = rnd % len(servers)
        for loop in servers[k:] + servers[:k]:
            r = {"loop": loop, "round": rnd}
            srv = None
            try:
                srv = start_server(loop, a, log_dir, part)
                fields, line = measure(srv)
                r.update(fields)
                log(f"[{part}] round {rnd + 1} {loop:<9} {line}")
            except (RuntimeError, OSError) as exc:
                r["why"] = str(exc)
                log(f"[{part}] round {rnd + 1} {loop:<9} FAILED: {exc}")
            finally:
                if srv:
                    srv.stop()
            results.append(r)
    return results


def reference_servers(a, loops):
    """The loops, and the C server unless skipped (it speaks no TLS)."""
    return loops + (["c-server"] if not (a.no_c_server or a.tls) else [])


def part_memory(a, loops, log, log_dir):
    servers = reference_servers(a, loops)

    def measure(srv):
        warm, _ = hold(srv.port, 10, a)   # first-connection allocations
        release(warm)
        time.sleep(0.3)
        base = rss_kib(srv.proc.pid)
        hp, _ = hold(srv.port, a.mem_conns, a)
        time.sleep(0.5)
        held = rss_kib(srv.proc.pid)
        release(hp)
        per_conn = (held - base) * 1024 / a.mem_conns
        return (dict(conns=a.mem_conns, rss_base_kib=base, rss_held_kib=held,
                     bytes_per_conn=per_conn),
                f"RSS {base} -> {held} KiB: {per_conn:.0f} bytes per idle connection")

    results = server_rounds("memory", a.mem_rounds, servers, a, log, log_dir, measure)
    rows = []
    for loop in servers:
        v = [r["bytes_per_conn"] for r in results if r["loop"] == loop and "bytes_per_conn" in r]
        row = [loop, f"{statistics.median(v):.0f}" if v else "failed"]
        if loop == "wfcloop" and "uvloop" in loops:
            val, rats = paired_ratio(results, "bytes_per_conn", "wfcloop", "uvloop", ())
            row += [eb.fmt_ratio(val), "≤1×uv " + verdict(val, rats, lambda x: x <= 1.0)]
        else:
            row += ["-", ""]
        rows.append(row)
    head = [f"server ({a.mem_conns} idle conns)", "bytes/conn (RSS delta)", "×uvloop", "target"]
    return results, head, rows


def part_accept(a, loops, log, log_dir):
    """Connections per second: a --hold client opens a.accept_conns
    connections at once (fewer than the examples' backlog of 1,024, so the
    kernel drops no SYN), each making one 64-byte round trip; the time is
    from the client's start to its report that every connection answered.
    (With --tls the client shakes hands one connection after another: the
    rate is then bound by the handshakes' latency.)"""
    servers = reference_servers(a, loops)

    def measure(srv):
        warm, _ = hold(srv.port, 10, a)
        release(warm)
        time.sleep(0.2)
        t0 = time.perf_counter()
        hp, _ = hold(srv.port, a.accept_conns, a)
        secs = time.perf_counter() - t0
        release(hp)
        rate = a.accept_conns / secs
        return (dict(conns=a.accept_conns, seconds=secs, conns_per_s=rate),
                f"{rate / 1e3:.1f} k connections/s")

    results = server_rounds("accept", a.rounds, servers, a, log, log_dir, measure)
    rows = []
    for loop in servers:
        v = [r["conns_per_s"] for r in results if r["loop"] == loop and "conns_per_s" in r]
        row = [loop, eb.fmt_rate(statistics.median(v)) if v else "failed"]
        if loop != "uvloop" and "uvloop" in loops:
            val, _ = paired_ratio(results, "conns_per_s", loop, "uvloop", ())
            row.append(eb.fmt_ratio(val))
        else:
            row.append("-")
        rows.append(row)
    head = [f"server ({a.accept_conns} clients at once)", "connections/s", "×uvloop"]
    return results, head, rows


def part_scaling(a, loops, log, log_dir):
    results = []
    idle = a.idle
    total = a.rounds * len(loops) * len(idle)
    i = 0
    for rnd in range(a.rounds):
        k = rnd % len(loops)
        for loop in loops[k:] + loops[:k]:
            for n_idle in (idle if rnd % 2 == 0 else idle[::-1]):
                r = {"loop": loop, "round": rnd, "idle": n_idle}
                srv = hp = None
                try:
                    srv = start_server(loop, a, log_dir, "scaling")
                    hp, _ = hold(srv.port, n_idle, a)
                    c = eb.run_client(srv, dict(mode="protocol", size=64, conns=1), a)
                    if not c.get("ok"):
                        raise RuntimeError(c.get("why"))
                    r.update(rps=c["rps"], us_per_rtt=1e6 / c["rps"] if c["rps"] else None,
                             p99_us=c.get("p99_us"),
                             server_cpu_us=(c["server_cpu_s"] * 1e6 / c["requests"]
                                            if c.get("server_cpu_s") else None))
                except (RuntimeError, OSError) as exc:
                    r["why"] = str(exc)
                finally:
                    if hp:
                        release(hp)
                    if srv:
                        srv.stop()
                results.append(r)
                i += 1
                log(f"[scaling {i}/{total}] round {rnd + 1} {loop:<8} {n_idle:>6} idle: "
                    + (f"{r['us_per_rtt']:.1f} µs per round trip, server CPU "
                       f"{r['server_cpu_us'] or float('nan'):.1f} µs per request"
                       if r.get("us_per_rtt") else f"FAILED: {r.get('why')}"))
    head = ["loop"] + [f"{n} idle" for n in idle] + [f"CPU/req {idle[-1]}/{idle[0]} idle", "target"]
    rows = []
    for loop in loops:
        row = [loop]
        for n in idle:
            v = [r["us_per_rtt"] for r in results if r["loop"] == loop and r["idle"] == n
                 and r.get("us_per_rtt")]
            cpu = [r["server_cpu_us"] for r in results if r["loop"] == loop and r["idle"] == n
                   and r.get("server_cpu_us")]
            row.append((f"{statistics.median(v):.1f} µs" if v else "failed")
                       + (f" (cpu {statistics.median(cpu):.1f})" if cpu else ""))
        rats = []
        for rnd in range(a.rounds):
            hi = next((r for r in results if r["loop"] == loop and r["round"] == rnd
                       and r["idle"] == idle[-1]), None)
            lo = next((r for r in results if r["loop"] == loop and r["round"] == rnd
                       and r["idle"] == idle[0]), None)
            if hi and lo and hi.get("server_cpu_us") and lo.get("server_cpu_us"):
                rats.append(hi["server_cpu_us"] / lo["server_cpu_us"])
        val = statistics.median(rats) if rats else None
        row.append(eb.fmt_ratio(val))
        row.append(f"flat (≤{FLAT:g}) " + verdict(val, rats, lambda x: x <= FLAT)
                   if loop == "wfcloop" else "")
        rows.append(row)
    return results, head, rows


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("parts", nargs="*", metavar="PART",
                   help="calls, memory, accept, scaling (default: all four)")
    p.add_argument("--full", action="store_true", help="more rounds and operations")
    p.add_argument("--rounds", type=int, help="rounds for calls and scaling (quick 3, full 7)")
    p.add_argument("--n", type=int, help="operations per call test (quick 100,000)")
    p.add_argument("--tests", default=",".join(CALL_TESTS), help="call tests (default: all)")
    p.add_argument("--loops", default=",".join(LOOPS), help="default: %(default)s")
    p.add_argument("--pollers", type=int, help="wfcloop's pollers (default: its default)")
    p.add_argument("--conns", dest="mem_conns", type=int, help="idle connections for memory")
    p.add_argument("--mem-rounds", type=int, help="rounds for memory (quick 1, full 3)")
    p.add_argument("--no-c-server", action="store_true",
                   help="memory, accept: skip the C reference")
    p.add_argument("--accept-conns", type=int, default=1000,
                   help="accept: clients connecting at once (default %(default)s)")
    p.add_argument("--idle", help="idle connection counts for scaling (1,100,1000,10000)")
    p.add_argument("--duration", type=float, help="scaling: measured seconds per run")
    p.add_argument("--warmup", type=float, help="scaling: warm-up seconds per run")
    p.add_argument("--tls", action="store_true",
                   help="memory, accept: TLS connections (examples/echo_protocol.py "
                        "--certfile; the client built with OpenSSL)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--json", help="write results here (default benchmarks/out/micro_bench-TIME.json)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--loop", help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.child:
        child_calls(a.child, a.loop, a.n or 100_000, a.pollers)
        return 0

    prof = PROFILES["full" if a.full else "quick"]
    a.rounds = a.rounds or prof["rounds"]
    a.n = a.n or prof["n"]
    a.mem_conns = a.mem_conns or prof["mem_conns"]
    a.mem_rounds = a.mem_rounds or prof["mem_rounds"]
    a.idle = eb.parse_list(a.idle or prof["idle"])
    a.duration = a.duration or prof["duration"]
    a.warmup = prof["warmup"] if a.warmup is None else a.warmup
    a.threads = 1
    a.poller_count = a.pollers if a.pollers is not None else 2
    a.http_app = None
    a.tests = eb.parse_list(a.tests, str)
    for t in a.tests:
        if t not in CALL_TESTS:
            p.error(f"unknown test {t!r}")
    parts = a.parts or ["calls", "memory", "accept", "scaling"]
    for part in parts:
        if part not in ("calls", "memory", "accept", "scaling"):
            p.error(f"unknown part {part!r} (calls, memory, accept, scaling)")
    loops = eb.parse_list(a.loops, str)
    notes = []
    for mod in ("uvloop", "wfcloop"):
        if mod in loops and not eb.module_available(mod):
            notes.append(f"{mod} is not importable: skipped" +
                         (" (pip install uvloop, or the 'bench' extra)" if mod == "uvloop" else ""))
            eb.progress("note: " + notes[-1])
            loops.remove(mod)

    def log(msg):
        eb.progress(msg)

    eb.build()
    if a.tls and not eb.client_has_tls():
        p.error("--tls: the load client was built without OpenSSL (libssl-dev)")
    nofile = eb.raise_nofile()
    need = max([a.mem_conns] + a.idle) + 200
    if nofile < need and ("memory" in parts or "scaling" in parts):
        notes.append(f"RLIMIT_NOFILE hard limit is {nofile}, {need} needed: memory/scaling "
                     "may fail (raise it with ulimit -Hn as root)")
        eb.progress("note: " + notes[-1])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    eb.OUT_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = eb.OUT_DIR / f"micro_bench-{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    if a.tls:
        a.tls_cert, a.tls_key = eb.make_certificate(log_dir / "tls")
    info = eb.machine_info()
    t0 = time.monotonic()
    out = {"benchmark": "micro_bench", "date": datetime.datetime.now().isoformat(timespec="seconds"),
           "command": " ".join([os.path.relpath(sys.argv[0], eb.ROOT)]
                               + (argv if argv is not None else sys.argv[1:])),
           "machine": info, "notes": notes, "params": {
               "rounds": a.rounds, "n": a.n, "mem_conns": a.mem_conns, "idle": a.idle,
               "duration": a.duration, "warmup": a.warmup, "loops": loops, "pollers": a.pollers,
               "tls": a.tls}}
    texts = [f"micro benchmarks, {info['cpu_count']} CPUs ({info['usable_cpus']} usable), "
             f"{info['cpu_model']}; Python {info['python']}; wfcloop {info['wfcloop']} "
             f"(git {info['git']}), uvloop {info['uvloop']}; wfcloop pollers: "
             f"{'default' if a.pollers is None else a.pollers}. Values: medians over rounds; "
             "ratios: medians of per-round paired ratios."]
    if "calls" in parts and loops:
        res, head, rows = part_calls(a, loops, log)
        out["calls"] = res
        texts.append(f"calls: {a.n} operations per run, {a.rounds} rounds, each run a fresh "
                     "process\n" + eb.render_text(head, rows))
    if "memory" in parts and loops:
        res, head, rows = part_memory(a, loops, log, log_dir)
        out["memory"] = res
        texts.append(f"memory: examples/echo_protocol.py, VmRSS after {a.mem_conns} idle "
                     f"{'TLS ' if a.tls else ''}connections (one 64-byte round trip each) minus before, "
                     f"{a.mem_rounds} round(s)\n" + eb.render_text(head, rows))
    if "accept" in parts and loops:
        res, head, rows = part_accept(a, loops, log, log_dir)
        out["accept"] = res
        texts.append(f"accept: connections per second, examples/echo_protocol.py, "
                     f"{a.accept_conns} clients connecting at once (one 64-byte round trip "
                     f"each), {a.rounds} rounds\n" + eb.render_text(head, rows))
    if "scaling" in parts and loops:
        res, head, rows = part_scaling(a, loops, log, log_dir)
        out["scaling"] = res
        texts.append(f"scaling: µs per 64-byte round trip on 1 active connection (server "
                     f"CPU µs per request in parentheses; the ratio and the target use the "
                     f"server CPU per request), examples/echo_protocol.py, "
                     f"{a.rounds} rounds of {a.duration:g} s\n" + eb.render_text(head, rows))
    out["elapsed_s"] = round(time.monotonic() - t0, 1)
    texts += ["note: " + n for n in notes]
    print("\n\n".join(texts))
    path = Path(a.json) if a.json else eb.OUT_DIR / f"micro_bench-{stamp}.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    eb.progress(f"json: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
