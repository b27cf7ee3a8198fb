"""Adaptive poller mode: the loop parks its pollers and reads the kernel
itself (the INLINE phase) or lets them read it (the POLLERS phase).

What must hold whatever the phase, and across switches: every byte echoed
once and in order, no event lost (nothing hangs), no thread or fd leaked at
close.  The rule that picks the phase is measured in benchmarks/, not here
(tests do not assert timings).
"""
import asyncio
import os
import random
import threading
import time
import zlib

import pytest

import wfcloop


def poller_threads():
    """The native poller threads of this process (named wfc-poller-N)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:   # a thread that just ended
            pass
    return sum(name.startswith("wfc-poller-") for name in names)


def poller_threads_gone_to(count, limit=2.0):
    """poller_threads() once it is down to ``count`` (or after ``limit``
    seconds): pthread_join() returns when the kernel has cleared the
    thread's tid, a moment before /proc/self/task stops listing it."""
    deadline = time.monotonic() + limit
    while poller_threads() > count and time.monotonic() < deadline:
        time.sleep(0.001)
    return poller_threads()


def test_pollers_start_parked_when_adaptive(no_leaks):
    """Parked pollers are no threads at all: a parked loop's process is
    single-threaded again (the kernel then skips a file reference on every
    fd system call)."""
    before = poller_threads()
    loop = wfcloop.Loop(pollers=2)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.poller_phase == "inline"
        assert poller_threads() == before
    finally:
        loop.close()


def test_parking_ends_the_poller_threads_and_unparking_starts_them(no_leaks):
    before = poller_threads()
    loop = wfcloop.Loop(pollers=3)
    ep = loop._selector._selector
    try:
        for _ in range(20):
            ep._request_phase("pollers")
            loop.run_until_complete(asyncio.sleep(0))
            assert loop.poller_phase == "pollers"
            assert poller_threads() == before + 3
            ep._request_phase("inline")
            loop.run_until_complete(asyncio.sleep(0))
            assert loop.poller_phase == "inline"
            assert poller_threads_gone_to(before) == before
        ep._request_phase("pollers")
        loop.run_until_complete(asyncio.sleep(0))
        assert poller_threads() == before + 3
    finally:
        loop.close()   # joins the running pollers
    assert poller_threads_gone_to(before) == before


def test_pinned_pollers_are_threads(no_leaks):
    before = poller_threads()
    loop = wfcloop.Loop(pollers=2, adaptive=False)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert poller_threads() == before + 2
    finally:
        loop.close()
    assert poller_threads_gone_to(before) == before


def test_pinned_pollers_stay_in_the_pollers_phase(no_leaks):
    loop = wfcloop.Loop(pollers=2, adaptive=False)
    try:
        loop.run_until_complete(asyncio.sleep(0.01))
        assert loop.poller_phase == "pollers"
        assert loop._selector.stats()["phase_switches"] == 0
    finally:
        loop.close()


def test_inline_mode_has_only_the_inline_phase(no_leaks):
    loop = wfcloop.Loop(pollers=0)
    try:
        assert loop.poller_phase == "inline"
        with pytest.raises(ValueError):
            loop._selector._selector._request_phase("pollers")
        with pytest.raises(ValueError):
            loop._selector._selector._request_phase("sideways")
    finally:
        loop.close()


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True), ("", True)])
def test_wfcloop_adaptive_environment(monkeypatch, value, expected, no_leaks):
    monkeypatch.setenv("WFCLOOP_ADAPTIVE", value)
    assert wfcloop.default_adaptive() is expected
    loop = wfcloop.Loop(pollers=1)
    try:
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.poller_phase == ("inline" if expected else "pollers")
    finally:
        loop.close()


def test_wfcloop_adaptive_environment_bad_value(monkeypatch):
    monkeypatch.setenv("WFCLOOP_ADAPTIVE", "sometimes")
    with pytest.raises(ValueError, match="WFCLOOP_ADAPTIVE"):
        wfcloop.Loop(pollers=1)


async def _echo_under_phase_flips(loop, flips, connections=20, messages=200):
    """Echo servers and clients on loopback; meanwhile a task asks for a
    random phase every ~0.5 ms.  Returns the number of phase switches."""
    ep = loop._selector._selector
    rng = random.Random(4)

    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()

    async def flipper():
        while not stop.is_set():
            if flips:
                ep._request_phase(rng.choice(["inline", "pollers"]))
            await asyncio.sleep(0.0005)

    async def client(seed):
        r = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = received = 0
        for _ in range(messages):
            msg = r.randbytes(r.randrange(1, 4096))
            sent = zlib.crc32(msg, sent)
            writer.write(msg)
            got = await reader.readexactly(len(msg))
            received = zlib.crc32(got, received)
        writer.close()
        await writer.wait_closed()
        return sent, received

    flip_task = asyncio.create_task(flipper())
    try:
        results = await asyncio.wait_for(
            asyncio.gather(*(client(i) for i in range(connections))), 60)
    finally:
        stop.set()
        await flip_task
        server.close()
        await server.wait_closed()
    for sent, received in results:
        assert sent == received
    return loop._selector.stats()["phase_switches"]


@pytest.mark.parametrize("npollers", [1, 2, 4], ids=lambda n: f"pollers={n}")
def test_echo_exact_across_phase_switches(npollers, no_leaks):
    loop = wfcloop.Loop(pollers=npollers)
    try:
        switches = loop.run_until_complete(_echo_under_phase_flips(loop, flips=True))
        # the switches really happened, many of them mid-stream
        assert switches >= 20
    finally:
        loop.close()


def test_close_while_pollers_parked_joins_them(no_leaks):
    """A loop closed in the INLINE phase (pollers waiting on their
    condition variable, not in epoll_wait) still joins every poller."""
    for _ in range(20):
        loop = wfcloop.Loop(pollers=3)
        loop.run_until_complete(asyncio.sleep(0))
        assert loop.poller_phase == "inline"
        loop.close()


def test_fd_reuse_across_a_phase_switch(no_leaks):
    """A reader on an fd that is closed and whose number is reused by a new
    socket while the pollers are parked: after unparking, the old
    registration's events never reach the new reader."""
    import socket

    loop = wfcloop.Loop(pollers=2)
    try:
        async def main():
            ep = loop._selector._selector
            a, b = socket.socketpair()
            a.setblocking(False)
            got_old = []
            loop.add_reader(a.fileno(), got_old.append, "old")
            b.send(b"x")
            await asyncio.sleep(0.01)
            assert got_old          # level-triggered: it fired (inline phase)
            loop.remove_reader(a.fileno())
            fd = a.fileno()
            a.close()
            c, d = socket.socketpair()
            try:
                # same number only if the kernel reused it; the check holds either way
                got_new = []
                c.setblocking(False)
                loop.add_reader(c.fileno(), got_new.append, "new")
                ep._request_phase("pollers")
                await asyncio.sleep(0.01)
                assert loop.poller_phase == "pollers"
                assert got_new == []   # nothing was sent on c's peer
                d.send(b"y")
                for _ in range(100):
                    if got_new:
                        break
                    await asyncio.sleep(0.005)
                assert got_new and set(got_new) == {"new"}
                loop.remove_reader(c.fileno())
                return fd == c.fileno()
            finally:
                b.close()
                c.close()
                d.close()

        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("kwargs", [dict(pollers=-1), dict(pollers="two")])
def test_bad_pollers_raise_cleanly(kwargs, recwarn):
    """A Loop whose construction fails raises the error and nothing else:
    no half-built loop complains from __del__."""
    import gc

    with pytest.raises((ValueError, TypeError)):
        wfcloop.Loop(**kwargs)
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, pytest.PytestUnraisableExceptionWarning)]
