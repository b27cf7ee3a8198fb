"""EventPollSelector: the package's face of the compiled selector.

The selector itself (a :class:`selectors.BaseSelector` on wfcloop's
EventPoll, its fd -> key map and the decoding of events the loop shares) is
compiled: ``cython/wfcloop/_eventpoll_selector.pyx``.  This module gives it
the package's defaults: ``adaptive`` and ``poller_io`` left out (None) come
from the environment (``WFCLOOP_ADAPTIVE``, ``WFCLOOP_POLLER_IO``, parsed
in ``_config.py``).
"""
from . import _eventpoll_selector
from ._config import default_adaptive, default_poller_io

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

