"""anyio's asyncio backend on wfcloop: anyio.run with the loop_factory
backend option, and anyio's pytest plugin with the same option; TCP through
anyio's API, a task group, worker threads and a subprocess."""
import asyncio
import sys

import anyio
import pytest
from anyio.abc import SocketAttribute

import wfcloop


async def exercise():
    """Return the running loop's type and what went over TCP."""
    loop = asyncio.get_running_loop()
    received = []

    async def handle(stream):
        async with stream:
            async for data in stream:
                await stream.send(data.upper())

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)

        async def client(i):
            async with await anyio.connect_tcp("127.0.0.1", port) as stream:
                payload = f"client {i} ".encode() * 5000
                await stream.send(payload)
                got = b""
                while len(got) < len(payload):
                    got += await stream.receive()
                received.append(got == payload.upper())

        async with anyio.create_task_group() as clients:
            for i in range(10):
                clients.start_soon(client, i)
        # A worker thread calling back into the loop.
        echoed = await anyio.to_thread.run_sync(anyio.from_thread.run, anyio.sleep, 0)
        assert echoed is None
        done = await anyio.run_process([sys.executable, "-c", "print('sub')"])
        assert done.stdout == b"sub\n"
        with anyio.fail_after(5):
            await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    await listener.aclose()
    return type(loop), received


@pytest.mark.parametrize("pollers", [0, 2])
def test_anyio_run_with_loop_factory(pollers, no_leaks):
    def factory():
        return wfcloop.new_event_loop(pollers=pollers)

    loop_type, received = anyio.run(exercise, backend="asyncio",
                                    backend_options={"loop_factory": factory})
    assert loop_type is wfcloop.Loop
    assert received == [True] * 10


def test_anyio_run_control_on_the_stdlib_loop(no_leaks):
    loop_type, received = anyio.run(exercise, backend="asyncio")
    assert loop_type is not wfcloop.Loop and issubclass(loop_type, asyncio.BaseEventLoop)
    assert received == [True] * 10


# anyio's own pytest plugin, told to use wfcloop.
@pytest.fixture
def anyio_backend():
    return "asyncio", {"loop_factory": wfcloop.new_event_loop}


@pytest.mark.anyio
async def test_anyio_pytest_plugin_runs_on_wfcloop():
    loop_type, received = await exercise()
    assert loop_type is wfcloop.Loop
    assert received == [True] * 10
