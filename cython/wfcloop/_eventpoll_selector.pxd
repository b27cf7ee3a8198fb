# The selector layer: EventPollSelector, a selectors.BaseSelector that owns
# its EventPoll and its fd -> key map, and the C API the compiled loop
# reads them through (cython/wfcloop/_eventpoll_selector.pyx).
from cpython.object cimport PyObject
from libc.stdint cimport uint32_t
from libc.stdlib cimport realloc

from wfcloop._eventpoll cimport EventPoll, wfc_event, WFC_EV_NOTIFY_BITS


cdef enum:
    # selectors.EVENT_READ and EVENT_WRITE (the values every selector and
    # asyncio use), and the epoll bits they map to.
    SELECTOR_READ = 1
    SELECTOR_WRITE = 2
    SELECTOR_EPOLLIN = 0x001
    SELECTOR_EPOLLOUT = 0x004


ctypedef struct fd_slot:
    PyObject *key       # the fd's SelectorKey (borrowed: the keys dict owns it), or NULL
    int events          # key.events, as SELECTOR_READ | SELECTOR_WRITE


ctypedef struct event_batch:
    wfc_event *events   # one poll's events (malloc'd; the owner frees it)
    int capacity        # of events


cdef class EventPollSelector:
    cdef readonly EventPoll eventpoll
    cdef readonly bint poller_io
    cdef dict keys          # fd -> SelectorKey: owns the keys; get_map()'s order
    cdef fd_slot *slots     # fd -> the same key and its events, for lookups in C
    cdef int nslots         # of slots
    cdef object mapping     # get_map()'s read-only view; None once closed

    cdef object key_for(self, int fd)
    cdef Py_ssize_t registered(self) noexcept
    cdef list registered_fds(self)
    cdef int poll_into(self, event_batch *batch, int limit, int timeout_ms,
                       unsigned flags) except -2
    cdef object fd_of(self, object fileobj)
    cdef int set_slot(self, int fd, object key) except -1
    cdef void clear_slots(self) noexcept


cdef object fileobj_to_fd(object fileobj)


cdef inline int batch_reserve(event_batch *batch, int want) except -1:
    """Grow batch to hold want events (it never shrinks)."""
    cdef wfc_event *grown
    if want <= batch.capacity:
        return 0
    grown = <wfc_event *>realloc(batch.events, want * sizeof(wfc_event))
    if grown == NULL:
        raise MemoryError()
    batch.events = grown
    batch.capacity = want
    return 0


cdef inline PyObject *ready_key(EventPollSelector selector, int fd, uint32_t events,
                                int *mask) noexcept:
    """THE event decoding, for select() and the loop's dispatch alike: the
    key registered for fd (borrowed), with in mask the selectors events
    that the epoll events stand for, limited to the key's.  selectors'
    epoll mapping: anything but EPOLLOUT reads, anything but EPOLLIN writes
    (errors and hang-ups wake both sides).  NULL when fd is not registered,
    or when events hold nothing but the poller-side I/O report
    (WFC_EV_NOTIFY_BITS, which the loop's dispatch handles on its own)."""
    cdef fd_slot *slot
    cdef int ready = 0
    events &= ~(<uint32_t>WFC_EV_NOTIFY_BITS)
    if events == 0 or fd < 0 or fd >= selector.nslots:
        return NULL
    slot = &selector.slots[fd]
    if slot.key == NULL:
        return NULL
    if events & ~(<uint32_t>SELECTOR_EPOLLOUT):
        ready |= SELECTOR_READ
    if events & ~(<uint32_t>SELECTOR_EPOLLIN):
        ready |= SELECTOR_WRITE
    mask[0] = ready & slot.events
    return slot.key
