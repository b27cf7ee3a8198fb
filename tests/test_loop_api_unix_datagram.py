"""Unix sockets (create_unix_server/connection, cleanup_socket where Python
has it) and datagram endpoints, differential against the stdlib loop."""
import asyncio
import os
import socket
import sys
import tempfile

import pytest

from _differential import Collector, Raised, acall, aoutcome, assert_all, assert_same, run_on_each


def test_unix_server_and_connection(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "s.sock")

            async def handle(reader, writer):
                writer.write((await reader.read(100)).upper())
                await writer.drain()
                writer.close()
                await writer.wait_closed()

            server = await asyncio.start_unix_server(handle, path)
            out = [type(server.sockets), server.sockets[0].family, os.path.exists(path)]
            transport, proto = await loop.create_unix_connection(Collector, path)
            out.append(transport.get_extra_info("peername") == path)
            transport.write(b"unix")
            out.append(await asyncio.wait_for(proto.eof, 5))
            await asyncio.wait_for(proto.lost, 5)
            # sock= and an abstract-namespace path.
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            t2, p2 = await loop.create_unix_connection(Collector, sock=s)
            t2.write(b"sock")
            out.append(await asyncio.wait_for(p2.eof, 5))
            await asyncio.wait_for(p2.lost, 5)
            server.close()
            await server.wait_closed()
            # The stdlib before 3.13 leaves the path behind; wfcloop removes
            # it (cleanup_socket=True, 3.13's default, on every version).
            out.append(os.path.exists(path))
            # A stale socket file is replaced by a new server.
            server = await loop.create_unix_server(Collector, path)
            server.close()
            await server.wait_closed()
            abstract = "\0wfcloop-test-%d-%d" % (os.getpid(), id(loop))
            accepted = []
            server = await loop.create_unix_server(lambda: accepted.append(Collector()) or accepted[-1], abstract)
            t3, p3 = await loop.create_unix_connection(Collector, abstract)
            out.append(t3.get_extra_info("peername") == abstract.encode())
            t3.close()
            await asyncio.wait_for(p3.lost, 5)
            while not accepted:
                await asyncio.sleep(0.001)
            await asyncio.wait_for(accepted[0].lost, 5)
            server.close()
            await server.wait_closed()
            out.append(await aoutcome(loop.create_unix_connection(Collector, os.path.join(d, "missing"))))
            return out

    results = run_on_each(scenario)
    for name, out in results.items():
        assert out[6] == (name == "stdlib" and sys.version_info < (3, 13)), name
        del out[6]
    ref = assert_same(results)
    assert ref[:6] == [tuple, socket.AF_UNIX, True, True, b"UNIX", b"SOCK"]
    assert ref[6] is True
    assert ref[7].type is FileNotFoundError


@pytest.mark.skipif(sys.version_info < (3, 13), reason="create_unix_server(cleanup_socket=) is 3.13+")
def test_unix_server_cleanup_socket(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        with tempfile.TemporaryDirectory() as d:
            out = []
            for cleanup in (True, False):
                path = os.path.join(d, f"s{cleanup}.sock")
                server = await loop.create_unix_server(Collector, path, cleanup_socket=cleanup)
                server.close()
                await server.wait_closed()
                out.append(os.path.exists(path))
            return out

    assert_all(run_on_each(scenario), [False, True])


def test_unix_server_bad_arguments(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET)
        try:
            return [await aoutcome(loop.create_unix_server(Collector, "/tmp/x", sock=s)),
                    await aoutcome(loop.create_unix_server(Collector)),
                    await aoutcome(loop.create_unix_server(Collector, sock=s)),
                    await aoutcome(loop.create_unix_connection(Collector, "/tmp/x", sock=s)),
                    await aoutcome(loop.create_unix_connection(Collector)),
                    await aoutcome(loop.create_unix_connection(Collector, sock=s))]
        finally:
            s.close()

    ref = assert_same(run_on_each(scenario))
    assert ref[0] == Raised(ValueError("path and sock can not be specified at the same time"))
    assert ref[1] == Raised(ValueError("path was not specified, and no sock specified"))
    assert ref[2].type is ValueError and ref[2].message.startswith("A UNIX Domain Stream Socket was expected")
    assert ref[3] == Raised(ValueError("path and sock can not be specified at the same time"))
    assert ref[4] == Raised(ValueError("no path and sock were specified"))
    assert ref[5].type is ValueError


class Datagrams(asyncio.DatagramProtocol):
    def __init__(self):
        self.got = []
        self.errors = []
        self.transport = None
        self.closed = None

    def connection_made(self, transport):
        self.transport = transport
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data, addr):
        self.got.append((data, addr))

    def error_received(self, exc):
        self.errors.append(type(exc))

    def connection_lost(self, exc):
        self.closed.set_result(exc)


async def _until(pred, limit=5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not pred() and loop.time() < deadline:
        await asyncio.sleep(0.002)


def test_datagram_endpoints(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        st, sp = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0))
        server_addr = st.get_extra_info("sockname")
        ct, cp = await loop.create_datagram_endpoint(Datagrams, remote_addr=server_addr)
        client_addr = ct.get_extra_info("sockname")
        for i in range(100):
            ct.sendto(b"d%d" % i)
        await _until(lambda: len(sp.got) == 100)
        out.append(sp.got == [(b"d%d" % i, client_addr) for i in range(100)])
        st.sendto(b"reply", client_addr)
        await _until(lambda: cp.got)
        out.append(cp.got == [(b"reply", server_addr)])
        # A connected endpoint refuses another address.
        out.append(outcome_of(ct.sendto, b"x", ("127.0.0.1", 9)))
        out.append(st.get_write_buffer_size())
        # Sending to a closed port on a connected socket: error_received.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            dead = probe.getsockname()
        dt, dp = await loop.create_datagram_endpoint(Datagrams, remote_addr=dead)
        dt.sendto(b"nobody")
        await _until(lambda: dp.errors)
        dt.sendto(b"nobody")
        await _until(lambda: len(dp.errors) >= 2)
        out.append(dp.errors[:1])
        for t, p in ((st, sp), (ct, cp), (dt, dp)):
            t.close()
            out.append(await asyncio.wait_for(p.closed, 5))
        return out

    assert_all(run_on_each(scenario), [
        True, True, (ValueError, "Invalid address: must be None"), 0, [ConnectionRefusedError],
        None, None, None])


def outcome_of(func, *args):
    try:
        return func(*args)
    except Exception as exc:
        return (type(exc), str(exc).split(" or ")[0])


def test_datagram_sock_unix_and_reuse_port(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        out = []
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        t, p = await loop.create_datagram_endpoint(Datagrams, sock=s)
        out.append(t.get_extra_info("socket").fileno() == s.fileno())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.sendto(b"to sock", s.getsockname())
            await _until(lambda: p.got)
        out.append(p.got[0][0])
        t.close()
        await p.closed
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "dgram")
            t, p = await loop.create_datagram_endpoint(Datagrams, local_addr=path, family=socket.AF_UNIX)
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
                c.sendto(b"unix dgram", path)
                await _until(lambda: p.got)
            out.append(p.got[0][0])
            t.close()
            await p.closed
        t, p = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0), reuse_port=True)
        out.append(t.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0)
        t.close()
        await p.closed
        t, p = await loop.create_datagram_endpoint(Datagrams, local_addr=("127.0.0.1", 0), allow_broadcast=True)
        out.append(t.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST) != 0)
        t.close()
        await p.closed
        return out

    assert_all(run_on_each(scenario), [True, b"to sock", b"unix dgram", True, True])


def test_datagram_bad_arguments(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tcp = socket.socket()
        try:
            cde = loop.create_datagram_endpoint
            return [
                await acall(cde, Datagrams, local_addr=("127.0.0.1", 0), sock=s),
                await acall(cde, Datagrams, sock=tcp),
                await acall(cde, Datagrams),
                await acall(cde, Datagrams, local_addr=("127.0.0.1", 0), reuse_address=True),
            ]
        finally:
            s.close()
            tcp.close()

    ref = assert_same(run_on_each(scenario))
    assert ref[0].type is ValueError and ref[0].message.startswith("socket modifier keyword arguments can not be used when sock is specified.")
    # 3.13 reworded it (a SOCK_DGRAM unix socket is fine too).
    expected = "A datagram socket was expected" if sys.version_info >= (3, 13) else "A UDP Socket was expected"
    assert ref[1].type is ValueError and ref[1].message.startswith(expected)
    assert ref[2] == Raised(ValueError("unexpected address family"))
    # 3.11 no longer has the reuse_address parameter.
    assert ref[3].type in (ValueError, TypeError) and "reuse_address" in ref[3].message
