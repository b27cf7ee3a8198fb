"""UDP echo server: loop.create_datagram_endpoint and an
asyncio.DatagramProtocol; every datagram goes back to its sender.

    python examples/echo_udp.py                           # 127.0.0.1:8888, wfcloop
    python examples/echo_udp.py --port 0 --pollers 2      # any free port
    python examples/echo_udp.py --loop asyncio            # or --loop uvloop
    python examples/echo_client.py --transport udp --port 8888

An empty datagram is echoed from Python 3.13 on; the asyncio and wfcloop
loops of earlier versions drop empty datagrams in transport.sendto().

Prints ``listening on HOST:PORT (LOOP)`` once it receives; Ctrl-C or SIGTERM
closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio

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
        _common.announce([transport.get_extra_info("socket")])
        await stop.wait()
    finally:
        transport.close()


if __name__ == "__main__":
    parser = _common.make_parser("UDP echo server (asyncio.DatagramProtocol)", port=8888)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
