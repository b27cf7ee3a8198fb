# poller_io.pyx, included by _loop.pyx (one extension module, as uvloop's
# loop.pyx includes its handles).
#
# Poller-side I/O of a SocketTransport, behind one boundary: PollerIO, a
# strategy object the transport holds in its one field ``_wfc_io`` (None:
# asyncio's own I/O).  While the loop's EventPoll is in its pollers phase,
# the pollers receive the transport's data and send what write() queued,
# so the loop thread runs only the protocol (cython/eventpoll_core.c,
# POLLER-SIDE I/O).  Nothing above the EventPoll but this file knows the
# feature exists: the transport calls the strategy at its boundaries
# (on_add_reader, take_read, write, settle, stop, pending, on_resume) and
# does asyncio's I/O when it has none.
#
# The dispatcher does not know it either.  A poller's send that stopped
# short or failed is reported by the EventPoll as its own notification bit
# (WFC_EV_IO_WRITE, one of WFC_EV_NOTIFY_BITS) on the fd's event; the
# strategy registers, with EventPoll.set_notify, a Handle for its fd, and
# run_once's dispatcher only appends "the handle registered for this fd's
# notification" to the ready queue.  The handle settles: the output not
# sent goes through asyncio's write (its buffer, flow control), or its
# error is asyncio's fatal write error.


cdef object poller_io_for(transport, int fd):
    """A started PollerIO for transport, if its loop has poller-side I/O
    and fd is the transport's registered, reading socket; else None."""
    cdef PollerIO io
    loop = transport._loop
    if loop is None:
        return None
    poll = loop._wfc_poller_io
    if poll is None or fd != transport._sock_fd:
        return None
    io = PollerIO.__new__(PollerIO)
    io.poll = <EventPoll>poll
    io.fd = fd
    io.transport = transport
    io.notify = new_handle(io._wfc_notified, (), loop, None)
    if not io.on_add_reader(fd):
        return None
    return io


cdef class PollerIO:
    """The poller-side I/O of one socket transport (see the file comment).

    Whatever asyncio's own code is about to look at (pause, EOF, close,
    abort, write_eof, sendfile, writelines, a short or failed send) first
    takes the transport back to asyncio's state through stop() or
    settle(): queued output goes through asyncio's write, in order; a read
    already made is delivered in order, or held while reading is paused.
    A stopped strategy stays on the transport only while it holds reads."""

    cdef int on_add_reader(self, int fd) except -1:
        """The transport's reader was added (again): let the pollers read
        and send for fd.  1 when they may."""
        if self.enabled:
            return 1
        if fd != self.fd or self.poll.io_enable(fd) != 0:
            return 0
        self.enabled = True
        self.poll.set_notify(fd, self.notify)
        return 1

    def _wfc_notified(self):
        """The EventPoll's notification: a poller's send for fd stopped
        short or failed."""
        if self.enabled or self.queued:
            self.settle()

    cdef bint take_read(self) except -1:
        """The reader's turn: deliver the reads held while paused and the
        read a poller made, if any.  True when the reader has nothing
        more to do (else it reads the socket itself)."""
        transport = self.transport
        if self.held:
            self.deliver_held()
            if self.held or transport._conn_lost:
                return True
        if not self.enabled:
            return False
        r = self.poll.io_take_read(self.fd)
        if r is None:
            return False
        self.deliver_read(r)
        return True

    cdef bint write(self, data) except -1:
        """Queue data for the pollers: True when it is theirs.  False: the
        output queued so far is settled and the caller writes data as
        asyncio would (so the bytes stay in order)."""
        cdef Py_ssize_t queued
        t = self.transport
        # The phase first: inline (the pollers parked), the one C call is
        # all a write pays here before asyncio's path.
        if (self.enabled and self.poll.io_writes()
                and type(data) is bytes and not t._buffer
                and not t._eof and not t._closing and not t._conn_lost
                and t._empty_waiter is None and PyBytes_GET_SIZE(data) > 0):
            queued = self.poll.io_write(self.fd, PyBytes_AS_STRING(data),
                                        PyBytes_GET_SIZE(data))
            if queued >= 0:
                self.queued = True
                if queued > t._high_water:
                    self.settle()   # asyncio's buffer and flow control
                return True
        if self.queued:
            self.settle()
        return False

    cdef settle(self):
        """Take the output queued for the pollers and not sent (a short
        send, or not sent yet) through asyncio's write, in order; a send
        that failed is asyncio's fatal write error."""
        self.queued = False
        data, err = self.poll.io_take_writes(self.fd)
        if err:
            self.transport._fatal_error(OSError(err, strerror(err).decode()),
                                        'Fatal write error on socket transport')
            return
        if data is not None:
            plain_write(self.transport, data)

    cdef stop(self, bint keep_writes, bint keep_read):
        """Back to asyncio's state: no poller reads for the transport any
        more (one that is reading has finished); its read already made is
        held (keep_read, for resume_reading) or dropped; output queued goes
        through asyncio's write (keep_writes) or is dropped (abort)."""
        transport = self.transport
        if self.enabled:
            self.enabled = False
            self.poll.set_notify(self.fd, None)
            self.poll.io_disable(self.fd)
            r = self.poll.io_take_read(self.fd)
            if r is not None and keep_read:
                self.hold(r, False)
        if self.queued:
            if keep_writes:
                self.settle()
            else:
                # abort(): asyncio's write would have sent this already
                # where the socket had room; one try, then it is dropped
                # as asyncio drops its buffer.
                self.queued = False
                data, err = self.poll.io_take_writes(self.fd)
                if data is not None and not err and not transport._conn_lost:
                    c_send(self.fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                           MSG_NOSIGNAL | MSG_DONTWAIT)
        if not self.held and transport_io(transport) is self:
            transport._wfc_io = None

    cdef Py_ssize_t pending(self) noexcept:
        """Bytes queued for the pollers and not sent yet."""
        return self.poll.io_pending(self.fd) if self.queued else 0

    cdef on_resume(self):
        """Reading resumed: the reads held are delivered soon, in order."""
        if self.held:
            self.transport._loop.call_soon(self._wfc_deliver_held)

    cdef hold(self, r, bint first):
        """Keep read r (at the front: first) for after resume_reading."""
        if self.held is None:
            self.held = []
        if transport_io(self.transport) is None:
            self.transport._wfc_io = self   # (stopped while delivering)
        if first:
            self.held.insert(0, r)
        else:
            self.held.append(r)

    def _wfc_deliver_held(self):
        self.deliver_held()

    cdef deliver_held(self):
        """Deliver the reads held while reading was paused, in order."""
        transport = self.transport
        held = self.held
        while held and not transport._paused and not transport._conn_lost:
            self.deliver_read(held.pop(0))
        if not self.held:
            self.held = None
            if not self.enabled and transport_io(transport) is self:
                transport._wfc_io = None

    cdef deliver_read(self, r):
        """Hand a read the pollers made (bytes, 0 for end of file, or an
        OSError) to the protocol, as the transport's own read would."""
        transport = self.transport
        if type(r) is bytes:
            if isinstance(transport._protocol, BufferedProtocol):
                self.feed_buffered(r)
                return
            try:
                transport._protocol.data_received(r)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                transport._fatal_error(
                    exc, 'Fatal error: protocol.data_received() call failed.')
        elif type(r) is int:
            transport._read_ready__on_eof()
        else:
            transport._fatal_error(r, 'Fatal read error on socket transport')


    cdef feed_buffered(self, bytes data):
        """data into a BufferedProtocol's buffers: get_buffer() and
        buffer_updated() as often as the buffers it gives need; what is left
        when reading pauses is held for resume_reading()."""
        cdef Py_ssize_t offset = 0, size = len(data), n
        cdef Py_buffer view
        transport = self.transport
        protocol = transport._protocol
        while offset < size:
            if transport._conn_lost:
                return
            if transport._paused:
                self.hold(data[offset:], True)
                return
            if not get_protocol_buffer(transport, size - offset, &view):
                return
            n = min(view.len, size - offset)
            memcpy(view.buf, PyBytes_AS_STRING(data) + offset, n)
            PyBuffer_Release(&view)
            offset += n
            try:
                protocol.buffer_updated(n)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                transport._fatal_error(
                    exc, 'Fatal error: protocol.buffer_updated() call failed.')
                return
