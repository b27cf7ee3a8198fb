# Included by _loop.pxd: the declaration of loop/run_once.pyx's class.

cdef class _Dispatch:
    cdef EventPoll poll
    cdef wfc_event *events      # reused: one poll's events
    cdef int capacity           # of events
    cdef dict fd_to_key         # the selector's
    cdef object ready           # the loop's collections.deque of handles
    cdef object loop

    cdef int reserve(self) except -1
    cdef int poll_and_queue(self, int timeout_ms) except -1
