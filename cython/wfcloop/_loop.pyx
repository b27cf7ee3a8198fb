# cython: language_level=3
"""The event loop's compiled hot paths: run-once and I/O dispatch, the
scheduler and its timer heap, the sock_* waits, plain servers' accept, and
the socket transport's read and write (with poller-side I/O).  One
extension module, one file per concern in loop/ (listed at the end).

``wfcloop.Loop`` keeps asyncio's own API surface (``BaseSelectorEventLoop``:
argument checks, TLS servers, SSL, subprocesses, sock_* methods) and
replaces what runs per event:

* ``_run_once`` polls the selector's EventPoll straight into a reused C
  event array (no selector key list, no per-poll allocation), turns each
  event into the reader/writer handles registered for its fd (found in the
  selector's C table by its ``ready_key``, the decoding select() uses),
  pops due timers and runs the ready handles, in asyncio's order: FIFO for
  call_soon, timers by deadline then insertion, I/O callbacks of one poll
  before the next poll.
* ``SocketTransport`` reads into one reused buffer (asyncio's transport
  asks ``recv`` for 256 KiB, which glibc serves with an mmap, mremap and
  munmap per read) and sends in C when its write buffer is empty.
* A plain (not TLS) server outside debug mode accepts in C
  (``loop/server_accept.pyx``): each connection's protocol and transport
  are made at once, without a Task per connection.

Callbacks are scheduled as asyncio's own Handle and TimerHandle objects; in
debug mode they are made by asyncio's code (which records where), and slow
callback warnings have asyncio's messages.
"""
import asyncio
import heapq
import socket
import sys
import threading
from collections.abc import MutableMapping
from types import MemberDescriptorType, MethodType
from weakref import WeakValueDictionary
from wfcloop import asyncio_compat

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
from cpython.exc cimport PyErr_SetFromErrno
from libc.errno cimport errno, EAGAIN, EINTR
from libc.math cimport ceil
from libc.stdint cimport uint32_t
from libc.stdlib cimport malloc, realloc, free
from libc.string cimport memcpy, strerror

from wfcloop._eventpoll cimport EventPoll, wfc_event, WFC_EV_NOTIFY_BITS
from wfcloop._eventpoll_selector cimport (
    EventPollSelector, event_batch, batch_reserve, ready_key, fileobj_to_fd,
    SELECTOR_READ, SELECTOR_WRITE)
from wfcloop._timer_heap cimport heap_pop, heap_push

from cpython.object cimport PyObject, PyTypeObject
from cpython.tuple cimport PyTuple_GET_ITEM
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
    # The singletons themselves: in Cython `<PyObject *>True` is the C
    # constant 1, not the object.
    PyObject *Py_True
    PyObject *Py_False


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
    # One read per readiness event: what asyncio's transport asks recv for.
    READ_BUFFER_SIZE = 256 * 1024
    # Events taken from the ready list per poll, at most.
    MAX_EVENTS_PER_POLL = 1024

# The reused read buffer.  Only a thread holding the GIL uses it, from the
# recv to the copy into a bytes object, so loops in several threads can
# share it.
cdef char read_buffer[READ_BUFFER_SIZE]

cdef double MAXIMUM_SELECT_TIMEOUT = asyncio_compat.MAXIMUM_SELECT_TIMEOUT
cdef Py_ssize_t MIN_SCHEDULED_TIMER_HANDLES = asyncio_compat.MIN_SCHEDULED_TIMER_HANDLES
cdef double MIN_CANCELLED_TIMER_HANDLES_FRACTION = asyncio_compat.MIN_CANCELLED_TIMER_HANDLES_FRACTION
cdef object Handle = asyncio_compat.Handle
cdef object TimerHandle = asyncio_compat.TimerHandle
cdef object heapify = heapq.heapify
cdef object format_handle = asyncio_compat.format_handle
cdef object Future = asyncio.Future
cdef object Task = asyncio.Task
cdef object set_task_name = asyncio_compat.set_task_name
cdef object format_callback_source = asyncio_compat.format_callback_source
# Version flags: what each stands for is said in asyncio_compat.
cdef bint FORMAT_WITH_DEBUG = asyncio_compat.FORMAT_WITH_DEBUG
cdef bint CHECK_SOCKET_TRANSPORT = asyncio_compat.CHECK_SOCKET_TRANSPORT
from asyncio.log import logger


cdef inline double monotonic() noexcept nogil:
    """time.monotonic(): the same clock, without the Python call."""
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef object socket_type = socket.socket
SSL_HANDSHAKE_TIMEOUT = asyncio_compat.SSL_HANDSHAKE_TIMEOUT
SSL_SHUTDOWN_TIMEOUT = asyncio_compat.SSL_SHUTDOWN_TIMEOUT
# asyncio's own methods, for the paths that keep asyncio's behaviour.
cdef object base_call_soon = asyncio_compat.base_call_soon
cdef object base__call_soon = asyncio_compat.base__call_soon
cdef object base_remove_reader = asyncio_compat.base__remove_reader
cdef object base_ensure_fd_no_transport = asyncio_compat.base__ensure_fd_no_transport


# The loop, one concern per file (declarations of their cdef classes in the
# .pxd beside each, gathered by _loop.pxd).
include "loop/run_once.pyx"
include "loop/handles.pyx"
include "loop/sock.pyx"
include "loop/server_accept.pyx"
include "loop/scheduler.pyx"
include "loop/base_loop.pyx"
include "loop/transport_map.pyx"
include "loop/extra_info.pyx"
include "loop/socket_transport.pyx"
include "loop/datagram_transport.pyx"
include "loop/tls_transport.pyx"
include "loop/poller_io.pyx"
