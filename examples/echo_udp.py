"""UDP echo server: loop.create_datagram_endpoint and an
asyncio.DatagramProtocol; every datagram goes back to its sender.

    python examples/echo_udp.py                           # 127.0.0.1:8888, wfcloop
    python examples/echo_udp.py --port 0 --pollers 2      # any free port
    python examples/echo_udp.py --loop asyncio            # or --loop uvloop
    python examples/echo_client.py --transport udp --port 8888
    python examples/echo_udp.py --rcvbuf 4194304          # a larger receive buffer

--rcvbuf sets the socket's SO_RCVBUF: the kernel drops the datagrams that
arrive while the buffer is full, and its default (about 208 KiB) holds only
a few 64 KiB datagrams.  Linux caps it at net.core.rmem_max (and doubles
it for its bookkeeping).

An empty datagram is echoed from Python 3.13 on; the asyncio and wfcloop
loops of earlier versions drop empty datagrams in transport.sendto().

Prints ``listening on HOST:PORT (LOOP)`` once it receives; Ctrl-C or SIGTERM
closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio
import socket

import _common


class EchoDatagramProtocol(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)

    def error_received(self, exc):
        pass  # e.g. ICMP "port unreachable" for an echo to a client that left


async def main(args):
    loop = asyncio.get_running_loop()
    stop = _common.stop_event()
    transport, _ = await loop.create_datagram_endpoint(
        EchoDatagramProtocol, local_addr=(args.host, args.port))
    try:
        sock = transport.get_extra_info("socket")
        if args.rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf)
        _common.announce([sock])
        await stop.wait()
    finally:
        transport.close()


if __name__ == "__main__":
    parser = _common.make_parser("UDP echo server (asyncio.DatagramProtocol)", port=8888)
    parser.add_argument("--rcvbuf", type=int, metavar="BYTES",
                        help="the socket's SO_RCVBUF (default: the kernel's)")
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
