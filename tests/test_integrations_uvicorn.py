"""uvicorn on wfcloop: examples/asgi_app.py served on loopback, in-process
through uvicorn.Config's ``loop`` setting (a ``module:attribute`` string, a
callable, and wfcloop.install() with ``loop="none"``), and with uvicorn's
command line as documented; each asserts that the loop serving the request
is a wfcloop.Loop, the stdlib loop being the control."""
import asyncio
import functools
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import uvicorn

import wfcloop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import asgi_app  # noqa: E402

sys.path.remove(str(EXAMPLES))

TIMEOUT = 20.0


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check_app(port, loop):
    """Requests to asgi_app; returns what /info reports."""
    assert request(port, "GET", "/") == (200, b"Hello, World!")
    data = os.urandom(1 << 20)
    assert request(port, "POST", "/echo", data) == (200, data)
    status, body = request(port, "GET", "/info")
    assert status == 200
    info = json.loads(body)
    assert info["loop"] == loop
    return info


def serve_in_thread(config):
    """Run uvicorn.Server(config) in a thread, on a listening socket made
    here (port 0); return (port, stop)."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(config)
    failed = []

    def target():
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: B036  (reported to the test)
            failed.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, failed

    def stop():
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()
        assert not thread.is_alive()
        assert not failed, failed

    return sock.getsockname()[1], stop


@pytest.mark.parametrize("loop, expected", [
    ("wfcloop:new_event_loop", ("wfcloop.loop.Loop", wfcloop.default_pollers())),
    (functools.partial(wfcloop.new_event_loop, pollers=2), ("wfcloop.loop.Loop", 2)),
    ("asyncio", ("asyncio.unix_events._UnixSelectorEventLoop", None)),  # the control
], ids=["module:attribute", "callable-pollers=2", "asyncio"])
def test_uvicorn_config_loop(loop, expected, no_leaks):
    config = uvicorn.Config(asgi_app.app, loop=loop, log_level="warning", lifespan="on")
    port, stop = serve_in_thread(config)
    try:
        info = check_app(port, expected[0])
        assert info["pollers"] == expected[1]
    finally:
        stop()


def test_uvicorn_loop_none_after_wfcloop_install(no_leaks):
    old = asyncio.get_event_loop_policy()
    wfcloop.install()
    try:
        config = uvicorn.Config(asgi_app.app, loop="none", log_level="warning")
        port, stop = serve_in_thread(config)
        try:
            check_app(port, "wfcloop.loop.Loop")
        finally:
            stop()
    finally:
        asyncio.set_event_loop_policy(old)


def free_port():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def wait_until_serving(proc, port, stderr_file):
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}: {stderr_file.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"not serving within {TIMEOUT} s: {stderr_file.read_text()}")


@pytest.mark.parametrize("loop", ["wfcloop:new_event_loop", "asyncio"])
def test_uvicorn_command_line(loop, tmp_path):
    port = free_port()
    stderr_file = tmp_path / "uvicorn.stderr"
    with open(stderr_file, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "asgi_app:app", "--app-dir", str(EXAMPLES),
             "--loop", loop, "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_until_serving(proc, port, stderr_file)
        expected = "wfcloop.loop.Loop" if loop.startswith("wfcloop") else \
            "asyncio.unix_events._UnixSelectorEventLoop"
        assert check_app(port, expected)["pid"] == proc.pid
        proc.send_signal(signal.SIGINT)
        # uvicorn shuts down, then re-raises SIGINT with the default handler
        # restored: a KeyboardInterrupt that its command line turns into 0.
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = stderr_file.read_text()
    assert "Finished server process" in log and "Traceback" not in log, log
