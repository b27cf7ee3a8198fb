# Included by _loop.pxd: the declaration of loop/scheduler.pyx's class.

cdef class _Scheduler:
    cdef object loop
    cdef public object ready         # collections.deque of handles
    cdef object ready_append
    cdef public list scheduled       # heap of (when, sequence, TimerHandle)
    cdef public bint closed
    cdef public bint debug
    cdef public bint own_clock       # loop.time() is BaseLoop's (monotonic)
    cdef public bint wakeup_pending  # a call_soon_threadsafe byte is unread
