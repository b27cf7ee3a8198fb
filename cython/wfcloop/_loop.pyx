# cython: language_level=3
"""The event loop's compiled hot paths: run-once, I/O dispatch and the
socket transport's read and write.

``wfcloop.Loop`` keeps asyncio's own API surface (``BaseSelectorEventLoop``:
argument checks, servers, SSL, subprocesses, sock_* methods) and replaces
what runs per event:

* ``_run_once`` polls the EventPoll straight into a reused C event array
  (no selector key list, no per-poll allocation), turns each event into the
  reader/writer handles registered for its fd, pops due timers and runs the
  ready handles, in asyncio's order: FIFO for call_soon, timers by deadline
  then insertion, I/O callbacks of one poll before the next poll.
* ``SocketTransport`` reads into one reused buffer (asyncio's transport
  asks ``recv`` for 256 KiB, which glibc serves with an mmap, mremap and
  munmap per read) and sends in C when its write buffer is empty.

Callbacks are scheduled as asyncio's own Handle and TimerHandle objects; in
debug mode they are made by asyncio's code (which records where), and slow
callback warnings have asyncio's messages.
"""
import asyncio
import heapq
import selectors
import socket
import sys
import threading
from collections.abc import MutableMapping
from types import MethodType
from weakref import WeakValueDictionary
from asyncio import base_events, events, format_helpers, selector_events

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
from cpython.exc cimport PyErr_SetFromErrno
from libc.errno cimport errno, EAGAIN, EINTR
from libc.math cimport ceil
from libc.stdint cimport uint32_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, strerror

from wfcloop._eventpoll cimport EventPoll, wfc_event, WFC_EV_IO_WRITE
from wfcloop._timer_heap cimport heap_pop, heap_push

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF


cdef extern from *:
    """
    /* A new, untracked-by-__init__ instance of t: what object.__new__(t)
     * allocates, fields NULL. */
    static PyObject *wfcloop_alloc_instance(PyTypeObject *t) {
        return t->tp_alloc(t, 0);
    }
    """
    PyObject *wfcloop_alloc_instance(PyTypeObject *t)


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyObject_Call(object callable, object args, PyObject *kwargs)
    object PyContext_CopyCurrent()
    PyObject *PyDict_GetItem(object d, object key)


cdef extern from "sys/socket.h" nogil:
    ssize_t c_recv "recv" (int fd, void *buf, size_t n, int flags)
    ssize_t c_send "send" (int fd, const void *buf, size_t n, int flags)
    enum:
        MSG_NOSIGNAL
        MSG_DONTWAIT

cdef extern from "time.h" nogil:
    ctypedef int clockid_t
    cdef struct timespec:
        long tv_sec
        long tv_nsec
    int clock_gettime(clockid_t clk, timespec *ts)
    enum:
        CLOCK_MONOTONIC

cdef enum:
    EPOLLIN = 0x001
    EPOLLOUT = 0x004
    # One read per readiness event: what asyncio's transport asks recv for.
    READ_BUFFER_SIZE = 256 * 1024
    # Events taken from the ready list per poll, at most.
    MAX_EVENTS_PER_POLL = 1024

# The reused read buffer.  Only a thread holding the GIL uses it, from the
# recv to the copy into a bytes object, so loops in several threads can
# share it.
cdef char read_buffer[READ_BUFFER_SIZE]

cdef object EVENT_READ = selectors.EVENT_READ
cdef object EVENT_WRITE = selectors.EVENT_WRITE
cdef double MAXIMUM_SELECT_TIMEOUT = base_events.MAXIMUM_SELECT_TIMEOUT
cdef Py_ssize_t MIN_SCHEDULED_TIMER_HANDLES = base_events._MIN_SCHEDULED_TIMER_HANDLES
cdef double MIN_CANCELLED_TIMER_HANDLES_FRACTION = base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION
cdef object Handle = events.Handle
cdef object TimerHandle = events.TimerHandle
cdef object heapify = heapq.heapify
cdef object format_handle = base_events._format_handle
cdef object Future = asyncio.Future
cdef object Task = asyncio.Task
cdef object set_task_name = getattr(asyncio.tasks, "_set_task_name", None)
# Python 3.13's _format_callback_source() takes debug= and leaves a
# callback's arguments out of its text unless debug is true (3.11 and 3.12
# always show them).
cdef bint FORMAT_WITH_DEBUG = sys.version_info >= (3, 13)
# Python 3.12's _make_socket_transport() refuses a socket that an open
# transport of the loop already uses (3.11 makes a second transport).
cdef bint CHECK_SOCKET_TRANSPORT = sys.version_info >= (3, 12)
from asyncio.log import logger


cdef inline double monotonic() noexcept nogil:
    """time.monotonic(): the same clock, without the Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class _Scheduler


cdef class _Dispatch:
    """The loop's view of its EventPoll: a reused event array, and the
    selector's fd -> key map, from which each event's handles are found."""
    cdef EventPoll poll
    cdef wfc_event *events
    cdef int capacity
    cdef dict fd_to_key
    cdef object ready           # the loop's collections.deque of handles
    cdef object loop

    def __cinit__(self, loop, selector):
        self.loop = loop
        self.poll = <EventPoll?>selector._selector
        self.fd_to_key = <dict?>selector._fd_to_key
        self.ready = loop._ready
        self.capacity = 64
        self.events = <wfc_event *>malloc(self.capacity * sizeof(wfc_event))
        if self.events == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.events)

    cdef int reserve(self) except -1:
        """Grow the event array with the number of registered fds (as
        selectors' epoll asks for one event per registration), up to
        MAX_EVENTS_PER_POLL; the rest stays queued for the next poll."""
        cdef int want = len(self.fd_to_key)
        cdef wfc_event *grown
        if want > MAX_EVENTS_PER_POLL:
            want = MAX_EVENTS_PER_POLL
        if want <= self.capacity:
            return 0
        grown = <wfc_event *>realloc(self.events, want * sizeof(wfc_event))
        if grown == NULL:
            raise MemoryError()
        self.events = grown
        self.capacity = want
        return 0

    cdef int poll_and_queue(self, int timeout_ms) except -1:
        """Wait for events and append their handles to the ready deque,
        as BaseSelectorEventLoop._process_events does with a selector's
        (key, mask) list: a cancelled handle unregisters its side."""
        cdef int n, i
        cdef uint32_t ev
        cdef object key, reader, writer, mask
        self.reserve()
        n = self.poll.wait_into(self.events, self.capacity, timeout_ms)
        if n <= 0:
            return 0
        fd_to_key = self.fd_to_key
        ready = self.ready
        for i in range(n):
            ev = self.events[i].events
            if ev & WFC_EV_IO_WRITE:
                # A poller's send stopped short or failed: the transport
                # takes the rest back (asyncio's buffer, or its error).
                transport = self.loop._wfc_io_transports.get(self.events[i].fd)
                if transport is not None:
                    ready.append(new_handle(_io_settle_writes, (transport,), self.loop, None))
                ev &= ~WFC_EV_IO_WRITE
                if ev == 0:
                    continue
            key = fd_to_key.get(self.events[i].fd)
            if key is None:
                continue
            mask = key.events
            reader, writer = key.data
            # selectors' epoll mapping: anything but EPOLLOUT reads,
            # anything but EPOLLIN writes (errors and hang-ups wake both).
            if ev & ~EPOLLOUT and mask & EVENT_READ and reader is not None:
                if reader._cancelled:
                    self.loop._remove_reader(key.fileobj)
                else:
                    ready.append(reader)
            if ev & ~EPOLLIN and mask & EVENT_WRITE and writer is not None:
                if writer._cancelled:
                    self.loop._remove_writer(key.fileobj)
                else:
                    ready.append(writer)
        return n


cdef inline int timeout_to_ms(double timeout) noexcept:
    """Seconds to epoll milliseconds, rounded up so the wait is at least
    timeout (as selectors.EpollSelector rounds)."""
    if timeout <= 0:
        return 0
    return <int>ceil(timeout * 1e3)


cdef run_handle(object handle):
    """Handle._run(), without its Python frame, for asyncio's own Handle
    and TimerHandle; any other handle type runs its own _run()."""
    cdef type t = type(handle)
    cdef PyObject *field
    if t is not Handle and t is not TimerHandle:
        handle._run()
        return
    field = get_slot(handle, H_CALLBACK)
    callback = <object>field if field != NULL else handle._callback
    field = get_slot(handle, H_ARGS)
    args = <object>field if field != NULL else handle._args
    field = get_slot(handle, H_CONTEXT)
    context = <object>field if field != NULL else handle._context
    try:
        # context.run(callback, *args), without building its argument tuple
        PyContext_Enter(context)
        try:
            if type(args) is tuple:
                PyObject_Call(callback, args, NULL)
            else:
                callback(*args)
        finally:
            PyContext_Exit(context)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        if FORMAT_WITH_DEBUG:
            # 3.13+: the arguments are shown in debug mode only (as in
            # asyncio's Handle._run).
            cb = format_helpers._format_callback_source(
                callback, args, debug=handle._loop.get_debug())
        else:
            cb = format_helpers._format_callback_source(callback, args)
        context = {
            'message': f'Exception in callback {cb}',
            'exception': exc,
            'handle': handle,
        }
        if handle._source_traceback:
            context['source_traceback'] = handle._source_traceback
        handle._loop.call_exception_handler(context)


cdef inline bint is_cancelled(object handle) except -1:
    """handle._cancelled, read in place for asyncio's own handle types."""
    cdef type t = type(handle)
    cdef PyObject *field
    if t is Handle or t is TimerHandle:
        field = get_slot(handle, H_CANCELLED)
        if field == <PyObject *>True:
            return True
        if field == <PyObject *>False:
            return False
    return bool(handle._cancelled)


cdef inline double loop_time(object loop, _Scheduler scheduler) except? -1.0:
    """loop.time(): the monotonic clock, unless a subclass has its own."""
    if scheduler.own_clock:
        return monotonic()
    return loop.time()


cdef run_once(object loop, _Dispatch dispatch, _Scheduler scheduler):
    """One iteration of the loop: BaseEventLoop._run_once, compiled.

    loop._scheduled is a heap of (when, sequence, TimerHandle) entries:
    tuples compare in C (asyncio's TimerHandle.__lt__ is Python), and the
    sequence number makes timers with equal deadlines run in the order
    they were scheduled."""
    cdef list scheduled = scheduler.scheduled
    cdef Py_ssize_t sched_count = len(scheduled)
    cdef Py_ssize_t ntodo, i
    cdef double timeout, end_time, t0, dt
    cdef int timeout_ms
    cdef bint debug
    ready = dispatch.ready

    if (sched_count > MIN_SCHEDULED_TIMER_HANDLES and
            loop._timer_cancelled_count / <double>sched_count >
            MIN_CANCELLED_TIMER_HANDLES_FRACTION):
        # Remove delayed calls that were cancelled if their number is too high.
        new_scheduled = []
        for entry in scheduled:
            handle = (<tuple>entry)[2]
            if handle._cancelled:
                handle._scheduled = False
            else:
                new_scheduled.append(entry)
        heapify(new_scheduled)
        scheduler.scheduled = scheduled = new_scheduled
        loop._timer_cancelled_count = 0
    else:
        # Remove delayed calls that were cancelled from the head of the heap.
        while scheduled and (<tuple>scheduled[0])[2]._cancelled:
            loop._timer_cancelled_count -= 1
            handle = (<tuple>heap_pop(scheduled))[2]
            unschedule(handle)

    if ready or loop._stopping:
        timeout_ms = 0
    elif scheduled:
        timeout = <double>(<tuple>scheduled[0])[0] - loop_time(loop, scheduler)
        if timeout > MAXIMUM_SELECT_TIMEOUT:
            timeout = MAXIMUM_SELECT_TIMEOUT
        timeout_ms = timeout_to_ms(timeout)
    else:
        timeout_ms = -1

    dispatch.poll_and_queue(timeout_ms)

    # Timers that are due.
    if scheduled:
        end_time = loop_time(loop, scheduler) + loop._clock_resolution
        while scheduled:
            if (<tuple>scheduled[0])[0] >= end_time:
                break
            handle = (<tuple>heap_pop(scheduled))[2]
            unschedule(handle)
            ready.append(handle)

    # Run what is ready now; callbacks scheduled by these run next time,
    # after another poll.
    ntodo = len(ready)
    popleft = ready.popleft
    debug = scheduler.debug
    for i in range(ntodo):
        handle = popleft()
        if is_cancelled(handle):
            continue
        if debug:
            try:
                loop._current_handle = handle
                t0 = monotonic()
                run_handle(handle)
                dt = monotonic() - t0
                if dt >= loop.slow_callback_duration:
                    logger.warning('Executing %s took %.3f seconds',
                                   format_handle(handle), dt)
            finally:
                loop._current_handle = None
        else:
            run_handle(handle)
    handle = None  # Needed to break cycles when an exception occurs.


cdef object RUN_ONCE_NAME = "_run_once"
cdef object STOPPING_NAME = "_stopping"
cdef int EVAL_BREAKER_EVERY = 64   # iterations between two eval-breaker points

# A function of Python bytecode, so that calling it passes the interpreter's
# eval breaker (its RESUME instruction): the GIL goes to another thread that
# asked for it, and Python signal handlers run and may raise.  Compiled code
# never passes it; asyncio's `while True:` loop passed it every iteration.
_breaker_namespace = {}
exec("def eval_breaker_point():\n    pass\n", _breaker_namespace)
cdef object eval_breaker_point = _breaker_namespace["eval_breaker_point"]
del _breaker_namespace


cdef run_until_stopped(object loop, object own_run_once):
    """asyncio's ``while True: self._run_once(); if self._stopping: break``
    (BaseEventLoop.run_forever), compiled.

    The loop's own _run_once runs as a C call unless the instance has one
    of its own (tests replace it) or ``own_run_once`` is false (a subclass
    overrides it).  Every EVAL_BREAKER_EVERY iterations the loop passes the
    interpreter's eval breaker, as the bytecode loop did at each: without
    it, a loop whose callbacks are all C (future callbacks, say) would keep
    the GIL from other Python threads and Python signal handlers from
    running."""
    cdef _Dispatch dispatch = loop._wfc_dispatch
    cdef _Scheduler scheduler = loop._wfc_scheduler
    cdef dict parked = loop._wfc_parked_readers
    cdef dict attrs = loop.__dict__
    cdef PyObject *stopping
    cdef int n = 0
    while True:
        if own_run_once and PyDict_GetItem(attrs, RUN_ONCE_NAME) == NULL:
            if parked:
                release_parked_readers(loop)
            run_once(loop, dispatch, scheduler)
        else:
            loop._run_once()
        # loop._stopping, from the instance's dict where it lives
        stopping = PyDict_GetItem(attrs, STOPPING_NAME)
        if (<object>stopping if stopping != NULL else loop._stopping):
            break
        n += 1
        if n == EVAL_BREAKER_EVERY:
            n = 0
            eval_breaker_point()


cdef unsigned long long timer_sequence = 0


# asyncio's Handle and TimerHandle keep their fields in __slots__: each is a
# member descriptor with a fixed offset in the object.  The loop reads and
# writes the fields of its own handles there directly, as the descriptors
# would, without an attribute lookup per field.

cdef Py_ssize_t slot_offset(type cls, str name) except -1:
    """Offset of the __slots__ field ``name`` of cls, from its descriptor."""
    descriptor = cls.__dict__.get(name)
    if type(descriptor) is not type(Handle.__dict__['_callback']):
        raise ImportError(f"wfcloop: asyncio's {cls.__name__}.{name} is not a slot")
    return (<PyMemberDescrObject *>descriptor).d_member.offset


cdef Py_ssize_t H_CALLBACK = slot_offset(Handle, '_callback')
cdef Py_ssize_t H_ARGS = slot_offset(Handle, '_args')
cdef Py_ssize_t H_CANCELLED = slot_offset(Handle, '_cancelled')
cdef Py_ssize_t H_LOOP = slot_offset(Handle, '_loop')
cdef Py_ssize_t H_SOURCE_TRACEBACK = slot_offset(Handle, '_source_traceback')
cdef Py_ssize_t H_REPR = slot_offset(Handle, '_repr')
cdef Py_ssize_t H_CONTEXT = slot_offset(Handle, '_context')
cdef Py_ssize_t T_WHEN = slot_offset(TimerHandle, '_when')
cdef Py_ssize_t T_SCHEDULED = slot_offset(TimerHandle, '_scheduled')


cdef inline void set_slot(object obj, Py_ssize_t offset, object value) noexcept:
    """obj.<slot at offset> = value (as the member descriptor stores it).
    noexcept: nothing here raises, and Cython would otherwise check
    PyErr_Occurred() after each call (a thread-local read on 3.12+)."""
    cdef PyObject **field = <PyObject **>((<char *><PyObject *>obj) + offset)
    cdef PyObject *old = field[0]
    Py_INCREF(value)
    field[0] = <PyObject *>value
    Py_XDECREF(old)


cdef inline PyObject *get_slot(object obj, Py_ssize_t offset):
    """obj.<slot at offset>, borrowed; NULL if never set."""
    return (<PyObject **>((<char *><PyObject *>obj) + offset))[0]


cdef inline object alloc_handle(type cls):
    """A new instance of asyncio's Handle or TimerHandle, fields unset."""
    cdef PyObject *raw = wfcloop_alloc_instance(<PyTypeObject *>cls)
    if raw == NULL:
        raise MemoryError()
    handle = <object>raw
    Py_XDECREF(raw)
    return handle


cdef inline int init_handle(handle, callback, tuple args, loop, context) except -1:
    """Handle.__init__'s fields, outside debug mode, set in place."""
    if context is None:
        context = PyContext_CopyCurrent()
    set_slot(handle, H_CONTEXT, context)
    set_slot(handle, H_LOOP, loop)
    set_slot(handle, H_CALLBACK, callback)
    set_slot(handle, H_ARGS, args)
    set_slot(handle, H_CANCELLED, False)
    set_slot(handle, H_REPR, None)
    set_slot(handle, H_SOURCE_TRACEBACK, None)
    return 0


cdef object new_handle(callback, tuple args, loop, context):
    """events.Handle(callback, args, loop, context) outside debug mode,
    without running its Python __init__; the same fields, set in place."""
    handle = alloc_handle(Handle)
    init_handle(handle, callback, args, loop, context)
    return handle


cdef object new_timer_handle(when, callback, tuple args, loop, context):
    """events.TimerHandle(...) outside debug mode, likewise."""
    handle = alloc_handle(TimerHandle)
    init_handle(handle, callback, args, loop, context)
    set_slot(handle, T_WHEN, when)
    set_slot(handle, T_SCHEDULED, False)
    return handle


cdef inline int unschedule(handle) except -1:
    """handle._scheduled = False, for a timer taken off the heap."""
    if type(handle) is TimerHandle:
        set_slot(handle, T_SCHEDULED, False)
    else:
        handle._scheduled = False
    return 0


try:
    from ssl import SSLSocket
except ImportError:  # Python built without ssl
    SSLSocket = None
from functools import partial


cdef inline check_not_ssl_socket(sock):
    """base_events._check_ssl_socket()."""
    if SSLSocket is not None and isinstance(sock, SSLSocket):
        raise TypeError("Socket cannot be of type SSLSocket")


cdef check_sock_call(loop, sock):
    """The argument checks of asyncio's sock_* methods."""
    check_not_ssl_socket(sock)
    if loop._debug and sock.gettimeout() != 0:
        raise ValueError("the socket must be non-blocking")


cdef wait_to_read(loop, sock, callback, arg):
    """A future that callback(fut, sock, arg) completes once sock is
    readable: the reader parked for sock if there is one (repointed at
    this call), else a new reader; removed or parked when the future is
    done (_sock_read_done)."""
    fut = Future(loop=loop)
    fd = sock.fileno()
    loop._ensure_fd_no_transport(fd)
    handle = take_parked_reader(loop, fd, sock)
    if handle is not None:
        set_slot(handle, H_CALLBACK, callback)
        set_slot(handle, H_ARGS, (fut, sock, arg))
    else:
        handle = loop._add_reader(fd, callback, fut, sock, arg)
    fut.add_done_callback(SockReadDone(loop, fd, handle))
    return fut


cdef sock_read_done(loop, fd, fut, handle):
    """A sock_* read is done: park its reader (see BaseLoop's comment on
    parked readers), or remove it as asyncio does (debug mode, a cancelled
    or foreign handle)."""
    # A cancelled handle has no _args any more (asyncio's cancel() clears
    # them): asyncio's path, which leaves it alone.
    if handle is None or loop._debug or handle._args is None or len(handle._args) < 2:
        selector_events.BaseSelectorEventLoop._sock_read_done(loop, fd, fut, handle)
    elif not handle.cancelled():
        loop._wfc_parked_readers[fd] = handle


cdef class SockReadDone:
    """The done callback of a sock_recv(_into) future: what
    loop._sock_read_done(fd, fut, handle=handle) does, without a partial
    and its keywords dict per wait."""
    cdef object loop, fd, handle

    def __cinit__(self, loop, fd, handle):
        self.loop = loop
        self.fd = fd
        self.handle = handle

    def __call__(self, fut):
        sock_read_done(self.loop, self.fd, fut, self.handle)

    def __repr__(self):
        return f"<sock_read_done fd={self.fd}>"


cdef complete_read(fut, read, arg):
    """A reader callback of sock_recv(_into): read(arg) into fut, unless
    the future is done already or the socket has nothing yet."""
    if fut.done():
        return
    try:
        result = read(arg)
    except (BlockingIOError, InterruptedError):
        return  # try again next time
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


cdef object base_call_soon = base_events.BaseEventLoop.call_soon
cdef object base__call_soon = base_events.BaseEventLoop._call_soon
cdef object base_remove_reader = selector_events.BaseSelectorEventLoop._remove_reader
cdef object base_ensure_fd_no_transport = selector_events.BaseSelectorEventLoop._ensure_fd_no_transport


cdef release_parked_reader(loop, int fd, handle):
    """Remove the reader parked for fd, if it is still the registered one."""
    key = loop._selector._fd_to_key.get(fd)
    if key is not None and key.data[0] is handle:
        base_remove_reader(loop, fd)


cdef release_parked_readers(loop):
    cdef dict parked = loop._wfc_parked_readers
    while parked:
        fd, handle = parked.popitem()
        release_parked_reader(loop, fd, handle)


cdef take_parked_reader(loop, int fd, sock):
    """The reader parked for fd, for a new sock_recv on the same socket
    object to reuse as is (it stays registered; the caller points it at
    its own future), or None.  A parked reader of another socket that got
    the same fd number is released."""
    cdef dict parked = loop._wfc_parked_readers
    if not parked:
        return None
    handle = parked.pop(fd, None)
    if handle is None:
        return None
    key = loop._selector._fd_to_key.get(fd)
    if (handle._args[1] is sock and key is not None
            and key.data[0] is handle and not handle._cancelled):
        return handle
    release_parked_reader(loop, fd, handle)
    return None


cdef bint waited_last_time(loop, sock) except -1:
    """Whether the last sock_recv(_into) on sock had to wait for data (its
    reader is parked): a request/response peer then has rarely answered
    yet, so asyncio's first try would mostly fail (a recv syscall returning
    EAGAIN).  The caller then waits for readiness at once, as uvloop always
    does; data already there is reported by the very next poll."""
    cdef dict parked = loop._wfc_parked_readers
    if not parked:
        return False
    handle = parked.get(sock.fileno())
    return handle is not None and handle._args[1] is sock


cdef unpark_reader(loop, fd, sock):
    """Before a change of fd's registration: let sock_* on the same socket
    take over the parked reader (sock not None), else release it."""
    cdef dict parked = loop._wfc_parked_readers
    if type(fd) is not int:
        try:
            fd = selectors._fileobj_to_fd(fd)
        except ValueError:
            return  # asyncio's own method reports the bad fd
    handle = parked.pop(fd, None)
    if handle is None:
        return
    if sock is not None and handle._args[1] is sock and sock.fileno() == fd:
        return  # taken over: the caller's _add_reader swaps the handle
    release_parked_reader(loop, fd, handle)


cdef object schedule_timer(_Scheduler self, when, callback, tuple args, context):
    """call_at's work: a TimerHandle for callback(*args) at ``when`` on the
    heap, after every timer with an earlier or equal deadline."""
    global timer_sequence
    if when is None:
        raise TypeError("when cannot be None")
    if self.closed:
        raise RuntimeError('Event loop is closed')
    if self.debug:
        self.loop._check_thread()
        self.loop._check_callback(callback, 'call_at')
        timer = TimerHandle(when, callback, args, self.loop, context)
    else:
        timer = new_timer_handle(when, callback, args, self.loop, context)
    timer_sequence += 1
    heap_push(self.scheduled, (when, timer_sequence, timer))
    set_slot(timer, T_SCHEDULED, True)
    return timer


cdef class _Scheduler:
    """The loop's callback state: the ready deque, the timer heap and the
    closed and debug flags, as C fields (BaseLoop's _ready, _scheduled,
    _closed and _debug are properties over them, so asyncio's own code
    reads and writes the same state), and the scheduling methods that a
    Loop binds on itself, so that loop.call_soon() is one C call."""
    cdef object loop
    cdef public object ready         # collections.deque of handles
    cdef object ready_append
    cdef public list scheduled       # heap of (when, sequence, TimerHandle)
    cdef public bint closed
    cdef public bint debug
    cdef public bint own_clock       # loop.time() is BaseLoop's (monotonic)
    cdef public bint wakeup_pending  # a call_soon_threadsafe byte is unread

    def __cinit__(self, loop):
        self.loop = loop
        self.scheduled = []

    def set_ready(self, ready):
        self.ready = ready
        self.ready_append = ready.append

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        if self.debug:
            return base_call_soon(self.loop, callback, *args, context=context)
        handle = new_handle(callback, args, self.loop, context)
        self.ready_append(handle)
        return handle

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to be called after delay seconds.
        (Bound on a loop only where its class keeps BaseLoop's call_at,
        which asyncio's call_later calls.)"""
        if delay is None:
            raise TypeError('delay must not be None')
        return schedule_timer(self, loop_time(self.loop, self) + delay,
                              callback, args, context)

    def call_at(self, when, callback, *args, context=None):
        """Like call_later(), but with an absolute time on the loop's clock.
        Timers with equal deadlines run in the order they were scheduled."""
        return schedule_timer(self, when, callback, args, context)

    def time(self):
        """The loop's clock: time.monotonic()."""
        return monotonic()

    def get_debug(self):
        """Whether debug mode is on (every Future and Task asks)."""
        return self.debug

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but thread-safe.

        The self-pipe gets one byte per batch, not one per call: a byte is
        written only when the flag says no earlier one is pending.  The
        loop clears the flag after draining the pipe, so a caller that
        skips the write either left a byte unread (the loop wakes up) or
        ran while the loop was between drain and clear: awake, and about
        to look at the ready queue, where the handle already is.  (Clearing
        before the drain would lose a wake-up: the drain may consume a byte
        written after the clear, leaving the flag set and no byte.)  The
        GIL orders the flag's reads and writes and the deque's appends."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        if self.debug:
            self.loop._check_callback(callback, 'call_soon_threadsafe')
            # Compiled methods have no frame: the handle's traceback already
            # ends at the caller (asyncio drops its own frames from it).
            handle = base__call_soon(self.loop, callback, args, context)
        else:
            handle = new_handle(callback, args, self.loop, context)
            self.ready_append(handle)
        if not self.wakeup_pending:
            self.wakeup_pending = True
            self.loop._write_to_self()
        return handle

    def create_task(self, coro, *, name=None, context=None):
        """Schedule the coroutine coro; return its Task: asyncio's
        create_task of 3.11 and 3.12 (3.12's eager tasks come from a task
        factory, which this calls as asyncio does).  3.13 changed how the
        task's name reaches a factory, and from 3.13 on loops keep
        asyncio's own.  Compiled, this has no frame of its own, so a
        debug-mode task's source traceback already ends at the caller."""
        if self.closed:
            raise RuntimeError('Event loop is closed')
        loop = self.loop
        factory = loop._task_factory
        if factory is None:
            return Task(coro, loop=loop, name=name, context=context)
        if context is None:
            # The legacy factory signature when no context is needed.
            task = factory(loop, coro)
        else:
            task = factory(loop, coro, context=context)
        set_task_name(task, name)
        return task


# The methods a Loop binds from its _Scheduler, unless a subclass overrides them.
SCHEDULER_METHODS = ("call_soon", "call_later", "call_at", "time", "get_debug",
                     "call_soon_threadsafe")
if sys.version_info < (3, 13):
    SCHEDULER_METHODS += ("create_task",)


def _get_scheduled(self):
    return (<_Scheduler>self._wfc_scheduler).scheduled


def _set_scheduled(self, list value):
    (<_Scheduler>self._wfc_scheduler).scheduled = value


def _get_closed(self):
    try:
        scheduler = self._wfc_scheduler
    except AttributeError:
        # __init__ failed before the loop existed (bad pollers, say): there
        # is nothing to close, and __del__ must not complain.
        return True
    return (<_Scheduler>scheduler).closed


def _set_closed(self, bint value):
    (<_Scheduler>self._wfc_scheduler).closed = value


def _get_debug(self):
    return (<_Scheduler>self._wfc_scheduler).debug


def _set_debug(self, bint value):
    (<_Scheduler>self._wfc_scheduler).debug = value


class BaseLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop with the compiled run-once and socket
    transport; ``selector`` must be a wfcloop EventPollSelector.
    wfcloop.Loop is the class users make."""

    _ready = property(lambda self: self._wfc_scheduler.ready,
                      lambda self, ready: self._wfc_scheduler.set_ready(ready),
                      doc="deque of the handles to run next")
    _scheduled = property(_get_scheduled, _set_scheduled,
                          doc="heap of (when, sequence, TimerHandle)")
    _closed = property(_get_closed, _set_closed, doc="True once close() was called")
    _debug = property(_get_debug, _set_debug, doc="debug mode")

    def __init__(self, selector):
        # Made before asyncio's __init__, which sets the fields it holds.
        self._wfc_scheduler = scheduler = _Scheduler(self)
        # fd -> the finished sock_* reader handle still registered for it
        # (see _sock_read_done); before asyncio's __init__ adds its first
        # reader.
        self._wfc_parked_readers = {}
        # Equal address objects of this loop's transports, shared (see
        # share_addresses).
        self._wfc_addresses = {}
        # Poller-side I/O: the EventPoll that does the socket transports'
        # I/O off the loop thread while its pollers read the kernel, and
        # the transports it does it for, by fd (for a short send's report).
        self._wfc_io = selector._selector if getattr(selector, "poller_io", False) else None
        self._wfc_io_transports = WeakValueDictionary()
        super().__init__(selector)
        self._wfc_dispatch = _Dispatch(self, selector)
        # asyncio's fd -> transport map, without a weak reference per
        # reading socket transport (see TransportMap).
        self._transports = TransportMap(selector._fd_to_key)
        cls = type(self)
        scheduler.own_clock = cls.time is BaseLoop.time
        for name in SCHEDULER_METHODS:
            if getattr(cls, name) is getattr(BaseLoop, name):
                setattr(self, name, getattr(scheduler, name))
        if cls.call_at is not BaseLoop.call_at:
            # asyncio's call_later calls self.call_at: so does BaseLoop's.
            self.__dict__.pop("call_later", None)

    def run_forever(self):
        """Run until stop() is called."""
        own_run_once = getattr(type(self), "_run_once", None) is BASE_RUN_ONCE
        if HAVE_RUN_FOREVER_SETUP:   # 3.12.? and later
            try:
                self._run_forever_setup()
                run_until_stopped(self, own_run_once)
            finally:
                self._run_forever_cleanup()
            return
        # BaseEventLoop.run_forever of 3.11 and 3.12.1, with the loop compiled.
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)

        old_agen_hooks = sys.get_asyncgen_hooks()
        try:
            self._thread_id = threading.get_ident()
            sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                   finalizer=self._asyncgen_finalizer_hook)

            events._set_running_loop(self)
            run_until_stopped(self, own_run_once)
        finally:
            self._stopping = False
            self._thread_id = None
            events._set_running_loop(None)
            self._set_coroutine_origin_tracking(False)
            sys.set_asyncgen_hooks(*old_agen_hooks)

    def _run_once(self):
        if self._wfc_parked_readers:
            release_parked_readers(self)
        run_once(self, <_Dispatch>self._wfc_dispatch,
                 <_Scheduler>self._wfc_scheduler)

    # Scheduling callbacks: asyncio's checks, messages and Handle objects,
    # built without running Handle's Python __init__ (debug mode, which
    # records where a handle was made, takes asyncio's own path).
    # call_soon, call_later, call_at and time are the _Scheduler's, bound
    # on each loop as instance attributes; these serve subclasses' super().

    def call_soon(self, callback, *args, context=None):
        """Arrange for callback(*args) to be called soon, in FIFO order."""
        return (<_Scheduler>self._wfc_scheduler).call_soon(
            callback, *args, context=context)

    def call_later(self, delay, callback, *args, context=None):
        """Arrange for callback(*args) to be called after delay seconds."""
        if delay is None:
            raise TypeError('delay must not be None')
        return self.call_at(self.time() + delay, callback, *args,
                            context=context)

    def call_at(self, when, callback, *args, context=None):
        """Like call_later(), but with an absolute time on the loop's clock.
        Timers with equal deadlines run in the order they were scheduled."""
        return (<_Scheduler>self._wfc_scheduler).call_at(
            when, callback, *args, context=context)

    def time(self):
        """The loop's clock: time.monotonic()."""
        return monotonic()

    def get_debug(self):
        return (<_Scheduler>self._wfc_scheduler).debug

    def _call_soon(self, callback, args, context):
        if self._debug:
            return base__call_soon(self, callback, args, context)
        handle = new_handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback, *args, context=None):
        """Like call_soon(), but thread-safe (one wake-up byte per batch)."""
        return (<_Scheduler>self._wfc_scheduler).call_soon_threadsafe(
            callback, *args, context=context)

    def _read_from_self(self):
        selector_events.BaseSelectorEventLoop._read_from_self(self)
        (<_Scheduler>self._wfc_scheduler).wakeup_pending = False

    def _write_to_self(self):
        """Wake the loop: one byte into the self-pipe, written in C with
        the GIL held, as uvloop's wake-up is.  (asyncio's csock.send()
        releases the GIL for the system call, so a thread calling
        call_soon_threadsafe in a loop hands the GIL to the loop thread at
        every wake-up and the batches stay small.)  A failure is ignored as
        asyncio ignores it; in debug mode asyncio's method runs to log it."""
        csock = self._csock
        if csock is None:
            return
        if c_send(csock.fileno(), b"\0", 1, MSG_DONTWAIT) < 0 and self._debug:
            selector_events.BaseSelectorEventLoop._write_to_self(self)

    def create_future(self):
        """Create a Future object attached to the loop."""
        return Future(loop=self)

    if sys.version_info < (3, 13):
        def create_task(self, coro, *, name=None, context=None):
            """Schedule the coroutine coro; return its Task."""
            return (<_Scheduler>self._wfc_scheduler).create_task(
                coro, name=name, context=context)

    # sock_recv, sock_recv_into, sock_recvfrom(_into) and sock_accept wait
    # for readability with a reader registered for that one call; asyncio
    # removes it when the call's future is done, and a socket read in a
    # loop registers it again right away: an epoll_ctl ADD and DEL per
    # wait.  wfcloop parks the finished reader instead.  A parked reader
    # is released (really removed) before the next poll, so it never sees
    # an event, or taken over by the next sock_* wait on the same socket
    # object with the same fd, which then only swaps the handle.  Any
    # other add or removal on a parked fd releases it first, so what the
    # selector holds is always what asyncio's would hold.

    def _sock_read_done(self, fd, fut, handle=None):
        sock_read_done(self, fd, fut, handle)

    def _add_reader(self, fd, callback, *args):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, args[1] if len(args) >= 2 else None)
        return selector_events.BaseSelectorEventLoop._add_reader(
            self, fd, callback, *args)

    def _remove_reader(self, fd):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return selector_events.BaseSelectorEventLoop._remove_reader(self, fd)

    def _add_writer(self, fd, callback, *args):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return selector_events.BaseSelectorEventLoop._add_writer(
            self, fd, callback, *args)

    def _remove_writer(self, fd):
        if self._wfc_parked_readers:
            unpark_reader(self, fd, None)
        return selector_events.BaseSelectorEventLoop._remove_writer(self, fd)

    def close(self):
        self._wfc_parked_readers.clear()
        super().close()

    # sock_recv, sock_recv_into and sock_sendall: asyncio's contract and
    # code path (try the syscall first, else wait for readiness with a
    # reader or writer), compiled; a read whose last call on the socket
    # waited skips the try (see waited_last_time).

    async def sock_recv(self, sock, n):
        """Receive up to n bytes from the non-blocking socket sock."""
        check_sock_call(self, sock)
        if not waited_last_time(self, sock):
            try:
                return sock.recv(n)
            except (BlockingIOError, InterruptedError):
                pass
        return await wait_to_read(self, sock, self._sock_recv, n)

    async def sock_recv_into(self, sock, buf):
        """Receive into the writable buffer buf; return the byte count."""
        check_sock_call(self, sock)
        if not waited_last_time(self, sock):
            try:
                return sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                pass
        return await wait_to_read(self, sock, self._sock_recv_into, buf)

    def _sock_recv(self, fut, sock, n):
        complete_read(fut, sock.recv, n)

    def _sock_recv_into(self, fut, sock, buf):
        complete_read(fut, sock.recv_into, buf)

    async def sock_sendall(self, sock, data):
        """Send all of data to the connected socket sock."""
        check_sock_call(self, sock)
        try:
            n = sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        if n == len(data):
            return
        fut = self.create_future()
        fd = sock.fileno()
        self._ensure_fd_no_transport(fd)
        # asyncio's trick: a list in the closure holds the position.
        handle = self._add_writer(fd, self._sock_sendall, fut, sock,
                                  memoryview(data), [n])
        fut.add_done_callback(partial(self._sock_write_done, fd, handle=handle))
        return await fut

    def _ensure_fd_no_transport(self, fd):
        # asyncio's check, with a C lookup in the TransportMap (for an fd
        # number or a socket; anything else takes asyncio's path, which
        # reports a bad file object).
        transports = self._transports
        if type(transports) is not TransportMap:
            return base_ensure_fd_no_transport(self, fd)
        if type(fd) is int:
            fileno = fd
        elif isinstance(fd, socket_type):
            fileno = fd.fileno()
        else:
            return base_ensure_fd_no_transport(self, fd)
        transport = (<TransportMap>transports).lookup(fileno)
        if transport is not None and not transport.is_closing():
            raise RuntimeError(
                f'File descriptor {fd!r} is used by transport {transport!r}')

    def _make_socket_transport(self, sock, protocol, waiter=None, *,
                               extra=None, server=None):
        if CHECK_SOCKET_TRANSPORT:
            # As asyncio 3.12+: no second transport on a socket in use.
            self._ensure_fd_no_transport(sock)
        transport = SocketTransport(self, sock, protocol, waiter, extra, server)
        share_addresses(self._wfc_addresses, transport._extra, server is not None)
        # After the sharing: the transport's extra info in slots.
        transport._extra = ExtraInfo(transport._extra)
        return transport


# How many distinct addresses a loop keeps for sharing; past that it starts
# over (a server with many different peers shares less, never grows more).
cdef Py_ssize_t MAX_SHARED_ADDRESSES = 1024


cdef object shared(dict addresses, value):
    """The object equal to value that the loop already keeps, else value
    (kept from now on)."""
    kept = addresses.get(value)
    if kept is not None and type(kept) is type(value):
        return kept
    if len(addresses) >= MAX_SHARED_ADDRESSES:
        addresses.clear()
    addresses[value] = value
    return value


cdef share_addresses(dict addresses, extra, bint accepted):
    """Point a new transport's 'sockname' and 'peername' at equal objects
    that other transports of the loop already hold, where that is likely
    to pay: asyncio keeps a fresh tuple, host string and port per
    connection, and idle connections are mostly that.

    A server's connections all have the listening address as their
    sockname (a wildcard listener: one per local address), so an accepted
    transport shares the whole tuple; a client's sockname has its own
    ephemeral port, and is left alone.  Peers are few hosts with many
    ports: the host string is shared and the tuple rebuilt around it.
    The values are equal to asyncio's and were read at the same moment;
    only which (immutable) objects hold them changes."""
    if accepted:
        sockname = extra.get('sockname')
        if sockname is not None:
            extra['sockname'] = shared(addresses, sockname)
    peername = extra.get('peername')
    if type(peername) is tuple and len(<tuple>peername) >= 2:
        host = (<tuple>peername)[0]
        if type(host) is str:
            kept = shared(addresses, host)
            if kept is not host:
                extra['peername'] = (kept,) + (<tuple>peername)[1:]


cdef object BASE_RUN_ONCE = BaseLoop.__dict__["_run_once"]
cdef bint HAVE_RUN_FOREVER_SETUP = hasattr(base_events.BaseEventLoop, "_run_forever_setup")


cdef class TransportMap:
    """loop._transports: the transport of each fd, where asyncio's
    ``_ensure_fd_no_transport`` looks before letting add_reader() and the
    sock_* methods touch an fd.

    asyncio keeps a WeakValueDictionary: a weak reference per transport
    (88 bytes and a table slot), so that an unclosed transport nothing else
    holds can still be collected.  A socket transport that is reading is
    held by its reader in the selector anyway, and the reader says which
    transport it is (its callback is a method of the transport): such a
    transport is found there, with no entry of its own.  Weak entries
    remain for the rest, as in asyncio:

    * ``starting``: a socket transport from its creation until its reader
      first starts (connection_made runs before that), then dropped;
    * ``weak``: any other transport, and a socket transport once it stops
      reading while open (paused, or past an EOF its protocol keeps open);
      kept while it lives, so pausing and resuming again costs nothing.

    A lookup answers what asyncio's map answers for every open transport
    (a closing one may be left out: asyncio's check lets those pass), and
    an fd deleted from the map (as sendfile does while it uses the socket)
    stays absent until it is set again.  SocketTransport reports when its
    reader starts or stops (``track_reading``)."""

    cdef dict fd_to_key        # the selector's
    cdef object starting       # WeakValueDictionary fd -> transport
    cdef object weak           # WeakValueDictionary fd -> transport
    cdef dict starting_refs    # their tables: fd -> weak reference
    cdef dict weak_refs
    cdef set deleted           # fds deleted, until set again

    def __cinit__(self, dict fd_to_key):
        self.fd_to_key = fd_to_key
        self.starting = WeakValueDictionary()
        self.weak = WeakValueDictionary()
        self.starting_refs = self.starting.data
        self.weak_refs = self.weak.data
        self.deleted = set()

    cdef object lookup(self, fd):
        """The transport of fd, or None."""
        if self.deleted and fd in self.deleted:
            return None
        transport = reading_transport(self.fd_to_key, fd)
        if transport is None:
            transport = weak_get(self.weak_refs, fd)
            if transport is None:
                transport = weak_get(self.starting_refs, fd)
        return transport

    def __getitem__(self, fd):
        transport = self.lookup(fd)
        if transport is None:
            raise KeyError(fd)
        return transport

    def get(self, fd, default=None):
        transport = self.lookup(fd)
        return default if transport is None else transport

    def __contains__(self, fd):
        return self.lookup(fd) is not None

    def __setitem__(self, fd, transport):
        self.forget(fd)
        if reading_transport(self.fd_to_key, fd) is transport:
            return
        if isinstance(transport, SocketTransport) and not transport._paused:
            self.starting[fd] = transport
        else:
            self.weak[fd] = transport

    def __delitem__(self, fd):
        if self.lookup(fd) is None:
            raise KeyError(fd)
        self.forget(fd)
        self.deleted.add(fd)

    cdef forget(self, fd):
        """Drop what the map holds for fd.  The weak references go
        straight out of the WeakValueDictionaries' tables (their own
        methods are Python code; a reference dropped first never calls
        back)."""
        if self.deleted:
            self.deleted.discard(fd)
        if self.starting_refs:
            self.starting_refs.pop(fd, None)
        if self.weak_refs:
            self.weak_refs.pop(fd, None)

    def keys(self):
        fds = set(self.starting.keys())
        fds.update(self.weak.keys())
        for fd in list(self.fd_to_key):
            if reading_transport(self.fd_to_key, fd) is not None:
                fds.add(fd)
        return fds - self.deleted

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def items(self):
        return [(fd, self[fd]) for fd in self.keys()]

    def values(self):
        return [self[fd] for fd in self.keys()]

    def __repr__(self):
        return f'<TransportMap {dict(self.items())!r}>'

    cdef track(self, fd, transport):
        """transport's reader started or stopped: drop the entry of a
        starting transport once its reader holds it; give an open
        transport without a reader a weak entry."""
        if self.deleted and fd in self.deleted:
            return
        if reading_transport(self.fd_to_key, fd) is transport:
            if weak_get(self.starting_refs, fd) is transport:
                del self.starting_refs[fd]
        elif weak_get(self.weak_refs, fd) is not transport and not transport.is_closing():
            self.starting_refs.pop(fd, None)
            self.weak[fd] = transport


MutableMapping.register(TransportMap)


cdef inline object weak_get(dict refs, fd):
    """WeakValueDictionary.get(fd), read from its table (refs): the
    object, or None (no entry, or the object is gone)."""
    ref = refs.get(fd)
    return None if ref is None else ref()


cdef object reading_transport(dict fd_to_key, fd):
    """The socket transport whose reader is registered for fd, or None.
    A socket transport's reader runs a bound method of the transport."""
    key = fd_to_key.get(fd)
    if key is None:
        return None
    data = key.data
    if type(data) is not tuple or len(<tuple>data) != 2:
        return None
    reader = (<tuple>data)[0]
    if type(reader) is not Handle:
        return None
    callback = reader._callback
    if type(callback) is not MethodType:
        return None
    owner = (<object>callback).__self__
    if isinstance(owner, SocketTransport):
        return owner
    return None


cdef track_reading(transport):
    """Tell the loop's TransportMap that transport's reader started or
    stopped."""
    loop = transport._loop
    if loop is None:
        return  # connection lost: the transport is closed
    transports = loop._transports
    if type(transports) is TransportMap:
        (<TransportMap>transports).track(transport._sock_fd, transport)


cdef object MISSING = object()   # an ExtraInfo slot without a value
cdef object TransportSocket = asyncio.trsock.TransportSocket
cdef object socket_type = socket.socket


class ExtraInfo(MutableMapping):
    """A socket transport's extra info, in place of asyncio's dict.

    asyncio's socket transport fills a dict with 'socket', 'sockname' and
    'peername' (a 64-byte dict with a 120-byte table) and wraps the
    socket in a TransportSocket (40 bytes) up front.  This holds the three
    in slots (64 bytes in all) and makes the TransportSocket when first
    asked for, then keeps it, so get_extra_info('socket') returns the
    same object each time, as before.  Any other name goes to a dict made
    when one is set.  It is a MutableMapping: what asyncio and anyone
    else do with a transport's _extra works as on the dict."""

    __slots__ = ('_socket', '_sockname', '_peername', '_others')

    def __init__(self, extra=()):
        self._socket = self._sockname = self._peername = MISSING
        self._others = None
        for name, value in dict(extra).items():
            if (name == 'socket' and type(value) is TransportSocket
                    and isinstance(value._sock, socket_type)):
                # A bare socket in the slot stands for its TransportSocket,
                # made when asked for (see socket_slot).
                self._socket = value._sock
            else:
                self[name] = value

    def get(self, name, default=None):
        value = extra_slot(self, name)
        if value is MISSING:
            others = self._others
            if others is None:
                hash(name)  # an unhashable name fails as with a dict
                return default
            return others.get(name, default)
        return value

    def __getitem__(self, name):
        value = extra_slot(self, name)
        if value is MISSING:
            others = self._others
            if others is None:
                hash(name)
                raise KeyError(name)
            return others[name]
        return value

    def __contains__(self, name):
        if extra_slot(self, name) is not MISSING:
            return True
        others = self._others
        if others is None:
            hash(name)
            return False
        return name in others

    def __setitem__(self, name, value):
        if name == 'sockname':
            self._sockname = value
        elif name == 'peername':
            self._peername = value
        elif name == 'socket' and not isinstance(value, socket_type):
            self._socket = value
        else:
            # Also 'socket' set to a bare socket: the slot would wrap it.
            if name == 'socket':
                self._socket = MISSING
            if self._others is None:
                self._others = {}
            self._others[name] = value
            return
        if self._others is not None:
            self._others.pop(name, None)

    def __delitem__(self, name):
        if extra_slot(self, name) is not MISSING:
            setattr(self, '_' + name, MISSING)
        elif self._others is not None and name in self._others:
            del self._others[name]
        else:
            raise KeyError(name)

    def __iter__(self):
        for name in ('socket', 'sockname', 'peername'):
            if extra_slot(self, name) is not MISSING:
                yield name
        if self._others is not None:
            yield from self._others

    def __len__(self):
        return (sum(1 for name in ('socket', 'sockname', 'peername')
                    if extra_slot(self, name) is not MISSING)
                + (len(self._others) if self._others is not None else 0))

    def __repr__(self):
        return repr(dict(self))

    def copy(self):
        return dict(self)


cdef object extra_slot(info, name):
    """The value of name in info's slots, or MISSING (not a slot's name, or
    no value)."""
    if name == 'peername':
        return info._peername
    if name == 'sockname':
        return info._sockname
    if name == 'socket':
        value = info._socket
        if isinstance(value, socket_type):
            value = info._socket = TransportSocket(value)
        return value
    return MISSING


cdef ssize_t recv_ready(transport, int fd, void *buf, size_t size) except -2:
    """A transport's read on readiness: the byte count received, or -1 when
    there is nothing to hand on: no data yet, end of file (reported to the
    protocol), or an error (reported as asyncio's transport reports it)."""
    cdef ssize_t n = c_recv(fd, buf, size, 0)
    if n > 0:
        return n
    if n == 0:
        transport._read_ready__on_eof()
        return -1
    if errno == EAGAIN or errno == EINTR:
        return -1
    try:
        PyErr_SetFromErrno(OSError)
    except OSError as exc:
        transport._fatal_error(exc, 'Fatal read error on socket transport')
    return -1


cdef int get_protocol_buffer(transport, Py_ssize_t hint, Py_buffer *view) except -1:
    """A BufferedProtocol's get_buffer(hint), writable, in *view (the
    caller releases it): 1; or 0 once the failure is reported as asyncio's
    transport reports it."""
    try:
        buf = transport._protocol.get_buffer(hint)
        if not len(buf):
            raise RuntimeError('get_buffer() returned an empty buffer')
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(
            exc, 'Fatal error: protocol.get_buffer() call failed.')
        return 0
    try:
        PyObject_GetBuffer(buf, view, PyBUF_WRITABLE)
    except BaseException:
        # Not a writable buffer: socket.recv_into() says so in its words
        # (and reads nothing).
        try:
            transport._sock.recv_into(buf)
        except BaseException as exc:
            transport._fatal_error(exc, 'Fatal read error on socket transport')
        return 0
    return 1


cdef object super_write = selector_events._SelectorSocketTransport.write
cdef object BufferedProtocol = asyncio.BufferedProtocol


class SocketTransport(selector_events._SelectorSocketTransport):
    """asyncio's socket transport with its per-event paths in C: reads into
    the reused buffer (or a BufferedProtocol's own), and writes straight to
    the socket while nothing is buffered.  Everything else (flow control, EOF, close, sendfile, TLS
    upgrade) is asyncio's."""

    # The loop's TransportMap finds a reading transport through its reader,
    # and needs to know when that starts or stops (see TransportMap).

    # Poller-side I/O (the loop's ``poller_io``): while the pollers read
    # the kernel, a poller receives this transport's data and sends what
    # write() queued, so the loop thread runs only the protocol.  Whatever
    # asyncio's own code is about to look at (pause, EOF, close, abort,
    # write_eof, sendfile, writelines, a short or failed send) first takes
    # the transport back to asyncio's state: queued output goes through
    # asyncio's write, a read already made is delivered in order.
    _wfc_io = None       # the loop's EventPoll while pollers may do our I/O
    _wfc_queued = False  # output may be queued with the pollers
    _wfc_held = None     # reads taken from the pollers while paused (list)

    def _add_reader(self, fd, callback, *args):
        super()._add_reader(fd, callback, *args)
        track_reading(self)
        io_start(self, fd)

    def pause_reading(self):
        if self._wfc_io is not None and self.is_reading():
            io_stop(self, True, True)
        super().pause_reading()
        track_reading(self)

    def resume_reading(self):
        super().resume_reading()
        if self._wfc_held:
            self._loop.call_soon(self._wfc_deliver_held)

    def _wfc_deliver_held(self):
        """Deliver the reads held while reading was paused, in order."""
        held = self._wfc_held
        while held and not self._paused and not self._conn_lost:
            deliver_read(self, held.pop(0))
        if not held:
            self._wfc_held = None

    def _read_ready__on_eof(self):
        # eof_received() may write, and a kept-open transport stops
        # reading: both on asyncio's paths.
        io_stop(self, True, False)
        super()._read_ready__on_eof()
        track_reading(self)

    def close(self):
        io_stop(self, True, False)
        super().close()

    def _force_close(self, exc):
        io_stop(self, False, False)
        super()._force_close(exc)

    def write_eof(self):
        if self._wfc_queued:
            io_settle_writes(self)
        super().write_eof()

    def writelines(self, list_of_data):
        if self._wfc_queued:
            io_settle_writes(self)
        super().writelines(list_of_data)

    def get_write_buffer_size(self):
        """Bytes buffered by asyncio's write, plus those queued for the
        pollers and not sent yet."""
        cdef EventPoll poll
        n = super().get_write_buffer_size()
        if self._wfc_queued:
            poll = self._loop._wfc_io
            n += poll.io_pending(self._sock_fd)
        return n

    if hasattr(selector_events._SelectorSocketTransport, '_make_empty_waiter'):
        def _make_empty_waiter(self):
            if self._wfc_queued:
                io_settle_writes(self)
            return super()._make_empty_waiter()

    def set_protocol(self, protocol):
        # asyncio keeps the bound method of the read path this protocol
        # takes in _read_ready_cb: a 64-byte object per transport, and a
        # reference cycle.  The plain function, one for all transports of
        # the class, says the same; _read_ready passes the transport to it.
        cls = type(self)
        if isinstance(protocol, BufferedProtocol):
            self._read_ready_cb = cls._read_ready__get_buffer
        else:
            self._read_ready_cb = cls._read_ready__data_received
        super(selector_events._SelectorSocketTransport, self).set_protocol(protocol)

    def _read_ready(self):
        self._read_ready_cb(self)

    def _read_ready__data_received(self):
        cdef ssize_t n
        if self._conn_lost:
            return
        if self._wfc_io is not None and io_read_taken(self):
            return
        n = recv_ready(self, self._sock_fd, read_buffer, READ_BUFFER_SIZE)
        if n < 0:
            return
        data = PyBytes_FromStringAndSize(read_buffer, n)
        try:
            self._protocol.data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.data_received() call failed.')

    def _read_ready__get_buffer(self):
        cdef ssize_t n
        cdef Py_buffer view
        if self._conn_lost:
            return
        if self._wfc_io is not None and io_read_taken(self):
            return
        if not get_protocol_buffer(self, -1, &view):
            return
        try:
            n = recv_ready(self, self._sock_fd, view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        if n < 0:
            return
        try:
            self._protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.buffer_updated() call failed.')

    def write(self, data):
        """Queue ``data`` for the pollers (poller-side I/O), else send it
        now when nothing is buffered and it all fits in the socket;
        otherwise asyncio's write() buffers the rest."""
        cdef EventPoll poll
        cdef Py_ssize_t queued
        io = self._wfc_io
        if (io is not None and type(data) is bytes and not self._buffer
                and not self._eof and not self._closing and not self._conn_lost
                and self._empty_waiter is None and PyBytes_GET_SIZE(data) > 0
                and (<EventPoll>io).io_writes()):
            poll = <EventPoll>io
            queued = poll.io_write(self._sock_fd, PyBytes_AS_STRING(data),
                                   PyBytes_GET_SIZE(data))
            if queued >= 0:
                self._wfc_queued = True
                if queued > self._high_water:
                    io_settle_writes(self)   # asyncio's buffer and flow control
                return
        if self._wfc_queued:
            io_settle_writes(self)
        plain_write(self, data)


    if getattr(selector_events._SelectorSocketTransport,
               '_buffer_factory', None) is bytearray:
        # asyncio (3.11) gives each transport an empty bytearray for its
        # write buffer (56 bytes); most writes of an idle-heavy server go
        # out at once and never need it.  Until a write has to buffer,
        # _buffer is b'' (one object for all): empty, as asyncio's code
        # reads it, and write() puts a bytearray there before asyncio's
        # write() can add to it.
        _buffer_factory = bytes

    def _set_write_buffer_limits(self, high=None, low=None):
        super()._set_write_buffer_limits(high, low)
        # asyncio computes the low-water mark anew per transport: with
        # the defaults a 32-byte int of 16 KiB.  Equal ints are shared.
        self._high_water = shared_limit(self._high_water)
        self._low_water = shared_limit(self._low_water)


cdef plain_write(self, data):
    """write() without poller-side I/O: send now when nothing is buffered
    and it all fits in the socket; otherwise asyncio's write() buffers the
    rest."""
    cdef ssize_t n
    if (type(data) is bytes and not self._buffer and not self._eof
            and self._empty_waiter is None and not self._conn_lost
            and PyBytes_GET_SIZE(data) > 0):
        n = c_send(self._sock_fd, PyBytes_AS_STRING(data),
                   PyBytes_GET_SIZE(data), MSG_NOSIGNAL)
        if n == PyBytes_GET_SIZE(data):
            return
        if n > 0:
            data = data[n:]
        # EAGAIN, an error or a partial send: asyncio's write tries
        # again (and reports the error the way it always does).
    if type(self._buffer) is bytes:
        self._buffer = bytearray()  # the first write that may buffer
    super_write(self, data)


# ---- poller-side I/O of SocketTransport (see its class comment) ----------

cdef io_start(transport, fd):
    """Let the pollers do transport's I/O, if its loop has poller-side I/O
    and fd is the transport's registered, reading socket."""
    cdef EventPoll poll
    loop = transport._loop
    if loop is None:
        return
    io = loop._wfc_io
    if io is None or fd != transport._sock_fd:
        return
    poll = <EventPoll>io
    if poll.io_enable(fd) == 0:
        transport._wfc_io = poll
        loop._wfc_io_transports[fd] = transport


cdef io_stop(transport, bint keep_writes, bint keep_read):
    """Back to asyncio's state: no poller reads for the transport any more
    (one that is reading has finished); its read already made is held
    (keep_read, for resume_reading) or dropped; output queued goes through
    asyncio's write (keep_writes) or is dropped (abort)."""
    cdef EventPoll poll = <EventPoll>transport._wfc_io
    fd = transport._sock_fd
    if poll is not None:
        transport._wfc_io = None
        poll.io_disable(fd)
        r = poll.io_take_read(fd)
        if r is not None and keep_read:
            if transport._wfc_held is None:
                transport._wfc_held = []
            transport._wfc_held.append(r)
    if transport._wfc_queued:
        if keep_writes:
            io_settle_writes(transport)
        else:
            # abort(): asyncio's write would have sent this already where
            # the socket had room; one try, then it is dropped as asyncio
            # drops its buffer.
            transport._wfc_queued = False
            loop = transport._loop
            if loop is not None and loop._wfc_io is not None:
                data, err = (<EventPoll>loop._wfc_io).io_take_writes(fd)
                if data is not None and not err and not transport._conn_lost:
                    c_send(fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                           MSG_NOSIGNAL | MSG_DONTWAIT)


cdef io_settle_writes(transport):
    """Take the output queued for the pollers and not sent (a short send,
    or not sent yet) through asyncio's write, in order; a send that failed
    is asyncio's fatal write error."""
    cdef EventPoll poll
    loop = transport._loop
    transport._wfc_queued = False
    if loop is None or loop._wfc_io is None:
        return
    poll = <EventPoll>loop._wfc_io
    data, err = poll.io_take_writes(transport._sock_fd)
    if err:
        transport._fatal_error(OSError(err, strerror(err).decode()),
                               'Fatal write error on socket transport')
        return
    if data is not None:
        plain_write(transport, data)


def _io_settle_writes(transport):
    """A poller's send for transport stopped short or failed."""
    io_settle_writes(transport)


cdef bint io_read_taken(transport) except -1:
    """Deliver the reads held while paused and the read a poller made for
    transport, if any: True when the reader has nothing more to do."""
    cdef EventPoll poll = <EventPoll>transport._wfc_io
    if transport._wfc_held:
        transport._wfc_deliver_held()
        if transport._wfc_held or transport._conn_lost:
            return True
    r = poll.io_take_read(transport._sock_fd)
    if r is None:
        return False
    deliver_read(transport, r)
    return True


cdef deliver_read(transport, r):
    """Hand a read the pollers made (bytes, 0 for end of file, or an
    OSError) to the protocol, as the transport's own read would."""
    if type(r) is bytes:
        if isinstance(transport._protocol, BufferedProtocol):
            feed_buffered(transport, r)
            return
        try:
            transport._protocol.data_received(r)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(
                exc, 'Fatal error: protocol.data_received() call failed.')
    elif type(r) is int:
        transport._read_ready__on_eof()
    else:
        transport._fatal_error(r, 'Fatal read error on socket transport')


cdef feed_buffered(transport, bytes data):
    """data into a BufferedProtocol's buffers: get_buffer() and
    buffer_updated() as often as the buffers it gives need; what is left
    when reading pauses is held for resume_reading()."""
    cdef Py_ssize_t offset = 0, size = len(data), n
    cdef Py_buffer view
    protocol = transport._protocol
    while offset < size:
        if transport._conn_lost:
            return
        if transport._paused:
            if transport._wfc_held is None:
                transport._wfc_held = []
            transport._wfc_held.insert(0, data[offset:])
            return
        if not get_protocol_buffer(transport, size - offset, &view):
            return
        n = min(view.len, size - offset)
        memcpy(view.buf, PyBytes_AS_STRING(data) + offset, n)
        PyBuffer_Release(&view)
        offset += n
        try:
            protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(
                exc, 'Fatal error: protocol.buffer_updated() call failed.')
            return


cdef object DEFAULT_HIGH_WATER = 64 * 1024
cdef object DEFAULT_LOW_WATER = 16 * 1024


cdef object shared_limit(value):
    """value, or the equal default write buffer limit that all transports
    share."""
    if type(value) is int:
        if value == DEFAULT_LOW_WATER:
            return DEFAULT_LOW_WATER
        if value == DEFAULT_HIGH_WATER:
            return DEFAULT_HIGH_WATER
    return value
