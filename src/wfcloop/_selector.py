"""EventPollSelector: a :mod:`selectors` selector on wfcloop's EventPoll.

asyncio's selector event loop drives readiness through a selector; this one
hands it the wait-free ready list.  Registration bookkeeping (keys, the
fd -> key map, argument checks) is the standard library's.
"""
import math
import select
import selectors

from .asyncio_compat import BaseSelectorImpl, PollLikeSelector
from ._config import default_adaptive, default_poller_io
from ._eventpoll import EventPoll

__all__ = ["EventPollSelector", "default_adaptive", "default_poller_io"]


class EventPollSelector(PollLikeSelector):
    """A selector whose poller is :class:`wfcloop.EventPoll`.

    ``pollers`` poller threads (``None``: :func:`wfcloop.default_pollers`).
    ``adaptive`` (poller mode): let the EventPoll park its pollers and read
    the kernel on the loop thread while that is cheaper (see
    :func:`wfcloop.default_adaptive`); the loop is the EventPoll's only
    polling thread, which the adaptive rule needs.
    """

    _EVENT_READ = select.EPOLLIN
    _EVENT_WRITE = select.EPOLLOUT

    def __init__(self, *, pollers=None, adaptive=None, poller_io=None):
        BaseSelectorImpl.__init__(self)
        if adaptive is None:
            adaptive = default_adaptive()
        if poller_io is None:
            poller_io = default_poller_io()
        self._selector = EventPoll(pollers=pollers)
        if self._selector.pollers:
            self._selector._set_adaptive(bool(adaptive))
        self._poller_io = bool(poller_io) and self._selector.pollers > 0
        # The poll settles before returning a partial batch (the default):
        # asyncio runs every I/O callback that was ready before a poll ahead
        # of what those callbacks schedule, so a poll must not leave out an
        # event a poller has taken from the kernel but not yet queued.

    @property
    def pollers(self):
        """Number of poller threads (0: inline mode)."""
        return self._selector.pollers

    @property
    def poller_io(self):
        """Whether pollers may do the loop's socket transports' I/O (see
        :func:`wfcloop.default_poller_io`); never in inline mode."""
        return self._poller_io

    @property
    def phase(self):
        """"pollers" while the poller threads read the kernel, "inline"
        while the loop thread does (always so in inline mode)."""
        return self._selector.phase

    def fileno(self):
        return self._selector.fileno()

    def stats(self):
        """The EventPoll's counters (see EventPoll.stats)."""
        return self._selector.stats()

    def select(self, timeout=None):
        if timeout is None:
            timeout = -1
        elif timeout <= 0:
            timeout = 0
        else:
            # Millisecond resolution: round up, to wait at least timeout.
            timeout = math.ceil(timeout * 1e3) * 1e-3
        max_ev = max(len(self._fd_to_key), 1)
        ready = []
        try:
            fd_event_list = self._selector.poll(timeout, max_ev)
        except InterruptedError:
            return ready
        key_from_fd = self._fd_to_key.get
        for fd, event in fd_event_list:
            key = key_from_fd(fd)
            if key is None:
                continue
            events = 0
            if event & ~select.EPOLLIN:
                events |= selectors.EVENT_WRITE
            if event & ~select.EPOLLOUT:
                events |= selectors.EVENT_READ
            ready.append((key, events & key.events))
        return ready

    def unregister(self, fileobj):
        # In a child forked from the process that made this selector, the
        # EventPoll refuses use (RuntimeError) and its kernel instance is
        # the parent's: forget the key without touching the kernel, so that
        # loop.close() in the child works, as with the stdlib's selectors
        # (which would even remove the parent's registration).
        if self._selector.forked:
            return BaseSelectorImpl.unregister(self, fileobj)
        return super().unregister(fileobj)

    def close(self):
        self._selector.close()
        super().close()

