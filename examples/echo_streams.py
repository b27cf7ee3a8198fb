"""TCP echo server on asyncio's streams: asyncio.start_server with a
StreamReader/StreamWriter per client.

    python examples/echo_streams.py                       # 127.0.0.1:8888, wfcloop
    python examples/echo_streams.py --port 0 --pollers 2  # any free port
    python examples/echo_streams.py --loop asyncio        # or --loop uvloop
    python examples/echo_client.py --port 8888            # talk to it

Prints ``listening on HOST:PORT (LOOP)`` once it accepts connections; Ctrl-C
or SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio

import _common


async def echo(reader, writer):
    """Write back what the client sends, until its EOF."""
    try:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()  # wait while the client is not reading
    except ConnectionError:
        pass  # the client went away (or we dropped it at shutdown)
    finally:
        writer.close()
        try:
            await writer.wait_closed()  # takes the close's error, if any
        except ConnectionError:
            pass


async def main(args):
    stop = _common.stop_event()
    clients = {}  # task -> writer

    def connected(reader, writer):
        # A plain function, not a coroutine function: the task is ours to
        # track (start_server would make one and log it if cancelled).
        task = asyncio.create_task(echo(reader, writer))
        clients[task] = writer
        task.add_done_callback(clients.pop)

    server = await asyncio.start_server(connected, args.host, args.port,
                                        backlog=_common.BACKLOG)
    _common.announce(server.sockets)
    await stop.wait()
    server.close()  # stop listening
    for writer in clients.values():
        writer.transport.abort()  # drop the clients still connected
    await asyncio.gather(*clients)  # and let their echo() return


if __name__ == "__main__":
    parser = _common.make_parser("TCP echo server (asyncio streams)", port=8888)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
