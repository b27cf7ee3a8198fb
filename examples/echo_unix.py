"""Unix domain socket echo server: asyncio.start_unix_server and streams.

    python examples/echo_unix.py --path /tmp/echo.sock
    python examples/echo_unix.py --path /tmp/echo.sock --loop asyncio
    python examples/echo_client.py --transport unix --path /tmp/echo.sock

The socket file gets the permissions your umask allows (``umask 077`` for
your user only) and is removed when the server stops.  A socket file left
behind by a server that died is replaced; one that a live server listens on
is not (exit code 1).  Default path: $XDG_RUNTIME_DIR/wfcloop-echo.sock, or
the temp dir where that variable is unset.

Prints ``listening on PATH (LOOP)`` once it accepts connections; Ctrl-C or
SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio
import errno
import os
import socket
import stat

import _common


def refuse_if_in_use(path):
    """Raise OSError(EADDRINUSE) if a server is listening on ``path``.

    (start_unix_server replaces any socket file at ``path``, live or not.)
    """
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            return  # nothing there; or not a socket, which bind() refuses
    except FileNotFoundError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            return  # stale: nobody listens there
    raise OSError(errno.EADDRINUSE, f"a server is listening on {path}")


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


async def main(args):
    stop = _common.stop_event()
    clients = {}  # task -> writer

    def connected(reader, writer):
        # A plain function, not a coroutine function: the task is ours to
        # track (start_server would make one and log it if cancelled).
        task = asyncio.create_task(echo(reader, writer))
        clients[task] = writer
        task.add_done_callback(clients.pop)

    refuse_if_in_use(args.path)
    server = await asyncio.start_unix_server(connected, args.path)
    inode = os.stat(args.path).st_ino
    try:
        _common.announce(server.sockets)
        await stop.wait()
        server.close()  # stop listening
        for writer in clients.values():
            writer.transport.abort()  # drop the clients still connected
        await asyncio.gather(*clients)  # and let their echo() return
    finally:
        # Remove the socket file, unless another server has replaced it.
        try:
            if os.stat(args.path).st_ino == inode:
                os.unlink(args.path)
        except FileNotFoundError:
            pass  # Python 3.13+ removes it itself when the server closes


if __name__ == "__main__":
    parser = _common.make_parser("Unix domain socket echo server (asyncio streams)")
    parser.add_argument("--path", default=_common.UNIX_PATH,
                        help="socket file (default: %(default)s)")
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
