"""Echo client for the servers in this directory: sends --count messages of
--size random bytes, checks that each echo is byte-exact and prints one
summary line (exit code 0), or what went wrong (exit code 1).

    python examples/echo_client.py --port 8888                      # TCP
    python examples/echo_client.py --transport udp --port 8888
    python examples/echo_client.py --transport unix --path /tmp/echo.sock
    python examples/echo_client.py --transport tls --port 8443 --cafile CERT
    python examples/echo_client.py --transport tls --port 8443 --insecure
    python examples/echo_client.py --count 100 --size 1048576 --loop asyncio

TLS verifies the server's certificate and host name, against the system's
CAs and --cafile; --insecure turns that off (testing only).  Needs
``_common.py`` from this directory.
"""
import asyncio
import os
import ssl
import sys
import time

import _common

UDP_MAX = 65507  # the largest UDP payload over IPv4


def client_context(args):
    context = ssl.create_default_context(cafile=args.cafile)
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if args.tls_version:
        version = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[args.tls_version]
        context.minimum_version = context.maximum_version = version
    return context


async def echo_stream(args, messages):
    """Echo over TCP, TLS or a unix socket; returns the echoes and the TLS
    version (None without TLS)."""
    if args.transport == "unix":
        reader, writer = await asyncio.open_unix_connection(args.path)
    elif args.transport == "tls":
        reader, writer = await asyncio.open_connection(
            args.host, args.port, ssl=client_context(args),
            server_hostname=args.server_hostname or args.host)
    else:
        reader, writer = await asyncio.open_connection(args.host, args.port)

    async def send(message):
        writer.write(message)
        await writer.drain()

    echoes = []
    try:
        for message in messages:
            # Send and receive at once: a server that stops reading while we
            # do not read its echo (flow control) would otherwise wait on us.
            sending = asyncio.create_task(send(message))
            try:
                echoes.append(await reader.readexactly(len(message)))
            except BaseException:
                sending.cancel()
                raise
            await sending
        if writer.can_write_eof():  # TCP and unix: EOF; the server closes too
            writer.write_eof()
            if await reader.read(1):
                raise ConnectionError("the server sent more than the echo")
        ssl_object = writer.get_extra_info("ssl_object")
        writer.close()
        await writer.wait_closed()
    finally:
        writer.close()
    return echoes, ssl_object and ssl_object.version()


async def echo_udp(args, messages):
    """Echo over UDP, one datagram at a time; returns the echoes and None."""
    loop = asyncio.get_running_loop()
    received = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            received.put_nowait(data)

        def error_received(self, exc):  # e.g. nobody listens on that port
            received.put_nowait(exc)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=(args.host, args.port))
    echoes = []
    try:
        for message in messages:
            transport.sendto(message)
            echo = await received.get()
            if isinstance(echo, Exception):
                raise echo
            echoes.append(echo)
    finally:
        transport.close()
    return echoes, None


async def main(args):
    messages = [os.urandom(args.size) for _ in range(args.count)]
    start = time.perf_counter()
    try:
        async with asyncio.timeout(args.timeout):
            if args.transport == "udp":
                echoes, tls = await echo_udp(args, messages)
            else:
                echoes, tls = await echo_stream(args, messages)
    except TimeoutError:
        print(f"error: no complete echo within {args.timeout} s", file=sys.stderr)
        return 1
    except asyncio.IncompleteReadError as exc:
        print(f"error: the server closed the connection {len(exc.partial)} bytes "
              f"into an echo of {exc.expected}", file=sys.stderr)
        return 1
    except ssl.SSLCertVerificationError as exc:
        print(f"error: {exc.verify_message}; --cafile CERT trusts a self-signed "
              "certificate, --insecure skips the checks", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    for i, (message, echo) in enumerate(zip(messages, echoes)):
        if echo != message:
            print(f"error: message {i}: sent {len(message)} bytes, "
                  f"the echo ({len(echo)} bytes) differs", file=sys.stderr)
            return 1
    tls = f" ({tls})" if tls else ""
    print(f"ok: {args.count} messages of {args.size} bytes echoed byte-exact "
          f"over {args.transport}{tls} in {elapsed:.3f} s")
    return 0


if __name__ == "__main__":
    parser = _common.make_parser("Echo client", port=None)
    parser.add_argument("--transport", choices=("tcp", "tls", "unix", "udp"), default="tcp")
    parser.add_argument("--host", default="127.0.0.1", help="server (default: %(default)s)")
    parser.add_argument("--port", type=int, help="server port (default: 8888, 8443 for tls)")
    parser.add_argument("--path", default=_common.UNIX_PATH,
                        help="unix socket (default: %(default)s)")
    parser.add_argument("--count", type=int, default=10, help="messages (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1024, help="bytes each (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds for the whole exchange (default: %(default)s)")
    parser.add_argument("--cafile", help="TLS: also trust the certificate(s) in this PEM file")
    parser.add_argument("--insecure", action="store_true",
                        help="TLS: do not verify the server's certificate (testing only)")
    parser.add_argument("--server-hostname", help="TLS: name to check the certificate "
                                                  "against (default: --host)")
    parser.add_argument("--tls-version", choices=("1.2", "1.3"), help="TLS: use only this version")
    args = _common.parse_args(parser)
    if args.port is None:
        args.port = 8443 if args.transport == "tls" else 8888
    if args.count < 0 or args.size < 0:
        parser.error("--count and --size must be 0 or more")
    if args.transport == "udp" and not 0 < args.size <= UDP_MAX:
        # (asyncio drops empty datagrams before Python 3.13)
        parser.error(f"--size: a UDP datagram here carries 1 to {UDP_MAX} bytes")
    raise SystemExit(_common.run(main, args))
