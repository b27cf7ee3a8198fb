# cython: language_level=3
"""EventPoll: select.epoll's interface over wfcloop's userspace eventpoll.

The C core (eventpoll_core.c) does the work; this module checks arguments
the way select.epoll does, turns negative errnos into OSError once, and
keeps the GIL released while the core waits.
"""
import math
import operator
import os
import select as _select
import weakref

# The settings' one parser (a leaf module: it imports nothing of wfcloop).
# default_pollers stays importable from here (wfcloop._eventpoll's stubs).
from wfcloop._config import default_pollers

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, EBADF, ENOMEM
from libc.limits cimport INT_MAX, INT_MIN
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport malloc, free


cdef extern from *:
    """
    #include <pthread.h>
    /* Forks seen by this process image: bumped in the child by a
     * pthread_atfork handler, so that a core can tell cheaply (no getpid()
     * system call per poll) whether it was created before a fork.  This is
     * wfcloop's one fork detector (_Core.in_forked_child; EventPoll.forked
     * for the layers above).  Not an atomic: the only write is the child's
     * handler, which runs while the child has a single thread and before
     * it runs any Python code; every read happens after, on a thread of
     * that child (or of the parent, which never writes it). */
    static unsigned long wfcloop_fork_generation = 0;
    static void wfcloop_after_fork_in_child(void) { wfcloop_fork_generation++; }
    static int wfcloop_watch_forks(void) {
        return pthread_atfork(NULL, NULL, wfcloop_after_fork_in_child);
    }
    """
    unsigned long wfcloop_fork_generation
    int wfcloop_watch_forks()


if wfcloop_watch_forks() != 0:
    raise ImportError("wfcloop: pthread_atfork failed")


cdef extern from "Python.h":
    int PyObject_AsFileDescriptor(object o) except -1


cdef extern from "sys/select.h":
    enum:
        FD_SETSIZE


DEFAULT_EVENTMASK = _select.EPOLLIN | _select.EPOLLPRI | _select.EPOLLOUT

# kernel epoll fd -> _Core, so that EventPoll.fromfd(ep.fileno()) shares
# ep's registrations and ready list the way two select.epoll objects on one
# fd share the kernel's.
_cores_by_fd = weakref.WeakValueDictionary()


cdef inline _raise_errno(int neg_errno):
    cdef int err = -neg_errno
    raise OSError(err, os.strerror(err))


cdef int _timeout_ms(object timeout) except? -2:
    """select.epoll.poll's timeout rules: None or negative waits forever,
    seconds are rounded up to whole milliseconds."""
    if timeout is None:
        return -1
    if isinstance(timeout, float):
        if math.isnan(timeout):
            raise ValueError("Invalid value NaN (not a number)")
        if math.isinf(timeout):
            if timeout > 0:
                raise OverflowError("timeout is too large")
            return -1
        ms = math.ceil(timeout * 1000.0)
    else:
        try:
            ms = operator.index(timeout) * 1000
        except TypeError:
            raise TypeError("timeout must be an integer or None") from None
    if ms > INT_MAX or ms < INT_MIN:
        raise OverflowError("timeout is too large")
    if ms < 0:
        return -1
    return <int>ms


cdef uint32_t _eventmask(object eventmask) except? 0xffffffff:
    """unsigned_int(bitwise=True), as select.epoll parses it."""
    if isinstance(eventmask, float):
        raise TypeError("integer argument expected, got float")
    return <uint32_t>(operator.index(eventmask) & 0xffffffff)


cdef class _Core:

    def __cinit__(self, int pollers, int kfd, str ready_list):
        cdef int kind
        cdef int rc
        cdef wfc_ep *ep = NULL
        if ready_list == "wfcqueue":
            kind = WFC_READY_LIST_WFCQUEUE
        elif ready_list == "mutex":
            kind = WFC_READY_LIST_MUTEX
        else:
            raise ValueError(f"ready list must be 'wfcqueue' or 'mutex', got {ready_list!r}")
        with nogil:
            rc = wfc_ep_create(&ep, pollers, kfd, kind)
        if rc < 0:
            _raise_errno(rc)
        self.ep = ep
        self.kfd = wfc_ep_kernel_fd(ep)
        self.pollers = pollers
        self.ready_list = ready_list
        self.fork_generation = wfcloop_fork_generation

    cdef bint in_forked_child(self) noexcept:
        """Whether this process is a child forked after the core was made:
        its poller threads did not survive the fork and its kernel epoll
        instance is shared with the parent, so it must not be used."""
        return wfcloop_fork_generation != self.fork_generation

    cdef wfc_ep *enter(self) except NULL:
        """Register the calling thread as a user of the core (GIL held, so
        close() cannot free it between our check and the enter)."""
        if self.ep == NULL:
            _raise_errno(-EBADF)
        if self.in_forked_child():
            raise RuntimeError(
                "this EventPoll was created in the parent process before "
                "os.fork(); create a new EventPoll in the child")
        wfc_ep_enter(self.ep)
        return self.ep

    cdef void close(self):
        cdef wfc_ep *ep = self.ep
        cdef int in_child = self.in_forked_child()
        if ep == NULL:
            return
        self.ep = NULL
        if _cores_by_fd.get(self.kfd) is self:
            del _cores_by_fd[self.kfd]
        # Without the GIL: threads still inside poll() need it to leave.
        with nogil:
            wfc_ep_destroy(ep, in_child)

    def __dealloc__(self):
        cdef wfc_ep *ep = self.ep
        cdef int in_child = self.in_forked_child()
        if ep != NULL:
            self.ep = NULL
            with nogil:
                wfc_ep_destroy(ep, in_child)


cdef inline wfc_ep *_io_ep(EventPoll poll) noexcept:
    """The live core of poll, or NULL (closed): for the io_* methods."""
    if poll._closed or poll.core is None:
        return NULL
    return poll.core.ep


cdef class EventPoll:
    """select.epoll's interface on a wait-free ready list fed by poller threads.

    EventPoll(sizehint=-1, flags=0, *, pollers=None)

    ``pollers`` native threads (GIL released, every signal blocked) wait in
    the kernel's epoll_wait; each event reaches one of them, which hands the
    fd to poll() through a wait-free queue.  ``pollers=0`` is inline mode:
    poll() reads the kernel itself.  ``None`` takes default_pollers().

    Registrations are level-triggered unless EPOLLET or EPOLLONESHOT is
    given, exactly as with select.epoll.  register/modify/unregister may be
    called from any thread, also while another thread is in poll().
    """

    def __cinit__(self, int sizehint=-1, int flags=0, *, pollers=None,
                  str _ready_list="wfcqueue", int _adopt_fd=-1, _Core _share=None):
        cdef int npollers
        self._closed = False
        self._notify = {}
        if _share is not None:
            self.core = _share
            return
        if sizehint == -1:
            sizehint = FD_SETSIZE - 1
        elif sizehint <= 0:
            raise ValueError("negative sizehint")
        if flags and flags != _select.EPOLL_CLOEXEC:
            raise OSError(22, os.strerror(22))
        if pollers is None:
            npollers = default_pollers()
        else:
            npollers = operator.index(pollers)
            if npollers < 0:
                raise ValueError(f"pollers must be >= 0, got {npollers}")
        self.core = _Core(npollers, _adopt_fd, _ready_list)
        _cores_by_fd[self.core.kfd] = self.core

    @classmethod
    def fromfd(cls, fd, *, pollers=None):
        """Create an EventPoll from a kernel epoll file descriptor.

        An fd that belongs to another open EventPoll shares that
        EventPoll's registrations and ready list (as two select.epoll
        objects on one fd share the kernel's).  Any other epoll fd is
        adopted: the new EventPoll owns it and closes it.
        """
        fd = operator.index(fd)
        core = _cores_by_fd.get(fd)
        if core is not None and (<_Core>core).ep != NULL:
            return cls(_share=core)
        return cls(pollers=pollers, _adopt_fd=fd)

    cdef _Core _open_core(self):
        if self._closed:
            raise ValueError("I/O operation on closed epoll object")
        return self.core

    @property
    def closed(self):
        """True once close() was called on this object."""
        return self._closed

    @property
    def pollers(self):
        """Number of poller threads (0: inline mode)."""
        return self.core.pollers

    @property
    def forked(self):
        """True in a child forked after this EventPoll was made (also once
        closed).  Such a copy raises RuntimeError on use: its poller threads
        did not survive the fork and its kernel instance is the parent's,
        which the child must not change; close() works and leaves the
        parent's registrations alone."""
        return self.core.in_forked_child()

    def fileno(self):
        """Return the kernel epoll file descriptor."""
        self._open_core()
        return self.core.kfd

    def close(self):
        """Stop and join the poller threads and close every fd the
        EventPoll opened, the kernel epoll fd included.  Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.core.close()
        # The notification handles hold their strategies, and those their
        # transports: a closed EventPoll must not keep them (nor their
        # sockets) alive while the loop object lives on.
        self._notify.clear()

    def __enter__(self):
        self._open_core()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def register(self, fd, eventmask=DEFAULT_EVENTMASK):
        """Register fd for the events in eventmask.

        FileExistsError if fd is already registered, OSError from the
        kernel for a bad fd.
        """
        cdef int cfd = PyObject_AsFileDescriptor(fd)
        cdef uint32_t mask = _eventmask(eventmask)
        self._ctl(1, cfd, mask)

    def modify(self, fd, eventmask):
        """Change a registered fd's eventmask (and re-arm EPOLLONESHOT)."""
        cdef int cfd = PyObject_AsFileDescriptor(fd)
        cdef uint32_t mask = _eventmask(eventmask)
        self._ctl(2, cfd, mask)

    def unregister(self, fd):
        """Remove fd; FileNotFoundError if it is not registered."""
        cdef int cfd = PyObject_AsFileDescriptor(fd)
        self._ctl(3, cfd, 0)

    def _register_with_data(self, fd, eventmask, uint64_t data):
        """register() that attaches ``data`` to the registration; poll
        with _poll_with_data() to get it back.  For tests and the loop."""
        cdef int cfd = PyObject_AsFileDescriptor(fd)
        self._ctl(1, cfd, _eventmask(eventmask), data)

    def _poll_with_data(self, timeout=None, int maxevents=-1):
        """poll() returning (fd, events, data) triples."""
        return self._poll(timeout, maxevents, True)

    cdef _ctl(self, int op, int fd, uint32_t mask, uint64_t data=0):
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        cdef int rc
        with nogil:
            if op == 1:
                rc = wfc_ep_add(ep, fd, mask, data)
            elif op == 2:
                rc = wfc_ep_mod(ep, fd, mask, data)
            else:
                rc = wfc_ep_del(ep, fd)
            wfc_ep_leave(ep)
        if op == 3 and self._notify:
            # The registration is gone, and so are its notifications.
            self._notify.pop(fd, None)
        if rc < 0:
            _raise_errno(rc)

    def poll(self, timeout=None, int maxevents=-1):
        """Wait for events; return a list of (fd, events) pairs.

        timeout in seconds (None or negative: forever), rounded up to
        milliseconds.  A signal that interrupts the wait runs Python's
        handlers; if one raises, poll() raises it, otherwise it goes on
        waiting for the time left (PEP 475).
        """
        return self._poll(timeout, maxevents, False)

    cdef _poll(self, timeout, int maxevents, bint with_data):
        cdef int ms = _timeout_ms(timeout)
        cdef _Core core
        cdef wfc_ep *ep
        cdef wfc_event *buf
        cdef int n, i
        cdef double deadline = 0.0
        if maxevents == -1:
            maxevents = FD_SETSIZE - 1
        elif maxevents < 1:
            raise ValueError(f"maxevents must be greater than 0, got {maxevents}")
        core = self._open_core()
        if ms > 0:
            deadline = _monotonic() + ms / 1000.0
        buf = <wfc_event *>malloc(maxevents * sizeof(wfc_event))
        if buf == NULL:
            raise MemoryError()
        try:
            while True:
                ep = core.enter()
                with nogil:
                    n = wfc_ep_wait_flags(ep, buf, maxevents, ms, WFC_WAIT_EVERY_READY)
                    wfc_ep_leave(ep)
                if n == -EINTR:
                    PyErr_CheckSignals()
                    if ms > 0:
                        left = deadline - _monotonic()
                        ms = max(0, <int>math.ceil(left * 1000.0))
                    continue
                if n < 0:
                    _raise_errno(n)
                if with_data:
                    return [(buf[i].fd, buf[i].events, buf[i].data) for i in range(n)]
                return [(buf[i].fd, buf[i].events) for i in range(n)]
        finally:
            free(buf)

    cdef int wait_into(self, wfc_event *buf, int maxevents, int timeout_ms,
                       unsigned flags) except -2:
        """The event loop's poll: wait up to timeout_ms (-1: forever) for at
        most maxevents events, written to the caller's reused buffer.

        Returns the number of events, or -1 when a signal interrupted the
        wait (after running the Python signal handlers, which may raise):
        the loop then goes round again, as selectors' select() returns []
        on EINTR.  A zero timeout keeps the GIL: the wait cannot block
        (pollers never take the GIL), and the loop thread saves the
        release and re-acquire.
        """
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        cdef int n
        if timeout_ms == 0:
            n = wfc_ep_wait_flags(ep, buf, maxevents, 0, flags)
            wfc_ep_leave(ep)
        else:
            with nogil:
                n = wfc_ep_wait_flags(ep, buf, maxevents, timeout_ms, flags)
                wfc_ep_leave(ep)
        if n == -EINTR:
            PyErr_CheckSignals()
            return -1
        if n < 0:
            _raise_errno(n)
        return n

    # ---- notifications: events of the EventPoll's own, not the kernel's ----
    # An event's bits outside the kernel's (WFC_EV_IO_WRITE: a poller's send
    # for fd stopped short or failed) are news for whoever asked for them,
    # not for fd's reader or writer.  That user registers a handle for fd
    # here; the event loop's dispatcher runs it (run_once.pyx) without
    # knowing what the notification is about.  Unregistering fd drops it.

    cdef set_notify(self, int fd, object handle):
        """Run handle (an asyncio Handle) for fd's notifications; None:
        no longer."""
        if handle is None:
            self._notify.pop(fd, None)
        else:
            self._notify[fd] = handle

    cdef object notify_handle(self, int fd):
        """The handle registered for fd's notifications, or None."""
        return self._notify.get(fd)

    # ---- poller-side I/O (the loop's socket transports; loop thread) ----
    # Called with the GIL held and never released: close() cannot free the
    # core in the middle (it clears core.ep under the GIL first), so no
    # enter()/leave() pair is paid per call.  A closed core reads as "no
    # poller-side I/O".

    cdef int io_enable(self, int fd) noexcept:
        """Let the pollers read and send for fd (a socket transport's):
        0, or a negative errno (not registered, not level-triggered)."""
        cdef wfc_ep *ep = _io_ep(self)
        if ep == NULL or wfc_ep_pollers(ep) == 0:
            return -EBADF
        return wfc_ep_io_enable(ep, fd)

    cdef int io_disable(self, int fd) noexcept:
        """No poller reads for fd after this returns (a read already made
        stays for io_take_read; queued output for io_take_writes)."""
        cdef wfc_ep *ep = _io_ep(self)
        if ep == NULL:
            return -EBADF
        return wfc_ep_io_disable(ep, fd)

    cdef bint io_writes(self) noexcept:
        """Whether io_write() pays now: the pollers read the kernel."""
        cdef wfc_ep *ep = _io_ep(self)
        return ep != NULL and wfc_ep_io_writes(ep)

    cdef object io_take_read(self, int fd):
        """The read a poller made for fd: bytes, 0 at end of file, an
        OSError for a failed read; None when there is none."""
        cdef wfc_ep *ep = _io_ep(self)
        cdef char *buf = NULL
        cdef ssize_t n = 0
        if ep == NULL or not wfc_ep_io_reads_held(ep):
            return None   # no lock paid: the inline phase's every read
        if not wfc_ep_io_take_read(ep, fd, &buf, &n):
            return None
        if n > 0:
            # The one copy of the read: the poller's receive buffer into
            # the bytes handed to the protocol; the buffer goes back.
            try:
                return PyBytes_FromStringAndSize(buf, n)
            finally:
                wfc_ep_io_read_done(ep, buf)
        if n == 0:
            return 0
        return OSError(-n, os.strerror(-n))

    cdef Py_ssize_t io_write(self, int fd, const char *data, Py_ssize_t n) except -2:
        """Queue n bytes for the pollers to send after the next wait
        starts: the bytes now queued for fd, or -1 when fd has no
        poller-side I/O (send it yourself)."""
        cdef wfc_ep *ep = _io_ep(self)
        cdef int r
        if ep == NULL:
            return -1
        r = wfc_ep_io_write(ep, fd, data, <size_t>n)
        if r == -ENOMEM:
            raise MemoryError()
        return -1 if r < 0 else r

    cdef Py_ssize_t io_pending(self, int fd) noexcept:
        """Bytes queued for fd and not sent yet."""
        cdef wfc_ep *ep = _io_ep(self)
        return 0 if ep == NULL else wfc_ep_io_pending(ep, fd)

    cdef tuple io_take_writes(self, int fd):
        """(bytes not sent, in order, or None; errno of the send that
        failed, or 0), and nothing is queued for fd afterwards."""
        cdef wfc_ep *ep = _io_ep(self)
        cdef char *buf = NULL
        cdef size_t n = 0
        cdef int err = 0
        if ep == NULL:
            return None, 0
        if wfc_ep_io_take_writes(ep, fd, &buf, &n, &err) < 0:
            raise MemoryError()
        if n == 0:
            return None, err
        try:
            return PyBytes_FromStringAndSize(buf, <Py_ssize_t>n), err
        finally:
            free(buf)

    def _set_snapshot(self, bint on):
        """Whether poll() settles before returning a partial batch (see
        wfc_ep_set_snapshot); on by default, off for the event loop."""
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        wfc_ep_set_snapshot(ep, on)
        wfc_ep_leave(ep)

    def _set_adaptive(self, bint on):
        """Poller mode: let the consumer switch between the POLLERS phase
        and the INLINE phase (pollers parked, the consumer reads the kernel)
        by the adaptive rule of eventpoll_core.c.  Only for an EventPoll
        that ONE thread polls (the event loop); off by default."""
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        wfc_ep_set_adaptive(ep, on)
        wfc_ep_leave(ep)

    def _request_phase(self, str phase):
        """Ask for the "pollers" or the "inline" phase; it takes effect at
        the start of the next poll (one polling thread only; the adaptive
        rule, when on, may change it again)."""
        cdef int code
        if phase == "pollers":
            code = WFC_PHASE_POLLERS
        elif phase == "inline":
            code = WFC_PHASE_INLINE
        else:
            raise ValueError(f"phase must be 'pollers' or 'inline', got {phase!r}")
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        cdef int rc = wfc_ep_request_phase(ep, code)
        wfc_ep_leave(ep)
        if rc < 0:
            raise ValueError("inline mode (pollers=0) has only the 'inline' phase")

    @property
    def phase(self):
        """"pollers" while poller threads read the kernel, "inline" while
        the polling thread does (always, in inline mode)."""
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        cdef int code
        with nogil:
            code = wfc_ep_phase(ep)
            wfc_ep_leave(ep)
        return "inline" if code == WFC_PHASE_INLINE else "pollers"

    def stats(self):
        """Counters of the core: events harvested from the kernel, items
        enqueued (and how many found the ready list empty), coalesced and
        stale events, wake-ups of the consumer, sleeps, splices, deliveries,
        re-arms, reaped zombies, current registrations and phase switches."""
        cdef wfc_ep_stats s
        cdef _Core core = self._open_core()
        cdef wfc_ep *ep = core.enter()
        with nogil:
            wfc_ep_get_stats(ep, &s)
            wfc_ep_leave(ep)
        return {
            "pollers": s.pollers,
            "harvested": s.harvested,
            "harvested_inline": s.harvested_inline,
            "enqueued": s.enqueued,
            "enqueued_found_empty": s.enqueued_found_empty,
            "coalesced": s.coalesced,
            "stale": s.stale,
            "wakeups": s.wakeups,
            "sleeps": s.sleeps,
            "splices": s.splices,
            "delivered": s.delivered,
            "rearms": s.rearms,
            "reaped": s.reaped,
            "registered": s.registered,
            "phase_switches": s.phase_switches,
            "io_reads": s.io_reads,
            "io_flushes": s.io_flushes,
            "io_handbacks": s.io_handbacks,
        }

    def __repr__(self):
        state = "closed" if self._closed else f"fd={self.core.kfd}"
        return f"<wfcloop.EventPoll {state} pollers={self.core.pollers}>"


from time import monotonic as _monotonic
