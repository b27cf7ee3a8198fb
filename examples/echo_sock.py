"""TCP echo server on the loop's low-level socket API: non-blocking sockets
with loop.sock_accept, loop.sock_recv and loop.sock_sendall; one task per
client.

    python examples/echo_sock.py                          # 127.0.0.1:8888, wfcloop
    python examples/echo_sock.py --port 0 --pollers 2     # any free port
    python examples/echo_sock.py --loop asyncio           # or --loop uvloop
    python examples/echo_client.py --port 8888            # talk to it

Prints ``listening on HOST:PORT (LOOP)`` once it accepts connections; Ctrl-C
or SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio
import socket
import sys

import _common


async def echo(loop, conn):
    with conn:
        try:
            while data := await loop.sock_recv(conn, 64 * 1024):
                await loop.sock_sendall(conn, data)  # waits while the client is not reading
        except ConnectionError:
            pass  # the client went away


async def serve(loop, listener, tasks):
    while True:
        try:
            conn, _ = await loop.sock_accept(listener)
        except OSError as exc:  # e.g. EMFILE, out of fds: retry, as create_server does
            print(f"accept: {exc}", file=sys.stderr)
            await asyncio.sleep(0.1)
            continue
        conn.setblocking(False)
        task = asyncio.create_task(echo(loop, conn))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = _common.stop_event()
    family, _, _, _, addr = (await loop.getaddrinfo(
        args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE))[0]
    with socket.create_server(addr, family=family, backlog=_common.BACKLOG) as listener:  # SO_REUSEADDR on
        listener.setblocking(False)
        _common.announce([listener])
        tasks = set()
        tasks.add(asyncio.create_task(serve(loop, listener, tasks)))
        await stop.wait()
        for task in list(tasks):  # the acceptor and every client
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    parser = _common.make_parser("TCP echo server (loop.sock_* API)", port=8888)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
