"""An aiohttp client session on wfcloop, run against examples/http_aiohttp.py:
--requests GETs over one keep-alive connection, a streamed download, a
streamed upload echoed back, and websocket echoes; each answer is checked
byte for byte.  Prints one summary line (exit code 0), or what went wrong
(exit code 1).

    python examples/http_aiohttp.py --port 8080 &
    python examples/http_client_aiohttp.py --port 8080
    python examples/http_client_aiohttp.py --port 8080 --requests 1000 --loop asyncio

Needs ``aiohttp`` and ``_common.py`` from this directory.
"""
import asyncio
import os
import sys
import time

import aiohttp

import _common
from http_aiohttp import stream_chunk


class Mismatch(Exception):
    pass


def check(what, got, expected):
    if got != expected:
        if isinstance(got, bytes) and isinstance(expected, bytes):
            raise Mismatch(f"{what}: got {len(got)} bytes, expected {len(expected)} "
                           "(or they differ)")
        raise Mismatch(f"{what}: got {got!r}, expected {expected!r}")


async def upload(data, piece):
    """The request body as an async generator: sent with chunked encoding."""
    for start in range(0, len(data), piece):
        yield data[start:start + piece]
        await asyncio.sleep(0)


async def exercise(session, base, args):
    # Keep-alive: the server sees every request from the same client port.
    peers = set()
    for i in range(args.requests):
        async with session.get(base + "/") as resp:
            check(f"GET / #{i} status", resp.status, 200)
            check(f"GET / #{i} body", await resp.text(), "Hello, World!")
        async with session.get(base + "/info") as resp:
            peers.add(tuple((await resp.json())["peer"]))
    check("connections used (keep-alive)", len(peers), 1)

    # A chunked download, read as it streams in.
    chunks, size = 8, 100_000
    async with session.get(base + "/stream", params={"chunks": chunks, "size": size}) as resp:
        check("GET /stream status", resp.status, 200)
        check("GET /stream encoding", resp.headers.get("Transfer-Encoding"), "chunked")
        body = bytearray()
        async for piece in resp.content.iter_chunked(32 * 1024):
            body += piece
    check("GET /stream body", bytes(body),
          b"".join(stream_chunk(i, size) for i in range(chunks)))

    # A chunked upload, echoed back while it is being sent.
    data = os.urandom(args.size)
    async with session.post(base + "/echo", data=upload(data, 64 * 1024)) as resp:
        check("POST /echo status", resp.status, 200)
        check("POST /echo body", await resp.read(), data)

    # Websocket echo.
    async with session.ws_connect(base + "/ws") as ws:
        for message in ["hello", "wfcloop" * 1000]:
            await ws.send_str(message)
            check("websocket text echo", await ws.receive_str(), message)
        blob = os.urandom(200_000)
        await ws.send_bytes(blob)
        check("websocket binary echo", await ws.receive_bytes(), blob)
        await ws.send_str("close")
        msg = await ws.receive()
        check("websocket close", msg.type, aiohttp.WSMsgType.CLOSE)


async def main(args):
    base = f"http://{args.host}:{args.port}"
    if ":" in args.host:
        base = f"http://[{args.host}]:{args.port}"
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    # limit=1: one connection, reused for every request (keep-alive).
    async with aiohttp.ClientSession(timeout=timeout,
                                     connector=aiohttp.TCPConnector(limit=1)) as session:
        try:
            await exercise(session, base, args)
        except Mismatch as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
    loop = asyncio.get_running_loop()
    name = type(loop).__module__.partition(".")[0]
    print(f"ok: {args.requests} keep-alive requests, a streamed download, a {args.size}-byte "
          f"streamed upload echoed and websocket echoes, byte-exact, in "
          f"{time.perf_counter() - started:.2f} s ({name})")
    return 0


if __name__ == "__main__":
    parser = _common.make_parser("aiohttp client for http_aiohttp.py", port=8080,
                                 client=True)
    parser.add_argument("--requests", type=int, default=100,
                        help="GET requests over the keep-alive connection (default: %(default)s)")
    parser.add_argument("--size", type=int, default=1 << 20,
                        help="bytes to upload to /echo (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds for the whole run (default: %(default)s)")
    args = _common.parse_args(parser)
    if args.requests < 1 or args.size < 0:
        parser.error("--requests must be 1 or more, --size 0 or more")
    raise SystemExit(_common.run(main, args))
