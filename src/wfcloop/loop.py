"""wfcloop.Loop and the ways to plug it in: new_event_loop, EventLoopPolicy,
install and run.
"""
import asyncio
import sys
import warnings

from ._loop import BaseLoop
from ._selector import EventPollSelector

__all__ = ["Loop", "new_event_loop", "EventLoopPolicy", "install", "run"]


class Loop(BaseLoop):
    """An asyncio event loop whose readiness comes from wfcloop's EventPoll.

    ``pollers`` poller threads feed the wait-free ready list; ``0`` is
    inline mode, ``None`` takes :func:`wfcloop.default_pollers`.
    ``close()`` joins the poller threads and closes every fd the loop
    opened.
    """

    def __init__(self, *, pollers=None):
        super().__init__(EventPollSelector(pollers=pollers))

    @property
    def pollers(self):
        """Number of poller threads of this loop (0: inline mode)."""
        return self._selector.pollers


def new_event_loop(*, pollers=None):
    """Return a new :class:`Loop`."""
    return Loop(pollers=pollers)


_PolicyBase = asyncio.DefaultEventLoopPolicy
if sys.version_info >= (3, 14):  # the policy classes are deprecated aliases there
    _PolicyBase = asyncio.events._BaseDefaultEventLoopPolicy


class EventLoopPolicy(_PolicyBase):
    """An event loop policy whose new loops are :class:`Loop` instances."""

    def new_event_loop(self):
        return Loop()


def install():
    """Make :class:`Loop` the loop asyncio creates, by setting the policy.

    Python 3.14 deprecates event loop policies; there, prefer
    ``wfcloop.run(main())`` or ``asyncio.run(main(), loop_factory=wfcloop.new_event_loop)``.
    """
    if sys.version_info >= (3, 14):
        warnings.warn(
            "wfcloop.install() sets an event loop policy, which Python 3.14 "
            "deprecates; use wfcloop.run() or asyncio.run(..., "
            "loop_factory=wfcloop.new_event_loop) instead",
            DeprecationWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.set_event_loop_policy(EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main, *, debug=None, pollers=None, **run_kwargs):
    """Run coroutine ``main`` on a new :class:`Loop` and return its result,
    like :func:`asyncio.run` (and ``uvloop.run``).
    """
    def factory():
        return Loop(pollers=pollers)

    if sys.version_info >= (3, 12):
        return asyncio.run(main, debug=debug, loop_factory=factory, **run_kwargs)
    if run_kwargs:
        raise TypeError(f"run() got unexpected keyword arguments {sorted(run_kwargs)}")
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
