"""EventPoll on real fds: semantics, errors, scale, threads, signals, fork."""
import errno
import os
import select
import signal
import socket
import threading
import time

import pytest

from wfcloop import EventPoll, default_pollers

from conftest import Alarm, alarm_raises

IN, OUT, ET, ONESHOT = select.EPOLLIN, select.EPOLLOUT, select.EPOLLET, select.EPOLLONESHOT


def readable_eventfd(value=1):
    fd = os.eventfd(value, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    return fd


def poll_until(ep, predicate, timeout=2.0):
    """Poll until predicate(events) holds; return every event seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen += ep.poll(0.05)
        if predicate(seen):
            break
    return seen


# ------------------------------------------------------------- semantics

def test_level_triggered_reports_until_drained(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        ep.register(a.fileno(), IN)
        b.send(b"x" * 10)
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        # Not read yet: level-triggered reports it again.
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        assert a.recv(100) == b"x" * 10
        # Drained: nothing, not even a stale event from the re-arm.
        assert ep.poll(0.1) == []
        b.send(b"y")
        assert ep.poll(1.0) == [(a.fileno(), IN)]


def test_edge_triggered_reports_each_edge_once(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        ep.register(a.fileno(), IN | ET)
        b.send(b"1")
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        # Still readable, but no new edge.
        assert ep.poll(0.1) == []
        b.send(b"2")
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        assert ep.poll(0.1) == []


def test_oneshot_disarms_until_modify(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        ep.register(a.fileno(), IN | ONESHOT)
        b.send(b"1")
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        b.send(b"2")
        assert ep.poll(0.1) == []
        ep.modify(a.fileno(), IN | ONESHOT)
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        assert ep.poll(0.1) == []


def test_modify_changes_the_reported_events(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        ep.register(a.fileno(), OUT)
        assert ep.poll(1.0) == [(a.fileno(), OUT)]
        ep.modify(a.fileno(), IN)
        assert ep.poll(0.1) == []
        b.send(b"z")
        assert ep.poll(1.0) == [(a.fileno(), IN)]


def test_hangup_is_reported_without_asking(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, EventPoll(pollers=pollers) as ep:
        ep.register(a.fileno(), 0)
        b.close()
        events = ep.poll(1.0)
        assert len(events) == 1 and events[0][0] == a.fileno()
        assert events[0][1] & select.EPOLLHUP


def test_maxevents_spreads_events_over_calls_without_duplicates(pollers, no_leaks):
    fds = [readable_eventfd() for _ in range(10)]
    try:
        with EventPoll(pollers=pollers) as ep:
            for fd in fds:
                ep.register(fd, IN | ET)
            got = []
            deadline = time.monotonic() + 2
            while len(got) < 10 and time.monotonic() < deadline:
                batch = ep.poll(0.1, maxevents=3)
                assert len(batch) <= 3
                got += batch
            assert sorted(got) == sorted((fd, IN) for fd in fds)
            assert ep.poll(0.1) == []
    finally:
        for fd in fds:
            os.close(fd)


def test_inline_poll_returns_every_ready_fd_up_to_maxevents(no_leaks):
    """Inline, one poll() returns every ready fd, as select.epoll's does,
    though the kernel is read in batches: 300 ready eventfds come back in
    one call; with maxevents=200, 200 and then the other 100."""
    fds = [readable_eventfd() for _ in range(300)]
    try:
        with EventPoll(pollers=0) as ep:
            for fd in fds:
                ep.register(fd, IN)
            first = ep.poll(0)
            assert sorted(first) == sorted((fd, IN) for fd in fds)
        with EventPoll(pollers=0) as ep:
            for fd in fds:
                ep.register(fd, IN | ET)
            first = ep.poll(0, maxevents=200)
            second = ep.poll(0, maxevents=200)
            assert (len(first), len(second)) == (200, 100)
            assert sorted(first + second) == sorted((fd, IN) for fd in fds)
            assert ep.poll(0) == []
    finally:
        for fd in fds:
            os.close(fd)


def test_ten_thousand_registered_fds(pollers, no_leaks, raise_nofile):
    if raise_nofile < 10_500:
        pytest.skip(f"RLIMIT_NOFILE hard limit {raise_nofile} < 10,500")
    fds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(10_000)]
    try:
        with EventPoll(pollers=pollers) as ep:
            for fd in fds:
                ep.register(fd, IN)
            assert ep.stats()["registered"] == 10_000
            ready = set(fds[::97])
            for fd in ready:
                os.eventfd_write(fd, 1)
            seen = poll_until(ep, lambda s: {fd for fd, _ in s} >= ready)
            assert {fd for fd, _ in seen} == ready
            for fd in ready:
                os.eventfd_read(fd)
            assert ep.poll(0.1) == []
            for fd in fds:
                ep.unregister(fd)
            assert ep.stats()["registered"] == 0
    finally:
        for fd in fds:
            os.close(fd)


# ----------------------------------------------------------------- errors

def test_errors_match_select_epoll(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep, select.epoll() as ref:
        for poller in (ep, ref):
            poller.register(a, IN)
            with pytest.raises(FileExistsError):
                poller.register(a, IN)
            with pytest.raises(FileNotFoundError):
                poller.modify(b, IN)
            with pytest.raises(FileNotFoundError):
                poller.unregister(b)
            with pytest.raises(OSError) as info:
                poller.register(10_000_000, IN)
            assert info.value.errno == errno.EBADF
            with pytest.raises(ValueError):
                poller.register(-1, IN)
            with pytest.raises(TypeError):
                poller.register("3", IN)
            with pytest.raises(TypeError):
                poller.register(a, "IN")
            with pytest.raises(TypeError):
                poller.poll("1")
            with pytest.raises(ValueError):
                poller.poll(float("nan"))
            with pytest.raises(ValueError):
                poller.poll(1, 0)
            with pytest.raises(OverflowError):
                poller.poll(1e300)
        with pytest.raises(OSError) as info:
            ep.register(ep.fileno(), IN)
        assert info.value.errno == errno.EINVAL
    with pytest.raises(ValueError):
        ep.poll(0)
    with pytest.raises(ValueError):
        ep.register(0, IN)
    with pytest.raises(ValueError):
        ep.fileno()
    with pytest.raises(ValueError):
        ep.stats()


def test_epollexclusive_is_refused_and_nothing_leaks(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        with pytest.raises(OSError) as info:
            ep.register(a, IN | select.EPOLLEXCLUSIVE)
        assert info.value.errno == errno.EINVAL
        ep.register(a, IN)     # the failed call left nothing behind
        assert ep.stats()["registered"] == 1


def test_failed_register_leaves_the_eventpoll_usable(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        with open(__file__, "rb") as regular:
            with pytest.raises(PermissionError):
                ep.register(regular, IN)   # EPERM: files cannot be polled
        ep.register(a, IN)
        b.send(b"x")
        assert ep.poll(1.0) == [(a.fileno(), IN)]


def test_bad_pollers_and_sizehint():
    with pytest.raises(ValueError):
        EventPoll(pollers=-1)
    with pytest.raises(TypeError):
        EventPoll(pollers="2")
    with pytest.raises(ValueError):
        EventPoll(0)
    with pytest.raises(OSError):
        EventPoll(flags=12356)


def test_default_pollers_env_override(monkeypatch):
    monkeypatch.setenv("WFCLOOP_POLLERS", "3")
    assert default_pollers() == 3
    with EventPoll() as ep:
        assert ep.pollers == 3
    monkeypatch.setenv("WFCLOOP_POLLERS", "-1")
    with pytest.raises(ValueError):
        default_pollers()
    monkeypatch.delenv("WFCLOOP_POLLERS")
    cpus = len(os.sched_getaffinity(0))
    assert default_pollers() == (0 if cpus <= 2 else min(4, cpus // 2))


# ----------------------------------------------------- removal and reuse

def test_unregister_drops_a_queued_event(no_leaks):
    """An item READY on the ready list when it is removed is a ZOMBIE:
    reaped by the consumer, never delivered."""
    with EventPoll(pollers=4) as ep:
        for _ in range(50):
            fd = readable_eventfd()
            try:
                ep.register(fd, IN)
                # Let a poller take the event and queue the item.
                deadline = time.monotonic() + 1
                while ep.stats()["enqueued"] == 0 and time.monotonic() < deadline:
                    time.sleep(0.001)
                ep.unregister(fd)
                assert ep.poll(0) == []
            finally:
                os.close(fd)
        stats = ep.stats()
        assert stats["reaped"] >= 1
        assert stats["registered"] == 0


def test_event_of_a_closed_fd_never_reaches_its_reused_number(pollers, no_leaks):
    """Close a ready, registered fd without unregistering it (its event may
    be queued), reopen the number as an fd that is NOT ready and register
    that: no event may be reported for it."""
    with EventPoll(pollers=pollers) as ep:
        for round_ in range(100):
            old = readable_eventfd()
            ep.register(old, IN)
            time.sleep(0.002 if round_ % 2 else 0)
            os.close(old)
            new = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                assert new == old, "the kernel reuses the lowest free number"
                ep.register(new, IN)
                assert ep.poll(0.005) == []
            finally:
                ep.unregister(new)
                os.close(new)


def test_stale_events_of_a_duplicated_fd_are_dropped(pollers, no_leaks):
    """The kernel keeps a registration alive while a dup of the file is
    open; its events carry the old generation and must be dropped, not
    reported for the new fd that reuses the number."""
    with EventPoll(pollers=pollers) as ep:
        old = readable_eventfd()
        ep.register(old, IN)
        keep = os.dup(old)           # the kernel item survives close(old)
        os.close(old)
        new = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            assert new == old
            ep.register(new, IN)
            os.eventfd_write(keep, 5)   # the old file fires again
            assert ep.poll(0.1) == []
            os.eventfd_write(new, 1)
            assert ep.poll(1.0) == [(new, IN)]
        finally:
            os.close(new)
            os.close(keep)


def test_unregister_of_a_closed_fd_is_ebadf_and_forgets_it(pollers, no_leaks):
    with EventPoll(pollers=pollers) as ep:
        fd = readable_eventfd()
        ep.register(fd, IN)
        os.close(fd)
        with pytest.raises(OSError) as info:
            ep.unregister(fd)
        assert info.value.errno == errno.EBADF
        assert ep.stats()["registered"] == 0


# ------------------------------------------------------------- threads

def test_register_from_another_thread_wakes_a_blocked_poll(pollers, no_leaks):
    fd = readable_eventfd()
    try:
        with EventPoll(pollers=pollers) as ep:
            timer = threading.Timer(0.1, ep.register, (fd, IN))
            timer.start()
            start = time.monotonic()
            events = ep.poll(5.0)
            timer.join()
            assert events == [(fd, IN)]
            assert time.monotonic() - start < 4.0
    finally:
        os.close(fd)


def test_wakeups_only_on_empty_to_non_empty_while_sleeping(no_leaks):
    fds = [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(100)]
    try:
        with EventPoll(pollers=4) as ep:
            for fd in fds:
                ep.register(fd, IN | ET)
            # Nobody sleeps: pollers queue 100 items, no wake-up at all,
            # and only the first append found the list empty.
            for fd in fds:
                os.eventfd_write(fd, 1)
            deadline = time.monotonic() + 2
            while ep.stats()["enqueued"] < 100 and time.monotonic() < deadline:
                time.sleep(0.005)
            stats = ep.stats()
            assert stats["enqueued"] == 100
            assert stats["wakeups"] == 0
            assert stats["enqueued_found_empty"] == 1
            assert len(ep.poll(0)) == 100
            assert ep.stats()["splices"] == 1

            # A sleeping consumer is woken exactly once for one event.
            sleeps = ep.stats()["sleeps"]
            result = []
            consumer = threading.Thread(target=lambda: result.append(ep.poll(5.0)))
            consumer.start()
            deadline = time.monotonic() + 5
            while ep.stats()["sleeps"] == sleeps and time.monotonic() < deadline:
                time.sleep(0.001)
            assert ep.stats()["sleeps"] == sleeps + 1   # it is asleep now
            os.eventfd_write(fds[0], 1)
            consumer.join(5)
            assert result == [[(fds[0], IN)]]
            assert ep.stats()["wakeups"] == 1
    finally:
        for fd in fds:
            os.close(fd)


def test_close_while_pollers_and_a_consumer_are_blocked(no_leaks):
    fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    ep = EventPoll(pollers=4)
    ep.register(fd, IN)
    outcome = []

    def consumer():
        try:
            outcome.append(ep.poll(30.0))
        except (OSError, ValueError) as exc:
            outcome.append(exc)

    thread = threading.Thread(target=consumer)
    thread.start()
    time.sleep(0.1)
    start = time.monotonic()
    ep.close()
    thread.join(5.0)
    os.close(fd)
    assert not thread.is_alive()
    assert time.monotonic() - start < 5.0
    assert len(outcome) == 1 and isinstance(outcome[0], OSError)
    assert outcome[0].errno == errno.EBADF
    assert ep.closed


def test_close_joins_pollers_and_closes_its_fds(no_leaks):
    threads = len(os.listdir("/proc/self/task"))
    fds = set(os.listdir("/proc/self/fd"))
    ep = EventPoll(pollers=4)
    assert len(os.listdir("/proc/self/task")) == threads + 4
    assert len(set(os.listdir("/proc/self/fd")) - fds) >= 1
    names = {open(f"/proc/self/task/{t}/comm").read().strip()
             for t in os.listdir("/proc/self/task")}
    assert "wfc-poller-0" in names
    ep.close()
    ep.close()   # idempotent
    # (pthread_join() returns when the kernel has cleared the thread's
    # tid, a moment before /proc/self/task stops listing it.)
    deadline = time.monotonic() + 2.0
    while len(os.listdir("/proc/self/task")) > threads and time.monotonic() < deadline:
        time.sleep(0.001)
    assert len(os.listdir("/proc/self/task")) == threads


def test_pollers_block_every_signal(no_leaks):
    with EventPoll(pollers=2) as ep:
        checked = 0
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/comm") as f:
                if not f.read().startswith("wfc-poller"):
                    continue
            with open(f"/proc/self/task/{task}/status") as f:
                sigblk = next(l for l in f if l.startswith("SigBlk:")).split()[1]
            blocked = int(sigblk, 16)
            # Every standard signal a thread can block (not KILL, STOP).
            for signum in range(1, 32):
                if signum in (signal.SIGKILL, signal.SIGSTOP):
                    continue
                assert blocked & (1 << (signum - 1)), signal.Signals(signum).name
            checked += 1
        assert checked == 2
        assert ep.pollers == 2


# -------------------------------------------------------------- signals

def test_signal_handler_exception_interrupts_poll(pollers, no_leaks):
    with EventPoll(pollers=pollers) as ep:
        start = time.monotonic()
        with alarm_raises(0.1), pytest.raises(Alarm):
            ep.poll(10.0)
        assert time.monotonic() - start < 5.0
        # Still usable afterwards.
        assert ep.poll(0) == []


def test_keyboard_interrupt_propagates_from_poll(pollers, no_leaks):
    with EventPoll(pollers=pollers) as ep:
        timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            ep.poll(10.0)
        timer.join()


def test_handler_that_returns_lets_poll_finish_its_timeout(pollers, no_leaks):
    calls = []
    old = signal.signal(signal.SIGALRM, lambda *a: calls.append(1))
    try:
        with EventPoll(pollers=pollers) as ep:
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            start = time.monotonic()
            assert ep.poll(0.3) == []
            elapsed = time.monotonic() - start
            assert calls == [1]
            assert elapsed >= 0.29   # PEP 475: waited for the time left
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ fork

def test_fork_child_gets_a_clear_error_and_can_make_a_new_one(pollers, no_leaks):
    ep = EventPoll(pollers=pollers)
    a, b = socket.socketpair()
    ep.register(a, IN)
    assert ep.forked is False
    pid = os.fork()
    if pid == 0:   # child: never return into pytest
        code = 1
        try:
            try:
                ep.poll(0)
            except RuntimeError as exc:
                if "fork" in str(exc) and ep.forked is True:
                    code = 2
            if code == 2:
                with EventPoll(pollers=2) as fresh:
                    fresh.register(b, OUT)
                    if fresh.poll(1.0) == [(b.fileno(), OUT)]:
                        code = 0
            ep.close()   # must not hang joining the parent's threads
            if code == 0 and ep.forked is not True:   # still so once closed
                code = 3
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("child hung")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's EventPoll is unaffected.
    assert ep.forked is False
    b.send(b"x")
    assert ep.poll(1.0) == [(a.fileno(), IN)]
    ep.close()
    a.close()
    b.close()


# ---------------------------------------------------------------- fromfd

def test_fromfd_shares_registrations(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b, EventPoll(pollers=pollers) as ep:
        ep2 = EventPoll.fromfd(ep.fileno())
        ep2.register(a, IN)
        b.send(b"x")
        assert ep.poll(1.0) == [(a.fileno(), IN)]
        with pytest.raises(FileExistsError):
            ep.register(a, IN)
    # ep closed the shared kernel fd: ep2 sees EBADF, like select.epoll.
    with pytest.raises(OSError) as info:
        ep2.poll(0)
    assert info.value.errno == errno.EBADF
    ep2.close()


def test_fromfd_adopts_a_foreign_epoll_fd(pollers, no_leaks):
    a, b = socket.socketpair()
    with a, b:
        kfd = select.epoll().detach() if hasattr(select.epoll, "detach") else None
        if kfd is None:
            ref = select.epoll()
            kfd = os.dup(ref.fileno())
            ref.close()
        with EventPoll.fromfd(kfd, pollers=pollers) as ep:
            assert ep.fileno() == kfd
            ep.register(a, IN)
            b.send(b"x")
            assert ep.poll(1.0) == [(a.fileno(), IN)]
