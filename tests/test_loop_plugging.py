"""wfcloop.Loop plugged in every way users plug a loop in, and its basics
on real sockets, threads, signals and subprocesses."""
import asyncio
import os
import signal
import sys
import threading
import unittest

import pytest

import wfcloop


@pytest.mark.asyncio
async def test_pytest_asyncio_runs_on_wfcloop():
    assert isinstance(asyncio.get_running_loop(), wfcloop.Loop)


async def running_loop():
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


@pytest.mark.parametrize("pollers", [0, 2])
def test_run_returns_the_result_on_a_wfcloop_loop(pollers, no_leaks):
    async def main():
        loop = asyncio.get_running_loop()
        return type(loop), loop.pollers, loop.get_debug()

    assert wfcloop.run(main(), pollers=pollers, debug=True) == (wfcloop.Loop, pollers, True)


def test_run_propagates_the_exception(no_leaks):
    async def main():
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        wfcloop.run(main())


def test_runner_with_loop_factory(no_leaks):
    with asyncio.Runner(loop_factory=wfcloop.new_event_loop) as runner:
        assert isinstance(runner.run(running_loop()), wfcloop.Loop)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.run(loop_factory=) is 3.12+")
def test_asyncio_run_with_loop_factory(no_leaks):
    loop = asyncio.run(running_loop(), loop_factory=wfcloop.new_event_loop)
    assert isinstance(loop, wfcloop.Loop)


def test_policy_and_install(no_leaks):
    policy = wfcloop.EventLoopPolicy()
    loop = policy.new_event_loop()
    try:
        assert isinstance(loop, wfcloop.Loop)
        assert isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()
    old = asyncio.get_event_loop_policy()
    try:
        wfcloop.install()
        assert isinstance(asyncio.get_event_loop_policy(), wfcloop.EventLoopPolicy)
        loop = asyncio.new_event_loop()
        assert isinstance(loop, wfcloop.Loop)
        loop.close()
    finally:
        asyncio.set_event_loop_policy(old)


def test_isolated_asyncio_test_case_runs_on_wfcloop(no_leaks):
    seen = []

    class Case(unittest.IsolatedAsyncioTestCase):
        if sys.version_info >= (3, 13):
            # A class, as asyncio.EventLoop in CPython's documentation: a
            # plain function here (wfcloop.new_event_loop) would become a
            # method, and unittest would call it with the test case.
            loop_factory = wfcloop.Loop

        async def test_loop(self):
            seen.append(type(asyncio.get_running_loop()))

    old = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(wfcloop.EventLoopPolicy())
    try:
        result = unittest.TestResult()
        Case("test_loop").run(result)
    finally:
        asyncio.set_event_loop_policy(old)
    assert result.wasSuccessful(), result.errors + result.failures
    assert seen == [wfcloop.Loop]


@pytest.mark.parametrize("pollers", [0, 2])
def test_tcp_echo_over_streams_and_close_leaks_nothing(pollers, no_leaks):
    async def main():
        async def handle(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = os.urandom(1 << 20)
        writer.write(payload)
        echoed = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return echoed == payload

    assert wfcloop.run(main(), pollers=pollers)


@pytest.mark.parametrize("pollers", [0, 2])
def test_call_soon_threadsafe_wakes_a_sleeping_loop(pollers, no_leaks):
    async def main():
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        threading.Timer(0.05, loop.call_soon_threadsafe, (fut.set_result, 42)).start()
        return await asyncio.wait_for(fut, 5)

    assert wfcloop.run(main(), pollers=pollers) == 42


@pytest.mark.parametrize("pollers", [0, 2])
def test_signal_handler_runs_on_the_loop(pollers, no_leaks):
    async def main():
        loop = asyncio.get_running_loop()
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, got.set_result, "usr1")
        try:
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1)).start()
            return await asyncio.wait_for(got, 5)
        finally:
            assert loop.remove_signal_handler(signal.SIGUSR1)

    assert wfcloop.run(main(), pollers=pollers) == "usr1"


@pytest.mark.parametrize("pollers", [0, 2])
def test_subprocess_exec_through_pipes(pollers, no_leaks):
    async def main():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate(b"wfcloop")
        return proc.returncode, out

    assert wfcloop.run(main(), pollers=pollers) == (0, b"WFCLOOP")


def test_closed_loop_raises_runtime_error(no_leaks):
    loop = wfcloop.new_event_loop()
    loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        loop.call_soon(print)
    coro = asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(coro)
    coro.close()


def test_call_soon_rejects_a_coroutine_in_debug_mode(no_leaks):
    # CPython checks the callback's type in debug mode only; so do we.
    loop = wfcloop.new_event_loop()
    loop.set_debug(True)
    try:
        coro = asyncio.sleep(0)
        with pytest.raises(TypeError):
            loop.call_soon(coro)
        coro.close()
    finally:
        loop.close()
