"""wfcloop: an asyncio event loop for Linux whose ready list is a wait-free
concurrent queue fed by poller threads.

The compiled core is :class:`EventPoll`, a drop-in for :class:`select.epoll`
built on that queue.  The event loop itself (``wfcloop.Loop``) is built on
top of it.
"""
from ._eventpoll import EventPoll, default_pollers

__version__ = "0.1.0.dev0"

__all__ = ["EventPoll", "default_pollers", "__version__"]
