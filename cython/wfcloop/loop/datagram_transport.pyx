# datagram_transport.pyx, included by _loop.pyx (one extension module, as
# uvloop's loop.pyx includes its handles).
#
# DatagramTransport: asyncio's datagram transport (create_datagram_endpoint)
# with its per-datagram paths in C.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport calloc
from libc.string cimport memset, memcmp, strlen, strchr


cdef extern from "sys/socket.h" nogil:
    ssize_t c_recvfrom "recvfrom" (int fd, void *buf, size_t n, int flags,
                                   sockaddr *addr, socklen_t *addrlen)
    ssize_t c_sendto "sendto" (int fd, const void *buf, size_t n, int flags,
                               const sockaddr *addr, socklen_t addrlen)

cdef extern from "arpa/inet.h" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)
    int inet_pton(int af, const char *src, void *dst)
    uint16_t htons(uint16_t)
    uint16_t ntohs(uint16_t)
    uint32_t htonl(uint32_t)
    uint32_t ntohl(uint32_t)
    enum:
        INET6_ADDRSTRLEN

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object s)
    int PySys_Audit(const char *event, const char *format, ...) except -1
    object PyUnicode_FromString(const char *s)

cdef enum:
    # Datagrams read per readiness event, at most: a socket that always
    # has more cannot keep the loop from its other callbacks (libuv reads
    # up to 32 too).  Each gets its own datagram_received().
    DATAGRAMS_PER_EVENT = 32
    # The received-address cache of a socket not connected to one peer:
    # a power of two.  A connected socket hears from one address only.
    ADDRESS_CACHE_SIZE = 256
    # The largest IPv6 flow label (socket.sendto()'s limit).
    MAX_FLOWINFO = 0xfffff


cdef object SelectorDatagramTransport = asyncio_compat.SelectorDatagramTransport
cdef object super_sendto = asyncio_compat.base_datagram_transport_sendto
cdef object super_read_ready = asyncio_compat.base_datagram_read_ready
cdef object AsyncioDatagramTransport = asyncio.DatagramTransport


cdef class DatagramSocket:
    """The socket of a DatagramTransport as its C paths see it: the fd,
    the family, whether it sends to one peer, and the addresses it has
    received from, as Python objects made once per address."""

    def __cinit__(self, sock, bint connected):
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.inet = self.family == AF_INET or self.family == AF_INET6
        self.connected = connected
        self.addresses = NULL
        # A connected socket receives from its peer only (the kernel drops
        # the rest).
        self.addresses_mask = 0 if connected else ADDRESS_CACHE_SIZE - 1
        self.other_buffer = None

    def __dealloc__(self):
        cdef unsigned int i
        if self.addresses != NULL:
            for i in range(self.addresses_mask + 1):
                Py_XDECREF(self.addresses[i].address)
            free(self.addresses)

    cdef object address_of(self, InetAddress *raw, socklen_t length):
        """The Python address of a received IPv4 or IPv6 sockaddr, as
        socket.recvfrom() makes it: (host, port) or (host, port, flowinfo,
        scope_id).  The same address gives the same (immutable) tuple."""
        cdef CachedAddress *entry
        cdef uint32_t key
        if length == 0:
            return None   # as socket.recvfrom(): no address
        if self.addresses == NULL:
            self.addresses = <CachedAddress *>calloc(self.addresses_mask + 1,
                                                     sizeof(CachedAddress))
            if self.addresses == NULL:
                raise MemoryError()
        # The port and the address's last 16 bits: the part that differs
        # between a server's clients.
        if raw.sa.sa_family == AF_INET6:
            key = raw.v6.sin6_port | (<uint32_t>raw.v6.sin6_addr.s6_addr[14] << 16) \
                | (<uint32_t>raw.v6.sin6_addr.s6_addr[15] << 24)
        else:
            key = raw.v4.sin_port ^ raw.v4.sin_addr.s_addr
        entry = &self.addresses[((key * 2654435761u) >> 16) & self.addresses_mask]
        if entry.address != NULL and memcmp(&entry.raw, raw, sizeof(InetAddress)) == 0:
            return <object>entry.address
        address = make_inet_address(raw)
        Py_XDECREF(entry.address)
        Py_INCREF(address)
        entry.address = <PyObject *>address
        entry.raw = raw[0]
        return address


cdef object make_inet_address(InetAddress *raw):
    """socket.recvfrom()'s address for an IPv4 or IPv6 sockaddr (the host
    by inet_ntop(), as socket.recvfrom() does)."""
    cdef char host[INET6_ADDRSTRLEN]
    if raw.sa.sa_family == AF_INET6:
        if inet_ntop(AF_INET6, &raw.v6.sin6_addr, host, sizeof(host)) == NULL:
            PyErr_SetFromErrno(OSError)
        return (PyUnicode_FromString(host), ntohs(raw.v6.sin6_port),
                ntohl(raw.v6.sin6_flowinfo), raw.v6.sin6_scope_id)
    if inet_ntop(AF_INET, &raw.v4.sin_addr, host, sizeof(host)) == NULL:
        PyErr_SetFromErrno(OSError)
    return (PyUnicode_FromString(host), ntohs(raw.v4.sin_port))


cdef bint exact_uint(object value, long maximum, long *out):
    """value is an int (not a subclass) in 0..maximum: store it in *out."""
    cdef int overflow
    cdef long n
    if type(value) is not int:
        return False
    n = PyLong_AsLongAndOverflow(value, &overflow)
    if overflow or n < 0 or n > maximum:
        return False
    out[0] = n
    return True


cdef bint parse_inet_address(int family, object addr, InetAddress *raw,
                             socklen_t *length) except -1:
    """addr as socket.sendto() would read it for a socket of this family,
    when it is a numeric (host, port[, flowinfo[, scope_id]]) tuple that
    socket.sendto() turns into this sockaddr without a name lookup (the
    same inet_pton()): True.  Anything else (names, '<broadcast>', '',
    wrong shapes or ranges, subclasses): False, and socket.sendto()
    itself reads it, with its errors."""
    cdef Py_ssize_t size, items
    cdef const char *host
    cdef long port, flowinfo = 0, scope_id = 0
    if type(addr) is not tuple:
        return False
    items = PyTuple_GET_SIZE(addr)
    if family == AF_INET:
        if items != 2:
            return False
    elif items < 2 or items > 4:
        return False
    name = <object>PyTuple_GET_ITEM(addr, 0)
    if type(name) is not str or not PyUnicode_IS_ASCII(name):
        return False
    host = PyUnicode_AsUTF8AndSize(name, &size)
    if <size_t>size != strlen(host):
        return False   # an embedded NUL: socket.sendto() refuses it
    if not exact_uint(<object>PyTuple_GET_ITEM(addr, 1), 0xffff, &port):
        return False
    memset(raw, 0, sizeof(InetAddress))
    if family == AF_INET:
        if inet_pton(AF_INET, host, &raw.v4.sin_addr) != 1:
            return False
        raw.v4.sin_family = AF_INET
        raw.v4.sin_port = htons(<uint16_t>port)
        length[0] = sizeof(sockaddr_in)
        return True
    if items > 2 and not exact_uint(<object>PyTuple_GET_ITEM(addr, 2), MAX_FLOWINFO, &flowinfo):
        return False
    if items > 3 and not exact_uint(<object>PyTuple_GET_ITEM(addr, 3), 0xffffffff, &scope_id):
        return False
    # A '%scope' suffix needs getaddrinfo(), as in socket.sendto().
    if strchr(host, ord('%')) != NULL or inet_pton(AF_INET6, host, &raw.v6.sin6_addr) != 1:
        return False
    raw.v6.sin6_family = AF_INET6
    raw.v6.sin6_port = htons(<uint16_t>port)
    raw.v6.sin6_flowinfo = htonl(<uint32_t>flowinfo)
    raw.v6.sin6_scope_id = <uint32_t>scope_id
    length[0] = sizeof(sockaddr_in6)
    return True


cdef bint send_now(transport, data, addr) except -1:
    """sendto(data, addr) in C, when asyncio's transport would send at once
    (nothing buffered, not closing) and C can say it all: bytes-like data
    that is not empty, a connected socket or a numeric IP address.  True
    when the call is done (sent, or its OSError given to the protocol's
    error_received() as asyncio gives it); False when nothing happened
    yet and asyncio's sendto() is to handle the call: its checks, its
    empty datagram (per Python version), its buffering on EAGAIN (it
    tries the send again first) and anything C does not read."""
    cdef DatagramSocket dsock
    cdef InetAddress raw
    cdef socklen_t length
    cdef ssize_t n
    cdef const char *buf
    cdef Py_ssize_t size
    if type(data) is bytes:
        buf = PyBytes_AS_STRING(data)
        size = PyBytes_GET_SIZE(data)
    elif type(data) is bytearray:
        buf = PyByteArray_AS_STRING(data)
        size = PyByteArray_GET_SIZE(data)
    else:
        return False
    if size == 0 or transport._conn_lost or transport._closing or transport._buffer:
        return False
    address = transport._address
    if address:
        if addr is not None and addr is not address:
            try:
                if addr != address:
                    return False   # asyncio's ValueError
            except Exception:
                return False
        addr = address
    dsock = <DatagramSocket>transport._wfc_socket
    if dsock.connected:
        n = c_send(dsock.fd, buf, size, 0)
    else:
        if not dsock.inet or not parse_inet_address(dsock.family, addr, &raw, &length):
            return False
        try:
            # socket.sendto()'s audit event, before the send as there.
            PySys_Audit("socket.sendto", "OO", <PyObject *>dsock.sock, <PyObject *>addr)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, 'Fatal write error on datagram transport')
            return True
        n = c_sendto(dsock.fd, buf, size, 0, &raw.sa, length)
    if n >= 0:
        return True
    # (EWOULDBLOCK is EAGAIN on Linux.)
    if errno == EAGAIN or errno == EINTR:
        return False
    try:
        PyErr_SetFromErrno(OSError)
    except OSError as exc:
        transport._protocol.error_received(exc)
    return True


cdef read_datagrams(transport):
    """Read up to DATAGRAMS_PER_EVENT datagrams into the loop's read buffer
    and hand each to the protocol's datagram_received(), in order, as
    asyncio's _read_ready() would over that many events: stop at the first
    EAGAIN, after an error given to error_received(), or once the
    transport closes or stops reading (pause_reading()).  An exception of
    the protocol's propagates, and what is unread stays in the socket."""
    cdef DatagramSocket dsock = <DatagramSocket>transport._wfc_socket
    cdef InetAddress raw
    cdef socklen_t length
    cdef ssize_t n
    cdef int i, fd = dsock.fd
    cdef long max_size
    if transport._conn_lost:
        return
    if not exact_uint(transport.max_size, READ_BUFFER_SIZE, &max_size) or max_size == 0:
        # A max_size of a subclass's that the loop's buffer cannot hold
        # (or 0, which socket.recvfrom_into() reads as 'all'): asyncio's
        # read, with its buffer.
        super_read_ready(transport)
        return
    if not dsock.inet:
        read_other(transport, dsock, max_size)
        return
    for i in range(DATAGRAMS_PER_EVENT):
        memset(&raw, 0, sizeof(raw))
        length = sizeof(raw)
        n = c_recvfrom(fd, read_buffer, max_size, 0, &raw.sa, &length)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return
            try:
                PyErr_SetFromErrno(OSError)
            except OSError as exc:
                transport._protocol.error_received(exc)
            return
        try:
            data = PyBytes_FromStringAndSize(read_buffer, n)
            address = dsock.address_of(&raw, length)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, 'Fatal read error on datagram transport')
            return
        transport._protocol.datagram_received(data, address)
        if transport._conn_lost or transport._closing or transport._paused:
            return


cdef read_other(transport, DatagramSocket dsock, long max_size):
    """read_datagrams() for the other families (unix datagram sockets):
    socket.recvfrom_into() makes their addresses exactly as
    socket.recvfrom() does, into a buffer of this transport's (made at the
    first read; the call lets go of the GIL, so not the loop's)."""
    cdef int i
    buffer = dsock.other_buffer
    if buffer is None:
        buffer = dsock.other_buffer = bytearray(READ_BUFFER_SIZE)
    recvfrom_into = dsock.sock.recvfrom_into
    for i in range(DATAGRAMS_PER_EVENT):
        try:
            n, address = recvfrom_into(buffer, max_size)
            data = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(buffer), n)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            transport._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, 'Fatal read error on datagram transport')
            return
        transport._protocol.datagram_received(data, address)
        if transport._conn_lost or transport._closing or transport._paused:
            return


class DatagramTransport(SelectorDatagramTransport, AsyncioDatagramTransport):
    """asyncio's datagram transport with its per-datagram paths in C.

    Reads go into the loop's reused buffer (asyncio's recvfrom(256 KiB)
    makes a 256 KiB bytes object per datagram, which glibc serves with an
    mmap and munmap), each datagram's bytes object made at its length,
    and up to DATAGRAMS_PER_EVENT datagrams per readiness event (asyncio
    reads one), each given to datagram_received() on its own, in order.
    sendto() sends in C while nothing is buffered.  Everything else
    (buffering, flow control, close, abort, errors, extra info) is
    asyncio's.  It is an asyncio.DatagramTransport on every Python (the
    stdlib's is one from 3.12)."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(loop, sock, protocol, address, waiter, extra)
        self._wfc_socket = DatagramSocket(sock, bool(self._extra['peername']))

    def _read_ready(self):
        read_datagrams(self)

    def sendto(self, data, addr=None):
        """Send data to addr (for an endpoint made with a remote address:
        None or that address).  Does not block: what the socket cannot
        take now is buffered and sent when it can (flow control as
        asyncio's: pause_writing() above the high-water mark).  An OSError
        of the send goes to the protocol's error_received()."""
        if not send_now(self, data, addr):
            super_sendto(self, data, addr)
