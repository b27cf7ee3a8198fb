"""wfcloop: an asyncio event loop for Linux whose ready list is a wait-free
concurrent queue fed by poller threads.

- :class:`Loop`, :func:`new_event_loop`, :class:`EventLoopPolicy`,
  :func:`install`, :func:`run`: the event loop and the ways to plug it in.
- :class:`EventPoll`: the core, a drop-in for :class:`select.epoll`.
"""
# First: on a Python whose asyncio lacks a private name wfcloop relies on,
# the ImportError names it (see asyncio_compat).
from . import asyncio_compat
# Every WFCLOOP_* setting is parsed there (see its docstring).
from ._config import default_adaptive, default_poller_io, default_pollers
try:
    from ._eventpoll import EventPoll
except ModuleNotFoundError as exc:   # e.g. src/ of a checkout, never built
    if exc.name != __name__ + "._eventpoll":
        raise
    raise ImportError(
        f"wfcloop's compiled core ({exc.name}) is not built or not on the "
        f"path: install wfcloop (pip install .) and import it from there, "
        f"not from the source tree ({__path__[0]})") from exc
from ._selector import EventPollSelector
from .loop import EventLoopPolicy, Loop, install, new_event_loop, run

__version__ = "0.1.0.dev0"

__all__ = [
    "EventLoopPolicy", "EventPoll", "EventPollSelector", "Loop",
    "default_adaptive", "default_poller_io", "default_pollers", "install", "new_event_loop",
    "run", "__version__",
]
