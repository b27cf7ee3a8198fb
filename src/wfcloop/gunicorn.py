"""Gunicorn worker classes that run each worker process on its own
:class:`wfcloop.Loop`.

- ``wfcloop.gunicorn.Worker``: for aiohttp applications; aiohttp's
  ``GunicornWebWorker`` on wfcloop.  Needs ``aiohttp``.
- ``wfcloop.gunicorn.UvicornWorker``: for ASGI applications (Starlette,
  FastAPI, ...); uvicorn's gunicorn worker with ``loop`` set to wfcloop.
  Needs ``uvicorn`` 0.36 or later (``uvicorn-worker``'s class is used where
  that package is installed, uvicorn's own ``uvicorn.workers`` otherwise).

::

    gunicorn app:make_app -k wfcloop.gunicorn.Worker -w 4 --reuse-port --bind 0.0.0.0:8080
    gunicorn app:app -k wfcloop.gunicorn.UvicornWorker -w 4 --reuse-port --bind 0.0.0.0:8080

Each worker creates its loop after the fork (poller threads do not survive a
fork), with ``wfcloop.default_pollers()`` poller threads: set
``WFCLOOP_POLLERS`` (e.g. ``WFCLOOP_POLLERS=0``, inline mode, for as many
workers as cores) in gunicorn's environment to choose.  With ``--reuse-port``
gunicorn sets ``SO_REUSEPORT``; recent releases (27 was tested) then give
every worker its own listening socket, and the kernel spreads new
connections over the workers' sockets.

This module imports without aiohttp, uvicorn or gunicorn; the classes are
made when first looked up, and raise ImportError naming the missing package.
"""
import asyncio

__all__ = ["Worker", "UvicornWorker"]

_classes = {}


def _make_worker():
    try:
        from aiohttp.worker import GunicornWebWorker
        from gunicorn.workers.base import Worker as _GunicornBase
    except ImportError as exc:
        raise ImportError(
            "wfcloop.gunicorn.Worker needs aiohttp and gunicorn: "
            f"pip install aiohttp gunicorn ({exc})") from exc

    from .loop import new_event_loop

    class Worker(GunicornWebWorker):
        """aiohttp's gunicorn worker, each worker process on a wfcloop.Loop."""

        def init_process(self):
            # aiohttp's init_process closes asyncio.get_event_loop() (which
            # would make a default loop just to close it) and makes a new
            # default loop; ours makes the wfcloop loop instead, here in the
            # worker process, after the fork.
            self.loop = new_event_loop()
            asyncio.set_event_loop(self.loop)
            _GunicornBase.init_process(self)

    Worker.__module__ = __name__
    Worker.__qualname__ = "Worker"
    return Worker


def _make_uvicorn_worker():
    try:
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "wfcloop.gunicorn.UvicornWorker needs uvicorn and gunicorn: "
            f"pip install uvicorn gunicorn ({exc})") from exc
    try:
        from uvicorn_worker import UvicornWorker as _Base
    except ImportError:
        import warnings
        with warnings.catch_warnings():
            # uvicorn.workers says it is deprecated in favour of uvicorn-worker.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                from uvicorn.workers import UvicornWorker as _Base
            except ImportError as exc:
                raise ImportError(
                    "wfcloop.gunicorn.UvicornWorker needs gunicorn and uvicorn's "
                    f"gunicorn worker: pip install gunicorn uvicorn-worker ({exc})") from exc

    class UvicornWorker(_Base):
        """uvicorn's gunicorn worker, each worker process on a wfcloop.Loop
        (uvicorn's ``loop`` setting names wfcloop's loop factory; uvicorn
        0.36+ resolves a ``module:attribute`` there to the factory)."""

        CONFIG_KWARGS = {**_Base.CONFIG_KWARGS, "loop": "wfcloop:new_event_loop"}

    UvicornWorker.__module__ = __name__
    UvicornWorker.__qualname__ = "UvicornWorker"
    return UvicornWorker


_FACTORIES = {"Worker": _make_worker, "UvicornWorker": _make_uvicorn_worker}


def __getattr__(name):
    # PEP 562: gunicorn's ``-k wfcloop.gunicorn.Worker`` looks the class up
    # here, and only then are aiohttp / uvicorn imported.
    if name in _FACTORIES:
        if name not in _classes:
            _classes[name] = _FACTORIES[name]()
        return _classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_FACTORIES))
