"""What the compiled loop core (cython/wfcloop/_loop.pyx, loop/*.pyx) adds to asyncio's
selector loop, and the ways it could go wrong: handles built in place,
coalesced self-pipe wake-ups, the scheduling methods bound per loop, parked
sock_* readers, the reused read buffer."""
import asyncio
import gc
import socket
import sys
import threading
import time

import pytest

import wfcloop
from _differential import assert_same, on_each
from conftest import Alarm, alarm_raises


@pytest.fixture(params=[0, 2], ids=lambda n: f"pollers={n}")
def loop(request, no_leaks):
    loop = wfcloop.new_event_loop(pollers=request.param)
    yield loop
    loop.close()


def test_handles_are_asyncios_own(loop):
    """call_soon/call_at return asyncio.Handle/TimerHandle whose fields are
    the ones asyncio's constructors set."""
    def cb(*args):
        pass

    h = loop.call_soon(cb, 1, 2)
    t = loop.call_at(loop.time() + 100, cb, 3)
    assert type(h) is asyncio.Handle and type(t) is asyncio.TimerHandle
    assert h._callback is cb and h._args == (1, 2) and h._loop is loop
    assert not h.cancelled() and h._source_traceback is None
    assert t.when() == t._when and t._scheduled is True and t._args == (3,)
    # asyncio's own repr: 3.13+ shows a callback's arguments in debug mode only.
    args = "()" if sys.version_info >= (3, 13) else "(1, 2)"
    assert repr(h).startswith(f"<Handle test_handles_are_asyncios_own.<locals>.cb{args} at ")
    assert "when=" in repr(t)
    t.cancel()
    assert t.cancelled() and loop._timer_cancelled_count == 1
    h.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()  # the cancelled handles are skipped, not run


def test_callback_sees_its_context(loop):
    """A handle runs in the context it was given (or the caller's copy)."""
    import contextvars
    var = contextvars.ContextVar("var", default="unset")
    seen = []
    ctx = contextvars.copy_context()
    ctx.run(var.set, "given")
    var.set("caller")
    loop.call_soon(lambda: seen.append(var.get()), context=ctx)
    loop.call_soon(lambda: seen.append(var.get()))
    loop.call_later(0, lambda: seen.append(var.get()), context=ctx)
    loop.call_later(0.001, loop.stop)
    loop.run_forever()
    assert seen == ["given", "caller", "given"]


def test_exception_in_callback_goes_to_the_handler(loop):
    errors = []
    loop.set_exception_handler(lambda lp, context: errors.append(context))

    def boom():
        raise ZeroDivisionError("boom")

    handle = loop.call_soon(boom)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(errors) == 1
    assert errors[0]["handle"] is handle
    assert isinstance(errors[0]["exception"], ZeroDivisionError)
    assert errors[0]["message"].startswith("Exception in callback ")
    assert "boom" in errors[0]["message"]


def test_subclass_overrides_are_kept(no_leaks):
    """Loop binds call_soon & co. per instance only where a subclass did not
    override them."""
    calls = []

    class Counting(wfcloop.Loop):
        def call_soon(self, callback, *args, context=None):
            calls.append(callback)
            return super().call_soon(callback, *args, context=context)

    loop = Counting(pollers=0)
    try:
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert calls and calls[0] == loop.stop
        assert loop.call_at.__self__ is not loop  # not overridden: bound fast path
    finally:
        loop.close()


def test_call_later_goes_through_an_overridden_call_at(no_leaks):
    """asyncio's call_later calls self.call_at: a subclass that overrides
    only call_at sees every timer, asyncio.sleep's included."""
    seen = []

    class Recording(wfcloop.Loop):
        def call_at(self, when, callback, *args, context=None):
            seen.append(callback)
            return super().call_at(when, callback, *args, context=context)

    loop = Recording(pollers=0)
    try:
        fired = []
        loop.call_later(0.001, fired.append, "later")
        loop.run_until_complete(asyncio.sleep(0.01))
        assert fired == ["later"]
        assert seen[0] == fired.append and len(seen) == 2
    finally:
        loop.close()


def test_timer_heap_orders_as_heapq(loop):
    """The compiled timer heap compares deadlines in C when both are floats
    and falls back to tuple comparison otherwise: with float and int
    deadlines, many of them equal, and cancelled timers, every due timer
    runs by (deadline, order scheduled), and loop._scheduled stays a heap
    that heapq itself accepts."""
    import heapq
    import random

    rnd = random.Random(4)
    base = int(loop.time()) - 1000   # every timer is already due
    order, expected, cancelled = [], [], set()
    for i in range(3000):
        when = base + rnd.randrange(40)
        if rnd.random() < 0.5:
            when += rnd.choice((0.0, 0.5, 0.25))   # a float, often equal to an int
        handle = loop.call_at(when, order.append, i)
        if rnd.random() < 0.1:
            handle.cancel()
            cancelled.add(i)
        else:
            expected.append((when, i))
    heap = loop._scheduled
    for pos in range(1, len(heap)):
        assert not heap[pos] < heap[(pos - 1) // 2]
    assert heapq.nsmallest(1, heap)[0] == heap[0]
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == [i for _, i in sorted(expected)]
    assert not loop._scheduled

def test_call_soon_threadsafe_never_loses_a_wakeup(loop):
    """Bursts from several threads while the loop sleeps: the coalesced
    self-pipe byte must wake it for every burst.  (Clearing the pending
    flag before draining the pipe lost wake-ups within a few rounds.)"""
    threads, per_thread, rounds = 4, 2000, 30
    for _ in range(rounds):
        ran = [0]
        total = threads * per_thread

        def cb():
            ran[0] += 1
            if ran[0] == total:
                loop.stop()

        def burst():
            for _ in range(per_thread):
                loop.call_soon_threadsafe(cb)

        guard = loop.call_later(30, loop.stop)  # a lost wake-up hangs here
        workers = [threading.Thread(target=burst) for _ in range(threads)]
        loop.call_soon(lambda: [w.start() for w in workers])
        loop.run_forever()
        guard.cancel()
        for w in workers:
            w.join()
        assert ran[0] == total


def test_sock_recv_loop_and_fd_reuse(loop):
    """Waiting sock_recv calls on one socket reuse its parked reader; the
    socket closed and its fd number reused at once by a new socket must get
    a fresh registration (no event of the old one, none missing)."""
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        got = []
        for i in range(200):
            loop.call_later(0.0001, b.send, b"%d;" % i)
            got.append(await loop.sock_recv(a, 100))
        assert b"".join(got) == b"".join(b"%d;" % i for i in range(200))
        fd = a.fileno()
        a.close()
        c, d = socket.socketpair()
        c.setblocking(False)
        d.setblocking(False)
        try:
            new = c if c.fileno() == fd else d
            peer = d if new is c else c
            reader = asyncio.ensure_future(loop.sock_recv(new, 100))
            await asyncio.sleep(0.01)
            assert not reader.done()        # nothing for it yet
            b.close()                       # the old peer hangs up: no event for new
            await asyncio.sleep(0.01)
            assert not reader.done()
            peer.send(b"fresh")
            assert await asyncio.wait_for(reader, 5) == b"fresh"
        finally:
            for s in (c, d):
                s.close()

    loop.run_until_complete(main())


def test_sock_recv_after_a_wait_gets_data_already_there(loop):
    """After a sock_recv that had to wait, the next one on the same socket
    waits for readiness without trying first: data that is already there
    (the peer sent ahead) must still come at once and in order, and a
    sock_recv_into likewise."""
    async def main():
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        try:
            loop.call_later(0.001, b.send, b"first")
            assert await loop.sock_recv(a, 100) == b"first"        # waited
            b.send(b"ahead")                                       # there before the call
            assert await asyncio.wait_for(loop.sock_recv(a, 100), 5) == b"ahead"
            loop.call_later(0.001, b.send, b"x")
            assert await loop.sock_recv(a, 100) == b"x"            # waited again
            b.send(b"into")
            buf = bytearray(10)
            n = await asyncio.wait_for(loop.sock_recv_into(a, buf), 5)
            assert bytes(buf[:n]) == b"into"
            b.close()
            assert await asyncio.wait_for(loop.sock_recv(a, 100), 5) == b""   # EOF
        finally:
            a.close()
            b.close()

    loop.run_until_complete(main())


def test_reads_larger_than_the_read_buffer(loop):
    """The transport reads into one 256 KiB buffer: a 3 MiB message arrives
    complete and in order, in several data_received calls."""
    payload = bytes(range(256)) * (3 * 4096)

    class Sink(asyncio.Protocol):
        def __init__(self):
            self.chunks = []
            self.done = loop.create_future()

        def data_received(self, data):
            self.chunks.append(data)

        def eof_received(self):
            self.done.set_result(None)

    async def main():
        sink = Sink()
        server = await loop.create_server(lambda: sink, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        writer = socket.create_connection(("127.0.0.1", port))
        sender = threading.Thread(target=lambda: (writer.sendall(payload),
                                                  writer.shutdown(socket.SHUT_WR)))
        sender.start()
        await asyncio.wait_for(sink.done, 10)
        sender.join()
        writer.close()
        server.close()
        await server.wait_closed()
        return sink.chunks

    chunks = loop.run_until_complete(main())
    assert b"".join(chunks) == payload
    assert len(chunks) > 1 and max(map(len, chunks)) <= 256 * 1024


def test_write_fast_path_falls_back_to_buffering(loop):
    """transport.write() sends at once while nothing is buffered; once the
    socket is full the rest is buffered, pause_writing fires, and the peer
    gets every byte in order."""
    payload = b"".join(b"%08d" % i for i in range(1 << 20))  # 8 MiB
    made = []

    class Source(asyncio.Protocol):
        paused = 0

        def connection_made(self, transport):
            made.append(transport)

        def pause_writing(self):
            Source.paused += 1

    async def main():
        server = await loop.create_server(Source, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        peer = socket.create_connection(("127.0.0.1", port))
        received = bytearray()

        def drain():
            while len(received) < len(payload):
                chunk = peer.recv(1 << 16)
                if not chunk:
                    break
                received.extend(chunk)

        while not made:
            await asyncio.sleep(0.001)
        transport = made[0]
        for i in range(0, len(payload), 1 << 16):
            transport.write(payload[i:i + (1 << 16)])
        assert transport.get_write_buffer_size() > 0
        reader = threading.Thread(target=drain)
        reader.start()
        while transport.get_write_buffer_size():
            await asyncio.sleep(0.01)
        reader.join(10)
        transport.close()
        peer.close()
        server.close()
        await server.wait_closed()
        return bytes(received)

    assert loop.run_until_complete(main()) == payload
    assert Source.paused >= 1


@pytest.mark.parametrize("bad", ["readonly", "empty"])
def test_buffered_protocol_bad_buffer_same_error_as_stdlib(bad, no_leaks):
    """The compiled BufferedProtocol read reports a read-only or empty
    buffer with the exception asyncio's transport reports."""
    def scenario(loop):
        errors = []
        lost = loop.create_future()

        class Bad(asyncio.BufferedProtocol):
            def get_buffer(self, hint):
                return b"read-only" if bad == "readonly" else bytearray()

            def buffer_updated(self, n):
                pass

            def connection_lost(self, exc):
                lost.set_result(exc)

        async def main():
            loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
            a, b = socket.socketpair()
            await loop.connect_accepted_socket(Bad, a)
            b.send(b"x")
            exc = await asyncio.wait_for(lost, 5)
            b.close()
            return type(exc).__name__, str(exc), errors[0]["message"]

        return loop.run_until_complete(main())

    reference = assert_same(on_each(scenario))
    assert reference[0] == ("TypeError" if bad == "readonly" else "RuntimeError")


# ---- what an idle connection holds (memory per connection) --------------

def _loop_factories():
    return [("stdlib", asyncio.SelectorEventLoop),
            ("wfcloop0", lambda: wfcloop.new_event_loop(pollers=0)),
            ("wfcloop2", lambda: wfcloop.new_event_loop(pollers=2))]


def _serve_two(loop, Protocol, client_action=None):
    """Accept two connections to a Protocol server; returns the two server
    transports, what each client socket says of itself, and the result of
    client_action(clients, transports)."""
    made = []

    class Recorder(Protocol):
        def connection_made(self, transport):
            made.append(transport)
            super().connection_made(transport)

    async def main():
        server = await loop.create_server(Recorder, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        while len(made) < 2:
            await asyncio.sleep(0.001)
        # The accept order is the connect order here: one listener, backlog.
        names = [(c.getsockname(), c.getpeername()) for c in clients]
        result = None
        if client_action is not None:
            result = await client_action(clients, made)
        for c in clients:
            c.close()
        for t in made:
            t.close()
        server.close()
        await server.wait_closed()
        return made, names, result

    return loop.run_until_complete(main())


def accept_scenario(loop, factory, clients=3):
    """Serve with ``factory`` and connect ``clients`` sockets at once; each
    sends b"ping".  Returns (replies, tasks seen in connection_made,
    exception handler contexts)."""
    contexts = []
    loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

    async def main():
        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(clients)]
        replies = []
        try:
            for s in socks:
                s.sendall(b"ping")
            for s in socks:
                s.setblocking(False)
                replies.append(await asyncio.wait_for(loop.sock_recv(s, 16), 5))
        finally:
            for s in socks:
                s.close()
            server.close()
            await server.wait_closed()
        return replies

    return loop.run_until_complete(main()), contexts


class Echo(asyncio.Protocol):
    tasks_seen = []

    def connection_made(self, transport):
        self.transport = transport
        Echo.tasks_seen.append(sum(
            1 for task in asyncio.all_tasks()
            if task.get_coro().__qualname__.endswith("_accept_connection2")))

    def data_received(self, data):
        self.transport.write(data)
        self.transport.close()


def test_accept_makes_no_task_per_connection(loop):
    """The compiled accept path makes each connection's protocol and
    transport at once: no _accept_connection2 task runs while connections
    arrive (asyncio runs one per connection, and so does wfcloop in debug
    mode, where it takes asyncio's path)."""
    for debug, accept_tasks in ((False, [0] * 5), (True, [1] * 5)):
        loop.set_debug(debug)
        Echo.tasks_seen = []
        replies, contexts = accept_scenario(loop, Echo, clients=5)
        assert replies == [b"ping"] * 5 and not contexts
        assert [n >= 1 for n in Echo.tasks_seen] == [bool(n) for n in accept_tasks]


@pytest.mark.parametrize("debug", [False, True])
def test_accept_with_a_failing_protocol_factory_as_asyncio(debug, no_leaks):
    """A protocol factory that raises: outside debug mode the error is
    dropped and the server goes on serving, as asyncio's; in debug mode
    asyncio's own path reports it in its words."""
    def scenario(loop):
        loop.set_debug(debug)
        calls = [0]

        def factory():
            calls[0] += 1
            if calls[0] == 1:
                raise ValueError("no protocol today")
            return Echo()

        contexts = []
        loop.set_exception_handler(lambda lp, ctx: contexts.append(ctx))

        async def main():
            server = await loop.create_server(factory, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            with socket.create_connection(("127.0.0.1", port)) as first:
                if not debug:
                    # The server let the socket go.  (In debug mode the
                    # reported exception's traceback still holds it.)
                    first.setblocking(False)
                    dropped = await asyncio.wait_for(loop.sock_recv(first, 16), 5)
                    assert dropped == b""
            with socket.create_connection(("127.0.0.1", port)) as second:
                second.sendall(b"ping")
                second.setblocking(False)
                reply = await asyncio.wait_for(loop.sock_recv(second, 16), 5)
            server.close()
            await server.wait_closed()
            return reply

        reply = loop.run_until_complete(main())
        reported = [(c["message"], type(c.get("exception")).__name__) for c in contexts]
        contexts.clear()
        gc.collect()   # the dropped socket, held by the reported traceback
        return reply, reported

    results = on_each(scenario)
    expected = (b"ping", [("Error on transport creation for incoming connection",
                           "ValueError")] if debug else [])
    for name, got in results.items():
        assert got == expected, name


def test_accept_calls_a_subclass_accept_connection2(no_leaks):
    """A subclass that overrides _accept_connection2 gets asyncio's path,
    which calls it for every connection."""
    seen = []

    class Counting(wfcloop.Loop):
        async def _accept_connection2(self, protocol_factory, conn, extra, *args, **kwargs):
            seen.append(extra["peername"][0])
            return await super()._accept_connection2(protocol_factory, conn, extra,
                                                     *args, **kwargs)

    loop = Counting(pollers=0)
    try:
        replies, contexts = accept_scenario(loop, Echo, clients=2)
        assert replies == [b"ping"] * 2 and not contexts
        assert seen == ["127.0.0.1"] * 2
    finally:
        loop.close()


def test_accepted_transports_extra_info_as_stdlib(no_leaks):
    """sockname and peername of accepted transports are the values
    asyncio's transport reports (what the client's socket says), equal and
    of the same types; on wfcloop connections to one listener share one
    sockname tuple and one peer host string."""
    seen = {}
    for name, factory in _loop_factories():
        loop = factory()
        try:
            transports, names, _ = _serve_two(loop, asyncio.Protocol)
        finally:
            loop.close()
        info = []
        for t, (client_name, client_peer) in zip(transports, names):
            sockname = t.get_extra_info("sockname")
            peername = t.get_extra_info("peername")
            assert sockname == client_peer and peername == client_name
            assert type(sockname) is type(peername) is tuple
            assert [type(x) for x in sockname] == [str, int]
            assert t.get_extra_info("socket").fileno() == -1  # closed with it
            assert t.get_extra_info("nothing", 7) == 7
            info.append((sockname[0], peername[0], type(t.get_extra_info("socket"))))
        seen[name] = info
        if name != "stdlib":
            a, b = transports
            assert a.get_extra_info("sockname") is b.get_extra_info("sockname")
            assert a.get_extra_info("peername")[0] is b.get_extra_info("peername")[0]
    assert seen["wfcloop0"] == seen["stdlib"] == seen["wfcloop2"]


def test_peername_kept_after_the_peer_resets(loop):
    """The peer's address is read when the connection is accepted, as
    asyncio does: it is still there once the peer has reset it."""
    lost = []

    class P(asyncio.Protocol):
        def connection_lost(self, exc):
            lost.append(exc)

    async def reset(clients, transports):
        expected = [c.getsockname() for c in clients]
        for c in clients:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            c.close()
        for t in transports:
            t.write(b"x" * 100)   # meets the reset
        while len(lost) < 2:
            await asyncio.sleep(0.001)
        return expected, [t.get_extra_info("peername") for t in transports]

    _, _, (expected, after) = _serve_two(loop, P, reset)
    assert after == expected


def test_contextvars_stay_per_connection(loop):
    """Each transport reads in its own copy of the context: a contextvar
    set in data_received is seen by that connection's later callbacks and
    by no other connection, nor by the code that started the server."""
    import contextvars
    var = contextvars.ContextVar("var", default=None)
    seen = []

    class P(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            seen.append((id(self.transport), data, var.get()))
            var.set(data)

    async def talk(clients, transports):
        for turn in (b"1", b"2"):
            for i, c in enumerate(clients):
                c.send(b"%d-%s" % (i, turn))
                while len(seen) < 2 * int(turn) - 1 + i:
                    await asyncio.sleep(0.001)
        return [id(t) for t in transports]

    _, _, ids = _serve_two(loop, P, talk)
    assert var.get() is None
    first, second = ids
    assert [(t, prev) for t, _, prev in seen] == [
        (first, None), (second, None), (first, b"0-1"), (second, b"1-1")]


def test_abandoned_transport_is_collected(no_leaks):
    """A connected transport dropped unclosed while nothing else holds it
    (reading paused) is garbage collected, with asyncio's ResourceWarning,
    on wfcloop as on the standard loop."""
    import gc
    import warnings
    import weakref
    results = {}
    for name, factory in _loop_factories():
        loop = factory()
        try:
            async def main():
                a, b = socket.socketpair()
                transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
                await asyncio.sleep(0)
                transport.pause_reading()
                ref = weakref.ref(transport)
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    del transport
                    gc.collect()
                b.close()
                messages = [str(w.message).split(" <")[0] for w in caught
                            if w.category is ResourceWarning]
                del caught  # a warning holds its source: the transport
                gc.collect()
                return ref() is None, messages
            results[name] = loop.run_until_complete(main())
        finally:
            loop.close()
    assert results["wfcloop0"] == results["stdlib"] == results["wfcloop2"]
    assert results["stdlib"] == (True, ["unclosed transport"])


def test_set_protocol_switches_the_read_path(loop):
    """The read path follows set_protocol(): a plain Protocol gets
    data_received, a BufferedProtocol set later gets get_buffer and
    buffer_updated, on the same transport."""
    got = []
    done = loop.create_future()

    class Buffered(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(16)

        def get_buffer(self, hint):
            return self.buf

        def buffer_updated(self, n):
            got.append(("buffered", bytes(self.buf[:n])))
            done.set_result(None)

    class Plain(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            got.append(("plain", data))
            self.transport.set_protocol(Buffered())

    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Plain, a)
        b.send(b"one")
        while not got:
            await asyncio.sleep(0.001)
        b.send(b"two")
        await asyncio.wait_for(done, 5)
        transport.close()
        b.close()

    loop.run_until_complete(main())
    assert got == [("plain", b"one"), ("buffered", b"two")]


def test_hot_transport_fields_are_slots_shared_with_asyncio(loop):
    """The fields the compiled read and write paths check per event are
    slots of wfcloop's transport (read at their offsets), and asyncio's own
    code sets and reads the same ones: write_eof() then write() raises
    asyncio's error, and after abort() writes are dropped as asyncio drops
    them, with nothing sent."""
    import types

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

    async def main():
        a, b = socket.socketpair()
        b.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(Echo, a)
        cls = type(transport)
        for name in ("_sock_fd", "_protocol", "_read_ready_cb", "_conn_lost", "_buffer",
                     "_eof", "_empty_waiter"):
            assert type(cls.__dict__[name]) is types.MemberDescriptorType, name
            assert name not in transport.__dict__, name
        assert transport._sock_fd == a.fileno() and transport._conn_lost == 0
        transport.write(b"before")
        await asyncio.sleep(0.01)
        assert b.recv(100) == b"before"
        transport.write_eof()
        assert transport._eof is True
        with pytest.raises(RuntimeError, match="write_eof"):
            transport.write(b"after eof")
        transport.close()
        b.close()

        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(Echo, a)
        transport.abort()
        assert transport._conn_lost == 1
        transport.write(b"after abort")   # dropped (asyncio counts it)
        assert transport._conn_lost == 2
        await asyncio.sleep(0.01)
        assert b.recv(100) == b""        # closed, nothing sent
        b.close()

    loop.run_until_complete(main())


def test_transport_extra_behaves_as_a_dict(loop):
    """A transport's _extra (slots in place of asyncio's dict) answers
    what a dict answers: reads, writes, deletes, other names, iteration;
    the 'socket' entry is one TransportSocket, made when first asked for."""
    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        extra = transport._extra
        expected = {"socket": transport.get_extra_info("socket"),
                    "sockname": a.getsockname(), "peername": a.getpeername()}
        assert type(expected["socket"]) is asyncio.trsock.TransportSocket
        assert expected["socket"]._sock is a
        assert transport.get_extra_info("socket") is expected["socket"]
        assert dict(extra) == expected and len(extra) == 3
        assert sorted(extra) == sorted(expected) and extra == expected
        assert "peername" in extra and "cipher" not in extra
        assert extra.get("cipher", 5) == 5 and transport.get_extra_info("cipher") is None
        with pytest.raises(KeyError):
            extra["cipher"]
        with pytest.raises(TypeError):
            extra.get([])
        extra["cipher"] = ("TLS", 1)
        extra["peername"] = None
        assert transport.get_extra_info("cipher") == ("TLS", 1)
        assert transport.get_extra_info("peername", 0) is None
        del extra["cipher"]
        del extra["sockname"]
        assert "sockname" not in extra and len(extra) == 2
        assert extra.pop("peername") is None and set(extra) == {"socket"}
        extra["socket"] = a  # stored as given, as by a dict
        assert extra["socket"] is a and len(extra) == 1
        extra.update(sockname="x")
        assert extra.copy() == {"socket": a, "sockname": "x"}
        assert repr(extra) in (repr({"socket": a, "sockname": "x"}),
                               repr({"sockname": "x", "socket": a}))
        transport.close()
        b.close()

    loop.run_until_complete(main())


def test_write_buffer_made_on_demand_and_limits_as_stdlib(loop):
    """Until a write has to buffer, a transport has no write buffer of its
    own; the size and limits read as asyncio's, and writes of any
    bytes-like type (which skip the C fast path) arrive in order."""
    async def main():
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        assert transport.get_write_buffer_size() == 0
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.write(memoryview(b"one,"))
        transport.write(bytearray(b"two,"))
        transport.writelines([b"three,", memoryview(b"four")])
        transport.set_write_buffer_limits(high=100)
        assert transport.get_write_buffer_limits() == (25, 100)
        transport.set_write_buffer_limits(high=65536.0)
        assert type(transport.get_write_buffer_limits()[1]) is float
        received = b""
        b.setblocking(False)
        while len(received) < 18:   # awaited: poller-side I/O sends after this iteration
            received += await asyncio.wait_for(loop.sock_recv(b, 100), 5)
        transport.close()
        b.close()
        return received

    assert loop.run_until_complete(main()) == b"one,two,three,four"


def test_fd_of_a_transport_refused_in_every_state(no_leaks):
    """add_reader() on a socket transport's fd is refused while the
    transport is open, whatever its reading state (before its reader
    starts, reading, paused, resumed, past an EOF its protocol keeps
    open), and allowed once it closes, as on the standard loop; sendfile
    (which takes the fd from the transport for a while) still works."""
    import tempfile

    def refused(loop, fd):
        try:
            loop.add_reader(fd, print)
        except RuntimeError as exc:
            return "used by transport" in str(exc)
        loop.remove_reader(fd)
        return False

    def scenario(loop):
        states = []
        eof = loop.create_future()

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                states.append(("made", refused(loop, transport._sock_fd)))

            def eof_received(self):
                eof.set_result(None)
                return True  # keep the transport open to write

        async def main():
            a, b = socket.socketpair()
            fd = a.fileno()
            transport, _ = await loop.connect_accepted_socket(P, a)
            states.append(("reading", refused(loop, fd)))
            transport.pause_reading()
            states.append(("paused", refused(loop, fd)))
            transport.resume_reading()
            states.append(("resumed", refused(loop, fd)))
            with tempfile.TemporaryFile() as f:
                f.write(b"file data")
                f.flush()
                sent = await loop.sendfile(transport, f)
            states.append(("sendfile", sent, b.recv(100), refused(loop, fd)))
            b.shutdown(socket.SHUT_WR)
            await asyncio.wait_for(eof, 5)
            states.append(("eof", refused(loop, fd)))
            transport.close()
            states.append(("closing", refused(loop, fd)))
            await asyncio.sleep(0)
            b.close()
            return states

        return loop.run_until_complete(main())

    assert assert_same(on_each(scenario)) == [
        ("made", True), ("reading", True), ("paused", True), ("resumed", True),
        ("sendfile", 9, b"file data", True), ("eof", True), ("closing", False)]


def test_transport_map_answers_as_asyncio(no_leaks):
    """loop._transports (no weak reference per reading socket transport on
    wfcloop) finds an open transport by its fd in every state, as asyncio's
    WeakValueDictionary does, honours del and a later set, and lets an
    unclosed transport that stopped reading be collected."""
    import gc

    def scenario(loop):
        seen = []

        def look(state, fd, transport):
            transports = loop._transports
            seen.append((state, fd in transports, transports.get(fd) is transport))

        class P(asyncio.Protocol):
            def connection_made(self, transport):
                look("made", transport._sock_fd, transport)

        async def main():
            a, b = socket.socketpair()
            fd = a.fileno()
            transport, _ = await loop.connect_accepted_socket(P, a)
            look("reading", fd, transport)
            del loop._transports[fd]
            look("deleted", fd, transport)
            transport.pause_reading()
            transport.resume_reading()
            look("deleted, paused and resumed", fd, transport)
            loop._transports[fd] = transport
            look("set again", fd, transport)
            transport.pause_reading()
            look("paused", fd, transport)
            transport.resume_reading()
            look("resumed", fd, transport)
            transport.pause_reading()
            del transport
            gc.collect()
            seen.append(("dropped while paused", fd in loop._transports))
            b.close()
            return seen

        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            return loop.run_until_complete(main())

    assert assert_same(on_each(scenario)) == [
        ("made", True, True), ("reading", True, True), ("deleted", False, False),
        ("deleted, paused and resumed", False, False), ("set again", True, True),
        ("paused", True, True), ("resumed", True, True), ("dropped while paused", False)]


def self_rescheduling_c_callback(loop):
    """A callback that schedules itself again with no Python frame in
    between: functools.partial(loop.call_soon, itself)."""
    import functools
    again = functools.partial(print)
    again.__setstate__((loop.call_soon, (again,), {}, None))
    return again


def test_run_forever_honours_a_replaced_run_once(loop):
    """run_forever's compiled loop calls an _run_once set on the instance
    (tests and tools replace it) and one a subclass defines, as asyncio's
    `while True: self._run_once()` does."""
    calls = []
    own = loop._run_once

    def counting():
        calls.append(1)
        own()
    loop._run_once = counting
    loop.call_soon(loop.call_soon, loop.stop)   # stops in the 2nd iteration
    loop.run_forever()
    assert len(calls) == 2
    del loop._run_once
    n = len(calls)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert len(calls) == n  # the loop's own again

    class Counting(wfcloop.Loop):
        def _run_once(self):
            calls.append(2)
            super()._run_once()
    sub = Counting(pollers=0)
    try:
        sub.call_soon(sub.stop)
        sub.run_forever()
    finally:
        sub.close()
    assert calls.count(2) >= 1


@pytest.mark.timeout(60)
def test_signal_handler_interrupts_a_busy_compiled_loop(loop):
    """A Python signal handler that raises stops run_forever even while
    every callback is C (no bytecode runs that would check for signals):
    the compiled loop passes the eval breaker every few dozen iterations,
    as the bytecode loop did at each.  Without that this test hangs."""
    loop.call_soon(self_rescheduling_c_callback(loop))
    with alarm_raises(0.05), pytest.raises(Alarm):
        loop.run_forever()
    assert not loop.is_running()
    # still usable
    assert loop.run_until_complete(asyncio.sleep(0, 7)) == 7


def test_busy_compiled_loop_lets_other_threads_run(loop):
    """While only C callbacks run, another Python thread still gets the
    GIL when it asks for it (after the switch interval): the compiled loop
    passes the eval breaker every few dozen iterations, as the bytecode
    loop did at each."""
    progress = []
    seen_by_loop = []
    done = threading.Event()

    def worker():
        while not done.is_set():
            progress.append(1)
            time.sleep(0)    # a GIL handoff point for the worker itself

    def stop():
        seen_by_loop.append(len(progress))
        loop.stop()

    th = threading.Thread(target=worker)
    th.start()
    try:
        loop.call_soon(self_rescheduling_c_callback(loop))
        loop.call_later(0.3, stop)
        # the worker gets going; from here on only the loop's C runs
        loop.run_forever()
    finally:
        done.set()
        th.join()
    # the worker ran while the loop spun, about once per switch interval
    # (5 ms); without the eval breaker it gets the GIL only once the loop
    # stops
    assert seen_by_loop and seen_by_loop[0] > 10, seen_by_loop
