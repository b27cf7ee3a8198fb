"""Exception handler API, bad arguments (same type and message as the
stdlib loop) and debug mode (slow callbacks, never-awaited coroutines,
thread checks), differential against the stdlib loop."""
import asyncio
import logging
import socket
import sys
import time
import warnings

from _differential import Raised, acall, assert_all, assert_same, on_each, outcome, run_on_each


def test_exception_handler_api(no_leaks):
    def scenario(loop):
        seen = []
        out = [loop.get_exception_handler()]

        def handler(lp, context):
            seen.append((lp is loop, context["message"], type(context.get("exception")).__name__,
                         sorted(k for k in context if k not in ("exception",))))

        loop.set_exception_handler(handler)
        out.append(loop.get_exception_handler() is handler)
        loop.call_soon(lambda: 1 / 0)
        loop.call_soon(loop.stop)
        loop.run_forever()
        loop.call_exception_handler({"message": "custom", "extra": 1})
        out.append(seen)
        out.append(outcome(loop.set_exception_handler, 42))
        # A failing handler: the default handler logs both; nothing raises.
        loop.set_exception_handler(lambda lp, ctx: 1 / 0)
        logging.disable(logging.CRITICAL)
        try:
            loop.call_exception_handler({"message": "again"})
        finally:
            logging.disable(logging.NOTSET)
        loop.set_exception_handler(None)
        out.append(loop.get_exception_handler())
        return out

    ref = assert_same(on_each(scenario))
    assert ref[0] is None and ref[1] is True
    assert ref[2][0][:3] == (True, "Exception in callback <lambda>()", "ZeroDivisionError") or \
        ref[2][0][1].startswith("Exception in callback")
    assert ref[2][1] == (True, "custom", "NoneType", ["extra", "message"])
    assert ref[3] == Raised(TypeError("A callable object or None is expected, got 42"))
    assert ref[4] is None


def test_bad_arguments_same_type_and_message(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        s = socket.socket()
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            return [
                await acall(loop.create_connection, asyncio.Protocol, "127.0.0.1", 80, sock=s),
                await acall(loop.create_connection, asyncio.Protocol),
                await acall(loop.create_connection, asyncio.Protocol, "127.0.0.1", 80, happy_eyeballs_delay=0.1, sock=s),
                await acall(loop.create_server, asyncio.Protocol, "127.0.0.1", 0, sock=s),
                await acall(loop.create_server, asyncio.Protocol),
                await acall(loop.create_server, asyncio.Protocol, "127.0.0.1", 0, ssl=True),
                await acall(loop.create_connection, asyncio.Protocol, "127.0.0.1", 80, ssl=object()),
                await acall(loop.connect_accepted_socket, asyncio.Protocol, udp),
                outcome(loop.call_later, "1", print),
                outcome(loop.call_at, None, print),
                await acall(loop.getaddrinfo, "127.0.0.1", 80, family="x"),
                await acall(loop.run_in_executor, None, None),
                outcome(loop.create_task, None),
            ]
        finally:
            s.close()
            udp.close()

    ref = assert_same(run_on_each(scenario))
    assert ref[0] == Raised(ValueError("host/port and sock can not be specified at the same time"))
    assert ref[1] == Raised(ValueError("host and port was not specified and no sock specified"))
    assert ref[2] == Raised(ValueError("host/port and sock can not be specified at the same time"))
    assert ref[3] == Raised(ValueError("host/port and sock can not be specified at the same time"))
    assert ref[4] == Raised(ValueError("Neither host/port nor sock were specified"))
    assert ref[5] == Raised(TypeError("ssl argument must be an SSLContext or None"))
    assert ref[7].type is ValueError and ref[7].message.startswith("A Stream Socket was expected")
    assert ref[8].type is TypeError and ref[9].type is TypeError


def test_sock_methods_check_their_socket_in_debug_mode(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        s = socket.socket()  # blocking
        try:
            return [await acall(loop.sock_recv, s, 10),
                    await acall(loop.sock_sendall, s, b"x"),
                    await acall(loop.sock_accept, s),
                    await acall(loop.sock_connect, s, ("127.0.0.1", 9))]
        finally:
            s.close()

    blocking = Raised(ValueError("the socket must be non-blocking"))
    assert_all(run_on_each(scenario, debug=True), [blocking] * 4)


def test_exception_in_callback_message_shows_arguments_as_asyncio_does(no_leaks):
    """The message of a failing callback names its arguments where
    asyncio's Handle._run does: always on 3.11 and 3.12, in debug mode only
    on 3.13+ (whose _format_callback_source hides them otherwise)."""
    def boom(*args):
        raise ZeroDivisionError("boom")

    def scenario(loop):
        messages = []
        loop.set_exception_handler(lambda lp, context: messages.append(context["message"]))
        loop.call_soon(boom, 1, "x")
        loop.call_later(0, boom, 2)
        loop.call_later(0.001, loop.stop)
        loop.run_forever()
        return [m.split(" at ")[0] for m in messages]

    hidden = sys.version_info >= (3, 13)
    for debug in (False, True):
        args = ("()", "()") if hidden and not debug else ("(1, 'x')", "(2)")
        assert_all(on_each(scenario, debug=debug), [
            f"Exception in callback test_exception_in_callback_message_shows_arguments_as_asyncio_does."
            f"<locals>.boom{a}" for a in args])


def test_debug_mode_slow_callback_and_thread_checks(no_leaks, caplog):
    def scenario(loop):
        loop.slow_callback_duration = 0.05
        out = [loop.get_debug()]
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="asyncio"):
            loop.call_soon(time.sleep, 0.1)
            loop.call_soon(loop.stop)
            loop.run_forever()
        msgs = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
        out.append([m.split(" took ")[0] for m in msgs])
        # In debug mode call_soon refuses a coroutine and other threads.
        coro = asyncio.sleep(0)
        out.append(outcome(loop.call_soon, coro))
        coro.close()
        # From another thread while the loop runs.
        r = loop.run_until_complete(loop.run_in_executor(None, outcome, loop.call_soon, print))
        out.append(r if isinstance(r, Raised) else type(r).__name__)
        return out

    ref = assert_same(on_each(scenario, debug=True))
    assert ref[0] is True
    assert ref[1] == ["Executing <Handle sleep(0.1) created at " + ref[1][0].split(" created at ")[1]] if ref[1] else False
    assert ref[2] == Raised(TypeError("coroutines cannot be used with call_soon()"))
    # 3.11 does not check the thread here (only compared between loops).
    assert ref[3] in ("Handle", Raised(RuntimeError(
        "Non-thread-safe operation invoked on an event loop other than the current one")))


def test_debug_mode_never_awaited_coroutine_warning(no_leaks):
    async def forgotten():
        pass

    def scenario(loop):
        async def main():
            forgotten()  # never awaited
            await asyncio.sleep(0)

        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            loop.run_until_complete(main())
            import gc
            gc.collect()
        return [(x.category, str(x.message).split("\n")[0]) for x in w
                if "never awaited" in str(x.message)]

    ref = assert_same(on_each(scenario, debug=True))
    assert ref and ref[0][0] is RuntimeWarning
    assert ref[0][1].startswith("coroutine ") and "forgotten' was never awaited" in ref[0][1]
