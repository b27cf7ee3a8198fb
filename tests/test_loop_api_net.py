"""TCP client and server API on real sockets, differential against the
stdlib loop: getaddrinfo/getnameinfo, create_connection (happy eyeballs on
a real ::1 + 127.0.0.1 pair, interleave, all_errors), create_server and
Server objects, connect_accepted_socket."""
import asyncio
import socket
import sys

import pytest

from _differential import (Collector, Raised, aoutcome, assert_all, assert_same,
                           free_port_on_both, has_ipv6_loopback, normalize, run_on_each, tcp_listener)

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="::1 is not configured here")


def test_getaddrinfo_and_getnameinfo(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        numeric = await loop.getaddrinfo("127.0.0.1", "http", family=socket.AF_INET,
                                         proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)
        name = await loop.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
        bad = await aoutcome(loop.getaddrinfo("no such host.invalid", 80, flags=socket.AI_NUMERICHOST))
        return infos, numeric, name, (bad.type, bad.exc.errno)

    ref = assert_same(run_on_each(scenario))
    assert ref[0] == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))]
    assert ref[1] == [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))]
    assert ref[2] == ("127.0.0.1", "80")
    assert ref[3] == (socket.gaierror, socket.EAI_NONAME)


async def _echo_server(**kwargs):
    async def handle(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    return await asyncio.start_server(handle, **kwargs)


def test_create_connection_and_server_round_trip(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server = await _echo_server(host="127.0.0.1", port=0)
        out = [type(server.sockets), len(server.sockets), server.is_serving()]
        port = server.sockets[0].getsockname()[1]
        transport, proto = await loop.create_connection(Collector, "127.0.0.1", port)
        out.append(transport.get_extra_info("peername") == ("127.0.0.1", port))
        out.append(transport.get_extra_info("socket").family)
        transport.write(b"hello")
        out.append(await asyncio.wait_for(proto.eof, 5))
        await asyncio.wait_for(proto.lost, 5)
        out.append(proto.events)
        server.close()
        out.append(server.is_serving())
        await server.wait_closed()
        out.append(server.sockets)
        return out

    assert_all(run_on_each(scenario), [
        tuple, 1, True, True, socket.AF_INET, b"hello", ["made", "eof", ("lost", None)],
        False, ()])


def test_create_connection_with_sock_and_local_addr(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server = await _echo_server(host="127.0.0.1", port=0)
        addr = server.sockets[0].getsockname()
        out = []
        s = socket.socket()
        s.connect(addr)
        transport, proto = await loop.create_connection(Collector, sock=s)
        transport.write(b"via sock")
        out.append(await asyncio.wait_for(proto.eof, 5))
        transport.close()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            local = probe.getsockname()
        transport, proto = await loop.create_connection(Collector, *addr, local_addr=local)
        out.append(transport.get_extra_info("sockname") == local)
        transport.write(b"local")
        out.append(await asyncio.wait_for(proto.eof, 5))
        transport.close()
        server.close()
        await server.wait_closed()
        return out

    assert_all(run_on_each(scenario), [b"via sock", True, b"local"])


def test_create_connection_refused(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        r = await aoutcome(loop.create_connection(asyncio.Protocol, "127.0.0.1", port))
        return r.type, r.exc.errno, r.message.replace(str(port), "PORT")

    assert_all(run_on_each(scenario), (
        ConnectionRefusedError, 111, "[Errno 111] Connect call failed ('127.0.0.1', PORT)"))


@needs_ipv6
@pytest.mark.parametrize("delay", [None, 0.05])
def test_happy_eyeballs_on_a_real_ipv6_ipv4_pair(delay, no_leaks):
    # "localhost"-like resolution is not portable; connect to each family
    # through an address list from getaddrinfo of both literals instead:
    # only ::1 listens, so the IPv4 attempt is refused and the IPv6 one wins
    # (and vice versa).
    async def scenario(listen_family):
        loop = asyncio.get_running_loop()
        v4, v6, port = free_port_on_both()
        keep = v6 if listen_family == socket.AF_INET6 else v4
        drop = v4 if keep is v6 else v6
        drop.close()
        with keep:
            keep.listen()
            keep.setblocking(False)
            out = []
            for host in ("127.0.0.1", "::1"):
                r = await aoutcome(loop.create_connection(
                    asyncio.Protocol, host, port, happy_eyeballs_delay=delay, interleave=1))
                if isinstance(r, Raised):
                    out.append((host, r.type))
                else:
                    transport, _ = r
                    out.append((host, transport.get_extra_info("socket").family))
                    transport.close()
            conn, _ = await loop.sock_accept(keep)
            conn.close()
        await asyncio.sleep(0)
        return out

    assert_all(run_on_each(scenario, socket.AF_INET6), [
        ("127.0.0.1", ConnectionRefusedError), ("::1", socket.AF_INET6)])
    assert_all(run_on_each(scenario, socket.AF_INET), [
        ("127.0.0.1", socket.AF_INET), ("::1", ConnectionRefusedError)])


@needs_ipv6
def test_happy_eyeballs_falls_back_across_families(no_leaks):
    # A name that resolves to both ::1 and 127.0.0.1 (if the resolver has
    # one): the listening family wins whatever the order.
    names = []
    for name in ("localhost", "ip6-localhost", "localhost6"):
        try:
            fams = {ai[0] for ai in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
        except OSError:
            continue
        if fams == {socket.AF_INET, socket.AF_INET6}:
            names.append(name)
    if not names:
        pytest.skip("no name resolves to both ::1 and 127.0.0.1 here")
    host = names[0]

    async def scenario(listen_family, delay, interleave):
        loop = asyncio.get_running_loop()
        v4, v6, port = free_port_on_both()
        keep = v6 if listen_family == socket.AF_INET6 else v4
        (v4 if keep is v6 else v6).close()
        with keep:
            keep.listen()
            transport, _ = await loop.create_connection(
                asyncio.Protocol, host, port, happy_eyeballs_delay=delay, interleave=interleave)
            family = transport.get_extra_info("socket").family
            transport.close()
            await asyncio.sleep(0)
            return family

    for fam in (socket.AF_INET6, socket.AF_INET):
        for delay, interleave in ((0.05, None), (0.05, 2), (None, 1)):
            assert_all(run_on_each(scenario, fam, delay, interleave), fam)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="create_connection(all_errors=) is 3.12+")
def test_create_connection_all_errors(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port, all_errors=True)
        except ExceptionGroup as eg:
            return type(eg), str(eg), [type(e) for e in eg.exceptions]

    assert_all(run_on_each(scenario),
               (ExceptionGroup, "create_connection failed (1 sub-exception)", [ConnectionRefusedError]))


def test_server_start_serving_and_serve_forever(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        server = await loop.create_server(Collector, "127.0.0.1", 0, start_serving=False)
        out.append(server.is_serving())
        port = server.sockets[0].getsockname()[1]
        out.append(server.get_loop() is loop)
        await server.start_serving()
        out.append(server.is_serving())
        await server.start_serving()  # again: no-op
        serve = asyncio.ensure_future(server.serve_forever())
        await asyncio.sleep(0)
        # A second serve_forever on the same server is refused.
        r = await aoutcome(server.serve_forever())
        out.append((r.type, r.message.replace(normalize(repr(server)), "SERVER")))
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()
        await w.wait_closed()
        serve.cancel()
        await asyncio.wait([serve])
        out.append(serve.cancelled())
        out.append(server.is_serving())
        await server.wait_closed()
        out.append(server.sockets)
        # async with closes it.
        async with await loop.create_server(Collector, "127.0.0.1", 0) as srv2:
            out.append(srv2.is_serving())
        out.append(srv2.is_serving())
        await srv2.wait_closed()
        # start_serving on a closed server (3.11: a TypeError from inside
        # asyncio; later versions may differ, so only compare loops).
        r = await aoutcome(server.start_serving())
        out.append((r.type, r.message.replace(normalize(repr(server)), "SERVER")))
        return out

    ref = assert_same(run_on_each(scenario))
    assert ref[:-1] == [
        False, True, True,
        (RuntimeError, "server SERVER is already being awaited on serve_forever()"),
        True, False, (), True, False]


def test_server_on_several_sockets_and_reuse(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Collector, "127.0.0.1", 0, reuse_address=True, reuse_port=True)
        port = server.sockets[0].getsockname()[1]
        same_port = await loop.create_server(Collector, "127.0.0.1", port, reuse_port=True)
        out = [len(server.sockets), len(same_port.sockets),
               server.sockets[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0]
        for srv in (server, same_port):
            srv.close()
            await srv.wait_closed()
        # host=None: every interface of each family (a tuple of sockets).
        srv = await loop.create_server(Collector, None, 0, family=socket.AF_INET)
        out.append((type(srv.sockets), {s.getsockname()[0] for s in srv.sockets}))
        srv.close()
        await srv.wait_closed()
        # create_server(sock=...)
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        srv = await loop.create_server(Collector, sock=lsock)
        out.append(srv.sockets[0].getsockname() == lsock.getsockname())
        srv.close()
        await srv.wait_closed()
        return out

    assert_all(run_on_each(scenario), [1, 1, True, (tuple, {"0.0.0.0"}), True])


def test_server_close_with_clients_connected(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        protos = []

        def factory():
            protos.append(Collector())
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        clients = [await loop.create_connection(Collector, "127.0.0.1", port) for _ in range(5)]
        while len(protos) < 5:
            await asyncio.sleep(0.005)
        server.close()
        # Existing connections keep working after close().
        for t, p in clients:
            t.write(b"ping")
        await asyncio.sleep(0.05)
        data = sorted(bytes(p.data) for p in protos)
        refused = await aoutcome(loop.create_connection(asyncio.Protocol, "127.0.0.1", port))
        for t, p in clients:
            t.close()
        for p in protos:
            await asyncio.wait_for(p.lost, 5)
        await asyncio.wait_for(server.wait_closed(), 5)
        return data, refused.type

    assert_all(run_on_each(scenario), ([b"ping"] * 5, ConnectionRefusedError))


async def connect_accepted(lsock):
    """A client connected to lsock, the accepted socket, and the running
    loop's transport and Collector on it (connect_accepted_socket)."""
    client = socket.create_connection(lsock.getsockname())
    accepted, _ = lsock.accept()
    transport, proto = await asyncio.get_running_loop().connect_accepted_socket(
        Collector, accepted)
    return client, accepted, transport, proto


def test_connect_accepted_socket(no_leaks):
    async def scenario():
        with tcp_listener() as lsock:
            client, _, transport, proto = await connect_accepted(lsock)
            transport.write(b"back")
            client.sendall(b"from client")
            client.shutdown(socket.SHUT_WR)
            got = await asyncio.wait_for(proto.eof, 5)
            transport.close()
            await asyncio.wait_for(proto.lost, 5)
            client.settimeout(5)
            reply = client.recv(100)
            client.close()
            return got, reply, proto.events

    assert_all(run_on_each(scenario), (b"from client", b"back", ["made", "eof", ("lost", None)]))


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="3.11's loop makes a second transport on a socket in use")
def test_connect_accepted_socket_refuses_a_socket_in_use(no_leaks):
    """3.12+: _make_socket_transport refuses a socket that an open transport
    of the loop already uses, as the stdlib loop does."""
    async def scenario():
        loop = asyncio.get_running_loop()
        with tcp_listener() as lsock:
            client, accepted, transport, proto = await connect_accepted(lsock)
            second = await aoutcome(loop.connect_accepted_socket(Collector, accepted))
            if isinstance(second, Raised):
                # The message names the socket, then the transport (whose
                # class differs between the loops).
                head, _, tail = second.message.partition(" is used by transport <")
                second = (second.type.__name__, head == normalize(f"File descriptor {accepted!r}"),
                          tail.startswith(type(transport).__name__))
            else:
                second[0].abort()
            # The first transport still works.
            transport.write(b"still here")
            client.settimeout(5)
            reply = client.recv(100)
            client.close()
            await asyncio.wait_for(proto.eof, 5)
            transport.close()
            await asyncio.wait_for(proto.lost, 5)
            return second, reply, proto.events

    assert_all(run_on_each(scenario), (("RuntimeError", True, True), b"still here",
                                       ["made", "eof", ("lost", None)]))


def test_transport_flow_control_and_extra_info(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        with tcp_listener() as lsock:
            paused = []

            class Writer(asyncio.Protocol):
                def pause_writing(self):
                    paused.append("pause")

                def resume_writing(self):
                    paused.append("resume")

            transport, _ = await loop.create_connection(Writer, *lsock.getsockname())
            peer, _ = lsock.accept()
            transport.set_write_buffer_limits(high=1 << 14)
            out = [transport.get_write_buffer_limits()]
            transport.write(b"x" * (1 << 22))
            out.append(paused[:1])
            out.append(transport.get_write_buffer_size() > 0)
            peer.setblocking(False)
            got = 0
            while got < (1 << 22):
                try:
                    got += len(peer.recv(1 << 20))
                except BlockingIOError:
                    await asyncio.sleep(0.001)
            while transport.get_write_buffer_size():
                await asyncio.sleep(0.001)
            out.append(paused)
            out.append(transport.can_write_eof())
            transport.write_eof()
            await asyncio.sleep(0.01)
            out.append(peer.recv(10))
            transport.abort()
            peer.close()
            await asyncio.sleep(0)
            return out

    assert_all(run_on_each(scenario), [(4096, 16384), ["pause"], True, ["pause", "resume"], True, b""])
