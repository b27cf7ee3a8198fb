"""asgi_app.py served by uvicorn (with httptools) on the loop of your choice:
the stack the benchmark's "uvicorn" row loads.

    python examples/http_uvicorn.py                         # 127.0.0.1:8000, wfcloop
    python examples/http_uvicorn.py --port 0 --loop uvloop  # any free port
    python examples/http_uvicorn.py --certfile c.pem --keyfile k.pem   # HTTPS
    wrk -c 100 -d 5 http://127.0.0.1:8000/

The usual way to run uvicorn on wfcloop is its own command line,
``uvicorn asgi_app:app --app-dir examples --loop wfcloop:new_event_loop``
(see asgi_app.py); this script instead runs ``uvicorn.Server.serve()`` on
the loop ``--loop`` starts, on a socket it made itself, so that it can print
``listening on HOST:PORT (LOOP)`` for whoever started it with ``--port 0``.
Ctrl-C or SIGTERM closes it (exit code 0).  Needs uvicorn and httptools
(``--http h11`` for uvicorn's pure-Python parser), and ``_common.py`` and
``asgi_app.py`` from this directory.
"""
import asyncio
import socket

import uvicorn

import _common
from asgi_app import app


async def main(args):
    stop = _common.stop_event()
    family, kind, proto, _, address = socket.getaddrinfo(
        args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    # proto IPPROTO_TCP, as loop.create_server makes it: asyncio sets
    # TCP_NODELAY only on sockets that say so (socket.create_server's say
    # 0), and without it uvicorn's two writes per response meet the peer's
    # delayed ACK: 40 ms a request.
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(_common.BACKLOG)
    config = uvicorn.Config(app, http=args.http, lifespan="off", access_log=False,
                            log_level="warning", ssl_certfile=args.certfile,
                            ssl_keyfile=args.keyfile)
    server = uvicorn.Server(config)
    # uvicorn installs its own SIGINT/SIGTERM handlers only from run():
    # serve() leaves ours in place, and should_exit is how it is stopped.
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if serving.done():
            return serving.result()
        await asyncio.sleep(0.01)
    _common.announce([sock])
    await stop.wait()
    server.should_exit = True
    await serving


if __name__ == "__main__":
    parser = _common.make_parser("asgi_app.py under uvicorn", port=8000)
    _common.add_tls_options(parser)
    parser.add_argument("--http", choices=("httptools", "h11"), default="httptools",
                        help="uvicorn's HTTP parser (default: %(default)s)")
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
