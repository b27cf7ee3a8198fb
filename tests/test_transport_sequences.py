"""Differential testing of the compiled transports (TCP, TLS, UDP) against
asyncio's own: hypothesis draws a sequence of operations on one connection
-- the tested end, either accepted by create_server() or made by
create_connection(), over TCP or a unix socket, read by a Protocol or a
BufferedProtocol -- writes of 0 B to 1 MiB, writelines, write_eof,
pause/resume reading, write buffer limits, close, abort on the tested end's
transport, and writes, write_eof, pause/resume reading, close, abort and a
reset on the peer's; each sequence runs once with the tested end on the
standard library's loop and once on wfcloop at each ``POLLERS`` value.
A third family upgrades a plain connection with start_tls() on both ends,
some steps in; a fourth runs loop.sendfile() among the operations, plain
or TLS (see Sendfiles).  Datagram endpoints get the same (below): sendto() bursts of 0 B to 64 KiB,
a wrong address, a str, pause/resume reading, close, abort; the peer's
bursts and close.

The peer is always asyncio's own (a stdlib loop in a thread), so what it
sees is a function of what the tested end's transport did.  After each step
the harness waits until the connection is quiet (every byte written has
arrived or its receiver is paused or gone; an end's close or loss has
reached the other end where that one reads; nothing happened for a few
milliseconds), then records, for each side: the protocol callbacks of that
step in order (consecutive data_received folded into one, with the byte
count), the operation's return value or exception, is_closing(),
is_reading(), whether a write buffer is held; plus the asyncio logger's
messages of the tested end's thread.  All loops must give the same record,
and the bytes each side received must be the other's, in order, byte-exact.

Buffers are fixed (SO_SNDBUF / SO_RCVBUF on both sockets, no autotuning)
and writes are either small (never filling them within one sequence) or
1 MiB (always overflowing them), so where a pause_writing() falls does not
depend on the kernel's accounting.

Short form: 12 sequences per transport (TLS: 6, start_tls: 6, sendfile: 8,
UDP: 12); WFCLOOP_STRESS=long: 300 (TLS: 150, start_tls: 150, sendfile:
150, UDP: 300).
"""
import asyncio
import logging
import os
import re
import shutil
import socket
import ssl
import tempfile
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _differential import Raised, loop_factories
from _echo import scale

# The long form's 300 sequences of 22 steps on three loops take longer than
# the suite's 300 s per test on 3.13 (about 1 s a sequence).
pytestmark = pytest.mark.timeout(scale(300, 1800))

LOOPS = loop_factories()
#: Bytes each side writes are slices of this, so a byte out of place shows.
PATTERN = bytes(range(251)) * (5 * 1024 * 1024 // 251 + 2)
SIZES = [0, 1, 1000, 1 << 20]
BUFFER = 64 * 1024           # SO_SNDBUF and SO_RCVBUF, both ends
QUIET = 0.012                # a step is over after this long with nothing new
SENDFILE_QUIET = 0.15        # ...while a sendfile() runs over TLS (Sendfiles.quiet)
STEP_CAP = 1.5               # ...or after this long in any case (a stuck close)
TEARDOWN_CAP = 3.0

tested_ops = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(SIZES)),
    st.tuples(st.just("write"), st.sampled_from(SIZES)),
    st.tuples(st.just("writelines"), st.lists(st.sampled_from(SIZES), min_size=1, max_size=3)),
    st.tuples(st.just("write_eof")),
    st.tuples(st.just("pause_reading")),
    st.tuples(st.just("resume_reading")),
    st.tuples(st.just("set_write_buffer_limits"), st.sampled_from([0, 1000, 300_000, None])),
    st.tuples(st.just("close")),
    st.tuples(st.just("abort")),
)
peer_ops = st.one_of(
    st.tuples(st.just("peer_write"), st.sampled_from(SIZES)),
    st.tuples(st.just("peer_write"), st.sampled_from(SIZES)),
    st.tuples(st.just("peer_write_eof")),
    st.tuples(st.just("peer_pause_reading")),
    st.tuples(st.just("peer_resume_reading")),
    st.tuples(st.just("peer_close")),
    st.tuples(st.just("peer_abort")),
    st.tuples(st.just("peer_reset")),
)
sequences = st.lists(st.one_of(tested_ops, tested_ops, peer_ops), min_size=1, max_size=22)
#: loop.sendfile() of the next ``count`` bytes from a file, as a task whose
#: outcome the tested end notes when it ends (0: asyncio's ValueError on a
#: socket, the whole file over TLS); a sequence has one some steps in.
sendfile_ops = st.tuples(st.just("sendfile"), st.sampled_from([0, 1000, 1 << 20]))
sendfile_sequences = st.builds(
    lambda before, first, after: before + [first] + after,
    st.lists(st.one_of(tested_ops, peer_ops), max_size=5),
    sendfile_ops,
    st.lists(st.one_of(tested_ops, sendfile_ops, peer_ops), max_size=10))
#: A plain connection upgraded by start_tls() on both ends, some steps in.
upgraded_sequences = st.builds(
    lambda before, after: before + [("start_tls",)] + after,
    st.lists(st.one_of(tested_ops, tested_ops, peer_ops), max_size=6),
    st.lists(st.one_of(tested_ops, tested_ops, peer_ops), max_size=14))
HANDSHAKE_TIMEOUT = 0.5      # start_tls() on an end whose peer cannot answer
START_TLS_CAP = 1.5          # start_tls() given up (see Connection.start_tls)


class StepLog:
    """What both kinds of recording protocol share: callbacks written down
    by the step they came in (``clock[0]``), connection_made() and
    connection_lost() among them."""

    def __init__(self, clock):
        self.clock = clock
        self.events = []
        self.transport = None
        self.received = 0
        self.sent = 0
        self.reading = True
        self.lost = False

    def note(self, *event):
        self.events.append((self.clock[0],) + event)

    def note_folded(self, kind, value):
        """A ``kind`` event with ``value``, added to the last one's where
        that was a ``kind`` event of this step (one per step and kind)."""
        last = self.events[-1] if self.events else None
        if last and last[0] == self.clock[0] and last[1] == kind:
            self.events[-1] = last[:2] + (last[2] + value,)
        else:
            self.note(kind, value)

    def connection_made(self, transport):
        self.transport = transport
        self.note("made")

    def connection_lost(self, exc):
        self.lost = True
        self.note("lost", None if exc is None else (type(exc).__name__, getattr(exc, "errno", None)))


class Recorder(StepLog, asyncio.Protocol):
    """A protocol that writes down its callbacks, by step, and checks that
    the bytes it receives are the peer's, in order (``received`` and
    ``sent`` count bytes)."""

    def __init__(self, clock, keep_open_on_eof):
        super().__init__(clock)
        self.keep_open_on_eof = keep_open_on_eof
        self.eof = False
        self.corrupt = None
        self.writing_paused = False
        # Set by a sendfile() over TLS: asyncio's fallback takes the
        # pause_writing() it causes and hands the resume on only where the
        # protocol was paused when it began, so a resume_writing() may come
        # after with no pause_writing() before it -- where the transport
        # was still paused as the last block went in, which is the
        # kernel's timing (Sendfiles.quiet).  Such a resume is not noted.
        self.sendfile_over_tls = False

    def data_received(self, data):
        self.got(data)

    def got(self, data):
        expected = PATTERN[self.received % 251:self.received % 251 + len(data)]
        if bytes(data) != expected and self.corrupt is None:
            self.corrupt = (self.received, len(data))
        self.received += len(data)
        self.note_folded("data", len(data))

    def eof_received(self):
        self.eof = True
        self.note("eof")
        return self.keep_open_on_eof

    def pause_writing(self):
        self.writing_paused = True
        self.note("pause_writing")

    def resume_writing(self):
        if self.writing_paused or not self.sendfile_over_tls:
            self.note("resume_writing")
        self.writing_paused = False

    def chunk(self, size):
        """The next ``size`` bytes this side writes."""
        offset = self.sent % 251
        self.sent += size
        return PATTERN[offset:offset + size]


class BufferedRecorder(Recorder, asyncio.BufferedProtocol):
    """The same, reading into its own buffer (the transports' get_buffer()
    path)."""

    def __init__(self, clock, keep_open_on_eof):
        super().__init__(clock, keep_open_on_eof)
        self.buffer = bytearray(7001)

    def get_buffer(self, sizehint):
        # A memoryview: asyncio's TLS transport reads a second record into
        # a copy where the buffer is a bytearray, and the bytes are lost
        # (CPython gh-156275, open);
        # test_loop_tls_transport.py's bytearray test shows wfcloop's
        # keeping them.
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes):
        self.got(bytes(self.buffer[:nbytes]))


class PeerThread:
    """asyncio's own loop in a thread: the reference end of the connection."""

    def __init__(self):
        self.loop = asyncio.SelectorEventLoop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sequence-peer")
        self.thread.start()

    def call(self, func, *args):
        """``func(*args)`` on the peer's loop, its outcome returned here."""
        done = threading.Event()
        box = []

        def run():
            try:
                box.append(func(*args))
            except Exception as exc:
                box.append(Raised(exc))
            done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10), "peer loop hung"
        return box[0]

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def close(self):
        async def shutdown():
            await self.loop.shutdown_asyncgens()
        self.run(shutdown())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ThreadLogs(logging.Handler):
    """The asyncio logger's messages emitted on one thread (the tested end's)."""

    def __init__(self, thread_id):
        super().__init__(logging.DEBUG)
        self.thread_id = thread_id
        self.messages = []

    def emit(self, record):
        if record.thread == self.thread_id:
            # The first line (the rest names objects by their reprs), with
            # the reprs in it and the class before a method's name left
            # out: they name wfcloop's own classes (as the README says)
            # and the fd numbers, which differ from loop to loop.
            line = str(record.msg).split("\n", 1)[0]
            line = re.sub(r"\w+\.(\w+\()", r"\1", re.sub(r"<[^<>]*>", "<...>", line))
            exc = record.exc_info[0].__name__ if record.exc_info else None
            self.messages.append((record.levelname, line, exc))


def tls_contexts():
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def sized_socket(family=socket.AF_INET):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return sock


def apply_tested(op, tested):
    transport = tested.transport
    name = op[0]
    if name in ("write", "writelines"):
        sizes = [op[1]] if name == "write" else op[1]
        sent = tested.sent
        chunks = [tested.chunk(size) for size in sizes]
        try:
            return transport.write(chunks[0]) if name == "write" else transport.writelines(chunks)
        except Exception:
            tested.sent = sent          # refused: the pattern goes on where it was
            raise
    if name == "set_write_buffer_limits":
        return transport.set_write_buffer_limits(high=op[1])
    return call_tracking_reading(tested, name)


def call_tracking_reading(protocol, name):
    """``protocol.transport.<name>()``, with pause/resume_reading noted in
    ``protocol.reading`` (what the settling reads)."""
    result = getattr(protocol.transport, name)()
    if name in ("pause_reading", "resume_reading"):
        protocol.reading = name == "resume_reading"
    return result


def apply_peer(op, peer):
    transport = peer.transport
    name = op[0][len("peer_"):]
    if name == "write":
        return transport.write(peer.chunk(op[1]))
    if name == "reset":
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        return transport.abort()
    return call_tracking_reading(peer, name)


def delivered(sender, receiver):
    """Whether nothing more can arrive from ``sender`` at ``receiver`` now."""
    return (receiver.received >= sender.sent or not receiver.reading
            or receiver.lost or sender.lost or receiver.eof)


def ending(side, other):
    """Whether one end's close or loss has yet to reach the other end,
    which reads and has seen neither an EOF nor its own loss."""
    return closing(side) and other.reading and not (other.eof or other.lost)


async def wait_until(done, cap):
    """Poll ``done()`` until it is true or ``cap`` seconds have passed."""
    deadline = time.monotonic() + cap
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.002)


async def settle(tested, peer, cap, nothing_due, sendfiles=None):
    """Wait until both ends are quiet (see the module's docstring):
    ``nothing_due()`` is true and neither end has had a callback or
    received anything (nor has a sendfile() moved on) for QUIET seconds
    (``sendfiles.quiet()`` while one runs); at most ``cap`` seconds."""
    deadline = time.monotonic() + cap
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.002)
        now = tuple((len(p.events), p.received) for p in (tested, peer))
        if sendfiles is not None:
            now += (sendfiles.progress(),)
        if now != last:
            last, quiet_since = now, time.monotonic()
            continue
        quiet = QUIET if sendfiles is None else sendfiles.quiet()
        if nothing_due() and time.monotonic() - quiet_since >= quiet:
            return


def closing(side):
    """Whether ``side``'s end is closing or lost (a TLS transport closed
    twice raises AttributeError from is_closing(): closed too)."""
    return side.lost or outcome_of(side.transport.is_closing) is not False


def connection_settled(tested, peer):
    return (delivered(tested, peer) and delivered(peer, tested)
            and not ending(tested, peer) and not ending(peer, tested))


def observed(exc):
    """What is compared of an exception an operation raised: its type and
    text, but only the type of an AttributeError (asyncio's TLS transport
    closed twice has let go of its protocol, and its text names one of the
    protocol's private attributes; the README's differences list says
    wfcloop's is its own) or a KeyError (a second sendfile() at once: its
    text is the socket's fd number)."""
    if isinstance(exc, (AttributeError, KeyError)):
        return type(exc)
    return Raised(exc)


def outcome_of(method):
    """``method()``'s return value, or what is compared of its exception."""
    try:
        return method()
    except Exception as exc:
        return observed(exc)


def transport_state(transport):
    size = outcome_of(transport.get_write_buffer_size)
    return (outcome_of(transport.is_closing), outcome_of(transport.is_reading),
            size > 0 if type(size) is int else size)


class Sendfiles:
    """loop.sendfile() on the tested end's transport, each call a task that
    sends the next ``count`` bytes of the pattern from a file; its outcome
    (bytes sent, or what is compared of its exception) is noted on the
    tested end when it ends.  While one is in flight over TLS (asyncio's
    fallback: the file read in an executor, written in 16 KiB blocks),
    the tested end's writes and a second sendfile are not made: they would
    land between blocks where the executor's timing puts them.  Nor is one
    started over TLS once the peer's end is closing or gone: the peer's
    loop answering the first block (its TLS layer fails on data after its
    close_notify, and its socket resets) races the fallback's next ones,
    so whether sendfile() returns or fails is the threads' timing."""

    def __init__(self, tested, tls):
        self.tested = tested
        self.tls = tls                  # set when start_tls() has upgraded it
        self.tasks = []
        self.file = None

    def in_flight(self):
        return any(not task.done() for task in self.tasks)

    def running(self):
        """Whether a sendfile() over TLS goes on without a callback to show
        it: asyncio's fallback reads and writes block after block while
        the transport's buffer is under its high-water mark (which may be
        while the peer reads nothing: the TLS transport's buffer takes
        it), and waits only above it, after reading one block more (the
        file's position, ``progress()``, shows that read)."""
        if not (self.tls and self.in_flight()):
            return False
        size = outcome_of(self.tested.transport.get_write_buffer_size)
        limits = outcome_of(self.tested.transport.get_write_buffer_limits)
        return type(size) is int and type(limits) is tuple and size < limits[1]

    def progress(self):
        return None if self.file is None else self.file.tell()

    def quiet(self):
        """How long a step waits with nothing new: longer while one is in
        flight over TLS.  There the fallback's 16 KiB blocks stay in the
        TLS transport's buffer while the socket's transport holds 64 KiB
        (its high-water mark); the peer's kernel can take tens of KiB more
        some tens of ms after it first said its window was full, which
        drains that transport, moves the TLS buffer to it, and resumes the
        sendfile: the step where that falls is the kernel's timing unless
        a step outlasts it."""
        return SENDFILE_QUIET if self.tls and self.in_flight() else QUIET

    def start(self, count):
        tested = self.tested
        if self.file is None:
            self.file = tempfile.TemporaryFile()
            self.file.write(PATTERN[:251 + (1 << 20)])
        offset, sent, reading = tested.sent % 251, tested.sent, tested.reading
        # asyncio's fallback reads from the file's position where offset
        # is 0 (it seeks only to a nonzero one).
        self.file.seek(offset)
        tested.sent += count
        tested.reading = False           # sendfile() pauses reading while it runs
        tested.sendfile_over_tls |= self.tls
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(loop.sendfile(tested.transport, self.file, offset, count))

        def ended(task):
            if task.cancelled():             # by close(): it never ended
                return
            if task.exception() is None:
                tested.note("sendfile", task.result())
                tested.sent += task.result() - count   # count 0 over TLS: the whole file
            else:
                tested.note("sendfile", observed(task.exception()))
                if not tested.lost:
                    tested.sent = sent       # refused: nothing of it went out
            # It has resumed reading where it paused it (or the transport is gone).
            tested.reading = reading if tested.lost else outcome_of(tested.transport.is_reading) is True
        task.add_done_callback(ended)
        self.tasks.append(task)
        return "started"

    def skipped(self, op, peer_closing):
        """Whether ``op`` is not made now (see the class's docstring)."""
        if not self.tls:
            return False
        if op[0] in ("write", "writelines", "sendfile") and self.in_flight():
            return True
        return op[0] == "sendfile" and peer_closing

    async def close(self):
        """Wait for the tasks to end (the teardown has aborted the
        transport): whether each had, cancelled if not."""
        await wait_until(lambda: not self.in_flight(), TEARDOWN_CAP)
        ended = [task.done() for task in self.tasks]
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.file is not None:
            self.file.close()
        return ended


class Connection:
    """One connection between ``tested`` (on the running loop) and ``peer``
    (on the peer's loop): ``side`` says which of them accepts ("server":
    the tested end), ``family`` is "inet" (127.0.0.1) or "unix"."""

    def __init__(self, tested, peer, peer_thread, side, family, tls):
        self.tested, self.peer, self.peer_thread = tested, peer, peer_thread
        self.side, self.family = side, family
        self.contexts = tls_contexts() if tls else (None, None)
        self.server = None
        if family == "unix":
            self.directory = tempfile.mkdtemp(prefix="wfcloop-sequence-")
            self.listener = sized_socket(socket.AF_UNIX)
            self.listener.bind(os.path.join(self.directory, "socket"))
        else:
            self.directory = None
            self.listener = sized_socket()
            self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)

    async def listen(self, protocol):
        """The listening server on the running loop (it owns the listener)."""
        loop = asyncio.get_running_loop()
        serve = loop.create_unix_server if self.family == "unix" else loop.create_server
        return await serve(lambda: protocol, sock=self.listener, ssl=self.contexts[0])

    async def dial(self, protocol):
        """Connect to the listener from the running loop."""
        loop = asyncio.get_running_loop()
        client = sized_socket(self.listener.family)
        client.connect(self.listener.getsockname())
        client.setblocking(False)
        connect = loop.create_unix_connection if self.family == "unix" else loop.create_connection
        await connect(lambda: protocol, sock=client, ssl=self.contexts[1],
                      server_hostname="localhost" if self.contexts[1] else None)

    async def start_tls(self):
        """start_tls() on both ends (the tested end on the server's side
        where it accepted), the server's first: each end's outcome."""
        server_ctx, client_ctx = tls_contexts()

        async def upgrade(protocol, server_side):
            loop = asyncio.get_running_loop()
            try:
                # asyncio's own start_tls() on a transport already closed
                # never returns (its handshake timeout aborts a transport
                # that will not call connection_lost() again): give up
                # after a while, and compare that too.
                transport = await asyncio.wait_for(loop.start_tls(
                    protocol.transport, protocol, server_ctx if server_side else client_ctx,
                    server_side=server_side, server_hostname=None if server_side else "localhost",
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT), START_TLS_CAP)
            except Exception as exc:
                return observed(exc)
            protocol.transport, protocol.reading = transport, True
            return "upgraded"

        def switched(protocol):
            """Whether start_tls() has put its TLS protocol in front of
            ``protocol`` (the server's end must have, before the client's
            hello can arrive: else ``protocol`` could read the hello)."""
            # (asyncio's TLS transport, closed, has no protocol to give.)
            return outcome_of(protocol.transport.get_protocol) is not protocol

        if self.side == "server":
            tested = asyncio.ensure_future(upgrade(self.tested, True))
            await wait_until(lambda: tested.done() or switched(self.tested), START_TLS_CAP)
            peer = self.on_peer(upgrade(self.peer, False))
        else:
            peer = self.on_peer(upgrade(self.peer, True))
            await wait_until(lambda: peer.done() or self.peer_thread.call(switched, self.peer),
                             START_TLS_CAP)
            tested = asyncio.ensure_future(upgrade(self.tested, False))
        return await tested, await peer

    def on_peer(self, coro):
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.peer_thread.loop))

    async def open(self):
        """Listen on the accepting end's loop, then dial from the other's."""
        if self.side == "server":
            self.server = await self.listen(self.tested)
            await self.on_peer(self.dial(self.peer))
        else:
            self.server = await self.on_peer(self.listen(self.peer))
            await self.dial(self.tested)
        both_made = lambda: self.tested.transport is not None and self.peer.transport is not None
        await wait_until(both_made, 5)
        assert both_made(), "the connection never came up"

    async def close(self):
        """Close the listening server on its loop, and what is left."""
        async def stop_serving(server):
            server.close()
            await server.wait_closed()
        if self.server is not None:
            if self.side == "server":
                await stop_serving(self.server)
            else:
                await self.on_peer(stop_serving(self.server))
        self.listener.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


async def run_sequence(sequence, keep_open, tls, buffered, side="server", family="inet"):
    """The record of one sequence on the running loop (the tested end's).
    ``tls``: the connection made with TLS from the start."""
    clock = [0]
    tested = (BufferedRecorder if buffered else Recorder)(clock, keep_open)
    peer = Recorder(clock, False)
    peer_thread = PeerThread()
    logs = ThreadLogs(threading.get_ident())
    logging.getLogger("asyncio").addHandler(logs)
    steps = []
    sendfiles = Sendfiles(tested, tls)
    connection = Connection(tested, peer, peer_thread, side, family, tls)
    try:
        await connection.open()
        settled = lambda: connection_settled(tested, peer) and not sendfiles.running()
        await settle(tested, peer, STEP_CAP, settled, sendfiles)
        for index, op in enumerate(sequence, 1):
            clock[0] = index
            if op[0] == "start_tls":
                result = await connection.start_tls()
                sendfiles.tls = True
            elif op[0].startswith("peer_"):
                result = peer_thread.call(apply_peer, op, peer)
            elif sendfiles.skipped(op, peer_thread.call(closing, peer)):
                result = "skipped"
            elif op[0] == "sendfile":
                result = sendfiles.start(op[1])
            else:
                try:
                    result = apply_tested(op, tested)
                except Exception as exc:
                    result = observed(exc)
            await settle(tested, peer, STEP_CAP, settled, sendfiles)
            steps.append((op, result, transport_state(tested.transport),
                          peer_thread.call(transport_state, peer.transport)))
        clock[0] = "teardown"
        try:
            teardown = tested.transport.abort()
        except Exception as exc:
            teardown = observed(exc)
        peer_thread.call(peer.transport.abort)
        await wait_until(lambda: tested.lost and peer.lost, TEARDOWN_CAP)
    finally:
        sendfiles_ended = await sendfiles.close()
        await connection.close()
        logging.getLogger("asyncio").removeHandler(logs)
        peer_thread.close()
    return {
        "steps": steps,
        "teardown": teardown,
        "tested events": tested.events,
        "peer events": peer.events,
        "bytes": (tested.received, peer.received),
        "corrupt": (tested.corrupt, peer.corrupt),
        "tested logs": logs.messages,
        "sendfiles ended": sendfiles_ended,
    }


def on_each_loop(run, *args):
    """``{loop name: the record of run(*args)}`` with the tested end on each
    loop of LOOPS."""
    results = {}
    for name, factory in LOOPS.items():
        with asyncio.Runner(loop_factory=factory) as runner:
            results[name] = runner.run(run(*args))
    return results


def records(sequence, keep_open, tls, buffered=False, side="server", family="inet"):
    return on_each_loop(run_sequence, sequence, keep_open, tls, buffered, side, family)


def assert_all_same(results):
    reference = results["stdlib"]
    assert reference.get("corrupt", (None, None)) == (None, None)
    assert reference.get("bad", (None, None)) == (None, None)
    for name, result in results.items():
        for key in reference:
            assert result[key] == reference[key], f"{name} differs from stdlib in {key!r}"


def open_fds():
    return {fd for fd in os.listdir("/proc/self/fd") if os.path.exists(f"/proc/self/fd/{fd}")}


def check(records_of, *args):
    """The records of one sequence the same on every loop, nothing left."""
    fds, threads = open_fds(), set(threading.enumerate())
    assert_all_same(records_of(*args))
    assert not (open_fds() - fds), "leaked fds"
    assert not (set(threading.enumerate()) - threads), "leaked threads"


EXAMPLE_SETTINGS = dict(deadline=None, derandomize=True,
                        suppress_health_check=[HealthCheck.too_slow])


sides = st.sampled_from(["server", "client"])
families = st.sampled_from(["inet", "unix"])


@settings(max_examples=scale(12, 300), **EXAMPLE_SETTINGS)
@given(sequence=sequences, keep_open=st.booleans(), buffered=st.booleans(),
       side=sides, family=families)
def test_stream_transport_sequences_match_asyncio(sequence, keep_open, buffered, side, family):
    check(records, sequence, keep_open, False, buffered, side, family)


@settings(max_examples=scale(6, 150), **EXAMPLE_SETTINGS)
@given(sequence=sequences, keep_open=st.booleans(), buffered=st.booleans(),
       side=sides, family=families)
def test_tls_transport_sequences_match_asyncio(sequence, keep_open, buffered, side, family):
    check(records, sequence, keep_open, True, buffered, side, family)


@settings(max_examples=scale(6, 150), **EXAMPLE_SETTINGS)
@given(sequence=upgraded_sequences, keep_open=st.booleans(), buffered=st.booleans(),
       side=sides, family=families)
def test_start_tls_sequences_match_asyncio(sequence, keep_open, buffered, side, family):
    check(records, sequence, keep_open, False, buffered, side, family)


@settings(max_examples=scale(8, 150), **EXAMPLE_SETTINGS)
@given(sequence=sendfile_sequences, tls=st.booleans(), keep_open=st.booleans(),
       buffered=st.booleans(), side=sides, family=families)
def test_sendfile_sequences_match_asyncio(sequence, tls, keep_open, buffered, side, family):
    check(records, sequence, keep_open, tls, buffered, side, family)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_known_sendfile_sequence(tls):
    """sendfile() to a paused peer, a write and a second sendfile() after
    it, then the peer reading.  On a plain socket the first waits for the
    peer: the write is refused ("sendfile is in progress"), the second
    sendfile() raises KeyError (asyncio's loop has taken the transport out
    of its map), the first sends all 1 MiB once the peer reads.  Over TLS
    asyncio's fallback has put the whole 1 MiB in the transport's buffer
    in its own step, paused peer or not, so the write and the second are
    made.  Every byte arrives, in order."""
    sequence = [("peer_pause_reading",), ("sendfile", 1 << 20), ("write", 1),
                ("sendfile", 1000), ("peer_resume_reading",), ("write", 1000)]
    results = records(sequence, keep_open=False, tls=tls)
    assert_all_same(results)
    ref = results["stdlib"]
    outcomes = [step[1] for step in ref["steps"]]
    events = ref["tested events"]
    if tls:
        assert outcomes[1:4] == ["started", None, "started"]
        assert events[1:3] == [(2, "sendfile", 1 << 20), (4, "sendfile", 1000)]
        assert ref["bytes"] == (0, (1 << 20) + 1 + 1000 + 1000)
    else:
        assert outcomes[2] == Raised(RuntimeError("unable to write; sendfile is in progress"))
        assert events[1:3] == [(4, "sendfile", KeyError), (5, "sendfile", 1 << 20)]
        assert ref["bytes"] == (0, (1 << 20) + 1000)
    assert ref["sendfiles ended"] == [True, True]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_sendfile_under_a_close_never_returns_as_in_asyncio(end):
    """A close() or abort() while asyncio's os.sendfile() waits for the
    socket to be writable: the transport is lost, but sendfile() never
    returns (the close takes the fd's writer away from under it), and
    connection_lost's clean-up logs InvalidStateError (it sets the
    exception of the drain waiter sendfile() has already awaited) -- on
    3.11.7, 3.12.1 and 3.13.0.  wfcloop does the same; a Python where this
    fails has fixed it, and wfcloop should then follow."""
    sequence = [("peer_pause_reading",), ("sendfile", 1 << 20), (end,), ("peer_resume_reading",)]
    results = records(sequence, keep_open=False, tls=False)
    assert_all_same(results)
    ref = results["stdlib"]
    assert ref["tested events"] == [(0, "made"), (3, "lost", None)]
    assert ref["sendfiles ended"] == [False]
    assert [line[2] for line in ref["tested logs"]] == ["InvalidStateError"]


@pytest.mark.parametrize("end", ["close", "abort"])
def test_start_tls_of_a_closed_transport_never_returns_as_in_asyncio(end):
    """start_tls() of a transport closed or aborted a step before: its
    handshake timeout aborts a transport that will not call
    connection_lost() again, so the waiter is never set and start_tls()
    never returns (3.11.7, 3.12.1, 3.13.0; the harness gives up after
    START_TLS_CAP).  wfcloop does the same; a Python where this fails has
    fixed it, and wfcloop should then follow."""
    results = records([(end,), ("start_tls",)], keep_open=False, tls=False)
    assert_all_same(results)
    tested_outcome, _ = results["stdlib"]["steps"][1][1]
    assert tested_outcome == Raised(TimeoutError())


@pytest.mark.parametrize("side", ["server", "client"])
def test_start_tls_of_a_tls_connection(side):
    """TLS in TLS: start_tls() on both ends of a connection start_tls()
    has upgraded already, data written before, between and after, 1 MiB
    through both layers and a close that unwraps them."""
    sequence = [("start_tls",), ("write", 1000), ("start_tls",), ("write", 1000),
                ("peer_write", 1000), ("write", 1 << 20), ("close",)]
    results = records(sequence, keep_open=False, tls=False, side=side)
    assert_all_same(results)
    ref = results["stdlib"]
    assert [step[1] for step in ref["steps"]][:3] == [("upgraded", "upgraded"), None,
                                                     ("upgraded", "upgraded")]
    assert ref["bytes"] == (1000, 1000 + 1000 + (1 << 20))
    assert ref["tested events"][-1] == (7, "lost", None)


def test_a_known_tcp_sequence():
    """One fixed sequence through every op (so the harness is exercised
    without hypothesis' luck), with its expected record checked, not only
    the agreement: backpressure each way, a half-close kept open, the
    tested end's close with data buffered, a reset seen by a paused reader."""
    sequence = [
        ("peer_pause_reading",), ("write", 1 << 20), ("write", 1000),
        ("peer_resume_reading",), ("pause_reading",), ("peer_write", 1 << 20),
        ("resume_reading",), ("peer_write_eof",), ("write", 1), ("write_eof",),
    ]
    results = records(sequence, keep_open=True, tls=False)
    assert_all_same(results)
    ref = results["stdlib"]
    events = [event[1] for event in ref["tested events"]]
    assert events[:1] == ["made"] and "pause_writing" in events and "eof" in events
    assert events.index("pause_writing") < events.index("resume_writing") < events.index("eof")
    assert ref["bytes"] == ((1 << 20), (1 << 20) + 1001)
    assert [event[1] for event in ref["peer events"]].count("pause_writing") == 1


@pytest.mark.parametrize("sequence, keep_open, tested_events", [
    # A write to a reset peer: asyncio's one send reports ECONNRESET (a
    # second send, as wfcloop made before, reports EPIPE).
    ([("pause_reading",), ("peer_reset",), ("write", 1)], False,
     [(0, "made"), (3, "lost", ("ConnectionResetError", 104))]),
    # 1 MiB to a peer that has closed: the socket takes what fits, the
    # rest is buffered and the protocol paused; the peer's reset then
    # ends it (a second send at once, as wfcloop made before, failed
    # before pause_writing()).
    ([("peer_close",), ("write", 1 << 20)], True,
     [(0, "made"), (1, "eof"), (2, "pause_writing"), (2, "lost", ("BrokenPipeError", 32))]),
], ids=["write-after-reset", "write-after-peer-close"])
def test_sequences_found_by_the_random_ones(sequence, keep_open, tested_events):
    """The sequences where the random ones found wfcloop's transport
    different from asyncio's (both fixed), with asyncio's record."""
    results = records(sequence, keep_open, tls=False)
    assert_all_same(results)
    assert results["stdlib"]["tested events"] == tested_events


# -- Datagram endpoints ------------------------------------------------------
#
# The same for create_datagram_endpoint(): the tested endpoint (on the loop
# under test, connected to the peer or not) and asyncio's on the peer's
# loop.  Each datagram starts with its number, so one lost, repeated or out
# of order shows; what a burst may leave queued unread stays far below the
# receive buffer, so no datagram is dropped on any loop.

DATAGRAM_SIZES = [0, 8, 1000, 9000, 65507]
UNREAD_CAP = 120_000         # bytes the peer sends only while fewer are unread

datagram_ops = st.one_of(
    st.tuples(st.just("sendto"), st.sampled_from(DATAGRAM_SIZES), st.sampled_from([1, 3])),
    st.tuples(st.just("sendto"), st.sampled_from(DATAGRAM_SIZES), st.sampled_from([1, 3])),
    st.tuples(st.just("sendto_elsewhere")),
    st.tuples(st.just("sendto_str")),
    st.tuples(st.just("pause_reading")),
    st.tuples(st.just("resume_reading")),
    st.tuples(st.just("close")),
    st.tuples(st.just("abort")),
    st.tuples(st.just("peer_send"), st.sampled_from(DATAGRAM_SIZES), st.sampled_from([1, 3, 5])),
    st.tuples(st.just("peer_send"), st.sampled_from(DATAGRAM_SIZES), st.sampled_from([1, 3, 5])),
    st.tuples(st.just("peer_close")),
)
datagram_sequences = st.lists(datagram_ops, min_size=1, max_size=22)


class DatagramRecorder(StepLog, asyncio.DatagramProtocol):
    """Callbacks by step; each datagram received checked against its
    number and the bytes its sender made for it (``received`` and ``sent``
    count datagrams)."""

    def __init__(self, clock):
        super().__init__(clock)
        self.sent_bytes = 0
        self.received_bytes = 0
        self.closed = False          # the peer's own end closed (peer side)
        self.bad = None
        self.peer_address = None

    def datagram(self, size, dropped=False):
        """This side's next datagram of ``size`` bytes.  Empty ones are
        not numbered (nor counted: asyncio before 3.13 does not send them),
        nor are those sent on a closed endpoint (dropped)."""
        if size == 0 or dropped:
            return b"x" * size
        number = self.sent
        self.sent += 1
        self.sent_bytes += size
        head = number.to_bytes(8, "big")[:size]
        return head + PATTERN[:max(size - 8, 0)]

    def datagram_received(self, data, addr):
        size = len(data)
        if size == 0:
            self.note("empty datagram")
            return
        number = self.received
        if (data[:8] != number.to_bytes(8, "big")[:size] or data[8:] != PATTERN[:max(size - 8, 0)]
                or (self.peer_address is not None and addr != self.peer_address)):
            self.bad = self.bad or (number, size, addr)
        self.received += 1
        self.received_bytes += size
        self.note_folded("datagrams", (size,))

    def error_received(self, exc):
        self.note("error", type(exc).__name__, getattr(exc, "errno", None))



def apply_datagram(op, tested, peer, peer_thread):
    name = op[0]
    transport = tested.transport
    if name == "sendto":
        for _ in range(op[2]):
            data = tested.datagram(op[1], dropped=transport.is_closing())
            if tested.connected:
                transport.sendto(data)
            else:
                transport.sendto(data, tested.peer_address)
        return None
    if name == "sendto_elsewhere":
        try:
            return transport.sendto(b"x", ("127.0.0.1", 9))
        except ValueError as exc:       # its text names the port
            return ("ValueError", re.sub(r"\d{4,5}\)", "PORT)", str(exc)))
    if name == "sendto_str":
        return transport.sendto("text", None if tested.connected else tested.peer_address)
    if name == "peer_send":
        unread = peer.sent_bytes - tested.received_bytes
        if peer.closed or unread > UNREAD_CAP:
            return "skipped"
        def send():
            for _ in range(op[2]):
                peer.transport.sendto(peer.datagram(op[1]), peer.peer_address)
        return peer_thread.call(send)
    if name == "peer_close":
        peer.closed = True
        return peer_thread.call(peer.transport.close)
    return call_tracking_reading(tested, name)


def datagrams_delivered(sender, receiver, receiver_gone):
    return (receiver.received >= sender.sent or not receiver.reading
            or receiver.lost or receiver_gone or sender.lost)


def datagrams_settled(tested, peer):
    return (datagrams_delivered(tested, peer, peer.closed)
            and datagrams_delivered(peer, tested, False))


async def run_datagram_sequence(sequence, connected):
    loop = asyncio.get_running_loop()
    clock = [0]
    tested, peer = DatagramRecorder(clock), DatagramRecorder(clock)
    tested.connected = connected
    peer_thread = PeerThread()
    logs = ThreadLogs(threading.get_ident())
    logging.getLogger("asyncio").addHandler(logs)
    steps = []
    try:
        async def open_peer():
            await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: peer, local_addr=("127.0.0.1", 0))
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(open_peer(), peer_thread.loop))
        tested.peer_address = peer_thread.call(peer.transport.get_extra_info, "sockname")
        await loop.create_datagram_endpoint(
            lambda: tested, local_addr=("127.0.0.1", 0),
            remote_addr=tested.peer_address if connected else None)
        peer.peer_address = tested.transport.get_extra_info("sockname")
        for index, op in enumerate(sequence, 1):
            clock[0] = index
            try:
                result = apply_datagram(op, tested, peer, peer_thread)
            except Exception as exc:
                result = observed(exc)
            await settle(tested, peer, STEP_CAP, lambda: datagrams_settled(tested, peer))
            size = outcome_of(tested.transport.get_write_buffer_size)
            steps.append((op, result, outcome_of(tested.transport.is_closing), size))
        clock[0] = "teardown"
        tested.transport.abort()
        peer_thread.call(peer.transport.abort)
        await wait_until(lambda: tested.lost and peer.lost, TEARDOWN_CAP)
    finally:
        logging.getLogger("asyncio").removeHandler(logs)
        peer_thread.close()
    return {
        "steps": steps,
        "tested events": tested.events,
        "peer events": peer.events,
        "counts": (tested.sent, tested.received, peer.sent, peer.received),
        "bad": (tested.bad, peer.bad),
        "tested logs": logs.messages,
    }


def datagram_records(sequence, connected):
    return on_each_loop(run_datagram_sequence, sequence, connected)


@settings(max_examples=scale(12, 300), **EXAMPLE_SETTINGS)
@given(sequence=datagram_sequences, connected=st.booleans())
def test_datagram_transport_sequences_match_asyncio(sequence, connected):
    check(datagram_records, sequence, connected)


def test_a_known_datagram_sequence():
    """A fixed sequence, its record checked: a burst held while reading is
    paused arrives whole and in order on resume, and a connected endpoint
    whose peer has closed gets ECONNREFUSED through error_received()."""
    sequence = [("pause_reading",), ("peer_send", 1000, 5), ("peer_send", 9000, 3),
                ("resume_reading",), ("sendto", 8, 3), ("peer_close",),
                ("sendto", 8, 1), ("sendto", 8, 1)]
    results = datagram_records(sequence, connected=True)
    assert_all_same(results)
    ref = results["stdlib"]
    assert ref["bad"] == (None, None)
    assert ref["counts"][1] == 8 and ref["counts"][3] == 3
    assert (4, "datagrams", (1000,) * 5 + (9000,) * 3) in ref["tested events"]
    assert any(event[1:] == ("error", "ConnectionRefusedError", 111) for event in ref["tested events"])
