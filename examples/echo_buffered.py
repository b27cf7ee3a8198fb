"""TCP echo server on asyncio.BufferedProtocol: the transport reads straight
into one buffer per connection, allocated once and reused for every read.

    python examples/echo_buffered.py                      # 127.0.0.1:8888, wfcloop
    python examples/echo_buffered.py --port 0 --pollers 2 # any free port
    python examples/echo_buffered.py --loop uvloop        # or --loop asyncio
    python examples/echo_client.py --port 8888            # talk to it

Prints ``listening on HOST:PORT (LOOP)`` once it accepts connections; Ctrl-C
or SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio

import _common


class EchoBufferedProtocol(asyncio.BufferedProtocol):
    def __init__(self, connections, size=64 * 1024):
        self.connections = connections
        self.buffer = memoryview(bytearray(size))

    def connection_made(self, transport):
        self.transport = transport
        self.connections.add(transport)

    def get_buffer(self, sizehint):
        return self.buffer  # the transport fills it, then calls buffer_updated

    def buffer_updated(self, nbytes):
        # write() may keep what it cannot send at once, and the next read
        # overwrites the buffer: hand it a copy.
        self.transport.write(bytes(self.buffer[:nbytes]))

    def eof_received(self):
        return False  # the transport closes itself after flushing the echo

    def connection_lost(self, exc):
        self.connections.discard(self.transport)

    # Flow control: stop reading while the client does not read its echo.
    def pause_writing(self):
        self.transport.pause_reading()

    def resume_writing(self):
        self.transport.resume_reading()


async def main(args):
    loop = asyncio.get_running_loop()
    stop = _common.stop_event()
    connections = set()
    server = await loop.create_server(lambda: EchoBufferedProtocol(connections),
                                      args.host, args.port, backlog=_common.BACKLOG)
    _common.announce(server.sockets)
    await stop.wait()
    server.close()  # stop listening
    for transport in list(connections):
        transport.abort()  # drop the clients still connected


if __name__ == "__main__":
    parser = _common.make_parser("TCP echo server (asyncio.BufferedProtocol)", port=8888)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
