"""Differential testing of EventPoll against select.epoll (issue 5, "Bad
input"): hypothesis draws random sequences of register / modify /
unregister / make-ready / drain / hang-up / close / reopen / poll / close
the poller over a small pool of real fds (eventfds, pipes, socketpairs,
plus a negative and a never-open fd number); each step runs on an
EventPoll and on a select.epoll side by side, and both must give the same
results and the same exceptions (type and errno).

Allowed differences, exactly those the README documents:

- poll()'s order is free: results are compared sorted.  poll(0) only, and
  never with maxevents (which of several ready fds one call returns is
  also free).
- EPOLLEXCLUSIVE is never drawn: EventPoll refuses it with EINVAL on
  purpose (tests/test_eventpoll.py checks that).
- An fd closed without unregister() may still report the one event a
  poller took before the close, until that fd number is registered again:
  EventPoll's events for such a number are dropped before comparing.

poll(0) with pollers > 0 uses EventPoll's default snapshot mode (it settles
the pollers' in-flight events first), which is what makes a timeout-0 poll
comparable with the kernel's -- except for the deviation found by this
test (HARVEST_TIME_EVENTS below): until EventPoll re-evaluates readiness
at delivery, the random sequences run with pollers=0 only, and a strict
expected failure shows the deviation with pollers=2.
Short form: 150 sequences per pollers value;
WFCLOOP_STRESS=long: 2,000.
"""
import errno
import os
import select
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfcloop import EventPoll

from _echo import scale

IN, OUT, PRI, ET, ONESHOT = (select.EPOLLIN, select.EPOLLOUT, select.EPOLLPRI,
                             select.EPOLLET, select.EPOLLONESHOT)
RDHUP = select.EPOLLRDHUP
SLOTS = 4
KINDS = ("eventfd", "pipe", "socketpair")

masks = st.builds(lambda bits: bits, st.sampled_from(
    [0, IN, OUT, IN | OUT, IN | ET, OUT | ET, IN | OUT | ET, IN | ONESHOT,
     IN | OUT | ONESHOT, IN | ET | ONESHOT, IN | RDHUP, IN | PRI, IN | OUT | RDHUP | ET]))
# Slots 0..SLOTS-1 are the pool; SLOTS is fd -1, SLOTS + 1 a number that
# is not open (both rarer).
slot = st.sampled_from([0, 1, 2, 3] * 4 + [SLOTS, SLOTS + 1])
# Weighted: the common ops often, the ones that end a state rarely.
ops = st.one_of(
    st.tuples(st.just("register"), slot, masks),
    st.tuples(st.just("register"), slot, masks),
    st.tuples(st.just("modify"), slot, masks),
    st.tuples(st.just("modify"), slot, masks),
    st.tuples(st.just("unregister"), slot),
    st.tuples(st.just("ready"), slot),
    st.tuples(st.just("ready"), slot),
    st.tuples(st.just("drain"), slot),
    st.tuples(st.just("hangup"), slot),
    st.tuples(st.just("close"), slot),
    st.tuples(st.just("reopen"), slot),
    st.tuples(st.just("poll"),),
    st.tuples(st.just("poll"),),
    st.tuples(st.just("poll"),),
    st.tuples(st.just("poll"),),
)
# Some sequences close both pollers near the end and go on a few ops.
sequences = st.builds(
    lambda body, close, tail: body + ([("close_poller",)] + tail if close else []),
    st.lists(ops, min_size=1, max_size=scale(40, 80)),
    st.booleans(), st.lists(ops, max_size=3))


class Pool:
    """SLOTS real fd pairs: ``fd`` is what gets registered, ``peer`` what
    makes it ready or hangs it up (for an eventfd, the fd itself)."""

    def __init__(self, kinds, on_close=lambda fd: None):
        self.kinds = kinds
        self.on_close = on_close
        self.last = [None] * SLOTS
        self.fd = [None] * SLOTS
        self.peer = [None] * SLOTS
        for i in range(SLOTS):
            self.open(i)
        # A number that is certainly not open: high above the pool.
        self.closed_number = 900_000

    def open(self, i):
        kind = self.kinds[i]
        if kind == "eventfd":
            self.fd[i] = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.peer[i] = None
        elif kind == "pipe":
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            self.fd[i], self.peer[i] = r, w
        else:
            a, b = socket.socketpair()
            a.setblocking(False)
            b.setblocking(False)
            self.fd[i], self.peer[i] = a.detach(), b.detach()

    def number(self, i):
        if i == SLOTS:
            return -1
        if i == SLOTS + 1:
            return self.closed_number
        return self.fd[i] if self.fd[i] is not None else self.last[i]

    def ready(self, i):
        if i >= SLOTS or self.fd[i] is None:
            return
        if self.kinds[i] == "eventfd":
            os.eventfd_write(self.fd[i], 1)
        elif self.peer[i] is not None:
            try:
                os.write(self.peer[i], b"x")
            except BlockingIOError:
                pass

    def drain(self, i):
        if i >= SLOTS or self.fd[i] is None:
            return
        try:
            while os.read(self.fd[i], 65536):
                pass
        except BlockingIOError:
            pass

    def hangup(self, i):
        if i < SLOTS and self.peer[i] is not None:
            os.close(self.peer[i])
            self.on_close(self.peer[i])
            self.peer[i] = None

    def close(self, i):
        """Close slot i's fds; remember the number for later ops."""
        if i >= SLOTS or self.fd[i] is None:
            return None
        self.last[i] = self.fd[i]
        os.close(self.fd[i])
        self.on_close(self.fd[i])
        self.hangup(i)
        self.fd[i] = None
        return self.last[i]

    def close_all(self):
        for i in range(SLOTS):
            self.close(i)
            self.hangup(i)


def outcome(call):
    """What a call did: ('ok', result) or ('raised', type, errno)."""
    try:
        return ("ok", call())
    except OSError as exc:
        return ("raised", type(exc), exc.errno)
    except (ValueError, TypeError, OverflowError, RuntimeError) as exc:
        return ("raised", type(exc), None)


def run_sequence(pollers, kinds, sequence):
    maybe_stale = set()       # numbers closed while registered (README)
    registered = set()        # numbers registered in ref

    def on_close(fd):
        if fd in registered:
            registered.discard(fd)    # the kernel forgets it at close
            maybe_stale.add(fd)

    pool = Pool(kinds, on_close)
    ep = EventPoll(pollers=pollers)
    ref = select.epoll()
    try:
        for step, op in enumerate(sequence):
            name = op[0]
            where = f"step {step}: {op}; sequence={sequence}"
            if name in ("register", "modify", "unregister"):
                fd = pool.number(op[1])
                if fd is None:
                    continue
                args = (fd,) + tuple(op[2:])
                got = outcome(lambda: getattr(ep, name)(*args))
                want = outcome(lambda: getattr(ref, name)(*args))
                assert got == want, where
                if want[0] == "ok":
                    if name == "register":
                        registered.add(fd)
                        maybe_stale.discard(fd)
                    elif name == "unregister":
                        registered.discard(fd)
            elif name == "ready":
                pool.ready(op[1])
            elif name == "drain":
                pool.drain(op[1])
            elif name == "hangup":
                pool.hangup(op[1])
            elif name == "close":
                pool.close(op[1])
            elif name == "reopen":
                i = op[1]
                if i < SLOTS and pool.fd[i] is None:
                    pool.open(i)
            elif name == "poll":
                got = outcome(lambda: ep.poll(0))
                want = outcome(lambda: ref.poll(0))
                if got[0] == "ok":
                    got = ("ok", sorted(e for e in got[1] if e[0] not in maybe_stale))
                if want[0] == "ok":
                    want = ("ok", sorted(want[1]))
                assert got == want, where
            elif name == "close_poller":
                ep.close()
                ref.close()
                assert ep.closed and ref.closed
                registered.clear()
        # Whatever happened, the closed state agrees too.
        assert outcome(lambda: ep.poll(0))[0] == outcome(lambda: ref.poll(0))[0]
    finally:
        ep.close()
        ref.close()
        pool.close_all()


HARVEST_TIME_EVENTS = (
    "with pollers > 0, poll() reports the events an fd had when a poller "
    "harvested it, not those it has at poll() time: a readiness gained since "
    "is missing (IN|OUT registered, OUT harvested at once, then IN: poll(0) "
    "gives OUT, select.epoll IN|OUT) and one lost since is still reported (IN "
    "harvested, then drained: poll(0) gives IN, select.epoll nothing); the "
    "kernel re-evaluates readiness at delivery.  Documented in the README (EventPoll differences); asyncio copes with it.")


# pollers=2 is left out until HARVEST_TIME_EVENTS is fixed: whether a
# sequence shows it depends on when the pollers run, so it cannot be a
# strict expected failure; the test below shows it deterministically.
# (Put 2 back here once that test passes.)
@pytest.mark.parametrize("pollers", [0], ids=lambda n: f"pollers={n}")
@settings(max_examples=scale(150, 2000), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=SLOTS, max_size=SLOTS),
       sequence=sequences)
def test_eventpoll_matches_select_epoll(pollers, kinds, sequence):
    before = set(os.listdir("/proc/self/fd"))
    run_sequence(pollers, kinds, sequence)
    leaked = {fd for fd in set(os.listdir("/proc/self/fd")) - before
              if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked


@pytest.mark.parametrize("pollers", [0], ids=lambda n: f"pollers={n}")
def test_a_known_sequence(pollers, no_leaks):
    """A fixed sequence through every op, as a readable example (and so the
    differential harness itself is exercised without hypothesis' luck).
    Inline mode only, like the random sequences: with pollers, poll(0) may
    miss an event a poller is still holding (the harvest-time deviation
    below), and under load this sequence showed it."""
    run_sequence(pollers, ["eventfd", "pipe", "socketpair", "socketpair"], [
        ("register", 0, IN), ("register", 1, IN | ET), ("register", 2, IN | OUT),
        ("register", 0, IN), ("modify", 3, IN), ("unregister", 3), ("register", 4, IN),
        ("register", 5, IN), ("poll",), ("ready", 0), ("ready", 1), ("poll",), ("poll",),
        ("drain", 0), ("poll",), ("hangup", 2), ("poll",), ("modify", 2, IN | ONESHOT),
        ("poll",), ("poll",), ("close", 1), ("poll",), ("reopen", 1), ("register", 1, IN),
        ("ready", 1), ("poll",), ("close_poller",), ("register", 0, IN), ("poll",),
    ])


def wait_for_a_harvest(ep):
    deadline = time.monotonic() + 5
    while ep.stats()["enqueued"] == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert ep.stats()["enqueued"] > 0


@pytest.mark.xfail(strict=True, reason=HARVEST_TIME_EVENTS)
@pytest.mark.parametrize("case", ["gained", "lost"])
def test_poll_reports_readiness_at_poll_time_with_pollers(case, no_leaks):
    """The deviation above, on its own, made deterministic by waiting until
    a poller has queued the fd before its readiness changes (any try
    shows it; 20 tries)."""
    for _ in range(20):
        fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            with EventPoll(pollers=2) as ep, select.epoll() as ref:
                mask = IN | OUT if case == "gained" else IN
                ep.register(fd, mask)
                ref.register(fd, mask)
                if case == "lost":
                    os.eventfd_write(fd, 1)          # IN, harvested by a poller...
                wait_for_a_harvest(ep)
                if case == "lost":
                    os.eventfd_read(fd)              # ...then no longer true
                else:
                    os.eventfd_write(fd, 1)          # OUT harvested, now IN too
                assert sorted(ep.poll(0)) == sorted(ref.poll(0))
        finally:
            os.close(fd)
