"""Defaults that protect users (issue 5): unix server sockets get the
user's umask and are removed on close (wfcloop.Loop does that on Python
3.11 and 3.12 too, as 3.13's loop does); every example listens on
127.0.0.1 unless told otherwise; the TLS client verifies certificates
unless told not to.  (Bounded read buffers and write queues: see
tests/test_reliability_faults.py.)"""
import argparse
import asyncio
import importlib.util
import os
import socket
import ssl
import stat
import sys
from pathlib import Path

import pytest

import wfcloop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pollers_param = pytest.mark.parametrize("pollers", [0, 2], ids=lambda n: f"pollers={n}")


def run(pollers, main):
    loop = wfcloop.new_event_loop(pollers=pollers)
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 30))
    finally:
        loop.close()


async def echo_once(path):
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(b"hello")
    data = await reader.readexactly(5)
    writer.close()
    await writer.wait_closed()
    return data


async def echo_handler(reader, writer):
    writer.write(await reader.read(100))
    await writer.drain()
    writer.close()


@pollers_param
@pytest.mark.parametrize("umask", [0o077, 0o022])
def test_unix_server_socket_has_the_umask_and_is_removed_on_close(pollers, umask, tmp_path,
                                                                  no_leaks):
    path = str(tmp_path / "s.sock")

    async def main():
        old = os.umask(umask)
        try:
            server = await asyncio.start_unix_server(echo_handler, path)
        finally:
            os.umask(old)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        echoed = await echo_once(path)
        server.close()
        await server.wait_closed()
        return mode, echoed, os.path.exists(path)

    mode, echoed, exists = run(pollers, main)
    assert mode == 0o777 & ~umask
    assert echoed == b"hello"
    assert not exists


@pollers_param
def test_unix_server_keeps_a_socket_file_that_is_no_longer_its_own(pollers, tmp_path, no_leaks):
    path = str(tmp_path / "s.sock")

    async def main():
        first = await asyncio.start_unix_server(echo_handler, path)
        os.unlink(path)
        second = await asyncio.start_unix_server(echo_handler, path)   # same path, new inode
        first.close()
        await first.wait_closed()
        kept = os.path.exists(path) and await echo_once(path) == b"hello"
        second.close()
        await second.wait_closed()
        return kept, os.path.exists(path)

    assert run(pollers, main) == (True, False)


@pollers_param
def test_unix_server_cleanup_socket_false_and_sock_are_left_alone(pollers, tmp_path, no_leaks):
    path = str(tmp_path / "s.sock")
    own = str(tmp_path / "own.sock")

    async def main():
        server = await asyncio.start_unix_server(echo_handler, path, cleanup_socket=False)
        server.close()
        await server.wait_closed()
        kept_on_request = os.path.exists(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(own)
        server = await asyncio.start_unix_server(echo_handler, sock=sock)
        server.close()
        await server.wait_closed()
        return kept_on_request, os.path.exists(own)

    # 3.13's own loop (which Loop is there, unchanged) removes the file of
    # a sock= it did not bind too; Loop's cleanup on 3.11 and 3.12 leaves it.
    assert run(pollers, main) == (True, sys.version_info < (3, 13))


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="the stdlib loop cleans up itself")
def test_the_stdlib_loop_of_this_python_leaves_the_file(tmp_path, no_leaks):
    """Why Loop overrides create_unix_server: the stdlib loop of 3.11/3.12
    leaves the socket file behind."""
    path = str(tmp_path / "s.sock")

    async def main():
        server = await asyncio.start_unix_server(echo_handler, path)
        server.close()
        await server.wait_closed()
        return os.path.exists(path)

    loop = asyncio.SelectorEventLoop()
    try:
        assert loop.run_until_complete(main())
    finally:
        loop.close()


def load_example(name):
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize("script", sorted(p.stem for p in EXAMPLES.glob("echo_*.py")))
def test_examples_default_to_loopback(script):
    """Every example with a --host defaults to 127.0.0.1 (``--help`` shows
    the default that argparse will use)."""
    import subprocess
    done = subprocess.run([sys.executable, str(EXAMPLES / f"{script}.py"), "--help"],
                          capture_output=True, text=True, timeout=30, cwd=EXAMPLES)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    if "--host" in text:
        assert "--host HOST" in text and "default: 127.0.0.1" in text, text
    assert "0.0.0.0" not in text.replace("0.0.0.0 or ::", "")   # only as advice


def test_tls_client_verifies_certificates_unless_told_not_to():
    client = load_example("echo_client")
    args = argparse.Namespace(cafile=None, insecure=False, tls_version=None)
    context = client.client_context(args)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    args.insecure = True
    context = client.client_context(args)
    assert context.verify_mode == ssl.CERT_NONE and not context.check_hostname
