"""add_reader/remove_reader/add_writer/remove_writer, differential against
the stdlib loop: return values, replacing a callback, removing from inside
the callback, level-triggered repeats, closed and unpollable fds."""
import asyncio
import os
import socket
import tempfile

from _differential import Raised, assert_all, assert_same, on_each, outcome


def _run_until(loop, pred, limit=10.0):
    """Run loop iterations until pred() (bounded, against hangs only)."""
    deadline = loop.time() + limit
    while not pred() and loop.time() < deadline:
        loop.call_soon(loop.stop)
        loop.run_forever()


def test_return_values(no_leaks):
    def scenario(loop):
        a, b = socket.socketpair()
        with a, b:
            return [
                loop.remove_reader(a), loop.remove_writer(a),
                loop.add_reader(a, print), loop.add_writer(a, print),
                loop.remove_reader(a), loop.remove_reader(a),
                loop.remove_writer(a.fileno()), loop.remove_writer(a),
                loop.add_reader(a.fileno(), print), loop.remove_reader(a),
            ]

    assert_all(on_each(scenario), [False, False, None, None, True, False, True, False, None, True])


def test_level_triggered_reader_and_writer_repeat(no_leaks):
    def scenario(loop):
        a, b = socket.socketpair()
        counts = {"r": 0, "w": 0}
        with a, b:
            b.send(b"unread")

            def on_read():
                counts["r"] += 1  # never consumes: stays readable
                if counts["r"] == 5:
                    loop.remove_reader(a)

            def on_write():
                counts["w"] += 1
                if counts["w"] == 7:
                    loop.remove_writer(a)

            loop.add_reader(a, on_read)
            loop.add_writer(a, on_write)
            _run_until(loop, lambda: counts["r"] >= 5 and counts["w"] >= 7)
            for _ in range(3):  # no more calls once removed
                loop.call_soon(loop.stop)
                loop.run_forever()
            return dict(counts), loop.remove_reader(a), loop.remove_writer(a)

    assert_all(on_each(scenario), ({"r": 5, "w": 7}, False, False))


def test_replacing_a_reader_and_removing_inside_the_callback(no_leaks):
    def scenario(loop):
        a, b = socket.socketpair()
        calls = []
        with a, b:
            loop.add_reader(a, calls.append, "old")
            loop.add_reader(a, lambda: (calls.append("new"), calls.append(loop.remove_reader(a))))
            b.send(b"x")
            _run_until(loop, lambda: len(calls) >= 2)
            for _ in range(3):
                loop.call_soon(loop.stop)
                loop.run_forever()
            # Remove the writer from inside its callback, keep the reader.
            loop.add_reader(a, lambda: (calls.append("reader"), loop.remove_reader(a)))
            loop.add_writer(a, lambda: (calls.append("writer"), calls.append(loop.remove_writer(a))))
            _run_until(loop, lambda: "reader" in calls and "writer" in calls)
            for _ in range(3):
                loop.call_soon(loop.stop)
                loop.run_forever()
            return calls[:2] + sorted(calls[2:], key=str)

    assert_all(on_each(scenario), ["new", True, True, "reader", "writer"])


def test_reader_and_writer_on_one_fd_are_independent(no_leaks):
    def scenario(loop):
        a, b = socket.socketpair()
        seen = []
        with a, b:
            loop.add_writer(a, lambda: (seen.append("w"), loop.remove_writer(a)))
            loop.add_reader(a, lambda: (seen.append(a.recv(10)), loop.remove_reader(a)))
            _run_until(loop, lambda: "w" in seen)
            out = [seen[:]]
            b.send(b"data")
            _run_until(loop, lambda: len(seen) == 2)
            out.append(seen[:])
            return out

    assert_all(on_each(scenario), [["w"], ["w", b"data"]])


def test_reader_on_a_closed_fd_and_on_a_closed_socket(no_leaks):
    def scenario(loop):
        a, b = socket.socketpair()
        fd = a.fileno()
        a.close()
        b.close()
        out = [outcome(loop.add_reader, fd, print),
               outcome(loop.add_writer, fd, print),
               loop.remove_reader(fd), loop.remove_writer(fd),
               outcome(loop.add_reader, a, print),
               outcome(loop.remove_reader, a),
               outcome(loop.add_reader, -1, print),
               outcome(loop.add_reader, "nonsense", print)]
        return out

    results = on_each(scenario)
    ref = assert_same(results)
    import errno
    assert isinstance(ref[0], Raised) and ref[0].type is OSError and ref[0].exc.errno == errno.EBADF
    assert ref[2:4] == [False, False]
    assert ref[4] == Raised(ValueError("Invalid file descriptor: -1"))
    assert ref[6] == Raised(ValueError("Invalid file descriptor: -1"))
    assert ref[7].type is ValueError


def test_fd_closed_while_registered_then_removed(no_leaks):
    # The stdlib requires remove_reader before close; doing it after still
    # returns True (the kernel already forgot the fd) and the fd number can
    # be reused right away.
    def scenario(loop):
        a, b = socket.socketpair()
        fd = a.fileno()
        loop.add_reader(fd, print)
        a.close()
        b.close()
        out = [loop.remove_reader(fd)]
        c, d = socket.socketpair()
        with c, d:
            out.append(c.fileno() == fd)
            got = []
            loop.add_reader(c, lambda: (got.append(c.recv(10)), loop.remove_reader(c)))
            d.send(b"ok")
            _run_until(loop, lambda: got)
            out.append(got)
        return out

    assert_all(on_each(scenario), [True, True, [b"ok"]])


def test_reader_on_a_regular_file_is_refused(no_leaks):
    def scenario(loop):
        with tempfile.TemporaryFile() as f:
            r = outcome(loop.add_reader, f.fileno(), print)
            return r, loop.remove_reader(f.fileno())

    ref = assert_same(on_each(scenario))
    assert ref[0].type is PermissionError and ref[1] is False


def test_reader_on_an_fd_owned_by_a_transport_is_refused(no_leaks):
    async def scenario():
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        try:
            r = outcome(loop.add_reader, a.fileno(), print)
            w = outcome(loop.remove_writer, a.fileno())
            return (r.type, r.message.split(" is used by transport")[0] == f"File descriptor {a.fileno()}",
                    w.type)
        finally:
            transport.close()
            b.close()
            await asyncio.sleep(0)

    from _differential import run_on_each
    assert_all(run_on_each(scenario), (RuntimeError, True, RuntimeError))


def test_pipe_reader_sees_eof_after_writer_closes(no_leaks):
    def scenario(loop):
        r, w = os.pipe()
        got = []

        def on_read():
            data = os.read(r, 100)
            got.append(data)
            if not data:
                loop.remove_reader(r)

        loop.add_reader(r, on_read)
        os.write(w, b"abc")
        _run_until(loop, lambda: got)
        os.close(w)
        _run_until(loop, lambda: got[-1:] == [b""])
        os.close(r)
        return got

    assert_all(on_each(scenario), [b"abc", b""])
