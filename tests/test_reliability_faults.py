"""Faults, on wfcloop.Loop with pollers=0 and pollers=2 (issue 5, "Faults"
and "Defaults that protect users"): peers that reset or half-close, slow
and absent readers, EMFILE on accept, exceptions (also KeyboardInterrupt
and SystemExit) from callbacks, signals under load, fork, closing a loop
with connections open and dropping one without close().

Where asyncio's behaviour is the specification (KeyboardInterrupt,
closing and dropping a loop), the test runs on the stdlib selector loop
too, so the two are checked against the same assertions.
"""
import asyncio
import errno
import gc
import json
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import warnings
import zlib

import pytest

import wfcloop

from _echo import (EchoServer, ServerLedger, fd_count, message_plan, run_clients,
                   split_plan, thread_count)

POLLERS = [0, 2]
pollers_param = pytest.mark.parametrize("pollers", POLLERS, ids=lambda n: f"pollers={n}")
KINDS = ["pollers=0", "pollers=2", "stdlib"]
TIMEOUT = 10.0


def make_loop(kind):
    if kind == "stdlib":
        return asyncio.SelectorEventLoop()
    return wfcloop.new_event_loop(pollers=int(kind.partition("=")[2]))


def run_on_loop(pollers, main, *, handler_calls=None):
    """Run main() on a new wfcloop loop; record exception handler calls in
    ``handler_calls`` if given; close the loop."""
    loop = wfcloop.new_event_loop(pollers=pollers)
    if handler_calls is not None:
        loop.set_exception_handler(lambda lp, ctx: handler_calls.append(ctx))
    try:
        return loop.run_until_complete(asyncio.wait_for(main(), 60))
    finally:
        loop.close()


async def echo_works(host="127.0.0.1", port=None):
    """One round trip on a fresh echo server (or ``port``): the loop serves."""
    loop = asyncio.get_running_loop()
    server = None
    if port is None:
        ledger = ServerLedger()
        ledger.all_lost = loop.create_future()
        server = await loop.create_server(lambda: EchoServer(ledger), host, 0)
        port = server.sockets[0].getsockname()[1]
    plans = split_plan(message_plan(random.Random(1), 40), 2)
    clients = await run_clients(host, port, plans)
    if server is not None:
        server.close()
        await server.wait_closed()
    return all(c.completed == len(c.plan) and not c.corrupt and not c.extra for c in clients)


def reset(sock):
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Recorder(asyncio.Protocol):
    """Server protocol that records what happens to its transport."""

    instances = None

    def __init__(self, *, on_data=None, eof_keep_open=False):
        self.data = bytearray()
        self.lost = []
        self.eof = 0
        self.paused = 0
        self.resumed = 0
        self.on_data = on_data
        self.eof_keep_open = eof_keep_open
        self.made = asyncio.get_running_loop().create_future()
        self.gone = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.made.set_result(transport)

    def data_received(self, data):
        self.data += data
        if self.on_data:
            self.on_data(self, data)

    def eof_received(self):
        self.eof += 1
        return self.eof_keep_open

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        self.lost.append(exc)
        if not self.gone.done():
            self.gone.set_result(exc)


async def recorder_server(**kw):
    loop = asyncio.get_running_loop()
    protos = []

    def factory():
        p = Recorder(**kw)
        protos.append(p)
        return p

    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, protos, server.sockets[0].getsockname()[1]


async def connect_raw(port):
    """A non-blocking client socket connected to ``port``."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    return sock


# ------------------------------------------------------------ resets

@pollers_param
def test_peer_reset_in_the_middle_of_a_read(pollers, no_leaks):
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        server, protos, port = await recorder_server()
        sock = await connect_raw(port)
        await loop.sock_sendall(sock, os.urandom(100_000))   # part of a "message"
        while not protos or len(protos[0].data) < 100_000:
            await asyncio.sleep(0.005)
        await loop.sock_sendall(sock, b"more, unread")
        reset(sock)
        exc = await asyncio.wait_for(protos[0].gone, TIMEOUT)
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        assert await echo_works()
        return protos[0], exc

    proto, exc = run_on_loop(pollers, main, handler_calls=calls)
    assert len(proto.lost) == 1                    # exactly one connection_lost
    assert exc is None or isinstance(exc, ConnectionResetError)
    assert proto.transport.is_closing()
    assert calls == []                             # a reset is not a loop error


@pollers_param
def test_peer_reset_in_the_middle_of_a_write(pollers, no_leaks):
    calls = []

    async def main():
        loop = asyncio.get_running_loop()
        server, protos, port = await recorder_server()
        sock = await connect_raw(port)
        transport = await asyncio.wait_for(
            (await _first(protos)).made, TIMEOUT)
        transport.write(os.urandom(8 << 20))           # far more than the kernel takes
        got = await loop.sock_recv(sock, 65536)
        buffered = transport.get_write_buffer_size()
        reset(sock)
        exc = await asyncio.wait_for(protos[0].gone, TIMEOUT)
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        assert await echo_works()
        return protos[0], exc, got, buffered

    proto, exc, got, buffered = run_on_loop(pollers, main, handler_calls=calls)
    assert got and buffered > 0                    # it was in the middle of writing
    assert len(proto.lost) == 1
    assert isinstance(exc, ConnectionError), exc   # ECONNRESET or EPIPE
    assert proto.transport.get_write_buffer_size() == 0   # the queue was dropped
    assert calls == []


async def _first(protos):
    while not protos:
        await asyncio.sleep(0.001)
    return protos[0]


# ------------------------------------------------------------ half-close

@pollers_param
def test_half_close_then_the_server_keeps_writing(pollers, no_leaks):
    reply = random.Random(5).randbytes(3 << 20)

    async def main():
        loop = asyncio.get_running_loop()

        def on_eof_write(proto):
            # After the client's EOF: write the reply in pieces, over
            # several loop iterations, then close.
            view = memoryview(reply)

            def step(pos):
                proto.transport.write(view[pos:pos + 256 * 1024])
                if pos + 256 * 1024 < len(view):
                    loop.call_later(0.001, step, pos + 256 * 1024)
                else:
                    proto.transport.close()
            step(0)

        class HalfClose(Recorder):
            def eof_received(self):
                super().eof_received()
                on_eof_write(self)
                return True                      # keep the transport open

        server = await loop.create_server(HalfClose, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"request")
        writer.write_eof()
        data = await asyncio.wait_for(reader.read(), TIMEOUT)   # until the server's EOF
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return data

    data = run_on_loop(pollers, main)
    assert len(data) == len(reply) and zlib.crc32(data) == zlib.crc32(reply)


# ------------------------------------------------------------ slow and absent readers

HIGH = 256 * 1024
CHUNK = 64 * 1024


class FlowWriter(Recorder):
    """Writes ``total`` bytes in CHUNKs, only while not paused; records the
    largest write buffer it ever saw."""

    def __init__(self, total):
        super().__init__()
        self.total = total
        self.sent = 0
        self.max_buffer = 0
        self.is_paused = False
        self.crc = 0

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=HIGH)
        self._pump()

    def _pump(self):
        rng = random.Random(self.sent)
        while not self.is_paused and self.sent < self.total:
            chunk = rng.randbytes(min(CHUNK, self.total - self.sent))
            self.crc = zlib.crc32(chunk, self.crc)
            self.transport.write(chunk)
            self.sent += len(chunk)
            self.max_buffer = max(self.max_buffer, self.transport.get_write_buffer_size())
        if self.sent >= self.total and not self.transport.is_closing():
            self.transport.close()

    def pause_writing(self):
        super().pause_writing()
        self.is_paused = True

    def resume_writing(self):
        super().resume_writing()
        self.is_paused = False
        self._pump()


@pollers_param
def test_slow_reader_pauses_writes_at_the_high_water_mark(pollers, no_leaks):
    total = 8 << 20

    async def main():
        loop = asyncio.get_running_loop()
        protos = []
        server = await loop.create_server(
            lambda: protos.append(FlowWriter(total)) or protos[-1], "127.0.0.1", 0)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.setblocking(False)
        await loop.sock_connect(sock, server.sockets[0].getsockname())
        crc, got = 0, 0
        with sock:
            while data := await loop.sock_recv(sock, 32 * 1024):
                crc = zlib.crc32(data, crc)
                got += len(data)
                await asyncio.sleep(0.0005)       # a slow reader
        server.close()
        await server.wait_closed()
        return protos[0], crc, got

    proto, crc, got = run_on_loop(pollers, main)
    assert got == total and crc == proto.crc
    assert proto.paused >= 1 and proto.resumed >= 1
    # Bounded: never more than the high-water mark plus one write.
    assert proto.max_buffer <= HIGH + CHUNK
    assert len(proto.lost) == 1


@pollers_param
def test_client_that_never_reads(pollers, no_leaks):
    async def main():
        loop = asyncio.get_running_loop()
        protos = []
        server = await loop.create_server(
            lambda: protos.append(FlowWriter(1 << 30)) or protos[-1], "127.0.0.1", 0)
        sock = await connect_raw(server.sockets[0].getsockname()[1])
        proto = await _first(protos)
        while not proto.is_paused:
            await asyncio.sleep(0.01)
        sent_at_pause = proto.sent
        await asyncio.sleep(0.3)                 # nobody reads: nothing moves
        still_paused, sent_after = proto.is_paused, proto.sent
        reset(sock)                              # the client gives up
        await asyncio.wait_for(proto.gone, TIMEOUT)
        server.close()
        await server.wait_closed()
        return proto, still_paused, sent_at_pause, sent_after

    proto, still_paused, sent_at_pause, sent_after = run_on_loop(pollers, main)
    assert still_paused and sent_after == sent_at_pause
    assert proto.max_buffer <= HIGH + CHUNK
    # What was queued is the kernel's buffers plus our bounded one: far
    # below the 1 GiB the server wanted to send.
    assert sent_after < 64 << 20
    assert len(proto.lost) == 1


@pollers_param
def test_stream_read_buffer_is_bounded_when_the_app_does_not_read(pollers, no_leaks):
    """StreamReader pauses the transport above 2 * limit: a client that
    writes 32 MiB to a server that never reads fills kernel buffers and
    its own write buffer, not the server's memory."""
    limit = 64 * 1024

    async def main():
        readers = []
        server = await asyncio.start_server(
            lambda r, w: readers.append((r, w)), "127.0.0.1", 0, limit=limit)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(os.urandom(32 << 20))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(writer.drain(), 0.5)   # the server reads nothing
        while not readers:
            await asyncio.sleep(0.01)
        server_reader = readers[0][0]
        buffered = len(server_reader._buffer)
        first = await server_reader.readexactly(1000)       # still intact, in order
        writer.transport.abort()
        readers[0][1].close()
        server.close()
        await server.wait_closed()
        return buffered, first

    buffered, first = run_on_loop(pollers, main)
    # 2 * limit, plus the one recv (256 KiB at most) that crossed it.
    assert 0 < buffered <= 2 * limit + 256 * 1024
    assert len(first) == 1000


# ------------------------------------------------------------ EMFILE on accept

EMFILE_CHILD = textwrap.dedent(r"""
    import asyncio, io, json, logging, os, resource, sys, time
    import wfcloop

    log = io.StringIO()
    logging.basicConfig(stream=log, level=logging.ERROR)

    async def main():
        loop = asyncio.get_running_loop()
        served = loop.create_future()

        async def handle(reader, writer):
            data = await reader.readexactly(4)
            writer.write(data[::-1])
            await writer.drain()
            writer.close()
            if not served.done():
                served.set_result(None)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        fillers = []
        try:
            while True:
                fillers.append(os.eventfd(0))
        except OSError as exc:
            assert exc.errno == 24, exc          # EMFILE
        print(server.sockets[0].getsockname()[1], flush=True)
        deadline = time.monotonic() + 10
        while "out of system resource" not in log.getvalue():
            assert time.monotonic() < deadline, "accept's EMFILE was not logged"
            await asyncio.sleep(0.01)
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(2.0)                 # fds still exhausted: wait, don't spin
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - wall0
        for fd in fillers:
            os.close(fd)
        await asyncio.wait_for(served, 10)       # serves again once fds are free
        server.close()
        await server.wait_closed()
        return {"cpu": cpu, "wall": wall,
                "logged": log.getvalue().count("out of system resource")}

    print(json.dumps(wfcloop.run(main(), pollers=int(sys.argv[1]))), flush=True)
""")


@pollers_param
def test_emfile_on_accept_logs_waits_without_spinning_and_serves_again(pollers):
    """Run in a child process (its RLIMIT_NOFILE is lowered and its fds used
    up); this process is the client.  Bound: the child uses under a quarter
    of one core while it waits 2 s with no fd to accept into (a spinning
    accept loop would use the whole core)."""
    child = subprocess.Popen([sys.executable, "-c", EMFILE_CHILD, str(pollers)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline() or 0)
        assert port, child.stderr.read()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as client:
            client.sendall(b"ping")              # in the backlog: not accepted yet
            reply = b""
            while len(reply) < 4:
                piece = client.recv(4)
                if not piece:
                    break
                reply += piece
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert reply == b"gnip"
    result = json.loads(out.strip().splitlines()[-1])
    assert result["logged"] >= 1
    assert result["cpu"] < 0.25 * result["wall"], result


# ------------------------------------------------------------ exceptions in callbacks

@pollers_param
def test_exception_in_protocol_callback_goes_to_the_handler(pollers, no_leaks):
    calls = []

    class Buggy(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            raise ValueError("bug in data_received")

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Buggy, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"trigger")
        closed = await asyncio.wait_for(reader.read(), TIMEOUT)   # the transport was closed
        writer.close()
        await writer.wait_closed()
        loop.call_soon(lambda: 1 / 0)
        loop.call_later(0.001, lambda: [][1])
        await asyncio.sleep(0.05)
        server.close()
        await server.wait_closed()
        return closed, await echo_works()

    closed, works = run_on_loop(pollers, main, handler_calls=calls)
    assert closed == b"" and works
    kinds = sorted(type(ctx.get("exception")).__name__ for ctx in calls)
    assert kinds == ["IndexError", "ValueError", "ZeroDivisionError"]
    assert any("protocol" in ctx for ctx in calls)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("where", ["call_soon", "data_received"])
def test_keyboard_interrupt_and_system_exit_propagate(kind, exc_type, where, no_leaks):
    loop = make_loop(kind)
    a, b = socket.socketpair()
    try:
        class Raiser(asyncio.Protocol):
            def data_received(self, data):
                raise exc_type

        async def arm():
            if where == "call_soon":
                asyncio.get_running_loop().call_soon(_raise, exc_type)
            else:
                await asyncio.get_running_loop().connect_accepted_socket(Raiser, a)
                b.send(b"x")
            await asyncio.sleep(TIMEOUT)

        task = loop.create_task(arm())
        with pytest.raises(exc_type):
            loop.run_until_complete(task)
        # As in stdlib: the loop is stopped, not broken; it runs again.
        assert not loop.is_running() and not loop.is_closed()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            loop.run_until_complete(task)
        assert loop.run_until_complete(asyncio.sleep(0.01, "again")) == "again"
    finally:
        for t in asyncio.all_tasks(loop):
            t.cancel()
        loop.close()
        a.close()
        b.close()


def _raise(exc_type):
    raise exc_type


# ------------------------------------------------------------ signals under load

@pollers_param
def test_signals_during_heavy_load(pollers, no_leaks):
    rounds = 20
    got = []
    ack = threading.Event()

    def handler():
        got.append(1)
        ack.set()

    def sender():
        for _ in range(rounds):
            ack.clear()
            os.kill(os.getpid(), signal.SIGUSR1)
            if not ack.wait(TIMEOUT):
                return
            time.sleep(0.005)

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, handler)
        try:
            ledger = ServerLedger()
            ledger.all_lost = loop.create_future()
            server = await loop.create_server(lambda: EchoServer(ledger), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            plans = split_plan(message_plan(random.Random(9), 4000), 50)
            thread = threading.Thread(target=sender)
            load = asyncio.ensure_future(run_clients("127.0.0.1", port, plans))
            thread.start()
            clients = await load
            await loop.run_in_executor(None, thread.join)
            await asyncio.wait_for(ledger.all_lost, TIMEOUT)
            server.close()
            await server.wait_closed()
        finally:
            loop.remove_signal_handler(signal.SIGUSR1)
        return clients

    clients = run_on_loop(pollers, main)
    assert len(got) == rounds                     # every signal reached its handler
    assert all(c.completed == len(c.plan) and not c.corrupt and not c.extra
               and c.lost_calls == 1 for c in clients)


# ------------------------------------------------------------ fork

FORK_CHILD = textwrap.dedent(r"""
    import asyncio, os, socket, sys
    import wfcloop

    async def echo_round():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        with a, b:
            a.setblocking(False); b.setblocking(False)
            await loop.sock_sendall(a, b"ping" * 1000)
            got = b""
            while len(got) < 4000:
                got += await loop.sock_recv(b, 65536)
            return got == b"ping" * 1000

    pollers = int(sys.argv[1])
    loop = wfcloop.new_event_loop(pollers=pollers)
    assert loop.run_until_complete(echo_round())
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            loop.close()                     # the inherited copy: closes, no hang
            fresh = wfcloop.new_event_loop(pollers=pollers)
            try:
                if fresh.run_until_complete(echo_round()):
                    code = 0
            finally:
                fresh.close()
            if code == 0 and wfcloop.run(echo_round(), pollers=2) is not True:
                code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert loop.run_until_complete(echo_round())   # the parent's loop still works
    loop.close()
    print("child", os.waitstatus_to_exitcode(status), flush=True)
""")


@pollers_param
def test_fork_with_pollers_running_child_runs_a_new_loop(pollers):
    done = subprocess.run([sys.executable, "-c", FORK_CHILD, str(pollers)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["child", "0"], (done.stdout, done.stderr)


@pollers_param
def test_forked_child_closes_the_loop_and_leaves_the_parents_registrations(pollers, no_leaks):
    """In a child forked with a loop open, remove_reader and loop.close()
    work (the selector forgets its keys, seeing that its EventPoll is a
    forked copy) and do not touch the kernel epoll instance the child shares
    with the parent: the parent's reader and its self-pipe (the wake-up of
    call_soon_threadsafe) still fire afterwards."""
    loop = wfcloop.new_event_loop(pollers=pollers)
    a, b = socket.socketpair()
    got = []
    loop.add_reader(a.fileno(), lambda: got.append(a.recv(100)))
    loop.run_until_complete(asyncio.sleep(0))
    pid = os.fork()
    if pid == 0:   # child: never return into pytest
        code = 1
        try:
            loop.remove_reader(a.fileno())   # the parent's registration, too
            loop.close()                     # unregisters the self-pipe
            if loop.is_closed():
                code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0

    async def parent_still_wakes():
        fut = loop.create_future()
        waker = threading.Timer(0.1, loop.call_soon_threadsafe, (fut.set_result, True))
        waker.start()
        try:
            # Nothing else is scheduled: only the self-pipe ends this wait
            # before the timeout.
            assert await asyncio.wait_for(fut, 5.0)
        finally:
            waker.join()
        b.send(b"x")
        until = time.monotonic() + 5.0
        while not got and time.monotonic() < until:
            await asyncio.sleep(0.01)

    try:
        loop.run_until_complete(parent_still_wakes())
        assert got == [b"x"]
    finally:
        loop.remove_reader(a.fileno())
        loop.close()
        a.close()
        b.close()


# ------------------------------------------------------------ closing and dropping

@pytest.mark.parametrize("kind", KINDS)
def test_close_with_connections_open(kind, no_leaks):
    """close() with a server and 20 connections open returns, stops the
    poller threads; the transports' sockets are released (with a
    ResourceWarning) once they are dropped, as with the stdlib loop."""
    threads = thread_count()
    loop = make_loop(kind)

    async def open_connections():
        ledger = ServerLedger()
        server = await asyncio.get_running_loop().create_server(
            lambda: EchoServer(ledger), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(20)]
        while ledger.made < 20:
            await asyncio.sleep(0.001)
        return server, conns

    server, conns = loop.run_until_complete(open_connections())
    loop.close()
    assert loop.is_closed()
    deadline = time.monotonic() + 5
    while thread_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert thread_count() == threads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        del conns, server
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    # no_leaks: every fd closed by now.


@pytest.mark.parametrize("kind", KINDS)
def test_loop_dropped_without_close_warns_and_its_threads_exit(kind, no_leaks):
    threads, fds = thread_count(), fd_count()

    def use_and_drop():
        loop = make_loop(kind)
        assert loop.run_until_complete(asyncio.sleep(0, "ran")) == "ran"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        use_and_drop()
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning)
               and "unclosed event loop" in str(w.message) for w in caught)
    deadline = time.monotonic() + 5
    while thread_count() > threads and time.monotonic() < deadline:
        time.sleep(0.01)
    assert thread_count() == threads
    assert fd_count() == fds
