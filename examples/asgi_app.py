"""A minimal ASGI application (no framework), to serve with uvicorn or
gunicorn on wfcloop.

    uvicorn asgi_app:app --app-dir examples --loop wfcloop:new_event_loop --port 8000
    gunicorn asgi_app:app --chdir examples -k wfcloop.gunicorn.UvicornWorker \\
        -w 2 --reuse-port --bind 127.0.0.1:8000

``--loop wfcloop:new_event_loop`` needs uvicorn 0.36 or later, which takes a
``module:attribute`` naming a loop factory; with older uvicorn call
``wfcloop.install()`` first and run ``uvicorn.run(app, loop="asyncio")``.

Routes:

    GET  /        "Hello, World!" (text/plain)
    GET  /info    JSON: the worker's pid, the running loop's class and pollers
    POST /echo    the request body, sent back (read as it streams in)
"""
import asyncio
import json
import os


async def _body(receive):
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send, status, body, content_type):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    path, method = scope["path"], scope["method"]
    if path == "/" and method == "GET":
        await _send(send, 200, b"Hello, World!", b"text/plain")
    elif path == "/info" and method == "GET":
        loop = asyncio.get_running_loop()
        info = {"pid": os.getpid(),
                "loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
                "pollers": getattr(loop, "pollers", None)}
        await _send(send, 200, json.dumps(info).encode(), b"application/json")
    elif path == "/echo" and method == "POST":
        body = await _body(receive)
        if body is not None:
            await _send(send, 200, body, b"application/octet-stream")
    else:
        await _send(send, 404, b"not found", b"text/plain")
