"""benchmarks/: the C load client and C echo server build without warnings,
and echo_bench.py runs a tiny matrix end to end (1 round, 0.5 s, protocol
mode) with every server answering and the client seeing no errors; so does
micro_bench.py's call, memory and accept parts, and instructions_bench.py
under valgrind (where it is installed).

Never asserts timings or ratios: only that each server was measured."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")


@pytest.mark.parametrize("src", ["load_client.c", "c_echo_server.c"])
def test_c_programs_compile_without_warnings(src, tmp_path):
    p = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread",
                        str(BENCH / "tools" / src), "-o", str(tmp_path / "prog")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr


def test_echo_bench_tiny_run(tmp_path):
    # same:wfcloop: wfcloop run by the interpreter --build names (an A/B of
    # two builds in one run; here the same one)
    servers = ["asyncio", "wfcloop", "c-server", "same:wfcloop"]
    try:
        import uvloop  # noqa: F401
        servers.append("uvloop")
    except ImportError:
        pass
    out = tmp_path / "echo.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "echo_bench.py"), "--rounds", "1", "--duration", "0.5",
         "--warmup", "0.1", "--modes", "protocol", "--sizes", "1024", "--conns", "10",
         "--servers", ",".join(servers), "--build", f"same={sys.executable}",
         "--json", str(out), "--no-png"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(out.read_text())
    by_server = {r["server"]: r for r in result["runs"]}
    assert set(by_server) == set(servers)
    for name, r in by_server.items():
        assert r["ok"], (name, r.get("why"))
        assert r["rps"] > 0, name
        assert r["errors"] == 0, (name, r.get("error"))
        assert r["conns_alive"] == 10, name
        # the host's steal over the window, where this kernel counts it
        assert r["steal_pct"] is None or 0 <= r["steal_pct"] <= 100, (name, r["steal_pct"])
    assert "cell" in p.stdout and "req/s" in p.stdout  # the table was printed


def test_echo_bench_measures_again_above_max_steal(tmp_path):
    """--max-steal: a run whose window had more steal than that is measured
    again, up to 3 more times.  Below zero every window exceeds it, so each
    run is measured four times and the one kept says three were set aside
    (where this kernel counts steal; with none counted nothing is retried)."""
    out = tmp_path / "echo.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "echo_bench.py"), "--rounds", "1", "--duration", "0.3",
         "--warmup", "0", "--modes", "protocol", "--sizes", "1024", "--conns", "10",
         "--servers", "wfcloop,asyncio", "--max-steal", "-1", "--json", str(out), "--no-png"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = json.loads(out.read_text())["runs"]
    assert {r["server"] for r in runs} == {"wfcloop", "asyncio"} and len(runs) == 2
    for r in runs:
        assert r["ok"], r.get("why")
        if r["steal_pct"] is None:
            assert r["steal_retries"] == 0
        else:
            assert r["steal_retries"] == 3 and len(r["steal_set_aside"]) == 3
            assert p.stderr.count(f"{r['server']}: steal") == 3


@pytest.mark.skipif(shutil.which("callgrind_control") is None,
                    reason="needs valgrind (scripts/install-valgrind.sh)")
def test_instructions_bench_counts_the_measured_window(tmp_path):
    """instructions_bench.py zeroes callgrind's counters at the client's
    measured window and dumps them at its end: the count is the window's,
    not the server's start (a Python server's imports alone are hundreds of
    millions of instructions), and only the loop thread runs inline."""
    out = tmp_path / "instructions.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "instructions_bench.py"), "--servers", "wfcloop,wfcloop-p2",
         "--modes", "protocol,tls" if _have_openssl_headers() else "protocol",
         "--conns", "10", "--warmup", "0.3", "--duration", "0.5", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = {(r["server"], r["mode"]): r for r in json.loads(out.read_text())["runs"]}
    assert {server for server, _ in runs} == {"wfcloop", "wfcloop-p2"}
    for name, r in runs.items():
        assert r["ok"] and r["requests"] > 0, (name, r)
        assert r["loop_ir"] < 150_000_000, (name, r)   # the window, not the start
        assert 500 < r["loop_ir_per_request"] < 50_000, (name, r)
        assert r["all_ir"] >= r["loop_ir"], (name, r)
    inline = runs["wfcloop", "protocol"]
    assert inline["threads"] == 1 and inline["all_ir"] == inline["loop_ir"]
    assert "instructions per request" in p.stdout


def test_instructions_bench_runs_valgrind_after_an_env_prefix():
    sys.path.insert(0, str(BENCH))
    try:
        import instructions_bench as ib
    finally:
        sys.path.remove(str(BENCH))
    argv = ib.callgrind_argv(["env", "WFCLOOP_ADAPTIVE=0", "python", "srv.py"], "/tmp/x.cg")
    assert argv[:2] == ["env", "WFCLOOP_ADAPTIVE=0"] and argv[2] == "valgrind"
    assert argv[-2:] == ["python", "srv.py"] and "--callgrind-out-file=/tmp/x.cg" in argv
    assert ib.callgrind_argv(["python", "srv.py"], "/tmp/x.cg")[0] == "valgrind"


def test_micro_bench_tiny_run(tmp_path):
    """micro_bench.py's call, memory and accept parts, tiny: every loop is
    measured in each (a failed server shows up as a 'why' in its row)."""
    loops = ["wfcloop", "asyncio"]
    try:
        import uvloop  # noqa: F401
        loops.append("uvloop")
    except ImportError:
        pass
    out = tmp_path / "micro.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "micro_bench.py"), "calls", "memory", "accept",
         "--rounds", "1", "--n", "2000", "--tests", "call_later,future,datagram_burst",
         "--conns", "50", "--accept-conns", "50", "--loops", ",".join(loops),
         "--json", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(out.read_text())
    assert {(r["test"], r["loop"]) for r in result["calls"] if r.get("ops_per_s")} == \
        {(t, lp) for t in ("call_later", "future", "datagram_burst") for lp in loops}
    for part, key in (("memory", "bytes_per_conn"), ("accept", "conns_per_s")):
        measured = {r["loop"]: r for r in result[part]}
        assert set(measured) == set(loops) | {"c-server"}, part
        for name, r in measured.items():
            # (50 idle connections of the C server fit in pages it had)
            assert key in r and r[key] >= (0 if part == "memory" else 1), \
                (part, name, r.get("why"))
    assert "connections/s" in p.stdout


def _wrk():
    """wrk, installed by the project's script under CI=true where missing."""
    if shutil.which("wrk") is None and os.environ.get("CI") == "true":
        subprocess.run(["sh", str(ROOT / "scripts" / "install-wrk.sh")],
                       capture_output=True, timeout=300)
    return shutil.which("wrk")


def test_http_bench_tiny_run(tmp_path):
    """--http-only, tiny: the raw stack plain and over TLS (and its 64 KiB
    and handshake-per-request rows) answers wrk on every loop, with no
    socket errors and no non-2xx responses."""
    if _wrk() is None:
        pytest.skip("needs wrk (scripts/install-wrk.sh)")
    loops = ["wfcloop", "asyncio"]
    try:
        import uvloop  # noqa: F401
        loops.append("uvloop")
    except ImportError:
        pass
    out = tmp_path / "http.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "echo_bench.py"), "--http-only", "--http-apps", "raw",
         "--rounds", "1", "--duration", "1", "--warmup", "0", "--http-conns", "10",
         "--servers", ",".join(loops), "--json", str(out), "--no-png"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    result = json.loads(out.read_text())
    measured = {(r["mode"], r["server"]): r for r in result["runs"]}
    modes = {"http-raw", "https-raw", "https-raw-64k", "https-raw-close"}
    assert set(measured) == {(m, lp) for m in modes for lp in loops}
    for key, r in measured.items():
        assert r["ok"] and r["rps"] > 0, (key, r.get("why"))
        assert r["errors"] == 0, key
        assert r["steal_pct"] is None or 0 <= r["steal_pct"] <= 100, (key, r["steal_pct"])


def test_udp_load_client_compiles_without_warnings(tmp_path):
    p = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-std=gnu11",
                        str(BENCH / "tools" / "udp_load_client.c"), "-o", str(tmp_path / "prog")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr
    # Loopback only: another address is refused (exit 2) before anything is sent.
    p = subprocess.run([str(tmp_path / "prog"), "--host", "192.0.2.1", "-d", "0.1"],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "not a loopback address" in p.stderr


def test_echo_bench_tiny_udp_run(tmp_path):
    """The udp mode: every server echoes datagrams, the client sees no errors."""
    servers = ["asyncio", "wfcloop"]
    try:
        import uvloop  # noqa: F401
        servers.append("uvloop")
    except ImportError:
        pass
    out = tmp_path / "udp.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "echo_bench.py"), "--rounds", "1", "--duration", "0.5",
         "--warmup", "0.1", "--modes", "udp", "--sizes", "1024", "--conns", "10",
         "--servers", ",".join(servers + ["c-server"]), "--json", str(out), "--no-png"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    by_server = {r["server"]: r for r in json.loads(out.read_text())["runs"]}
    assert set(by_server) == set(servers)   # no C server for UDP
    for name, r in by_server.items():
        assert r["ok"], (name, r.get("why"))
        assert r["mode"] == "udp" and r["rps"] > 0 and r["errors"] == 0, (name, r)
        assert r["conns_alive"] == 10, name
    assert "udp 1 KiB 10c" in p.stdout


def _have_openssl_headers():
    return any(Path(d, "openssl", "ssl.h").exists() for d in ("/usr/include", "/usr/local/include"))


def test_load_client_with_tls_compiles_without_warnings(tmp_path):
    if not _have_openssl_headers():
        pytest.skip("needs OpenSSL's headers (libssl-dev)")
    p = subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-std=gnu11", "-pthread", "-DWITH_TLS",
                        str(BENCH / "tools" / "load_client.c"), "-o", str(tmp_path / "prog"),
                        "-lssl", "-lcrypto"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "warning" not in p.stderr, p.stderr
    assert "--tls" in subprocess.run([str(tmp_path / "prog"), "--help"], capture_output=True,
                                     text=True, timeout=10).stdout
    # Against a plain TCP listener the handshake fails: exit 1, no hang.
    import socket
    with socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]
        p = subprocess.Popen([str(tmp_path / "prog"), "--tls", "--port", str(port), "-c", "1",
                              "--connect-timeout", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        conn, _ = srv.accept()
        conn.close()   # closed before the handshake answers
        _, err = p.communicate(timeout=20)
    assert p.returncode == 1 and "TLS handshake" in err, err


def test_echo_bench_tiny_tls_and_udp_run(tmp_path):
    """The quick profile's tls and udp rows, tiny: every server but the C
    one echoes 1 KiB over TLS (load_client --tls) and as datagrams, with a
    nonzero rate and no client errors."""
    if not _have_openssl_headers():
        pytest.skip("needs OpenSSL's headers (libssl-dev)")
    servers = ["asyncio", "wfcloop"]
    try:
        import uvloop  # noqa: F401
        servers.append("uvloop")
    except ImportError:
        pass
    out = tmp_path / "tls_udp.json"
    p = subprocess.run(
        [sys.executable, str(BENCH / "echo_bench.py"), "--rounds", "1", "--duration", "0.5",
         "--warmup", "0.1", "--modes", "tls,udp", "--sizes", "1024", "--conns", "10",
         "--servers", ",".join(servers + ["c-server"]), "--json", str(out), "--no-png"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    measured = {(r["mode"], r["server"]): r for r in json.loads(out.read_text())["runs"]}
    # no C server for either mode
    assert set(measured) == {(m, s) for m in ("tls", "udp") for s in servers}
    for key, r in measured.items():
        assert r["ok"], (key, r.get("why"))
        assert r["rps"] > 0 and r["errors"] == 0, (key, r)
        assert r["conns_alive"] == 10, key
    assert "tls 1 KiB 10c" in p.stdout and "udp 1 KiB 10c" in p.stdout
