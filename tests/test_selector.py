"""EventPollSelector against selectors.EpollSelector, on real sockets and
pipes: the same keys, select() results, exceptions and messages, before
and after close(); an fd reused after close gets none of the old fd's
events; and the compiled loop reads the selector only through its API."""
import collections.abc
import os
import pathlib
import re
import selectors
import signal
import socket
import time
import unittest.mock

import pytest

import wfcloop
from wfcloop import _eventpoll_selector

ROOT = pathlib.Path(__file__).resolve().parent.parent
R, W = selectors.EVENT_READ, selectors.EVENT_WRITE

# The stdlib's selector, and ours in inline mode and with two pollers
# (adaptive off, so that the pollers really read the kernel).
MAKERS = {
    "stdlib": selectors.EpollSelector,
    "pollers=0": lambda: wfcloop.EventPollSelector(pollers=0),
    "pollers=2": lambda: wfcloop.EventPollSelector(pollers=2, adaptive=False),
}
OURS = [name for name in MAKERS if name != "stdlib"]


def outcome(call, *args):
    """What call(*args) gives, comparable across selectors: a key as its
    four fields, an exception as its type and message."""
    try:
        result = call(*args)
    except Exception as exc:
        return ("raises", type(exc).__name__, str(exc))
    return normal(result)


def normal(result):
    if isinstance(result, selectors.SelectorKey):
        return ("key", repr(result.fileobj), result.fd, result.events, result.data)
    if isinstance(result, list):
        # select()'s (key, events) pairs, by the key's data (the label the
        # scripts give each registration: fds may differ between runs)
        return sorted((repr(key.data), key.events, events) for key, events in result)
    return result


def ready(sel, timeout=1.0):
    """Every (key, events) ready now.  The stdlib's select() returns them
    all at once; with pollers, an fd re-armed by the last poll reaches the
    ready list a moment later, so select() again until a few polls in a row
    add nothing, each fd's events or'ed together."""
    found = {}
    result = sel.select(timeout)
    quiet = 0
    while result or (found and quiet < 3):
        added = False
        for key, events in result:
            old = found.get(key.fd, (key, 0))[1]
            if old | events != old or key.fd not in found:
                added = True
            found[key.fd] = (key, old | events)
        quiet = 0 if added else quiet + 1
        if quiet >= 3:
            break
        time.sleep(0.01)
        result = sel.select(0.02)
    return list(found.values())


def same_everywhere(script, with_endpoints=False):
    """script(sel) -> list of outcomes, run on each selector: all equal.
    with_endpoints: script(sel, *endpoints()), fresh ones for each run,
    made before the selector (so that their fds are the same each time)."""
    results = {}
    for name, make in MAKERS.items():
        ends = endpoints() if with_endpoints else ()
        sel = make()
        try:
            results[name] = script(sel, *ends)
        finally:
            sel.close()
            close_endpoints(ends)
    for name in OURS:
        assert results[name] == results["stdlib"], name
    return results["stdlib"]


def endpoints():
    """Two socketpairs and a pipe."""
    a, a_peer = socket.socketpair()
    b, b_peer = socket.socketpair()
    r, w = os.pipe()
    return a, a_peer, b, b_peer, r, w


def close_endpoints(ends):
    for end in ends:
        if isinstance(end, socket.socket):
            end.close()
        else:
            try:
                os.close(end)
            except OSError:
                pass


def test_is_a_base_selector():
    for cls in (wfcloop.EventPollSelector, _eventpoll_selector.EventPollSelector):
        assert issubclass(cls, selectors.BaseSelector)
    with wfcloop.EventPollSelector(pollers=0) as sel:
        assert isinstance(sel, selectors.BaseSelector)
        assert isinstance(sel.get_map(), collections.abc.Mapping)
        assert sel.fileno() == sel._selector.fileno() >= 0
        assert sel.pollers == 0 and sel.poller_io is False and sel.phase == "inline"
        assert sel.stats()["registered"] == 0
        # an instance attribute can stand in for a method, as on the
        # stdlib's (Python) selectors: tests patch select() so
        with unittest.mock.patch.object(sel, "select", return_value=["patched"]):
            assert sel.select(0) == ["patched"]
        assert sel.select(0) == []
    assert sel.get_map() is None


def test_register_modify_unregister_get_key_get_map(no_leaks):
    bogus = object()

    def script(sel, a, a_peer, b, b_peer, r, w):
        o = []
        o.append(outcome(sel.register, a, R, "a"))
        o.append(outcome(sel.register, a, R))                  # already registered
        o.append(outcome(sel.register, a.fileno(), W))         # the same fd, as an int
        o.append(outcome(sel.register, b, 0))                  # Invalid events
        o.append(outcome(sel.register, b, 4))
        o.append(outcome(sel.register, b, R | W | 8))
        o.append(outcome(sel.register, "nope", R))             # Invalid file object
        o.append(outcome(sel.register, bogus, R))
        o.append(outcome(sel.register, -1, R))                 # Invalid file descriptor
        o.append(outcome(sel.register, b, R | W, ("b", 1)))
        o.append(outcome(sel.register, r, R))
        o.append(outcome(sel.register, w, W, None))
        o.append(outcome(sel.get_key, a))
        o.append(outcome(sel.get_key, a.fileno()))
        o.append(outcome(sel.get_key, 999))
        o.append(outcome(sel.get_key, bogus))
        o.append(outcome(sel.get_key, -5))
        m = sel.get_map()
        o.append((len(m), list(m), a in m, 999 in m, m.get(999, "dflt")))   # fds in registration order
        o.append(outcome(m.__getitem__, b))
        o.append(outcome(m.__getitem__, 998))
        o.append(sorted((fd, normal(key)) for fd, key in m.items()))
        o.append(outcome(sel.get_key, b))
        # modify: events, data, both, neither (the same key comes back)
        o.append(outcome(sel.modify, a, W, "a2"))
        key = sel.get_key(a)
        o.append(sel.modify(a, W, "a2") is key)
        o.append(outcome(sel.modify, a, W, "a3"))
        o.append(outcome(sel.modify, a, R | W, "a3"))
        o.append(outcome(sel.modify, 999, R))
        o.append(outcome(sel.modify, bogus, R))
        o.append(outcome(sel.modify, r, 0))                    # no check, as the stdlib's
        o.append(outcome(sel.modify, r, R))
        # select: a has data and room, b room only, w room, r nothing yet
        a_peer.send(b"x")
        o.append(normal(ready(sel)))
        os.write(w, b"y")
        o.append(normal(ready(sel)))
        # unregister
        o.append(outcome(sel.unregister, a))
        o.append(outcome(sel.unregister, a))
        o.append(outcome(sel.unregister, 999))
        o.append(outcome(sel.unregister, bogus))
        o.append(normal(ready(sel)))
        o.append(sorted(sel.get_map()))
        return o

    same_everywhere(script, with_endpoints=True)


def test_closed_selector(no_leaks):
    def script(sel, a, a_peer, b, b_peer, r, w):
        sel.register(a, R, "a")
        sel.close()
        return [
            sel.get_map(),
            outcome(sel.get_key, a),
            outcome(sel.register, b, R),
            outcome(sel.unregister, a),
            outcome(sel.modify, a, W),
            outcome(sel.select, 0),
            outcome(sel.select, None),
            outcome(sel.fileno),
            outcome(sel.close),
        ]

    outcomes = same_everywhere(script, with_endpoints=True)
    assert outcomes[1] == ("raises", "RuntimeError", "Selector is closed")


def test_closed_fileobj_is_still_found(no_leaks):
    """A socket closed after registration (fileno() -1) is found by
    identity, for get_key, modify and unregister, as selectors do."""
    def script(sel):
        a, a_peer = socket.socketpair()
        with a_peer:
            fd = a.fileno()
            sel.register(a, R, "a")
            a.close()
            o = [outcome(sel.get_key, a)[3:], outcome(sel.get_map().__getitem__, a)[3:]]
            o.append(outcome(sel.modify, a, R, "a2")[3:])
            o.append(outcome(sel.unregister, a)[3:])
            o.append(outcome(sel.unregister, a))
            o.append(fd in sel.get_map())
            return o

    same_everywhere(script)


def test_modify_refused_by_the_kernel_unregisters(no_leaks):
    """An fd closed under the selector: modify's kernel call fails, the
    key is dropped and the error raised, as _PollLikeSelector does."""
    def script(sel):
        a, a_peer = socket.socketpair()
        with a, a_peer:
            fd = os.dup(a.fileno())
            sel.register(fd, R)
            os.close(fd)
            o = [outcome(sel.modify, fd, W)[:2], fd in sel.get_map(),
                 outcome(sel.unregister, fd)[:2]]
            return o

    same_everywhere(script)


def test_select_maps_errors_and_hangups_to_both_sides(no_leaks):
    """selectors' epoll mapping: anything but EPOLLOUT reads, anything but
    EPOLLIN writes, limited to the key's events."""
    def script(sel):
        a, a_peer = socket.socketpair()
        r, w = os.pipe()
        try:
            sel.register(a, R | W, "rw")
            sel.register(r, W, "r-as-writer")      # only a hang-up can wake it
            o = [normal(ready(sel))]
            a_peer.close()
            os.close(w)
            o.append(normal(ready(sel)))
            sel.modify(a, R, "r")
            o.append(normal(ready(sel)))
            return o
        finally:
            a.close()
            os.close(r)

    outcomes = same_everywhere(script)
    assert (repr("r-as-writer"), W, W) in outcomes[1]
    assert (repr("rw"), R | W, R | W) in outcomes[1]


@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("close_first", [False, True], ids=["unregister-close", "close-unregister"])
def test_reused_fd_gets_none_of_the_old_fds_events(name, close_first, no_leaks):
    """The old socket was readable (its event possibly queued already by a
    poller) when it went; the new socket on the same fd number is not."""
    reused = 0
    with MAKERS[name]() as sel:
        for _ in range(20):
            a, a_peer = socket.socketpair()
            sel.register(a, R, "old")
            a_peer.send(b"x")
            time.sleep(0.005)         # let a poller queue the event
            fd = a.fileno()
            if close_first:
                a.close()
                sel.unregister(a)
            else:
                sel.unregister(a)
                a.close()
            a_peer.close()
            c, c_peer = socket.socketpair()
            with c, c_peer:
                if c.fileno() != fd:
                    continue
                sel.register(c, R, "new")
                time.sleep(0.005)
                assert sel.select(0) == []
                c_peer.send(b"y")
                [(key, events)] = ready(sel)
                assert (key.fileobj, key.data, events) == (c, "new", R)
                sel.unregister(c)
                reused += 1
        assert not sel.get_map()
    assert reused >= 10


@pytest.mark.parametrize("name", OURS)
def test_select_waits_on_through_a_signal_that_does_not_raise(name, no_leaks):
    """PEP 475, as epoll's: a handler that returns lets the wait go on for
    the time left; one that raises ends it with its exception."""
    calls = []

    def handler(signum, frame):
        calls.append(signum)
        if len(calls) > 1:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, handler)
    try:
        with MAKERS[name]() as sel:
            a, a_peer = socket.socketpair()
            with a, a_peer:
                sel.register(a, R)
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                t0 = time.monotonic()
                assert sel.select(0.3) == []
                assert time.monotonic() - t0 >= 0.29
                assert calls == [signal.SIGALRM]
                signal.setitimer(signal.ITIMER_REAL, 0.05)
                with pytest.raises(KeyboardInterrupt):
                    sel.select(5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_many_fds_and_large_fd_numbers(no_leaks):
    """Keys of fds far apart (the C table grows) and a full select()."""
    def script(sel):
        pairs = [socket.socketpair() for _ in range(40)]
        spread = [os.dup2(pairs[0][0].fileno(), 900 + i) for i in range(3)]
        try:
            for i, (s, peer) in enumerate(pairs):
                sel.register(s, R, i)
                peer.send(b"x")
            for fd in spread:
                sel.register(fd, W, fd)
            o = [normal(ready(sel)), len(sel.get_map())]
            for s, peer in pairs[::2]:
                sel.unregister(s)
            o.append(normal(ready(sel)))
            return o
        finally:
            for s, peer in pairs:
                s.close()
                peer.close()
            for fd in spread:
                os.close(fd)

    same_everywhere(script)


def test_the_loop_keeps_using_the_selector_after_many_registrations(no_leaks):
    """The loop's dispatch goes through the selector's table: readers on
    many pipes (the table grows under a running loop) all fire."""
    loop = wfcloop.new_event_loop(pollers=0)
    pipes = [os.pipe() for _ in range(100)]
    try:
        fired = []
        for i, (r, w) in enumerate(pipes):
            loop.add_reader(r, fired.append, i)
            os.write(w, b"x")
        loop.call_later(0.05, loop.stop)
        loop.run_forever()
        assert set(fired) == set(range(100))
        assert loop._selector.get_key(pipes[0][0]).data[0] is not None
    finally:
        for r, w in pipes:
            loop.remove_reader(r)
            os.close(r)
            os.close(w)
        loop.close()


# ---- the compiled loop reads the selector through its API only ----------------

def cython_sources():
    return sorted(p for p in (ROOT / "cython").rglob("*")
                  if p.suffix in (".pyx", ".pxd", ".pxi"))


def test_no_cython_source_reads_the_selectors_private_map():
    assert cython_sources()
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
             for p in cython_sources()
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if "_fd_to_key" in line or re.search(r"\.\s*_selector\._", line)]
    assert not found, "\n".join(found)
