"""aiohttp on wfcloop: examples/http_aiohttp.py's application served with
AppRunner/TCPSite on loopback and talked to with aiohttp's client session on
the same loop (keep-alive, streamed bodies both ways, websockets, many
clients at once); then the example server and client as a user runs them.

Each in-process test also runs on the stdlib loop ("asyncio"), the control:
a failure there too is not wfcloop's.
"""
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from test_examples import TIMEOUT, example  # noqa: F401  (the fixture)

import wfcloop

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))
import http_aiohttp  # noqa: E402  (examples/; imports _common from there)

sys.path.remove(str(EXAMPLES))



def run_script(script, *args):
    """Run an example to completion; return (exit code, stdout, stderr)."""
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=6 * TIMEOUT)
    return done.returncode, done.stdout, done.stderr


LOOPS = {
    "wfcloop-pollers=0": lambda: wfcloop.new_event_loop(pollers=0),
    "wfcloop-pollers=2": lambda: wfcloop.new_event_loop(pollers=2),
    "asyncio": asyncio.SelectorEventLoop,
}


@pytest.fixture(params=list(LOOPS))
def run(request, no_leaks):
    """run(coro_fn): serve the example app on the chosen loop, run
    ``coro_fn(base_url)`` there, and return its result."""
    factory = LOOPS[request.param]

    async def main(coro_fn):
        loop = asyncio.get_running_loop()
        expected = wfcloop.Loop if request.param.startswith("wfcloop") else asyncio.SelectorEventLoop
        assert type(loop) is expected
        runner = web.AppRunner(http_aiohttp.make_app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            return await asyncio.wait_for(coro_fn(f"http://{host}:{port}"), 60)
        finally:
            await runner.cleanup()

    def run(coro_fn):
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main(coro_fn))

    run.loop_name = request.param
    return run


def expected_loop(run):
    return "wfcloop.loop.Loop" if run.loop_name.startswith("wfcloop") else \
        "asyncio.unix_events._UnixSelectorEventLoop"


def test_keep_alive_reuses_one_connection(run):
    async def client(base):
        results = {}
        for name, connector in [("keep-alive", aiohttp.TCPConnector(limit=1)),
                                ("force-close", aiohttp.TCPConnector(force_close=True))]:
            peers, loops = [], set()
            async with aiohttp.ClientSession(connector=connector) as session:
                for _ in range(30):
                    async with session.get(base + "/") as resp:
                        assert resp.status == 200
                        assert await resp.text() == "Hello, World!"
                    async with session.get(base + "/info") as resp:
                        info = await resp.json()
                        peers.append(tuple(info["peer"]))
                        loops.add(info["loop"])
            results[name] = (len(set(peers)), loops)
        return results

    results = run(client)
    loop = expected_loop(run)
    # One connection for all 60 requests; the control: a new one each time.
    assert results == {"keep-alive": (1, {loop}), "force-close": (30, {loop})}


def test_streamed_response_and_request_bodies(run):
    async def client(base):
        async with aiohttp.ClientSession() as session:
            chunks, size = 20, 150_000
            async with session.get(base + "/stream",
                                   params={"chunks": chunks, "size": size}) as resp:
                assert resp.status == 200
                assert resp.headers["Transfer-Encoding"] == "chunked"
                got = bytearray()
                async for piece in resp.content.iter_chunked(10_000):
                    got += piece
            assert bytes(got) == b"".join(http_aiohttp.stream_chunk(i, size)
                                          for i in range(chunks))

            data = os.urandom(8 << 20)
            sent = []

            async def body():
                for start in range(0, len(data), 100_000):
                    sent.append(start)
                    yield data[start:start + 100_000]

            async with session.post(base + "/echo", data=body()) as resp:
                assert resp.status == 200
                assert resp.headers["Transfer-Encoding"] == "chunked"
                echoed = bytearray()
                async for piece in resp.content.iter_any():
                    echoed += piece
            assert len(sent) == 84  # the body did go out in pieces
            assert bytes(echoed) == data

            # Empty bodies both ways.
            async with session.get(base + "/stream", params={"chunks": 0}) as resp:
                assert await resp.read() == b""
            async with session.post(base + "/echo", data=b"") as resp:
                assert await resp.read() == b""
            async with session.get(base + "/stream", params={"chunks": "x"}) as resp:
                assert resp.status == 400
        return True

    assert run(client)


def test_websocket_echo(run):
    async def client(base):
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(base + "/ws") as ws:
                for text in ["", "hello", "é" * 70_000]:
                    await ws.send_str(text)
                    assert await ws.receive_str() == text
                for size in [0, 1, 125, 126, 65535, 65536, 1 << 20]:
                    blob = os.urandom(size)
                    await ws.send_bytes(blob)
                    assert await ws.receive_bytes() == blob
                # Many in flight before reading the first echo.
                blobs = [os.urandom(1000 + i) for i in range(200)]
                for blob in blobs:
                    await ws.send_bytes(blob)
                for blob in blobs:
                    assert await ws.receive_bytes() == blob
                await ws.send_str("close")
                msg = await ws.receive()
                assert msg.type == aiohttp.WSMsgType.CLOSE
            assert ws.closed
        return True

    assert run(client)


def test_many_clients_at_once(run):
    async def one(session, base, i):
        data = os.urandom(50_000 + i)
        async with session.post(base + "/echo", data=data) as resp:
            assert await resp.read() == data
        async with session.ws_connect(base + "/ws") as ws:
            await ws.send_bytes(data)
            assert await ws.receive_bytes() == data
        return i

    async def client(base):
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(connector=connector) as session:
            return await asyncio.gather(*(one(session, base, i) for i in range(100)))

    assert run(client) == list(range(100))


@pytest.mark.parametrize("pollers", [0, 2])
def test_example_server_and_client(example, pollers):
    server = example("http_aiohttp.py", "--port", "0", "--pollers", str(pollers))
    host, port = server.listening()
    assert server.loop == f"wfcloop, {pollers} pollers"
    code, out, err = run_script("http_client_aiohttp.py", "--port", str(port),
                                "--pollers", str(pollers), "--requests", "50")
    assert (code, err) == (0, ""), out
    assert out.startswith("ok: 50 keep-alive requests, a streamed download, a 1048576-byte "
                          "streamed upload echoed and websocket echoes, byte-exact, in ")
    assert out.rstrip().endswith("(wfcloop)")
    server.stop()
    # Nobody there any more: one error line, exit code 1.
    code, out, err = run_script("http_client_aiohttp.py", "--port", str(port))
    assert code == 1 and err.startswith("error: ClientConnectorError") and "Traceback" not in err


def test_example_server_on_the_other_loops(example):
    server = example("http_aiohttp.py", "--port", "0", "--loop", "asyncio")
    port = server.listening(loop="asyncio")[1]
    code, out, err = run_script("http_client_aiohttp.py", "--port", str(port), "--loop", "asyncio",
                                "--requests", "5", "--size", "1000")
    assert (code, err) == (0, ""), out
    assert out.rstrip().endswith("(asyncio)")
    server.stop()
