"""TCP echo server on asyncio's callback API: loop.create_server and an
asyncio.Protocol.

    python examples/echo_protocol.py                      # 127.0.0.1:8888, wfcloop
    python examples/echo_protocol.py --port 0 --pollers 2 # any free port
    python examples/echo_protocol.py --loop uvloop        # or --loop asyncio
    python examples/echo_client.py --port 8888            # talk to it
    python examples/echo_protocol.py --certfile c.pem --keyfile k.pem   # over TLS

Prints ``listening on HOST:PORT (LOOP)`` once it accepts connections; Ctrl-C
or SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio

import _common


class EchoProtocol(asyncio.Protocol):
    """Writes back whatever it receives; closes once the client has sent EOF
    and everything was echoed."""

    def __init__(self, connections):
        self.connections = connections

    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(transport)

    def data_received(self, data):
        self.transport.write(data)

    def eof_received(self):
        return False  # the transport closes itself after flushing the echo

    def connection_lost(self, exc):
        self.connections.discard(self.transport)

    # Flow control: while the client does not read its echo, stop reading
    # what it sends, so the write buffer cannot grow without bound.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def main(args):
    loop = asyncio.get_running_loop()
    stop = _common.stop_event()
    connections = set()
    server = await loop.create_server(lambda: EchoProtocol(connections),
                                      args.host, args.port, backlog=_common.BACKLOG,
                                      ssl=_common.server_ssl_context(args))
    _common.announce(server.sockets)
    await stop.wait()
    server.close()  # stop listening
    for transport in list(connections):
        transport.abort()  # drop the clients still connected


if __name__ == "__main__":
    parser = _common.make_parser("TCP echo server (asyncio.Protocol)", port=8888)
    _common.add_tls_options(parser)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
