"""Differential harness for the loop API tests (tests/test_loop_api_*.py).

Every scenario runs on the standard library's ``asyncio.SelectorEventLoop``
(the reference) and on ``wfcloop.new_event_loop(pollers=N)`` for each N in
``POLLERS``; the tests then assert that all loops gave the same observable
result *and* that this result is the expected one, so a scenario cannot pass
by being equally broken everywhere.

Only asyncio's public API is used: the loop's internals are being replaced
and these tests are what proves the replacement right.
"""
import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile

import wfcloop

#: Poller counts wfcloop runs each scenario with: inline mode and two threads.
POLLERS = (0, 2)

#: How long one scenario may take before it counts as hung (not a timing
#: assertion: scenarios finish in milliseconds).
TIMEOUT = 20.0


def loop_factories(pollers=POLLERS):
    """``{name: factory}``: the stdlib reference first, then wfcloop with
    each poller count in ``pollers``."""
    factories = {"stdlib": asyncio.SelectorEventLoop}
    for n in pollers:
        factories[f"wfcloop[{n}]"] = (lambda n=n: wfcloop.new_event_loop(pollers=n))
    return factories


def normalize(message):
    """``message`` with what differs between two runs of one scenario (fd
    numbers and object addresses in reprs) replaced by placeholders."""
    message = re.sub(r"\bfd=\d+", "fd=N", message)
    return re.sub(r"\bat 0x[0-9a-fA-F]+", "at 0xADDR", message)


class Raised:
    """What a call raised: the exception's type and ``str()`` (normalized),
    comparable."""

    def __init__(self, exc):
        self.type = type(exc)
        self.message = normalize(str(exc))
        self.exc = exc

    def __eq__(self, other):
        if isinstance(other, Raised):
            return (self.type, self.message) == (other.type, other.message)
        return NotImplemented

    def __hash__(self):
        return hash((self.type, self.message))

    def __repr__(self):
        return f"Raised({self.type.__name__}, {self.message!r})"


def raises(exc_type, message):
    """The expected :class:`Raised` value for ``exc_type(message)``."""
    return Raised(exc_type(message)) if message is not None else Raised(exc_type())


def outcome(func, *args, **kwargs):
    """``func(*args, **kwargs)``'s return value, or a :class:`Raised`."""
    try:
        return func(*args, **kwargs)
    except Exception as exc:
        return Raised(exc)


async def aoutcome(awaitable):
    """The awaitable's result, or a :class:`Raised` for what it raised."""
    try:
        return await awaitable
    except Exception as exc:
        return Raised(exc)


async def acall(func, *args, **kwargs):
    """``await func(*args, **kwargs)``'s result, or a :class:`Raised` for
    what the call or the await raised (a bad keyword raises at the call)."""
    try:
        return await func(*args, **kwargs)
    except Exception as exc:
        return Raised(exc)


def finish_loop(loop):
    """Check that nothing is left pending on ``loop``, then close it the way
    ``asyncio.run`` does (async generators, default executor, close)."""
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
    assert not pending, f"{type(loop).__name__}: tasks left pending: {pending}"


def on_each(scenario, *, debug=False, pollers=POLLERS):
    """Call ``scenario(loop)`` with a fresh loop of each kind and return
    ``{loop name: result or Raised}``.  The scenario drives the loop itself
    (``run_until_complete``, ``run_forever``...).  Every loop is closed; no
    task may be left pending."""
    results = {}
    for name, factory in loop_factories(pollers).items():
        loop = factory()
        try:
            if debug:
                loop.set_debug(True)
            results[name] = outcome(scenario, loop)
        finally:
            if not loop.is_closed():
                finish_loop(loop)
    return results


def run_on_each(scenario, *args, debug=False, timeout=TIMEOUT, pollers=POLLERS):
    """Run coroutine function ``scenario(*args)`` to completion on each loop
    and return ``{loop name: result or Raised}``."""
    def drive(loop):
        return loop.run_until_complete(asyncio.wait_for(scenario(*args), timeout))
    return on_each(drive, debug=debug, pollers=pollers)


def assert_all(results, expected):
    """Every loop gave ``expected`` (and so the same as the stdlib loop)."""
    reference = results["stdlib"]
    assert reference == expected, f"the stdlib reference gave {reference!r}, expected {expected!r}"
    differing = {name: r for name, r in results.items() if r != reference}
    assert not differing, f"differs from the stdlib loop ({reference!r}): {differing!r}"


def assert_same(results):
    """Every loop gave the stdlib loop's result; return that result (for
    the caller's absolute checks on it)."""
    reference = results["stdlib"]
    differing = {name: r for name, r in results.items() if r != reference}
    assert not differing, f"differs from the stdlib loop ({reference!r}): {differing!r}"
    return reference


# --- helpers shared by the scenario files -----------------------------------

def has_ipv6_loopback():
    """Whether ``::1`` can be bound here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port_on_both():
    """A TCP port free on both 127.0.0.1 and ::1 (for happy eyeballs), as
    a listening pair of sockets ``(v4, v6, port)``; the caller closes them."""
    for _ in range(50):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            v6.bind(("::1", port))
        except OSError:
            v4.close()
            v6.close()
            continue
        return v4, v6, port
    raise OSError("no port free on both 127.0.0.1 and ::1")


_CERT_CACHE = {}


def self_signed_cert():
    """``(certfile, keyfile)`` of a self-signed certificate for
    ``localhost``/127.0.0.1, made at test time with the ``openssl`` command
    line tool (once per session, in a private temporary directory).
    Returns None where openssl is missing."""
    if "pair" in _CERT_CACHE:
        return _CERT_CACHE["pair"]
    openssl = shutil.which("openssl")
    if openssl is None:
        _CERT_CACHE["pair"] = None
        return None
    directory = tempfile.mkdtemp(prefix="wfcloop-tls-")
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60)
    _CERT_CACHE["pair"] = (cert, key)
    return cert, key


@contextlib.contextmanager
def tcp_listener():
    """A plain listening TCP socket on 127.0.0.1 (not owned by any loop)."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(16)
        yield lsock
    finally:
        lsock.close()


class Collector(asyncio.Protocol):
    """A stream protocol that records what happens to it."""

    def __init__(self):
        self.transport = None
        self.data = bytearray()
        self.events = []
        self.eof = None
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append("made")
        loop = asyncio.get_running_loop()
        self.eof = loop.create_future()
        self.lost = loop.create_future()

    def data_received(self, data):
        self.data += data

    def eof_received(self):
        self.events.append("eof")
        if not self.eof.done():
            self.eof.set_result(bytes(self.data))

    def connection_lost(self, exc):
        self.events.append(("lost", None if exc is None else type(exc).__name__))
        if not self.eof.done():
            self.eof.set_result(bytes(self.data))
        if not self.lost.done():
            self.lost.set_result(exc)
