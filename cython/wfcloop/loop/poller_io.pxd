# Included by _loop.pxd: the declaration of loop/poller_io.pyx's class.

cdef class PollerIO:
    cdef EventPoll poll         # the loop's, which does the I/O
    cdef int fd                 # the transport's socket
    cdef object transport       # the SocketTransport whose strategy this is
    cdef bint enabled           # pollers may receive and send for fd
    cdef bint queued            # output may be queued with the pollers
    cdef list held              # reads taken while reading was paused
    cdef object notify          # the Handle the EventPoll runs (settle)

    cdef int on_add_reader(self, int fd) except -1
    cdef bint take_read(self) except -1
    cdef bint write(self, data) except -1
    cdef settle(self)
    cdef stop(self, bint keep_writes, bint keep_read)
    cdef Py_ssize_t pending(self) noexcept
    cdef on_resume(self)
    cdef hold(self, r, bint first)
    cdef deliver_held(self)
    cdef deliver_read(self, r)
    cdef feed_buffered(self, bytes data)
