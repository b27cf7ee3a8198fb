"""A minimal HTTP/1.1 server on a bare asyncio.Protocol: what a loop costs
under HTTP with no framework in the way (the benchmark's "raw" row).

    python examples/http_raw.py                            # 127.0.0.1:8080, wfcloop
    python examples/http_raw.py --port 0 --loop uvloop     # any free port
    python examples/http_raw.py --certfile c.pem --keyfile k.pem   # HTTPS
    wrk -c 100 -d 5 http://127.0.0.1:8080/                 # load it

Routes (GET or HEAD; anything else is 405, an unknown path 404):

    /       "Hello, World!" (text/plain)
    /64k    65,536 bytes of b"x" (what the 64 KiB benchmark row loads)

Keep-alive unless the request says ``Connection: close`` (or is HTTP/1.0
without ``keep-alive``); pipelined requests are answered in order.  Request
bodies are not read: a request with a body gets 400 and the connection is
closed.  This is a benchmark's server, not a web server: use aiohttp or
uvicorn for real work.

Prints ``listening on HOST:PORT (LOOP)`` once it serves; Ctrl-C or SIGTERM
closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio

import _common

BODIES = {b"/": b"Hello, World!", b"/64k": b"x" * 65536}
MAX_HEAD = 16 * 1024


def response(status, body, keep_alive, head_only=False):
    connection = b"keep-alive" if keep_alive else b"close"
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: " + connection + b"\r\n\r\n"
            + (b"" if head_only else body))


class HTTPProtocol(asyncio.Protocol):
    """Parses request heads as they arrive and answers each one at once."""

    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        buf = self.pending + data if self.pending else data
        start = 0
        while True:
            end = buf.find(b"\r\n\r\n", start)
            if end < 0:
                break
            if not self.answer(buf[start:end]):
                self.pending = b""
                return
            start = end + 4
        self.pending = buf[start:]
        if len(self.pending) > MAX_HEAD:
            self.transport.write(response(b"431 Request Header Fields Too Large", b"", False))
            self.transport.close()

    def answer(self, head):
        """Answer one request head; False once the connection is closing."""
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self.transport.write(response(b"400 Bad Request", b"", False))
            self.transport.close()
            return False
        method, path, version = parts
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        connection = headers.get(b"connection", b"")
        keep_alive = (connection != b"close" if version == b"HTTP/1.1"
                      else connection == b"keep-alive")
        if headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers:
            self.transport.write(response(b"400 Bad Request", b"", False))
            self.transport.close()
            return False
        body = BODIES.get(path.partition(b"?")[0])
        if method not in (b"GET", b"HEAD"):
            self.transport.write(response(b"405 Method Not Allowed", b"", keep_alive))
        elif body is None:
            self.transport.write(response(b"404 Not Found", b"", keep_alive))
        else:
            self.transport.write(response(b"200 OK", body, keep_alive, method == b"HEAD"))
        if not keep_alive:
            self.transport.close()
        return keep_alive


async def main(args):
    stop = _common.stop_event()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(HTTPProtocol, args.host, args.port,
                                      backlog=_common.BACKLOG,
                                      ssl=_common.server_ssl_context(args))
    _common.announce(server.sockets)
    try:
        await stop.wait()
    finally:
        server.close()
        try:   # 3.12+ waits for open connections too: not forever
            await asyncio.wait_for(server.wait_closed(), 1.0)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    parser = _common.make_parser("minimal HTTP/1.1 server on asyncio.Protocol", port=8080)
    _common.add_tls_options(parser)
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
