"""Every ``loop.sock_*`` method on real sockets, differential against the
stdlib loop; plus the waits that a compiled sock_* path must get right:
many messages on one socket, a sock_recv cancelled by a timeout and the
socket reused, the socket closed while a sock_recv waits, and fd-number
reuse within one loop iteration."""
import asyncio
import os
import socket

from _differential import Raised, aoutcome, assert_all, assert_same, run_on_each


def _nonblocking(*socks):
    for s in socks:
        s.setblocking(False)
    return socks


def test_tcp_connect_accept_sendall_recv_recv_into(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        try:
            accept = asyncio.ensure_future(loop.sock_accept(lsock))
            await loop.sock_connect(client, lsock.getsockname())
            server, addr = await accept
            out = [addr == client.getsockname(), server.gettimeout()]
            with server:
                server.setblocking(False)
                payload = os.urandom(3 << 20)
                send = asyncio.ensure_future(loop.sock_sendall(client, payload))
                got = bytearray()
                buf = bytearray(70000)
                while len(got) < len(payload):
                    if len(got) % 2:
                        got += await loop.sock_recv(server, 65536)
                    else:
                        n = await loop.sock_recv_into(server, buf)
                        got += buf[:n]
                out.append(await send)
                out.append(bytes(got) == payload)
                client.shutdown(socket.SHUT_WR)
                out.append(await loop.sock_recv(server, 10))
                out.append(await loop.sock_recv_into(server, buf))
            return out
        finally:
            client.close()
            lsock.close()

    # sock_accept hands back a socket in the loop's non-blocking mode (timeout 0).
    assert_all(run_on_each(scenario), [True, 0.0, None, True, b"", 0])


def test_many_messages_on_one_socket(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        with a, b:
            # Ping-pong: every recv waits for data (registers a reader).
            replies = []
            for i in range(300):
                recv = asyncio.ensure_future(loop.sock_recv(b, 100))
                await loop.sock_sendall(a, b"%d;" % i)
                msg = await recv
                await loop.sock_sendall(b, msg.upper() + b"!")
                replies.append(await loop.sock_recv(a, 100))
            # A stream of messages read by one recv loop.
            async def produce():
                for i in range(2000):
                    await loop.sock_sendall(a, b"m%05d" % i)
                a.shutdown(socket.SHUT_WR)
            producer = asyncio.ensure_future(produce())
            data = bytearray()
            while chunk := await loop.sock_recv(b, 4096):
                data += chunk
            await producer
            return replies == [b"%d;!" % i for i in range(300)], bytes(data) == b"".join(
                b"m%05d" % i for i in range(2000))

    assert_all(run_on_each(scenario), (True, True))


def test_sock_recv_cancelled_by_timeout_then_reused(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        with a, b:
            out = []
            for i in range(3):
                out.append(await aoutcome(asyncio.wait_for(loop.sock_recv(b, 100), 0.02)))
                # Nothing was consumed by the cancelled wait.
                await loop.sock_sendall(a, b"after-timeout-%d" % i)
                out.append(await asyncio.wait_for(loop.sock_recv(b, 100), 5))
            buf = bytearray(10)
            out.append(await aoutcome(asyncio.wait_for(loop.sock_recv_into(b, buf), 0.02)))
            await loop.sock_sendall(a, b"into")
            out.append(buf[:await asyncio.wait_for(loop.sock_recv_into(b, buf), 5)])
            return out

    timeout = Raised(TimeoutError())
    assert_all(run_on_each(scenario), [
        timeout, b"after-timeout-0", timeout, b"after-timeout-1", timeout, b"after-timeout-2",
        timeout, bytearray(b"into")])


def test_peer_closes_while_sock_recv_waits(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        with b:
            recv = asyncio.ensure_future(loop.sock_recv(b, 100))
            await asyncio.sleep(0.01)
            a.close()
            return await asyncio.wait_for(recv, 5)

    assert_all(run_on_each(scenario), b"")


def test_socket_closed_while_sock_recv_waits_then_fd_reused(no_leaks):
    # Closing the socket under a waiting sock_recv: the kernel drops the fd
    # from epoll, so the stdlib's wait simply never completes (here: the
    # wait_for timeout); the fd number, reused at once by a new socket,
    # then works normally.
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        recv = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.01)
        fd = a.fileno()
        a.close()
        out = [await aoutcome(asyncio.wait_for(recv, 0.2))]
        c, d = _nonblocking(*socket.socketpair())
        with b, c, d:
            out.append(c.fileno() == fd)
            recv = asyncio.ensure_future(loop.sock_recv(c, 100))
            await asyncio.sleep(0.01)
            d.send(b"new socket")
            out.append(await asyncio.wait_for(recv, 5))
        return out

    assert_all(run_on_each(scenario), [Raised(TimeoutError()), True, b"new socket"])


def test_fd_reuse_in_the_same_iteration_after_sock_recv(no_leaks):
    # After a sock_recv that waited (so the fd was registered), close the
    # socket and, with no await in between, make a new one that gets the
    # same fd number and wait on it: the new socket must be watched, not
    # the dead registration.
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        a, b = _nonblocking(*socket.socketpair())
        for i in range(20):
            recv = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0)
            b.send(b"msg%d" % i)
            out.append(await asyncio.wait_for(recv, 5) == b"msg%d" % i)
            fd = a.fileno()
            a.close()
            b.close()
            a, b = _nonblocking(*socket.socketpair())
            out.append(a.fileno() == fd)
            # Same iteration: wait on the new socket at once, both ways.
            recv = asyncio.ensure_future(loop.sock_recv(a, 100))
            send = asyncio.ensure_future(loop.sock_sendall(a, b"x" * 100))
            out.append(await asyncio.wait_for(send, 5))
            b.send(b"again%d" % i)
            out.append(await asyncio.wait_for(recv, 5) == b"again%d" % i)
            out.append(len(b.recv(1000)))
        a.close()
        b.close()
        return out

    assert_all(run_on_each(scenario), [True, True, None, True, 100] * 20)


def test_fd_reuse_after_a_cancelled_sock_recv_in_the_same_iteration(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        a, b = _nonblocking(*socket.socketpair())
        for i in range(10):
            recv = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0.001)
            recv.cancel()
            fd = a.fileno()
            a.close()
            b.close()
            a, b = _nonblocking(*socket.socketpair())
            out.append(a.fileno() == fd)
            recv2 = asyncio.ensure_future(loop.sock_recv(a, 100))
            await asyncio.sleep(0.001)
            b.send(b"fresh%d" % i)
            out.append(await asyncio.wait_for(recv2, 5))
            out.append(recv.cancelled())
        a.close()
        b.close()
        return out

    expected = []
    for i in range(10):
        expected += [True, b"fresh%d" % i, True]
    assert_all(run_on_each(scenario), expected)


def test_sock_recv_cancelled_after_its_reader_was_removed(no_leaks):
    """remove_reader() on a socket a sock_recv waits on cancels its reader
    handle; cancelling the sock_recv afterwards is quiet (no error in a
    done callback), and the socket still works, as on asyncio."""
    async def scenario():
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx.get("message")))
        a, b = _nonblocking(*socket.socketpair())
        recv = asyncio.ensure_future(loop.sock_recv(a, 100))
        await asyncio.sleep(0.001)
        removed = loop.remove_reader(a.fileno())
        recv.cancel()
        await asyncio.sleep(0.001)
        b.send(b"after")
        got = await asyncio.wait_for(loop.sock_recv(a, 100), 5)
        a.close()
        b.close()
        return [removed, recv.cancelled(), got, errors]

    assert_all(run_on_each(scenario), [True, True, b"after", []])


def test_fd_reuse_inside_a_reader_callback(no_leaks):
    # The same, with add_reader: in the reader's own callback remove it,
    # close the socket, open one that reuses the fd and watch that one.
    def scenario(loop):
        got = []
        a, b = socket.socketpair()
        a.setblocking(False)
        state = {"a": a, "b": b, "n": 0}

        def on_readable():
            sock = state["a"]
            got.append(sock.recv(100))
            loop.remove_reader(sock)
            fd = sock.fileno()
            sock.close()
            state["b"].close()
            if state["n"] == 5:
                loop.stop()
                return
            state["n"] += 1
            new_a, new_b = socket.socketpair()
            new_a.setblocking(False)
            got.append(new_a.fileno() == fd)
            state["a"], state["b"] = new_a, new_b
            loop.add_reader(new_a, on_readable)
            new_b.send(b"gen%d" % state["n"])

        loop.add_reader(a, on_readable)
        b.send(b"gen0")
        guard = loop.call_later(10, loop.stop)
        loop.run_forever()
        guard.cancel()
        return got

    from _differential import on_each
    expected = [b"gen0"]
    for n in range(1, 6):
        expected += [True, b"gen%d" % n]
    assert_all(on_each(scenario), expected)


def test_udp_sendto_recvfrom_recvfrom_into(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with a, b:
            _nonblocking(a, b)
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            out = []
            # recvfrom waiting before the datagram arrives.
            wait = asyncio.ensure_future(loop.sock_recvfrom(b, 100))
            await asyncio.sleep(0.01)
            out.append(await loop.sock_sendto(a, b"one", b.getsockname()))
            data, addr = await asyncio.wait_for(wait, 5)
            out.append((data, addr == a.getsockname()))
            buf = bytearray(10)
            await loop.sock_sendto(a, b"two-and-more", b.getsockname())
            n, addr = await asyncio.wait_for(loop.sock_recvfrom_into(b, buf), 5)
            out.append((n, bytes(buf), addr == a.getsockname()))
            await loop.sock_sendto(a, b"three", b.getsockname())
            n, addr = await asyncio.wait_for(loop.sock_recvfrom_into(b, buf, 2), 5)
            out.append((n, bytes(buf[:2])))
            # Many datagrams, each awaited.
            for i in range(200):
                await loop.sock_sendto(b, b"%d" % i, a.getsockname())
            got = [(await asyncio.wait_for(loop.sock_recvfrom(a, 100), 5))[0] for _ in range(200)]
            out.append(got == [b"%d" % i for i in range(200)])
            out.append(await aoutcome(asyncio.wait_for(loop.sock_recvfrom(a, 100), 0.02)))
            out.append(await aoutcome(loop.sock_recvfrom_into(a, buf, 11)))
            return out

    assert_all(run_on_each(scenario), [
        3, (b"one", True), (10, b"two-and-mo", True),
        (2, b"th"), True, Raised(TimeoutError()),
        Raised(ValueError("nbytes is greater than the length of the buffer"))])


def test_sock_connect_errors_and_names(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]
        s = socket.socket()
        s.setblocking(False)
        with s:
            r = await aoutcome(loop.sock_connect(s, ("127.0.0.1", closed_port)))
            out.append((r.type, r.exc.errno))
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        s = socket.socket()
        s.setblocking(False)
        with s, lsock:
            # A name is resolved first.
            out.append(await loop.sock_connect(s, ("localhost", lsock.getsockname()[1]))
                       if socket.gethostbyname("localhost") == "127.0.0.1" else None)
        return out

    import errno
    assert_all(run_on_each(scenario), [(ConnectionRefusedError, errno.ECONNREFUSED), None])


def test_sock_sendall_to_a_slow_reader_and_cancel(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        with a, b:
            # Fill the buffers: sock_sendall must wait for writability.
            blob = b"z" * (8 << 20)
            send = asyncio.ensure_future(loop.sock_sendall(a, blob))
            r = await aoutcome(asyncio.wait_for(asyncio.shield(send), 0.05))
            out = [r, send.done()]
            got = 0
            while got < len(blob):
                got += len(await loop.sock_recv(b, 1 << 16))
            out.append(await send)
            # A cancelled sock_sendall, then the socket is still usable.
            send = asyncio.ensure_future(loop.sock_sendall(a, blob))
            await asyncio.sleep(0.01)
            send.cancel()
            await asyncio.wait([send])
            out.append(send.cancelled())
            # Drain whatever it sent, then a fresh exchange works.
            while True:
                try:
                    if not b.recv(1 << 20):
                        break
                except BlockingIOError:
                    break
            await loop.sock_sendall(a, b"end")
            out.append(await asyncio.wait_for(loop.sock_recv(b, 3), 5) in (b"end", b"e", b"en"))
            return out

    results = run_on_each(scenario)
    ref = assert_same(results)
    assert ref[:3] == [Raised(TimeoutError()), False, None]
    assert ref[3:] == [True, True]


def test_sock_accept_cancelled_then_reused(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        lsock.setblocking(False)
        with lsock:
            out = [await aoutcome(asyncio.wait_for(loop.sock_accept(lsock), 0.02))]
            accept = asyncio.ensure_future(loop.sock_accept(lsock))
            c = socket.socket()
            c.setblocking(False)
            with c:
                await loop.sock_connect(c, lsock.getsockname())
                s, addr = await asyncio.wait_for(accept, 5)
                with s:
                    out.append(addr == c.getsockname())
        return out

    assert_all(run_on_each(scenario), [Raised(TimeoutError()), True])


def test_reader_and_writer_waits_on_one_socket(no_leaks):
    # A sock_recv and a sock_sendall waiting on the same fd at once.
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = _nonblocking(*socket.socketpair())
        with a, b:
            recv = asyncio.ensure_future(loop.sock_recv(a, 10))
            send = asyncio.ensure_future(loop.sock_sendall(a, b"q" * (4 << 20)))
            await asyncio.sleep(0.01)
            got = 0
            while got < (4 << 20):
                got += len(await loop.sock_recv(b, 1 << 16))
            await asyncio.wait_for(send, 5)
            await loop.sock_sendall(b, b"reply")
            return await asyncio.wait_for(recv, 5), got

    assert_all(run_on_each(scenario), (b"reply", 4 << 20))
