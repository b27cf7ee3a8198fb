"""TLS (create_server/create_connection with ssl=, start_tls, TLS 1.2 and
1.3, clean and unclean close, handshake timeout) and sendfile/sock_sendfile
(zero-copy where possible, fallback otherwise), differential against the
stdlib loop.  The certificate is made at test time with ``openssl``."""
import asyncio
import gc
import os
import socket
import ssl
import sys
import tempfile

import pytest

from _differential import (Collector, Raised, aoutcome, assert_all, assert_same, run_on_each,
                           self_signed_cert, tcp_listener)


@pytest.fixture(scope="module")
def cert():
    pair = self_signed_cert()
    if pair is None:
        pytest.skip("the openssl command line tool is needed to make a certificate")
    return pair


def _contexts(cert, version):
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*cert)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert[0])
    for ctx in (server, client):
        ctx.minimum_version = ctx.maximum_version = version
    return server, client


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
def test_tls_echo_clean_close(cert, version, no_leaks):
    async def scenario():
        server_ctx, client_ctx = _contexts(cert, version)

        async def handle(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx,
                                            ssl_handshake_timeout=10, ssl_shutdown_timeout=10)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="localhost")
        sslobj = writer.get_extra_info("ssl_object")
        out = [sslobj.version(), writer.get_extra_info("peercert")["subject"],
               writer.transport.get_extra_info("sslcontext") is client_ctx]
        payload = os.urandom(1 << 20)
        writer.write(payload)
        out.append(writer.can_write_eof())  # TLS transports cannot write_eof
        got = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        out.append(got == payload)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return out

    expected_version = "TLSv1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3"
    assert_all(run_on_each(scenario), [expected_version, ((("commonName", "localhost"),),), True, False, True])


def test_tls_unclean_close_and_bad_certificate(cert, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server_ctx, client_ctx = _contexts(cert, ssl.TLSVersion.TLSv1_3)
        protos = []

        def factory():
            protos.append(Collector())
            return protos[-1]

        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        out = []
        # Unclean close: the client aborts; the server side sees the loss.
        t, p = await loop.create_connection(Collector, "127.0.0.1", port, ssl=client_ctx,
                                            server_hostname="localhost")
        t.write(b"before abort")
        while not (protos and protos[0].data):
            await asyncio.sleep(0.002)
        t.abort()
        exc = await asyncio.wait_for(protos[0].lost, 10)
        out.append(bytes(protos[0].data))
        out.append(exc is None or isinstance(exc, (ConnectionError, ssl.SSLError)))
        # A client that does not trust the certificate.
        r = await aoutcome(loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                  ssl=ssl.create_default_context(),
                                                  server_hostname="localhost"))
        out.append((r.type, r.exc.reason if hasattr(r.exc, "reason") else None))
        # A wrong hostname.
        r = await aoutcome(loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                  ssl=client_ctx, server_hostname="wrong.example"))
        out.append((r.type, r.exc.reason if hasattr(r.exc, "reason") else None))
        for p in protos:
            if p.lost is not None:  # None: the handshake failed first
                await asyncio.wait_for(p.lost, 10)
        server.close()
        await server.wait_closed()
        return out

    assert_all(run_on_each(scenario), [
        b"before abort", True,
        (ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED"),
        (ssl.SSLCertVerificationError, "CERTIFICATE_VERIFY_FAILED")])


def test_tls_handshake_timeout(cert, no_leaks):
    # A server that accepts and never speaks TLS: the client's handshake
    # times out with the stdlib's exception and message.
    async def scenario():
        loop = asyncio.get_running_loop()
        _, client_ctx = _contexts(cert, ssl.TLSVersion.TLSv1_3)
        with tcp_listener() as lsock:
            r = await aoutcome(loop.create_connection(
                asyncio.Protocol, *lsock.getsockname(), ssl=client_ctx,
                server_hostname="localhost", ssl_handshake_timeout=0.1))
            conn, _ = lsock.accept()
            conn.close()
        return r

    assert_all(run_on_each(scenario), Raised(ConnectionAbortedError(
        "SSL handshake is taking longer than 0.1 seconds: aborting the connection")))


def test_start_tls_upgrade_both_sides(cert, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server_ctx, client_ctx = _contexts(cert, ssl.TLSVersion.TLSv1_2)
        done = loop.create_future()

        async def handle(reader, writer):
            line = await reader.readline()
            writer.write(b"OK " + line)
            await writer.drain()
            await writer.start_tls(server_ctx)
            msg = await reader.readexactly(6)
            writer.write(msg.upper())
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            done.set_result(True)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        # Client side with the loop's start_tls on a protocol transport.
        transport, proto = await loop.create_connection(Collector, "127.0.0.1", port)
        transport.write(b"STARTTLS\n")
        while bytes(proto.data) != b"OK STARTTLS\n":
            await asyncio.sleep(0.002)
        proto.data.clear()
        tls_transport = await loop.start_tls(transport, proto, client_ctx, server_hostname="localhost",
                                             ssl_handshake_timeout=10, ssl_shutdown_timeout=10)
        out = [tls_transport.get_extra_info("ssl_object").version(), transport.is_closing()]
        tls_transport.write(b"secret")
        await asyncio.wait_for(proto.eof, 10)
        out.append(bytes(proto.data))
        tls_transport.close()
        await asyncio.wait_for(done, 10)
        server.close()
        await server.wait_closed()
        bad = await aoutcome(loop.start_tls(object(), proto, client_ctx))
        return out, (bad.type, bad.message.split(",")[0])

    assert_all(run_on_each(scenario), (["TLSv1.2", False, b"SECRET"],
                                       (TypeError, "transport <object object at 0xADDR> is not supported by start_tls()")))


def test_tls_argument_errors(cert, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server_ctx, client_ctx = _contexts(cert, ssl.TLSVersion.TLSv1_3)
        with tcp_listener() as lsock:
            addr = lsock.getsockname()
            return [
                await aoutcome(loop.create_connection(asyncio.Protocol, *addr, ssl_handshake_timeout=1)),
                await aoutcome(loop.create_connection(asyncio.Protocol, *addr, ssl_shutdown_timeout=1)),
                await aoutcome(loop.create_connection(asyncio.Protocol, *addr, server_hostname="x")),
                await aoutcome(loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_handshake_timeout=1)),
                await aoutcome(loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl_shutdown_timeout=1)),
                await aoutcome(loop.create_connection(asyncio.Protocol, *addr, ssl=client_ctx,
                                                      server_hostname="localhost", ssl_handshake_timeout=0)),
            ]

    assert_all(run_on_each(scenario), [
        Raised(ValueError("ssl_handshake_timeout is only meaningful with ssl")),
        Raised(ValueError("ssl_shutdown_timeout is only meaningful with ssl")),
        Raised(ValueError("server_hostname is only meaningful with ssl")),
        Raised(ValueError("ssl_handshake_timeout is only meaningful with ssl")),
        Raised(ValueError("ssl_shutdown_timeout is only meaningful with ssl")),
        Raised(ValueError("ssl_handshake_timeout should be a positive number, got 0")),
    ])
    if sys.version_info >= (3, 12):
        # The last call's client socket (which asyncio never closes: the
        # SSL protocol refuses the timeout before a transport owns it) is
        # held by the frames of the ValueError's traceback, which on 3.12+
        # sit in a reference cycle (the traceback, frames, task and
        # SSLProtocol end up in gc.garbage): it is closed by the cycle
        # collector, not when the results are dropped.  The stdlib loop
        # alone does the same on 3.12.1 and 3.13.0 (one fd open after the
        # loop is closed, none after gc.collect(); none on 3.11.7).
        gc.collect()


# ------------------------------------------------------------------ sendfile

@pytest.fixture(scope="module")
def data_file():
    with tempfile.NamedTemporaryFile(prefix="wfcloop-sendfile-", delete=False) as f:
        f.write(os.urandom(3 << 20) + b"tail")
    yield f.name
    os.unlink(f.name)


async def _receive_all(sock, n):
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < n:
        chunk = await loop.sock_recv(sock, 1 << 20)
        if not chunk:
            break
        got += chunk
    return bytes(got)


def test_sendfile_zero_copy_and_fallback(data_file, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        content = open(data_file, "rb").read()
        out = []
        with tcp_listener() as lsock:
            transport, _ = await loop.create_connection(asyncio.Protocol, *lsock.getsockname())
            peer, _ = lsock.accept()
            peer.setblocking(False)
            with peer, open(data_file, "rb") as f:
                # fallback=False: only possible through os.sendfile.
                recv = asyncio.ensure_future(_receive_all(peer, len(content)))
                out.append(await loop.sendfile(transport, f, fallback=False))
                out.append(await recv == content)
                # offset and count; the file position ends after what was sent.
                recv = asyncio.ensure_future(_receive_all(peer, 1000))
                out.append(await loop.sendfile(transport, f, offset=len(content) - 1004, count=1000))
                out.append(await recv == content[-1004:-4])
                out.append(f.tell())
                # Not a regular file: the stdlib (3.11) sends nothing, as
                # its size is 0.
                out.append(await _pipe_sendfile(loop, transport))
                # A text-mode file is refused.
                with open(data_file, "r") as tf:
                    out.append(await aoutcome(loop.sendfile(transport, tf)))
                out.append(await aoutcome(loop.sendfile(transport, f, offset=-1)))
                out.append(await aoutcome(loop.sendfile(transport, f, count=0)))
                transport.close()
                await asyncio.sleep(0)
        return out

    assert_all(run_on_each(scenario), [
        (3 << 20) + 4, True, 1000, True, (3 << 20), 0,
        Raised(ValueError("file should be opened in binary mode")),
        Raised(ValueError("offset must be a non-negative integer (got -1)")),
        Raised(ValueError("count must be a positive integer (got 0)")),
    ])


async def _pipe_sendfile(loop, transport):
    r, w = os.pipe()
    with open(r, "rb") as pipe_r, open(w, "wb") as pipe_w:
        pipe_w.write(b"in the pipe")
        pipe_w.flush()
        return await aoutcome(loop.sendfile(transport, pipe_r, fallback=False))




def test_sendfile_over_tls_has_no_zero_copy(cert, data_file, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        server_ctx, client_ctx = _contexts(cert, ssl.TLSVersion.TLSv1_3)
        received = loop.create_future()

        async def handle(reader, writer):
            received.set_result(await reader.read())
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                    ssl=client_ctx, server_hostname="localhost")
        out = []
        with open(data_file, "rb") as f:
            r = await aoutcome(loop.sendfile(transport, f, count=5000, fallback=False))
            out.append((r.type, r.message.split(" for transport")[0]))
            out.append(await loop.sendfile(transport, f, count=5000))  # the fallback works
        transport.close()
        content = open(data_file, "rb").read()
        out.append(await asyncio.wait_for(received, 10) == content[:5000])
        server.close()
        await server.wait_closed()
        return out

    # The stdlib raises RuntimeError here (SendfileNotAvailableError is
    # what sock_sendfile raises, and what the fallback catches).
    assert_all(run_on_each(scenario), [
        (RuntimeError, "fallback is disabled and native sendfile is not supported"), 5000, True])


def test_sock_sendfile(data_file, no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        content = open(data_file, "rb").read()
        out = []
        a, b = socket.socketpair()
        a.setblocking(False)
        b.setblocking(False)
        with a, b, open(data_file, "rb") as f:
            recv = asyncio.ensure_future(_receive_all(b, len(content)))
            out.append(await loop.sock_sendfile(a, f, fallback=False))
            out.append(await recv == content)
            recv = asyncio.ensure_future(_receive_all(b, 10))
            out.append(await loop.sock_sendfile(a, f, offset=5, count=10))
            out.append(await recv == content[5:15])
            r = await aoutcome(loop.sock_sendfile(a, f, offset=-3))
            out.append(r)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                r = await aoutcome(loop.sock_sendfile(u, f))
                out.append(r)
        return out

    assert_all(run_on_each(scenario), [
        (3 << 20) + 4, True, 10, True,
        Raised(ValueError("offset must be a non-negative integer (got -3)")),
        Raised(ValueError("only SOCK_STREAM type sockets are supported")),
    ])
