# Included by _loop.pxd: the declaration of loop/transport_map.pyx's class.

cdef class TransportMap:
    cdef EventPollSelector selector   # the loop's: readers are found in its keys
    cdef object starting       # WeakValueDictionary fd -> transport
    cdef object weak           # WeakValueDictionary fd -> transport
    cdef dict starting_refs    # their tables: fd -> weak reference
    cdef dict weak_refs
    cdef set deleted           # fds deleted, until set again

    cdef object lookup(self, fd)
    cdef forget(self, fd)
    cdef track(self, fd, transport)
