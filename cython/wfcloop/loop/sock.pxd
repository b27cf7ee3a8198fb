# Included by _loop.pxd: the declaration of loop/sock.pyx's class.

cdef class SockReadDone:
    cdef object loop, fd, handle
