"""Shared fixtures: leak checks on real fds and native threads."""
import contextlib
import os
import resource
import signal
import threading
import time

import pytest


def pytest_configure(config):
    """An interpreter's usual SIGINT for the tests.  A run started in the
    background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT
    ignored, and then Python installs no KeyboardInterrupt handler: the
    tests of a Ctrl-C during poll() would see nothing arrive (as
    tests/cpython_asyncio.py says for CPython's own tests)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def open_fds():
    """The fds this process has open, as listed by the kernel."""
    return set(int(name) for name in os.listdir("/proc/self/fd"))


def native_threads():
    """Number of native threads of this process (pollers included)."""
    return len(os.listdir("/proc/self/task"))


@pytest.fixture
def no_leaks():
    """Assert that the test leaves no fd and no native or Python thread."""
    fds_before = open_fds()
    threads_before = native_threads()
    py_threads_before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        leaked_threads = native_threads() - threads_before
        leaked_py = set(threading.enumerate()) - py_threads_before
        if leaked_threads <= 0 and not leaked_py:
            break
        time.sleep(0.01)
    leaked_fds = open_fds() - fds_before
    # /proc/self/fd's own directory fd may show up in the listing.
    leaked_fds = {fd for fd in leaked_fds if os.path.exists(f"/proc/self/fd/{fd}")}
    assert not leaked_fds, f"leaked fds: {sorted(leaked_fds)}"
    assert native_threads() <= threads_before, "leaked native threads"
    assert not (set(threading.enumerate()) - py_threads_before), "leaked Python threads"


@pytest.fixture
def raise_nofile():
    """Raise RLIMIT_NOFILE's soft limit to the hard limit for one test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture(params=[0, 4], ids=lambda n: f"pollers={n}")
def pollers(request):
    """Run a test in inline mode and with four poller threads."""
    return request.param


# pytest-asyncio runs every async test of this suite on wfcloop: through
# the loop-factory hook where the installed pytest-asyncio has it (1.5+),
# through the event_loop_policy fixture before that.
try:
    from pytest_asyncio.plugin import PytestAsyncioSpecs as _AsyncioSpecs
    _HAS_LOOP_FACTORIES = hasattr(_AsyncioSpecs, "pytest_asyncio_loop_factories")
except ImportError:
    _HAS_LOOP_FACTORIES = False

if _HAS_LOOP_FACTORIES:
    def pytest_asyncio_loop_factories(config, item):
        import wfcloop
        return {"wfcloop": wfcloop.new_event_loop}
else:
    @pytest.fixture(scope="session")
    def event_loop_policy():
        import wfcloop
        return wfcloop.EventLoopPolicy()


def import_cpython_tests(name):
    """Import one of CPython's own test modules (the interpreter's ``test``
    package).  Without it the tests that use it are skipped, except under
    CI (``CI`` set), where a missing package must not pass as green."""
    import importlib
    if os.environ.get("CI"):
        return importlib.import_module(name)
    return pytest.importorskip(
        name, reason=f"{name} is not installed (on Debian: libpython3.X-testsuite)")


class Alarm(Exception):
    """What alarm_raises() makes the SIGALRM handler raise."""


@contextlib.contextmanager
def alarm_raises(seconds):
    """Within the block, SIGALRM comes after `seconds` and its Python
    handler raises Alarm; the old handler and no timer afterwards."""
    def handler(signum, frame):
        raise Alarm
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
