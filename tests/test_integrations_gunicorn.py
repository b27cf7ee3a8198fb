"""gunicorn on wfcloop: wfcloop.gunicorn's worker classes booted with two
workers and --reuse-port on loopback, serving examples/http_aiohttp.py
(aiohttp) and examples/asgi_app.py (ASGI, through uvicorn); every response is
checked, the requests must reach both workers, each on a wfcloop.Loop made
in that worker; SIGTERM must stop everything cleanly.  aiohttp's own worker
on the stdlib loop is the control."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import gunicorn.config
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 20.0
STDLIB_LOOP = "asyncio.unix_events._UnixSelectorEventLoop"


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def get(port, path):
    """One request on a fresh connection (so the kernel picks a worker)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def parent_pid(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


@pytest.mark.parametrize("worker, app, loop, pollers", [
    ("wfcloop.gunicorn.Worker", "http_aiohttp:make_app()", "wfcloop.loop.Loop", 2),
    ("wfcloop.gunicorn.UvicornWorker", "asgi_app:app", "wfcloop.loop.Loop", 2),
    ("aiohttp.GunicornWebWorker", "http_aiohttp:make_app()", STDLIB_LOOP, None),  # control
], ids=["aiohttp", "uvicorn", "aiohttp-stdlib-control"])
def test_two_workers_with_reuse_port(worker, app, loop, pollers, tmp_path):
    port = free_port()
    args = [sys.executable, "-m", "gunicorn", app, "--chdir", str(EXAMPLES),
            "-k", worker, "-w", "2", "--reuse-port", "--bind", f"127.0.0.1:{port}",
            "--graceful-timeout", "5", "--log-level", "info"]
    if "control_socket_disable" in gunicorn.config.Config().settings:
        args.append("--no-control-socket")  # gunicorn 25+: no shared ~/.gunicorn socket
    env = dict(os.environ, WFCLOOP_POLLERS="2")
    log_file = tmp_path / "gunicorn.log"
    with open(log_file, "w") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        seen = {}
        deadline = time.monotonic() + TIMEOUT
        requests = 0
        while (len(seen) < 2 or requests < 40) and time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"gunicorn exited with {proc.returncode}: {log_file.read_text()}")
            try:
                status, body = get(port, "/")
            except OSError:  # not listening yet
                time.sleep(0.05)
                continue
            assert (status, body) == (200, b"Hello, World!")
            status, body = get(port, "/info")
            assert status == 200
            info = json.loads(body)
            seen.setdefault(info["pid"], set()).add((info["loop"], info["pollers"]))
            requests += 1
        assert len(seen) == 2, (seen, log_file.read_text())
        for pid, loops in seen.items():
            assert loops == {(loop, pollers)}
            assert pid != proc.pid and parent_pid(pid) == proc.pid  # gunicorn's workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 0, log_file.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = log_file.read_text()
    assert "Traceback" not in log and "Shutting down: Master" in log, log
    for pid in seen:
        assert not os.path.exists(f"/proc/{pid}"), "a worker outlived the master"


def test_module_imports_without_the_frameworks():
    """wfcloop.gunicorn imports without aiohttp or uvicorn; the class that
    needs the missing one says so when looked up."""
    code = (
        "import sys\n"
        "sys.modules['aiohttp'] = sys.modules['uvicorn'] = None\n"
        "import wfcloop.gunicorn as g\n"
        "for name in ('Worker', 'UvicornWorker'):\n"
        "    try:\n"
        "        getattr(g, name)\n"
        "    except ImportError as exc:\n"
        "        print(name, exc)\n"
        "try:\n"
        "    g.Nothing\n"
        "except AttributeError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert out[0].startswith("Worker wfcloop.gunicorn.Worker needs aiohttp and gunicorn: "
                             "pip install aiohttp gunicorn")
    assert out[1].startswith("UvicornWorker wfcloop.gunicorn.UvicornWorker needs uvicorn "
                             "and gunicorn: pip install uvicorn gunicorn")
    assert out[2] == "module 'wfcloop.gunicorn' has no attribute 'Nothing'"


def test_worker_classes_are_the_frameworks_workers():
    import aiohttp.worker

    import wfcloop.gunicorn

    assert issubclass(wfcloop.gunicorn.Worker, aiohttp.worker.GunicornWebWorker)
    assert wfcloop.gunicorn.Worker.__module__ == "wfcloop.gunicorn"
    assert wfcloop.gunicorn.UvicornWorker.CONFIG_KWARGS["loop"] == "wfcloop:new_event_loop"
    assert {"Worker", "UvicornWorker"} <= set(dir(wfcloop.gunicorn))
