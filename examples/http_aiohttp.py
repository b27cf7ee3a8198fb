"""An aiohttp web application on wfcloop.

    python examples/http_aiohttp.py                        # 127.0.0.1:8080, wfcloop
    python examples/http_aiohttp.py --port 0 --pollers 2   # any free port
    python examples/http_aiohttp.py --loop asyncio         # or --loop uvloop
    python examples/http_aiohttp.py --certfile c.pem --keyfile k.pem   # HTTPS
    python examples/http_client_aiohttp.py --port 8080     # talk to it
    wrk -c 64 -d 10 http://127.0.0.1:8080/                 # load it

Routes:

    GET  /                 "Hello, World!" (text/plain; what a benchmark loads)
    GET  /stream?chunks=N&size=M
                           a chunked response: N chunks of M bytes, chunk i
                           being random.Random(i).randbytes(M)
    POST /echo             the request body, read as a stream and written
                           back as it arrives (chunked response)
    GET  /ws               websocket echo: each text or binary message is sent
                           back; the text message "close" closes
    GET  /info             JSON: the worker's pid, the running loop's class
                           and pollers, the client's address (a keep-alive
                           connection keeps its port)

Prints ``listening on HOST:PORT (LOOP)`` once it serves; Ctrl-C or SIGTERM
closes it (exit code 0).  ``make_app()`` builds the application alone, for
``gunicorn -k wfcloop.gunicorn.Worker http_aiohttp:make_app()`` (run with
``--chdir examples``) or your own AppRunner.  Needs ``aiohttp`` and
``_common.py`` from this directory.
"""
import asyncio
import os
import random
import socket

from aiohttp import WSMsgType, web

import _common

MAX_CHUNKS = 10_000
MAX_CHUNK_SIZE = 1 << 20


def stream_chunk(i, size):
    """Chunk ``i`` of /stream: deterministic, so a client can check it."""
    return random.Random(i).randbytes(size)


async def hello(request):
    return web.Response(text="Hello, World!")


def _int_query(request, name, default, maximum):
    try:
        value = int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer\n")
    if not 0 <= value <= maximum:
        raise web.HTTPBadRequest(text=f"{name} must be 0 to {maximum}\n")
    return value


async def stream(request):
    chunks = _int_query(request, "chunks", 16, MAX_CHUNKS)
    size = _int_query(request, "size", 64 * 1024, MAX_CHUNK_SIZE)
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for i in range(chunks):
        await response.write(stream_chunk(i, size))  # waits while the client is slow
    await response.write_eof()
    return response


async def echo(request):
    response = web.StreamResponse(headers={
        "Content-Type": request.headers.get("Content-Type", "application/octet-stream")})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for chunk in request.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response


async def websocket(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            if msg.data == "close":
                await ws.close()
            else:
                await ws.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


async def info(request):
    loop = asyncio.get_running_loop()
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return web.json_response({
        "pid": os.getpid(),
        "loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
        "pollers": getattr(loop, "pollers", None),
        "peer": list(peer[:2]) if peer else None,
    })


def make_app():
    app = web.Application()
    app.add_routes([
        web.get("/", hello),
        web.get("/stream", stream),
        web.post("/echo", echo),
        web.get("/ws", websocket),
        web.get("/info", info),
    ])
    return app


def listening_socket(host, port):
    """A listening TCP socket on ``host``:``port`` (IPv4 or IPv6)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]
    return socket.create_server((host, port), family=family, backlog=1024)


async def main(args):
    stop = _common.stop_event()
    runner = web.AppRunner(make_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        sock = listening_socket(args.host, args.port)
        site = web.SockSite(runner, sock, ssl_context=_common.server_ssl_context(args))
        await site.start()
        _common.announce([sock])
        await stop.wait()
    finally:
        await runner.cleanup()  # closes the listener, then the connections


if __name__ == "__main__":
    parser = _common.make_parser("aiohttp web application", port=8080)
    _common.add_tls_options(parser)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
