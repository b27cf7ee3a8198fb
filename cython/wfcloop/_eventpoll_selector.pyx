# cython: language_level=3
"""EventPollSelector: a :class:`selectors.BaseSelector` on wfcloop's EventPoll.

The layers point one way: EventPoll (``_eventpoll``) <- this selector <-
the compiled loop (``_loop``) <- the package.  The selector is its own
extension module, rather than one more file included into ``_loop``, so
that the direction is the build's and not a convention: this module
cimports only the EventPoll and imports only the standard library's public
``selectors`` names; it cannot see the loop.  The loop cimports this
module's .pxd and reads the selector through its C API (``key_for``,
``registered``, ``registered_fds``, ``poll_into`` and the inline
``ready_key``), never through private attributes.

The selector owns its EventPoll and the fd -> key map: a dict (which owns
the keys, and gives ``get_map()`` the standard library's order) and, beside
it, a C array indexed by fd holding the same key (borrowed) and its events
as a C int, so that a poll's events are turned into keys without a Python
call, an int object or a hash per event.  Both change together, in
``set_slot`` and ``clear_slots`` only.

One dispatch path: ``poll_into`` fills an event array and ``ready_key``
decodes one event into (key, mask); ``select()`` builds the standard
library's (key, events) list from them, the loop's dispatch its handles.

Behaviour, arguments, exceptions and messages are those of
``selectors.EpollSelector`` (register/unregister/modify/get_key/get_map/
select/close/fileno, before and after close()).
"""
import math
import selectors
from abc import ABCMeta
from collections.abc import Mapping

cimport cython
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memset

from wfcloop._eventpoll cimport _timeout_ms, WFC_WAIT_EVERY_READY

__all__ = ["EventPollSelector"]


cdef extern from *:
    """
    /* A SelectorKey (a namedtuple: a tuple subclass without a __dict__)
     * made as tuple.__new__(SelectorKey, (fileobj, fd, events, data)) makes
     * it, without the Python __new__ namedtuple generates. */
    static PyObject *wfcloop_make_key(PyTypeObject *type, PyObject *fileobj,
                                      PyObject *fd, PyObject *events,
                                      PyObject *data) {
        PyObject *key = type->tp_alloc(type, 4);
        if (key == NULL)
            return NULL;
        Py_INCREF(fileobj);
        PyTuple_SET_ITEM(key, 0, fileobj);
        Py_INCREF(fd);
        PyTuple_SET_ITEM(key, 1, fd);
        Py_INCREF(events);
        PyTuple_SET_ITEM(key, 2, events);
        Py_INCREF(data);
        PyTuple_SET_ITEM(key, 3, data);
        return key;
    }
    """
    object wfcloop_make_key(PyTypeObject *type, object fileobj, object fd,
                            object events, object data)


cdef extern from "Python.h":
    int PyObject_AsFileDescriptor(object o) except -1


cdef object SelectorKey = selectors.SelectorKey
cdef object EVENT_READ = selectors.EVENT_READ
cdef object EVENT_WRITE = selectors.EVENT_WRITE
assert EVENT_READ == SELECTOR_READ and EVENT_WRITE == SELECTOR_WRITE
cdef object VALID_EVENTS = EVENT_READ | EVENT_WRITE
# make_key fills a SelectorKey's items in this order.
_probe = SelectorKey("fileobj", "fd", "events", "data")
assert issubclass(SelectorKey, tuple) and tuple(_probe) == (
    _probe.fileobj, _probe.fd, _probe.events, _probe.data) == (
    "fileobj", "fd", "events", "data")
del _probe


cdef inline object make_key(fileobj, fd, events, data):
    return wfcloop_make_key(<PyTypeObject *>SelectorKey, fileobj, fd, events, data)


cdef inline uint32_t epoll_events(object events) except? 0xffffffff:
    """The epoll mask of selectors events (as _PollLikeSelector maps them)."""
    cdef uint32_t mask = 0
    if events & EVENT_READ:
        mask |= SELECTOR_EPOLLIN
    if events & EVENT_WRITE:
        mask |= SELECTOR_EPOLLOUT
    return mask


cdef inline int c_events(object events) except -1:
    """events as SELECTOR_READ | SELECTOR_WRITE."""
    cdef int mask = 0
    if events & EVENT_READ:
        mask |= SELECTOR_READ
    if events & EVENT_WRITE:
        mask |= SELECTOR_WRITE
    return mask


cdef object fileobj_to_fd(object fileobj):
    """A file descriptor from a file object or an fd, with selectors'
    checks and messages (ValueError for an invalid one)."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError("Invalid file object: "
                             "{!r}".format(fileobj)) from None
    if fd < 0:
        raise ValueError("Invalid file descriptor: {}".format(fd))
    return fd


cdef int c_timeout_ms(object timeout) except? -2:
    """EpollSelector.select's timeout in epoll milliseconds: None waits
    forever, zero or less not at all, the rest rounded up to whole
    milliseconds (wait at least timeout), with epoll's own errors."""
    if timeout is None:
        return -1
    if timeout <= 0:
        return 0
    return _timeout_ms(math.ceil(timeout * 1e3) * 1e-3)


class SelectorMapping(Mapping):
    """get_map()'s read-only mapping of file objects to keys (looked up by
    file object or fd; iterates over fds), as selectors' own."""

    __slots__ = ("selector",)

    def __init__(self, selector):
        self.selector = selector

    def __len__(self):
        return len((<EventPollSelector>self.selector).keys)

    def __getitem__(self, fileobj):
        cdef EventPollSelector selector = <EventPollSelector>self.selector
        key = selector.keys.get(selector.fd_of(fileobj))
        if key is None:
            raise KeyError("{!r} is not registered".format(fileobj))
        return key

    def get(self, fileobj, default=None):
        cdef EventPollSelector selector = <EventPollSelector>self.selector
        return selector.keys.get(selector.fd_of(fileobj), default)

    def __iter__(self):
        return iter((<EventPollSelector>self.selector).keys)


@cython.no_gc_clear   # slots borrow from keys: keys is never cleared under them
cdef class EventPollSelector:
    """A selectors.BaseSelector whose poller is :class:`wfcloop.EventPoll`.

    EventPollSelector(*, pollers=None, adaptive=True, poller_io=True)

    ``pollers`` poller threads (``None``: :func:`wfcloop.default_pollers`).
    ``adaptive`` (poller mode): let the EventPoll park its pollers and read
    the kernel on the loop thread while that is cheaper; the loop is the
    EventPoll's only polling thread, which the adaptive rule needs.
    ``poller_io`` (poller mode): let the pollers do the loop's socket
    transports' I/O.  (``wfcloop.EventPollSelector`` takes the
    environment's defaults for these, see :func:`wfcloop.default_adaptive`.)
    """

    def __cinit__(self, *args, **kwargs):
        self.keys = {}
        self.slots = NULL
        self.nslots = 0
        self.mapping = SelectorMapping(self)
        self.poller_io = False

    def __init__(self, *, pollers=None, adaptive=True, poller_io=True):
        poll = EventPoll(pollers=pollers)
        if poll.pollers:
            poll._set_adaptive(bool(adaptive))
        self.eventpoll = poll
        self.poller_io = bool(poller_io) and poll.pollers > 0
        # The poll settles before returning a partial batch (the default):
        # asyncio runs every I/O callback that was ready before a poll ahead
        # of what those callbacks schedule, so a poll must not leave out an
        # event a poller has taken from the kernel but not yet queued.

    def __dealloc__(self):
        free(self.slots)

    # ---- the loop's API (C) ----------------------------------------------

    cdef object key_for(self, int fd):
        """The key registered for fd, or None."""
        if fd < 0 or fd >= self.nslots or self.slots[fd].key == NULL:
            return None
        return <object>self.slots[fd].key

    cdef Py_ssize_t registered(self) noexcept:
        """The number of registered fds."""
        return len(self.keys)

    cdef list registered_fds(self):
        """The registered fds, in the order they were registered."""
        return list(self.keys)

    cdef int poll_into(self, event_batch *batch, int limit, int timeout_ms,
                       unsigned flags) except -2:
        """Wait up to timeout_ms (-1: forever) for events into batch, grown
        first to one event per registered fd (as selectors' epoll asks for)
        but at most limit (the rest stays queued for the next poll) and at
        least one.  Returns the number of events (decode each with
        ready_key), or -1 when a signal interrupted the wait (its Python
        handlers ran, and may have raised).  flags: wfc_ep_wait_flags'
        (WFC_WAIT_EVERY_READY for select(); 0 for the loop's iteration)."""
        cdef Py_ssize_t want = self.registered()
        if want > limit:
            want = limit
        if want < 1:
            want = 1
        batch_reserve(batch, <int>want)
        if self.eventpoll is None:
            raise ValueError("I/O operation on closed epoll object")
        return self.eventpoll.wait_into(batch.events, <int>want, timeout_ms, flags)

    # ---- the fd -> key map --------------------------------------------------

    cdef object fd_of(self, object fileobj):
        """fileobj's fd; for an invalid one (a closed socket, say) the fd it
        was registered with, else ValueError (selectors' _fileobj_lookup)."""
        try:
            return fileobj_to_fd(fileobj)
        except ValueError:
            for key in self.keys.values():
                if (<tuple>key)[0] is fileobj:
                    return (<tuple>key)[1]
            raise

    cdef int set_slot(self, int fd, object key) except -1:
        """Point fd's slot at key (None: clear it); keys must already hold
        the same.  The array grows to fd + 1 (an fd the kernel accepted)."""
        cdef int n
        cdef fd_slot *grown
        if key is None:
            if fd < self.nslots:
                self.slots[fd].key = NULL
                self.slots[fd].events = 0
            return 0
        if fd >= self.nslots:
            n = self.nslots * 2 if self.nslots else 64
            if n <= fd:
                n = fd + 1
            grown = <fd_slot *>realloc(self.slots, n * sizeof(fd_slot))
            if grown == NULL:
                raise MemoryError()
            memset(&grown[self.nslots], 0, (n - self.nslots) * sizeof(fd_slot))
            self.slots = grown
            self.nslots = n
        self.slots[fd].events = c_events((<tuple>key)[2])
        self.slots[fd].key = <PyObject *>key
        return 0

    cdef void clear_slots(self) noexcept:
        if self.slots != NULL:
            memset(self.slots, 0, self.nslots * sizeof(fd_slot))

    # ---- selectors.BaseSelector ----------------------------------------------

    def register(self, fileobj, events, data=None):
        """Register fileobj for events (EVENT_READ | EVENT_WRITE); return
        its SelectorKey.  ValueError for invalid events or file object,
        KeyError if it is registered already, OSError from the kernel."""
        cdef int cfd
        if (not events) or (events & ~VALID_EVENTS):
            raise ValueError("Invalid events: {!r}".format(events))
        fd = self.fd_of(fileobj)
        key = make_key(fileobj, fd, events, data)
        if fd in self.keys:
            raise KeyError("{!r} (FD {}) is already registered"
                           .format(fileobj, fd))
        self.keys[fd] = key
        try:
            if self.eventpoll is None:
                raise ValueError("I/O operation on closed epoll object")
            cfd = PyObject_AsFileDescriptor(fd)
            self.eventpoll._ctl(1, cfd, epoll_events(events))
            self.set_slot(cfd, key)
        except BaseException:
            del self.keys[fd]
            raise
        return key

    def unregister(self, fileobj):
        """Unregister fileobj; return its key.  KeyError if it is not
        registered; an fd closed since is forgotten without an error."""
        try:
            key = self.keys.pop(self.fd_of(fileobj))
        except KeyError:
            raise KeyError("{!r} is not registered".format(fileobj)) from None
        fd = (<tuple>key)[1]
        self.set_slot(PyObject_AsFileDescriptor(fd), None)
        # In a child forked from the process that made this selector, the
        # EventPoll refuses use (RuntimeError) and its kernel instance is
        # the parent's: forget the key without touching the kernel, so that
        # loop.close() in the child works, as with the stdlib's selectors
        # (which would even remove the parent's registration).
        if self.eventpoll is None or self.eventpoll.forked:
            return key
        try:
            self.eventpoll._ctl(3, PyObject_AsFileDescriptor(fd), 0)
        except OSError:
            # The fd was closed since it was registered.
            pass
        return key

    def modify(self, fileobj, events, data=None):
        """Change fileobj's events and/or data; return the new key.
        KeyError if it is not registered; if the kernel refuses the new
        events, fileobj is unregistered and the error raised."""
        cdef bint changed = False
        try:
            key = self.keys[self.fd_of(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        fd = (<tuple>key)[1]
        if events != (<tuple>key)[2]:
            try:
                if self.eventpoll is None:
                    raise ValueError("I/O operation on closed epoll object")
                self.eventpoll._ctl(2, PyObject_AsFileDescriptor(fd), epoll_events(events))
            except BaseException:
                del self.keys[fd]
                self.set_slot(PyObject_AsFileDescriptor(fd), None)
                raise
            changed = True
        if data != (<tuple>key)[3]:
            changed = True
        if changed:
            key = make_key((<tuple>key)[0], fd, events, data)
            self.keys[fd] = key
            self.set_slot(PyObject_AsFileDescriptor(fd), key)
        return key

    def select(self, timeout=None):
        """Wait for registered fds to be ready; return a list of
        (key, events) pairs.  timeout in seconds (None: forever; zero or
        less: do not wait), rounded up to milliseconds.  A signal whose
        handler does not raise does not end the wait (PEP 475)."""
        cdef int ms = c_timeout_ms(timeout)
        cdef event_batch batch
        cdef int n, i, mask
        cdef PyObject *key
        cdef double deadline = 0.0
        cdef list ready = []
        batch.events = NULL
        batch.capacity = 0
        if ms > 0:
            deadline = monotonic() + ms / 1000.0
        try:
            while True:
                n = self.poll_into(&batch, 0x7fffffff, ms, WFC_WAIT_EVERY_READY)
                if n >= 0:
                    break
                if ms > 0:   # interrupted: wait for the time left
                    ms = max(0, <int>math.ceil((deadline - monotonic()) * 1000.0))
            for i in range(n):
                key = ready_key(self, batch.events[i].fd, batch.events[i].events, &mask)
                if key != NULL:
                    ready.append((<object>key, mask))
        finally:
            free(batch.events)
        return ready

    def close(self):
        """Close the EventPoll (joining its pollers) and forget every key.
        get_map() is None from then on."""
        if self.eventpoll is not None:
            self.eventpoll.close()
        self.clear_slots()
        self.keys.clear()
        self.mapping = None

    def get_key(self, fileobj):
        """fileobj's key; KeyError if it is not registered, RuntimeError
        once the selector is closed."""
        if self.mapping is None:
            raise RuntimeError('Selector is closed')
        key = self.keys.get(self.fd_of(fileobj))
        if key is None:
            raise KeyError("{!r} is not registered".format(fileobj))
        return key

    def get_map(self):
        """A read-only mapping of file objects to keys; None once closed."""
        return self.mapping

    def fileno(self):
        """The kernel epoll fd."""
        if self.eventpoll is None:
            raise ValueError("I/O operation on closed epoll object")
        return self.eventpoll.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *args):
        self.close()

    # ---- wfcloop's own -------------------------------------------------------

    @property
    def pollers(self):
        """Number of poller threads (0: inline mode)."""
        return self.eventpoll.pollers

    @property
    def phase(self):
        """"pollers" while the poller threads read the kernel, "inline"
        while the loop thread does (always so in inline mode)."""
        return self.eventpoll.phase

    def stats(self):
        """The EventPoll's counters (see EventPoll.stats)."""
        return self.eventpoll.stats()

    @property
    def _selector(self):
        """The EventPoll, under the name selectors' poll-like selectors
        give their poller object (code written for those reads it)."""
        return self.eventpoll


# A selectors.BaseSelector (a cdef class cannot inherit from the ABC; its
# own register() would shadow ABCMeta's, hence the explicit call).
ABCMeta.register(selectors.BaseSelector, EventPollSelector)


from time import monotonic
