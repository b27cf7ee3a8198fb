# The C eventpoll core (eventpoll_core.h) and its Python face, EventPoll.
from libc.stdint cimport uint32_t, uint64_t


cdef extern from "eventpoll_core.h" nogil:
    ctypedef struct wfc_ep:
        pass

    ctypedef struct wfc_event:
        int fd
        uint32_t events
        uint64_t data

    ctypedef struct wfc_ep_stats:
        uint64_t pollers
        uint64_t harvested
        uint64_t harvested_inline
        uint64_t enqueued
        uint64_t enqueued_found_empty
        uint64_t coalesced
        uint64_t stale
        uint64_t wakeups
        uint64_t sleeps
        uint64_t splices
        uint64_t delivered
        uint64_t rearms
        uint64_t reaped
        uint64_t registered
        uint64_t phase_switches
        uint64_t io_reads
        uint64_t io_flushes
        uint64_t io_handbacks

    enum:
        WFC_READY_LIST_WFCQUEUE
        WFC_READY_LIST_MUTEX

    enum:
        WFC_PHASE_POLLERS
        WFC_PHASE_INLINE

    int wfc_ep_create(wfc_ep **out, int pollers, int kfd, int ready_list_kind)
    void wfc_ep_destroy(wfc_ep *ep, int in_forked_child)
    void wfc_ep_shutdown(wfc_ep *ep)
    void wfc_ep_enter(wfc_ep *ep)
    void wfc_ep_leave(wfc_ep *ep)
    int wfc_ep_closing(wfc_ep *ep)
    int wfc_ep_kernel_fd(const wfc_ep *ep)
    int wfc_ep_pollers(const wfc_ep *ep)
    int wfc_ep_add(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
    int wfc_ep_mod(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
    int wfc_ep_del(wfc_ep *ep, int fd)
    int wfc_ep_wait(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms)
    int wfc_ep_wait_flags(wfc_ep *ep, wfc_event *out, int maxevents, int timeout_ms,
                          unsigned flags)
    unsigned WFC_WAIT_EVERY_READY
    void wfc_ep_get_stats(wfc_ep *ep, wfc_ep_stats *stats)
    void wfc_ep_set_snapshot(wfc_ep *ep, int on)
    void wfc_ep_set_adaptive(wfc_ep *ep, int on)
    int wfc_ep_request_phase(wfc_ep *ep, int phase)
    int wfc_ep_phase(wfc_ep *ep)

    enum:
        WFC_EV_IO_WRITE
        WFC_EV_NOTIFY_BITS
    int wfc_ep_io_enable(wfc_ep *ep, int fd)
    int wfc_ep_io_disable(wfc_ep *ep, int fd)
    int wfc_ep_io_writes(const wfc_ep *ep)
    int wfc_ep_io_reads_held(wfc_ep *ep)
    int wfc_ep_io_take_read(wfc_ep *ep, int fd, char **buf, ssize_t *len)
    void wfc_ep_io_read_done(wfc_ep *ep, char *buf)
    int wfc_ep_io_write(wfc_ep *ep, int fd, const void *data, size_t len)
    ssize_t wfc_ep_io_pending(wfc_ep *ep, int fd)
    int wfc_ep_io_take_writes(wfc_ep *ep, int fd, char **buf, size_t *len, int *err)


cdef class _Core:
    """One C eventpoll, shared by every EventPoll made from its fd."""
    cdef wfc_ep *ep
    cdef readonly int kfd
    cdef readonly int pollers
    cdef readonly str ready_list
    cdef unsigned long fork_generation
    cdef object __weakref__

    cdef bint in_forked_child(self) noexcept
    cdef wfc_ep *enter(self) except NULL
    cdef void close(self)


cdef class EventPoll:
    cdef readonly _Core core
    cdef bint _closed
    # fd -> the handle its user asked to run for the EventPoll's own
    # notification (WFC_EV_IO_WRITE) on fd; see set_notify.
    cdef dict _notify

    cdef _Core _open_core(self)
    cdef _ctl(self, int op, int fd, uint32_t mask, uint64_t data=*)
    cdef _poll(self, timeout, int maxevents, bint with_data)
    cdef int wait_into(self, wfc_event *buf, int maxevents, int timeout_ms,
                       unsigned flags) except -2
    cdef set_notify(self, int fd, object handle)
    cdef object notify_handle(self, int fd)
    # Poller-side I/O for the loop's socket transports (the loop thread,
    # GIL held; see eventpoll_core.h).
    cdef int io_enable(self, int fd) noexcept
    cdef int io_disable(self, int fd) noexcept
    cdef bint io_writes(self) noexcept
    cdef object io_take_read(self, int fd)
    cdef Py_ssize_t io_write(self, int fd, const char *data, Py_ssize_t n) except -2
    cdef Py_ssize_t io_pending(self, int fd) noexcept
    cdef tuple io_take_writes(self, int fd)


# select.epoll.poll's timeout rules (seconds -> milliseconds), for the
# selector's select(), which keeps epoll's errors.
cdef int _timeout_ms(object timeout) except? -2
