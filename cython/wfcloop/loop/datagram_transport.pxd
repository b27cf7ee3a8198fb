# Included by _loop.pxd: the declarations of loop/datagram_transport.pyx.

from cpython.object cimport PyObject
from libc.stdint cimport uint16_t, uint32_t


cdef extern from "sys/socket.h" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    enum:
        AF_INET
        AF_INET6


cdef extern from "netinet/in.h" nogil:
    struct in_addr:
        uint32_t s_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in:
        sa_family_t sin_family
        uint16_t sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        sa_family_t sin6_family
        uint16_t sin6_port
        uint32_t sin6_flowinfo
        in6_addr sin6_addr
        uint32_t sin6_scope_id


cdef union InetAddress:
    # A sockaddr of an IPv4 or IPv6 datagram socket, zero-padded to the
    # larger of the two, so that two are equal when their bytes are.
    sockaddr sa
    sockaddr_in v4
    sockaddr_in6 v6


cdef struct CachedAddress:
    InetAddress raw          # as recvfrom() gave it
    PyObject *address        # its Python address (a strong reference), or NULL


cdef class DatagramSocket:
    cdef int fd
    cdef int family
    cdef bint inet               # AF_INET or AF_INET6: addresses in C
    cdef bint connected          # the transport sends with send(), not sendto()
    cdef object sock             # the socket object (for sys.audit's event)
    cdef CachedAddress *addresses   # received address -> Python address
    cdef unsigned int addresses_mask
    cdef object other_buffer     # bytearray: other families' reads (see read_other)
    cdef bint read_singly        # its datagrams are long: recvfrom, not recvmmsg
    cdef list pending            # a batch's undelivered datagrams: data, address, ...
    cdef Py_ssize_t pending_next # the index in pending of the next datagram's data

    cdef object address_of(self, InetAddress *raw, socklen_t length)
