# socket_transport.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# SocketTransport: asyncio's socket transport with its per-event read and
# write paths in C.


cdef object DEFAULT_HIGH_WATER = 64 * 1024
cdef object DEFAULT_LOW_WATER = 16 * 1024


cdef object shared_limit(value):
    """value, or the equal default write buffer limit that all transports
    share."""
    if type(value) is int:
        if value == DEFAULT_LOW_WATER:
            return DEFAULT_LOW_WATER
        if value == DEFAULT_HIGH_WATER:
            return DEFAULT_HIGH_WATER
    return value


cdef ssize_t recv_ready(transport, int fd, void *buf, size_t size) except -2:
    """A transport's read on readiness: the byte count received, or -1 when
    there is nothing to hand on: no data yet, end of file (reported to the
    protocol), or an error (reported as asyncio's transport reports it)."""
    cdef ssize_t n = c_recv(fd, buf, size, 0)
    if n > 0:
        return n
    if n == 0:
        transport._read_ready__on_eof()
        return -1
    if errno == EAGAIN or errno == EINTR:
        return -1
    try:
        PyErr_SetFromErrno(OSError)
    except OSError as exc:
        transport._fatal_error(exc, 'Fatal read error on socket transport')
    return -1


cdef int get_protocol_buffer(transport, Py_ssize_t hint, Py_buffer *view) except -1:
    """A BufferedProtocol's get_buffer(hint), writable, in *view (the
    caller releases it): 1; or 0 once the failure is reported as asyncio's
    transport reports it."""
    try:
        buf = transport._protocol.get_buffer(hint)
        if not len(buf):
            raise RuntimeError('get_buffer() returned an empty buffer')
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        transport._fatal_error(
            exc, 'Fatal error: protocol.get_buffer() call failed.')
        return 0
    try:
        PyObject_GetBuffer(buf, view, PyBUF_WRITABLE)
    except BaseException:
        # Not a writable buffer: socket.recv_into() says so in its words
        # (and reads nothing).
        try:
            transport._sock.recv_into(buf)
        except BaseException as exc:
            transport._fatal_error(exc, 'Fatal read error on socket transport')
        return 0
    return 1


cdef object super_write = asyncio_compat.base_socket_transport_write
cdef object SelectorSocketTransport = asyncio_compat.SelectorSocketTransport
cdef object BufferedProtocol = asyncio.BufferedProtocol


class SocketTransport(SelectorSocketTransport):
    """asyncio's socket transport with its per-event paths in C: reads into
    the reused buffer (or a BufferedProtocol's own), and writes straight to
    the socket while nothing is buffered.  Everything else (flow control, EOF, close, sendfile, TLS
    upgrade) is asyncio's."""

    # The state the read and write paths look at on every event, in slots:
    # asyncio's code sets and reads them as before (a slot is a data
    # descriptor, found before the instance dict), and the paths below read
    # them at their offsets in the object (the T_* offsets after the class),
    # as run_once reads a Handle's.  As instance attributes each was a dict lookup of about 170
    # instructions, nine of them per echoed message.
    __slots__ = ("_sock_fd", "_protocol", "_read_ready_cb", "_conn_lost", "_buffer",
                 "_eof", "_empty_waiter", "_wfc_io")

    # The loop's TransportMap finds a reading transport through its reader,
    # and needs to know when that starts or stops (see TransportMap).

    # Poller-side I/O (loop/poller_io.pyx): while the loop's pollers read
    # the kernel, a PollerIO strategy does this transport's socket I/O;
    # the transport calls it at the boundaries below and otherwise does
    # asyncio's I/O.  _wfc_io (a slot, unset until the first reader is
    # added): the PollerIO strategy, or None.

    def _add_reader(self, fd, callback, *args):
        super()._add_reader(fd, callback, *args)
        track_reading(self)
        io = transport_io(self)
        if io is None:
            self._wfc_io = poller_io_for(self, fd)
        else:
            (<PollerIO>io).on_add_reader(fd)

    def pause_reading(self):
        io = transport_io(self)
        if io is not None and self.is_reading():
            (<PollerIO>io).stop(True, True)
        super().pause_reading()
        track_reading(self)

    def resume_reading(self):
        super().resume_reading()
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).on_resume()

    def _read_ready__on_eof(self):
        # eof_received() may write, and a kept-open transport stops
        # reading: both on asyncio's paths.
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).stop(True, False)
        super()._read_ready__on_eof()
        track_reading(self)

    def close(self):
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).stop(True, False)
        super().close()

    def _force_close(self, exc):
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).stop(False, False)
        super()._force_close(exc)

    def write_eof(self):
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).settle()
        super().write_eof()

    def writelines(self, list_of_data):
        io = transport_io(self)
        if io is not None:
            (<PollerIO>io).settle()
        super().writelines(list_of_data)

    def get_write_buffer_size(self):
        """Bytes buffered by asyncio's write, plus those queued for the
        pollers and not sent yet."""
        n = super().get_write_buffer_size()
        io = transport_io(self)
        if io is not None:
            n += (<PollerIO>io).pending()
        return n

    if asyncio_compat.HAVE_MAKE_EMPTY_WAITER:
        def _make_empty_waiter(self):
            io = transport_io(self)
            if io is not None:
                (<PollerIO>io).settle()
            return super()._make_empty_waiter()

    def set_protocol(self, protocol):
        # asyncio keeps the bound method of the read path this protocol
        # takes in _read_ready_cb: a 64-byte object per transport, and a
        # reference cycle.  The plain function, one for all transports of
        # the class, says the same; _read_ready passes the transport to it.
        cls = type(self)
        if isinstance(protocol, BufferedProtocol):
            self._read_ready_cb = cls._read_ready__get_buffer
        else:
            self._read_ready_cb = cls._read_ready__data_received
        super(SelectorSocketTransport, self).set_protocol(protocol)

    def _read_ready(self):
        field(self, T_READ_READY_CB)(self)

    def _read_ready__data_received(self):
        cdef ssize_t n
        if field(self, T_CONN_LOST):
            return
        io = transport_io(self)
        if io is not None and (<PollerIO>io).take_read():
            return
        n = recv_ready(self, field(self, T_SOCK_FD), read_buffer, READ_BUFFER_SIZE)
        if n < 0:
            return
        data = PyBytes_FromStringAndSize(read_buffer, n)
        try:
            field(self, T_PROTOCOL).data_received(data)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.data_received() call failed.')

    def _read_ready__get_buffer(self):
        cdef ssize_t n
        cdef Py_buffer view
        if field(self, T_CONN_LOST):
            return
        io = transport_io(self)
        if io is not None and (<PollerIO>io).take_read():
            return
        protocol = field(self, T_PROTOCOL)
        if type(protocol) is TLSProtocol:
            # wfcloop's TLS protocol: straight into its loop's TLS buffer,
            # without the get_buffer()/buffer_updated() calls.
            tls_buffer = (<TLSProtocolBase>protocol).buf
            n = recv_ready(self, field(self, T_SOCK_FD), (<TLSBuffer>tls_buffer).ptr,
                           (<TLSBuffer>tls_buffer).size)
            if n < 0:
                return
            try:
                (<TLSProtocolBase>protocol).records_received(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal_error(
                    exc, 'Fatal error: protocol.buffer_updated() call failed.')
            return
        if not get_protocol_buffer(self, -1, &view):
            return
        try:
            n = recv_ready(self, field(self, T_SOCK_FD), view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        if n < 0:
            return
        try:
            field(self, T_PROTOCOL).buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal_error(
                exc, 'Fatal error: protocol.buffer_updated() call failed.')

    def write(self, data):
        """Queue ``data`` for the pollers (poller-side I/O), else send it
        now when nothing is buffered and it all fits in the socket;
        otherwise asyncio's write() buffers the rest."""
        io = transport_io(self)
        if io is not None and (<PollerIO>io).write(data):
            return
        plain_write(self, data)

    if asyncio_compat.BUFFER_FACTORY_IS_BYTEARRAY:
        # asyncio (3.11) gives each transport an empty bytearray for its
        # write buffer (56 bytes); most writes of an idle-heavy server go
        # out at once and never need it.  Until a write has to buffer,
        # _buffer is b'' (one object for all): empty, as asyncio's code
        # reads it, and write() puts a bytearray there before asyncio's
        # write() can add to it.
        _buffer_factory = bytes

    def _set_write_buffer_limits(self, high=None, low=None):
        super()._set_write_buffer_limits(high, low)
        # asyncio computes the low-water mark anew per transport: with
        # the defaults a 32-byte int of 16 KiB.  Equal ints are shared.
        self._high_water = shared_limit(self._high_water)
        self._low_water = shared_limit(self._low_water)


cdef bint WRITE_BUFFER_IS_BYTEARRAY = asyncio_compat.BUFFER_FACTORY_IS_BYTEARRAY


cdef Py_ssize_t hot_field_offset(str name) except -1:
    """Offset of SocketTransport's slot ``name`` (one of asyncio's fields
    that asyncio_compat.SOCKET_TRANSPORT_STATE declares, or _wfc_io)."""
    if name != "_wfc_io" and name not in asyncio_compat.SOCKET_TRANSPORT_STATE:
        raise ImportError(f"SocketTransport's slot {name!r} is not declared in asyncio_compat")
    descriptor = SocketTransport.__dict__[name]
    if type(descriptor) is not MemberDescriptorType:
        raise ImportError(f"SocketTransport.{name} is not a slot")
    return (<PyMemberDescrObject *>descriptor).d_member.offset


cdef Py_ssize_t T_SOCK_FD = hot_field_offset("_sock_fd")
cdef Py_ssize_t T_PROTOCOL = hot_field_offset("_protocol")
cdef Py_ssize_t T_READ_READY_CB = hot_field_offset("_read_ready_cb")
cdef Py_ssize_t T_CONN_LOST = hot_field_offset("_conn_lost")
cdef Py_ssize_t T_BUFFER = hot_field_offset("_buffer")
cdef Py_ssize_t T_EOF = hot_field_offset("_eof")
cdef Py_ssize_t T_EMPTY_WAITER = hot_field_offset("_empty_waiter")
cdef Py_ssize_t T_WFC_IO = hot_field_offset("_wfc_io")


cdef inline object field(transport, Py_ssize_t offset):
    """A SocketTransport's slot at offset, as reading the attribute would
    give it (AttributeError while never set)."""
    cdef PyObject *value = get_slot(transport, offset)
    if value == NULL:
        raise AttributeError(f"{type(transport).__name__!r} object has no attribute set "
                             f"at slot offset {offset}")
    return <object>value


cdef inline object transport_io(transport):
    """A SocketTransport's PollerIO strategy, or None (also while its slot
    was never set: no reader added yet)."""
    cdef PyObject *value = get_slot(transport, T_WFC_IO)
    return <object>value if value != NULL else None


cdef plain_write(self, data):
    """write() without poller-side I/O: asyncio's write(), with the send
    of a write that finds nothing buffered made in C.  As in asyncio, that
    one send is all the write tries: what the socket does not take is
    buffered for the writer, an error is the transport's fatal error."""
    cdef ssize_t n
    if (type(data) is bytes and not field(self, T_BUFFER) and not field(self, T_EOF)
            and field(self, T_EMPTY_WAITER) is None and not field(self, T_CONN_LOST)
            and PyBytes_GET_SIZE(data) > 0):
        n = c_send(field(self, T_SOCK_FD), PyBytes_AS_STRING(data),
                   PyBytes_GET_SIZE(data), MSG_NOSIGNAL)
        if n == PyBytes_GET_SIZE(data):
            return
        if n < 0:
            # (EWOULDBLOCK is EAGAIN on Linux; asyncio's send would have
            # retried an EINTR, the writer retries it here.)
            if errno != EAGAIN and errno != EINTR:
                try:
                    PyErr_SetFromErrno(OSError)
                except OSError as exc:
                    self._fatal_error(exc, 'Fatal write error on socket transport')
                return
            n = 0
        buffer_unsent(self, data, n)
        return
    if type(field(self, T_BUFFER)) is bytes:
        self._buffer = bytearray()  # the first write that may buffer
    super_write(self, data)


cdef buffer_unsent(self, data, ssize_t sent):
    """The end of asyncio's write() after its send took ``sent`` bytes of
    ``data`` (0: the socket was full) with nothing buffered before: the
    writer registered, the rest buffered as asyncio buffers it (3.11: a
    bytearray extended; 3.12+: a deque of the bytes or a memoryview of
    their tail), the protocol paused if that is above the high-water
    mark.  Trying the send again instead (asyncio's write() would) costs
    a system call and is not what asyncio does: after a reset it reports
    EPIPE where asyncio reports ECONNRESET, and a peer that has gone
    takes a second send before the protocol is paused."""
    self._loop._add_writer(self._sock_fd, self._write_ready)
    if WRITE_BUFFER_IS_BYTEARRAY:
        if type(self._buffer) is bytes:
            self._buffer = bytearray()
        self._buffer.extend(memoryview(data)[sent:] if sent else data)
    else:
        self._buffer.append(memoryview(data)[sent:] if sent else data)
    self._maybe_pause_protocol()
