# Included by _loop.pxd: the declaration of loop/run_once.pyx's class.

cdef class _Dispatch:
    cdef EventPollSelector selector   # the loop's: its fd -> key map and EventPoll
    cdef event_batch batch      # reused: one poll's events
    cdef object ready           # the loop's collections.deque of handles
    cdef object loop

    cdef int poll_and_queue(self, int timeout_ms) except -1
