"""Poller-side I/O: while the pollers read the kernel, a poller receives a
socket transport's data and sends what write() queued, and the loop thread
runs only the protocol.

The loops here pin their pollers (``adaptive=False``), so that the pollers
phase, where this applies, is the one that runs.  Each test checks a
counter that shows the pollers did the I/O, and what a user sees: every
byte once and in order, asyncio's flow control and its close/abort/EOF
order.
"""
import asyncio
import socket
import zlib

import pytest

import wfcloop


def io_loop(poller_io=True):
    return wfcloop.new_event_loop(pollers=2, adaptive=False, poller_io=poller_io)


@pytest.fixture
def loop(no_leaks):
    loop = io_loop()
    yield loop
    loop.close()


class Echo(asyncio.Protocol):
    open_connections = 0

    def connection_made(self, transport):
        self.transport = transport
        Echo.open_connections += 1

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        Echo.open_connections -= 1


async def close_server(server):
    """Close server and wait until its connections have closed too (their
    clients' EOF arrives through the pollers, an iteration or two later),
    so that no socket is left for the fd leak check."""
    server.close()
    await server.wait_closed()
    if not await eventually(lambda: Echo.open_connections == 0):
        raise AssertionError(f"{Echo.open_connections} server connections still open")


async def eventually(condition, seconds=5.0):
    """Whether condition() holds within seconds (checked every 10 ms)."""
    for _ in range(int(seconds * 100)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


def payload(i, size):
    return (b"%08d:" % i) * (size // 9) + b"."


async def echo_clients(loop, port, clients, rounds, size):
    """Each client sends, awaits the echo and checks it, `rounds` times."""
    async def client(i):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        crc = 0
        for k in range(rounds):
            msg = payload(i * rounds + k, size)
            writer.write(msg)
            got = await reader.readexactly(len(msg))
            assert got == msg
            crc = zlib.crc32(got, crc)
        writer.close()
        await writer.wait_closed()
        return crc
    return await asyncio.gather(*(client(i) for i in range(clients)))


@pytest.mark.parametrize("size", [100, 20_000, 300_000])
def test_echo_exact_with_poller_io(loop, size):
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        crcs = await echo_clients(loop, port, 8, 30 if size < 100_000 else 4, size)
        await close_server(server)
        return crcs

    assert len(loop.run_until_complete(main())) == 8
    stats = loop._selector.stats()
    assert stats["io_reads"] > 0 and stats["io_flushes"] > 0 and stats["io_handbacks"] > 0


def test_stream_ping_pong_alone_never_stalls(loop):
    """One connection, streams on both ends, in one loop: the writes come
    an iteration after the reads (the reader task runs then), often while
    a poller still holds the item for its re-arm, and nothing else wakes
    the loop.  Each round trip must complete without a timeout."""
    lost = loop.create_future()

    class StreamEcho(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            loop.call_soon(self.transport.write, data)   # a write one step later

        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        server = await loop.create_server(StreamEcho, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1])
        for i in range(1500):
            msg = b"%06d" % i
            writer.write(msg)
            assert await asyncio.wait_for(reader.readexactly(6), 2) == msg
        writer.close()
        await writer.wait_closed()
        assert await asyncio.wait_for(lost, 5) is None
        server.close()
        await server.wait_closed()

    loop.run_until_complete(main())
    assert loop._selector.stats()["io_reads"] > 0


def test_poller_io_off_does_no_poller_io(no_leaks):
    loop = io_loop(poller_io=False)
    try:
        assert loop.poller_io is False

        async def main():
            server = await loop.create_server(Echo, "127.0.0.1", 0)
            await echo_clients(loop, server.sockets[0].getsockname()[1], 4, 10, 100)
            await close_server(server)

        loop.run_until_complete(main())
        stats = loop._selector.stats()
        assert stats["io_reads"] == stats["io_flushes"] == 0
    finally:
        loop.close()


def test_inline_mode_has_no_poller_io(no_leaks):
    loop = wfcloop.new_event_loop(pollers=0, poller_io=True)
    try:
        assert loop.poller_io is False
    finally:
        loop.close()


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True), ("", True)])
def test_wfcloop_poller_io_environment(monkeypatch, value, expected, no_leaks):
    monkeypatch.setenv("WFCLOOP_POLLER_IO", value)
    assert wfcloop.default_poller_io() is expected
    loop = wfcloop.new_event_loop(pollers=1)
    try:
        assert loop.poller_io is expected
    finally:
        loop.close()
    monkeypatch.setenv("WFCLOOP_POLLER_IO", "yes")
    with pytest.raises(ValueError, match="WFCLOOP_POLLER_IO"):
        wfcloop.default_poller_io()


async def accepted_pair(loop, protocol_factory):
    a, b = socket.socketpair()
    transport, protocol = await loop.connect_accepted_socket(protocol_factory, a)
    b.setblocking(False)
    return transport, protocol, b


async def recv_exactly(loop, sock, n):
    data = b""
    while len(data) < n:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, n - len(data)), 5)
        assert chunk, "EOF before the data"
        data += chunk
    return data


async def recv_until_eof(loop, sock):
    data = b""
    while True:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 100), 5)
        if not chunk:
            return data
        data += chunk


def test_queued_writes_count_in_the_buffer_size_and_go_out_in_order(loop):
    async def main():
        transport, _, peer = await accepted_pair(loop, asyncio.Protocol)
        transport.write(b"one,")
        transport.write(b"two,")
        # Queued for the pollers, not sent yet: asyncio counts unsent bytes.
        assert transport.get_write_buffer_size() == 8
        transport.write(bytearray(b"three,"))    # not bytes: asyncio's path, after the queue
        transport.write(b"four")
        got = await recv_exactly(loop, peer, 18)
        assert transport.get_write_buffer_size() == 0
        transport.close()
        peer.close()
        return got

    assert loop.run_until_complete(main()) == b"one,two,three,four"


def test_writelines_and_write_eof_after_queued_writes_keep_the_order(loop):
    """writelines() and write_eof() are asyncio's: what write() queued for
    the pollers goes out first, then the lines, then the EOF."""
    async def main():
        transport, _, peer = await accepted_pair(loop, asyncio.Protocol)
        transport.write(b"queued,")
        transport.writelines([b"line1,", bytearray(b"line2,")])
        transport.write(b"after,")
        transport.write_eof()
        with pytest.raises(RuntimeError, match="write_eof"):
            transport.write(b"too late")
        got = await recv_until_eof(loop, peer)
        transport.close()
        peer.close()
        return got

    assert loop.run_until_complete(main()) == b"queued,line1,line2,after,"


def test_flow_control_pauses_and_resumes_writing(loop):
    """A write past the high-water mark pauses the protocol; it resumes
    once the peer has read enough, and every byte arrives in order."""
    events = []

    class Writer(asyncio.Protocol):
        def pause_writing(self):
            events.append("pause")

        def resume_writing(self):
            events.append("resume")

    async def main():
        transport, _, peer = await accepted_pair(loop, Writer)
        transport.set_write_buffer_limits(high=64 * 1024)
        data = bytes(range(256)) * 4096          # 1 MiB, more than the socket takes
        transport.write(data[:1000])
        transport.write(data[1000:])
        assert events == ["pause"]
        got = await recv_exactly(loop, peer, len(data))
        for _ in range(100):
            if "resume" in events:
                break
            await asyncio.sleep(0.01)
        transport.close()
        peer.close()
        return got == data

    assert loop.run_until_complete(main())
    assert events == ["pause", "resume"]


def test_pause_reading_holds_what_a_poller_read(loop):
    """Data a poller read before pause_reading() is delivered after
    resume_reading(), before anything newer, and nothing while paused."""
    received = []

    class Pausing(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            assert self.transport.is_reading()
            received.append(data)
            self.transport.pause_reading()
            loop.call_later(0.005, self.transport.resume_reading)

    async def main():
        transport, _, peer = await accepted_pair(loop, Pausing)
        sent = b""
        for i in range(200):
            chunk = b"%05d," % i
            await loop.sock_sendall(peer, chunk)
            sent += chunk
            if i % 7 == 0:
                await asyncio.sleep(0.001)
        await eventually(lambda: len(b"".join(received)) == len(sent))
        transport.close()
        peer.close()
        return sent

    sent = loop.run_until_complete(main())
    assert b"".join(received) == sent


def test_pause_from_another_callback_keeps_a_read_already_made(loop):
    """pause_reading() from a callback that runs between the poll and the
    reader (a read the pollers made is then waiting): nothing is lost or
    reordered, and nothing arrives while paused."""
    received = []

    class Collect(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            assert self.transport.is_reading()
            received.append(data)

    async def main():
        transport, _, peer = await accepted_pair(loop, Collect)
        sent = b""
        for i in range(600):
            chunk = b"%05d," % i
            # (awaited: a paused reader leaves small sends to fill the
            # socket's buffer, by their overhead, on a busy machine)
            await loop.sock_sendall(peer, chunk)
            sent += chunk
            # Scheduled before the poll that reports the chunk: runs first.
            loop.call_soon(transport.pause_reading)
            await asyncio.sleep(0)
            transport.resume_reading()
        await eventually(lambda: len(b"".join(received)) == len(sent))
        transport.close()
        peer.close()
        return sent

    sent = loop.run_until_complete(main())
    assert b"".join(received) == sent


def test_buffered_protocol_with_small_buffers(loop):
    class Small(asyncio.BufferedProtocol):
        def __init__(self):
            self.buf = bytearray(7)
            self.data = bytearray()

        def get_buffer(self, hint):
            return self.buf

        def buffer_updated(self, n):
            self.data += self.buf[:n]

    async def main():
        transport, protocol, peer = await accepted_pair(loop, Small)
        data = bytes(range(256)) * 100
        for i in range(0, len(data), 1000):
            await loop.sock_sendall(peer, data[i:i + 1000])
            await asyncio.sleep(0)
        await eventually(lambda: len(protocol.data) == len(data))
        transport.close()
        peer.close()
        return protocol.data == data

    assert loop.run_until_complete(main())
    assert loop._selector.stats()["io_reads"] > 0


def test_close_sends_queued_writes_then_eof(loop):
    async def main():
        transport, _, peer = await accepted_pair(loop, asyncio.Protocol)
        transport.write(b"last words")
        transport.close()
        got = await recv_until_eof(loop, peer)
        peer.close()
        return got

    assert loop.run_until_complete(main()) == b"last words"


def test_eof_kept_open_can_still_write(loop):
    """The peer shuts down its side; a protocol that keeps the transport
    open answers after eof_received(), as on asyncio."""
    class Answer(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.got = b""

        def data_received(self, data):
            self.got += data

        def eof_received(self):
            self.transport.write(b"got " + self.got)
            self.transport.close()
            return True

    async def main():
        transport, _, peer = await accepted_pair(loop, Answer)
        peer.send(b"question")
        peer.shutdown(socket.SHUT_WR)
        got = await recv_until_eof(loop, peer)
        peer.close()
        return got

    assert loop.run_until_complete(main()) == b"got question"


def test_peer_reset_is_a_connection_lost_with_the_error(loop):
    async def main():
        lost = loop.create_future()

        class Watch(asyncio.Protocol):
            def connection_lost(self, exc):
                lost.set_result(exc)

        transport, _, peer = await accepted_pair(loop, Watch)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        peer.close()
        transport.write(b"x" * 10)
        return await asyncio.wait_for(lost, 5)

    exc = loop.run_until_complete(main())
    # A socketpair has no RST: the reset shows as EOF (None) or as an error
    # from the send, as on asyncio.
    assert exc is None or isinstance(exc, OSError)


def test_abort_closes_at_once_and_loop_stays_usable(loop):
    async def main():
        transport, _, peer = await accepted_pair(loop, asyncio.Protocol)
        transport.write(b"maybe")
        transport.abort()
        assert transport.is_closing()
        got = await recv_until_eof(loop, peer)
        peer.close()
        # The loop goes on: a fresh connection echoes.
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        await echo_clients(loop, server.sockets[0].getsockname()[1], 2, 5, 100)
        await close_server(server)
        return got

    # asyncio's write sends at once where the socket has room, and abort()
    # drops only what it had to buffer: so the bytes arrive here too.
    assert loop.run_until_complete(main()) == b"maybe"


# The PollerIO strategy's boundaries (loop/poller_io.pyx).

def test_stopping_the_strategy_mid_write_keeps_every_byte_in_order(loop):
    """Writes queued for the pollers, then pause_reading() (which stops the
    transport's poller-side I/O and settles its queue into asyncio's
    buffer), then more writes, then resume: the peer gets every byte once,
    in write() order, and the strategy does poller I/O again after."""
    async def main():
        transport, _, peer = await accepted_pair(loop, asyncio.Protocol)
        sent = []
        for i in range(300):
            chunk = payload(i, 2000)
            transport.write(chunk)
            sent.append(chunk)
            if i % 50 == 10:
                transport.pause_reading()      # the strategy stops mid-write
            elif i % 50 == 30:
                transport.resume_reading()     # and starts again
            if i % 25 == 0:
                await asyncio.sleep(0)
        want = b"".join(sent)
        got = await recv_exactly(loop, peer, len(want))
        reads_before = loop._selector.stats()["io_reads"]
        await loop.sock_sendall(peer, b"after")
        await eventually(lambda: loop._selector.stats()["io_reads"] > reads_before)
        transport.close()
        peer.close()
        return got, want, loop._selector.stats()["io_reads"] > reads_before

    got, want, read_again = loop.run_until_complete(main())
    assert got == want
    assert read_again, "no poller read after the strategy was started again"


def test_four_mib_echo_is_byte_exact_with_poller_io_pinned(loop):
    """4 MiB through an echo server whose pollers do the I/O: the client
    writes it all while reading, and gets it back byte for byte."""
    data = bytes(range(256)) * (4 * 1024 * 1024 // 256)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send():
            for i in range(0, len(data), 65536):
                writer.write(data[i:i + 65536])
                await writer.drain()

        sender = asyncio.ensure_future(send())
        got = await asyncio.wait_for(reader.readexactly(len(data)), 30)
        await sender
        writer.close()
        await writer.wait_closed()
        await close_server(server)
        return got

    assert loop.run_until_complete(main()) == data
    stats = loop._selector.stats()
    assert stats["io_reads"] > 0 and stats["io_flushes"] > 0
