# datagram_transport.pyx, included by _loop.pyx (one extension module, as
# uvloop's loop.pyx includes its handles).
#
# DatagramTransport: asyncio's datagram transport (create_datagram_endpoint)
# with its per-datagram paths in C.

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdlib cimport calloc
from libc.string cimport memset, memcmp, strlen, strchr

cdef extern from "sys/mman.h" nogil:
    void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)
    int madvise(void *addr, size_t length, int advice)
    void *MAP_FAILED
    enum:
        PROT_READ
        PROT_WRITE
        MAP_PRIVATE
        MAP_ANONYMOUS
        MAP_NORESERVE
        MADV_NOHUGEPAGE


cdef extern from "sys/uio.h" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "sys/socket.h" nogil:
    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags
    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len
    ssize_t c_recvfrom "recvfrom" (int fd, void *buf, size_t n, int flags,
                                   sockaddr *addr, socklen_t *addrlen)
    # (_GNU_SOURCE, which recvmmsg() needs, comes with Python.h.)
    int c_recvmmsg "recvmmsg" (int fd, mmsghdr *msgvec, unsigned int vlen,
                               int flags, timespec *timeout)
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
    # A batch's slots.  Each datagram of a batch may be max_size long (it
    # is read, or cut, at max_size exactly as one recvfrom(max_size)
    # would), so each slot is two pieces: its first BATCH_HEAD_SIZE bytes
    # side by side with the other slots' (32 x 2 KiB: a small datagram,
    # the usual kind, stays in 64 KiB that the cache keeps), the rest of
    # it in a tail of its own (BATCH_TAIL_STRIDE apart, touched only by
    # datagrams longer than the head).
    BATCH_HEAD_SIZE = 2048
    BATCH_TAIL_STRIDE = READ_BUFFER_SIZE
    BATCH_BYTES = DATAGRAMS_PER_EVENT * (BATCH_HEAD_SIZE + BATCH_TAIL_STRIDE)
    # The received-address cache of a socket not connected to one peer:
    # a power of two.  A connected socket hears from one address only.
    ADDRESS_CACHE_SIZE = 256
    # The largest IPv6 flow label (socket.sendto()'s limit).
    MAX_FLOWINFO = 0xfffff


cdef object SelectorDatagramTransport = asyncio_compat.SelectorDatagramTransport
cdef object super_sendto = asyncio_compat.base_datagram_transport_sendto
cdef object super_read_ready = asyncio_compat.base_datagram_read_ready
cdef object AsyncioDatagramTransport = asyncio.DatagramTransport
cdef bint DATAGRAM_HEADER_LEAK = asyncio_compat.DATAGRAM_HEADER_LEAK
cdef Py_ssize_t DATAGRAM_HEADER_SIZE = asyncio_compat.DATAGRAM_HEADER_SIZE

# The batch that read_datagrams() hands to recvmmsg(): module state, as
# read_buffer is.  Only a thread holding the GIL reads into it, and every
# datagram of a batch is copied into its bytes object before the first
# datagram_received() runs (a callback may let go of the GIL, and another
# thread's loop read its own batch here).
cdef char *batch_buffer = NULL      # BATCH_BYTES, page-aligned
cdef char *batch_tails = NULL       # batch_buffer + the heads
cdef iovec batch_iovecs[DATAGRAMS_PER_EVENT][2]
cdef InetAddress batch_addresses[DATAGRAMS_PER_EVENT]
cdef mmsghdr batch_headers[DATAGRAMS_PER_EVENT]
cdef long batch_max_size = 0        # the max_size the slots are sized to (0: none yet)


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
        self.read_singly = False
        self.pending = None
        self.pending_next = 0

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


cdef bint batch_ready() except -1:
    """Map the batch's buffer (once, for the process's life, as the loop's
    read buffer is; 8 MiB of address space that the kernel backs page by
    page as datagrams are written to it) and point each header at its
    slot's head and tail and its address.  False when the memory is not
    there."""
    global batch_buffer, batch_tails
    cdef int i
    cdef void *memory
    if batch_buffer != NULL:
        return True
    # Mapped, not malloc'd: page-aligned (the kernel's copy into a buffer
    # 16 bytes past a page boundary, as malloc's large blocks are,
    # measured at half the speed), and kept out of transparent huge pages
    # (where they are always on, the first batch's few tails would each
    # make 2 MiB resident).
    memory = mmap(NULL, BATCH_BYTES, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
    if memory == MAP_FAILED:
        return False
    madvise(memory, BATCH_BYTES, MADV_NOHUGEPAGE)   # advice only: may fail
    batch_buffer = <char *>memory
    batch_tails = batch_buffer + DATAGRAMS_PER_EVENT * BATCH_HEAD_SIZE
    memset(batch_headers, 0, sizeof(batch_headers))
    for i in range(DATAGRAMS_PER_EVENT):
        batch_iovecs[i][0].iov_base = batch_buffer + i * BATCH_HEAD_SIZE
        batch_iovecs[i][1].iov_base = batch_tails + i * BATCH_TAIL_STRIDE
        batch_headers[i].msg_hdr.msg_iov = batch_iovecs[i]
        batch_headers[i].msg_hdr.msg_name = &batch_addresses[i]
    return True


cdef void batch_sized(long max_size) noexcept:
    """Size every slot of the batch to max_size (head, then tail), when it
    is not sized so already; the address lengths are reset by the reads
    that used them (read_batch)."""
    global batch_max_size
    cdef int i
    cdef size_t head = max_size if max_size < BATCH_HEAD_SIZE else BATCH_HEAD_SIZE
    cdef size_t iovlen = 1 if max_size <= BATCH_HEAD_SIZE else 2
    if max_size == batch_max_size:
        return
    batch_max_size = max_size
    for i in range(DATAGRAMS_PER_EVENT):
        batch_iovecs[i][0].iov_len = head
        batch_iovecs[i][1].iov_len = max_size - head
        batch_headers[i].msg_hdr.msg_iovlen = iovlen
        batch_headers[i].msg_hdr.msg_namelen = sizeof(InetAddress)


cdef object batch_datagram(int i):
    """The bytes of the batch's datagram i (from its head, and its tail
    when it is longer)."""
    cdef unsigned int length = batch_headers[i].msg_len
    if length <= BATCH_HEAD_SIZE:
        return PyBytes_FromStringAndSize(<char *>batch_iovecs[i][0].iov_base, length)
    data = PyBytes_FromStringAndSize(NULL, length)
    memcpy(PyBytes_AS_STRING(data), batch_iovecs[i][0].iov_base, BATCH_HEAD_SIZE)
    memcpy(PyBytes_AS_STRING(data) + BATCH_HEAD_SIZE, batch_iovecs[i][1].iov_base,
           length - BATCH_HEAD_SIZE)
    return data


cdef read_datagrams(transport):
    """Read up to DATAGRAMS_PER_EVENT datagrams (one recvmmsg() while they
    are small, see read_batch()) and hand each to the protocol's
    datagram_received(), in order, as asyncio's _read_ready() would over
    that many events.  Delivery stops after an error given to
    error_received(), and once the transport closes (what the batch holds
    beyond is dropped, as closing the socket drops what it holds) or
    stops reading (pause_reading(): the rest of the batch is kept,
    delivered first when reading resumes).  An exception of the
    protocol's propagates; the rest of its batch is delivered at the next
    iteration, as asyncio's next event would read what was left in the
    socket."""
    cdef DatagramSocket dsock = <DatagramSocket>transport._wfc_socket
    cdef long max_size
    if transport._conn_lost:
        return
    if dsock.pending is not None and not deliver_pending(transport, dsock):
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
    if dsock.read_singly or not batch_ready():
        read_singly(transport, dsock, max_size)
    else:
        read_batch(transport, dsock, max_size)


cdef read_batch(transport, DatagramSocket dsock, long max_size):
    """read_datagrams() for an IPv4/IPv6 socket whose datagrams are small:
    one recvmmsg() for up to DATAGRAMS_PER_EVENT.  A batch that holds a
    datagram longer than a slot's head turns the socket to read_singly()
    (for long datagrams the copy costs more than the system call, and one
    hot buffer copies faster than a batch's cold tails)."""
    cdef int i, n
    cdef bint longer = False
    cdef list batch
    batch_sized(max_size)
    # On a non-blocking socket recvmmsg() returns what is queued, up to
    # the count, without an EAGAIN of its own after the last: one call
    # where recvfrom() took one per datagram and an EAGAIN.  An error
    # after some datagrams is kept by the kernel for the next call (and
    # makes the socket readable), so errors still follow the datagrams
    # before them.
    n = c_recvmmsg(dsock.fd, batch_headers, DATAGRAMS_PER_EVENT, 0, NULL)
    if n < 0:
        read_failed(transport)
        return
    try:
        if n == 1:
            data = batch_datagram(0)
            address = received_address(dsock, 0)
            longer = batch_headers[0].msg_len > BATCH_HEAD_SIZE
        else:
            # Copy the whole batch out first (see batch_buffer).
            batch = PyList_New(2 * n)
            for i in range(n):
                data = batch_datagram(i)
                Py_INCREF(data)
                PyList_SET_ITEM(batch, 2 * i, data)
                address = received_address(dsock, i)
                Py_INCREF(address)
                PyList_SET_ITEM(batch, 2 * i + 1, address)
                longer = longer or batch_headers[i].msg_len > BATCH_HEAD_SIZE
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(exc, 'Fatal read error on datagram transport')
        return
    finally:
        # The kernel wrote these slots' address lengths: room again for
        # the next read.
        for i in range(n):
            batch_headers[i].msg_hdr.msg_namelen = sizeof(InetAddress)
    dsock.read_singly = longer
    if n == 1:
        transport._protocol.datagram_received(data, address)
        return
    dsock.pending = batch
    dsock.pending_next = 0
    deliver_pending(transport, dsock)


cdef read_singly(transport, DatagramSocket dsock, long max_size):
    """read_datagrams() for an IPv4/IPv6 socket whose datagrams are long:
    recvfrom() into the loop's read buffer, one datagram at a time, up to
    DATAGRAMS_PER_EVENT, each given to datagram_received() before the
    next is read.  A datagram that fits a batch slot's head turns the
    socket back to read_batch() from the next event."""
    cdef InetAddress raw
    cdef socklen_t length
    cdef ssize_t n
    cdef int i, fd = dsock.fd
    for i in range(DATAGRAMS_PER_EVENT):
        memset(&raw, 0, sizeof(raw))
        length = sizeof(raw)
        n = c_recvfrom(fd, read_buffer, max_size, 0, &raw.sa, &length)
        if n < 0:
            read_failed(transport)
            return
        dsock.read_singly = n > BATCH_HEAD_SIZE
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


cdef read_failed(transport):
    """A read's -1: EAGAIN (nothing more) and EINTR end the event's reads;
    any other error goes to the protocol's error_received()."""
    if errno == EAGAIN or errno == EINTR:
        return
    try:
        PyErr_SetFromErrno(OSError)
    except OSError as exc:
        transport._protocol.error_received(exc)


cdef object received_address(DatagramSocket dsock, int i):
    """The Python address of the batch's datagram i (its sockaddr zeroed
    past the length the kernel wrote, as the address cache compares the
    whole union)."""
    cdef socklen_t length = batch_headers[i].msg_hdr.msg_namelen
    if length < sizeof(InetAddress):
        memset(<char *>&batch_addresses[i] + length, 0, sizeof(InetAddress) - length)
    return dsock.address_of(&batch_addresses[i], length)


cdef bint deliver_pending(transport, DatagramSocket dsock) except -1:
    """Hand the datagrams of dsock.pending to datagram_received(), in
    order, while the transport reads.  True when all are delivered and it
    still reads; False when it stopped: closed (the rest dropped), paused
    (the rest kept for resume_reading()).  An exception of the protocol's
    propagates, the rest kept and their delivery scheduled."""
    cdef list pending = dsock.pending
    cdef Py_ssize_t i
    while dsock.pending_next < len(pending):
        i = dsock.pending_next
        dsock.pending_next = i + 2
        try:
            transport._protocol.datagram_received(pending[i], pending[i + 1])
        except BaseException:
            if dsock.pending_next < len(pending) and not transport._conn_lost:
                transport._loop.call_soon(deliver_pending_soon, transport)
            else:
                dsock.pending = None
            raise
        if transport._conn_lost or transport._closing:
            dsock.pending = None
            return False
        if transport._paused:
            if dsock.pending_next >= len(pending):
                dsock.pending = None
            return False
    dsock.pending = None
    return True


def deliver_pending_soon(transport):
    """The call_soon() callback that delivers what a batch kept, if the
    transport reads (it may have been paused again, or closed, since)."""
    cdef DatagramSocket dsock = <DatagramSocket>transport._wfc_socket
    if dsock.pending is None:
        return
    if transport._conn_lost or transport._closing:
        dsock.pending = None
    elif not transport._paused:
        deliver_pending(transport, dsock)


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

    An IPv4/IPv6 socket's reads are one recvmmsg() per readiness event
    of up to DATAGRAMS_PER_EVENT datagrams (asyncio reads one with
    recvfrom(256 KiB), a 256 KiB bytes object each, which glibc serves
    with an mmap and munmap) into the loop's reused batch buffer, each
    datagram's bytes object made at its length and given to
    datagram_received() on its own, in order.
    sendto() sends in C while nothing is buffered.  Everything else
    (buffering, flow control, close, abort, errors, extra info) is
    asyncio's, but for the count of the buffer on a 3.13 that loses it
    (see _sendto_ready).  It is an asyncio.DatagramTransport on every Python (the
    stdlib's is one from 3.12)."""

    def __init__(self, loop, sock, protocol, address=None, waiter=None, extra=None):
        super().__init__(loop, sock, protocol, address, waiter, extra)
        self._wfc_socket = DatagramSocket(sock, bool(self._extra['peername']))

    def _read_ready(self):
        read_datagrams(self)

    def resume_reading(self):
        """Resume reading (asyncio's), the datagrams a batch kept when
        reading paused delivered first, at the next iteration."""
        super().resume_reading()
        if (<DatagramSocket>self._wfc_socket).pending is not None and self.is_reading():
            self._loop.call_soon(deliver_pending_soon, self)

    def sendto(self, data, addr=None):
        """Send data to addr (for an endpoint made with a remote address:
        None or that address).  Does not block: what the socket cannot
        take now is buffered and sent when it can (flow control as
        asyncio's: pause_writing() above the high-water mark).  An OSError
        of the send goes to the protocol's error_received()."""
        if not send_now(self, data, addr):
            super_sendto(self, data, addr)

    if DATAGRAM_HEADER_LEAK:
        def _sendto_ready(self):
            """Send the buffered datagrams, in order, until the socket
            would block (asyncio's writer), each one sent taking back what
            sendto() counted for it: its length and the header bytes.
            Only on a Python whose asyncio takes back the length alone
            (asyncio_compat.DATAGRAM_HEADER_LEAK), where the buffer size
            would never return to 0 and resume_writing() might never come."""
            cdef Py_ssize_t counted
            buffer = self._buffer
            while buffer:
                data, addr = buffer.popleft()
                counted = len(data) + DATAGRAM_HEADER_SIZE
                self._buffer_size -= counted
                try:
                    if self._extra['peername']:
                        self._sock.send(data)
                    else:
                        self._sock.sendto(data, addr)
                except (BlockingIOError, InterruptedError):
                    buffer.appendleft((data, addr))   # the next writable event
                    self._buffer_size += counted
                    break
                except OSError as exc:
                    self._protocol.error_received(exc)
                    return
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self._fatal_error(exc, 'Fatal write error on datagram transport')
                    return
            self._maybe_resume_protocol()   # its resume_writing() may buffer more
            if not buffer:
                self._loop._remove_writer(self._sock_fd)
                if self._closing:
                    self._call_connection_lost(None)
