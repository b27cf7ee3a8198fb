"""wfcloop.Loop and the ways to plug it in: new_event_loop, EventLoopPolicy,
install and run.
"""
import asyncio
import logging
import os
import warnings

from . import asyncio_compat
from ._loop import BaseLoop
from ._selector import EventPollSelector

__all__ = ["Loop", "new_event_loop", "EventLoopPolicy", "install", "run"]


class Loop(BaseLoop):
    """An asyncio event loop whose readiness comes from wfcloop's EventPoll.

    ``pollers`` poller threads feed the wait-free ready list; ``0`` is
    inline mode, ``None`` takes :func:`wfcloop.default_pollers`.
    ``adaptive`` (with pollers): park the pollers and read the kernel on the
    loop thread while that delivers as many events per second, which it
    does where cores are scarce; ``None`` takes
    :func:`wfcloop.default_adaptive` (on unless ``WFCLOOP_ADAPTIVE=0``).
    ``poller_io`` (with pollers): while the pollers read the kernel, they
    also receive and send for the loop's socket transports, so the loop
    thread runs only Python code; ``None`` takes
    :func:`wfcloop.default_poller_io` (on unless ``WFCLOOP_POLLER_IO=0``).
    ``close()`` joins the poller threads and closes every fd the loop
    opened.
    """

    def __init__(self, *, pollers=None, adaptive=None, poller_io=None):
        super().__init__(EventPollSelector(pollers=pollers, adaptive=adaptive,
                                           poller_io=poller_io))

    @property
    def pollers(self):
        """Number of poller threads of this loop (0: inline mode)."""
        return self._selector.pollers

    @property
    def poller_io(self):
        """Whether pollers do the socket transports' I/O in their phase."""
        return self._selector.poller_io

    @property
    def poller_phase(self):
        """"pollers" while the poller threads read the kernel, "inline"
        while the loop thread does (always so with ``pollers=0``)."""
        return self._selector.phase

    # ---- unix server socket cleanup (Python < 3.13 only) ---------------
    # Python 3.13's loop removes a unix server's socket file when the
    # server closes (``cleanup_socket=True``, the default); 3.11 and 3.12
    # leave it behind.  Same rule as 3.13: unlink the path on close only if
    # it still is the socket this server bound (same inode), so a server
    # that replaced it keeps its file.  Unlike 3.13, only a file the loop
    # made itself (``path=``) is removed, never that of a ``sock=`` the
    # caller bound (CPython 3.11's own tests unlink that one themselves).
    if not asyncio_compat.UNIX_SERVER_CLEANUP_BUILTIN:
        async def create_unix_server(self, protocol_factory, path=None, *,
                                     cleanup_socket=True, **kwargs):
            server = await super().create_unix_server(protocol_factory, path, **kwargs)
            if cleanup_socket and path is not None:
                for sock in server._sockets or ():
                    name = sock.getsockname()
                    if not name or name[0] in (0, "\x00"):   # unnamed or abstract
                        continue
                    try:
                        inodes = self.__dict__.setdefault("_wfc_unix_server_inodes", {})
                        inodes[sock] = os.stat(name).st_ino
                    except FileNotFoundError:
                        pass
            return server

        def _stop_serving(self, sock):
            inode = self.__dict__.get("_wfc_unix_server_inodes", {}).pop(sock, None)
            path = sock.getsockname() if inode is not None else None
            super()._stop_serving(sock)
            if path is not None:
                try:
                    if os.stat(path).st_ino == inode:
                        os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError as err:
                    logging.getLogger("asyncio").error(
                        "Unable to clean up listening UNIX socket %r: %r", path, err)


def new_event_loop(*, pollers=None, adaptive=None, poller_io=None):
    """Return a new :class:`Loop`."""
    return Loop(pollers=pollers, adaptive=adaptive, poller_io=poller_io)


class EventLoopPolicy(asyncio_compat.EventLoopPolicyBase):
    """An event loop policy whose new loops are :class:`Loop` instances."""

    def new_event_loop(self):
        return Loop()


def install():
    """Make :class:`Loop` the loop asyncio creates, by setting the policy.

    Python 3.14 deprecates event loop policies; there, prefer
    ``wfcloop.run(main())`` or ``asyncio.run(main(), loop_factory=wfcloop.new_event_loop)``.
    """
    if asyncio_compat.POLICIES_DEPRECATED:
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


def run(main, *, debug=None, pollers=None, adaptive=None, poller_io=None, **run_kwargs):
    """Run coroutine ``main`` on a new :class:`Loop` and return its result,
    like :func:`asyncio.run` (and ``uvloop.run``).
    """
    def factory():
        return Loop(pollers=pollers, adaptive=adaptive, poller_io=poller_io)

    if asyncio_compat.RUN_HAS_LOOP_FACTORY:
        return asyncio.run(main, debug=debug, loop_factory=factory, **run_kwargs)
    if run_kwargs:
        raise TypeError(f"run() got unexpected keyword arguments {sorted(run_kwargs)}")
    with asyncio.Runner(debug=debug, loop_factory=factory) as runner:
        return runner.run(main)
