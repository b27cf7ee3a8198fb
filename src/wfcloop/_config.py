"""wfcloop's settings from the environment, parsed here and nowhere else.

A leaf module (it imports nothing of wfcloop), so that every layer may ask
it: the compiled EventPoll for its pollers default, the selector and the
loop for the poller-mode defaults, ``python -m wfcloop`` to report them.
Each setting is read when its default is asked for (when an EventPoll or a
loop is created without the argument), not at import, so a process may set
it after importing wfcloop.

``WFCLOOP_POLLERS``
    The poller threads an EventPoll (and so a loop) gets when ``pollers``
    is not given: an integer >= 0 (``0``: inline mode; surrounding blanks
    are allowed).  Unset or blank: from the CPU count (see
    :func:`default_pollers`).  Anything else raises
    ``ValueError("WFCLOOP_POLLERS must be an integer >= 0, got '<value>'")``.
    Read by :func:`default_pollers` (``wfcloop.default_pollers``).

``WFCLOOP_ADAPTIVE``
    Whether poller mode is adaptive when ``adaptive`` is not given:
    ``0`` off (the pollers always read the kernel), ``1`` on.  Unset or
    blank: on.  Anything else raises
    ``ValueError("WFCLOOP_ADAPTIVE must be 0 or 1, got '<value>'")`` (the
    value with surrounding blanks removed).  Read by
    :func:`default_adaptive` (``wfcloop.default_adaptive``).

``WFCLOOP_POLLER_IO``
    Whether the pollers do socket transports' I/O in the pollers phase when
    ``poller_io`` is not given: ``0`` off, ``1`` on.  Unset or blank: on.
    Anything else raises
    ``ValueError("WFCLOOP_POLLER_IO must be 0 or 1, got '<value>'")``.
    Read by :func:`default_poller_io` (``wfcloop.default_poller_io``).

Not settings of the installed package, so not read here: ``WFCLOOP_DEBUG_BUILD``
(``setup.py``: a debug build of the extensions) and the test suite's
``WFCLOOP_STRESS``, ``WFCLOOP_CPYTHON_FULL`` and ``WFCLOOP_SKIP_PACKAGING``.
"""
import os

__all__ = ["POLLERS", "ADAPTIVE", "POLLER_IO", "SETTINGS", "raw",
           "default_pollers", "default_adaptive", "default_poller_io"]

POLLERS = "WFCLOOP_POLLERS"
ADAPTIVE = "WFCLOOP_ADAPTIVE"
POLLER_IO = "WFCLOOP_POLLER_IO"

#: Every setting this module reads.
SETTINGS = (POLLERS, ADAPTIVE, POLLER_IO)


def raw(name: str) -> str | None:
    """The environment's value of the setting ``name`` as given (None when
    unset): for reporting where a default came from."""
    if name not in SETTINGS:
        raise KeyError(f"{name!r} is not a wfcloop setting")
    return os.environ.get(name)


def default_pollers() -> int:
    """Poller threads an EventPoll gets when ``pollers`` is not given.

    ``WFCLOOP_POLLERS`` (an integer >= 0) overrides.  Otherwise: inline
    mode (0) on machines with 2 usable CPUs or fewer, where handing events
    to another thread costs more than it saves (measured: 0.6-0.85x
    uvloop with pollers reading the kernel, against ~1.0x inline, on
    2 CPUs); else half the CPUs, at most 4.  A wfcloop.Loop's pollers are
    adaptive (wfcloop.default_adaptive): they start parked and stay only
    where a trial shows them faster, so a count too high for the machine
    costs threads that sleep, not speed.
    """
    env = os.environ.get(POLLERS)
    if env is not None and env.strip() != "":
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{POLLERS} must be an integer >= 0, got {env!r}") from None
        if n < 0:
            raise ValueError(f"{POLLERS} must be an integer >= 0, got {env!r}")
        return n
    cpus = len(os.sched_getaffinity(0))
    if cpus <= 2:
        return 0
    return min(4, cpus // 2)


def default_adaptive() -> bool:
    """Whether poller mode is adaptive when ``adaptive`` is not given: yes,
    unless the environment sets ``WFCLOOP_ADAPTIVE=0``.

    Adaptive poller mode starts with the pollers parked and the loop thread
    reading the kernel itself (inline), tries the pollers when the loop
    thread is saturated, and keeps them only while they deliver more events
    per second (the rule is in ``cython/eventpoll/phases.c``, ADAPTIVE RULE).
    ``WFCLOOP_ADAPTIVE=0`` keeps the pollers reading the kernel always.
    """
    return _switch(ADAPTIVE)


def default_poller_io() -> bool:
    """Whether poller mode does socket I/O on the pollers when
    ``poller_io`` is not given: yes, unless ``WFCLOOP_POLLER_IO=0``.

    While the pollers read the kernel, a poller then also receives a socket
    transport's data and sends what ``write()`` queued (with the re-arm,
    once per loop iteration), and the loop thread runs only Python code.
    It applies only in the pollers phase, which adaptive mode keeps only
    where a trial shows it delivers more events per second than inline.
    """
    return _switch(POLLER_IO)


def _switch(name: str) -> bool:
    """An on/off setting: on unless ``name`` is "0"; any value but "", "0"
    and "1" (blanks around it removed) is a ValueError."""
    env = os.environ.get(name, "").strip()
    if env in ("", "1"):
        return True
    if env == "0":
        return False
    raise ValueError(f"{name} must be 0 or 1, got {env!r}")
