"""asyncio_compat: the one contract between wfcloop and asyncio's internals.

wfcloop subclasses asyncio's selector event loop and socket transport and
replaces what runs per event; to do so it calls private asyncio
functions and reads and writes the private state its subclasses inherit
(its selector is its own, on selectors' public names).  Every such name is declared here, once, with why wfcloop needs it
and what breaks without it, resolved when this module is imported, per
Python version (3.11, 3.12 and 3.13 tested; 3.14 guarded).  No other file
under cython/ or src/ reaches a private name of an asyncio or selectors
module (tests/test_asyncio_compat.py scans for it).

* Module-level names (functions, constants, classes) are resolved here: a
  required one that this Python lacks makes ``import wfcloop`` fail with an
  ImportError naming it, never a server in the middle of its work.  An
  optional one is None, and a flag says which path the loop takes then
  (asyncio's own, where one exists).
* Inherited state (attribute names on asyncio's loop, transport, Handle,
  Server and TransportSocket) is declared in one table per
  asyncio class (``LOOP_STATE``, ``SOCKET_TRANSPORT_STATE``, ...).  The
  compiled code keeps plain attribute access (``self._buffer``): a name is
  written there as asyncio spells it, and must be in its class's table.
  Methods and class attributes are checked at import; instance fields, which
  exist only on an instance, are checked by the tests on every tested
  Python, and at import on an untested one (``check_instance_state()``
  builds a real stdlib loop and transport there).
* Version checks are named flags here (``FORMAT_WITH_DEBUG``, ...), each
  with the behaviour it stands for.

This module depends on the standard library only: every layer of wfcloop
(the compiled loop, the selector, the package) may import it.

A new transport adds its names the same way: the resolved function or class
with a one-line why, and a table of the state it touches.
"""
import asyncio
import inspect
import socket
import sys
import types
try:
    import ssl
except ImportError:  # Python built without ssl
    ssl = None
from asyncio import (base_events, constants, events, format_helpers,
                     selector_events, sslproto, tasks, transports, trsock)

__all__ = ["ENTRIES", "STATE_TABLES", "check_instance_state", "declared",
           "handle_slot"]

PYTHON = "%d.%d.%d" % sys.version_info[:3]
# The Python versions whose asyncio the tests check every entry against; on
# any other, import also checks the instance fields on real objects.
TESTED_VERSIONS = ((3, 11), (3, 12), (3, 13))

# Every resolved entry: the name here -> (where in asyncio, why, required).
ENTRIES = {}


def _where(owner, attr):
    if isinstance(owner, types.ModuleType):
        return f"{owner.__name__}.{attr}"
    return f"{owner.__module__}.{owner.__qualname__}.{attr}"


def _missing(where, why):
    return ImportError(
        f"wfcloop needs {where}, which asyncio of Python {PYTHON} does not "
        f"have ({why}); this Python is not supported by this wfcloop",
        name=__name__)


def _resolve(name, owner, attr, why, *, required=True):
    """owner.attr, declared under ``name``: ImportError naming it if
    missing and required, None if missing and optional."""
    where = _where(owner, attr)
    ENTRIES[name] = (where, why, required)
    try:
        return getattr(owner, attr)
    except AttributeError:
        if required:
            raise _missing(where, why) from None
        return None


# ---- flags: what this Python's asyncio does --------------------------------

# 3.12 made _make_socket_transport() refuse a socket that an open transport
# of the loop already uses (3.11 makes a second transport): our override
# does the same check only where asyncio does, or its tests disagree.
CHECK_SOCKET_TRANSPORT = sys.version_info >= (3, 12)
# 3.11 and 3.12 name a task factory's task with tasks._set_task_name, as
# BaseLoop's compiled create_task does there; 3.13 drops that function and
# changes how the name reaches the task (task.set_name(), later name= to
# the factory), so from 3.13 on asyncio's own create_task runs.
COMPILED_CREATE_TASK = sys.version_info < (3, 13)
# 3.13's create_unix_server(cleanup_socket=True) removes the socket file
# on close; before it, wfcloop.Loop does so itself (same rule).
UNIX_SERVER_CLEANUP_BUILTIN = sys.version_info >= (3, 13)
# 3.12's asyncio.run() takes loop_factory= (3.11: asyncio.Runner does).
RUN_HAS_LOOP_FACTORY = sys.version_info >= (3, 12)
# 3.14 deprecates event loop policies: DefaultEventLoopPolicy is a
# deprecated alias there, and install() warns.
POLICIES_DEPRECATED = sys.version_info >= (3, 14)


# ---- base_events -------------------------------------------------------------

MIN_SCHEDULED_TIMER_HANDLES = _resolve(
    "MIN_SCHEDULED_TIMER_HANDLES", base_events, "_MIN_SCHEDULED_TIMER_HANDLES",
    "run_once purges cancelled timers from the heap past this many, as "
    "asyncio does; without it timers pile up or are purged at another point")
MIN_CANCELLED_TIMER_HANDLES_FRACTION = _resolve(
    "MIN_CANCELLED_TIMER_HANDLES_FRACTION", base_events,
    "_MIN_CANCELLED_TIMER_HANDLES_FRACTION",
    "the cancelled fraction of the heap that triggers that purge")
MAXIMUM_SELECT_TIMEOUT = _resolve(
    "MAXIMUM_SELECT_TIMEOUT", base_events, "MAXIMUM_SELECT_TIMEOUT",
    "the longest poll run_once makes, as asyncio's _run_once caps it")
format_handle = _resolve(
    "format_handle", base_events, "_format_handle",
    "debug mode's 'Executing <handle> took N seconds' warning text; "
    "without it the slow-callback warning cannot match asyncio's")
BaseEventLoop = base_events.BaseEventLoop
base_call_soon = BaseEventLoop.call_soon   # public; debug mode's call_soon
base__call_soon = _resolve(
    "base__call_soon", BaseEventLoop, "_call_soon",
    "debug mode makes handles with asyncio's code (it records where); "
    "without it debug-mode handles lose their source traceback")
HAVE_RUN_FOREVER_SETUP = hasattr(BaseEventLoop, "_run_forever_setup")
# 3.13 (and later 3.12 bug fixes) split run_forever into setup, loop and
# cleanup; where that is missing BaseLoop.run_forever runs its copy of
# 3.11's run_forever, which needs the helpers below.
base__run_forever_setup = _resolve(
    "base__run_forever_setup", BaseEventLoop, "_run_forever_setup",
    "run_forever's setup (running loop, asyncgen hooks, thread id) around "
    "the compiled loop; without it BaseLoop takes its 3.11 copy",
    required=False)
base__run_forever_cleanup = _resolve(
    "base__run_forever_cleanup", BaseEventLoop, "_run_forever_cleanup",
    "the matching cleanup", required=False)
Server = base_events.Server


# ---- events, tasks, format_helpers, constants, trsock ------------------------

set_running_loop = _resolve(
    "set_running_loop", events, "_set_running_loop",
    "run_forever's 3.11 copy marks the loop running for get_running_loop(); "
    "without it no coroutine finds its loop",
    required=not HAVE_RUN_FOREVER_SETUP)
Handle = events.Handle
TimerHandle = events.TimerHandle
format_callback_source = _resolve(
    "format_callback_source", format_helpers, "_format_callback_source",
    "the 'Exception in callback ...' message of a failed handle, in "
    "asyncio's words; without it the exception handler's message differs")
# 3.13's _format_callback_source takes debug= and shows a callback's
# arguments only in debug mode (3.11 and 3.12 always show them).
FORMAT_WITH_DEBUG = "debug" in inspect.signature(format_callback_source).parameters
set_task_name = _resolve(
    "set_task_name", tasks, "_set_task_name",
    "the compiled create_task (3.11, 3.12) names a factory's task as "
    "asyncio does; without it create_task(name=) with a factory fails",
    required=COMPILED_CREATE_TASK)
SSL_HANDSHAKE_TIMEOUT = constants.SSL_HANDSHAKE_TIMEOUT   # _accept_connection's default
SSL_SHUTDOWN_TIMEOUT = constants.SSL_SHUTDOWN_TIMEOUT     # likewise
# The TLS transport's flow control defaults and its warning threshold
# (public names of asyncio's constants module, as asyncio's sslproto reads them).
FLOW_CONTROL_HIGH_WATER_SSL_READ = constants.FLOW_CONTROL_HIGH_WATER_SSL_READ   # KiB
FLOW_CONTROL_HIGH_WATER_SSL_WRITE = constants.FLOW_CONTROL_HIGH_WATER_SSL_WRITE  # KiB
LOG_THRESHOLD_FOR_CONNLOST_WRITES = constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES
SendfileMode = _resolve(
    "SendfileMode", constants, "_SendfileMode",
    "the TLS transport's _sendfile_compatible (FALLBACK), which "
    "loop.sendfile() reads; without it sendfile() over TLS is refused")
FlowControlMixin = _resolve(
    "FlowControlMixin", transports, "_FlowControlMixin",
    "SSLTransport is one, as asyncio's SSL transport is: loop.sendfile()'s "
    "fallback refuses any other transport (TypeError)")
TransportSocket = _resolve(
    "TransportSocket", trsock, "TransportSocket",
    "ExtraInfo makes get_extra_info('socket') lazily, as asyncio's class")
if POLICIES_DEPRECATED:
    EventLoopPolicyBase = _resolve(
        "EventLoopPolicyBase", events, "_BaseDefaultEventLoopPolicy",
        "3.14: the policy base class that does not warn (the public "
        "DefaultEventLoopPolicy is a deprecated alias); without it "
        "EventLoopPolicy cannot be defined without a DeprecationWarning")
else:
    EventLoopPolicyBase = asyncio.DefaultEventLoopPolicy


# ---- selector_events ---------------------------------------------------------

BaseSelectorEventLoop = selector_events.BaseSelectorEventLoop
SelectorSocketTransport = _resolve(
    "SelectorSocketTransport", selector_events, "_SelectorSocketTransport",
    "SocketTransport subclasses asyncio's socket transport (its flow "
    "control, EOF, close, sendfile and TLS upgrade are asyncio's); "
    "without it there is no socket transport")
base_socket_transport_write = SelectorSocketTransport.write   # public method
SelectorDatagramTransport = _resolve(
    "SelectorDatagramTransport", selector_events, "_SelectorDatagramTransport",
    "DatagramTransport subclasses asyncio's datagram transport (its "
    "buffering, flow control, close, abort and errors are asyncio's); "
    "without it there is no datagram transport")
base_datagram_transport_sendto = SelectorDatagramTransport.sendto   # public method
base_datagram_read_ready = _resolve(
    "base_datagram_read_ready", SelectorDatagramTransport, "_read_ready",
    "asyncio's datagram read, for a max_size the loop's buffer cannot hold")
base__add_reader = _resolve(
    "base__add_reader", BaseSelectorEventLoop, "_add_reader",
    "BaseLoop's _add_reader releases a parked sock_* reader first, then "
    "registers as asyncio does; every transport's reader goes through it")
base__remove_reader = _resolve(
    "base__remove_reader", BaseSelectorEventLoop, "_remove_reader",
    "likewise for removal, and to release parked readers")
base__add_writer = _resolve(
    "base__add_writer", BaseSelectorEventLoop, "_add_writer",
    "likewise for writers (transports' buffered writes)")
base__remove_writer = _resolve(
    "base__remove_writer", BaseSelectorEventLoop, "_remove_writer",
    "likewise for writer removal")
base__ensure_fd_no_transport = _resolve(
    "base__ensure_fd_no_transport", BaseSelectorEventLoop,
    "_ensure_fd_no_transport",
    "asyncio's check (and message) for an fd a transport owns, for file "
    "objects the compiled check does not handle")
base__read_from_self = _resolve(
    "base__read_from_self", BaseSelectorEventLoop, "_read_from_self",
    "drains the self-pipe; the override then clears the wake-up flag of "
    "call_soon_threadsafe; without it the loop never wakes from a thread")
base__write_to_self = _resolve(
    "base__write_to_self", BaseSelectorEventLoop, "_write_to_self",
    "debug mode's wake-up, which logs a failed write as asyncio does")
base__accept_connection = _resolve(
    "base__accept_connection", BaseSelectorEventLoop, "_accept_connection",
    "TLS servers, debug mode and accept() errors take asyncio's accept path")
base__accept_connection2 = _resolve(
    "base__accept_connection2", BaseSelectorEventLoop, "_accept_connection2",
    "the compiled accept applies only to a class that keeps asyncio's "
    "_accept_connection2 (a subclass's own is honoured)")
base__sock_read_done = _resolve(
    "base__sock_read_done", BaseSelectorEventLoop, "_sock_read_done",
    "removes a finished sock_* reader where it is not parked (debug mode, "
    "cancelled handles), as asyncio does")


# ---- selectors ---------------------------------------------------------------
#
# Nothing private: the loop's selector (cython/wfcloop/_eventpoll_selector.pyx)
# is wfcloop's own selectors.BaseSelector, with its own fd -> key map and
# file object conversion, on selectors' public names only.


# ---- inherited state, one table per asyncio class ----------------------------
#
# name -> (kind, why).  kind: "method" (a class attribute: checked at import),
# "field" (instance state: checked on a real stdlib instance by the tests,
# and at import on an untested Python), "optional" (a class attribute whose
# absence has a flag and a path).

LOOP_STATE = {
    # BaseEventLoop / BaseSelectorEventLoop instance state (BaseLoop is a
    # SelectorEventLoop).
    "_ready": ("field", "the ready deque; BaseLoop makes it a property over the compiled scheduler's, so asyncio's code sees the same handles"),
    "_scheduled": ("field", "the timer heap; a property over the scheduler's (entries are (when, seq, TimerHandle))"),
    "_closed": ("field", "closed flag; a property over the scheduler's, read by asyncio's _check_closed"),
    "_debug": ("field", "debug flag; a property over the scheduler's, which picks asyncio's debug paths"),
    "_stopping": ("field", "stop() sets it; the compiled run_forever reads it from the instance dict"),
    "_timer_cancelled_count": ("field", "cancelled timers on the heap; run_once's purge rule"),
    "_clock_resolution": ("field", "run_once takes timers due within it, as asyncio"),
    "_current_handle": ("field", "debug mode: the handle running, for asyncio's error reports"),
    "_csock": ("field", "the self-pipe's write end, written in C by _write_to_self"),
    "_transports": ("field", "fd -> transport map; replaced by the TransportMap"),
    "_selector": ("field", "the loop's selector (an EventPollSelector)"),
    "_thread_id": ("field", "run_forever's 3.11 copy records the running thread"),
    "_task_factory": ("field", "the compiled create_task calls it as asyncio does"),
    "_run_once": ("method", "one iteration; BaseLoop's compiled override, called by asyncio's run_forever"),
    "_call_soon": ("method", "scheduling hook asyncio's own code calls; overridden"),
    "_check_closed": ("method", "run_forever's 3.11 copy"),
    "_check_running": ("method", "run_forever's 3.11 copy"),
    "_check_thread": ("method", "debug-mode call_at's thread check"),
    "_check_callback": ("method", "debug-mode call_at/call_soon_threadsafe argument check"),
    "_set_coroutine_origin_tracking": ("method", "run_forever's 3.11 copy"),
    "_asyncgen_firstiter_hook": ("method", "run_forever's 3.11 copy installs it"),
    "_asyncgen_finalizer_hook": ("method", "run_forever's 3.11 copy installs it"),
    "_run_forever_setup": ("optional", "HAVE_RUN_FOREVER_SETUP: run_forever wraps the compiled loop in it"),
    "_run_forever_cleanup": ("optional", "HAVE_RUN_FOREVER_SETUP: likewise"),
    "_read_from_self": ("method", "self-pipe drain; overridden"),
    "_write_to_self": ("method", "wake-up; overridden"),
    "_accept_connection": ("method", "the listening socket's reader; overridden (compiled accept)"),
    "_accept_connection2": ("method", "asyncio's per-connection task, compared to detect subclasses"),
    "_sock_read_done": ("method", "done callback of sock_* reads; overridden (parked readers)"),
    "_sock_recv": ("method", "sock_recv's reader callback; overridden"),
    "_sock_recv_into": ("method", "sock_recv_into's reader callback; overridden"),
    "_sock_sendall": ("method", "sock_sendall's writer callback, asyncio's"),
    "_sock_write_done": ("method", "sock_sendall's done callback, asyncio's"),
    "_add_reader": ("method", "overridden (parked readers)"),
    "_remove_reader": ("method", "overridden; the dispatcher removes a cancelled reader"),
    "_add_writer": ("method", "overridden"),
    "_remove_writer": ("method", "overridden; the dispatcher removes a cancelled writer"),
    "_ensure_fd_no_transport": ("method", "overridden (compiled lookup)"),
    "_make_socket_transport": ("method", "overridden: makes wfcloop's SocketTransport"),
    "_make_datagram_transport": ("method", "overridden: makes wfcloop's DatagramTransport"),
    "_make_ssl_transport": ("method", "overridden: makes wfcloop's SSLTransport over its SocketTransport"),
    "_stop_serving": ("method", "overridden before 3.13 (unix socket cleanup)"),
}

SOCKET_TRANSPORT_STATE = {
    # _SelectorSocketTransport (and its _SelectorTransport, _FlowControlMixin
    # and BaseTransport bases) state that SocketTransport reads or writes.
    "_loop": ("field", "the transport's loop (None once the connection is lost)"),
    "_sock": ("field", "the socket, for recv_into's own error text"),
    "_sock_fd": ("field", "the fd the C recv/send use"),
    "_protocol": ("field", "where reads are delivered"),
    "_buffer": ("field", "asyncio's write buffer: a write sends in C only while it is empty"),
    "_eof": ("field", "write_eof() was called: no direct send"),
    "_closing": ("field", "close() was called: no poller-side write"),
    "_conn_lost": ("field", "connection lost: no read, no send"),
    "_paused": ("field", "reading paused (held poller reads wait for resume)"),
    "_empty_waiter": ("field", "sendfile waits for the buffer to drain: no direct send"),
    "_high_water": ("field", "flow control limit; shared ints, poller-side write settling"),
    "_low_water": ("field", "flow control limit; shared ints"),
    "_extra": ("field", "get_extra_info's mapping; replaced by ExtraInfo"),
    "_read_ready_cb": ("field", "the read path set_protocol picks; set to a plain function"),
    "_server": ("field", "the transport's Server (accounting on close)"),
    "_read_ready": ("method", "the reader callback; overridden"),
    "_read_ready__data_received": ("method", "Protocol read path; overridden"),
    "_read_ready__get_buffer": ("method", "BufferedProtocol read path; overridden"),
    "_read_ready__on_eof": ("method", "EOF handling, asyncio's; wrapped"),
    "_fatal_error": ("method", "asyncio's error report and close"),
    "_write_ready": ("field", "the writer a write that could not send it all registers (a method on 3.11, chosen per instance from 3.12)"),
    "_maybe_pause_protocol": ("method", "pause_writing() once that write's buffer is above the high-water mark"),
    "_force_close": ("method", "abort path; wrapped; the TLS protocol drops its underlying transport with it"),
    "_start_tls_compatible": ("method", "what start_tls() checks on a transport (True here and on SSLTransport)"),
    "_add_reader": ("method", "the transport's reader registration; wrapped (TransportMap)"),
    "_set_write_buffer_limits": ("method", "wrapped to share the limit ints"),
    "_make_empty_waiter": ("optional", "HAVE_MAKE_EMPTY_WAITER: wrapped to settle poller writes first"),
    "_buffer_factory": ("optional", "BUFFER_FACTORY_IS_BYTEARRAY (3.11): set to bytes, no bytearray per idle transport"),
}

DATAGRAM_TRANSPORT_STATE = {
    # _SelectorDatagramTransport (and its _SelectorTransport bases) state
    # that DatagramTransport reads.
    "_sock_fd": ("field", "read through its DatagramSocket's fd, the one the C recvfrom/send use"),
    "_protocol": ("field", "where datagrams and errors are delivered"),
    "_buffer": ("field", "asyncio's send queue: sendto sends in C only while it is empty"),
    "_closing": ("field", "close() was called: no C send, reading stops"),
    "_conn_lost": ("field", "connection lost: no read, no C send"),
    "_paused": ("field", "pause_reading(): the drain of one event stops, the rest of its batch kept"),
    "_loop": ("field", "resume_reading() schedules a kept batch's delivery on it"),
    "_address": ("field", "the remote address of a connected endpoint (sendto's check)"),
    "_extra": ("field", "get_extra_info's mapping: 'peername' says send() or sendto()"),
    "max_size": ("field", "the read size asyncio asks recvfrom for (class attribute)"),
    "_read_ready": ("method", "the reader callback; overridden"),
    "_fatal_error": ("method", "asyncio's error report and close"),
    "_sendto_ready": ("method", "asyncio's writer for buffered datagrams (overridden where DATAGRAM_HEADER_LEAK)"),
    "_buffer_size": ("field", "the write buffer's size, payloads plus DATAGRAM_HEADER_SIZE each"),
    "_sock": ("field", "the socket the buffered datagrams are sent on"),
    "_maybe_resume_protocol": ("method", "resume_writing() once the buffer is at the low-water mark"),
    "_call_connection_lost": ("method", "a closing transport's end once its buffer went out"),
}

SSL_TRANSPORT_STATE = {
    # sslproto._SSLProtocolTransport: what wfcloop's SSLTransport carries
    # because asyncio's code (or CPython's tests) reads it on an SSL
    # transport.
    "_loop": ("field", "sendfile's fallback makes futures on the transport's loop"),
    "_ssl_protocol": ("field", "the TLS protocol under the transport (CPython's test_ssl pauses it); a property"),
    "_protocol_paused": ("method", "sendfile's fallback reads whether the application is paused; a property"),
    "_start_tls_compatible": ("method", "start_tls() of a TLS transport (TLS over TLS) is allowed"),
    "_sendfile_compatible": ("method", "loop.sendfile() takes the fallback (SendfileMode.FALLBACK)"),
    "_force_close": ("method", "a TLS protocol over this transport drops it with an error"),
    "_test__append_write_backlog": ("method", "CPython's test_ssl fills the write backlog with it"),
}

SSL_OBJECT_STATE = {
    # ssl.SSLObject (not asyncio's, but private all the same).
    "_sslobj": ("field", "the _ssl object whose read/write/do_handshake SSLObject's Python methods wrap; the TLS protocol calls them directly"),
}

HANDLE_STATE = {
    # events.Handle __slots__, read and written in place at their offsets.
    "_callback": ("field", "the callback run_handle calls"),
    "_args": ("field", "its arguments (None once cancelled)"),
    "_cancelled": ("field", "skipped by run_once when true"),
    "_loop": ("field", "where a failed callback is reported"),
    "_source_traceback": ("field", "debug mode's creation traceback, reported on failure"),
    "_repr": ("field", "cached repr, set to None at creation"),
    "_context": ("field", "the contextvars context the callback runs in"),
    "_run": ("method", "the run of a handle class that is not asyncio's own"),
}

TIMER_HANDLE_STATE = {
    # events.TimerHandle's own __slots__.
    "_when": ("field", "the deadline, set at creation"),
    "_scheduled": ("field", "True while on the heap (asyncio's cancel() counts it)"),
}

SERVER_STATE = {
    "_sockets": ("field", "base_events.Server's listening sockets (unix socket cleanup before 3.13)"),
}

TRANSPORT_SOCKET_STATE = {
    "_sock": ("field", "trsock.TransportSocket's socket, kept bare in ExtraInfo until asked for"),
}

# asyncio class -> its table (what the tests check on a real instance).
STATE_TABLES = {
    BaseSelectorEventLoop: LOOP_STATE,
    SelectorSocketTransport: SOCKET_TRANSPORT_STATE,
    SelectorDatagramTransport: DATAGRAM_TRANSPORT_STATE,
    sslproto._SSLProtocolTransport: SSL_TRANSPORT_STATE,
    Handle: HANDLE_STATE,
    TimerHandle: TIMER_HANDLE_STATE,
    Server: SERVER_STATE,
    TransportSocket: TRANSPORT_SOCKET_STATE,
}
if ssl is not None:
    STATE_TABLES[ssl.SSLObject] = SSL_OBJECT_STATE


def _check_class_state():
    for cls, table in STATE_TABLES.items():
        for name, (kind, why) in table.items():
            if kind == "method" and not hasattr(cls, name):
                raise _missing(_where(cls, name), why)


_check_class_state()

HAVE_MAKE_EMPTY_WAITER = hasattr(SelectorSocketTransport, "_make_empty_waiter")
# 3.11's transport makes its write buffer with _buffer_factory (a bytearray
# per transport); 3.12 keeps a deque of buffers instead.
BUFFER_FACTORY_IS_BYTEARRAY = getattr(SelectorSocketTransport, "_buffer_factory", None) is bytearray
# 3.13.0 counts 8 bytes of header for each datagram sendto() buffers, but
# its _sendto_ready() takes back only the payload's length when it sends
# one (CPython gh-135444, fixed in August 2025 on the 3.13 branch and in
# 3.14, where the count became the _header_size class attribute): the
# buffer size then never returns to 0 after a burst, so a protocol paused
# by pause_writing() may never be resumed.  Where this Python's asyncio has
# that, DatagramTransport drains its buffer with the fixed accounting.
DATAGRAM_HEADER_LEAK = (sys.version_info >= (3, 13)
                        and not hasattr(SelectorDatagramTransport, "_header_size"))
# The bytes counted per buffered datagram on top of its payload.
DATAGRAM_HEADER_SIZE = getattr(SelectorDatagramTransport, "_header_size",
                               8 if sys.version_info >= (3, 13) else 0)


def declared(table, name):
    """name, after checking that it is declared in table (an ImportError
    naming it otherwise): for compiled code that looks an inherited
    attribute up by name once at import."""
    if name not in table:
        raise ImportError(f"wfcloop: {name!r} is not declared in asyncio_compat",
                          name=__name__)
    return name


def handle_slot(cls, name):
    """The member descriptor of the declared __slots__ field ``name`` of
    asyncio's Handle or TimerHandle, whose offset the compiled loop reads
    and writes in place; ImportError if it is not a slot on this Python."""
    table = HANDLE_STATE if cls is Handle else TIMER_HANDLE_STATE
    declared(table, name)
    descriptor = cls.__dict__.get(name)
    if type(descriptor) is not types.MemberDescriptorType:
        raise _missing(f"a __slots__ field {_where(cls, name)}", table[name][1])
    return descriptor


def _ssl_transport(loop):
    """A stdlib SSL transport (its protocol never connected)."""
    import ssl
    protocol = sslproto.SSLProtocol(loop, asyncio.Protocol(),
                                    ssl.create_default_context(), None)
    transport = protocol._app_transport
    transport.close()   # no connection: only marks it closed
    return transport


def _ssl_object():
    return ssl.create_default_context().wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO())


def check_instance_state(strict=True):
    """The declared fields missing from real stdlib objects of this Python
    ("Class.name" strings; empty when all are there): a stdlib
    SelectorEventLoop, a _SelectorSocketTransport over a socketpair, a
    _SelectorDatagramTransport over a datagram socketpair, a
    Handle, a TimerHandle, a selector, a Server and a TransportSocket.
    strict=False skips an object that cannot be made here (a constructor
    this module does not know, no socketpair) instead of raising."""
    missing = []

    def check(cls, make):
        try:
            obj = make()
        except Exception:
            if strict:
                raise
            return None
        for name, (kind, why) in STATE_TABLES[cls].items():
            if kind != "optional" and not hasattr(obj, name):
                missing.append(f"{cls.__qualname__}.{name}")
        return obj

    loop = check(BaseSelectorEventLoop, asyncio.SelectorEventLoop)
    if loop is None:
        return missing
    pair = ()
    try:
        pair = socket.socketpair()
        transport = check(SelectorSocketTransport,
                          lambda: SelectorSocketTransport(loop, pair[0], asyncio.Protocol()))
        if transport is not None:
            check(TransportSocket, lambda: transport.get_extra_info("socket"))
            transport.abort()
        dgram = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        pair += dgram
        datagram = check(SelectorDatagramTransport,
                         lambda: SelectorDatagramTransport(loop, dgram[0], asyncio.DatagramProtocol()))
        if datagram is not None:
            datagram.abort()
        check(sslproto._SSLProtocolTransport, lambda: _ssl_transport(loop))
        if ssl is not None:
            check(ssl.SSLObject, _ssl_object)
        check(Handle, lambda: Handle(print, (), loop, None))
        check(TimerHandle, lambda: TimerHandle(0.0, print, (), loop, None))
        check(Server, lambda: Server(loop, [], asyncio.Protocol, None, 100, None, None))
        loop.run_until_complete(asyncio.sleep(0))
    except Exception:
        if strict:
            raise
    finally:
        loop.close()
        for sock in pair:
            sock.close()
    return missing


if sys.version_info[:2] not in TESTED_VERSIONS:
    # A Python the tests have not checked: find out now, not mid-server.
    _missing_fields = check_instance_state(strict=False)
    if _missing_fields:
        raise ImportError(
            f"wfcloop needs asyncio state that Python {PYTHON} does not have: "
            f"{', '.join(_missing_fields)}", name=__name__)
    del _missing_fields
