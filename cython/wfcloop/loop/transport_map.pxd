# Included by _loop.pxd: the declaration of loop/transport_map.pyx's class.

cdef class TransportMap:
    cdef dict fd_to_key        # the selector's
    cdef object starting       # WeakValueDictionary fd -> transport
    cdef object weak           # WeakValueDictionary fd -> transport
    cdef dict starting_refs    # their tables: fd -> weak reference
    cdef dict weak_refs
    cdef set deleted           # fds deleted, until set again

    cdef object lookup(self, fd)
    cdef forget(self, fd)
    cdef track(self, fd, transport)
