"""EventPollSelector: the package's face of the compiled selector.

The selector itself (a :class:`selectors.BaseSelector` on wfcloop's
EventPoll, its fd -> key map and the decoding of events the loop shares) is
compiled: ``cython/wfcloop/_eventpoll_selector.pyx``.  This module gives it
the package's defaults: ``adaptive`` and ``poller_io`` left out (None) come
from the environment (``WFCLOOP_ADAPTIVE``, ``WFCLOOP_POLLER_IO``).
"""
import os

from . import _eventpoll_selector

__all__ = ["EventPollSelector", "default_adaptive", "default_poller_io"]


class EventPollSelector(_eventpoll_selector.EventPollSelector):
    """A selector whose poller is :class:`wfcloop.EventPoll`.

    ``pollers`` poller threads (``None``: :func:`wfcloop.default_pollers`).
    ``adaptive`` (poller mode): let the EventPoll park its pollers and read
    the kernel on the loop thread while that is cheaper (see
    :func:`wfcloop.default_adaptive`); the loop is the EventPoll's only
    polling thread, which the adaptive rule needs.  ``poller_io`` (poller
    mode): see :func:`wfcloop.default_poller_io`.
    """

    def __init__(self, *, pollers=None, adaptive=None, poller_io=None):
        if adaptive is None:
            adaptive = default_adaptive()
        if poller_io is None:
            poller_io = default_poller_io()
        super().__init__(pollers=pollers, adaptive=adaptive, poller_io=poller_io)


def default_adaptive():
    """Whether poller mode is adaptive when ``adaptive`` is not given: yes,
    unless the environment sets ``WFCLOOP_ADAPTIVE=0``.

    Adaptive poller mode starts with the pollers parked and the loop thread
    reading the kernel itself (inline), tries the pollers when the loop
    thread is saturated, and keeps them only while they deliver more events
    per second (the rule is in ``cython/eventpoll_core.c``, ADAPTIVE RULE).
    ``WFCLOOP_ADAPTIVE=0`` keeps the pollers reading the kernel always.
    """
    return _env_switch("WFCLOOP_ADAPTIVE")


def default_poller_io():
    """Whether poller mode does socket I/O on the pollers when
    ``poller_io`` is not given: yes, unless ``WFCLOOP_POLLER_IO=0``.

    While the pollers read the kernel, a poller then also receives a socket
    transport's data and sends what ``write()`` queued (with the re-arm,
    once per loop iteration), and the loop thread runs only Python code.
    It applies only in the pollers phase, which adaptive mode keeps only
    where a trial shows it delivers more events per second than inline.
    """
    return _env_switch("WFCLOOP_POLLER_IO")


def _env_switch(name):
    """An on/off setting from the environment: on unless ``name`` is "0";
    any value but "", "0" and "1" is a ValueError."""
    env = os.environ.get(name, "").strip()
    if env in ("", "1"):
        return True
    if env == "0":
        return False
    raise ValueError(f"{name} must be 0 or 1, got {env!r}")
